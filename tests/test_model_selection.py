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


# ---------------------------------------------------------------- rare tasks (issue 12, item 7)
def _rare_task_data():
    """Two learnable tasks and a rare one whose three positives all fall in the last fold."""
    rng = np.random.RandomState(0)
    X = pd.DataFrame(rng.normal(size=(240, 3)), columns=["a", "b", "c"])
    y = pd.DataFrame({
        "t0": (X["a"] > 0).astype(int),
        "t1": (X["b"] - X["c"] > 0).astype(int),
        "rare": 0,
    })
    y.loc[y.index[-3:], "rare"] = 1
    return X, y


def test_a_rare_task_does_not_kill_the_other_tasks_folds():
    """Before: every fold whose training rows saw one class of 'rare' raised, so every
    task lost that fold (all NaN); now the other tasks score in every fold."""
    from sklearn.model_selection import cross_validate

    from skmtl import UntrainableTaskWarning, metrics

    X, y = _rare_task_data()
    scoring = metrics.per_task_scorers(["roc_auc"], list(y.columns))
    params = dict(max_iter=30, expert_layer_sizes=(16,), tower_layer_sizes=(8,), random_state=0,
                  learning_rate_init=5e-3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UntrainableTaskWarning)
        with pytest.raises(UntrainableTaskWarning, match=r"'rare' \(only 0\)"):
            MultiTaskClassifier(**params).fit(X.iloc[:180], y.iloc[:180])
    result = cross_validate(MultiTaskClassifier(**params), X, y, cv=KFold(4), scoring=scoring,
                            error_score="raise")
    for task in ("t0", "t1"):
        assert np.all(result[f"test_roc_auc_{task}"] > 0.8), result[f"test_roc_auc_{task}"]
    # The rare task is undefined where its model saw one class (folds 0-2 trained on
    # rows with its three positives, so they are trainable there, but their test folds
    # hold a single class; fold 3's model never saw a positive).
    assert np.isnan(result["test_roc_auc_rare"]).all()
    assert np.all(np.isfinite(result["test_mean_roc_auc"]))


def test_untrainable_task_predicts_its_observed_class_and_stays_out_of_training():
    X, y = _rare_task_data()
    train = slice(0, 180)
    clf = MultiTaskClassifier(**FAST).fit(X.iloc[train], y.iloc[train])
    assert clf.classes_[2].tolist() == [0]
    assert (clf.predict(X)[:, 2] == 0).all()
    np.testing.assert_array_equal(clf.predict_proba(X)[2], np.ones((len(X), 1)))
    # Left out of the loss: it has no loss (NaN, no label trains it), the total is the other two's.
    curves = np.asarray(clf.task_loss_curves_)
    assert np.isnan(curves[:, 2]).all() and (curves[:, :2] > 0).all()
    np.testing.assert_allclose(clf.loss_curve_, curves[:, :2].sum(axis=1), rtol=1e-6)
    # score: a label the model never saw (the rare positives) counts as wrong.
    assert clf.score(X.iloc[-3:], y.iloc[-3:]) == 0.0
    # No known label at all: NaN predictions, no class.
    y_none = y.astype(float).assign(rare=np.nan)
    clf = MultiTaskClassifier(**FAST).fit(X, y_none)
    assert clf.classes_[2].size == 0 and np.isnan(clf.predict(X)[:, 2]).all()
    assert clf.predict_proba(X)[2].shape == (len(X), 0)


def test_a_funnel_step_or_declared_binary_task_keeps_its_two_classes():
    """A step (or a pos_label task) that shows only its negative class still trains."""
    X, y = _rare_task_data()
    train = slice(0, 180)
    from skmtl import UntrainableTaskWarning

    with warnings.catch_warnings():
        warnings.simplefilter("error", UntrainableTaskWarning)
        clf = MultiTaskClassifier(**FAST, funnel=("t0", "rare")).fit(
            X.iloc[train], y.iloc[train].assign(rare=0))
    assert clf.classes_[2].tolist() == [0, 1] and clf.predict_proba(X)[2].shape == (len(X), 2)
    strings = y.iloc[train].assign(rare="none")
    declared = MultiTaskClassifier(**FAST, pos_label={"rare": "bought"}).fit(X.iloc[train], strings)
    assert declared.classes_[2].tolist() == ["bought", "none"]  # sorted, as in sklearn
    # 0/1 labels complete either way (every click converted: [0, 1] still).
    ones = MultiTaskClassifier(**FAST, funnel=("t0", "rare")).fit(
        X.iloc[train], y.iloc[train].assign(t0=1, rare=1))
    assert ones.classes_[2].tolist() == [0, 1]
    # A string step showing only its declared positive has no known negative: a clear error.
    with pytest.raises(ValueError, match=r"funnel step 'rare' has classes \['bought'\]"):
        MultiTaskClassifier(**FAST, funnel=("t0", "rare"), pos_label={"rare": "bought"}).fit(
            X.iloc[train], y.iloc[train].assign(t0=1, rare="bought"))


