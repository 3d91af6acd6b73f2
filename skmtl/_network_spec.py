"""The network a fit builds, described once: ``network_spec_``.

``fit`` turns the estimator's parameters and what it learnt from the data
(table sizes, tasks and classes, the funnel, feature groups) into one plain
dict, the *network description*, and builds ``module_`` from it. Everything
that needs to rebuild or check the network later (model files, the guards)
reads the description, never the estimator's parameters, which the user may
have changed with ``set_params`` since.

A description holds:

``architecture``
    A name from :data:`~skmtl.nn.ARCHITECTURES`, or the user's module class or
    factory.
``embedding_dim``
    ``D``, the size of every embedded token.
``embeddings``
    One entry per column kind, in the encoder's order: ``{"kind": name,
    **args}``, where ``args`` are the plain keyword arguments of the kind's
    ``make_embedding`` (categorical: ``cardinalities`` and ``unknown_rate``;
    continuous: ``n_columns``, and for a non-linear ``embedding`` its
    settings: ``n_frequencies`` and ``sigma`` for ``"periodic"``, the bin
    edges ``bins`` in standardised units for ``"piecewise_linear"``); see
    :mod:`skmtl._column_kinds`.
``n_outputs``
    Logits per task (1 for a binary task, else its number of classes).
``options``
    The keyword arguments of the built-in architecture's class, resolved
    (e.g. ``n_experts`` counts the feature groups' experts, AITM's ``chain`` is
    the funnel, ``tower_layer_sizes`` is one tuple for every tower or, where
    the towers differ, a list with one tuple per task); empty for a
    user-defined architecture, which is called as
    ``architecture(in_features, n_outputs)``.
``embedding_dropout``
    Only where positive: the dropout probability on the embedded input while
    training (the estimator's ``embedding_dropout``). Absent, as in the
    descriptions written before it existed, it is 0: no dropout module.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from numbers import Integral, Real

import numpy as np
import torch

from ._column_kinds import COLUMN_KINDS, check_continuous_entry
from ._keyed_settings import expert_input_mask, task_index
from .nn.architectures import ARCHITECTURES, MultiTaskNetwork, architecture_options, build_network
from .nn.blocks import tower_shapes

DEFAULT_TOWER_LAYER_SIZES = (32,)
"""The tower of a task that a ``tower_layer_sizes`` dict does not name (the parameter's default)."""


def auto_embedding_dim(cardinalities: Sequence[int]) -> int:
    """One shared embedding size from the typical size of the embedding tables.

    ``round(1.6 * K ** 0.56)`` (the fast.ai rule of thumb) for the median
    table size ``K`` (categorical columns' tables and sequence tables, each
    with its unknown row), clipped to [4, 32]; 8 without any table.
    """
    if not cardinalities:
        return 8
    k = float(np.median(cardinalities))
    return int(np.clip(round(1.6 * k**0.56), 4, 32))


def layer_sizes(value, name: str, allow_empty: bool) -> tuple[int, ...]:
    """``value`` (an int or a sequence of ints) as a tuple of positive ints."""
    sizes = tuple(np.atleast_1d(np.asarray(value)).tolist()) if np.ndim(value) else (value,)
    if not allow_empty and len(sizes) == 0:
        raise ValueError(f"{name} must have at least one layer; got {value!r}.")
    for s in sizes:
        if not isinstance(s, Integral) or isinstance(s, bool) or s < 1:
            raise ValueError(f"{name} must contain positive integers; got {value!r}.")
    return tuple(int(s) for s in sizes)


def resolve_tower_layer_sizes(value, task_names) -> tuple[int, ...] | list[tuple[int, ...]]:
    """``tower_layer_sizes`` as the network description holds it.

    Parameters
    ----------
    value : int, sequence of int, or dict
        The estimator's parameter: one shape for every tower, or a dict
        ``{task: sizes}`` naming tasks by :func:`~skmtl._keyed_settings.task_index`
        (tasks it does not name get :data:`DEFAULT_TOWER_LAYER_SIZES`). The
        value is read, never changed.
    task_names : sequence
        The tasks, in the order of ``y``.

    Returns
    -------
    sizes : tuple of int, or list of tuple of int
        One tuple when every task has the same tower (however it was said),
        else one tuple per task.
    """
    if not isinstance(value, Mapping):
        if _nested(value):
            raise ValueError(
                "tower_layer_sizes is one shape for every tower (a sequence of ints); for a "
                "shape per task pass a dict {task: sizes} (tasks it does not name get "
                f"{DEFAULT_TOWER_LAYER_SIZES}); got {value!r}."
            )
        return layer_sizes(value, "tower_layer_sizes", allow_empty=True)
    shapes = [DEFAULT_TOWER_LAYER_SIZES] * len(task_names)
    named: dict[int, object] = {}
    for key, sizes in value.items():
        t = task_index(key, task_names, "tower_layer_sizes")
        if t in named:
            raise ValueError(
                f"tower_layer_sizes names task {task_names[t]!r} twice (as {named[t]!r} and "
                f"{key!r})."
            )
        named[t] = key
        shapes[t] = layer_sizes(sizes, f"tower_layer_sizes[{key!r}]", allow_empty=True)
    return shapes[0] if len(set(shapes)) == 1 else shapes


def _nested(value) -> bool:
    """Whether ``value`` is a sequence holding sequences (e.g. one shape per task)."""
    return (
        not isinstance(value, (str, Mapping))
        and hasattr(value, "__iter__")
        and any(hasattr(entry, "__len__") for entry in value)
    )


def _check_tower_layer_sizes(value, n_tasks: int) -> None:
    """A description's ``tower_layer_sizes``: one shape, or a list of one per task."""
    if _nested(value):
        if not isinstance(value, list):
            raise ValueError(f"per-task tower_layer_sizes must be a list; got {value!r}.")
        for entry in value:
            layer_sizes(entry, "tower_layer_sizes", allow_empty=True)
        tower_shapes(value, n_tasks)  # one shape per task, none a plain int
    else:
        layer_sizes(value, "tower_layer_sizes", allow_empty=True)


ARCHITECTURE_PARAMETERS = (
    "expert_layer_sizes", "tower_layer_sizes", "n_experts", "gate_temperature", "n_levels",
    "n_task_experts", "n_shared_experts", "activation", "dropout",
)
"""Estimator parameters an architecture's keyword argument of the same name receives.

With the values ``fit`` derives (``chain``: the funnel; ``expert_input_mask``:
the feature groups' masks), these are all an architecture can be given; a
training setting (``alpha``, ``tol``, ``device``...) never is.
"""


def _plain(value):
    """numpy scalars as Python ones, so that a description is plain data."""
    return value.item() if isinstance(value, np.generic) else value


def _count(value, name: str, minimum: int) -> int:
    """An int (not a bool, not a float) of at least ``minimum``."""
    value = _plain(value)
    if not isinstance(value, Integral) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}.")
    return int(value)


