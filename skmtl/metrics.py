"""Metrics and scorers that are right for multi-task output.

scikit-learn's built-in scorers raise on NaN in ``y``, and some
(``"neg_log_loss"``, ``"neg_brier_score"``) compute the wrong quantity on
multi-output input. The functions here take ``y_true`` of shape
``(n_samples, n_tasks)`` (or 1-D for one task) and ``y_proba`` as returned by
:meth:`MultiTaskClassifier.predict_proba` (a list of per-task arrays, or one
array), score every task on its known labels only (NaN/None/``pd.NA`` are
skipped task by task) and average over tasks.

For :class:`~skmtl.MultiTaskRegressor` the regression metrics (``"r2"``,
``"mean_squared_error"``, ``"mean_absolute_error"``, ``"mean_poisson_deviance"``)
score ``predict``'s output on the known targets of each task the same way. The
classification metrics score a regressor's binary tasks (``loss="log_loss"``),
whose column of ``predict`` is P(y = 1): a scorer of one such task, or the
mean over all of them. A mixed click + watch-time model is then searched with::

    GridSearchCV(reg, grid, refit="click_auc", scoring={
        "click_auc": metrics.make_task_scorer("roc_auc", task="click"),
        "watch_r2": metrics.make_task_scorer("r2", task="watch_time"),
    })

Scorers (callables ``scorer(estimator, X, y, sample_weight=None)``) plug into
``GridSearchCV(scoring=...)`` and ``cross_validate``::

    from skmtl import metrics
    GridSearchCV(clf, grid, scoring=metrics.per_task_scorers(["roc_auc"], clf_task_names),
                 refit="roc_auc_income")

With scikit-learn's metadata routing enabled, a scorer receives
``sample_weight`` after ``scorer.set_score_request(sample_weight=True)``, as
scikit-learn's scorers do. Where a metric is undefined for a task (a single
class among its known labels), the means leave the task out with an
``UndefinedMetricWarning``; ``single_class="nan"`` or ``"raise"`` chooses NaN
or an error instead.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from numbers import Integral

import numpy as np
import pandas as pd
from scipy.special import xlogy
from sklearn.base import is_regressor
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import (
    average_precision_score,
    log_loss,
    mean_absolute_error,
    mean_poisson_deviance,
    mean_squared_error,
    r2_score,
    roc_auc_score,
)
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import label_binarize
from sklearn.utils.metadata_routing import (
    UNCHANGED,
    MetadataRequest,
    _MetadataRequester,
    _routing_enabled,
    get_routing_for_object,
)

from ._frames import as_pandas
from ._funnel import fill_funnel_columns
from ._keyed_settings import check_positive_known, positive_labels
from ._keyed_settings import task_index as keyed_task_index
from ._targets import (
    check_scored_tasks,
    class_indices,
    classes_per_task,
    observed_classes,
    sorting_permutation,
    task_columns,
    unbox_labels,
)
from ._warnings import warn_user

__all__ = [
    "get_scorer",
    "make_task_scorer",
    "mean_average_precision_score",
    "mean_log_loss",
    "mean_roc_auc_score",
    "per_task_scorers",
    "per_task_scores",
    "subset_accuracy_from_codes",
    "subset_accuracy_score",
]


def _proba_list(y_proba) -> list[np.ndarray]:
    if isinstance(y_proba, (list, tuple)):
        return [np.asarray(p, dtype=np.float64) for p in y_proba]
    return [np.asarray(y_proba, dtype=np.float64)]


def _known(values: np.ndarray) -> np.ndarray:
    return ~np.asarray(pd.isna(values), dtype=bool)


def _in_sorted_order(proba, classes):
    """``proba``'s columns and ``classes`` in sorted label order (sklearn's metrics read them so).

    A task's classes may come in another order (a caller's ``classes=``, or
    :func:`_positive_last` putting the positive class last).
    """
    classes = np.asarray(classes)
    order = sorting_permutation(classes)
    return proba[:, order], classes[order]


def _present_one_vs_rest(y, proba, classes, sample_weight):
    """Each class present in ``y`` against the rest: indicator columns and their scores.

    A multiclass task's ROC AUC and average precision are macro averages of
    these one-vs-rest scores: a class absent from the scored rows (a rare
    class missing from a fold) has no score to add, and is left out rather
    than making the task's score NaN (ROC AUC) or adding a 0 (average precision). So is
    a class whose rows all weigh 0.
    """
    indicators = label_binarize(y, classes=classes)
    if sample_weight is None:
        present = indicators.any(axis=0)
    else:
        present = np.asarray(sample_weight, dtype=np.float64) @ indicators > 0
    return indicators[:, present], proba[:, present]


def _roc_auc(y, proba, classes, sample_weight):
    if proba.shape[1] == 2:
        return roc_auc_score(y == classes[1], proba[:, 1], sample_weight=sample_weight)
    indicators, scores = _present_one_vs_rest(y, proba, classes, sample_weight)
    return roc_auc_score(indicators, scores, average="macro", sample_weight=sample_weight)


def _average_precision(y, proba, classes, sample_weight):
    if proba.shape[1] == 2:
        return average_precision_score(y == classes[1], proba[:, 1], sample_weight=sample_weight)
    indicators, scores = _present_one_vs_rest(y, proba, classes, sample_weight)
    return average_precision_score(indicators, scores, average="macro", sample_weight=sample_weight)


def _log_loss(y, proba, classes, sample_weight):
    proba, classes = _in_sorted_order(proba, classes)
    return log_loss(y, proba, labels=classes, sample_weight=sample_weight)


_METRICS: dict[str, Callable] = {
    "roc_auc": _roc_auc,
    "average_precision": _average_precision,
    "log_loss": _log_loss,
}
# Regression metrics (MultiTaskRegressor): f(y_true, y_pred, sample_weight) per task, on
# the rows whose target is known; the scorers call predict instead of predict_proba.
_REGRESSION_METRICS: dict[str, Callable] = {
    "r2": r2_score,
    "mean_squared_error": mean_squared_error,
    "mean_absolute_error": mean_absolute_error,
    "mean_poisson_deviance": mean_poisson_deviance,
}
_GREATER_IS_BETTER = {
    "roc_auc": True, "average_precision": True, "log_loss": False,
    "r2": True, "mean_squared_error": False, "mean_absolute_error": False,
    "mean_poisson_deviance": False,
}
_ALL_METRICS = [*_METRICS, *_REGRESSION_METRICS]
_SINGLE_CLASS_POLICIES = ("skip", "nan", "raise")


def per_task_scores(
    metric: str, y_true, y_proba, *, classes=None, sample_weight=None, funnel=None,
    pos_label=None, as_series=False,
):
    """Score each task on its known labels.

    Parameters
    ----------
    metric : {"roc_auc", "average_precision", "log_loss", "r2", "mean_squared_error", "mean_absolute_error", "mean_poisson_deviance"}
        The per-task metric: a classification metric on probabilities, or a
        regression metric (:class:`~skmtl.MultiTaskRegressor`) on predictions.
    y_true : array-like or DataFrame of shape (n_samples, n_tasks) or (n_samples,)
        True labels (or targets); NaN/None/``pd.NA`` marks an unknown one.
    y_proba : list of ndarray of shape (n_samples, n_classes_t), or ndarray
        Predicted probabilities, as returned by ``predict_proba``; for a
        regression metric, the predictions of ``predict`` (an ndarray of
        shape (n_samples, n_tasks) or (n_samples,)).
    classes : list of ndarray, or ndarray, default=None
        Each task's classes in the column order of ``y_proba`` (the fitted
        ``classes_``). By default the sorted known labels of each task.
    sample_weight : array-like of shape (n_samples,), default=None
        Weight of each row.
    funnel : sequence of int, default=None
        Task indices of a funnel (the fitted ``funnel_``): an unknown label
        after a negative earlier step counts as negative, as in training.
    pos_label : str, int, bool, dict or None, default=None
        The positive class of binary tasks, as the estimator's ``pos_label``
        (a dict by task name or index, or one label for every binary task):
        average precision is that class's, and a funnel step's other class
        is the negative one given to unknown labels after a negative step.
        Without it, a binary task's positive class is its second class in
        ``classes`` (the greater label, classes being sorted), and a funnel
        step's is the greater of bool, 0/1 or -1/1 labels (other labels, such
        as strings, must be declared). ROC AUC and log loss do not depend on
        it. For a model fitted with ``pos_label``, pass the same value here
        (the scorers of this module take it from the model).
    as_series : bool, default=False
        Return a :class:`pandas.Series` indexed by task name and named after
        the metric, instead of an array. The task names are those a model
        fitted on ``y_true`` has in ``task_names_``: the column names of a
        DataFrame (or the name of a Series), ``task_0``, ``task_1``, ... for
        an array.

    Returns
    -------
    scores : ndarray of shape (n_tasks,), or pandas.Series
        One score per task, in the order of ``y_true``'s columns. NaN for a
        task on which the metric is undefined: one with no known label, for
        ROC AUC and average precision one with a single class among its
        known labels, and one that the model was fitted on with fewer than
        two classes (it cannot rank). A multiclass task's ROC AUC and
        average precision are one-vs-rest macro averages over the classes
        present among its known labels (a class missing from the scored rows
        is left out).

    Examples
    --------
    >>> import numpy as np, pandas as pd
    >>> from skmtl import metrics
    >>> y = pd.DataFrame({"click": [0, 1, 1, 0], "buy": [0, np.nan, 1, 0]})
    >>> proba = [np.array([[0.8, 0.2], [0.3, 0.7], [0.4, 0.6], [0.6, 0.4]]),
    ...          np.array([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8], [0.7, 0.3]])]
    >>> metrics.per_task_scores("roc_auc", y, proba)
    array([1., 1.])
    >>> metrics.per_task_scores("log_loss", y, proba, as_series=True).round(3)
    click    0.400
    buy      0.228
    Name: log_loss, dtype: float64
    """
    scores, names = _task_scores(
        metric, y_true, y_proba, classes, sample_weight, funnel, pos_label
    )
    if as_series:
        return pd.Series(scores, index=pd.Index(names, dtype=object), name=metric)
    return scores


def _task_scores(metric, y_true, y_proba, classes, sample_weight, funnel, pos_label=None):
    """:func:`per_task_scores` and the task names of ``y_true``."""
    if metric in _REGRESSION_METRICS:
        return _regression_scores(metric, y_true, y_proba, sample_weight)
    if metric not in _METRICS:
        raise ValueError(f"Unknown metric {metric!r}; expected one of {sorted(_ALL_METRICS)}.")
    columns, names, _ = task_columns(y_true)
    probas = _proba_list(y_proba)
    if len(columns) != len(probas):
        raise ValueError(
            f"y_true has {len(columns)} task(s) but y_proba has {len(probas)}."
        )
    if classes is not None and not isinstance(classes, list):
        classes = [classes]
    if funnel or pos_label is not None:
        if classes is None:
            # Object columns (nullable dtypes, None for missing) as the labels they box.
            classes = [observed_classes(c, ~_known(c), name) for c, name in zip(columns, names)]
        classes, probas = _positive_last(classes, probas, names, pos_label, funnel)
    if funnel:
        columns = fill_funnel_columns(columns, classes, list(funnel))
    weights = _sample_weights(sample_weight, len(columns[0]))
    scores = np.full(len(columns), np.nan)
    for t, (values, proba) in enumerate(zip(columns, probas)):
        if proba.ndim != 2 or proba.shape[0] != len(values):
            raise ValueError(
                f"Task {names[t]!r}: y_proba has shape {proba.shape}, but y_true has "
                f"{len(values)} rows; each task's probabilities are (n_samples, n_classes)."
            )
        known = _known(values)
        y = values[known]
        if y.dtype == object:  # e.g. None-marked unknowns, or funnel-filled labels
            y = unbox_labels(y, str(names[t]))
        task_classes = np.unique(y) if classes is None else np.asarray(classes[t])
        if classes is None and len(task_classes) < min(2, proba.shape[1]):
            continue  # one class or none known, columns unnamed: undefined (the policy decides)
        if classes is not None and len(task_classes) < 2:
            continue  # a task set aside in fit (one class or none): no ranking, NaN
        unknown = class_indices(task_classes, y) < 0 if classes is not None else None
        if unknown is not None and unknown.any():
            outside = pd.unique(y[unknown])[:5].tolist()
            raise ValueError(
                f"Task {names[t]!r}: y_true holds labels {outside} that are not among its "
                f"classes {task_classes.tolist()}."
            )
        if len(task_classes) != proba.shape[1]:
            raise ValueError(
                f"Task {t}: y_proba has {proba.shape[1]} columns but there are "
                f"{len(task_classes)} classes; pass classes=estimator.classes_."
            )
        if len(task_classes) < 2:  # a task set aside in fit (one class or none): no ranking
            continue
        if len(y) == 0 or (metric != "log_loss" and np.unique(y).shape[0] < 2):
            continue
        w = None if weights is None else weights[known]
        scores[t] = _METRICS[metric](y, proba[known], task_classes, w)
    return scores, names


def _positive_last(classes, probas, names, pos_label, funnel):
    """Classes and probability columns of binary tasks as ``[negative, positive]``.

    For the tasks whose positive class ``pos_label`` declares, and the funnel
    steps (whose positive class must be declared or evident, the greater of
    bool, 0/1 or -1/1 labels): the metrics and :func:`fill_funnel_columns`
    take class 1 as the positive one.
    """
    classes = [np.asarray(c) for c in classes]
    if isinstance(pos_label, _FittedPositives):  # already by position: y's names play no part
        positive = {t: label for t, label in pos_label.items() if len(classes[t]) == 2}
    else:
        positive = positive_labels(pos_label, names, classes)
    for t in funnel or []:
        if len(classes[t]) == 2 and t not in positive:
            check_positive_known(t, names, classes, positive, "Scoring a funnel")
            positive[t] = classes[t].max()
    probas = list(probas)
    for t, label in positive.items():
        if classes[t].tolist()[1] != label:
            classes[t], probas[t] = classes[t][::-1], probas[t][:, ::-1]
    return classes, probas


def _sample_weights(sample_weight, n_samples: int) -> np.ndarray | None:
    if sample_weight is None:
        return None
    weights = np.asarray(sample_weight, dtype=np.float64)
    if weights.shape != (n_samples,):
        raise ValueError(
            f"sample_weight has shape {weights.shape}, but y_true has {n_samples} rows."
        )
    return weights


def _regression_scores(metric, y_true, y_pred, sample_weight):
    """Per-task regression scores on the known targets (NaN: none known; r2: fewer than 2)."""
    from ._regression import regression_targets

    targets = regression_targets(y_true)
    truth = targets.values
    n_samples, n_tasks = truth.shape
    if (isinstance(y_pred, (list, tuple)) and n_tasks > 1 and len(y_pred) == n_tasks
            and all(np.ndim(p) == 1 and len(p) == n_samples for p in y_pred)):
        if n_samples == n_tasks:
            raise ValueError(
                f"y_pred is a list of {n_tasks} arrays of {n_samples} values: rows or tasks? "
                "Pass an array of shape (n_samples, n_tasks), as predict returns it."
            )
        y_pred = np.column_stack(y_pred)  # one array per task, as y_proba may be given
    # (otherwise, as in scikit-learn, a list holds rows)
    y_pred = as_pandas(y_pred)  # a polars or pyarrow frame as pandas
    if isinstance(y_pred, (pd.DataFrame, pd.Series)):  # nullable dtypes with NA included
        y_pred = y_pred.to_numpy(dtype=np.float64, na_value=np.nan)
    predicted = np.asarray(y_pred, dtype=np.float64)
    if predicted.ndim == 1 and truth.shape[1] == 1:
        predicted = predicted[:, None]
    if predicted.shape != truth.shape:
        raise ValueError(
            f"y_pred has shape {predicted.shape}, but y_true has {truth.shape[0]} rows and "
            f"{truth.shape[1]} task(s): predictions are (n_samples, n_tasks), as predict "
            "returns them."
        )
    weights = _sample_weights(sample_weight, truth.shape[0])
    scores = np.full(truth.shape[1], np.nan)
    for t in range(truth.shape[1]):
        known = ~np.isnan(truth[:, t]) & ~np.isnan(predicted[:, t])
        if known.sum() < (2 if metric == "r2" else 1):
            continue
        w = None if weights is None else weights[known]
        scores[t] = _REGRESSION_METRICS[metric](truth[known, t], predicted[known, t],
                                                sample_weight=w)
    return scores, targets.task_names


def _probability_log_loss(y, p, sample_weight) -> float:
    """Mean cross-entropy of targets ``y`` in [0, 1] (soft labels too) and P(y = 1) ``p``.

    ``p`` is clipped to ``[eps, 1 - eps]`` as :func:`sklearn.metrics.log_loss`
    clips it; for 0/1 targets the two agree.
    """
    eps = np.finfo(p.dtype).eps
    p = np.clip(p, eps, 1 - eps)
    losses = -(xlogy(y, p) + xlogy(1 - y, 1 - p))
    return float(np.average(losses, weights=sample_weight))


def _binary_task_scores(metric, y_true, predicted, tasks, sample_weight):
    """``metric`` of the tasks ``tasks`` of a regressor, from P(y = 1) in ``predicted``'s columns.

    Returns one score per task of ``tasks`` (NaN: no known target; for ROC AUC
    and average precision, a single class among the known ones) and their names.
    """
    from ._regression import regression_targets

    targets = regression_targets(y_true)
    truth = targets.values
    if predicted.shape[1] != truth.shape[1]:
        raise ValueError(
            f"y_true has {truth.shape[1]} task(s) but the model predicts {predicted.shape[1]}."
        )
    weights = _sample_weights(sample_weight, truth.shape[0])
    scores = np.full(len(tasks), np.nan)
    for i, t in enumerate(tasks):
        known = ~np.isnan(truth[:, t]) & ~np.isnan(predicted[:, t])
        y, p = truth[known, t], predicted[known, t]
        w = None if weights is None else weights[known]
        if metric == "log_loss":
            if len(y):
                scores[i] = _probability_log_loss(y, p, w)
            continue
        other = y[(y != 0) & (y != 1)]
        if other.size:
            raise ValueError(
                f"{metric} needs 0/1 targets; task {targets.task_names[t]!r} has "
                f"{other.size} other known target(s), e.g. {other[0]:g} (soft labels?). "
                "Score it with 'log_loss', 'r2' or 'mean_squared_error' instead."
            )
        if np.unique(y).shape[0] == 2:
            scorer = roc_auc_score if metric == "roc_auc" else average_precision_score
            scores[i] = scorer(y, p, sample_weight=w)
    return scores, [targets.task_names[t] for t in tasks]


def _final_model(estimator):
    """The model that makes the predictions, inside the meta-estimators that forward them.

    A Pipeline (its last step), a fitted search (``best_estimator_``) and a
    ``FrozenEstimator`` (``estimator``), nested too, forward ``predict_proba``
    and ``classes_`` but not the fitted model's ``task_names_``, ``funnel_``,
    ``loss_`` or training order of classes, which scoring reads.
    """
    return _final_model_and_input(estimator, None)[0]


def _final_model_and_input(estimator, X):
    """:func:`_final_model`, and ``X`` as it reaches it (through every Pipeline's earlier steps).

    ``X`` None stays None (nothing is transformed).
    """
    while True:
        if isinstance(estimator, Pipeline):
            if X is not None:
                X = estimator[:-1].transform(X)
            estimator = estimator[-1]
        elif hasattr(estimator, "best_estimator_"):  # GridSearchCV, RandomizedSearchCV, ...
            estimator = estimator.best_estimator_
        elif isinstance(estimator, FrozenEstimator):
            estimator = estimator.estimator
        else:
            return estimator, X


class _FittedPositives(dict):
    """A fitted model's positive labels, keyed by task position (not a user's ``pos_label``).

    Positions are not names: ``y``'s columns may be integers (``[1, 0]``) that a
    user's ``pos_label`` key would have to tell apart from positions.
    """


def _fitted_positive_labels(estimator) -> dict | None:
    """The positive class of each binary task of a fitted classifier, by task index.

    Class 1 of the order it trained in (``_label_order_``): its declared
    ``pos_label``, else the greater label. None for another estimator.
    """
    order = getattr(_final_model(estimator), "_label_order_", None)
    if order is None:
        return None
    return _FittedPositives({t: c[1] for t, c in enumerate(order) if len(c) == 2})


def _regressor_binary_tasks(metric, estimator, task_index) -> list[int]:
    """The tasks of a regressor that ``metric`` (a classification metric) scores.

    Its ``"log_loss"`` tasks, whose :meth:`predict` column is P(y = 1): all of
    them, or the one of ``task_index``.
    """
    model = _final_model(estimator)
    losses = list(getattr(model, "loss_", []))
    names = list(getattr(model, "task_names_", []))
    if task_index is not None:
        if losses[task_index] != "log_loss":
            raise ValueError(
                f"{metric} scores a regressor's loss='log_loss' tasks, whose column of predict "
                f"is a probability; task {names[task_index]!r} has loss "
                f"{losses[task_index]!r}. Score it with 'r2', 'mean_squared_error' or "
                "'mean_absolute_error'."
            )
        return [task_index]
    binary = [t for t, loss in enumerate(losses) if loss == "log_loss"]
    if not binary:
        raise ValueError(
            f"{metric} scores a regressor's loss='log_loss' tasks; this model has none "
            f"(losses {dict(zip(names, losses))}). Use a regression metric such as 'mean_r2'."
        )
    return binary


def _check_single_class(single_class) -> None:
    if not isinstance(single_class, str) or single_class not in _SINGLE_CLASS_POLICIES:
        raise ValueError(
            f"single_class must be one of {list(_SINGLE_CLASS_POLICIES)}; got {single_class!r}."
        )


def _undefined(metric: str, tasks: list) -> str:
    """That ``metric`` is undefined for ``tasks`` and why, for messages."""
    if metric in _REGRESSION_METRICS:
        cause = "fewer than two known targets" if metric == "r2" else "no known target"
        return (
            f"{metric} is undefined for task(s) {tasks}: they have {cause} in y_true (or "
            "the model predicts NaN for them)"
        )
    cause = (
        "no known label (or a single class, without classes= to name y_proba's columns)"
        if metric == "log_loss" else "a single class or no known label"
    )
    return (
        f"{metric} is undefined for task(s) {tasks}: they have {cause} in y_true, or the "
        "model was fitted with fewer than two classes for them"
    )


def _mean(
    metric: str, y_true, y_proba, classes, sample_weight, funnel=None, single_class="skip",
    pos_label=None,
) -> float:
    _check_single_class(single_class)
    scores, names = _task_scores(
        metric, y_true, y_proba, classes, sample_weight, funnel, pos_label
    )
    return _mean_of(metric, scores, names, single_class)


def _mean_of(metric: str, scores: np.ndarray, names: list, single_class: str) -> float:
    """The mean of per-task ``scores``, tasks where ``metric`` is undefined (NaN) as told."""
    undefined = [name for name, score in zip(names, scores) if np.isnan(score)]
    if not undefined:
        return float(np.mean(scores))
    if single_class == "nan":
        return float("nan")
    if single_class == "raise":
        raise ValueError(f"{_undefined(metric, undefined)} (single_class='raise').")
    if len(undefined) == len(names):
        raise ValueError(
            f"{_undefined(metric, undefined)}, so it is undefined for every task; "
            "pass single_class='nan' to get NaN instead."
        )
    warn_user(
        f"The mean {metric} leaves out task(s) {undefined} and averages the other "
        f"{len(names) - len(undefined)} task(s); {_undefined(metric, undefined)}. Means over "
        "different tasks may not compare (e.g. across CV folds); pass single_class='nan' to "
        "get NaN or single_class='raise' to raise instead.",
        UndefinedMetricWarning,
    )
    return float(np.nanmean(scores))


_SINGLE_CLASS_DOC = """single_class : {"skip", "nan", "raise"}, default="skip"
        What to do when the metric is undefined for a task (its known labels in
        ``y_true`` hold a single class, or none): "skip" leaves the task out of
        the mean and warns (``UndefinedMetricWarning``) with its name; "nan"
        returns NaN, so that e.g. a cross-validation fold is visibly invalid;
        "raise" raises ``ValueError``."""


def mean_roc_auc_score(
    y_true, y_proba, *, classes=None, sample_weight=None, single_class="skip"
) -> float:
    """Mean over tasks of each task's ROC AUC on its known labels.

    Multiclass tasks use one-vs-rest macro AUC over the classes present
    among their known labels. ROC AUC is undefined for a
    task whose known labels hold a single class; ``single_class`` says what
    then happens.

    Parameters
    ----------
    y_true, y_proba, classes, sample_weight
        As in :func:`per_task_scores`.
    {single_class}

    Returns
    -------
    score : float
    """
    return _mean("roc_auc", y_true, y_proba, classes, sample_weight, single_class=single_class)


def mean_average_precision_score(
    y_true, y_proba, *, classes=None, sample_weight=None, single_class="skip", pos_label=None
) -> float:
    """Mean over tasks of each task's average precision on its known labels.

    Average precision is undefined for a task whose known labels hold a single
    class; ``single_class`` says what then happens.

    Parameters
    ----------
    y_true, y_proba, classes, sample_weight, pos_label
        As in :func:`per_task_scores` (a binary task's average precision is
        that of its positive class).
    {single_class}

    Returns
    -------
    score : float
    """
    return _mean(
        "average_precision", y_true, y_proba, classes, sample_weight,
        single_class=single_class, pos_label=pos_label,
    )


def mean_log_loss(
    y_true, y_proba, *, classes=None, sample_weight=None, single_class="skip"
) -> float:
    """Mean over tasks of each task's log loss on its known labels.

    Log loss is defined for a single class but not for a task without any
    known label; ``single_class`` says what then happens.

    Parameters
    ----------
    y_true, y_proba, classes, sample_weight
        As in :func:`per_task_scores`.
    {single_class}

    Returns
    -------
    loss : float
    """
    return _mean("log_loss", y_true, y_proba, classes, sample_weight, single_class=single_class)


for _function in (mean_roc_auc_score, mean_average_precision_score, mean_log_loss):
    if _function.__doc__:  # None under python -OO
        _function.__doc__ = _function.__doc__.replace("{single_class}", _SINGLE_CLASS_DOC)
del _function


def subset_accuracy_score(y_true, y_pred, *, sample_weight=None) -> float:
    """Fraction of rows whose known labels are all predicted correctly.

    Unknown labels (NaN/None/``pd.NA``) are skipped task by task; rows with no
    known label are left out. Without unknown labels this equals
    :func:`sklearn.metrics.accuracy_score` (subset accuracy).

    Parameters
    ----------
    y_true : array-like or DataFrame of shape (n_samples, n_tasks) or (n_samples,)
        True labels.
    y_pred : array-like of the same shape
        Predicted labels.
    sample_weight : array-like of shape (n_samples,), default=None
        Weight of each row.

    Returns
    -------
    score : float
    """
    true_columns, _, _ = task_columns(y_true)
    pred_columns, _, _ = task_columns(y_pred)
    if len(true_columns) != len(pred_columns):
        raise ValueError(
            f"y_true has {len(true_columns)} task(s) but y_pred has {len(pred_columns)}."
        )
    n = len(true_columns[0])
    if len(pred_columns[0]) != n:
        raise ValueError(f"y_true has {n} rows but y_pred has {len(pred_columns[0])}.")
    _sample_weights(sample_weight, n)
    correct = np.ones(n, dtype=bool)
    any_known = np.zeros(n, dtype=bool)
    for truth, pred in zip(true_columns, pred_columns):
        known = _known(truth)
        any_known |= known
        correct[known] &= np.asarray(truth[known] == pred[known], dtype=bool)
    return _weighted_fraction(correct, any_known, sample_weight)


def _weighted_fraction(correct, scored, sample_weight) -> float:
    weights = np.ones(len(correct)) if sample_weight is None else np.asarray(sample_weight, float)
    weights = weights[scored]
    if weights.sum() <= 0:
        raise ValueError("No row has a known label to score.")
    return float(np.average(correct[scored], weights=weights))


def subset_accuracy_from_codes(true_codes, predicted_codes, *, sample_weight=None) -> float:
    """Subset accuracy on class indices; ``-1`` in ``true_codes`` is an unknown label.

    Parameters
    ----------
    true_codes : ndarray of int of shape (n_samples, n_tasks)
        True class indices; -1 unknown (skipped), any other negative value a
        label the model never saw (always wrong).
    predicted_codes : ndarray of int of shape (n_samples, n_tasks)
        Predicted class indices.
    sample_weight : array-like of shape (n_samples,), default=None
        Weight of each row.

    Returns
    -------
    score : float
    """
    known = true_codes != -1
    correct = np.all((true_codes == predicted_codes) | ~known, axis=1)
    return _weighted_fraction(correct, known.any(axis=1), sample_weight)


class _MultiTaskScorer(_MetadataRequester):
    """``scorer(estimator, X, y, sample_weight=None)`` for a metric on one or all tasks.

    A consumer of ``sample_weight`` in scikit-learn's metadata routing, like
    scikit-learn's own scorers: with routing enabled the weight reaches the
    scorer only after ``set_score_request(sample_weight=True)``, and passing
    one that was not requested raises ``UnsetMetadataPassedError``.
    """

    def __init__(self, metric: str, task=None, single_class="skip"):
        if metric not in _ALL_METRICS:
            raise ValueError(
                f"Unknown metric {metric!r}; expected one of {sorted(_ALL_METRICS)}."
            )
        _check_single_class(single_class)
        self.metric = metric
        self.task = task
        self.single_class = single_class

    def set_score_request(self, *, sample_weight=UNCHANGED):
        """Request ``sample_weight`` for this scorer when metadata routing is enabled.

        Only available with ``sklearn.set_config(enable_metadata_routing=True)``;
        see scikit-learn's metadata routing user guide.

        Parameters
        ----------
        sample_weight : bool, None or str, default=sklearn.utils.metadata_routing.UNCHANGED
            True: the scorer receives ``sample_weight`` when it is passed (to
            ``cross_validate(params=...)``, ``GridSearchCV.fit`` ...); False:
            it never does; None (the initial state): passing one raises
            ``UnsetMetadataPassedError``; a str: the scorer receives the
            metadata passed under that name as its ``sample_weight``.
            ``UNCHANGED`` keeps the current request.

        Returns
        -------
        self : object
            The scorer, with the updated request.
        """
        if not _routing_enabled():
            raise RuntimeError(
                "set_score_request is only available when metadata routing is enabled: "
                "call sklearn.set_config(enable_metadata_routing=True) first."
            )
        requests = self._get_metadata_request()
        if sample_weight is not UNCHANGED:
            requests.score.add_request(param="sample_weight", alias=sample_weight)
        self._metadata_request = requests
        return self

    def _get_metadata_request(self) -> MetadataRequest:
        # A scorer has no score method for scikit-learn to read its metadata
        # from; it consumes sample_weight in score, unrequested until told.
        if hasattr(self, "_metadata_request"):
            return get_routing_for_object(self._metadata_request)
        requests = MetadataRequest(owner=self)
        requests.score.add_request(param="sample_weight", alias=None)
        return requests

    def _accept_sample_weight(self) -> bool:
        # Asked by scikit-learn (GridSearchCV, multi-metric scoring) when routing
        # is disabled, to decide whether to pass sample_weight on.
        return True

    def _options(self) -> str:
        task = "" if self.task is None else f", task={self.task!r}"
        policy = "" if self.single_class == "skip" else f", single_class={self.single_class!r}"
        return task + policy

    def _routing_repr(self) -> str:
        # How scikit-learn's routing messages name the scorer ("Call `...`.set_score_request").
        return f"skmtl.metrics.make_task_scorer({self.metric!r}{self._options()})"

    def __call__(self, estimator, X, y, sample_weight=None) -> float:
        fitted_names = getattr(_final_model(estimator), "task_names_", None)
        if fitted_names is not None:  # tasks are scored by position: y's names must agree
            check_scored_tasks(y, fitted_names)
        if self.metric not in _REGRESSION_METRICS and is_regressor(estimator):
            return self._score_regressor_binary_tasks(estimator, X, y, sample_weight)
        if self.metric in _REGRESSION_METRICS:
            proba, classes, funnel = estimator.predict(X), None, []
        else:
            proba = _proba_list(estimator.predict_proba(X))
            classes = classes_per_task(estimator.classes_)
            funnel = list(getattr(_final_model(estimator), "funnel_", []))
        positive = _fitted_positive_labels(estimator)
        sign = 1.0 if _GREATER_IS_BETTER[self.metric] else -1.0
        if self.task is None:
            return sign * _mean(
                self.metric, y, proba, classes, sample_weight, funnel, self.single_class,
                positive,
            )
        t = self._task_index(estimator)
        scores, names = _task_scores(
            self.metric, y, proba, classes, sample_weight, funnel, positive
        )
        if np.isnan(scores[t]) and self.single_class == "raise":
            raise ValueError(f"{_undefined(self.metric, [names[t]])} (single_class='raise').")
        return sign * float(scores[t])

    def _score_regressor_binary_tasks(self, estimator, X, y, sample_weight) -> float:
        """A classification metric of a regressor's ``"log_loss"`` tasks, from ``predict``."""
        t = None if self.task is None else self._task_index(estimator)
        tasks = _regressor_binary_tasks(self.metric, estimator, t)
        predicted = np.asarray(estimator.predict(X), dtype=np.float64)
        predicted = predicted.reshape(predicted.shape[0], -1)
        scores, names = _binary_task_scores(self.metric, y, predicted, tasks, sample_weight)
        sign = 1.0 if _GREATER_IS_BETTER[self.metric] else -1.0
        if t is None:
            return sign * _mean_of(self.metric, scores, names, self.single_class)
        if np.isnan(scores[0]) and self.single_class == "raise":
            raise ValueError(f"{_undefined(self.metric, names)} (single_class='raise').")
        return sign * float(scores[0])

    def _task_index(self, estimator) -> int:
        names = list(getattr(_final_model(estimator), "task_names_", []))
        if isinstance(self.task, str):
            if self.task not in names:
                raise ValueError(f"Unknown task {self.task!r}; the model's tasks are {names}.")
            return names.index(self.task)
        if isinstance(self.task, bool) or not isinstance(self.task, Integral):
            raise TypeError(
                f"task must be a task name (str), an index (int) or None; got {self.task!r}."
            )
        if names and not -len(names) <= int(self.task) < len(names):
            raise ValueError(
                f"Task index {self.task} is out of range; the model has {len(names)} tasks "
                f"{names}."
            )
        if names and self.task >= 0:  # y's columns are ints: 1 may name the task at 0
            keyed_task_index(int(self.task), names, "the scorer's task")
        elif str(self.task) in names and names.index(str(self.task)) != self.task % len(names):
            # -1 names a task, and is the position of another
            raise ValueError(
                f"the scorer's task {self.task!r} is both a position from the end (task "
                f"{names[self.task]!r}) and the name of the task at position "
                f"{names.index(str(self.task))}; name it as a string "
                f"({str(self.task)!r}) for the name, or rename y's columns."
            )
        return int(self.task)

    def __repr__(self) -> str:
        prefix = "" if _GREATER_IS_BETTER[self.metric] else "neg_"
        return f"skmtl.metrics scorer({prefix}{self.metric}{self._options()})"


