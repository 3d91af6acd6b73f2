"""MultiTaskClassifier behaviour, checked against numbers."""

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, KFold
from sklearn.utils.class_weight import compute_class_weight

from skmtl import MultiTaskClassifier
from skmtl.datasets import make_multitask_classification
from skmtl.nn import ARCHITECTURES

FAST = dict(max_iter=30, random_state=0, device="cpu")


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_known_signal_reaches_stated_auc(architecture):
    X, y = make_multitask_classification(
        n_samples=3000, n_features=10, task_correlation=0.8, random_state=0
    )
    clf = MultiTaskClassifier(architecture, **FAST).fit(X[:2000], y[:2000])
    proba = clf.predict_proba(X[2000:])
    aucs = [roc_auc_score(y[2000:, t], proba[t][:, 1]) for t in range(2)]
    assert min(aucs) > 0.9, aucs


def test_dataframe_with_string_category_bool_columns(mixed_data):
    X, y = mixed_data
    clf = MultiTaskClassifier(**FAST).fit(X, y)
    assert clf.is_categorical_.tolist() == [True, True, True, False, False]
    assert clf.categories_[0].tolist() == sorted(f"c{i}" for i in range(12))
    assert clf.categories_[3] is None
    assert list(clf.task_names_) == ["click", "buy"]
    proba = clf.predict_proba(X)
    assert roc_auc_score(y["click"], proba[0][:, 1]) > 0.85
    assert roc_auc_score(y["buy"], proba[1][:, 1]) > 0.85


@pytest.mark.parametrize(
    "spec", [None, [True, False, False], [0], ["city"]], ids=["none", "mask", "index", "name"]
)
def test_categorical_features_specs(spec):
    X = pd.DataFrame({"city": [1.0, 2.0, 3.0, 1.0] * 10, "a": np.arange(40.0), "b": np.ones(40)})
    y = np.arange(40) % 2
    clf = MultiTaskClassifier(categorical_features=spec, max_iter=2, min_frequency=1).fit(X, y)
    assert clf.is_categorical_.tolist() == [spec is not None, False, False]


def test_categorical_features_names_need_a_dataframe():
    with pytest.raises(ValueError, match="needs X to be a pandas DataFrame"):
        MultiTaskClassifier(categorical_features=["a"], max_iter=1).fit(np.ones((4, 2)), [0, 1, 0, 1])


def test_numpy_object_array_with_strings():
    rng = np.random.RandomState(0)
    color = rng.choice(["red", "green", "blue"], size=300)
    X = np.empty((300, 2), dtype=object)
    X[:, 0] = color
    X[:, 1] = rng.normal(size=300)
    y = (color == "red").astype(int)
    clf = MultiTaskClassifier(**FAST).fit(X, y)
    assert clf.is_categorical_.tolist() == [True, False]
    assert roc_auc_score(y, clf.predict_proba(X)[:, 1]) > 0.95


def test_missing_and_unseen_categories_map_to_a_trained_unknown_row():
    rng = np.random.RandomState(0)
    n = 4000
    city = rng.choice([f"c{i}" for i in range(10)], size=n)
    rate = {f"c{i}": r for i, r in enumerate(np.linspace(0.05, 0.95, 10))}
    y = (rng.rand(n) < np.vectorize(rate.get)(city)).astype(int)
    X = pd.DataFrame({"city": pd.array(city, dtype="string"), "noise": rng.normal(size=n)})
    clf = MultiTaskClassifier(category_dropout=0.1, max_iter=40, random_state=0).fit(X, y)
    base_rate = y.mean()
    new = pd.DataFrame(
        {
            "city": pd.array(["never-seen"] * 200 + [pd.NA] * 100 + [None] * 100, dtype="string"),
            "noise": rng.normal(size=400),
        }
    )
    proba = clf.predict_proba(new)[:, 1]
    assert np.all(np.isfinite(proba))
    # The unknown row sits near the base rate, far from the extreme categories.
    assert abs(proba.mean() - base_rate) < 0.08, (proba.mean(), base_rate)
    known = clf.predict_proba(X.iloc[:200])[:, 1]
    assert known.std() > 3 * proba.std()


def test_rare_categories_share_the_unknown_row():
    X = pd.DataFrame({"c": pd.Categorical(["a"] * 30 + ["b"] * 30 + ["rare"] * 2)})
    y = np.r_[np.zeros(30), np.ones(30), [0, 1]].astype(int)
    clf = MultiTaskClassifier(min_frequency=5, max_iter=3).fit(X, y)
    assert clf.categories_[0].tolist() == ["a", "b"]
    codes, _ = clf.encoder_.transform(pd.DataFrame({"c": pd.Categorical(["rare", "a", "zzz", None])}))
    assert codes[:, 0].tolist() == [0, 1, 0, 0]


