"""Export a fitted :class:`~skmtl.MultiTaskClassifier` or :class:`~skmtl.MultiTaskRegressor` to ONNX.

:func:`to_onnx` writes ONE self-contained ONNX graph that takes the raw
feature columns and returns the probabilities of every task, so a serving
system (onnxruntime, Triton, a JVM or C++ runtime...) needs neither Python nor
skmtl:

1. **Inputs**: one graph input per original feature column, named after the
   column (``feature_names_in_``; ``x0``, ``x1``, ... for arrays without
   names), of shape ``(N, 1)`` with a dynamic batch size ``N``. Its type
   follows the column's role in the fitted model:

   - continuous column (any numeric dtype): ``double``; it must be finite
     (see below);
   - categorical column with string categories (str, object or ``string``
     dtype, or ``category`` with string categories): ``string``; any string
     that is not a learnt category, e.g. ``""``, means missing/unknown;
   - categorical bool column: ``int64``, 1 for True and 0 for False; any
     other value, e.g. -1, means missing;
   - categorical column with integer categories: ``int64``; any integer that
     is not a learnt category means unknown;
   - categorical column with float categories: ``double``; NaN or any value
     that is not a learnt category means missing/unknown.
   - sequence column (``sequence_features``): TWO inputs, the column's name
     of shape ``(N, max_sequence_length)`` holding the kept items (the last
     ones of each list, in order; what follows them is ignored) with the type
     of its categories as above, and ``<name>_length`` of shape ``(N, 1)``,
     int64, the number of items kept (see the user guide's "Sequence and
     multi-hot columns").

2. **Encoding inside the graph**: each categorical column goes through an
   ``ai.onnx.ml`` ``LabelEncoder`` that maps the column's learnt categories
   (``categories_``) to their codes ``1..K`` and everything else to the
   unknown code 0, exactly as the estimator does (float categories use an
   ``Equal``/``Where``/``ReduceMax`` lookup instead: ``LabelEncoder`` takes
   float64 keys only from ``ai.onnx.ml`` version 4 on). Continuous columns are standardised in float64 with the
   training mean and scale, then cast to float32, bit for bit as in
   ``predict_proba``.
3. **The network**, exported from ``module_`` with PyTorch's
   ``torch.export``-based ONNX exporter (``torch.onnx.export(...,
   dynamo=True)``, which needs the ``onnxscript`` package). The legacy
   TorchScript exporter is not used: PyTorch has deprecated it.
4. **Probabilities** computed by the estimator's own
   :meth:`~skmtl.losses.MultiTaskObjective.probabilities`, traced into the
   graph: ``[1 - p, p]`` for binary tasks (with negative-sampling logit
   offsets), softmax for multiclass tasks, products of the step
   probabilities for ESMM funnels (pCTR, pCTCVR). They are computed in
   float64 and returned as float32 (``softplus`` and ``log_sigmoid`` are
   translated to elementary ONNX ops, which onnxruntime runs in float64).
5. **Outputs**: one float32 tensor per task, named after ``task_names_``, of
   shape ``(N, n_classes_t)`` with the columns in the order of
   ``classes_[t]`` (sorted, as ``predict_proba``'s: a task whose declared
   ``pos_label`` sorts first gets its two columns swapped in the graph). The
   model's metadata (``metadata_props``) records the classes of every task
   (``skmtl.classes``), the inputs and their kinds
   (``skmtl.inputs``) and the funnel (``skmtl.funnel``) as JSON.

A :class:`~skmtl.MultiTaskRegressor` exports the same way, with each task's
prediction in the targets' units (the network's output turned back by the
fitted ``target_offset_`` and ``target_scale_``, ``exp`` for poisson
tasks, the sigmoid for ``"log_loss"`` tasks, whose output is then P(y = 1))
as a float32 ``(N, 1)`` tensor instead of probabilities; the metadata
records each task's loss (``skmtl.losses``) instead of classes.

Non-finite continuous values. ``predict_proba`` raises on NaN or infinity in
a continuous column; an ONNX graph cannot raise. A row with NaN or +-inf in
any continuous input gets NaN for every probability of every task (the graph
sets them explicitly, it does not rely on NaN propagating through the
network). Check for NaN in the outputs, or validate inputs upstream. Missing
values in categorical columns are fine: they map to the unknown category, as
in ``predict_proba``.

:func:`onnx_inputs` turns a DataFrame (or array) into the input dictionary
the exported graph expects, with the same conventions (it does not need the
``onnx`` package).
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import os
import warnings

import numpy as np
import torch
from sklearn.utils.validation import check_is_fitted

from ._base import validate_input
from ._classifier import MultiTaskClassifier
from ._column_kinds import OnnxColumn
from ._regressor import MultiTaskRegressor
from ._sparse import is_sparse
from ._targets import classes_per_task

__all__ = ["onnx_inputs", "to_onnx"]

DEFAULT_OPSET = 20
"""Default version of the ``ai.onnx`` operator set (onnxruntime >= 1.17 runs it)."""

MIN_OPSET = 18
"""Oldest ``ai.onnx`` operator set the ``torch.export``-based exporter targets."""

ML_OPSET = 2
"""Version of ``ai.onnx.ml`` used (its ``LabelEncoder`` maps string and int64 keys)."""

_PREFIX = "skmtl/"  # every tensor the graph creates internally starts with this


def _output_widths(estimator) -> list[int]:
    """Columns of each task's output: its classes, or 1 (a regressor's prediction)."""
    if isinstance(estimator, MultiTaskRegressor):
        return [1] * estimator.n_outputs_
    return [len(c) for c in classes_per_task(estimator.classes_)]


def _untrained_tasks(estimator) -> list[str]:
    """Tasks set aside in fit (fewer than two classes; no known target)."""
    if isinstance(estimator, MultiTaskRegressor):
        trained = estimator._trained_tasks_
    else:
        trained = [len(c) >= 2 for c in classes_per_task(estimator.classes_)]
    return [str(n) for n, ok in zip(estimator.task_names_, trained) if not ok]


def _check_exportable(estimator) -> None:
    """Refuse a model with a column kind that has no ONNX export, or an untrained task."""
    untrained = _untrained_tasks(estimator)
    if untrained:
        raise ValueError(
            f"Task(s) {untrained} were not trained (fewer than two classes, or no known "
            "target, in fit); their constant prediction has no ONNX export. Refit on data "
            "where every task can be trained (or declare pos_label for a binary one)."
        )
    for kind in estimator.encoder_.kinds:
        if not kind.exports_to_onnx and len(kind.columns):
            names = _input_names(estimator)
            raise ValueError(
                f"Column kind {kind.name!r} ({type(kind).__name__}, columns "
                f"{[names[j] for j in kind.columns]}) does not export to ONNX; only kinds with "
                "exports_to_onnx=True do. Serve this model with predict_proba, or fit it "
                "without those columns."
            )


def _input_names(estimator) -> list[str]:
    """The graph input name of every feature column, in the order of ``X``."""
    names = getattr(estimator, "feature_names_in_", None)
    if names is not None:
        return [str(n) for n in names]
    return [f"x{j}" for j in range(estimator.n_features_in_)]


def _exported_kinds(estimator) -> list:
    """The kinds with columns: each is one input of the traced network."""
    return [kind for kind in estimator.encoder_.kinds if len(kind.columns)]


def _columns(estimator) -> list[OnnxColumn]:
    """The graph input of every feature column, in the order of ``X``."""
    names = _input_names(estimator)
    columns = [c for kind in _exported_kinds(estimator) for c in kind.onnx_columns(names)]
    return sorted(columns, key=lambda c: c.index)


def _output_names(estimator, inputs: list[OnnxColumn]) -> list[str]:
    """Task names as graph output names, checked to be unique among all graph names."""
    names = [str(t) for t in estimator.task_names_]
    every = names + [c.name for c in inputs]
    if "" in every:
        raise ValueError(
            "The ONNX graph names its inputs after the features and its outputs after the "
            "tasks, and ONNX refuses an empty name; a feature or task is named ''. Rename "
            "it and refit."
        )
    repeated = sorted({n for n in every if every.count(n) > 1})
    if repeated:
        raise ValueError(
            f"The ONNX graph names its inputs after the features and its outputs after the "
            f"tasks, which must then all differ; {repeated} appear(s) twice. Rename the "
            "columns of X or y and refit."
        )
    internal = sorted(n for n in every if n.startswith(_PREFIX))
    if internal:
        raise ValueError(
            f"Feature or task names {internal} start with {_PREFIX!r}, which the exported "
            "graph reserves for its internal tensors. Rename them and refit."
        )
    return names


# ----------------------------------------------------------------------- inputs
def onnx_inputs(estimator, X) -> dict[str, np.ndarray]:
    """The input dictionary of the graph :func:`to_onnx` exports, for the rows of ``X``.

    Every column becomes an array of shape ``(n_samples, 1)`` of the input's
    type (see :mod:`skmtl.export`): categorical values that the estimator
    would encode as unknown (missing, unseen, or too rare at fit time) are
    replaced by a value that is not a learnt category (``""`` for strings
    unless ``""`` was learnt, -1 for bools, NaN for floats), so the graph
    encodes them as unknown too. Continuous columns are converted to float64;
    NaN and infinity are kept (the graph returns NaN probabilities for those
    rows), except in a scipy sparse ``X``, whose stored NaN or infinity is
    refused as in ``predict_proba``. A sparse ``X`` is densified here: the
    graph's inputs are dense columns (a model fitted on a sparse ``X`` exports
    as any other).

    Parameters
    ----------
    estimator : MultiTaskClassifier or MultiTaskRegressor
        The fitted estimator that was exported.
    X : array-like, DataFrame or sparse matrix of shape (n_samples, n_features)
        Input features, as given to ``predict_proba``.

    Returns
    -------
    inputs : dict of str to ndarray of shape (n_samples, 1)
        Graph input name -> values (object arrays of str, int64 or float64),
        ready for ``onnxruntime.InferenceSession.run(None, inputs)``. A
        sequence column gives an ``(n_samples, max_sequence_length)`` array of
        its kept items and an ``(n_samples, 1)`` array of their number.

    Examples
    --------
    >>> import pandas as pd
    >>> from skmtl import MultiTaskClassifier
    >>> from skmtl.export import onnx_inputs
    >>> X = pd.DataFrame({"city": ["a", "b"] * 50, "age": range(100)})
    >>> y = pd.DataFrame({"click": [0, 1] * 50, "buy": [0, 0, 1, 1] * 25})
    >>> clf = MultiTaskClassifier(max_iter=1, random_state=0).fit(X, y)
    >>> feed = onnx_inputs(clf, pd.DataFrame({"city": ["b", None], "age": [3, 4]}))
    >>> feed["city"].ravel().tolist(), feed["age"].dtype, feed["age"].shape
    (['b', ''], dtype('float64'), (2, 1))
    """
    check_is_fitted(estimator)
    _check_exportable(estimator)
    X = validate_input(estimator, X, reset=False)
    if is_sparse(X):  # the graph takes one dense column per input: the feed is dense anyway
        X = X.toarray()
    names = _input_names(estimator)
    feed = {}
    for kind in _exported_kinds(estimator):
        feed.update(kind.onnx_feed(X, names))
    return {column.name: feed[column.name] for column in _columns(estimator)}


# ------------------------------------------------------------------ the network
class _ProbabilityModel(torch.nn.Module):
    """``module_`` followed by the objective's probabilities: what gets traced.

    It takes the tensors of the column kinds that have columns (int64 codes,
    standardised float32 values, ...) and returns one float32 ``(B, K_t)``
    tensor per task; rows that a kind calls invalid (a non-finite continuous
    value) get NaN everywhere.
    """

    def __init__(self, network, objective, kinds, empty_inputs, sorted_columns=None):
        super().__init__()
        self.network = network
        self.objective = objective
        self.kinds = kinds  # with columns, in input order
        self.empty_inputs = empty_inputs  # per kind of the network: None, or a (0, 0) tensor
        # Per task, None or the objective's columns in the order of classes_ (as predict_proba).
        self.sorted_columns = sorted_columns

    def forward(self, *inputs):
        given = iter(inputs)
        batch = inputs[0].shape[0]
        network_inputs = [
            next(given) if empty is None else empty.new_zeros((batch, 0))
            for empty in self.empty_inputs
        ]
        probabilities = self.objective.export_outputs(self.network(*network_inputs))
        for kind, x in zip(self.kinds, inputs):
            bad = kind.onnx_invalid_rows(x)
            if bad is not None:
                probabilities = [torch.where(bad, torch.nan, p) for p in probabilities]
        if self.sorted_columns is not None:
            probabilities = [
                p if order is None else p[:, order]
                for p, order in zip(probabilities, self.sorted_columns)
            ]
        return tuple(p.to(torch.float32) for p in probabilities)


def _translations() -> dict:
    """ONNX translations of the aten ops that onnxruntime cannot run in float64.

    The probability head runs in float64, as ``predict_proba`` does; the
    default translations of ``softplus`` (ONNX ``Softplus``) and
    ``log_sigmoid`` (``Log(Sigmoid(x))``) have no float64 kernel in
    onnxruntime or lose precision. These use elementary ops instead, with
    PyTorch's own formulas.
    """
    from onnxscript import opset18 as op

    def softplus(x, beta: float = 1.0, threshold: float = 20.0):
        # torch: x where beta * x > threshold, else log1p(exp(beta * x)) / beta
        beta_ = op.CastLike(beta, x)
        scaled = op.Mul(x, beta_)
        smooth = op.Div(op.Log(op.Add(op.CastLike(1.0, x), op.Exp(scaled))), beta_)
        return op.Where(op.Greater(scaled, op.CastLike(threshold, x)), x, smooth)

    def log_sigmoid(x):
        # torch: min(x, 0) - log1p(exp(-|x|)), finite for every finite x
        tail = op.Log(op.Add(op.CastLike(1.0, x), op.Exp(op.Neg(op.Abs(x)))))
        return op.Sub(op.Min(x, op.CastLike(0.0, x)), tail)

    return {
        torch.ops.aten.softplus.default: softplus,
        torch.ops.aten.log_sigmoid.default: log_sigmoid,
    }


@contextlib.contextmanager
def _quiet_exporter():
    """Silence the exporter's own warnings and log lines (not errors)."""
    logger = logging.getLogger("torch.onnx")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logger.setLevel(level)


