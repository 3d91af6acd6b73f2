"""skmtl.metrics against scikit-learn's per-task metrics."""

import copy
import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.frozen import FrozenEstimator
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    log_loss,
    mean_squared_error,
    r2_score,
    roc_auc_score,
)
from sklearn.model_selection import GridSearchCV, KFold, cross_validate
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from skmtl import MultiTaskClassifier, MultiTaskRegressor, metrics
from skmtl.datasets import make_ad_funnel, make_click_watch_time

TINY = {"max_iter": 3, "expert_layer_sizes": (4,), "tower_layer_sizes": (4,), "random_state": 0}


@pytest.fixture
def scored():
    rng = np.random.RandomState(0)
    y = np.column_stack([rng.randint(0, 2, 50), rng.randint(0, 3, 50)]).astype(float)
    p0 = rng.rand(50)
    p1 = rng.dirichlet([1, 1, 1], size=50)
    proba = [np.column_stack([1 - p0, p0]), p1]
    return y, proba


def test_means_equal_per_task_sklearn_metrics(scored):
    y, proba = scored
    auc = [roc_auc_score(y[:, 0], proba[0][:, 1]), roc_auc_score(y[:, 1], proba[1], multi_class="ovr")]
    assert metrics.mean_roc_auc_score(y, proba) == pytest.approx(np.mean(auc))
    ll = [log_loss(y[:, 0], proba[0]), log_loss(y[:, 1], proba[1])]
    assert metrics.mean_log_loss(y, proba) == pytest.approx(np.mean(ll))
    ap0 = average_precision_score(y[:, 0], proba[0][:, 1])
    assert metrics.per_task_scores("average_precision", y, proba)[0] == pytest.approx(ap0)


def test_unknown_labels_are_skipped_per_task(scored):
    y, proba = scored
    y_nan = y.copy()
    y_nan[:10, 0] = np.nan
    expected = roc_auc_score(y[10:, 0], proba[0][10:, 1])
    assert metrics.per_task_scores("roc_auc", y_nan, proba)[0] == pytest.approx(expected)
    # Task 1 keeps all its rows.
    assert metrics.per_task_scores("roc_auc", y_nan, proba)[1] == pytest.approx(
        roc_auc_score(y[:, 1], proba[1], multi_class="ovr")
    )


def test_per_task_scores_as_series_names_the_tasks_as_the_model_does(scored, mixed_data):
    y, proba = scored
    scores = metrics.per_task_scores("roc_auc", y, proba)
    series = metrics.per_task_scores("roc_auc", y, proba, as_series=True)
    assert isinstance(series, pd.Series) and series.name == "roc_auc"
    assert list(series.index) == ["task_0", "task_1"]
    np.testing.assert_array_equal(series.to_numpy(), scores)
    # Names from y's columns, the same as the fitted task_names_.
    X, y_frame = mixed_data
    clf = MultiTaskClassifier(max_iter=2, random_state=0).fit(X, y_frame)
    series = metrics.per_task_scores(
        "log_loss", y_frame, clf.predict_proba(X), classes=clf.classes_, as_series=True
    )
    assert list(series.index) == list(clf.task_names_) == list(y_frame.columns)
    one = metrics.per_task_scores("roc_auc", y_frame.iloc[:, 0], clf.predict_proba(X)[0],
                                  classes=clf.classes_[0], as_series=True)
    assert list(one.index) == [y_frame.columns[0]]


def test_sklearn_log_loss_scorer_measures_another_quantity(numeric_data):
    """Why the docs steer GridSearchCV to skmtl.metrics: sklearn reads the tasks as one problem."""
    from sklearn.metrics import get_scorer

    X, y = numeric_data
    clf = MultiTaskClassifier(**TINY).fit(X, y)
    positive = np.column_stack([p[:, 1] for p in clf.predict_proba(X)])
    with pytest.warns(UserWarning, match="do not sum to one"):
        theirs = get_scorer("neg_log_loss")(clf, X, y)
    # The log of each task's positive-class probability where that task is 1; nothing else.
    assert theirs == pytest.approx(np.mean(np.sum(y * np.log(positive), axis=1)))
    ours = metrics.get_scorer("neg_mean_log_loss")(clf, X, y)
    assert ours == pytest.approx(-np.mean([log_loss(y[:, t], p) for t, p in
                                           enumerate(clf.predict_proba(X))]))
    assert abs(theirs - ours) > 1e-3