def test_max_categories_keeps_the_most_frequent():
    X = pd.DataFrame({"c": ["a"] * 5 + ["b"] * 9 + ["c"] * 7 + ["d"] * 6})
    y = np.arange(27) % 2
    clf = MultiTaskClassifier(min_frequency=1, max_categories=2, max_iter=1).fit(X, y)
    assert clf.categories_[0].tolist() == ["b", "c"]


def test_mixed_type_categorical_column_is_a_clear_error():
    X = pd.DataFrame({"c": pd.Series(["a", 1, "b", 2.5] * 5, dtype=object)})
    with pytest.raises(ValueError, match="mixes value types"):
        MultiTaskClassifier(categorical_features=[0], max_iter=1).fit(X, np.arange(20) % 2)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_in_continuous_column_suggests_imputer(bad):
    X = pd.DataFrame({"a": [1.0, bad, 3.0, 4.0], "b": [1.0, 2.0, 3.0, 4.0]})
    before = X.copy()
    with pytest.raises(ValueError, match=r"NaN or infinity in continuous column\(s\) 'a'.*SimpleImputer"):
        MultiTaskClassifier(max_iter=1).fit(X, [0, 1, 0, 1])
    pd.testing.assert_frame_equal(X, before)


def test_string_labels_and_multiclass_tasks():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(400, 3))
    y = pd.DataFrame(
        {
            "kind": np.where(X[:, 0] > 0.5, "high", np.where(X[:, 0] < -0.5, "low", "mid")),
            "flag": X[:, 1] > 0,
        }
    )
    # The default budget (max_iter=200): with 60 epochs the default network of flat
    # gates (gate_temperature=10) stopped at 0.805 on random_state=0 (1.0 with 200).
    clf = MultiTaskClassifier(random_state=0).fit(X, y)
    assert clf.classes_[0].tolist() == ["high", "low", "mid"]
    assert clf.classes_[1].tolist() == [False, True]
    proba = clf.predict_proba(X)
    assert proba[0].shape == (400, 3) and proba[1].shape == (400, 2)
    np.testing.assert_allclose(proba[0].sum(1), 1.0)
    pred = clf.predict(X)
    assert pred.shape == (400, 2) and pred.dtype == object
    assert (pred[:, 0] == y["kind"].to_numpy()).mean() > 0.95
    # predict is the argmax of predict_proba
    assert np.array_equal(pred[:, 0], clf.classes_[0][proba[0].argmax(1)])


def test_one_dimensional_y_gives_ndarray_classes(numeric_data):
    X, y = numeric_data
    clf = MultiTaskClassifier(**FAST).fit(X, y[:, 0])
    assert isinstance(clf.classes_, np.ndarray)
    assert clf.predict_proba(X).shape == (600, 2)
    assert clf.predict(X).shape == (600,)
    assert clf.predict(X).dtype == y.dtype


def test_nan_labels_are_masked_per_task(numeric_data):
    X, y = numeric_data
    y_nan = y.astype(float)
    y_nan[::3, 1] = np.nan
    clf = MultiTaskClassifier(**FAST).fit(X, y_nan)
    assert clf.classes_[1].tolist() == [0.0, 1.0]
    # Masking every label of task 1 in rows 0..k: same as dropping those rows for task 1 only.
    score = clf.score(X, y_nan)
    assert 0.5 < score <= 1.0
    # pd.NA and None also mean unknown.
    y_obj = pd.DataFrame({"a": pd.array(y[:, 0], dtype="Int64"), "b": pd.array(y[:, 1], dtype="Int64")})
    y_obj.loc[::4, "b"] = pd.NA
    clf2 = MultiTaskClassifier(max_iter=2, random_state=0).fit(X, y_obj)
    assert clf2.classes_[1].tolist() == [0, 1]
    assert clf2.classes_[1].dtype.kind == "i"  # Int64 with pd.NA keeps integer classes
    assert clf2.predict(X).dtype.kind == "i"


def test_task_with_all_labels_missing_is_set_aside_and_all_tasks_missing_is_an_error(numeric_data):
    from skmtl import UntrainableTaskWarning

    X, y = numeric_data
    y_nan = y.astype(float)
    y_nan[:, 1] = np.nan
    with pytest.warns(UntrainableTaskWarning, match=r"'task_1' \(no known label\)"):
        clf = MultiTaskClassifier(max_iter=1).fit(X, y_nan)
    assert np.isnan(clf.predict(X)[:, 1]).all()
    y_nan[:, 0] = np.nan
    with pytest.raises(ValueError, match="Task 'task_0' has no known label"):
        MultiTaskClassifier(max_iter=1).fit(X, y_nan)


