"""skmtl.model_selection.cross_val_predict: unknown labels stay unknown (issue 12, item 2)."""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import KFold, ShuffleSplit
from sklearn.model_selection import cross_val_predict as sklearn_cross_val_predict

from skmtl import MultiTaskClassifier
from skmtl.model_selection import cross_val_predict

FAST = dict(max_iter=4, expert_layer_sizes=(8,), tower_layer_sizes=(4,), random_state=0)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.fixture
def data():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(150, 4))
    y = np.column_stack([X[:, 0] > 0, X[:, 1] + X[:, 2] > 0]).astype(float)
    return X, y


def test_unknown_labels_are_not_a_class(data):
    X, y = data
    y = y.copy()
    y[::3, 1] = np.nan
    cv = KFold(3, shuffle=True, random_state=0)
    proba = cross_val_predict(MultiTaskClassifier(**FAST), X, y, cv=cv, method="predict_proba")
    assert [p.shape for p in proba] == [(150, 2), (150, 2)]
    # Each row holds the prediction of the model that did not see it, fitted on y as given.
    for train, test in cv.split(X):
        fold = MultiTaskClassifier(**FAST).fit(X[train], y[train])
        for expected, got in zip(fold.predict_proba(X[test]), proba):
            assert np.array_equal(got[test], expected)
    # scikit-learn's own turns NaN into a third class of task 1.
    theirs = sklearn_cross_val_predict(MultiTaskClassifier(**FAST), X, y, cv=cv, method="predict_proba")
    assert theirs[1].shape == (150, 3)


def test_same_as_sklearn_when_every_label_is_known(data):
    X, y = data
    cv = KFold(3, shuffle=True, random_state=1)
    for method in ("predict", "predict_proba"):
        ours = cross_val_predict(MultiTaskClassifier(**FAST), X, y, cv=cv, method=method)
        theirs = sklearn_cross_val_predict(MultiTaskClassifier(**FAST), X, y, cv=cv, method=method)
        for a, b in zip(ours, theirs):
            assert np.array_equal(a, b)


def test_a_class_missing_from_a_training_fold_gets_probability_zero():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(90, 3))
    y = pd.Series(np.where(X[:, 0] > 0, "a", "b"), name="kind")
    y.iloc[:4] = "c"  # only in the first test fold
    proba = cross_val_predict(MultiTaskClassifier(**FAST), X, y, cv=KFold(3), method="predict_proba")
    assert proba.shape == (90, 3)
    assert np.all(proba[:30, 2] == 0) and np.allclose(proba.sum(axis=1), 1)
    assert np.all(proba[30:, 2] > 0)
    labels = cross_val_predict(MultiTaskClassifier(**FAST), X, y, cv=KFold(3))
    assert labels.shape == (90,) and set(labels) <= {"a", "b", "c"}


def test_fit_params_are_split_with_the_rows(data):
    X, y = data
    weights = np.linspace(0.5, 2, len(X))
    cv = KFold(3)
    ours = cross_val_predict(
        MultiTaskClassifier(**FAST), X, y, cv=cv, method="predict_proba",
        params={"sample_weight": weights},
    )
    train, test = next(cv.split(X))
    fold = MultiTaskClassifier(**FAST).fit(X[train], y[train], sample_weight=weights[train])
    assert np.array_equal(ours[0][test], fold.predict_proba(X[test])[0])


def test_bad_arguments(data):
    X, y = data
    with pytest.raises(ValueError, match=r"method must be one of"):
        cross_val_predict(MultiTaskClassifier(**FAST), X, y, method="decision_function")
    with pytest.raises(ValueError, match=r"every row in exactly one test fold"):
        cross_val_predict(
            MultiTaskClassifier(**FAST), X, y, cv=ShuffleSplit(2, test_size=0.3, random_state=0)
        )


def test_tasks_of_mixed_label_types_cross_validate_with_a_splitter(data):
    """Issue 12, item 10: an integer cv fails inside scikit-learn on such y (documented in the
    user guide); the documented way, a splitter, works."""
    from sklearn.model_selection import GridSearchCV

    X, y = data
    mixed = pd.DataFrame({"a": y[:, 0].astype(int), "b": np.where(y[:, 1] == 1, "yes", "no")})
    grid = {"n_experts": [2]}
    with pytest.raises(TypeError, match=r"'<' not supported between instances of 'str' and 'int'"):
        GridSearchCV(MultiTaskClassifier(**FAST), grid, cv=3).fit(X, mixed)
    search = GridSearchCV(MultiTaskClassifier(**FAST), grid, cv=KFold(3)).fit(X, mixed)
    assert search.best_estimator_.classes_[1].tolist() == ["no", "yes"]
