"""Model files that are safe to open: JSON for the description, tensors for the weights.

A model file is one zip archive holding three members:

``model.json``
    A plain JSON document: the constructor parameters, every fitted attribute
    (feature names, categorical vocabularies with their dtypes, continuous
    mean/scale, classes of each task with their dtype, loss curves, ...), the
    description of the network recorded at fit time (``network_spec_``:
    architecture, table sizes, outputs per task and the architecture's
    resolved arguments) and the skmtl, torch, scikit-learn, numpy and pandas
    versions that wrote it.
``weights.pt``
    ``torch.save`` of the module's CPU ``state_dict``; it is read back with
    ``torch.load(..., weights_only=True)``, which unpickles tensors and plain
    containers only.
``checksums.json``
    The SHA-256 of both members and, when a key was given, an HMAC-SHA256 of
    those digests.

Why one zip and not a directory: a model is then one file to copy, upload or
attach; it is written to a temporary file and renamed into place, so a reader
never sees half a model; and zip's own CRC-32 is a second corruption check.

Nothing in the file is ever imported or called: values are decoded into
numbers, strings, lists, dicts, numpy arrays, pandas indexes and torch tensors
only; the few skmtl objects inside a fitted estimator (the column encoder, the
training objective) are rebuilt from a fixed list of classes, built-in
architectures come from :data:`skmtl.nn.ARCHITECTURES`, and a user-defined
architecture must be handed to :func:`load_model` by the caller.

JSON values that plain JSON cannot say are written as one-key objects whose
key starts with ``$`` (``{"$tuple": [...]}``, ``{"$ndarray": {...}}``,
``{"$float": "nan"}``, ...).
"""

from __future__ import annotations

import hashlib
import hmac
import inspect
import io
import json
import math
import os
import platform
import re
import tempfile
import zipfile
import zlib
from numbers import Integral

import numpy as np
import pandas as pd
import sklearn
import torch
from sklearn.utils.validation import check_is_fitted

from ._classifier import MultiTaskClassifier
from ._column_kinds import COLUMN_KINDS
from ._encoding import TabularEncoder
from ._network_spec import (
    build_from_spec,
    check_network_spec,
    spec_from_format_1,
    spec_from_format_2,
)
from ._regression import RegressionObjective
from ._regressor import MultiTaskRegressor
from ._sequence_columns import with_din_attention
from ._targets import restored_label_order, stored_label_order
from .losses import MultiTaskObjective
from .metrics import _MultiTaskScorer
from .nn.architectures import ARCHITECTURES

FORMAT = "skmtl-model"
FORMAT_VERSION = 3
"""Version 3 stores the column encoder as a list of column kinds and names the
embedding's tensors after them (``embedding.kinds.categorical.weight``); version 2
(skmtl 0.1, from 2026-11-29) stored ``network_spec_`` with ``cardinalities`` and
``n_continuous``; version 1 the estimator's flat hyperparameters (``params``). Both
are still read (:func:`_upgrade_document`)."""
MODEL_JSON, WEIGHTS, CHECKSUMS = "model.json", "weights.pt", "checksums.json"
MAX_JSON_BYTES = 1 << 30
"""``model.json`` and ``checksums.json`` larger than this (1 GiB) are refused unread."""

# skmtl objects a fitted estimator holds (and skmtl.metrics scorers, which ``scoring``
# may be), rebuilt by class name from this table (and the registered column kinds,
# :func:`_object_classes`) only.
_OBJECTS = {
    "TabularEncoder": TabularEncoder,
    "MultiTaskObjective": MultiTaskObjective,
    "RegressionObjective": RegressionObjective,
    "_MultiTaskScorer": _MultiTaskScorer,
}
# The estimators a file may describe, by class name.
_ESTIMATORS = {cls.__name__: cls for cls in (MultiTaskClassifier, MultiTaskRegressor)}
# State that is not written as JSON: the module goes to weights.pt, the device is CPU on load.
# The optimiser's moments are training state, not model: a loaded model predicts
# exactly, and partial_fit after load_model starts a fresh Adam.
# network_spec_ is the "network" member of the document.
# A classifier's _label_order_ is its classes_ in a file (stored_label_order).
_NOT_IN_JSON = frozenset(
    # _monitored_scoring_: the scoring object a warm start compares with by identity; a
    # model file holds only scorings that are compared by name (strings, skmtl scorers).
    {"module_", "device_", "optimizer_", "network_spec_", "_label_order_", "_monitored_scoring_"}
)
_NUMPY_DTYPE = re.compile(r"^[<>|=]?[biufUO][0-9]*$")
_PANDAS_DTYPES = frozenset(
    {"object", "str", "string", "bool", "boolean", "float32", "float64", "Float32", "Float64"}
    | {f"{p}{b}" for p in ("int", "uint", "Int", "UInt") for b in (8, 16, 32, 64)}
)
_TORCH_DTYPES = {
    str(dt).removeprefix("torch."): dt
    for dt in (torch.float16, torch.float32, torch.float64, torch.int32, torch.int64, torch.bool)
}