def test_task_weights_zero_freezes_the_task_tower(numeric_data):
    X, y = numeric_data
    clf = MultiTaskClassifier(task_weights={"task_1": 0.0}, **FAST)
    clf.fit(X, y)
    reference = MultiTaskClassifier(**{**FAST, "max_iter": 1}).fit(X, y)
    # Same seed -> same initial tower; with weight 0 the task-1 tower never moves.
    init = MultiTaskClassifier(**{**FAST, "max_iter": 1, "learning_rate_init": 1e-12}).fit(X, y)
    towers, towers0 = clf.module_.body.towers, init.module_.body.towers
    torch.testing.assert_close(towers.head.weight[1], towers0.head.weight[1], rtol=0, atol=1e-9)
    assert not torch.allclose(towers.head.weight[0], towers0.head.weight[0])
    assert reference.n_outputs_ == 2


@pytest.mark.parametrize(
    "weights, message",
    [([1.0], "task_weights has 1 entries but y has 2"), ({"nope": 1.0}, "names task 'nope'")],
)
def test_bad_task_weights(numeric_data, weights, message):
    X, y = numeric_data
    with pytest.raises(ValueError, match=message):
        MultiTaskClassifier(task_weights=weights, max_iter=1).fit(X, y)


def test_class_weight_balanced_raises_recall_of_rare_positives():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(3000, 4))
    y = (X[:, 0] + rng.normal(scale=1.0, size=3000) > 2.2).astype(int)  # ~6 % positives
    plain = MultiTaskClassifier(max_iter=20, random_state=0).fit(X, y)
    balanced = MultiTaskClassifier(max_iter=20, random_state=0, class_weight="balanced").fit(X, y)
    recall = lambda clf: clf.predict(X)[y == 1].mean()
    assert recall(balanced) > recall(plain) + 0.2


def test_sample_weight_zero_rows_are_ignored(numeric_data):
    X, y = numeric_data
    w = np.ones(len(X))
    w[:300] = 0.0
    a = MultiTaskClassifier(max_iter=5, random_state=0, shuffle=False, batch_size=600).fit(X, y, sample_weight=w)
    # Flipping the labels of zero-weight rows changes nothing.
    y_flipped = y.copy()
    y_flipped[:300] = 1 - y_flipped[:300]
    b = MultiTaskClassifier(max_iter=5, random_state=0, shuffle=False, batch_size=600).fit(X, y_flipped, sample_weight=w)
    np.testing.assert_allclose(a.predict_proba(X)[0], b.predict_proba(X)[0], rtol=1e-6)


def test_balanced_class_weights_count_sample_weights_as_sklearn_does(numeric_data):
    """Weighted class counts (compute_class_weight's sample_weight); zero-weight rows count
    nothing: flipping their labels no longer moves the model (0.049 before)."""
    X, y = numeric_data
    w = np.random.RandomState(1).uniform(0.0, 4.0, size=len(X))
    w[:200] = 0.0
    clf = MultiTaskClassifier(max_iter=2, random_state=0, class_weight="balanced")
    clf.fit(X, y, sample_weight=w)
    for t in range(2):
        expected = compute_class_weight("balanced", classes=np.array([0, 1]), y=y[:, t],
                                        sample_weight=w)
        np.testing.assert_allclose(clf.objective_.class_weights[t].numpy(), expected, rtol=1e-6)
    y_flipped = y.copy()
    y_flipped[:200] = 1 - y_flipped[:200]
    flipped = clone(clf).fit(X, y_flipped, sample_weight=w)
    for a, b in zip(clf.predict_proba(X), flipped.predict_proba(X)):
        np.testing.assert_allclose(a, b, rtol=1e-6)


def test_warm_start_keeps_the_earlier_best_when_a_continuation_does_not_beat_it():
    """As MLPClassifier's: the best validation score and its weights are over all fits (a bad
    continuation kept a model of validation loss 1.34 where the first fit had reached 0.13)."""
    X, y = make_multitask_classification(n_samples=2500, n_features=10, random_state=0)
    clf = MultiTaskClassifier(
        "mmoe", expert_layer_sizes=(16,), tower_layer_sizes=(8,), n_experts=2, random_state=0,
        early_stopping=True, validation_fraction=0.2, n_iter_no_change=3, max_iter=20,
        learning_rate_init=0.01, warm_start=True,
    ).fit(X, y)
    first_best, first_proba = clf.best_validation_score_, clf.predict_proba(X)
    clf.set_params(learning_rate_init=0.5, max_iter=4).fit(X, y)  # every epoch is worse
    assert max(clf.validation_scores_[-3:]) < first_best
    assert clf.best_validation_score_ == first_best == max(clf.validation_scores_)
    for a, b in zip(clf.predict_proba(X), first_proba):
        np.testing.assert_array_equal(a, b)


