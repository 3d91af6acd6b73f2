"""Multi-task targets: labels -> class indices with -1 for unknown labels.

``y`` is 1-D (one task) or 2-D ``(n_samples, n_tasks)``, an array or a pandas
object (a polars or pyarrow frame is read as its pandas conversion,
:func:`skmtl._frames.as_pandas`). Each task is binary or multiclass with int,
bool or string labels. A missing label (NaN, None, ``pd.NA`` or a polars
null) means "unknown for this task".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sklearn.utils.multiclass import check_classification_targets

from ._distributed import SingleProcess
from ._frames import as_pandas, value_kinds

UNKNOWN = -1
"""Code of a missing label."""


@dataclass
class Targets:
    """Encoded targets.

    Attributes
    ----------
    codes : ndarray of int64 of shape (n_samples, n_tasks)
        Index into ``classes[t]``, or -1 where the label is unknown.
    classes : list of ndarray
        Sorted classes of each task.
    task_names : list of str
        DataFrame column names, a Series name, or ``task_0``, ``task_1``, ...
        (pandas and polars alike; an unnamed Series is ``task_0``).
    one_dimensional : bool
        True when ``y`` was 1-D (a single task).
    funnel : list of int
        Task indices of the funnel, in order (empty without one); set by
        the estimator once the funnel is resolved.
    task_weights, logit_offsets : ndarray of shape (n_tasks,) or None
        The loss's task weights and the negative-sampling logit offsets, set
        by the estimator from its parameters.
    """

    codes: np.ndarray
    classes: list[np.ndarray]
    task_names: list[str]
    one_dimensional: bool
    funnel: list[int] = field(default_factory=list)
    task_weights: np.ndarray | None = None
    logit_offsets: np.ndarray | None = None

    @property
    def known(self) -> np.ndarray:
        """Which labels are known, ``(n_samples, n_tasks)`` bool."""
        return self.codes >= 0

    @property
    def n_outputs(self) -> list[int]:
        """Logits per task: one per class with three or more, else one.

        A task with fewer than two classes (:func:`untrainable_tasks`) keeps a
        binary head that is never trained or read.
        """
        return [len(c) if len(c) > 2 else 1 for c in self.classes]


def _series_values(series: pd.Series) -> np.ndarray:
    """Labels of a pandas column; nullable (extension) dtypes keep their value type.

    ``Int64``/``boolean``/``string`` columns with ``pd.NA`` become object arrays
    (later unboxed to int/bool/str), not floats with NaN.
    """
    if pd.api.types.is_extension_array_dtype(series.dtype) and not isinstance(
        series.dtype, pd.CategoricalDtype
    ):
        return series.to_numpy(dtype=object)
    return series.to_numpy()


def task_columns(y) -> tuple[list[np.ndarray], list[str], bool]:
    """Split ``y`` into one 1-D array per task, with task names and 1-D flag."""
    if y is None:
        raise ValueError(
            "This estimator requires y to be passed, but the target y is None."
        )
    y = as_pandas(y)
    if isinstance(y, pd.DataFrame):
        names = [str(c) for c in y.columns]
        if len(set(names)) < len(names):
            repeated = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(
                f"y's columns name tasks, and {repeated} name more than one (as strings); give "
                "each task its own column name."
            )
        return [_series_values(y.iloc[:, t]) for t in range(y.shape[1])], names, False
    if isinstance(y, pd.Series):
        name = "task_0" if y.name is None else str(y.name)
        return [_series_values(y)], [name], True
    if hasattr(y, "toarray") or hasattr(y, "tocsr"):
        raise TypeError("Sparse y is not supported; pass a dense array or a DataFrame.")
    y = np.asarray(y)
    if y.ndim == 1:
        return [y], ["task_0"], True
    if y.ndim != 2:
        raise ValueError(f"y must be 1-D or 2-D (n_samples, n_tasks); got shape {y.shape}.")
    return [y[:, t] for t in range(y.shape[1])], [f"task_{t}" for t in range(y.shape[1])], False


def misnamed_tasks(y, fitted_names) -> list[str] | None:
    """y's task names where y names its tasks otherwise than ``fitted_names``, else None.

    Tasks are matched by position; only a DataFrame of several tasks names
    them, and then its names must be the fitted ones in the fitted order (a
    reordered ``y`` would silently score or train each head on another task).
    A model fitted without task names (an array ``y``: ``task_0``,
    ``task_1``, ...) takes any names but its own at another position.
    """
    if not isinstance(as_pandas(y), pd.DataFrame):
        return None
    names = task_columns(y)[1]
    fitted = [str(name) for name in fitted_names]
    if len(names) <= 1 or names == fitted:
        return None
    if fitted == [f"task_{t}" for t in range(len(fitted))]:  # fitted without names
        moved = [name for t, name in enumerate(names) if name in fitted and fitted.index(name) != t]
        return names if moved else None
    return names


def check_scored_tasks(y, fitted_names) -> None:
    """Refuse a ``y`` to score whose column names are not the fitted tasks in the fitted order."""
    names = misnamed_tasks(y, fitted_names)
    if names is not None:
        fitted = [str(name) for name in fitted_names]
        raise ValueError(
            f"y's columns must be the fitted tasks in the fitted order to score them: fitted "
            f"{fitted}, got {names}. Select and order them as fitted (y[{fitted}])."
        )


def _missing(values: np.ndarray) -> np.ndarray:
    return np.asarray(pd.isna(values), dtype=bool)


_UNBOXED = {"integer": np.int64, "floating": np.float64, "mixed-integer-float": np.float64,
            "boolean": np.bool_, "string": object}


def unbox_labels(known: np.ndarray, name: str) -> np.ndarray:
    """Object labels (e.g. from a nullable pandas column) as a plain numpy dtype."""
    if known.size == 0:  # a task without a known label here: nothing to unbox
        return known.astype(np.float64)
    inferred = pd.api.types.infer_dtype(known, skipna=False)
    if inferred not in _UNBOXED:
        kinds = sorted({type(v).__name__ for v in known})
        raise ValueError(
            f"Task {name!r} has labels of mixed or unsupported types ({', '.join(kinds)}); "
            "use one type per task (ints, bools or strings)."
        )
    return known.astype(_UNBOXED[inferred])


def observed_classes(values: np.ndarray, missing: np.ndarray, name: str) -> np.ndarray:
    """Sorted distinct known labels of one task (possibly none)."""
    known = values[~missing]
    if known.dtype.kind == "f" and not np.isfinite(known).all():
        raise ValueError(f"Task {name!r}: y contains infinity; labels must be class values.")
    if known.size == 0:
        return known
    if known.dtype == object:
        known = unbox_labels(known, name)
    check_classification_targets(known)
    return np.unique(known)


def _union_classes(parts: list[np.ndarray], name: str) -> np.ndarray:
    """Classes of one task seen by several processes, merged."""
    parts = [p for p in parts if p.size]
    if not parts:
        return np.empty(0)
    if len({p.dtype.kind in "OSU" for p in parts}) > 1:
        kinds = sorted({str(p.dtype) for p in parts})
        raise ValueError(
            f"Task {name!r} has labels of different types on different processes "
            f"({', '.join(kinds)}); use one type per task."
        )
    return np.unique(np.concatenate(parts))


def declared_classes(values) -> np.ndarray:
    """A task's classes as declared to ``partial_fit``: sorted, without missing values.

    NaN/None marks an unknown label, never a class (``np.unique`` of a label
    array with NaN, as scikit-learn's ``learning_curve`` passes, holds one).
    """
    values = np.asarray(values)
    values = values[~_missing(values)]
    if values.dtype == object and values.size:
        values = unbox_labels(values, "classes")
    return np.unique(values)


def class_indices(task_classes: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Each label's index among ``task_classes``, -1 where it is none of them.

    Bools and the numbers 0 and 1 are the same labels (as in scikit-learn's
    metrics and ``np.unique``): labels of another numeric or bool dtype than
    the classes are compared after a cast that must give them back exactly.
    """
    task_classes, labels = np.asarray(task_classes), np.asarray(labels)
    if labels.dtype == object and labels.size:
        try:
            labels = unbox_labels(labels, "y")
        except ValueError:  # mixed types: looked up as they are
            pass
    index = pd.Index(task_classes)
    if (labels.dtype != task_classes.dtype and labels.dtype.kind in "biuf"
            and task_classes.dtype.kind in "biuf"):
        with np.errstate(invalid="ignore"):
            cast = labels.astype(task_classes.dtype)
            exact = cast.astype(labels.dtype) == labels
        return np.where(exact, index.get_indexer(cast), -1)
    return index.get_indexer(labels)


def _codes_in_classes(columns, missing, names, classes) -> np.ndarray:
    """Codes of ``y`` under declared ``classes``; a label outside them raises."""
    codes = np.full((len(columns[0]), len(columns)), UNKNOWN, dtype=np.int64)
    for t, (values, unknown, name) in enumerate(zip(columns, missing, names)):
        task_classes = np.asarray(classes[t])
        known = values[~unknown]
        index = class_indices(task_classes, known)
        if np.any(index < 0):
            unseen = pd.unique(known[index < 0])[:5].tolist()
            raise ValueError(
                f"Task {name!r} has labels {unseen} that are not among its classes "
                f"{task_classes.tolist()}; declare every class in the first partial_fit call."
            )
        codes[~unknown, t] = index
    return codes


def fit_targets(
    y, classes: list[np.ndarray] | None = None, group=None, *, allow_single_class=False
) -> Targets:
    """Learn each task's classes (or use the given ``classes``) and encode ``y``.

    With ``classes`` (e.g. in ``partial_fit``), every known label must be one
    of them, and a task may show a single class or none in this ``y``. With
    ``allow_single_class``, a task whose known labels hold one class or none
    gets those classes (the caller decides what to do with it, see
    :func:`untrainable_tasks`).

    ``group`` (a :class:`~skmtl._distributed.ProcessGroup`, for data-parallel
    fits): the classes are the union of all processes' labels, so one
    process's shard may miss a class; an error on any process is raised on
    all of them.

    Raises
    ------
    ValueError
        For continuous or multilabel-within-task labels, infinite values, a
        task with no known label, or a task with a single class.
    """
    group = SingleProcess() if group is None else group
    local: dict = {}
    # compared between processes as sets of values (0 and 0.0 alike; the order may differ)
    declared = None if classes is None else [
        set(pd.Series(np.asarray(c, dtype=object)).dropna().tolist()) for c in classes
    ]

    def inspect():
        """This process's part: its task columns, and its codes or its classes."""
        columns, names, one_dimensional = task_columns(y)
        if not columns:
            raise ValueError("y has 0 tasks (columns); at least one task is required.")
        if classes is not None and len(classes) != len(columns):
            raise ValueError(
                f"y has {len(columns)} task(s) but classes describes {len(classes)}."
            )
        missing = [_missing(values) for values in columns]
        local.update(columns=columns, missing=missing)
        if classes is not None:
            local["codes"] = _codes_in_classes(columns, missing, names, classes)
            return names, one_dimensional, None
        observed = [
            observed_classes(values, unknown, name)
            for values, unknown, name in zip(columns, missing, names)
        ]
        return names, one_dimensional, observed

    shards = group.share(lambda: (*inspect(), declared))
    names, one_dimensional, _, _ = shards[group.rank]
    for rank, (other_names, other_1d, _, other_declared) in enumerate(shards):
        if other_names != names or other_1d != one_dimensional:
            raise ValueError(
                "Every process of a distributed fit must pass y with the same tasks; "
                f"got {other_names} and {names}."
            )
        if other_declared != shards[0][3]:  # one set of outputs: the full sets, everywhere
            raise ValueError(
                "Every process of a distributed fit must have the same partial_fit classes "
                f"(each task's full set); rank {rank} has {other_declared} but rank 0 has "
                f"{shards[0][3]}."
            )
    if classes is not None:
        return Targets(local["codes"], [np.asarray(c) for c in classes], names, one_dimensional)
    observed = [
        _union_classes([shard[2][t] for shard in shards], name) for t, name in enumerate(names)
    ]
    if not allow_single_class:
        for task_classes, name in zip(observed, names):
            check_trainable(task_classes, name)

    def encode() -> np.ndarray:
        columns, missing = local["columns"], local["missing"]
        codes = np.full((len(columns[0]), len(columns)), UNKNOWN, dtype=np.int64)
        for t, (values, unknown, name) in enumerate(zip(columns, missing, names)):
            known = values[~unknown]
            if known.dtype == object:
                known = unbox_labels(known, name)
            task_classes = observed[t]
            if known.dtype.kind in "biuf" and task_classes.dtype.kind in "biuf":
                # e.g. bool labels here, floats (with NaN) on another process
                known = known.astype(task_classes.dtype, copy=False)
            index = np.searchsorted(task_classes, known)
            found = index < len(task_classes)
            found[found] = task_classes[index[found]] == known[found]
            if not found.all():
                raise ValueError(
                    f"Task {name!r}: labels {pd.unique(known[~found])[:5].tolist()} do not "
                    f"match the classes {task_classes.tolist()} learnt from every process."
                )
            codes[~unknown, t] = index
        return codes

    return Targets(group.run(encode), observed, names, one_dimensional)


def check_trainable(task_classes: np.ndarray, name: str) -> None:
    """Raise unless a task has at least two classes among its known labels."""
    if task_classes.size == 0:
        raise ValueError(
            f"Task {name!r} has no known label (all values are NaN/None); drop the "
            "task or give it some labels."
        )
    if task_classes.shape[0] < 2:
        raise ValueError(
            f"Task {name!r} has only one class ({task_classes[0]!r}) among its known "
            "labels: a classifier can't train when only one class is present."
        )


def complete_binary_classes(targets: Targets, binary: dict[int, object]) -> None:
    """Give known-binary tasks that show a single class their missing class, in place.

    ``binary`` maps the tasks known to be binary (funnel steps, tasks with a
    declared ``pos_label``) to their declared positive label (None where not
    declared). A task whose known labels hold one class gets two when the
    other one is certain: the declared positive label when only a negative
    was seen, or 0/1 (False/True) when only 0 or only 1 (bool or number) was
    seen. A task showing only its declared positive string class, or no
    label, stays as it is.
    """
    for t, positive in binary.items():
        observed = targets.classes[t]
        if observed.size != 1:
            continue
        seen = observed.tolist()[0]
        if positive is not None and positive != seen:
            both = np.array([seen, positive], dtype=observed.dtype if observed.dtype.kind in "biuf"
                            else object)
        elif observed.dtype.kind == "b":
            both = np.array([False, True])
        elif observed.dtype.kind in "iuf" and seen in (0, 1):
            both = np.array([0, 1], dtype=observed.dtype)
        else:
            continue
        order = np.argsort(both, kind="stable") if both.dtype != object else np.argsort(
            [str(v) for v in both], kind="stable"
        )
        both = both[order]
        targets.classes[t] = both
        known = targets.codes[:, t] >= 0
        targets.codes[known, t] = int(np.flatnonzero(both == seen)[0])


def untrainable_tasks(targets: Targets) -> list[int]:
    """Tasks with fewer than two classes, set aside (their labels unknown); raises if all are.

    Such a task (e.g. a rare conversion absent from a cross-validation fold's
    training rows) cannot be learnt, but need not stop the other tasks: its
    labels are left out of the loss and the estimator predicts its one
    observed class (:class:`~skmtl.UntrainableTaskWarning` says so).

    Raises
    ------
    ValueError
        If no task has two classes (nothing could be trained).
    """
    untrainable = [t for t, c in enumerate(targets.classes) if c.size < 2]
    if len(untrainable) == len(targets.classes):
        check_trainable(targets.classes[0], targets.task_names[0])
    for t in untrainable:
        targets.codes[:, t] = UNKNOWN
    return untrainable


def encode_targets(y, classes: list[np.ndarray]) -> np.ndarray:
    """Codes of ``y`` under fitted ``classes``: -1 unknown label, -2 a label never seen in fit."""
    columns, names, _ = task_columns(y)
    if len(columns) != len(classes):
        raise ValueError(
            f"y has {len(columns)} task(s) but the model was fitted on {len(classes)}."
        )
    codes = np.empty((len(columns[0]), len(columns)), dtype=np.int64)
    for t, (values, task_classes) in enumerate(zip(columns, classes)):
        missing = _missing(values)
        known = values[~missing]
        kinds = value_kinds(known)
        if task_classes.size and kinds and kinds != value_kinds(task_classes[:1]):
            # '1' for 1 (labels read from a CSV), b'a' for 'a': every row would count as wrong
            raise ValueError(
                f"Task {names[t]!r} of y holds labels {pd.unique(known)[:3].tolist()} "
                f"({', '.join(sorted(kinds))}) but the model's classes are "
                f"{task_classes.tolist()[:5]}: labels of another type never match. Give y "
                "the labels' fitted type."
            )
        index = class_indices(task_classes, known)
        codes[:, t] = UNKNOWN
        codes[~missing, t] = np.where(index >= 0, index, -2)
    return codes


def predict_dtype(classes: list[np.ndarray]) -> np.dtype:
    """dtype of ``predict``'s output: the common dtype of the tasks' classes."""
    dtypes = [c.dtype for c in classes]
    if any(dt.kind in "OSU" for dt in dtypes):
        return np.dtype(object) if len(set(dtypes)) > 1 else dtypes[0]
    return np.result_type(*dtypes)


def classes_per_task(classes) -> list[np.ndarray]:
    """``classes_`` as one array per task (a fitted ``classes_`` is one ndarray for 1-D y)."""
    return classes if isinstance(classes, list) else [classes]


def sorting_permutation(task_classes: np.ndarray) -> np.ndarray:
    """Indices that put a task's classes in sorted order (scikit-learn's ``classes_`` order).

    Training keeps a declared binary task's classes as ``[negative, positive]``
    (see :func:`~skmtl._keyed_settings.put_positive_last`); the public
    ``classes_`` and the columns of ``predict_proba`` are these indices of it.
    """
    return np.argsort(np.asarray(task_classes), kind="stable")


def public_classes(label_order: list[np.ndarray], one_dimensional: bool):
    """``classes_`` (sorted, one ndarray for 1-D y) from the training order of each task."""
    public = [np.asarray(c)[sorting_permutation(c)] for c in label_order]
    return public[0] if one_dimensional else public


def stored_label_order(state: dict) -> dict:
    """A classifier's fitted state as files and pickles keep it.

    They hold ``classes_`` in the training order (what every skmtl wrote
    before ``classes_`` was sorted), without ``_label_order_``, so that older
    files and pickles load the same way as new ones
    (:func:`restored_label_order`).
    """
    if "_label_order_" not in state:
        return state
    state = dict(state)
    order = state.pop("_label_order_")
    state["classes_"] = list(order) if isinstance(state.get("classes_"), list) else order[0]
    return state


def restored_label_order(state: dict) -> dict:
    """The inverse of :func:`stored_label_order`: ``_label_order_`` and a sorted ``classes_``."""
    if "classes_" not in state or "_label_order_" in state:
        return state
    state = dict(state)
    stored = state["classes_"]
    state["_label_order_"] = [np.asarray(c) for c in classes_per_task(stored)]
    state["classes_"] = public_classes(state["_label_order_"], not isinstance(stored, list))
    return state