def make_task_scorer(metric: str, task=None, *, single_class="skip") -> _MultiTaskScorer:
    """A scorer for ``metric`` on one task (by name or index) or, with None, the mean over tasks.

    Losses are negated (greater is better), as scikit-learn's ``neg_*``
    scorers are.

    Parameters
    ----------
    metric : {"roc_auc", "average_precision", "log_loss", "r2", "mean_squared_error", "mean_absolute_error", "mean_poisson_deviance"}
        The per-task metric (the regression ones score ``predict``). On a
        :class:`~skmtl.MultiTaskRegressor`, the classification metrics score
        its ``loss="log_loss"`` tasks from their column of ``predict``
        (P(y = 1)); ROC AUC and average precision need 0/1 targets there, log
        loss also takes soft labels in [0, 1].
    task : str, int or None, default=None
        The task to score (a name from ``task_names_`` or an index); None
        averages over all tasks (a regressor's classification metric: over
        its ``"log_loss"`` tasks). A regressor's task that is not
        ``"log_loss"`` has no classification metric: scoring it raises
        ``ValueError``.
    single_class : {"skip", "nan", "raise"}, default="skip"
        What to do when the metric is undefined for a task in the scored
        ``y`` (its known labels hold a single class, or none), as in
        :func:`mean_roc_auc_score`: for the mean, "skip" leaves the task out
        and warns, "nan" returns NaN, "raise" raises ``ValueError``. A scorer
        of one task returns NaN for it, or raises with "raise".

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y, sample_weight=None) -> float``. With
        metadata routing enabled, ``scorer.set_score_request(sample_weight=True)``
        lets ``cross_validate`` and ``GridSearchCV`` pass it ``sample_weight``.
    """
    return _MultiTaskScorer(metric, task, single_class)