def test_warm_start_compares_epochs_with_its_start_in_its_own_units():
    """task_weights x10 multiply the validation loss: the earlier best (-1.37) was beaten by
    no epoch (-13 ... -4.0 in the new units), and 10 epochs of training were thrown away."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(600, 4))
    y = np.column_stack([X[:, 0] > 0, X[:, 1] + X[:, 0] > 0]).astype(int)
    clf = MultiTaskClassifier("shared_bottom", max_iter=3, early_stopping=True, random_state=0)
    clf.fit(X, y)
    start = clf.predict_proba(X)
    clf.set_params(warm_start=True, task_weights=[10, 10], max_iter=10, learning_rate_init=1e-2)
    clf.fit(X, y)
    new_scores = clf.validation_scores_[3:]
    assert clf.best_validation_score_ == max(new_scores) < -1.5  # in the x10 units
    assert not all(np.array_equal(a, b) for a, b in zip(clf.predict_proba(X), start))


def test_warm_start_brings_back_the_task_balance_with_the_earlier_best_and_rescores_afresh():
    """The reverted network came back with the failed continuation's balance (log-variances
    [0.07, 0.07] -> [10.8, 11.5]); a changed scoring compared AUCs with losses."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(600, 5))
    y = np.c_[X[:, 0] + 0.5 * rng.normal(size=600) > 0, X[:, 1] + 0.5 * rng.normal(size=600) > 0]
    params = {"early_stopping": True, "max_iter": 40, "n_iter_no_change": 3, "random_state": 0,
              "warm_start": True, "expert_layer_sizes": (16,), "tower_layer_sizes": (8,)}
    clf = MultiTaskClassifier(**params, task_balancing="uncertainty").fit(X, y.astype(int))
    balance = clf._task_balance_state_["values"]
    clf.set_params(learning_rate_init=3.0).fit(X, y.astype(int))  # every epoch is worse
    np.testing.assert_array_equal(clf._task_balance_state_["values"], balance)
    scored = MultiTaskClassifier(**{**params, "max_iter": 10}, scoring="mean_roc_auc")
    scored.fit(X, y.astype(int))
    first = scored.n_iter_
    scored.set_params(scoring="loss").fit(X, y.astype(int))
    assert scored.best_validation_score_ == max(scored.validation_scores_[first:]) < 0
    from skmtl import metrics

    scored.set_params(scoring=metrics.make_task_scorer("roc_auc", 0)).fit(X, y.astype(int))
    first = scored.n_iter_
    scored.set_params(scoring=metrics.make_task_scorer("log_loss", 0)).fit(X, y.astype(int))
    assert scored.best_validation_score_ == max(scored.validation_scores_[first:]) < 0


def test_early_stopping_restores_the_best_epoch():
    X, y = make_multitask_classification(n_samples=2000, n_features=10, random_state=1)
    clf = MultiTaskClassifier(
        early_stopping=True, n_iter_no_change=3, max_iter=200, learning_rate_init=0.01, random_state=0
    ).fit(X, y)
    assert clf.n_iter_ < 200
    scores = np.asarray(clf.validation_scores_)
    assert len(scores) == clf.n_iter_
    assert clf.best_validation_score_ == scores.max()
    assert np.argmax(scores) < clf.n_iter_ - 1 or clf.n_iter_ == 200


@pytest.mark.parametrize("weighted", [False, True])
def test_epoch_task_losses_are_over_the_known_labels_of_the_epoch(weighted):
    """With 5 % of task 1's labels known its epoch loss was 0.4701 where its mean log loss
    was 0.6928: batches without its labels counted as loss 0 at full weight."""
    from sklearn.metrics import log_loss

    rng = np.random.RandomState(0)
    X = rng.normal(size=(400, 4))
    y = np.column_stack([X[:, 0] > 0, X[:, 1] + X[:, 0] > 0]).astype(float)
    y[np.random.RandomState(1).rand(400) > 0.05, 1] = np.nan
    w = np.random.RandomState(2).uniform(0.5, 2, 400) if weighted else None
    clf = MultiTaskClassifier(  # a rate too small to move: the epoch's model is the final one
        "shared_bottom", max_iter=1, batch_size=16, learning_rate_init=1e-12,
        early_stopping=False, random_state=0, task_weights=[1.0, 3.0],
    ).fit(X, y, sample_weight=w)
    proba = clf.predict_proba(X)
    known = ~np.isnan(y[:, 1])
    expected = [
        log_loss(y[:, 0], proba[0][:, 1], sample_weight=w),
        log_loss(y[known, 1], proba[1][known, 1], labels=[0, 1],
                 sample_weight=None if w is None else w[known]),
    ]
    np.testing.assert_allclose(clf.task_loss_curves_[0], expected, rtol=1e-4)
    np.testing.assert_allclose(clf.loss_curve_[0], expected[0] + 3 * expected[1], rtol=1e-4)