# --------------------------------------------------------------------- public
def save_model(estimator, path, *, key=None) -> None:
    """Write a fitted :class:`MultiTaskClassifier` or :class:`MultiTaskRegressor` to a safe file.

    Use this to share a model, keep it for long, or load it where you do not
    control who wrote the file. :mod:`pickle`/:mod:`joblib` also work and keep
    any attribute, but unpickling runs code named in the file: only ever
    unpickle files from a trusted source, in the same environment (versions)
    that wrote them.

    Parameters
    ----------
    estimator : MultiTaskClassifier or MultiTaskRegressor
        A fitted estimator. The file stores its current parameters (as
        ``get_params`` gives them) and the network it was fitted with
        (``network_spec_``), so parameters changed with ``set_params`` after
        ``fit`` are kept as parameters and do not change the saved model.
    path : str or path-like
        File to write (replaced atomically if it exists). The extension is
        free; ``.skmtl`` is a good choice.
    key : bytes or str, default=None
        Secret for an HMAC-SHA256 signature. Without a key the file carries
        SHA-256 hashes only, which catch accidental corruption; anyone can
        recompute them after editing the file. With a key, :func:`load_model`
        given the same key detects any change made without it.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If ``estimator`` is not fitted.
    TypeError
        If it is not a :class:`MultiTaskClassifier` or a
        :class:`MultiTaskRegressor`, or holds a value a model file cannot
        store (the message names it), such as a ``scoring`` callable other
        than a :mod:`skmtl.metrics` scorer, or a user-defined module's buffer
        registered with ``persistent=False``.
    ValueError
        If ``module_`` is not the network ``network_spec_`` describes (it was
        replaced after ``fit``).

    See Also
    --------
    load_model : Read the file back.

    Notes
    -----
    Which to use:

    - :mod:`pickle`/:mod:`joblib`: short-lived copies you made yourself and
      reload with the same versions of skmtl, torch and scikit-learn (e.g.
      joblib workers, caches). Never unpickle a file you did not write.
    - :func:`save_model`/:func:`load_model`: models you share, publish, keep or
      receive. Loading executes nothing from the file, survives torch and
      scikit-learn upgrades, and is refused across skmtl major versions. Add
      a ``key`` when the file passes through hands you do not trust.

    Examples
    --------
    >>> import os, tempfile
    >>> import numpy as np
    >>> from skmtl import MultiTaskClassifier, load_model, save_model
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(100, 3))
    >>> y = np.column_stack([X[:, 0] > 0, X[:, 1] > 0]).astype(int)
    >>> clf = MultiTaskClassifier(max_iter=5, random_state=0).fit(X, y)
    >>> path = os.path.join(tempfile.mkdtemp(), "model.skmtl")
    >>> save_model(clf, path, key=b"secret")
    >>> restored = load_model(path, key=b"secret")
    >>> all(np.array_equal(a, b) for a, b in zip(clf.predict_proba(X), restored.predict_proba(X)))
    True
    """
    if type(estimator) not in _ESTIMATORS.values():
        raise TypeError(
            "save_model expects a MultiTaskClassifier or MultiTaskRegressor; got "
            f"{type(estimator).__name__}."
        )
    check_is_fitted(estimator)
    network = getattr(estimator, "network_spec_", None)
    if network is None:
        raise ValueError(
            "The estimator has no network_spec_ (it was pickled by an older skmtl after its "
            "parameters were changed, so its network cannot be described); refit it first."
        )
    _check_network_matches(estimator.module_, network)
    if not isinstance(network.get("architecture"), str):  # built-in blocks rebuild theirs
        _check_buffers_storable(estimator.module_.body)
    _check_scoring_storable(estimator.scoring)
    document = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "versions": _versions(),
        "estimator": type(estimator).__name__,
        "params": _to_json(estimator.get_params(deep=False), "params"),
        "network": _to_json(network, "network"),
        "fitted": {
            name: _to_json(value, name)
            for name, value in stored_label_order(vars(estimator)).items()
            if _is_fitted_name(name) and name not in _NOT_IN_JSON
        },
        "trained_on": str(estimator.device_),
    }
    model_json = json.dumps(document, allow_nan=False, ensure_ascii=False).encode("utf-8")
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu() for k, v in estimator.module_.state_dict().items()}, buffer)
    weights = buffer.getvalue()
    checksums = _checksums(model_json, weights, key)
    members = {CHECKSUMS: json.dumps(checksums).encode("utf-8"), MODEL_JSON: model_json}
    _write_archive(path, {**members, WEIGHTS: weights})