def describe_network(
    architecture,
    *,
    embeddings: Sequence[Mapping],
    n_outputs: Sequence[int],
    values: Mapping,
) -> dict:
    """The network description from resolved values named as the architectures' arguments.

    ``embeddings`` are the column kinds' entries (``{"kind": name, **args}``);
    ``values`` holds ``embedding_dim``, ``chain``, ``expert_input_mask`` and
    the :data:`ARCHITECTURE_PARAMETERS`; each built-in architecture receives
    those its constructor takes.
    """
    options = {}
    if isinstance(architecture, str):
        if architecture not in ARCHITECTURES:
            raise ValueError(
                f"unknown architecture {architecture!r} (built-in: {sorted(ARCHITECTURES)})"
            )
        offered = {
            name: values[name]
            for name in (*ARCHITECTURE_PARAMETERS, "chain", "expert_input_mask")
            if name in values
        }
        options = {
            name: [_plain(v) for v in value] if isinstance(value, list) else _plain(value)
            for name, value in architecture_options(ARCHITECTURES[architecture], offered).items()
        }
    spec = {
        "architecture": architecture,
        "embedding_dim": _count(values["embedding_dim"], "embedding_dim", 1),
        "embeddings": [{k: _plain(v) for k, v in entry.items()} for entry in embeddings],
        "n_outputs": [_count(k, "n_outputs", 1) for k in n_outputs],
        "options": options,
    }
    embedding_dropout = _probability(values.get("embedding_dropout", 0.0), "embedding_dropout")
    if embedding_dropout > 0:  # recorded only where used: other descriptions stay as they were
        spec["embedding_dropout"] = embedding_dropout
    return spec


def _probability(value, name: str) -> float:
    """A real number (not a bool) in [0, 1), as a Python float."""
    value = _plain(value)
    if isinstance(value, bool) or not isinstance(value, Real) or not 0 <= value < 1:
        raise ValueError(f"{name} must be in [0, 1); got {value!r}.")
    return float(value)


def tabular_embeddings(cardinalities, n_continuous, category_dropout) -> list[dict]:
    """The entries of the two built-in kinds, as files of format 1 and 2 described them."""
    category_dropout = _probability(category_dropout, "category_dropout")
    return [
        {"kind": "categorical", "cardinalities": [_count(k, "cardinalities", 1) for k in cardinalities],
         "unknown_rate": category_dropout},
        {"kind": "continuous", "n_columns": _count(n_continuous, "n_continuous", 0)},
    ]