def test_loss_curves_and_convergence(numeric_data):
    X, y = numeric_data
    clf = MultiTaskClassifier(**FAST).fit(X, y)
    assert len(clf.loss_curve_) == clf.n_iter_
    assert clf.loss_curve_[-1] < clf.loss_curve_[0]
    assert clf.task_loss_curves_.shape == (clf.n_iter_, 2)
    np.testing.assert_allclose(clf.task_loss_curves_.sum(1), clf.loss_curve_, rtol=1e-5)
    assert clf.validation_scores_ is None


def test_warm_start_keeps_training_and_checks_tasks(numeric_data):
    X, y = numeric_data
    clf = MultiTaskClassifier(warm_start=True, max_iter=5, random_state=0).fit(X, y)
    first_curve, first = list(clf.loss_curve_), clf.loss_curve_[-1]
    module = clf.module_
    clf.fit(X, y)
    assert clf.loss_curve_[5] < first + 1e-3 and clf.module_ is not module
    # The curves go on, as MLPClassifier's do with warm_start.
    assert clf.n_iter_ == 10 and clf.loss_curve_[:5] == first_curve
    assert clf.task_loss_curves_.shape == (10, 2)
    with pytest.raises(ValueError, match="warm_start=True: y has 1 task"):
        clf.fit(X, y[:, 0])
    # A plain refit with another y shape is legal.
    clf.set_params(warm_start=False).fit(X, y[:, 0])
    assert clf.n_outputs_ == 1


def test_same_seed_same_model_and_global_rng_untouched(numeric_data):
    X, y = numeric_data
    torch_state, np_state = torch.random.get_rng_state(), np.random.get_state()
    a = MultiTaskClassifier(dropout=0.2, **FAST).fit(X, y)
    b = MultiTaskClassifier(dropout=0.2, **FAST).fit(X, y)
    assert torch.equal(torch_state, torch.random.get_rng_state())
    assert np.array_equal(np_state[1], np.random.get_state()[1])
    for pa, pb in zip(a.predict_proba(X), b.predict_proba(X)):
        assert np.array_equal(pa, pb)
    c = MultiTaskClassifier(dropout=0.2, **{**FAST, "random_state": 1}).fit(X, y)
    assert not np.array_equal(a.predict_proba(X)[0], c.predict_proba(X)[0])


def test_pickle_round_trip_is_bit_identical(mixed_data):
    X, y = mixed_data
    clf = MultiTaskClassifier(**FAST).fit(X, y)
    restored = pickle.loads(pickle.dumps(clf))
    for a, b in zip(clf.predict_proba(X), restored.predict_proba(X)):
        assert np.array_equal(a, b)
    assert np.array_equal(clf.predict(X), restored.predict(X))


def test_verbose_shows_a_progress_bar(numeric_data, capsys):
    X, y = numeric_data
    MultiTaskClassifier(verbose=1, max_iter=3, random_state=0).fit(X, y)
    err = capsys.readouterr().err
    assert "3/3 epochs" in err and "loss=" in err
    assert "fit (early stopping: training loss, patience 10)" in err
    assert err.rstrip().endswith("reached max_iter=3 epochs")


def test_progress_bar_says_why_training_ended(numeric_data, capsys):
    """No time-remaining estimate for max_iter epochs that will not run; the end is explained."""
    X, y = numeric_data
    clf = MultiTaskClassifier(
        verbose=1, max_iter=200, early_stopping=True, validation_fraction=0.3,
        n_iter_no_change=2, tol=0.5, random_state=0,
    ).fit(X, y)
    err = capsys.readouterr().err
    best = int(np.argmax(clf.validation_scores_)) + 1
    assert clf.n_iter_ == 3  # no epoch improves by more than tol=0.5 after the first
    assert "fit (early stopping: validation loss, patience 2)" in err
    assert err.rstrip().endswith(
        f"stopped early at epoch 3 (validation loss did not improve by more than tol=0.5 for "
        f"2 epochs; best epoch {best} restored)"
    )
    assert "<" not in err  # tqdm's remaining-time field ("00:12<01:43") is not shown