def load_model(path, *, key=None, module_class=None):
    """Read a model file written by :func:`save_model`, executing nothing from it.

    The members' SHA-256 hashes are checked, then (with ``key``) the
    HMAC-SHA256 signature; the weights are read with
    ``torch.load(weights_only=True)``; the network is rebuilt from the
    description in the file and must match the stored tensors key by key and
    shape by shape. Unlike :mod:`pickle`, opening a file from an untrusted
    source runs none of its content (it may still fail, or take memory in
    proportion to the file's size).

    Parameters
    ----------
    path : str or path-like
        The model file.
    key : bytes or str, default=None
        The secret given to :func:`save_model`. When given, the file must
        carry a valid signature made with it. Without a key the signature (if
        any) is not checked: the hashes then only detect accidental damage.
    module_class : callable, default=None
        The user-defined architecture (``nn.Module`` class or factory) the
        model was fitted with, when it is not a built-in one: a file only names
        it, and skmtl never imports names read from a file. Its module and
        qualified name must be the ones recorded in the file.

    Returns
    -------
    estimator : MultiTaskClassifier or MultiTaskRegressor
        A fitted estimator (of the class that was saved) on the CPU, whose
        ``predict_proba`` (a regressor's ``predict``) returns exactly what the
        saved one returned.

    Raises
    ------
    ValueError
        If the file is not a model file, is damaged or altered (hash, zip CRC
        or signature mismatch), was written by another major version of skmtl
        or a newer file format, or its weights do not fit the network it
        describes; if ``key`` is given and the file is unsigned or signed with
        another key; if the file names a user-defined architecture and
        ``module_class`` is missing or another class.

    See Also
    --------
    save_model : Write the file; its Notes say when to prefer it over pickle.
    """
    members = _read_archive(path)
    checksums = _parse_json(members[CHECKSUMS], CHECKSUMS)
    _verify_checksums(checksums, members[MODEL_JSON], members[WEIGHTS], key)
    document = _parse_json(members[MODEL_JSON], MODEL_JSON)
    _check_header(document)
    weights = members[WEIGHTS]
    try:
        weights = _upgrade_document(document, weights)
    except (AttributeError, KeyError, TypeError, ValueError, IndexError) as exc:
        if isinstance(exc, _FileError):
            raise
        raise _FileError(f"{MODEL_JSON} is malformed: {exc!r}") from None
    try:
        params = _from_json(document["params"], module_class)
        network = _from_json(document["network"], module_class)
        fitted = _from_json(document["fitted"], module_class)
    except (AttributeError, KeyError, TypeError, ValueError, OverflowError) as exc:
        if isinstance(exc, _FileError):
            raise
        raise _FileError(f"{MODEL_JSON} is malformed: {exc!r}") from None
    if not isinstance(fitted, dict) or not isinstance(network, dict):
        raise _FileError(f"{MODEL_JSON} lacks the fitted attributes or the network.")
    architecture = network.get("architecture")
    if isinstance(architecture, str) and architecture not in ARCHITECTURES:
        raise _FileError(
            f"{MODEL_JSON} names architecture {architecture!r}, which this skmtl does not "
            f"have (built-in: {sorted(ARCHITECTURES)})."
        )
    uses_module_class = not isinstance(architecture, str) or (
        isinstance(params, dict) and callable(params.get("architecture"))
    )
    if module_class is not None and not uses_module_class:
        raise ValueError(
            f"module_class was given, but the model uses the built-in architecture "
            f"{architecture!r}; leave module_class=None."
        )
    if isinstance(params, dict) and "continuous_projection" not in params:
        # Written before the parameter existed, by an skmtl that gave every column a token.
        params = {**params, "continuous_projection": "per_column"}
    if isinstance(params, dict) and "numeric_embedding" not in params:
        # Written before the parameter existed, by an skmtl whose columns entered linearly.
        params = {**params, "numeric_embedding": "linear"}
    if isinstance(params, dict) and "ema_epochs" not in params:
        # Written before the parameter existed, by an skmtl that kept the weights themselves.
        params = {**params, "ema_epochs": None}
    if isinstance(params, dict) and "attention_weights" not in params:
        # Written before the parameter existed, by an skmtl whose attention was DIN's.
        params = {**params, "attention_weights": "din"}
        network = with_din_attention(network)
    estimator = _rebuild_estimator(params, _ESTIMATORS[document["estimator"]])
    try:
        if document["format_version"] < 3:
            upgrade = spec_from_format_1 if document["format_version"] == 1 else spec_from_format_2
            network = upgrade(network)
        check_network_spec(network, type(estimator)._parameter_constraints, "network_spec_")
    except (AttributeError, KeyError, TypeError, ValueError, IndexError) as exc:
        raise _FileError(f"{MODEL_JSON} has a malformed network: {exc!r}") from None
    module = _rebuild_module(network, weights)
    for name, value in fitted.items():
        if not _is_fitted_name(name) or name in _NOT_IN_JSON or hasattr(type(estimator), name):
            raise _FileError(f"{MODEL_JSON} holds an unexpected attribute {name!r}.")
        setattr(estimator, name, value)
    # classes_ is stored in the training order (files of every version): sorted here.
    try:
        vars(estimator).update(restored_label_order(vars(estimator)))
    except (TypeError, ValueError) as exc:
        raise _FileError(f"{MODEL_JSON} has malformed classes_: {exc!r}") from None
    estimator.network_spec_ = network
    estimator.module_ = module
    estimator.device_ = torch.device("cpu")
    estimator.optimizer_ = None  # not stored; partial_fit starts a fresh Adam
    _check_consistent(estimator, network)
    return estimator


