"""Model selection helpers that keep unknown labels unknown.

scikit-learn's :func:`sklearn.model_selection.cross_val_predict` label-encodes
``y`` before fitting when ``method="predict_proba"``: a NaN/None label then
becomes a class of its own, and every model is trained to predict "unknown"
(a task comes back with one column too many). :func:`cross_val_predict` here
takes the same arguments, passes ``y`` to every fit as it is, and returns the
predictions in skmtl's list format.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import clone, is_classifier
from sklearn.model_selection import check_cv
from sklearn.utils import _safe_indexing, indexable
from sklearn.utils.metadata_routing import (
    MetadataRouter,
    MethodMapping,
    _routing_enabled,
    process_routing,
)
from sklearn.utils.parallel import Parallel, delayed

from ._targets import classes_per_task, fit_targets

__all__ = ["cross_val_predict"]

_METHODS = ("predict", "predict_proba")


def cross_val_predict(
    estimator, X, y=None, *, groups=None, cv=None, n_jobs=None, verbose=0, params=None,
    pre_dispatch="2*n_jobs", method="predict",
):
    """Out-of-fold predictions for every row, with unknown (NaN/None) labels kept unknown.

    The same arguments as :func:`sklearn.model_selection.cross_val_predict`.
    Each fold's model is fitted on ``y`` as given (an unknown label stays out
    of its task's loss); its predictions are put in the rows of its test fold.

    Parameters
    ----------
    estimator : MultiTaskClassifier or a Pipeline ending in one
        Cloned and fitted on each training fold.
    X : array-like or DataFrame of shape (n_samples, n_features)
        Input features.
    y : array-like or DataFrame of shape (n_samples, n_tasks) or (n_samples,)
        Labels; NaN/None/``pd.NA`` marks an unknown label.
    groups : array-like of shape (n_samples,), default=None
        Group labels for a group splitter.
    cv : int, cross-validation generator or iterable, default=None
        As in scikit-learn (None: 5 folds). An integer gives stratified folds
        only for a 1-D ``y`` without unknown labels, else :class:`~sklearn.model_selection.KFold`.
        Every row must be in exactly one test fold.
    n_jobs : int, default=None
        Folds fitted in parallel (joblib).
    verbose : int, default=0
        joblib's verbosity.
    params : dict, default=None
        Parameters passed to ``fit``; those of length ``n_samples`` (e.g.
        ``sample_weight``) are split with the rows. With metadata routing
        enabled (``sklearn.set_config(enable_metadata_routing=True)``) they go
        where the estimator's and the splitter's requests say, as in
        scikit-learn (``groups`` too, which must then come in ``params``).
    pre_dispatch : int or str, default="2*n_jobs"
        As in joblib.
    method : {"predict", "predict_proba"}, default="predict"
        The estimator's method to call.

    Returns
    -------
    predictions : ndarray or list of ndarray
        ``"predict"``: labels of shape ``(n_samples, n_tasks)`` (``(n_samples,)``
        for 1-D ``y``). ``"predict_proba"``: one array of shape
        ``(n_samples, n_classes_t)`` per task (a single array for 1-D ``y``),
        columns ordered as the task's classes among all known labels of ``y``
        and those ``fit`` adds (a funnel step's or a ``pos_label`` dict's
        positive class, for a task showing only its negative one); a class
        that a fold's training rows lack gets probability 0 in that fold's
        rows.

    See Also
    --------
    sklearn.model_selection.cross_val_predict : Label-encodes ``y`` for
        ``method="predict_proba"``, which turns unknown labels into a class.

    Examples
    --------
    >>> import numpy as np
    >>> from sklearn.model_selection import KFold
    >>> from skmtl import MultiTaskClassifier
    >>> from skmtl.model_selection import cross_val_predict
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(120, 3))
    >>> y = np.column_stack([X[:, 0] > 0, X[:, 1] > 0]).astype(float)
    >>> y[::4, 1] = np.nan                     # task 1 unknown on a quarter of the rows
    >>> clf = MultiTaskClassifier(max_iter=5, random_state=0)
    >>> proba = cross_val_predict(clf, X, y, cv=KFold(3), method="predict_proba")
    >>> [p.shape for p in proba]               # two classes per task, no "unknown" class
    [(120, 2), (120, 2)]
    """
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}; got {method!r}.")
    if not is_classifier(estimator):
        raise TypeError(
            "skmtl.model_selection.cross_val_predict takes a classifier (a MultiTaskClassifier "
            f"or a Pipeline ending in one); got {type(estimator).__name__}. For a "
            "MultiTaskRegressor use sklearn.model_selection.cross_val_predict."
        )
    X, y, groups = indexable(X, y, groups)
    params = dict(params or {})
    n_samples = len(X) if not hasattr(X, "shape") else X.shape[0]
    # Every task's classes among its known labels; a task of one class is fitted as fit
    # fits it (completed from pos_label or a funnel, or set aside), not refused here.
    targets = fit_targets(y, allow_single_class=True)
    cv = check_cv(cv, _stratification_target(y, targets), classifier=True)
    split_params = {"groups": groups}
    if _routing_enabled():  # as scikit-learn's: params go where the requests say
        if groups is not None:
            raise ValueError(
                "groups can only be passed in params when metadata routing is enabled "
                "(sklearn.set_config(enable_metadata_routing=True)): params={'groups': ...}."
            )
        router = (
            MetadataRouter(owner="cross_val_predict")
            .add(estimator=estimator, method_mapping=MethodMapping().add(caller="fit", callee="fit"))
            .add(splitter=cv, method_mapping=MethodMapping().add(caller="fit", callee="split"))
        )
        routed = process_routing(router, "fit", **params)
        params, split_params = dict(routed.estimator.fit), dict(routed.splitter.split)
    splits = list(cv.split(X, y, **split_params))
    test_rows = np.concatenate([test for _, test in splits])
    if len(test_rows) != n_samples or not np.array_equal(np.sort(test_rows), np.arange(n_samples)):
        raise ValueError(
            "cross_val_predict needs a partition: every row in exactly one test fold."
        )
    parallel = Parallel(n_jobs=n_jobs, verbose=verbose, pre_dispatch=pre_dispatch)
    folds = parallel(
        delayed(_fit_and_predict)(clone(estimator), X, y, train, test, params, n_samples, method)
        for train, test in splits
    )
    if method == "predict":
        return _assemble_labels(folds, n_samples, targets.one_dimensional)
    return _assemble_probabilities(folds, n_samples, targets)


def _stratification_target(y, targets):
    """``y`` for an integer ``cv`` to stratify on, or None (plain KFold) when it cannot."""
    if targets.one_dimensional and bool((targets.codes >= 0).all()):
        return np.asarray(y).ravel()
    return None


def _fit_and_predict(estimator, X, y, train, test, params, n_samples, method):
    fold_params = {
        name: _safe_indexing(value, train)
        if hasattr(value, "__len__") and not isinstance(value, str) and len(value) == n_samples
        else value
        for name, value in params.items()
    }
    estimator.fit(_safe_indexing(X, train), _safe_indexing(y, train), **fold_params)
    prediction = getattr(estimator, method)(_safe_indexing(X, test))
    return test, prediction, classes_per_task(estimator.classes_)


def _assemble_labels(folds, n_samples, one_dimensional):
    parts = [np.asarray(prediction).reshape(len(test), -1) for test, prediction, _ in folds]
    out = np.empty((n_samples, parts[0].shape[1]), dtype=np.result_type(*parts))
    for (test, _, _), part in zip(folds, parts):
        out[test] = part
    return out[:, 0] if one_dimensional else out


def _assemble_probabilities(folds, n_samples, targets):
    # y's classes and those the folds' models were fitted with: fit may add a task's
    # positive class (pos_label, a funnel step) that y does not show.
    task_classes = [
        np.unique(np.concatenate([np.asarray(c), *(np.asarray(f[2][t]) for f in folds)]))
        for t, c in enumerate(targets.classes)
    ]
    out = [np.zeros((n_samples, len(c))) for c in task_classes]
    for test, prediction, fold_classes in folds:
        prediction = prediction if isinstance(prediction, list) else [prediction]
        for t, (proba, classes) in enumerate(zip(prediction, fold_classes)):
            columns = [_position(task_classes[t], c) for c in classes]
            out[t][np.ix_(test, columns)] = proba
    return out[0] if targets.one_dimensional else out


def _position(classes: np.ndarray, label) -> int:
    matches = np.flatnonzero(classes == label)
    if not len(matches):  # cannot happen: the classes are the folds' and y's
        raise ValueError(f"class {label!r} is not among the labels of y")
    return int(matches[0])