def test_subset_accuracy_skips_unknown_labels():
    y_true = pd.DataFrame({"a": [1, 0, 1, None], "b": ["x", None, "y", None]})
    y_pred = np.array([[1, "x"], [1, "y"], [1, "x"], [0, "y"]], dtype=object)
    # row 0 right, row 1 wrong on a, row 2 wrong on b, row 3 has no known label
    assert metrics.subset_accuracy_score(y_true, y_pred) == pytest.approx(1 / 3)
    full = np.array([[1, 0], [0, 1]])
    assert metrics.subset_accuracy_score(full, full[[0, 0]]) == accuracy_score(full, full[[0, 0]])


def test_task_scorer_by_name(mixed_data):
    X, y = mixed_data
    clf = MultiTaskClassifier(max_iter=10, random_state=0).fit(X, y)
    proba = clf.predict_proba(X)
    assert metrics.make_task_scorer("roc_auc", "buy")(clf, X, y) == pytest.approx(
        roc_auc_score(y["buy"], proba[1][:, 1])
    )
    assert metrics.get_scorer("neg_mean_log_loss")(clf, X, y) == pytest.approx(
        -np.mean([log_loss(y["click"], proba[0]), log_loss(y["buy"], proba[1])])
    )
    with pytest.raises(ValueError, match="Unknown task 'nope'"):
        metrics.make_task_scorer("roc_auc", "nope")(clf, X, y)


def test_scorers_read_the_fitted_model_through_a_pipeline():
    """A Pipeline forwards predict_proba and classes_, not task_names_, funnel_ or loss_.

    Before the scorers looked through it, a funnel model in a Pipeline was
    scored as a plain one (its conversion labels missing where not clicked
    were left out instead of counting as 0): on 5,000 impressions, mean ROC
    AUC 0.62 against the model's own 0.68, with no error; a task named in the
    scorer was "unknown".
    """
    X, y = make_ad_funnel(n_samples=3000, conversion_when_not_clicked="nan", random_state=0,
                          return_X_y=True)
    model = MultiTaskClassifier(funnel=("click", "conversion"), max_iter=3, random_state=0)
    pipe = make_pipeline(FunctionTransformer(), make_pipeline(model)).fit(X, y)  # nested
    fitted = pipe[-1][-1]
    for scorer in (metrics.get_scorer("mean_roc_auc"), metrics.get_scorer("neg_mean_log_loss"),
                   metrics.make_task_scorer("roc_auc", "conversion")):
        assert scorer(pipe, X, y) == scorer(fitted, X, y)
    plain = copy.copy(fitted)
    plain.funnel_ = []  # what the Pipeline's scores were: the funnel_ matters
    assert metrics.get_scorer("mean_roc_auc")(plain, X, y) < metrics.get_scorer("mean_roc_auc")(pipe, X, y)


def test_scorers_read_the_fitted_model_through_a_search_and_a_frozen_estimator():
    """With a declared positive class that sorts first, a GridSearchCV-wrapped model scored
    average precision of the other class (0.9708 against 0.8990 on a review's data)."""
    rng = np.random.RandomState(0)
    X = pd.DataFrame({"a": rng.randn(400), "b": rng.randn(400)})
    y = pd.Series(np.where(2 * X["a"] + rng.randn(400) > 0.8, "clicked", "not_clicked"))
    params = dict(max_iter=4, random_state=0, early_stopping=False, pos_label="clicked")
    scorer = metrics.get_scorer("mean_average_precision")
    search = GridSearchCV(MultiTaskClassifier(**params), {"alpha": [0.0]}, cv=KFold(2),
                          scoring=scorer).fit(X, y)
    model = search.best_estimator_
    expected = average_precision_score(y == "clicked", model.predict_proba(X)[:, 0])
    assert scorer(model, X, y) == pytest.approx(expected, abs=1e-12)
    assert scorer(search, X, y) == scorer(model, X, y)
    assert scorer(FrozenEstimator(model), X, y) == scorer(model, X, y)