def _check_scoring_storable(scoring) -> None:
    """A file stores ``scoring`` as a string or a skmtl.metrics scorer; other code it cannot."""
    if callable(scoring) and type(scoring) is not _MultiTaskScorer:
        raise TypeError(
            f"scoring={scoring!r} is a callable that a model file cannot store (it stores "
            "'loss', a name of skmtl.metrics.get_scorer or a skmtl.metrics scorer). It only "
            "matters for training: set_params(scoring=...) to one of those before saving, or "
            "pickle the model."
        )


# ------------------------------------------------------------------- the file
class _FileError(ValueError):
    """A model file that is damaged, altered or not understood."""


def _check_buffers_storable(module) -> None:
    """Refuse buffers outside ``state_dict()`` (``persistent=False``): the file would lose them.

    ``load_model`` rebuilds the module by calling its class again, so such a
    buffer would come back with whatever the constructor draws (a random
    projection, for one) and the loaded model would predict differently.
    """
    stored = set(module.state_dict())
    lost = [name for name, _ in module.named_buffers() if name not in stored]
    if lost:
        raise TypeError(
            f"The user-defined module has buffers registered with persistent=False ({lost}), "
            "which a model file does not store: load_model would rebuild them anew and predict "
            "differently. Register them as persistent buffers (the default), or use pickle."
        )


def _write_archive(path, members: dict[str, bytes]) -> None:
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".skmtl-", suffix=".tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh, zipfile.ZipFile(fh, "w") as archive:
            for name, data in members.items():
                info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
                info.compress_type = zipfile.ZIP_STORED if name == WEIGHTS else zipfile.ZIP_DEFLATED
                archive.writestr(info, data)
        # mkstemp makes the file readable by its owner only; give it the mode a plain open()
        # would (the replaced file's, or 0o666 less the umask), so that others can load it.
        try:
            mode = os.stat(path).st_mode & 0o777
        except OSError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def _read_archive(path) -> dict[str, bytes]:
    with open(os.fspath(path), "rb") as fh:  # a missing file raises FileNotFoundError as usual
        try:
            with zipfile.ZipFile(fh) as archive:
                names = archive.namelist()
                if sorted(names) != sorted((CHECKSUMS, MODEL_JSON, WEIGHTS)):
                    raise _FileError(
                        f"{path!s} is not an skmtl model file: it holds {sorted(names)}, "
                        f"expected {sorted((CHECKSUMS, MODEL_JSON, WEIGHTS))}."
                    )
                for name in (CHECKSUMS, MODEL_JSON):
                    if archive.getinfo(name).file_size > MAX_JSON_BYTES:
                        raise _FileError(f"{name} is larger than {MAX_JSON_BYTES} bytes; refused.")
                return {name: archive.read(name) for name in names}
        except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, OSError) as exc:
            # Truncated, not a zip, a CRC-32 mismatch, a broken deflate stream, an unknown
            # compression method, or offsets pointing outside the file.
            raise _FileError(f"{path!s} is not a readable skmtl model file ({exc}).") from None


def _parse_json(data: bytes, name: str):
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, _FileError) as exc:
        raise _FileError(f"{name} is not valid JSON ({exc}).") from None


def _reject_constant(name):
    raise _FileError(f"non-standard JSON constant {name}")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _signature(key, model_sha: str, weights_sha: str) -> str:
    if isinstance(key, str):
        key = key.encode("utf-8")
    if not isinstance(key, (bytes, bytearray)) or not key:
        raise TypeError("key must be a non-empty bytes or str.")
    message = f"{FORMAT}\n{model_sha}\n{weights_sha}\n".encode("ascii")
    return hmac.new(bytes(key), message, hashlib.sha256).hexdigest()