def check_network_spec(spec: Mapping, constraints: Mapping, caller_name: str) -> None:
    """Check a description read from a file before anything is built from it.

    Sizes must be ints (not floats, not bools) in range; every column kind
    must be known (the built-in ones' arguments are checked here, the others'
    when their modules are built); options named like an estimator parameter
    obey its ``constraints`` (the estimator's ``_parameter_constraints``);
    layer sizes are positive ints; ``chain`` lists task indices; a mask is a
    2-D float32 tensor.
    """
    from sklearn.utils._param_validation import validate_parameter_constraints

    _count(spec["embedding_dim"], "embedding_dim", 1)
    if "embedding_dropout" in spec:
        _probability(spec["embedding_dropout"], "embedding_dropout")
    if not isinstance(spec["n_outputs"], list):
        raise ValueError(f"n_outputs must be a list; got {spec['n_outputs']!r}.")
    for k in spec["n_outputs"]:
        _count(k, "n_outputs", 1)
    embeddings = spec["embeddings"]
    if not isinstance(embeddings, list) or not all(isinstance(e, dict) for e in embeddings):
        raise ValueError("embeddings must be a list of dicts.")
    for entry in embeddings:
        if entry.get("kind") not in COLUMN_KINDS:
            raise ValueError(f"unknown column kind {entry.get('kind')!r}")
        if entry["kind"] == "categorical":
            tabular_embeddings(entry["cardinalities"], 0, entry["unknown_rate"])
        elif entry["kind"] == "continuous":
            _count(entry["n_columns"], "n_columns", 0)
            check_continuous_entry(entry)
    options = spec["options"]
    if not isinstance(options, dict):
        raise ValueError(f"options must be a dict; got {type(options).__name__}.")
    shared = {name: options[name] for name in ARCHITECTURE_PARAMETERS if name in options}
    for name, value in shared.items():
        if isinstance(value, bool) or isinstance(value, torch.Tensor):
            raise ValueError(f"option {name}={value!r} is not a valid value.")
    validate_parameter_constraints(
        {name: constraints[name] for name in shared}, shared, caller_name=caller_name
    )
    if "expert_layer_sizes" in options:
        layer_sizes(options["expert_layer_sizes"], "expert_layer_sizes", allow_empty=False)
    if "tower_layer_sizes" in options:
        _check_tower_layer_sizes(options["tower_layer_sizes"], len(spec["n_outputs"]))
    chain = options.get("chain", [])
    if not isinstance(chain, list) or any(
        _count(t, "chain", 0) >= len(spec["n_outputs"]) for t in chain
    ):
        raise ValueError(f"chain must list task indices; got {chain!r}.")
    mask = options.get("expert_input_mask")
    if mask is not None and not (
        isinstance(mask, torch.Tensor) and mask.dim() == 2 and mask.dtype == torch.float32
    ):
        raise ValueError("expert_input_mask must be a 2-D float32 tensor.")


def network_spec(
    params: Mapping, encoder, n_outputs, funnel, feature_names, *, task_names
) -> dict:
    """What ``fit`` builds, from the estimator's parameters and the fitted data.

    Parameters
    ----------
    params : mapping
        The estimator's ``get_params(deep=False)``.
    encoder : TabularEncoder
        The fitted column encoder (its column kinds and their sizes).
    n_outputs : list of int
        Logits per task.
    funnel : list of int
        Task indices of the funnel (AITM's chain), possibly empty.
    feature_names : ndarray or None
        ``feature_names_in_`` (names in ``feature_groups``).
    task_names : sequence
        The tasks (names in a ``tower_layer_sizes`` dict).
    """
    embedding_dim = params["embedding_dim"]
    if embedding_dim == "auto":
        embedding_dim = auto_embedding_dim(encoder.table_sizes)
    mask = expert_input_mask(
        params["feature_groups"], params["architecture"], params["n_experts"],
        params["n_group_experts"], encoder, embedding_dim, feature_names,
    )
    values = {
        **{name: params[name] for name in ARCHITECTURE_PARAMETERS},
        "embedding_dim": embedding_dim,
        "category_dropout": params["category_dropout"],
        "embedding_dropout": params["embedding_dropout"],
        "attention_weights": params["attention_weights"],
        "numeric_embedding": params["numeric_embedding"],
        "continuous_projection": params["continuous_projection"],
        "feature_groups": params["feature_groups"],
        "expert_layer_sizes": layer_sizes(params["expert_layer_sizes"], "expert_layer_sizes", False),
        "tower_layer_sizes": resolve_tower_layer_sizes(params["tower_layer_sizes"], task_names),
        # Shared experts first, then each feature group's (the mask's rows).
        "n_experts": params["n_experts"] if mask is None else len(mask),
        "expert_input_mask": mask,
        "chain": [int(t) for t in funnel],
    }
    return describe_network(
        params["architecture"],
        embeddings=[{"kind": kind.name, **kind.embedding_args(values)} for kind in encoder.kinds],
        n_outputs=n_outputs,
        values=values,
    )