def test_regressor_probability_tasks_are_scored_through_a_pipeline():
    feed = make_click_watch_time(n_samples=1500, n_features=4, random_state=0)
    model = MultiTaskRegressor(loss={"click": "log_loss"}, max_iter=3, random_state=0)
    pipe = make_pipeline(FunctionTransformer(), model).fit(feed.data, feed.target)
    scorer = metrics.make_task_scorer("roc_auc", "click")
    assert scorer(pipe, feed.data, feed.target) == scorer(pipe[-1], feed.data, feed.target)


@pytest.mark.parametrize("fitted_on", ["bool", "int"])
def test_bool_and_0_1_labels_are_the_same_labels(numeric_data, fitted_on):
    """score and a declared partial_fit class match True with 1 (as sklearn's metrics do)."""
    X, y = numeric_data
    as_fitted = y.astype(bool) if fitted_on == "bool" else y
    clf = MultiTaskClassifier(max_iter=40, random_state=0).fit(X, as_fitted)
    expected = clf.score(X, as_fitted)
    assert 0.5 < expected < 1  # was 0.0 for the other dtype: no label matched
    for labels in (y.astype(bool), y, y.astype(float)):
        assert clf.score(X, labels) == expected
    streamed = MultiTaskClassifier(max_iter=1, random_state=0)
    streamed.partial_fit(X, y, classes=[[False, True], [False, True]])
    assert streamed.classes_[0].tolist() == [False, True]
    with pytest.raises(ValueError, match=r"labels \[0.5\] that are not among its classes"):
        streamed.partial_fit(X[:2], np.array([[0.5, 1.0], [1.0, 0.0]]))


def test_score_is_subset_accuracy(numeric_data):
    X, y = numeric_data
    clf = MultiTaskClassifier(max_iter=10, random_state=0).fit(X, y)
    assert clf.score(X, y) == accuracy_score(y, clf.predict(X))


@pytest.fixture
def single_class_fold():
    """KFold(3) data whose first test fold holds only class 0 of task_1."""
    rng = np.random.RandomState(1)
    X = rng.normal(size=(45, 3))
    y = np.column_stack([np.arange(45) % 2, (np.arange(45) % 3 == 0) & (np.arange(45) >= 15)])
    return X, y.astype(int)


@pytest.fixture
def single_class_task():
    """y_true, y_proba and classes of two binary tasks; task_1 shows only class 1."""
    y = np.array([[0, 1], [1, 1], [0, 1], [1, 1]])
    p = np.array([0.2, 0.7, 0.4, 0.6])
    return y, [np.column_stack([1 - p, p])] * 2, [np.array([0, 1])] * 2