def test_partial_fit_progress_bar_promises_no_early_stopping(numeric_data, capsys):
    X, y = numeric_data
    MultiTaskClassifier(verbose=1, random_state=0).partial_fit(X, y)
    err = capsys.readouterr().err
    assert "partial_fit (one pass over the chunk)" in err and "1/1 epochs" in err
    assert "early stopping" not in err and "max_iter" not in err


def test_cuda_without_gpu_is_a_clear_error(numeric_data):
    if torch.cuda.is_available():
        pytest.skip("a GPU is available")
    X, y = numeric_data
    with pytest.raises(ValueError, match="device='cuda' was requested but no CUDA GPU"):
        MultiTaskClassifier(device="cuda", max_iter=1).fit(X, y)


def test_divergence_is_reported(numeric_data):
    X, y = numeric_data
    clf = MultiTaskClassifier(max_iter=3, random_state=0).fit(X, y)
    before = clf.predict_proba(X)
    X_huge = X * 1e30
    X_huge[:, 0] = X[:, 0]
    with pytest.raises(FloatingPointError, match="Training diverged"):
        clf.set_params(learning_rate_init=1e30).fit(X * 1e38, y)
    # The previous model is untouched.
    for a, b in zip(before, clf.predict_proba(X)):
        assert np.array_equal(a, b)


def test_predict_does_not_change_input(mixed_data):
    X, y = mixed_data
    X_before, y_before = X.copy(), y.copy()
    clf = MultiTaskClassifier(max_iter=2, random_state=0).fit(X, y)
    clf.predict_proba(X)
    pd.testing.assert_frame_equal(X, X_before)
    pd.testing.assert_frame_equal(y, y_before)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_trained_model_pickles_to_cpu(numeric_data):
    X, y = numeric_data
    clf = MultiTaskClassifier(device="cuda", max_iter=3, random_state=0).fit(X, y)
    assert next(clf.module_.parameters()).device.type == "cuda"
    state = clf.__getstate__()
    assert all(p.device.type == "cpu" for p in state["module_"].parameters())
    restored = pickle.loads(pickle.dumps(clf))
    assert next(restored.module_.parameters()).device.type == "cpu"
    np.testing.assert_allclose(restored.predict_proba(X)[0], clf.predict_proba(X)[0], atol=1e-6)


@pytest.mark.parametrize("architecture", ["moe", "mmoe"])
def test_gate_weights_per_sample_task_expert(numeric_data, architecture):
    X, y = numeric_data
    clf = MultiTaskClassifier(architecture, n_experts=3, **FAST).fit(X, y)
    weights = clf.gate_weights(X[:50])
    assert weights.shape == (50, 2, 3)
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-6)
    if architecture == "moe":
        np.testing.assert_array_equal(weights[:, 0], weights[:, 1])
    else:
        assert not np.allclose(weights[:, 0], weights[:, 1])


def test_shared_bottom_has_no_gates(numeric_data):
    X, y = numeric_data
    clf = MultiTaskClassifier("shared_bottom", max_iter=1)
    assert not hasattr(clf, "gate_weights")
    clf.fit(X, y)
    assert not hasattr(clf, "gate_weights")
    with pytest.raises(AttributeError, match="gate_weights"):
        clf.gate_weights(X)
    assert hasattr(MultiTaskClassifier("ple"), "gate_weights")


class OneHiddenLayer(torch.nn.Module):
    """A user-defined architecture for the tests: a shared hidden layer and linear heads."""

    def __init__(self, in_features, n_outputs):
        super().__init__()
        self.hidden = torch.nn.Linear(in_features, 16)
        self.heads = torch.nn.ModuleList(torch.nn.Linear(16, k) for k in n_outputs)

    def forward(self, x):
        h = torch.relu(self.hidden(x))
        return [head(h)[:, 0] if head.out_features == 1 else head(h) for head in self.heads]


def test_custom_architecture_fits_clones_pickles_and_grid_searches(numeric_data):
    X, y = numeric_data
    clf = MultiTaskClassifier(OneHiddenLayer, **FAST)
    clf.fit(X, y)
    assert isinstance(clf.module_.body, OneHiddenLayer)
    assert min(roc_auc_score(y[:, t], clf.predict_proba(X)[t][:, 1]) for t in range(2)) > 0.85
    again = clone(clf).fit(X, y)
    for a, b in zip(clf.predict_proba(X), again.predict_proba(X)):
        assert np.array_equal(a, b)  # same seed, same model: init drawn from the fit's generator
    restored = pickle.loads(pickle.dumps(clf))
    assert np.array_equal(restored.predict_proba(X)[1], clf.predict_proba(X)[1])
    search = GridSearchCV(
        MultiTaskClassifier(max_iter=5, random_state=0),
        [{"architecture": [OneHiddenLayer, "mmoe"]}, {"architecture": ["ple"], "n_levels": [1, 2]}],
        cv=KFold(2), scoring="roc_auc",
    ).fit(X, y)
    assert len(search.cv_results_["params"]) == 4