def spec_from_format_1(network: Mapping) -> dict:
    """A description as model files of format version 1 stored it (flat ``params``)."""
    params = network["params"]
    if not isinstance(params, dict):
        raise ValueError(f"params must be a dict; got {type(params).__name__}.")
    mask = params.get("expert_input_mask")
    values = {
        **params,
        "chain": list(params.get("funnel") or ()),
        **({} if mask is None else {"n_experts": len(mask)}),
    }
    return describe_network(
        network["architecture"],
        embeddings=tabular_embeddings(
            network["cardinalities"], network["n_continuous"], params["category_dropout"]
        ),
        n_outputs=network["n_outputs"],
        values=values,
    )


def spec_from_format_2(network: Mapping) -> dict:
    """A description as model files of format version 2 stored it (the two built-in kinds)."""
    spec = {k: v for k, v in network.items()
            if k not in ("cardinalities", "n_continuous", "category_dropout")}
    if not isinstance(network["cardinalities"], list):
        raise ValueError(f"cardinalities must be a list; got {network['cardinalities']!r}.")
    spec["embeddings"] = tabular_embeddings(
        network["cardinalities"], network["n_continuous"], network["category_dropout"]
    )
    return spec


def _token_embedding(entry: Mapping, embedding_dim: int):
    """A factory ``copies -> module`` for one column kind's entry of the description."""
    args = dict(entry)
    name = args.pop("kind")
    if name not in COLUMN_KINDS:
        raise ValueError(f"unknown column kind {name!r} (known: {sorted(COLUMN_KINDS)})")
    cls = COLUMN_KINDS[name]
    return lambda copies: cls.make_embedding(embedding_dim, copies, **args)


def build_from_spec(spec: Mapping, device=None) -> MultiTaskNetwork:
    """The described network, parameters uninitialised (on ``device``, e.g. ``"meta"``)."""
    with torch.device(device) if device is not None else contextlib.nullcontext():
        return build_network(
            spec["architecture"],
            embedding_dim=spec["embedding_dim"],
            token_embeddings={
                entry["kind"]: _token_embedding(entry, spec["embedding_dim"])
                for entry in spec["embeddings"]
            },
            n_outputs=spec["n_outputs"],
            options=spec["options"],
            embedding_dropout=spec.get("embedding_dropout", 0.0),
        )



def differing_entries(spec: Mapping, other: Mapping) -> list[tuple[str, object, object]]:
    """``(name, spec's value, other's value)`` for every entry that differs (tensors by value)."""

    def same(a, b) -> bool:
        if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
            return isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and (
                a.shape == b.shape and torch.equal(a, b)
            )
        if isinstance(a, dict) and isinstance(b, dict):
            return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
        if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
            return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
        return a is b or a == b

    changed = []
    for name in sorted(set(spec) | set(other)):
        a, b = spec.get(name), other.get(name)
        if name == "options" and isinstance(a, dict) and isinstance(b, dict):
            changed += [
                (option, a.get(option), b.get(option))
                for option in sorted(set(a) | set(b))
                if not same(a.get(option), b.get(option))
            ]
        elif name == "embeddings" and _same_kinds(a, b):
            # One column kind's settings, named: "attention_weights: 'softmax' -> 'din'"
            # (once when several kinds share a setting, e.g. unknown_rate).
            for x, y in zip(a, b):
                for key in sorted(set(x) | set(y)):
                    entry = (key, x.get(key), y.get(key))
                    if not same(entry[1], entry[2]) and not any(
                        key == k and same(entry[1], u) and same(entry[2], v) for k, u, v in changed
                    ):
                        changed.append(entry)
        elif not same(a, b):
            changed.append((name, a, b))
    return changed


def _same_kinds(a, b) -> bool:
    """Whether two descriptions' ``embeddings`` list the same column kinds, in order."""
    return (
        isinstance(a, list) and isinstance(b, list) and len(a) == len(b)
        and all(isinstance(x, dict) and isinstance(y, dict) and x.get("kind") == y.get("kind")
                for x, y in zip(a, b))
    )