@pytest.mark.parametrize("mean", [metrics.mean_roc_auc_score, metrics.mean_average_precision_score])
def test_single_class_policies(single_class_task, mean):
    y, proba, classes = single_class_task
    with pytest.warns(UndefinedMetricWarning, match=r"leaves out task\(s\) \['task_1'\]"):
        assert mean(y, proba, classes=classes) == pytest.approx(1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(mean(y, proba, classes=classes, single_class="nan"))
        assert mean(y[:, :1], proba[:1], classes=classes[:1], single_class="raise") == 1.0
    with pytest.raises(ValueError, match=r"undefined for task\(s\) \['task_1'\]"):
        mean(y, proba, classes=classes, single_class="raise")
    with pytest.raises(ValueError, match="single_class must be one of"):
        mean(y, proba, classes=classes, single_class="drop")


def test_per_task_scores_are_nan_where_undefined(single_class_task):
    y, proba, classes = single_class_task
    scores = metrics.per_task_scores("roc_auc", y, proba, classes=classes)
    assert scores[0] == pytest.approx(1.0) and np.isnan(scores[1])
    y_none = y.astype(float)
    y_none[:, 1] = np.nan  # no known label: undefined for log loss too
    assert np.isnan(metrics.per_task_scores("log_loss", y_none, proba, classes=classes)[1])


def test_every_task_undefined(single_class_task):
    y, proba, classes = single_class_task
    with pytest.raises(ValueError, match="undefined for every task"):
        metrics.mean_roc_auc_score(y[:, 1:], proba[1:], classes=classes[1:])
    nan = metrics.mean_roc_auc_score(y[:, 1:], proba[1:], classes=classes[1:], single_class="nan")
    assert np.isnan(nan)


def test_single_class_fold_under_cross_validate(single_class_fold):
    X, y = single_class_fold
    clf = MultiTaskClassifier(**TINY)
    cv = KFold(3)
    with pytest.warns(UndefinedMetricWarning, match=r"\['task_1'\]"):
        skipped = cross_validate(clf, X, y, cv=cv, scoring=metrics.get_scorer("mean_roc_auc"),
                                 return_estimator=True)
    fold0 = skipped["estimator"][0]
    assert skipped["test_score"][0] == pytest.approx(
        roc_auc_score(y[:15, 0], fold0.predict_proba(X[:15])[0][:, 1])
    )
    invalid = cross_validate(
        clf, X, y, cv=cv, scoring=metrics.get_scorer("mean_roc_auc", single_class="nan"),
        error_score="raise",
    )
    assert np.isnan(invalid["test_score"][0]) and np.all(np.isfinite(invalid["test_score"][1:]))
    np.testing.assert_allclose(invalid["test_score"][1:], skipped["test_score"][1:])
    with pytest.raises(ValueError, match=r"undefined for task\(s\) \['task_1'\]"):
        cross_validate(
            clf, X, y, cv=cv, error_score="raise",
            scoring=metrics.per_task_scorers(["roc_auc"], ["task_0"], single_class="raise"),
        )


def test_task_scorer_policy(single_class_fold):
    X, y = single_class_fold
    clf = MultiTaskClassifier(**TINY).fit(X[15:], y[15:])
    assert np.isnan(metrics.make_task_scorer("roc_auc", "task_1")(clf, X[:15], y[:15]))
    with pytest.raises(ValueError, match=r"undefined for task\(s\) \['task_1'\]"):
        metrics.make_task_scorer("roc_auc", 1, single_class="raise")(clf, X[:15], y[:15])
    assert "single_class='nan'" in repr(metrics.make_task_scorer("roc_auc", single_class="nan"))


# ----------------------------------------------- found by a review of skmtl.metrics (2026-11-30)
def test_regression_predictions_of_another_shape_are_refused_or_stacked():
    """A transposed or flattened y_pred was reshaped silently (MSE [1.38, 0.80] for [2.61, 1.33])."""
    rng = np.random.RandomState(0)
    y, pred = rng.normal(size=(20, 2)), rng.normal(size=(20, 2))
    expected = [mean_squared_error(y[:, t], pred[:, t]) for t in range(2)]
    np.testing.assert_allclose(metrics.per_task_scores("mean_squared_error", y, pred), expected)
    as_list = [pred[:, 0], pred[:, 1]]  # one array per task, as y_proba may be given
    np.testing.assert_allclose(metrics.per_task_scores("mean_squared_error", y, as_list),
                               expected)
    rows = list(pred)  # a list of rows, as scikit-learn reads a list
    np.testing.assert_allclose(metrics.per_task_scores("mean_squared_error", y, rows), expected)
    for bad in (pred.T, pred.ravel(), np.vstack([pred, pred])):
        with pytest.raises(ValueError, match="y_pred has shape"):
            metrics.per_task_scores("mean_squared_error", y, bad)
    square, square_pred = y[:2], pred[:2]  # 2 rows, 2 tasks: rows or tasks?
    with pytest.raises(ValueError, match="rows or tasks"):
        metrics.per_task_scores("mean_squared_error", square, list(square_pred))


def test_single_class_policies_apply_without_classes():
    """Without classes=, a task with one known class raised a column-count error under every
    policy; it is undefined, as documented."""
    y = np.array([[0, 0], [1, 0], [0, 0], [1, 0]])
    proba = [np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.1, 0.9]])] * 2
    np.testing.assert_array_equal(metrics.per_task_scores("roc_auc", y, proba), [1.0, np.nan])
    assert np.isnan(metrics.mean_roc_auc_score(y, proba, single_class="nan"))
    with pytest.warns(UndefinedMetricWarning):
        assert metrics.mean_roc_auc_score(y, proba) == 1.0
    with pytest.raises(ValueError, match="single_class='raise'"):
        metrics.mean_roc_auc_score(y, proba, single_class="raise")