def test_custom_architecture_returning_a_non_module_is_a_clear_error(numeric_data):
    X, y = numeric_data
    with pytest.raises(TypeError, match="not a torch.nn.Module"):
        MultiTaskClassifier(lambda in_features, n_outputs: None, max_iter=1).fit(X, y)


def test_ple_gate_weights(numeric_data):
    X, y = numeric_data
    clf = MultiTaskClassifier("ple", n_task_experts=2, n_shared_experts=3, **FAST).fit(X, y)
    weights = clf.gate_weights(X[:10])
    assert weights.shape == (10, 2, 5)
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-6)


def test_aitm_follows_the_funnel_order():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(800, 4))
    click = (X[:, 0] + rng.logistic(size=800) > 0).astype(int)
    conversion = click * (X[:, 1] + rng.logistic(size=800) > 0)
    y = pd.DataFrame({"conversion": conversion, "click": click})
    clf = MultiTaskClassifier(
        "aitm", funnel=["click", "conversion"], funnel_mode="independent", funnel_penalty=1.0, **FAST
    ).fit(X, y)
    assert clf.module_.body.chain == [1, 0]
    p = clf.predict_proba(X)
    oracle = 1 / (1 + np.exp(-X[:, 0])) / (1 + np.exp(-X[:, 1]))
    oracle_auc = roc_auc_score(conversion, oracle)  # 0.742
    assert roc_auc_score(conversion, p[0][:, 1]) > oracle_auc - 0.03
    assert roc_auc_score(click, p[1][:, 1]) > 0.7


def test_integer_category_lookup_matches_hashing():
    from skmtl._encoding import encode_column

    rng = np.random.RandomState(0)
    vocabulary = pd.Index(np.array([-3.0, 0.0, 2.0, 5.0, 40.0]))
    values = np.concatenate(
        [rng.randint(-6, 45, size=500).astype(float), [np.nan, np.inf, -np.inf, 2.5, 1e300, -0.0]]
    )
    expected = vocabulary.get_indexer(values) + 1
    assert np.array_equal(encode_column(values, vocabulary), expected)
    with np.errstate(over="ignore"):  # 1e300 becomes inf in float32, on purpose
        values32 = values.astype(np.float32)
    assert np.array_equal(encode_column(values32, vocabulary), expected)
    ints = rng.randint(-6, 45, size=200)
    assert np.array_equal(encode_column(ints, vocabulary), vocabulary.get_indexer(ints) + 1)
    # A sparse vocabulary (huge range) falls back to hashing, with the same result.
    wide = pd.Index(np.array([0, 10**9]))
    assert encode_column(np.array([0, 5, 10**9]), wide).tolist() == [1, 0, 2]


@pytest.mark.parametrize(
    "change, match",
    [({"n_experts": 7}, r"n_experts: 4 -> 7"),
     ({"gate_temperature": 0.5}, r"gate_temperature: 10.0 -> 0.5"),
     ({"expert_layer_sizes": (8,)}, r"expert_layer_sizes: \(64, 32\) -> \(8,\)"),
     ({"embedding_dim": 4}, r"embedding_dim: 8 -> 4")],
)
def test_continuing_after_a_structural_change_is_refused(numeric_data, change, match):
    """warm_start and partial_fit continue module_: parameters describing another network
    raise (they were silently ignored), compared against network_spec_ (issue 12, item 5)."""
    X, y = numeric_data
    clf = MultiTaskClassifier(max_iter=2, random_state=0).fit(X, y)
    module = clf.module_
    with pytest.raises(ValueError, match=r"warm_start=True continues the fitted network.*" + match):
        clf.set_params(warm_start=True, **change).fit(X, y)
    with pytest.raises(ValueError, match=r"partial_fit continues the fitted network.*" + match):
        clf.set_params(warm_start=False).partial_fit(X, y)
    assert clf.module_ is module  # nothing changed
    clf.set_params(warm_start=True, max_iter=1, learning_rate_init=1e-2, **{
        name: MultiTaskClassifier().get_params()[name] for name in change
    }).fit(X, y)  # training settings may change
    assert clf.n_iter_ == 3 and clf.module_ is not module