def _network_input(kind) -> str:
    return f"x_{kind.name}"


def _export_network(estimator, opset):
    """The traced network + probabilities as an ONNX model.

    Its inputs are ``x_<kind>`` for the column kinds with columns (``x_categorical``,
    ``x_continuous``, ...), its outputs ``proba_0``, ``proba_1``, ... in task order.
    """
    network = copy.deepcopy(estimator.module_).cpu().eval()
    objective = copy.copy(estimator.objective_).to("cpu")
    batch = 3  # example rows; the batch axis is exported as dynamic
    kinds = _exported_kinds(estimator)
    empty_inputs = [
        None if len(kind.columns) else kind.onnx_example(0) for kind in estimator.encoder_.kinds
    ]
    sorted_columns = None
    if isinstance(estimator, MultiTaskClassifier):
        sorted_columns = [
            None if order is None else order.tolist() for order in estimator._sorted_columns()
        ]
    model = _ProbabilityModel(network, objective, kinds, empty_inputs, sorted_columns).eval()
    example = [kind.onnx_example(batch) for kind in kinds]
    names = [_network_input(kind) for kind in kinds]
    rows = torch.export.Dim("N")
    try:
        with _quiet_exporter(), torch.no_grad():
            program = torch.onnx.export(
                model,
                tuple(example),
                dynamo=True,
                opset_version=opset,
                custom_translation_table=_translations(),
                input_names=names,
                output_names=[f"proba_{t}" for t in range(estimator.n_outputs_)],
                dynamic_shapes=(tuple({0: rows} for _ in example),),  # forward(*inputs)
                verbose=False,
            )
    except Exception as exc:
        raise RuntimeError(
            f"PyTorch could not export the network ({type(estimator.module_.body).__name__}) "
            f"to ONNX: {type(exc).__name__}: {exc}. Built-in architectures export; a "
            "user-defined module must be traceable by torch.export (no data-dependent Python "
            "control flow, no NumPy calls in forward)."
        ) from exc
    return program.model_proto