def _checksums(model_json: bytes, weights: bytes, key) -> dict:
    model_sha, weights_sha = _sha256(model_json), _sha256(weights)
    return {
        "algorithm": "sha256",
        MODEL_JSON: model_sha,
        WEIGHTS: weights_sha,
        "hmac_sha256": None if key is None else _signature(key, model_sha, weights_sha),
    }


def _verify_checksums(checksums, model_json: bytes, weights: bytes, key) -> None:
    if not isinstance(checksums, dict) or checksums.get("algorithm") != "sha256":
        raise _FileError(f"{CHECKSUMS} is not understood: {checksums!r}.")
    for name, data in ((MODEL_JSON, model_json), (WEIGHTS, weights)):
        if checksums.get(name) != _sha256(data):
            raise _FileError(
                f"{name} does not match its SHA-256 in {CHECKSUMS}: the file is corrupted "
                "or was modified."
            )
    if key is None:
        return
    stored = checksums.get("hmac_sha256")
    if not isinstance(stored, str):
        raise _FileError(
            "A key was given but the file carries no HMAC signature (it was saved without "
            "a key, or the signature was removed)."
        )
    expected = _signature(key, checksums[MODEL_JSON], checksums[WEIGHTS])
    if not hmac.compare_digest(stored, expected):
        raise _FileError(
            "HMAC signature mismatch: the file was modified after it was signed, or the key "
            "is not the one it was saved with."
        )


def _versions() -> dict:
    from . import __version__

    return {
        "skmtl": __version__,
        "torch": torch.__version__,
        "sklearn": sklearn.__version__,
        "numpy": np.__version__,
        "pandas": pd.__version__,
        "python": platform.python_version(),
    }


def _major(version) -> str:
    return str(version).split(".", 1)[0]


def _check_header(document) -> None:
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise _FileError(f"{MODEL_JSON} does not describe an skmtl model.")
    version = document.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION or version < 1:
        raise _FileError(
            f"File format version {version!r} is not supported (this skmtl reads up to "
            f"{FORMAT_VERSION}); it was written by a newer skmtl."
        )
    from . import __version__

    versions = document.get("versions")
    saved = versions.get("skmtl") if isinstance(versions, dict) else None
    if _major(saved) != _major(__version__):
        raise _FileError(
            f"The model was saved by skmtl {saved} and this is skmtl {__version__}; model "
            f"files are read by the same major version only. Load it with skmtl "
            f"{_major(saved)}.x."
        )
    if document.get("estimator") not in _ESTIMATORS:
        raise _FileError(f"{MODEL_JSON} describes a {document.get('estimator')!r}.")


# ------------------------------------------------------------------ the model
def _is_fitted_name(name: str) -> bool:
    """Fitted state, by scikit-learn's convention: trailing ``_``, no dunder."""
    return name.endswith("_") and not name.startswith("__") and name.isidentifier()


def _skeleton(network: dict) -> torch.nn.Module:
    """The described network without memory (meta device), for shape checks."""
    try:
        return build_from_spec(network, "meta")
    except (KeyError, TypeError, ValueError, IndexError, OverflowError, RuntimeError) as exc:
        raise _FileError(
            f"{MODEL_JSON} describes a network that cannot be built: {exc!r}."
        ) from None


def _shape_mismatches(expected: dict, actual: dict) -> list[str]:
    problems = []
    missing, unexpected = sorted(set(expected) - set(actual)), sorted(set(actual) - set(expected))
    if missing:
        problems.append(f"missing tensors {missing}")
    if unexpected:
        problems.append(f"unexpected tensors {unexpected}")
    for name in sorted(set(expected) & set(actual)):
        want, got = expected[name], actual[name]
        if tuple(want.shape) != tuple(got.shape) or want.dtype != got.dtype:
            problems.append(
                f"{name!r} is {tuple(got.shape)} {got.dtype}, the network needs "
                f"{tuple(want.shape)} {want.dtype}"
            )
    return problems


def _check_network_matches(module: torch.nn.Module, network: dict) -> None:
    skeleton = _skeleton(network)
    problems = _shape_mismatches(skeleton.state_dict(), module.state_dict())
    if problems or repr(skeleton) != repr(module):
        raise ValueError(
            "The estimator's module_ is not the network its network_spec_ describes (was "
            "module_ replaced after fit?); refit before saving. " + "; ".join(problems)
        )


def _rebuild_module(network, weights: bytes) -> torch.nn.Module:
    try:
        state = torch.load(io.BytesIO(weights), weights_only=True, map_location="cpu")
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means a bad file
        raise _FileError(f"{WEIGHTS} cannot be read as tensors: {exc}") from None
    if not isinstance(state, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    ):
        raise _FileError(f"{WEIGHTS} is not a state_dict of named tensors.")
    # Shapes are compared on the meta device first: a description that does not
    # fit the stored tensors is refused before any memory is allocated for it.
    problems = _shape_mismatches(_skeleton(network).state_dict(), state)
    if problems:
        raise _FileError(
            f"{WEIGHTS} does not fit the network described in {MODEL_JSON}: "
            + "; ".join(problems)
            + "."
        )
    module = build_from_spec(network, "cpu")
    module.load_state_dict(state)
    return module.eval()