def test_labels_outside_the_classes_are_refused_as_sklearn_does():
    """ROC AUC and average precision counted label 2 as a negative of classes [0, 1]."""
    y = np.array([0, 1, 2, 1, 0])
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.4, 0.6], [0.3, 0.7], [0.7, 0.3]])
    for metric in ("roc_auc", "average_precision", "log_loss"):
        with pytest.raises(ValueError, match=r"labels \[2\] that are not among its classes"):
            metrics.per_task_scores(metric, y, proba, classes=[np.array([0, 1])])


def test_multiclass_roc_auc_takes_classes_in_any_column_order():
    rng = np.random.RandomState(0)
    y = rng.randint(0, 3, size=60)
    proba = rng.dirichlet(np.ones(3), size=60)
    expected = roc_auc_score(y, proba, multi_class="ovr")
    order = [2, 0, 1]
    got = metrics.per_task_scores("roc_auc", y, proba[:, order], classes=[np.array(order)])
    assert got[0] == pytest.approx(expected)


def test_length_mismatches_name_the_problem():
    y = np.array([0, 1, 0, 1])
    proba = np.array([[0.8, 0.2], [0.3, 0.7], [0.6, 0.4], [0.1, 0.9]])
    with pytest.raises(ValueError, match=r"sample_weight has shape \(6,\)"):
        metrics.per_task_scores("roc_auc", y, proba, sample_weight=np.ones(6))
    with pytest.raises(ValueError, match=r"y_proba has shape \(3, 2\), but y_true has 4 rows"):
        metrics.per_task_scores("roc_auc", y, proba[:3])
    with pytest.raises(ValueError, match="y_true has 4 rows but y_pred has 3"):
        metrics.subset_accuracy_score(y, y[:3])


# ------------------------------------------------- y's task names when scoring a fitted model
def _named_data():
    rng = np.random.RandomState(0)
    X = pd.DataFrame(rng.normal(size=(200, 3)), columns=["a", "b", "c"])
    y = pd.DataFrame({"click": (X.a > 0).astype(int), "buy": (X.a + X.b > 0.5).astype(int)})
    return X, y


def test_scorers_work_when_y_columns_are_integers_unlike_their_positions():
    from skmtl import MultiTaskClassifier

    X, y = _named_data()
    fast = {"max_iter": 3, "random_state": 0}
    for columns in ([1, 2], [1, 0], ["1", "2"]):
        y_int = pd.DataFrame(y.to_numpy(), columns=columns)
        model = MultiTaskClassifier(**fast).fit(X, y_int)
        proba = model.predict_proba(X)
        expected = np.mean([roc_auc_score(y_int.iloc[:, t], proba[t][:, 1]) for t in range(2)])
        assert metrics.get_scorer("mean_roc_auc")(model, X, y_int) == pytest.approx(expected)
    # early stopping scores every epoch through the same scorer
    MultiTaskClassifier(**fast, early_stopping=True, scoring="mean_roc_auc").fit(
        X, pd.DataFrame(y.to_numpy(), columns=["1", "2"])
    )