# -------------------------------------------------------------- the front end
class _GraphBuilder:
    """What a column kind's ``onnx_encode`` adds nodes with: names, constants, nodes.

    Every name it makes starts with the graph's internal prefix.
    """

    def __init__(self, helper, numpy_helper, TensorProto):
        self._helper, self._numpy_helper = helper, numpy_helper
        self.FLOAT, self.DOUBLE, self.INT64 = TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.INT64
        self.nodes, self.initializers = [], []

    def name(self, suffix: str) -> str:
        """An internal tensor name."""
        return _PREFIX + suffix

    def const(self, name: str, array) -> str:
        """A constant tensor (an initializer); returns its name."""
        self.initializers.append(self._numpy_helper.from_array(np.asarray(array), self.name(name)))
        return self.name(name)

    def tensor(self, array):
        """A tensor value for a node attribute."""
        return self._numpy_helper.from_array(np.asarray(array))

    def node(self, op_type: str, inputs, outputs, **attributes) -> None:
        self.nodes.append(self._helper.make_node(op_type, list(inputs), list(outputs), **attributes))


def _front_end(estimator, columns, helper, numpy_helper, TensorProto):
    """Nodes, initializers and graph inputs that turn raw columns into the network's inputs."""
    onnx_types = {"string": TensorProto.STRING, "int64": TensorProto.INT64,
                  "double": TensorProto.DOUBLE}
    inputs = [
        helper.make_tensor_value_info(col.name, onnx_types[col.onnx_type], ["N", col.width])
        for col in columns
    ]
    graph = _GraphBuilder(helper, numpy_helper, TensorProto)
    names = _input_names(estimator)
    for kind in _exported_kinds(estimator):
        kind.onnx_encode(graph, names, f"{_PREFIX}net/{_network_input(kind)}")
    return graph.nodes, graph.initializers, inputs