@pytest.mark.parametrize(
    "params, warns",
    [({"funnel_penalty": 1.0}, True),
     ({"funnel_penalty": 1.0, "funnel": [0, 1], "funnel_mode": "esmm"}, True),
     ({"funnel_penalty": 1.0, "funnel": [0, 1], "funnel_mode": "independent"}, False),
     ({"funnel": [0, 1], "funnel_mode": "esmm"}, False)],
)
def test_funnel_penalty_that_changes_nothing_warns(params, warns):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(80, 3))
    click = (X[:, 0] > 0).astype(int)
    y = np.column_stack([click, click * (X[:, 1] > 0)])
    clf = MultiTaskClassifier(max_iter=1, random_state=0, **params)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        clf.fit(X, y)
    penalty = [w for w in caught if "funnel_penalty" in str(w.message)]
    assert bool(penalty) == warns


def test_parameters_an_architecture_does_not_use_change_nothing_and_stay_silent(numeric_data):
    """sklearn's "Used only when" convention (issue 12, item 5): no warning, the same model,
    and a warm start may change them (they are not part of the network's description)."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning

    X, y = numeric_data
    base = dict(max_iter=2, random_state=0, device="cpu", early_stopping=False)
    unused = dict(n_experts=7, gate_temperature=3.0, n_levels=4, n_task_experts=3,
                  n_shared_experts=5, n_group_experts=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.simplefilter("ignore", ConvergenceWarning)
        plain = MultiTaskClassifier("shared_bottom", **base).fit(X, y)
        other = MultiTaskClassifier("shared_bottom", **base, **unused).fit(X, y)
        for a, b in zip(plain.predict_proba(X), other.predict_proba(X)):
            np.testing.assert_array_equal(a, b)
        assert other.network_spec_ == plain.network_spec_
        warm = MultiTaskClassifier("shared_bottom", **base, warm_start=True).fit(X, y)
        warm.set_params(**unused).fit(X, y)
    assert warm.n_iter_ == 4


def test_help_shows_parameter_lines_without_runs_of_spaces():
    """A backslash continuation in a docstring joins lines with the indentation in between."""
    import inspect
    import re

    import skmtl.export
    import skmtl.plotting

    objects = [MultiTaskClassifier, *vars(MultiTaskClassifier).values()]
    for module in (skmtl.metrics, skmtl.export, skmtl.plotting, skmtl.model_selection):
        objects += [getattr(module, name) for name in getattr(module, "__all__", [])]
    offenders = []
    for obj in objects:
        doc = inspect.getdoc(obj) if callable(obj) or inspect.isclass(obj) else None
        for line in (doc or "").splitlines():
            if re.match(r"\s*\w+ : ", line) and re.search(r"\S {3,}\S", line.strip()):
                offenders.append(f"{getattr(obj, '__qualname__', obj)}: {line.strip()}")
    assert not offenders, offenders


def test_validation_scores_line_up_with_the_epochs_of_continued_fits():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(600, 4))
    y = np.column_stack([X[:, 0] > 0, X[:, 1] + X[:, 0] > 0]).astype(int)
    clf = MultiTaskClassifier("shared_bottom", max_iter=3, early_stopping=False, random_state=0)
    clf.fit(X, y).set_params(warm_start=True, early_stopping=True).fit(X, y)
    scores = np.asarray(clf.validation_scores_)
    assert len(scores) == clf.n_iter_ == 6 and np.isnan(scores[:3]).all()
    assert clf.best_validation_score_ == np.nanmax(scores)
    clf.partial_fit(X, y)  # no validation in a partial_fit call: the history stays, NaN added
    assert len(clf.validation_scores_) == 7 and np.isnan(clf.validation_scores_[-1])
    np.testing.assert_array_equal(clf.validation_scores_[:6], scores)
    clf.set_params(scoring="mean_roc_auc").fit(X, y)  # other units: the loss scores are NaN now
    assert np.isnan(clf.validation_scores_[:7]).all()
    assert clf.best_validation_score_ == np.nanmax(clf.validation_scores_) > 0.5


def test_a_heavy_task_with_few_labels_trains_and_an_epoch_without_its_labels_is_nan():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(400, 4))
    y = np.column_stack([X[:, 0] > 0, X[:, 1] + X[:, 0] > 0]).astype(float)
    y[np.random.RandomState(1).rand(400) > 0.05, 1] = np.nan
    # batches without task 1's labels divided by a tiny number: weight 4 made the gradient NaN
    clf = MultiTaskClassifier("shared_bottom", max_iter=2, batch_size=16, early_stopping=False,
                              random_state=0, task_weights=[1.0, 100.0]).fit(X, y)
    assert np.isfinite(clf.loss_curve_).all()
    chunk = y[:40].copy()
    chunk[:, 1] = np.nan  # a partial_fit chunk without task 1's labels
    clf.partial_fit(X[:40], chunk)
    assert np.isnan(clf.task_loss_curves_[-1, 1]) and np.isfinite(clf.loss_curve_[-1])