def test_untrainable_tasks_survive_persistence_and_are_refused_by_onnx(tmp_path):
    import pickle

    from skmtl import load_model, save_model
    from skmtl.export import to_onnx

    X, y = _rare_task_data()
    y = y.astype(float).assign(none=np.nan)
    clf = MultiTaskClassifier(**FAST).fit(X.iloc[:180], y.iloc[:180])
    assert [c.size for c in clf.classes_] == [2, 2, 1, 0]
    save_model(clf, tmp_path / "m")
    for other in (load_model(tmp_path / "m"), pickle.loads(pickle.dumps(clf))):
        for a, b in zip(other.predict_proba(X), clf.predict_proba(X)):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(other.predict(X), clf.predict(X))
    pytest.importorskip("onnx")  # to_onnx needs onnx and onnxscript before it checks the tasks
    pytest.importorskip("onnxscript")
    with pytest.raises(ValueError, match=r"Task\(s\) \['rare', 'none'\] were not trained"):
        to_onnx(clf)


def test_balanced_class_weight_with_a_task_without_labels():
    """Found by tests/test_properties.py: class_weight='balanced' gave an untrainable task
    an empty weight table, and fit raised IndexError in the loss."""
    X, y = _rare_task_data()
    y = y.astype(float).assign(none=np.nan)
    clf = MultiTaskClassifier(**FAST, class_weight="balanced").fit(X, y)
    assert clf.objective_.class_weights[3] is None
    assert clf.predict_proba(X)[3].shape == (len(X), 0)


def test_metadata_routing_sends_params_where_the_requests_say(data):
    import sklearn
    from sklearn.model_selection import GroupKFold

    X, y = data
    weights = np.linspace(0.5, 2, len(X))
    groups = np.repeat(np.arange(15), 10)
    unrouted = cross_val_predict(
        MultiTaskClassifier(**FAST), X, y, cv=KFold(3), method="predict_proba",
        params={"sample_weight": weights},
    )
    with sklearn.config_context(enable_metadata_routing=True):
        refused = MultiTaskClassifier(**FAST).set_fit_request(sample_weight=False)
        with pytest.raises(TypeError, match=r"sample_weight.*not routed"):
            cross_val_predict(refused, X, y, cv=KFold(3), params={"sample_weight": weights})
        wanted = MultiTaskClassifier(**FAST).set_fit_request(sample_weight=True)
        routed = cross_val_predict(
            wanted, X, y, cv=KFold(3), method="predict_proba", params={"sample_weight": weights}
        )
        for a, b in zip(routed, unrouted):
            assert np.array_equal(a, b)
        # groups reach the splitter through params, as in scikit-learn
        by_group = cross_val_predict(
            wanted, X, y, cv=GroupKFold(3), params={"sample_weight": weights, "groups": groups}
        )
        for train, test in GroupKFold(3).split(X, y, groups):
            fold = MultiTaskClassifier(**FAST).fit(X[train], y[train], sample_weight=weights[train])
            assert np.array_equal(by_group[test], fold.predict(X[test]))
        with pytest.raises(ValueError, match=r"groups can only be passed in params"):
            cross_val_predict(wanted, X, y, groups=groups, cv=GroupKFold(3))


def test_a_regressor_is_refused_before_any_fit(data):
    from skmtl import MultiTaskRegressor

    X, y = data
    with pytest.raises(TypeError, match=r"takes a classifier.*sklearn.model_selection"):
        cross_val_predict(MultiTaskRegressor(max_iter=1), X, y)