def _jsonable(values) -> list:
    return [v.item() if isinstance(v, np.generic) else v for v in np.asarray(values).tolist()]


def to_onnx(estimator, path=None, *, opset: int | None = None):
    """Export a fitted :class:`~skmtl.MultiTaskClassifier` or regressor, input encoding included.

    The graph takes one input per raw feature column and returns one
    probability tensor per task, equal to ``predict_proba`` (to float32
    precision), or for a :class:`~skmtl.MultiTaskRegressor` one ``(N, 1)``
    tensor per task equal to ``predict`` (to float32 precision); see :mod:`skmtl.export` for the input names, types and the
    handling of unknown, missing and non-finite values.

    Parameters
    ----------
    estimator : MultiTaskClassifier or MultiTaskRegressor
        A fitted estimator. Built-in architectures all export; a user-defined
        ``architecture`` exports if ``torch.export`` can trace its module.
    path : str or path-like, default=None
        Where to write the ``.onnx`` file; None writes nothing.
    opset : int, default=None
        Version of the ``ai.onnx`` operator set, at least 18 (the oldest the
        PyTorch exporter targets); None uses :data:`DEFAULT_OPSET` (20).
        The categorical lookups use ``ai.onnx.ml`` version 2.

    Returns
    -------
    model : onnx.ModelProto
        The checked model (also written to ``path`` when given).

    Raises
    ------
    ImportError
        If ``onnx`` or ``onnxscript`` is not installed (``pip install
        "skmtl[onnx]"``).
    ValueError
        If a categorical column's categories are not strings, bools,
        integers or floats, the feature and task names are not unique, or a
        task had fewer than two classes in fit (it was not trained).
    RuntimeError
        If PyTorch cannot trace the network (user-defined modules).

    Notes
    -----
    Outputs are float32; the network runs in float32 as in ``predict_proba``
    and the probability head in float64 before the final cast, so the
    differences to ``predict_proba`` are of the order of 1e-7. Check an
    export with :func:`onnx_inputs` and onnxruntime::

        import onnxruntime as ort
        session = ort.InferenceSession(model.SerializeToString())
        proba = session.run(None, onnx_inputs(clf, X))   # one array per task

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from skmtl import MultiTaskClassifier
    >>> from skmtl.export import to_onnx
    >>> X = pd.DataFrame({"city": ["a", "b"] * 50, "age": np.arange(100.0)})
    >>> y = pd.DataFrame({"click": [0, 1] * 50, "buy": [0, 0, 1, 1] * 25})
    >>> clf = MultiTaskClassifier(max_iter=1, random_state=0).fit(X, y)
    >>> model = to_onnx(clf)  # doctest: +SKIP
    >>> [i.name for i in model.graph.input], [o.name for o in model.graph.output]  # doctest: +SKIP
    (['city', 'age'], ['click', 'buy'])
    """
    try:
        import onnx
        import onnxscript  # noqa: F401  (the torch.export-based exporter needs it)
        from onnx import TensorProto, helper, numpy_helper
    except ImportError as exc:
        raise ImportError(
            f"to_onnx needs the onnx and onnxscript packages ({exc}); install them with "
            "pip install 'skmtl[onnx]'."
        ) from None
    if not isinstance(estimator, (MultiTaskClassifier, MultiTaskRegressor)):
        raise TypeError(
            "to_onnx exports a MultiTaskClassifier or MultiTaskRegressor; got "
            f"{type(estimator).__name__}."
        )
    check_is_fitted(estimator)
    if opset is None:
        opset = DEFAULT_OPSET
    if isinstance(opset, bool) or not isinstance(opset, (int, np.integer)) or opset < MIN_OPSET:
        raise ValueError(f"opset must be an integer >= {MIN_OPSET}; got {opset!r}.")
    opset = int(opset)

    _check_exportable(estimator)
    columns = _columns(estimator)
    task_names = _output_names(estimator, columns)

    net = _export_network(estimator, opset)
    net = onnx.compose.add_prefix(net, _PREFIX + "net/")
    graph = net.graph  # inputs skmtl/net/x_<kind>: the front end's outputs
    # One name for the batch axis everywhere: the inputs' "N".
    batch_names = {graph.input[i].type.tensor_type.shape.dim[0].dim_param
                   for i in range(len(graph.input))} - {""}
    for info in [*graph.input, *graph.output, *graph.value_info]:
        for dim in info.type.tensor_type.shape.dim:
            if dim.dim_param in batch_names:
                dim.dim_param = "N"

    nodes, initializers, inputs = _front_end(estimator, columns, helper, numpy_helper, TensorProto)
    outputs = []
    for name, internal, width in zip(task_names, graph.output, _output_widths(estimator)):
        graph.node.append(helper.make_node("Identity", [internal.name], [name]))
        outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", width]))

    merged = helper.make_graph(
        nodes + list(graph.node),
        "skmtl_multitask_classifier",
        inputs,
        outputs,
        initializer=initializers + list(graph.initializer),
        value_info=list(graph.value_info),
    )
    opsets = {o.domain: o.version for o in net.opset_import}
    opsets.setdefault("", opset)
    if any(node.domain == "ai.onnx.ml" for node in nodes):
        opsets.setdefault("ai.onnx.ml", ML_OPSET)
    model = helper.make_model(
        merged,
        opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()],
        ir_version=net.ir_version,
        producer_name="skmtl",
        functions=list(net.functions),
    )
    from . import __version__

    model.producer_version = __version__
    regressor = isinstance(estimator, MultiTaskRegressor)
    model.doc_string = (
        f"skmtl {type(estimator).__name__}: raw feature columns in, one "
        f"{'prediction (N, 1), in the targets units,' if regressor else 'probability'} tensor "
        "per task out."
    )
    metadata = {
        "skmtl.task_names": task_names,
        "skmtl.estimator": type(estimator).__name__,
        "skmtl.inputs": [
            {"name": c.name, "kind": c.kind, "type": c.onnx_type, **({"width": c.width} if c.width != 1 else {})}
            for c in columns
        ],
        "skmtl.funnel": [task_names[t] for t in getattr(estimator, "funnel_", [])],
        "skmtl.architecture": str(type(estimator.module_.body).__name__),
    }
    if regressor:
        metadata["skmtl.losses"] = dict(zip(task_names, estimator.loss_))
    else:
        classes = classes_per_task(estimator.classes_)
        metadata["skmtl.classes"] = {n: _jsonable(c) for n, c in zip(task_names, classes)}
    helper.set_model_props(model, {k: json.dumps(v) for k, v in metadata.items()})
    onnx.checker.check_model(model, full_check=True)
    if path is not None:
        onnx.save_model(model, os.fspath(path))
    return model