def _rebuild_estimator(params, cls):
    if not isinstance(params, dict):
        raise _FileError(f"{MODEL_JSON} has no parameter dict.")
    known = cls().get_params(deep=False)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise _FileError(f"{MODEL_JSON} holds unknown parameters {unknown}.")
    estimator = cls(**params)
    estimator._validate_params()
    return estimator


def _recorded_embedding(embedding: str, entry: dict) -> str:
    """The numeric embedding a continuous entry records for a fitted ``embedding``.

    A joint projection records none (its map is linear), and neither does
    ``"auto"`` without a heavy-tailed column.
    """
    return "linear" if embedding == "auto" and "embedding" not in entry else embedding


def _check_consistent(estimator, network: dict) -> None:
    """Cross-checks between the JSON's parts that a well-formed file always passes."""
    encoder = getattr(estimator, "encoder_", None)
    if not isinstance(encoder, TabularEncoder):
        raise _FileError(f"{MODEL_JSON} has no column encoder.")
    try:
        check_is_fitted(estimator)
        encoder.check_kinds()
        entries = network["embeddings"]
        categorical, continuous = entries[0], entries[1]
        consistent = (
            estimator.n_features_in_ == encoder.n_features
            and [kind.name for kind in encoder.kinds] == [entry["kind"] for entry in entries]
            and list(encoder.cardinalities) == list(categorical["cardinalities"])
            and len(encoder.continuous.mean_) == len(encoder.continuous.scale_)
            == continuous["n_columns"] == len(encoder.continuous_indices)
            and _recorded_embedding(encoder.continuous.embedding, continuous)
            == continuous.get("embedding", "linear")
            and (encoder.continuous.embedding != "auto" or "projection" in continuous
                 or list(encoder.continuous.periodic_columns_)
                 == continuous.get("periodic_columns", []))
            and (encoder.continuous.embedding != "piecewise_linear"
                 or len(encoder.continuous.bins_) == len(continuous["bins"]))
        )
    except Exception as exc:  # noqa: BLE001 - any failure here means a bad file
        raise _FileError(f"{MODEL_JSON} is incomplete: {exc}") from None
    if not consistent:
        raise _FileError(
            f"{MODEL_JSON} is inconsistent: the encoder, the feature count and the "
            "network description disagree."
        )
    # A last, generic check: one typical row (see ColumnKind.probe_values) must predict.
    if isinstance(estimator, MultiTaskRegressor):
        try:
            predicted = estimator.predict(_probe_row(estimator)).reshape(1, -1)
        except Exception as exc:  # noqa: BLE001 - whatever fails, the file is unusable
            raise _FileError(f"The model in {MODEL_JSON} cannot predict: {exc!r}") from None
        trained = np.asarray(estimator._trained_tasks_, dtype=bool)
        valid = np.all(np.isfinite(predicted[0, trained]))
        if predicted.shape[1] != estimator.n_outputs_ or not valid:
            raise _FileError(f"The model in {MODEL_JSON} predicts invalid values.")
        return
    try:
        proba = estimator.predict_proba(_probe_row(estimator))
        proba = proba if isinstance(proba, list) else [proba]
        valid = len(proba) == estimator.n_outputs_ and all(
            # (a task without any class in fit predicts no column)
            np.all(np.isfinite(p)) and (p.shape[1] == 0 or np.allclose(p.sum(axis=1), 1.0))
            for p in proba
        )
    except Exception as exc:  # noqa: BLE001 - whatever fails, the file is unusable
        raise _FileError(f"The model in {MODEL_JSON} cannot predict: {exc!r}") from None
    if not valid:
        raise _FileError(f"The model in {MODEL_JSON} predicts invalid probabilities.")


def _probe_row(estimator):
    """One input row of typical values: unknown categories, training means, ..."""
    row = np.empty((1, estimator.encoder_.n_features), dtype=object)
    for kind in estimator.encoder_.kinds:
        row[0, kind.columns] = kind.probe_values()
    names = getattr(estimator, "feature_names_in_", None)
    return row if names is None else pd.DataFrame(row, columns=names)


def _object_classes() -> dict:
    """The classes a file may name in ``$object``: the fixed table and the registered kinds."""
    return {**{cls.__name__: cls for cls in COLUMN_KINDS.values()}, **_OBJECTS}