_SCORER_NAMES = {
    "mean_roc_auc": "roc_auc",
    "mean_average_precision": "average_precision",
    "neg_mean_log_loss": "log_loss",
    # Regression: means over tasks, as scikit-learn's multi-output "uniform_average".
    "mean_r2": "r2",
    "neg_mean_squared_error": "mean_squared_error",
    "neg_mean_absolute_error": "mean_absolute_error",
    "neg_mean_poisson_deviance": "mean_poisson_deviance",
}


def get_scorer(name: str, *, single_class="skip") -> _MultiTaskScorer:
    """A mean-over-tasks scorer by name.

    Parameters
    ----------
    name : {"mean_roc_auc", "mean_average_precision", "neg_mean_log_loss", "mean_r2", "neg_mean_squared_error", "neg_mean_absolute_error", "neg_mean_poisson_deviance"}
        The scorer (the last four for :class:`~skmtl.MultiTaskRegressor`;
        the first three score a regressor's ``loss="log_loss"`` tasks).
    single_class : {"skip", "nan", "raise"}, default="skip"
        What to do when the metric is undefined for a task in the scored
        ``y``, as in :func:`make_task_scorer`.

    Returns
    -------
    scorer : callable
        As from :func:`make_task_scorer`.
    """
    if name not in _SCORER_NAMES:
        raise ValueError(f"Unknown scorer {name!r}; expected one of {sorted(_SCORER_NAMES)}.")
    return _MultiTaskScorer(_SCORER_NAMES[name], single_class=single_class)