def test_an_int_task_that_is_also_another_tasks_name_is_refused():
    from skmtl import MultiTaskRegressor

    X, _ = _named_data()
    y_int = pd.DataFrame({1: 3 * X.a.to_numpy(), 0: X.b.to_numpy()})
    model = MultiTaskRegressor(max_iter=3, random_state=0).fit(X, y_int)
    with pytest.raises(ValueError, match=r"both the position of task '0' and the name"):
        metrics.make_task_scorer("r2", task=1)(model, X, y_int)
    by_name = metrics.make_task_scorer("r2", task="1")(model, X, y_int)
    assert by_name == pytest.approx(r2_score(y_int[1], model.predict(X)[:, 0]))
    assert metrics.make_task_scorer("r2", task=-1)(model, X, y_int) == pytest.approx(
        r2_score(y_int[0], model.predict(X)[:, 1])
    )
    with pytest.raises(TypeError, match=r"task must be a task name"):
        metrics.make_task_scorer("r2", task=True)(model, X, y_int)
    # -1 is a position from the end, and the name of the task at position 0 here
    y_negative = pd.DataFrame({-1: 3 * X.a.to_numpy(), 0: X.b.to_numpy()})
    model = MultiTaskRegressor(max_iter=3, random_state=0).fit(X, y_negative)
    with pytest.raises(ValueError, match=r"both a position from the end \(task '0'\) and the"):
        metrics.make_task_scorer("r2", task=-1)(model, X, y_negative)
    # where both meanings are the same task, it is that task
    y_same = pd.DataFrame({"a": 3 * X.a.to_numpy(), "-1": X.b.to_numpy()})
    model = MultiTaskRegressor(max_iter=3, random_state=0).fit(X, y_same)
    assert metrics.make_task_scorer("r2", task=-1)(model, X, y_same) == pytest.approx(
        r2_score(y_same["-1"], model.predict(X)[:, 1])
    )


@pytest.mark.parametrize("how", ["reordered", "renamed"])
def test_scoring_refuses_a_y_whose_columns_are_not_the_fitted_tasks(how):
    from skmtl import MultiTaskClassifier, MultiTaskRegressor

    X, y = _named_data()
    bad = y[["buy", "click"]] if how == "reordered" else y.set_axis(["foo", "bar"], axis=1)
    classifier = MultiTaskClassifier(max_iter=2, random_state=0).fit(X, y)
    regressor = MultiTaskRegressor(max_iter=2, random_state=0).fit(X, y.astype(float))
    for model, scorer in ((classifier, "roc_auc"), (regressor, "r2")):
        with pytest.raises(ValueError, match=r"fitted tasks in the fitted order"):
            metrics.make_task_scorer(scorer, "click")(model, X, bad)
        with pytest.raises(ValueError, match=r"fitted tasks in the fitted order"):
            model.score(X, bad)
    # the fitted order scores; a model fitted without names takes any but its own reordered
    metrics.make_task_scorer("roc_auc", "click")(classifier, X, y)
    unnamed = MultiTaskClassifier(max_iter=2, random_state=0).fit(X, y.to_numpy())
    assert unnamed.score(X, bad) == unnamed.score(X, bad.to_numpy())
    unnamed.partial_fit(X, bad)  # continues too, the names ignored as when fitted
    with pytest.raises(ValueError, match=r"fitted order"):  # but not its own names moved
        unnamed.partial_fit(X, pd.DataFrame(y.to_numpy(), columns=["task_1", "x"]))
    own_names = pd.DataFrame(y.to_numpy(), columns=["task_0", "task_1"])
    named_so = MultiTaskClassifier(max_iter=2, random_state=0).fit(X, own_names)
    with pytest.raises(ValueError, match=r"fitted tasks in the fitted order"):
        named_so.score(X, own_names[["task_1", "task_0"]])


def test_regression_scores_read_a_polars_prediction_frame():
    pl = pytest.importorskip("polars")
    truth = np.random.RandomState(0).normal(size=(20, 2))
    predicted = truth + 0.1
    expected = metrics.per_task_scores("r2", truth, predicted)
    np.testing.assert_allclose(metrics.per_task_scores("r2", truth, pl.DataFrame(predicted)),
                               expected)
