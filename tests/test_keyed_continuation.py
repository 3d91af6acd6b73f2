"""Per-task settings and targets across continued fits and helper functions.

Each case once gave a silent wrong answer or refused valid input: a
``pos_label`` changed between ``partial_fit`` calls swapped what the trained
heads mean, a ``task_weights`` Series was read by position, a funnel scored
without ``classes`` refused nullable labels, ``cross_val_predict`` refused a
single-class task that ``fit`` trains, a ``(n, 1)`` chunk turned a 1-D model's
outputs 2-D, and the regressor refused named tasks after an unnamed fit.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import KFold

from skmtl import MultiTaskClassifier, MultiTaskRegressor, metrics
from skmtl.model_selection import cross_val_predict

SMALL = {"max_iter": 3, "random_state": 0, "architecture": "shared_bottom",
         "expert_layer_sizes": (8,), "tower_layer_sizes": (4,), "early_stopping": False}


@pytest.fixture
def X():
    return pd.DataFrame(np.random.default_rng(0).normal(size=(300, 3)), columns=list("abc"))


def test_changing_pos_label_between_partial_fit_calls_is_refused(X):
    y = pd.Series(np.where(X.a > 0, "click", "no_click"), name="a")
    model = MultiTaskClassifier(**{**SMALL, "learning_rate_init": 0.02})
    for _ in range(10):
        model.partial_fit(X, y)
    before = model.predict_proba(X)
    assert roc_auc_score(y == "click", before[:, 0]) > 0.9
    model.set_params(pos_label="click")
    with pytest.raises(ValueError, match="pos_label now makes 'click' the positive class"):
        model.partial_fit(X.iloc[:50], y.iloc[:50])
    np.testing.assert_array_equal(model.predict_proba(X), before)  # left as it was
    model.set_params(pos_label=None)
    model.partial_fit(X.iloc[:50], y.iloc[:50])  # set back: continues


def test_changing_pos_label_for_warm_start_names_the_cause(X):
    y = pd.Series(np.where(X.a > 0, "click", "no_click"), name="a")
    model = MultiTaskClassifier(**SMALL).fit(X, y)
    model.set_params(pos_label="click", warm_start=True)
    with pytest.raises(ValueError, match="warm_start=True: pos_label now makes 'click'"):
        model.fit(X, y)


@pytest.mark.parametrize("Estimator", [MultiTaskClassifier, MultiTaskRegressor])
def test_task_weights_series_is_read_by_task_name(X, Estimator):
    y = pd.DataFrame({"a": (X.a > 0).astype(int), "b": (X.b > 0).astype(int)})
    if Estimator is MultiTaskRegressor:
        y = y.astype(float)
    weights = pd.Series({"b": 10.0, "a": 1.0})
    model = Estimator(**SMALL, task_weights=weights).fit(X, y)
    got = dict(zip(model.task_names_, model.objective_.task_weights.tolist()))
    assert got == {"a": 1.0, "b": 10.0}
    # A Series without names is positional, as an array.
    model = Estimator(**SMALL, task_weights=pd.Series([2.0, 1.0])).fit(X, y)
    assert model.objective_.task_weights.tolist() == [2.0, 1.0]
    with pytest.raises(ValueError, match="names a task twice"):
        Estimator(**SMALL, task_weights=pd.Series([2.0, 3.0], index=["a", "a"])).fit(X, y)


@pytest.mark.parametrize("dtype", ["Int64", "boolean", object])
def test_funnel_scores_without_classes_accept_nullable_and_object_labels(X, dtype):
    click = (X.a > 0).astype(int)
    buy = (click & (X.b > 0)).astype(float)
    buy[click == 0] = np.nan
    y = pd.DataFrame({"click": click, "buy": buy})
    proba = [np.column_stack([1 - p, p]) for p in np.random.default_rng(1).random((2, 300))]
    expected = metrics.per_task_scores("roc_auc", y, proba, funnel=[0, 1])
    if dtype == "boolean":
        typed = y.astype("boolean")
    elif dtype == object:
        typed = y.astype(object).where(y.notna(), None)
    else:
        typed = y.astype(dtype)
    np.testing.assert_allclose(metrics.per_task_scores("roc_auc", typed, proba, funnel=[0, 1]),
                               expected)


def test_cross_val_predict_fits_single_class_tasks_as_fit_does(X):
    y = pd.DataFrame({"click": (X.a > 0).astype(int), "conversion": np.zeros(300, int)})
    model = MultiTaskClassifier(**SMALL, funnel=("click", "conversion"))
    proba = cross_val_predict(model, X, y, cv=KFold(3), method="predict_proba")
    assert [p.shape for p in proba] == [(300, 2), (300, 2)]  # the funnel's positive class added
    np.testing.assert_allclose(proba[1].sum(axis=1), 1.0)
    labels = cross_val_predict(model, X, y, cv=KFold(3))
    assert labels.shape == (300, 2)
    lonely = y.rename(columns={"conversion": "rare"})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the set-aside task's UntrainableTaskWarning
        proba = cross_val_predict(MultiTaskClassifier(**SMALL), X, lonely, cv=KFold(3),
                                  method="predict_proba")
    assert proba[1].shape == (300, 1)


@pytest.mark.parametrize("Estimator", [MultiTaskClassifier, MultiTaskRegressor])
def test_a_column_chunk_continues_a_one_dimensional_model_as_one_dimensional(X, Estimator):
    y = (X.a > 0).astype(int).to_numpy()
    if Estimator is MultiTaskRegressor:
        y = y.astype(float)
    model = Estimator(**SMALL).partial_fit(X, y)
    model.partial_fit(X, y.reshape(-1, 1))
    assert model.predict(X[:2]).shape == (2,)
    if Estimator is MultiTaskClassifier:
        assert isinstance(model.classes_, np.ndarray)
        assert model.predict_proba(X[:2]).shape == (2, 2)


def test_regressor_continues_with_named_tasks_after_an_unnamed_fit(X):
    y = pd.DataFrame({"v": X.a * 3, "w": X.b})
    model = MultiTaskRegressor(**SMALL).fit(X, y.to_numpy())
    model.partial_fit(X, y)
    assert list(model.task_names_) == ["task_0", "task_1"]
    with pytest.raises(ValueError, match="Use fit to fit a new model"):
        model.partial_fit(X, y[["v"]])
    # The model's own names at other positions are still refused.
    with pytest.raises(ValueError):
        model.partial_fit(X, y.set_axis(["task_1", "task_0"], axis=1))


def test_multiclass_scores_average_over_the_classes_present(X):
    y = np.column_stack([(X.a > 0).astype(int), np.digitize(X.b, [-0.5, 2.0])])  # class 2 rare
    model = MultiTaskClassifier(**SMALL).fit(X, y)
    rows = y[:, 1] != 2
    proba = model.predict_proba(X[rows])
    per_class = [roc_auc_score(y[rows, 1] == c, proba[1][:, c]) for c in (0, 1)]
    scores = metrics.per_task_scores("roc_auc", y[rows], proba, classes=model.classes_)
    assert scores[1] == pytest.approx(np.mean(per_class))
    from sklearn.metrics import average_precision_score
    ap = [average_precision_score(y[rows, 1] == c, proba[1][:, c]) for c in (0, 1)]
    scores = metrics.per_task_scores("average_precision", y[rows], proba, classes=model.classes_)
    assert scores[1] == pytest.approx(np.mean(ap))
    # Every class present: the same number as scikit-learn's one-vs-rest macro AUC.
    full = model.predict_proba(X)
    expected = roc_auc_score(y[:, 1], full[1], multi_class="ovr", labels=[0, 1, 2])
    assert metrics.per_task_scores("roc_auc", y, full, classes=model.classes_)[1] == expected


def test_multiclass_scores_leave_out_a_class_whose_rows_all_weigh_zero(X):
    y = np.column_stack([(X.a > 0).astype(int), np.digitize(X.b, [-0.5, 2.0])])
    model = MultiTaskClassifier(**SMALL).fit(X, y)
    weights = np.where(y[:, 1] == 2, 0.0, 1.0)
    rows = weights > 0
    for metric in ("roc_auc", "average_precision"):
        weighted = metrics.per_task_scores(metric, y, model.predict_proba(X),
                                           classes=model.classes_, sample_weight=weights)
        dropped = metrics.per_task_scores(metric, y[rows], model.predict_proba(X[rows]),
                                          classes=model.classes_)
        assert weighted[1] == pytest.approx(dropped[1])


def test_a_meta_estimators_encoded_labels_get_a_hint_for_pos_label(X):
    from sklearn.ensemble import BaggingClassifier

    y = np.where(X.a > 0, "click", "no_click")
    inner = MultiTaskClassifier(**SMALL, pos_label="click", negative_sampling_rate=0.1)
    with pytest.raises(ValueError, match="meta-estimator's encoding"):
        BaggingClassifier(inner, n_estimators=1, random_state=0).fit(X, y)
    inner.set_params(pos_label=0)  # "click", the first of the sorted classes
    bag = BaggingClassifier(inner, n_estimators=1, random_state=0).fit(X, y)
    assert bag.predict_proba(X)[:, 0].mean() < 0.2  # corrected towards fewer clicks