# ------------------------------------------------------------- older formats
_EMBEDDING_TENSORS_BEFORE_3 = {
    "embedding.offsets": "embedding.kinds.categorical.offsets",
    "embedding.categorical_weight": "embedding.kinds.categorical.weight",
    "embedding.continuous_weight": "embedding.kinds.continuous.weight",
    "embedding.continuous_bias": "embedding.kinds.continuous.bias",
}


def _upgrade_document(document: dict, weights: bytes) -> bytes:
    """Bring a file of format 1 or 2 to format 3 (in place); returns the weights to load.

    The encoder's state (``is_categorical``, ``min_frequency``,
    ``max_categories``, ``vocabularies_``, ``mean_``, ``scale_``) becomes its
    two built-in kinds, and the embedding's tensors get their format-3 names.
    The network description is upgraded by :func:`spec_from_format_1` or
    :func:`spec_from_format_2`.
    """
    if document["format_version"] >= 3:
        return weights
    encoder = document["fitted"]["encoder_"]["$object"]
    if encoder["class"] != "TabularEncoder":
        raise _FileError(f"{MODEL_JSON} has no column encoder.")
    old = encoder["state"]
    is_categorical = np.asarray(_from_json(old["is_categorical"]), dtype=bool)

    def kind(cls, columns, **state):
        state = {"columns": _to_json(np.flatnonzero(columns).astype(np.int64), "columns"), **state}
        return {"$object": {"class": cls, "state": state}}

    encoder["state"] = {
        "kinds": [
            kind("CategoricalColumns", is_categorical, min_frequency=old["min_frequency"],
                 max_categories=old["max_categories"], vocabularies_=old["vocabularies_"]),
            kind("ContinuousColumns", ~is_categorical, mean_=old["mean_"], scale_=old["scale_"]),
        ],
        "feature_names": old["feature_names"],
    }
    try:
        state = torch.load(io.BytesIO(weights), weights_only=True, map_location="cpu")
    except Exception:  # noqa: BLE001 - reported as such by _rebuild_module
        return weights
    if not isinstance(state, dict):
        return weights
    state = {_EMBEDDING_TENSORS_BEFORE_3.get(name, name): value for name, value in state.items()}
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


# ------------------------------------------------------------- JSON encoding
def _scalar(value, where: str):
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.generic):
        return _scalar(value.item(), where)
    if isinstance(value, Integral):
        return int(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else {"$float": repr(value)}
    raise TypeError(
        f"{where}: a model file cannot store a value of type {type(value).__name__} "
        f"({value!r})."
    )


def _callable_name(obj) -> str:
    qualname = getattr(obj, "__qualname__", None)
    if qualname is None:
        raise TypeError(f"architecture {obj!r} has no __qualname__; use a class or a function.")
    if "<lambda>" in qualname or "<locals>" in qualname:
        # load_model could not tell one lambda (or one class made in a function) from another
        raise TypeError(
            f"architecture {qualname!r} is a lambda or is defined inside a function, which a "
            "model file cannot name; define it at a module's top level (or use pickle)."
        )
    return f"{getattr(obj, '__module__', '?')}.{qualname}"


def _to_json(value, where: str):
    """``value`` as JSON, tagging what plain JSON cannot say (see the module docstring)."""
    if isinstance(value, (list, tuple)):
        items = [_to_json(v, f"{where}[{i}]") for i, v in enumerate(value)]
        return items if isinstance(value, list) else {"$tuple": items}
    if isinstance(value, dict):
        if all(isinstance(k, str) and not k.startswith("$") for k in value):
            return {k: _to_json(v, f"{where}[{k!r}]") for k, v in value.items()}
        pairs = [[_to_json(k, where), _to_json(v, f"{where}[{k!r}]")] for k, v in value.items()]
        return {"$dict": pairs}
    if isinstance(value, pd.Index):
        dtype = str(value.dtype)
        if dtype not in _PANDAS_DTYPES:
            raise TypeError(f"{where}: a model file cannot store a pandas Index of dtype {dtype}.")
        return {"$index": {"dtype": dtype, "data": [_scalar(v, where) for v in value]}}
    if isinstance(value, np.ndarray):
        if not _NUMPY_DTYPE.match(value.dtype.str):
            raise TypeError(f"{where}: a model file cannot store an array of dtype {value.dtype}.")
        data = [_scalar(v, where) for v in value.ravel().tolist()]
        return {"$ndarray": {"dtype": value.dtype.str, "shape": list(value.shape), "data": data}}
    if isinstance(value, torch.Tensor):
        dtype = str(value.dtype).removeprefix("torch.")
        if dtype not in _TORCH_DTYPES:
            raise TypeError(f"{where}: a model file cannot store a tensor of dtype {dtype}.")
        data = [_scalar(v, where) for v in value.detach().cpu().reshape(-1).tolist()]
        return {"$tensor": {"dtype": dtype, "shape": list(value.shape), "data": data}}
    if isinstance(value, np.random.RandomState):
        name, keys, pos, has_gauss, cached = value.get_state()
        return {"$RandomState": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]}
    if _object_classes().get(type(value).__name__) is type(value):
        state = {k: _to_json(v, f"{where}.{k}") for k, v in vars(value).items()}
        return {"$object": {"class": type(value).__name__, "state": state}}
    if callable(value) and not isinstance(value, np.ndarray):
        return {"$callable": _callable_name(value)}
    return _scalar(value, where)


