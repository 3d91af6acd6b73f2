"""Class weights, label-free chunks, score's weights and continued fits, as scikit-learn has them.

Each test below failed before its fix: a class_weight dict naming a class
absent from a fold raised where sklearn ignores it; partial_fit recomputed
"balanced" weights on every chunk (a chunk's 2 positives weighed 25 each); a
chunk without any known label recorded a loss of 0 and still moved the model
(Adam's momentum); score() took NaN weights; warm_start continued silently
after ``categorical_features``, ``min_frequency`` or ``max_categories`` changed.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.utils.class_weight import compute_class_weight

from skmtl import MultiTaskClassifier, MultiTaskRegressor


def _data(n=120, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 3))
    return X, (X[:, 0] > 0).astype(int)


def _quiet_fit(model, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(*args, **kwargs)


# ----------------------------------------------------------------- class_weight
def test_a_class_weight_key_absent_from_the_labels_is_ignored_as_in_sklearn():
    X, y = _data()
    labels = np.where(y == 1, "a", "b")
    weights = {"a": 1.0, "b": 2.0, "c": 10.0}  # "c": a class this fold does not have
    np.testing.assert_array_equal(
        compute_class_weight(weights, classes=np.array(["a", "b"]), y=labels), [1.0, 2.0]
    )
    settings = {"architecture": "shared_bottom", "max_iter": 2, "random_state": 0}
    extra = _quiet_fit(MultiTaskClassifier(class_weight=weights, **settings), X, labels)
    exact = _quiet_fit(MultiTaskClassifier(class_weight={"a": 1.0, "b": 2.0}, **settings),
                       X, labels)
    np.testing.assert_array_equal(extra.predict_proba(X), exact.predict_proba(X))


def test_a_class_weight_that_leaves_a_class_unweighted_and_names_another_is_refused():
    X, y = _data()
    labels = np.where(y == 1, "a", "b")
    with pytest.raises(ValueError, match=r"names class\(es\) \['B'\].*leaves class\(es\) \['b'\]"):
        MultiTaskClassifier("shared_bottom", max_iter=2, class_weight={"a": 1.0, "B": 2.0}).fit(
            X, labels
        )


@pytest.mark.parametrize("class_weight", ["balanced", [None, "balanced"], {"t1": "balanced"}])
def test_partial_fit_refuses_balanced_class_weights(class_weight):
    X, y = _data()
    Y = pd.DataFrame({"t0": y, "t1": 1 - y})
    with pytest.raises(ValueError, match="'balanced' is not supported by partial_fit"):
        MultiTaskClassifier("shared_bottom", class_weight=class_weight).partial_fit(X, Y)


# ------------------------------------------------------------ nothing to learn
def test_a_partial_fit_chunk_without_a_known_label_is_refused_and_changes_nothing():
    X, y = _data()
    model = MultiTaskClassifier("shared_bottom", random_state=0, batch_size=20).partial_fit(X, y)
    before = model.predict_proba(X)
    curve = list(model.loss_curve_)
    with pytest.raises(ValueError, match="no known label of positive weight"):
        model.partial_fit(X, np.full(len(y), np.nan))
    with pytest.raises(ValueError, match="no known label of positive weight"):
        weights = np.where(np.arange(len(y)) < 60, 0.0, 1.0)
        model.partial_fit(X, np.where(np.arange(len(y)) < 60, y, np.nan), sample_weight=weights)
    np.testing.assert_array_equal(model.predict_proba(X), before)
    assert model.loss_curve_ == curve


# ------------------------------------------------------------- score's weights
@pytest.mark.parametrize("estimator", [MultiTaskClassifier, MultiTaskRegressor])
@pytest.mark.parametrize(
    "weights, message",
    [(np.full(120, np.nan), "NaN"), (np.ones((120, 2)), "1D"), (-np.ones(120), "Negative")],
)
def test_score_checks_its_sample_weight_as_fit_does(estimator, weights, message):
    X, y = _data()
    model = _quiet_fit(estimator("shared_bottom", max_iter=1, random_state=0), X, y)
    with pytest.raises(ValueError, match=message):
        model.score(X, y, sample_weight=weights)


# ---------------------------------------------------------------- warm_start
@pytest.fixture
def frame():
    rng = np.random.RandomState(0)
    n = 200
    X = pd.DataFrame({
        "a": rng.normal(size=n), "k": rng.randint(0, 6, n), "c": rng.choice(list("abcdefgh"), n),
    })
    return X, np.column_stack([X.a > 0, X.c == "a"]).astype(int)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"categorical_features": ["k", "c"]}, r"categorical columns: \['c'\] -> \['k', 'c'\]"),
        ({"categorical_features": None}, r"categorical columns: \['c'\] -> \[\]"),
        ({"min_frequency": 50}, "min_frequency: 5 -> 50"),
        ({"max_categories": 2}, "max_categories: None -> 2"),
    ],
)
def test_warm_start_refuses_changed_encoder_settings(frame, change, message):
    X, y = frame
    model = _quiet_fit(MultiTaskClassifier(max_iter=2, random_state=0, warm_start=True), X, y)
    model.set_params(**change)
    with pytest.raises(ValueError, match=message):
        model.fit(X, y)


def test_warm_start_accepts_a_setting_that_selects_the_same_columns(frame):
    X, y = frame
    model = _quiet_fit(MultiTaskClassifier(max_iter=2, random_state=0, warm_start=True), X, y)
    _quiet_fit(model.set_params(categorical_features=["c"]), X, y)  # what from_dtype chose
    assert model.n_iter_ == 4


def test_a_chunk_whose_categorical_column_is_all_missing_continues(frame):
    """from_dtype cannot read a column that is all NaN (float64) or all None: not a change."""
    X, y = frame
    model = MultiTaskClassifier("shared_bottom", random_state=0)
    model.partial_fit(X[:100], y[:100])
    chunk = X[100:].copy()
    chunk["c"] = np.nan
    model.partial_fit(chunk, y[100:])
    as_array = X[100:].to_numpy(dtype=object)
    as_array[:, 2] = None
    array_model = MultiTaskClassifier("shared_bottom", random_state=0)
    array_model.partial_fit(X[:100].to_numpy(dtype=object), y[:100])
    array_model.partial_fit(as_array, y[100:])
    assert model.n_iter_ == array_model.n_iter_ == 2


def test_warm_start_refuses_changed_vocabulary_settings_of_sequence_columns():
    rng = np.random.RandomState(0)
    n = 120
    X = pd.DataFrame({
        "x": rng.normal(size=n),
        "history": [list(rng.choice(list("abcdef"), rng.randint(1, 4))) for _ in range(n)],
    })
    y = (X.x > 0).astype(int).to_numpy()
    model = _quiet_fit(MultiTaskClassifier("shared_bottom", max_iter=2, random_state=0,
                                           warm_start=True, sequence_features=["history"]), X, y)
    model.set_params(min_frequency=50)
    with pytest.raises(ValueError, match="min_frequency: 5 -> 50"):
        model.fit(X, y)


def test_a_changed_setting_is_refused_even_when_the_chunk_hides_the_column(frame):
    X, y = frame
    model = MultiTaskClassifier("shared_bottom", random_state=0, categorical_features=["k", "c"])
    model.partial_fit(X[:100], y[:100])
    chunk = X[100:].copy()
    chunk["k"] = np.nan
    model.set_params(categorical_features="from_dtype")
    with pytest.raises(ValueError, match="categorical columns"):
        model.partial_fit(chunk, y[100:])