def per_task_scorers(
    metrics: Sequence[str], tasks: Sequence, *, single_class="skip"
) -> dict[str, _MultiTaskScorer]:
    """A ``scoring=`` dict with one scorer per (metric, task) and the per-metric means.

    Keys are ``"{metric}_{task}"`` and ``"mean_{metric}"`` (``"neg_..."`` for
    log loss), ready for ``GridSearchCV(scoring=..., refit=key)``.

    Parameters
    ----------
    metrics : sequence of str
        Metrics to compute, as in :func:`make_task_scorer`.
    tasks : sequence of str or int
        Task names (as in ``task_names_``, always strings) or indices. An
        int is a position, as in every setting that names tasks: where
        ``y``'s columns are integers, pass ``[str(c) for c in y.columns]``
        (an int that is also another task's name is refused when scoring).
    single_class : {"skip", "nan", "raise"}, default="skip"
        What to do when the metric is undefined for a task in the scored
        ``y``, as in :func:`make_task_scorer`; the same for every scorer.

    Returns
    -------
    scoring : dict of str to callable
        Scorers as from :func:`make_task_scorer`.
    """
    scoring = {}
    for metric in metrics:
        prefix = "" if _GREATER_IS_BETTER.get(metric, True) else "neg_"
        scoring[f"{prefix}mean_{metric}"] = _MultiTaskScorer(metric, single_class=single_class)
        for task in tasks:
            scoring[f"{prefix}{metric}_{task}"] = _MultiTaskScorer(metric, task, single_class)
    return scoring