def _from_json(value, module_class=None):
    """Inverse of :func:`_to_json`; builds plain values only."""
    if isinstance(value, list):
        return [_from_json(v, module_class) for v in value]
    if not isinstance(value, dict):
        return value
    tags = [k for k in value if k.startswith("$")]
    if not tags:
        return {k: _from_json(v, module_class) for k, v in value.items()}
    if len(value) != 1 or tags[0] not in _DECODERS:
        raise _FileError(f"unknown tagged value {sorted(value)} in {MODEL_JSON}.")
    tag = tags[0]
    return _DECODERS[tag](value[tag], module_class)


def _decode_float(text, _):
    if text not in ("nan", "inf", "-inf"):
        raise _FileError(f"bad float {text!r}")
    return float(text)


def _decode_scalars(data, module_class) -> list:
    values = [_from_json(v, module_class) for v in data]
    if not all(v is None or isinstance(v, (bool, int, float, str)) for v in values):
        raise _FileError("array data must be scalars")
    return values


def _decode_ndarray(spec, module_class):
    dtype = spec["dtype"]
    if not isinstance(dtype, str) or not _NUMPY_DTYPE.match(dtype):
        raise _FileError(f"array dtype {dtype!r} is not allowed")
    dtype, shape = np.dtype(dtype), tuple(int(s) for s in spec["shape"])
    values = _decode_scalars(spec["data"], module_class)
    if math.prod(shape) != len(values):
        raise _FileError(f"array of shape {shape} with {len(values)} values")
    if dtype.kind == "O":
        array = np.empty(len(values), dtype=object)
        array[:] = values
    else:
        array = np.array(values, dtype=dtype)
    return array.reshape(shape)


def _decode_index(spec, module_class):
    dtype = spec["dtype"]
    if dtype not in _PANDAS_DTYPES:
        raise _FileError(f"Index dtype {dtype!r} is not allowed")
    index = pd.Index(_decode_scalars(spec["data"], module_class), dtype=dtype)
    if str(index.dtype) != dtype:
        raise _FileError(f"Index of dtype {dtype} came back as {index.dtype}")
    return index


def _decode_tensor(spec, module_class):
    dtype = _TORCH_DTYPES[spec["dtype"]]
    shape = tuple(int(s) for s in spec["shape"])
    values = _decode_scalars(spec["data"], module_class)
    if math.prod(shape) != len(values):
        raise _FileError(f"tensor of shape {shape} with {len(values)} values")
    return torch.tensor(values, dtype=dtype).reshape(shape)


def _decode_random_state(spec, _):
    name, keys, pos, has_gauss, cached = spec
    if name != "MT19937":
        raise _FileError(f"unknown bit generator {name!r}")
    random_state = np.random.RandomState()
    random_state.set_state((name, np.asarray(keys, dtype=np.uint32), pos, has_gauss, cached))
    return random_state


def _decode_object(spec, module_class):
    cls = _object_classes()[spec["class"]]
    state = {k: _from_json(v, module_class) for k, v in spec["state"].items()}
    accepted = inspect.signature(cls).parameters
    obj = cls(**{k: v for k, v in state.items() if k in accepted})
    for name, value in state.items():
        if name in accepted:
            continue
        if not _is_fitted_name(name) or hasattr(cls, name):
            raise _FileError(f"unexpected {cls.__name__} attribute {name!r}")
        setattr(obj, name, value)
    return obj


def _decode_callable(name, module_class):
    if module_class is None:
        raise _FileError(
            f"The model was fitted with the user-defined architecture {name!r}. skmtl never "
            "imports names read from a file: pass that class as load_model(..., "
            "module_class=...)."
        )
    given = _callable_name(module_class)
    if given != name:
        raise _FileError(
            f"module_class is {given!r} but the model was fitted with {name!r}."
        )
    return module_class


_DECODERS = {
    "$float": _decode_float,
    "$tuple": lambda items, mc: tuple(_from_json(items, mc)),
    "$dict": lambda pairs, mc: {_from_json(k, mc): _from_json(v, mc) for k, v in pairs},
    "$ndarray": _decode_ndarray,
    "$index": _decode_index,
    "$tensor": _decode_tensor,
    "$RandomState": _decode_random_state,
    "$object": _decode_object,
    "$callable": _decode_callable,
}
