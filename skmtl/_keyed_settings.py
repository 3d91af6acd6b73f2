"""Settings keyed by task or by column, turned into arrays: plain functions, no estimator.

Every setting that refers to tasks (``task_weights``, ``class_weight``,
``negative_sampling_rate``, ``funnel``, ``pos_label``, ``tower_layer_sizes``) names
them by the same rule, :func:`task_index`: an integer (not a bool) is a task's position in ``y``,
anything else is a task's name. The column-keyed ones (``feature_groups``,
``partial_fit``'s ``categories``) name columns by position or by name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from numbers import Integral, Real

import numpy as np
import pandas as pd
import torch


def task_index(key, task_names, setting: str) -> int:
    """Position of the task ``key`` names: an int (not a bool) is an index, else a name.

    Raises
    ------
    ValueError
        Naming ``setting``, if ``key`` is neither an index below the number of
        tasks nor one of their names.
    """
    n_tasks = len(task_names)
    if isinstance(key, Integral) and not isinstance(key, bool):
        if 0 <= key < n_tasks:
            named = [j for j, name in enumerate(task_names) if name == str(key)]
            if named and named[0] != key:  # y's columns are ints: 0 names another task
                raise ValueError(
                    f"{setting} names task {key!r}, which is both the position of task "
                    f"{task_names[key]!r} and the name of the task at position {named[0]}; "
                    f"name it as a string ({str(key)!r}) for the name, or rename y's columns."
                )
            return int(key)
    elif key in task_names:
        return list(task_names).index(key)
    raise ValueError(
        f"{setting} names task {key!r}, which is not one of the tasks {list(task_names)} "
        f"(nor an index below {n_tasks})."
    )


def entries_by_task(setting: Mapping, task_names, name: str) -> dict[int, object]:
    """A dict keyed by task (names or indices) as ``{task index: value}``.

    Raises a ValueError naming ``name`` when two keys name the same task
    (``{"click": 1, 0: 2}``): one of them would be silently dropped.
    """
    out: dict[int, object] = {}
    for key, value in setting.items():
        t = task_index(key, task_names, name)
        if t in out:
            raise ValueError(
                f"{name} names task {task_names[t]!r} twice (by name and by index); keep one."
            )
        out[t] = value
    return out


def declared_positive_labels(pos_label, task_names, classes) -> dict[int, object]:
    """``pos_label`` as ``{task index: label}``, before any check against the classes.

    A dict names tasks by :func:`task_index`; a single label is declared for
    every task with at most two classes.
    """
    if pos_label is None:
        return {}
    if isinstance(pos_label, dict):
        return entries_by_task(pos_label, task_names, "pos_label")
    return {t: pos_label for t, c in enumerate(classes) if len(c) <= 2}


def positive_labels(pos_label, task_names, classes) -> dict[int, object]:
    """``pos_label`` as ``{task index: positive label}``, validated against the classes.

    A dict names tasks by :func:`task_index`; each named task must be binary
    and its label one of its classes. A single label applies to every binary
    task (each must have it among its classes); multiclass tasks have no
    positive class and are left out. Tasks with fewer than two classes
    (set aside by :func:`~skmtl._targets.untrainable_tasks`) are left out.

    Raises
    ------
    ValueError
        If a named task is not binary, or a label is not among a task's classes.
    """
    declared = {}
    for t, label in declared_positive_labels(pos_label, task_names, classes).items():
        if len(classes[t]) > 2:
            raise ValueError(
                f"pos_label names task {task_names[t]!r}, which has {len(classes[t])} "
                f"classes {classes[t].tolist()}; a positive class belongs to binary tasks."
            )
        if len(classes[t]) < 2:
            continue
        matches = [c for c in classes[t].tolist() if c == label]
        if not matches:
            known = classes[t].tolist()
            encoded = isinstance(label, str) and known == list(range(len(known)))
            raise ValueError(
                f"pos_label={label!r} is not a class of task {task_names[t]!r} (classes "
                f"{known}); pass a dict {{task: label}} to give each task its own."
                + (" Classes 0, 1, ... here may be a scikit-learn meta-estimator's encoding "
                   "of y (VotingClassifier, StackingClassifier, BaggingClassifier and "
                   "OneVsRestClassifier encode it): give the positive class by its index in "
                   "their sorted classes_." if encoded else "")
            )
        declared[t] = matches[0]
    return declared


def put_positive_last(codes: np.ndarray, classes: list[np.ndarray], positive: dict) -> None:
    """Order each declared binary task's classes as ``[negative, positive]``, in place.

    ``classes[t]`` is replaced and the known codes of the task flipped where
    the positive class came first, so class index 1 is the positive class.
    """
    for t, label in positive.items():
        if classes[t].tolist()[1] == label:
            continue
        classes[t] = classes[t][::-1].copy()
        known = codes[:, t] >= 0
        codes[known, t] = 1 - codes[known, t]


def _natural_positive(task_classes: np.ndarray) -> bool:
    """Whether a binary task's greater class is its positive one without saying so.

    As in scikit-learn's metrics: bool labels, or numbers {0, 1} or {-1, 1}.
    """
    if task_classes.dtype.kind not in "biuf":
        return False
    return {float(c) for c in task_classes} in ({0.0, 1.0}, {-1.0, 1.0})


def check_positive_known(t, task_names, classes, positive: dict, setting: str) -> None:
    """Raise unless task ``t``'s positive class is declared or evident from its labels.

    Raises
    ------
    ValueError
        Naming ``setting`` (which needs the positive class) and ``pos_label``.
    """
    if t in positive or _natural_positive(classes[t]):
        return
    raise ValueError(
        f"{setting} needs the positive class of task {task_names[t]!r}, whose classes are "
        f"{classes[t].tolist()}; declare it with pos_label={{{task_names[t]!r}: <label>}}, "
        "<label> being the positive one of those classes (only bool labels and 0/1 or -1/1 "
        "numbers have an evident positive class)."
    )


def task_weight_vector(task_weights, task_names) -> np.ndarray:
    """``task_weights`` (None, a sequence, or a dict by task) as one weight per task."""
    n_tasks = len(task_names)
    if task_weights is None:
        return np.ones(n_tasks)
    if isinstance(task_weights, pd.Series):
        # Keyed by its index (task names, or positions), as a dict.
        if not task_weights.index.is_unique:
            raise ValueError(
                f"task_weights names a task twice: index {task_weights.index.tolist()}."
            )
        task_weights = dict(task_weights.items())
    if isinstance(task_weights, Mapping):
        weights = np.ones(n_tasks)
        for t, value in entries_by_task(task_weights, task_names, "task_weights").items():
            weights[t] = value
    else:
        try:
            weights = np.asarray(task_weights, dtype=np.float64)
        except (TypeError, ValueError):
            raise ValueError(f"task_weights must be numbers; got {task_weights!r}.") from None
        if weights.ndim != 1:
            raise ValueError(f"task_weights must be 1-dimensional; got shape {weights.shape}.")
        if weights.shape[0] != n_tasks:
            raise ValueError(
                f"task_weights has {weights.shape[0]} entries but y has {n_tasks} task(s)."
            )
    if not np.all(np.isfinite(weights)) or np.any(weights < 0):
        raise ValueError(f"task_weights must be finite and non-negative; got {weights.tolist()}.")
    if not np.any(weights > 0):
        raise ValueError("task_weights are all zero: no task would be trained.")
    return weights


def _is_task_spec(value) -> bool:
    return value is None or isinstance(value, (str, dict))


def class_weight_specs(class_weight, task_names) -> list:
    """``class_weight`` as one entry per task: None, ``"balanced"`` or a ``{class: weight}`` dict.

    A dict is keyed by task (name or index) unless ``y`` has one task and the
    dict's values are weights, in which case it is that task's
    ``{class: weight}``, as in scikit-learn.
    """
    n_tasks = len(task_names)
    if class_weight is None or isinstance(class_weight, str):
        return [class_weight] * n_tasks
    if isinstance(class_weight, list):
        if len(class_weight) != n_tasks:
            raise ValueError(
                f"class_weight is a list of {len(class_weight)} entries but y has {n_tasks} "
                "task(s)."
            )
        return class_weight
    if n_tasks == 1 and not any(_is_task_spec(v) for v in class_weight.values()):
        return [class_weight]
    specs = [None] * n_tasks
    for t, value in entries_by_task(class_weight, task_names, "class_weight").items():
        specs[t] = value
    return specs


def class_weight_vectors(specs, classes, task_names, class_counts) -> list[np.ndarray | None]:
    """Per-task class weights from :func:`class_weight_specs`.

    ``class_counts[t]`` holds task ``t``'s class counts over the training rows
    wherever its spec is ``"balanced"``.
    """
    vectors = []
    for t, (spec, task_classes) in enumerate(zip(specs, classes)):
        if spec is None:
            vectors.append(None)
            continue
        weights = np.ones(len(task_classes))
        if isinstance(spec, str) and spec == "balanced":
            # sklearn's "balanced" over the classes present: n / (n_classes * count).
            counts = class_counts[t]
            present = counts > 0
            weights[present] = counts.sum() / (present.sum() * counts[present])
        elif isinstance(spec, dict):
            # As scikit-learn's compute_class_weight: a key that is not a class of this fit
            # (e.g. a class absent from a cross-validation fold) is ignored, unless some
            # class is then left without a weight (a misspelt class, most likely).
            strangers, weighted = [], np.zeros(len(task_classes), dtype=bool)
            for label, value in spec.items():
                if isinstance(value, bool) or not isinstance(value, Real) or not (
                        np.isfinite(value) and value >= 0):
                    raise ValueError(
                        f"class_weight for task {task_names[t]!r} gives class {label!r} the "
                        f"weight {value!r}; class weights are finite numbers >= 0."
                    )
                where = np.flatnonzero(task_classes == label)
                if where.size == 0:
                    strangers.append(label)
                    continue
                weights[where[0]] = value
                weighted[where[0]] = True
            if strangers and not weighted.all():
                raise ValueError(
                    f"class_weight for task {task_names[t]!r} names class(es) "
                    f"{strangers!r}, which are not among its classes "
                    f"{task_classes.tolist()}, and leaves class(es) "
                    f"{task_classes[~weighted].tolist()} without a weight."
                )
        else:
            raise ValueError(
                f"class_weight entry for task {task_names[t]!r} must be None, 'balanced' or a "
                f"dict; got {spec!r}."
            )
        vectors.append(weights)
    return vectors


def logit_offsets(
    negative_sampling_rate, task_names, classes, funnel, positive=None
) -> np.ndarray | None:
    """log(rate) per task: the prior correction for negatives kept at ``rate`` (0 elsewhere).

    ``positive`` (from :func:`positive_labels`): the declared positive classes;
    a corrected task needs one or an evident one (:func:`check_positive_known`),
    since it decides which rows are the downsampled negatives.
    """
    rate = negative_sampling_rate
    if rate is None:
        return None
    if isinstance(rate, dict):
        rates = {}
        entries = entries_by_task(rate, task_names, "negative_sampling_rate")
        for (t, value), key in zip(entries.items(), rate):
            if not (isinstance(value, Real) and 0 < value <= 1):
                raise ValueError(
                    f"negative_sampling_rate[{key!r}] must be in (0, 1]; got {value!r}."
                )
            rates[t] = value
    elif funnel:
        rates = {funnel[0]: rate}
    elif len(task_names) == 1:
        rates = {0: rate}
    else:
        raise ValueError(
            "A single negative_sampling_rate is ambiguous with several tasks and no funnel; "
            "pass a dict {task: rate}."
        )
    if funnel and set(rates) & set(funnel[1:]):
        raise ValueError(
            "negative_sampling_rate can correct the first funnel step only (its negatives, "
            f"e.g. non-clicks, were downsampled); got rates for {sorted(rates)} with funnel "
            f"{[task_names[t] for t in funnel]}."
        )
    offsets = np.zeros(len(task_names))
    for t, value in rates.items():
        if len(classes[t]) != 2:
            raise ValueError(
                f"negative_sampling_rate applies to binary tasks; task {task_names[t]!r} "
                f"has {len(classes[t])} classes."
            )
        check_positive_known(t, task_names, classes, positive or {}, "negative_sampling_rate")
        offsets[t] = np.log(value)
    return offsets


def expert_input_mask(
    feature_groups, architecture, n_experts, n_group_experts, encoder, embedding_dim,
    feature_names,
) -> torch.Tensor | None:
    """(n_experts_total, in_features) 0/1 mask: shared experts, then each group's experts.

    ``encoder`` is the fitted :class:`~skmtl._encoding.TabularEncoder`; a
    group's experts read the embedded tokens of its columns
    (``encoder.token_columns()``: categorical first, then continuous, then
    the other kinds').
    """
    if feature_groups is None:
        return None
    if not (isinstance(architecture, str) and architecture in ("moe", "mmoe")):
        raise ValueError(
            "feature_groups is used only when architecture is 'moe' or 'mmoe'; got "
            f"architecture={architecture!r}."
        )
    token_columns = encoder.token_columns()  # the column behind each embedded token
    n_features = encoder.n_features
    names = [str(n) for n in feature_names] if feature_names is not None else []
    width = len(token_columns) * embedding_dim
    rows = [np.ones(width)] * n_experts
    for group, columns in feature_groups.items():
        columns = [columns] if isinstance(columns, (str, Integral)) else list(columns)
        if not columns:
            raise ValueError(f"feature_groups[{group!r}] is empty.")
        row = np.zeros(width)
        for col in columns:
            if isinstance(col, Integral) and not isinstance(col, bool) and 0 <= col < n_features:
                j = int(col)
            elif isinstance(col, str) and col in names:
                j = names.index(col)
            else:
                raise ValueError(
                    f"feature_groups[{group!r}] names {col!r}, which is not a column of X "
                    f"(columns: {names or list(range(n_features))})."
                )
            for token in np.flatnonzero(token_columns == j):
                row[token * embedding_dim : (token + 1) * embedding_dim] = 1.0
        rows.extend([row] * n_group_experts)
    return torch.tensor(np.vstack(rows), dtype=torch.float32)


def declared_categories(categories, is_categorical, feature_names) -> dict:
    """``partial_fit``'s ``categories`` keyed by feature index."""
    if categories is None:
        return {}
    if not isinstance(categories, Mapping):
        raise TypeError(
            "categories must be a dict mapping categorical columns (names or indices) to their "
            f"categories; got {type(categories).__name__}."
        )
    names = [str(n) for n in feature_names] if feature_names is not None else []
    declared = {}
    for key, values in categories.items():
        j = names.index(key) if isinstance(key, str) and key in names else key
        if not (isinstance(j, Integral) and not isinstance(j, bool)
                and 0 <= j < len(is_categorical) and is_categorical[j]):
            raise ValueError(f"categories names {key!r}, which is not a categorical column of X.")
        if isinstance(values, (str, bytes, Mapping)) or not isinstance(values, Iterable):
            raise ValueError(
                f"categories[{key!r}] must be a list (or another 1-D collection) of categories; "
                f"got {type(values).__name__} {values!r:.80}."
            )
        values = list(values)  # sets and other iterables too
        if any(np.ndim(v) > 0 for v in values):
            raise ValueError(
                f"categories[{key!r}] must be a flat list of categories; it holds nested lists "
                "or arrays."
            )
        declared[int(j)] = values
    return declared
