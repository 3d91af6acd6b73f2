"""Bad input: one case per behaviour, with its exception type and message; inputs left alone."""

import copy
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse
import torch
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import InvalidParameterError

from skmtl import MultiTaskClassifier, _fit_guards
from skmtl._encoding import TabularEncoder

# Tests of behaviour the estimator does not have yet: the lead applies the change
# proposed for each (see the reason), then removes this marker from the test.

TINY = dict(max_iter=1, random_state=0, device="cpu")


def _data(n=40, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 3))
    y = np.column_stack([X[:, 0] > 0, X[:, 1] > 0]).astype(int)
    return X, y


def _frame(n=40, seed=0):
    X, y = _data(n, seed)
    return pd.DataFrame(X, columns=["a", "b", "c"]), pd.DataFrame(y, columns=["click", "buy"])


def _assert_same(before, after):
    if isinstance(before, pd.DataFrame):
        pd.testing.assert_frame_equal(after, before, check_exact=True)
    elif isinstance(before, pd.Series):
        pd.testing.assert_series_equal(after, before, check_exact=True)
    elif isinstance(before, np.ndarray):
        assert after.dtype == before.dtype and after.shape == before.shape
        missing = pd.isna(before)  # object arrays may hold NaN, which == does not match
        assert np.array_equal(pd.isna(after), missing)
        assert np.array_equal(after[~missing], before[~missing])
    else:
        assert type(after) is type(before) and repr(after) == repr(before)


def assert_raises_and_unchanged(call, args, exc, match):
    """``call(*args)`` raises ``exc`` matching ``match`` and leaves every arg as it was."""
    copies = [copy.deepcopy(a) for a in args]
    with pytest.raises(exc, match=match) as info:
        call(*args)
    for before, after in zip(copies, args):
        _assert_same(before, after)
    return info


def _fit(**params):
    return MultiTaskClassifier(**{**TINY, **params}).fit


# ------------------------------------------------------------- fit: shapes
def test_empty_X():
    X, y = _data()
    assert_raises_and_unchanged(
        _fit(), (X[:0], y[:0]), ValueError, r"Found array with 0 sample\(s\) \(shape=\(0, 3\)\)"
    )


def test_empty_dataframe_X():
    X, y = _frame()
    assert_raises_and_unchanged(
        _fit(), (X.iloc[:0], y.iloc[:0]), ValueError, r"Found array with 0 sample\(s\)"
    )


def test_y_without_tasks():
    X, y = _data()
    assert_raises_and_unchanged(
        _fit(), (X, y[:, :0]), ValueError, r"y has 0 tasks \(columns\); at least one task"
    )


def test_y_without_rows_is_a_length_mismatch():
    # Lengths are compared before y is encoded (else: "Task 'task_0' has no known label").
    X, y = _data()
    assert_raises_and_unchanged(
        _fit(), (X, y[:0]), ValueError, r"inconsistent numbers of samples: \[40, 0\]"
    )


def test_X_and_y_row_counts_differ():
    X, y = _data()
    assert_raises_and_unchanged(
        _fit(), (X, y[:30]), ValueError, r"inconsistent numbers of samples: \[40, 30\]"
    )


def test_one_sample():
    # Either message passes sklearn's check_fit2d_1sample; the next test asks for the clearer one.
    X, y = _data()
    assert_raises_and_unchanged(
        _fit(), (X[:1], y[:1]), ValueError, r"n_samples=1|has only one class"
    )


def test_one_sample_is_refused_by_sample_count():
    X, y = _data()
    assert_raises_and_unchanged(
        _fit(), (X[:1], y[:1]), ValueError, r"n_samples=1: at least 2 samples are required"
    )


def test_zero_features_array():
    _, y = _data()
    X = np.empty((40, 0))
    assert_raises_and_unchanged(
        _fit(), (X, y), ValueError, r"0 feature\(s\) \(shape=\(40, 0\)\) while a minimum of 1"
    )


def test_zero_features_dataframe():
    _, y = _data()
    X = pd.DataFrame(index=range(40))
    assert_raises_and_unchanged(_fit(), (X, y), ValueError, r"0 feature\(s\) \(shape=\(40, 0\)\)")


def test_one_dimensional_X():
    X, y = _data()
    assert_raises_and_unchanged(_fit(), (X[:, 0], y), ValueError, r"Expected 2D array, got 1D")


def test_three_dimensional_y():
    X, y = _data()
    assert_raises_and_unchanged(
        _fit(), (X, y[:, :, None]), ValueError, r"y must be 1-D or 2-D .*got shape \(40, 2, 1\)"
    )


def test_y_is_none():
    X, _ = _data()
    assert_raises_and_unchanged(_fit(), (X, None), ValueError, r"requires y to be passed")


def test_sparse_X_with_a_nan_is_refused_unchanged():
    # A sparse X is taken (tests/test_sparse_input.py); NaN among its stored values is not.
    X, y = _data()
    X[3, 1] = np.nan
    assert_raises_and_unchanged(
        _fit(), (scipy.sparse.csr_matrix(X), y), ValueError, r"sparse matrix with NaN or infinite"
    )


# ------------------------------------------------------------- fit: values
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_non_finite_continuous_value_names_the_column(bad):
    X, y = _frame()
    X.loc[3, "b"] = bad
    assert_raises_and_unchanged(
        _fit(), (X, y), ValueError,
        r"Input X contains NaN or infinity in continuous column\(s\) 'b'\. Impute them first",
    )


def test_non_finite_continuous_value_at_predict_time():
    X, y = _frame()
    clf = _fit()(X, y)
    X_bad = X.copy()
    X_bad.loc[0, "c"] = np.nan
    assert_raises_and_unchanged(
        clf.predict_proba, (X_bad,), ValueError, r"NaN or infinity in continuous column\(s\) 'c'"
    )


def test_strings_in_a_continuous_column():
    _, y = _data()
    X = np.array([["a", "b", "c"]] * 40, dtype=object)
    assert_raises_and_unchanged(
        _fit(categorical_features=None), (X, y), ValueError,
        r"Continuous column\(s\) 0, 1, 2 hold non-numeric values",
    )


def test_every_task_with_all_labels_nan():
    X, y = _frame()
    y = y.astype(float)
    y[["click", "buy"]] = np.nan
    assert_raises_and_unchanged(
        _fit(), (X, y), ValueError, r"Task 'click' has no known label \(all values are NaN/None\)"
    )


def test_every_task_with_a_single_class():
    X, y = _frame()
    y["buy"] = 1
    y["click"] = 0
    assert_raises_and_unchanged(
        _fit(), (X, y), ValueError, r"Task 'click' has only one class \(np.int64\(0\)\)"
    )


def test_one_task_with_a_single_class_is_set_aside_with_a_warning():
    """Issue 12, item 7: it used to raise; the other task trains (see test_model_selection)."""
    from skmtl import UntrainableTaskWarning

    X, y = _frame()
    y = y.astype(float)
    y.loc[y["buy"] == 0, "buy"] = np.nan
    y_before = y.copy()
    with pytest.warns(UntrainableTaskWarning, match=r"'buy' \(only 1.0\)"):
        clf = _fit()(X, y)
    pd.testing.assert_frame_equal(y, y_before)
    assert clf.classes_[1].tolist() == [1.0]
    assert (clf.predict(X)[:, 1] == 1.0).all()
    assert clf.predict_proba(X)[1].shape == (len(X), 1)


def test_float_labels_with_fractions():
    X, y = _data()
    y = y + 0.5
    assert_raises_and_unchanged(_fit(), (X, y), ValueError, r"Unknown label type: continuous")


def test_infinite_label():
    X, y = _data()
    y = y.astype(float)
    y[0, 1] = np.inf
    assert_raises_and_unchanged(_fit(), (X, y), ValueError, r"Task 'task_1': y contains infinity")


def test_labels_of_mixed_types_in_one_task():
    X, _ = _data()
    y = np.array(["a", 1] * 20, dtype=object)
    assert_raises_and_unchanged(
        _fit(), (X, y), ValueError,
        r"Task 'task_0' has labels of mixed or unsupported types \(int, str\)",
    )


def test_categorical_column_of_mixed_types():
    X, y = _frame()
    X["city"] = pd.Series(["paris", 7] * 20, dtype=object)
    assert_raises_and_unchanged(
        _fit(), (X, y), ValueError,
        r"Categorical column 'city' mixes value types \(int, str\); convert it to one type",
    )


def test_categorical_column_of_bools_and_strings():
    X, y = _frame()
    X["flag"] = pd.Series([True, "no"] * 20, dtype=object)
    assert_raises_and_unchanged(
        _fit(), (X, y), ValueError, r"Categorical column 'flag' mixes value types \(bool, str\)"
    )


# ------------------------------------------------------------- weights
def test_negative_sample_weight():
    X, y = _data()
    w = np.ones(40)
    w[5] = -1.0
    assert_raises_and_unchanged(
        _fit(), (X, y, w), ValueError, r"Negative values in data passed to `sample_weight`"
    )


def test_all_zero_sample_weight():
    X, y = _data()
    assert_raises_and_unchanged(
        _fit(), (X, y, np.zeros(40)), ValueError,
        r"sample_weight is zero for every row",
    )


def test_sample_weight_of_wrong_length():
    X, y = _data()
    assert_raises_and_unchanged(
        _fit(), (X, y, np.ones(39)), ValueError, r"sample_weight.shape == \(39,\), expected \(40,\)"
    )


def test_nan_sample_weight():
    X, y = _data()
    w = np.ones(40)
    w[0] = np.nan
    assert_raises_and_unchanged(_fit(), (X, y, w), ValueError, r"Input sample_weight contains NaN")


def test_sample_weight_beyond_float32_is_refused():
    # Refused up front (else the float64 weight 1e39 becomes inf in float32 and training
    # "diverges" at batch 1).
    X, y = _data()
    w = np.ones(40)
    w[0] = 1e39
    assert_raises_and_unchanged(_fit(), (X, y, w), ValueError, r"sample_weight .*float32")


@pytest.mark.parametrize(
    "task_weights, match",
    [
        ([1.0, 2.0, 3.0], r"task_weights has 3 entries but y has 2 task\(s\)"),
        ({"view": 2.0}, r"task_weights names task 'view', which is not one of the tasks \['click'"),
        ({5: 2.0}, r"task_weights names task 5"),
        ([1.0, -1.0], r"task_weights must be finite and non-negative; got \[1.0, -1.0\]"),
        ({"buy": np.nan}, r"task_weights must be finite and non-negative"),
    ],
    ids=["length", "unknown-name", "unknown-index", "negative", "nan"],
)
def test_bad_task_weights(task_weights, match):
    X, y = _frame()
    assert_raises_and_unchanged(_fit(task_weights=task_weights), (X, y), ValueError, match)


@pytest.mark.parametrize(
    "task_weights, match",
    [
        ([0.0, 0.0], r"task_weights are all zero"),
        (["a", "b"], r"task_weights must be numbers"),
        ([[1.0, 2.0]], r"task_weights must be 1-dimensional"),
    ],
    ids=["all-zero", "strings", "2-d"],
)
def test_task_weights_awaiting_checks(task_weights, match):
    X, y = _frame()
    assert_raises_and_unchanged(_fit(task_weights=task_weights), (X, y), ValueError, match)


# ------------------------------------------------------------- parameters
BAD_PARAMETERS = {
    "activation": "sigmoid",
    "alpha": -1.0,
    "architecture": "transformer",
    "attention_queries": ["history"],
    "attention_weights": "sum",
    "batch_size": 0,
    "categorical_features": "auto",
    "category_dropout": 1.0,
    "class_weight": "auto",
    "continuous_projection": "diagonal",
    "device": "tpu",
    "distributed": "yes",
    "dropout": 1.0,
    "early_stopping": "sometimes",
    "embedding_dim": 0,
    "embedding_dropout": 1.0,
    "expert_layer_sizes": "wide",
    "feature_groups": ["a"],
    "funnel": "yes",
    "funnel_mode": "chain",
    "funnel_penalty": -1.0,
    "gate_temperature": 0.0,
    "learning_rate_init": 0.0,
    "learning_rate_schedule": "cosine",
    "ema_epochs": 0,
    "max_categories": 0,
    "max_iter": 0,
    "max_sequence_length": 0,
    "min_frequency": 0,
    "n_experts": 0,
    "n_group_experts": 0,
    "n_iter_no_change": 0,
    "n_levels": 0,
    "n_shared_experts": 0,
    "n_task_experts": 0,
    "negative_sampling_rate": 0.0,
    "numeric_embedding": "spline",
    "pos_label": [1],
    "random_state": "seed",
    "scoring": 1,
    "sequence_features": 3,
    "sequence_pooling": "attention",
    "shared_embeddings": 5,
    "shuffle": "yes",
    "task_balancing": "gradient_surgery",
    "task_weights": "equal",
    "tol": -1.0,
    "tower_layer_sizes": "tall",
    "validation_fraction": 1.0,
    "verbose": -1,
    "warm_start": "yes",
    "weight_decay": -0.1,
    "weight_init": "xavier",
}


def test_every_parameter_has_a_bad_value_case():
    assert set(BAD_PARAMETERS) == set(MultiTaskClassifier().get_params())


@pytest.mark.parametrize("name", sorted(BAD_PARAMETERS))
def test_invalid_parameter_is_reported_by_name(name):
    X, y = _data()
    info = assert_raises_and_unchanged(
        _fit(**{name: BAD_PARAMETERS[name]}), (X, y), InvalidParameterError,
        rf"The '{name}' parameter of MultiTaskClassifier must be",
    )
    assert repr(BAD_PARAMETERS[name]) in str(info.value)


@pytest.mark.parametrize(
    "params, match",
    [
        (dict(expert_layer_sizes=(16, 0)), r"expert_layer_sizes must contain positive integers"),
        (dict(expert_layer_sizes=()), r"expert_layer_sizes must have at least one layer"),
        (dict(tower_layer_sizes=(2.5,)), r"tower_layer_sizes must contain positive integers"),
        (dict(categorical_features=[True]),
         r"categorical_features is a boolean mask of length 1, but X has 3"),
        (dict(categorical_features=[7]),
         r"categorical_features has indices \[7\] outside \[0, 2\]"),
        (dict(categorical_features=["zip"]),
         r"categorical_features names \['zip'\], which are not columns"),
        (dict(class_weight=[None]), r"class_weight is a list of 1 entries but y has 2 task\(s\)"),
        (dict(class_weight={"view": {0: 2.0}}),
         r"class_weight names task 'view', which is not one of the tasks \['click'"),
        (dict(class_weight=[{7: 2.0}, None]), r"class_weight for task 'click' names class\(es\) \[7\]"),
        (dict(funnel=["click", "view"]),
         r"funnel names task 'view', which is not one of the tasks"),
        (dict(negative_sampling_rate={"view": 0.5}), r"negative_sampling_rate names task 'view'"),
        (dict(pos_label={"view": 1}), r"pos_label names task 'view'"),
        (dict(feature_groups={"user": ["zip"]}),
         r"feature_groups\['user'\] names 'zip', which is not a column"),
        (dict(early_stopping=True, validation_fraction=0.01),
         r"early_stopping with validation_fraction=0.01 leaves 0 validation"),
        (dict(scoring="roc_auc"), r"scoring='roc_auc' is not a score early stopping knows"),
        (dict(tower_layer_sizes={"view": (8,)}), r"tower_layer_sizes names task 'view'"),
    ],
    ids=lambda v: "-".join(v) if isinstance(v, dict) else None,
)
def test_parameter_values_checked_against_the_data(params, match):
    X, y = _frame()
    assert_raises_and_unchanged(_fit(**params), (X, y), ValueError, match)


def test_cuda_without_a_gpu():
    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is available")
    X, y = _data()
    assert_raises_and_unchanged(
        _fit(device="cuda"), (X, y), ValueError,
        r"device='cuda' was requested but no CUDA GPU is available to PyTorch .*Use device='cpu'",
    )


# ------------------------------------------------------------- warm start and refits
def test_warm_start_with_another_number_of_tasks_keeps_the_model():
    X, y = _frame()
    clf = _fit(warm_start=True)(X, y)
    before = clf.predict_proba(X)
    y3 = y.assign(view=y["click"])
    assert_raises_and_unchanged(
        clf.fit, (X, y3), ValueError,
        r"warm_start=True: y has 3 task\(s\) but the fitted model has 2\. Set warm_start=False",
    )
    for a, b in zip(before, clf.predict_proba(X)):
        assert np.array_equal(a, b)


def test_warm_start_with_other_classes():
    X, y = _frame()
    clf = _fit(warm_start=True)(X, y)
    y2 = y.replace({"buy": {1: 2}})
    assert_raises_and_unchanged(
        clf.fit, (X, y2), ValueError, r"warm_start=True: task 'buy' has classes \[0, 2\]"
    )


def test_plain_refit_with_another_y_shape_is_legal():
    X, y = _frame()
    clf = _fit()(X, y)
    clf.fit(X, y["click"])
    assert clf.n_outputs_ == 1 and isinstance(clf.classes_, np.ndarray)
    assert clf.predict_proba(X).shape == (40, 2)
    clf.fit(X, y.assign(view=y["buy"]))
    assert clf.n_outputs_ == 3 and len(clf.predict_proba(X)) == 3


def test_failed_refit_keeps_the_fitted_model():
    # skmtl._fit_guards.keep_state_on_error: validate_data(reset=True) has already replaced
    # feature_names_in_ when y is found bad; without the guard the old model could no
    # longer predict on its own columns.
    X, y = _frame()
    clf = _fit()(X, y)
    before = clf.predict_proba(X)
    X_other = X.rename(columns={"a": "z"})
    with pytest.raises(ValueError, match="has only one class"):
        clf.fit(X_other, y.assign(buy=1, click=1))
    for a, b in zip(before, clf.predict_proba(X)):
        assert np.array_equal(a, b)


# ------------------------------------------------------------- predict-time input
def test_predict_before_fit():
    X, _ = _data()
    with pytest.raises(NotFittedError, match=r"MultiTaskClassifier instance is not fitted yet"):
        MultiTaskClassifier().predict_proba(X)


def test_wrong_number_of_features_at_predict_time():
    X, y = _data()
    clf = _fit()(X, y)
    assert_raises_and_unchanged(
        clf.predict, (X[:, :2],), ValueError,
        r"X has 2 features, but MultiTaskClassifier is expecting 3 features as input",
    )


def test_renamed_column_at_predict_time():
    X, y = _frame()
    clf = _fit()(X, y)
    X_renamed = X.rename(columns={"a": "z"})
    assert_raises_and_unchanged(
        clf.predict_proba, (X_renamed,), ValueError,
        r"(?s)Feature names unseen at fit time:\n- z\n.*seen at fit time, yet now missing:\n- a",
    )


def test_reordered_columns_at_predict_time():
    X, y = _frame()
    clf = _fit()(X, y)
    assert_raises_and_unchanged(
        clf.predict_proba, (X[["b", "a", "c"]],), ValueError,
        r"Feature names must be in the same order as they were in fit",
    )


def test_empty_X_at_predict_time():
    X, y = _data()
    clf = _fit()(X, y)
    assert_raises_and_unchanged(
        clf.predict, (X[:0],), ValueError, r"Found array with 0 sample\(s\)"
    )


def test_score_with_another_number_of_tasks():
    X, y = _data()
    clf = _fit()(X, y)
    assert_raises_and_unchanged(
        clf.score, (X, y[:, :1]), ValueError, r"y has 1 task\(s\) but the model was fitted on 2"
    )


def test_new_categories_at_predict_time_give_the_base_rate():
    """Unseen and missing categories are not an error: the unknown row gives ~ the base rate."""
    rng = np.random.RandomState(0)
    n = 2000
    city = rng.choice([f"c{i}" for i in range(8)], size=n)
    rate = dict(zip([f"c{i}" for i in range(8)], np.linspace(0.1, 0.9, 8)))
    y = (rng.rand(n) < np.vectorize(rate.get)(city)).astype(int)
    X = pd.DataFrame({"city": pd.array(city, dtype="string"), "noise": rng.normal(size=n)})
    clf = MultiTaskClassifier(
        category_dropout=0.1, max_iter=5, batch_size=64, learning_rate_init=0.01, random_state=0
    ).fit(X, y)
    new = pd.DataFrame(
        {"city": pd.array(["berlin"] * 50 + [pd.NA] * 50, dtype="string"), "noise": np.zeros(100)}
    )
    before = new.copy()
    proba = clf.predict_proba(new)
    pd.testing.assert_frame_equal(new, before)
    assert np.all(np.isfinite(proba)) and np.allclose(proba.sum(axis=1), 1.0)
    known = clf.predict_proba(X)[:, 1]
    assert abs(proba[:, 1].mean() - y.mean()) < 0.1, (proba[:, 1].mean(), y.mean())
    assert known.min() < proba[:, 1].min() and proba[:, 1].max() < known.max()


def test_categorical_values_of_another_type_at_predict_time_are_unknown():
    X = pd.DataFrame({"city": pd.Series(["a", "b"] * 20, dtype=object), "x": np.arange(40.0)})
    y = np.arange(40) % 2
    clf = _fit(min_frequency=1)(X, y)
    other = pd.DataFrame({"city": pd.Series([1, 2.5, None, True], dtype=object), "x": np.zeros(4)})
    codes, _ = clf.encoder_.transform(other)
    assert codes[:, 0].tolist() == [0, 0, 0, 0]
    assert np.all(np.isfinite(clf.predict_proba(other)))


# ------------------------------------------------------------- high cardinality
def _peak_rss_growth_mb(function):
    """``(function(), growth of the peak resident memory in MB)``; None where /proc cannot say."""
    status = Path("/proc/self/status")

    def read(field):
        line = next(x for x in status.read_text().splitlines() if x.startswith(field))
        return int(line.split()[1]) / 1024

    try:
        Path("/proc/self/clear_refs").write_text("5")  # reset the peak (VmHWM) to the current RSS
        before = read("VmRSS:")
    except (OSError, StopIteration):
        return function(), None
    result = function()
    return result, read("VmHWM:") - before


def test_a_million_distinct_ids_with_max_categories_fit_in_bounded_time_and_memory():
    """10^6 rows, 10^6 distinct IDs, max_categories=1000, one epoch of a tiny model.

    Measured on the 2-core dev box (shared with other jobs): fit 4-10 s, peak
    RSS growth 80-150 MB (the data themselves, ~200 MB, exist before the fit).
    Without max_categories and with min_frequency=1 the same fit builds a
    1,000,001-row table: 245 s for one epoch with the default batch size and
    embedding_dim=8 (dense Adam updates of the whole table at every step).
    """
    n = 10**6
    rng = np.random.RandomState(0)
    ids = pd.array(np.char.add("u", np.arange(n).astype(str)), dtype="str")
    X = pd.DataFrame({"user_id": ids, "x": rng.normal(size=n)})
    y = (X["x"].to_numpy() + rng.logistic(size=n) > 0).astype(int)
    clf = MultiTaskClassifier(
        min_frequency=1, max_categories=1000, max_iter=1, embedding_dim=4,
        expert_layer_sizes=(8,), n_experts=2, tower_layer_sizes=(), batch_size=4096,
        early_stopping=False, random_state=0, device="cpu",
    )
    start = time.perf_counter()
    _, growth_mb = _peak_rss_growth_mb(lambda: clf.fit(X, y))
    fit_s = time.perf_counter() - start
    print(f"10^6 IDs, max_categories=1000: fit {fit_s:.1f} s, peak RSS growth {growth_mb} MB")
    assert clf.encoder_.cardinalities == [1001]
    assert tuple(clf.module_.embedding.kinds["categorical"].weight.shape) == (1001, 4)
    assert np.all(np.isfinite(clf.predict_proba(X.iloc[:1000])))
    assert fit_s < 60
    assert growth_mb is None or growth_mb < 1000


def test_ids_seen_once_collapse_to_the_unknown_row():
    """Without max_categories, min_frequency=5 leaves an all-distinct ID column no category."""
    n = 20_000
    X = pd.DataFrame(
        {"user_id": [f"u{i}" for i in range(n)], "x": np.random.RandomState(0).normal(size=n)}
    )
    y = (X["x"] > 0).astype(int).to_numpy()
    clf = MultiTaskClassifier(max_iter=1, batch_size=4096, random_state=0).fit(X, y)
    assert clf.encoder_.cardinalities == [1]
    assert clf.categories_[0].size == 0
    codes, _ = clf.encoder_.transform(X.iloc[:100])
    assert not codes.any()


def test_estimator_warns_about_a_column_that_kept_no_category():
    # skmtl._fit_guards.check_embedding_tables runs inside fit.
    X = pd.DataFrame({"user_id": [f"u{i}" for i in range(200)], "x": np.arange(200.0)})
    with pytest.warns(UserWarning, match=r"Categorical column\(s\) 'user_id' kept no category"):
        MultiTaskClassifier(**TINY).fit(X, np.arange(200) % 2)


def test_estimator_warns_about_huge_embedding_tables(monkeypatch):
    monkeypatch.setattr(_fit_guards, "MAX_EMBEDDING_PARAMETERS", 1000)
    X = pd.DataFrame({"user_id": [f"u{i % 300}" for i in range(600)], "x": np.arange(600.0)})
    with pytest.warns(UserWarning, match=r"embedding tables hold 2,408 parameters"):
        MultiTaskClassifier(min_frequency=1, **TINY).fit(X, np.arange(600) % 2)


def _encoder(columns, **kwargs):
    X = pd.DataFrame(columns)
    mask = np.ones(X.shape[1], dtype=bool)
    return TabularEncoder.from_mask(mask, feature_names=np.asarray(X.columns), **kwargs).fit(X)


def test_check_embedding_tables_flags_a_column_without_categories():
    ids = [f"u{i}" for i in range(50)]
    encoder = _encoder({"id": ids, "city": ["a", "b"] * 25}, min_frequency=5)
    match = r"column\(s\) 'id' kept no category: no value was seen min_frequency=5"
    with pytest.warns(UserWarning, match=match):
        _fit_guards.check_embedding_tables(encoder, 8)


def test_check_embedding_tables_flags_huge_tables(monkeypatch):
    monkeypatch.setattr(_fit_guards, "MAX_EMBEDDING_PARAMETERS", 1000)
    encoder = _encoder({"id": [f"u{i}" for i in range(300)], "city": ["a", "b"] * 150})
    # (300 + 1) + (2 + 1) rows x 8 = 2,432 parameters; 'id' is the largest table.
    match = r"hold 2,432 parameters \(column 'id': 301 rows x embedding_dim=8\)"
    with pytest.warns(UserWarning, match=match):
        _fit_guards.check_embedding_tables(encoder, 8)


def test_check_embedding_tables_is_quiet_for_ordinary_columns():
    encoder = _encoder({"city": ["a", "b", "c"] * 20})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _fit_guards.check_embedding_tables(encoder, 8)


def test_keep_state_on_error_restores_fitted_attributes():
    class Model:
        def __init__(self):
            self.alpha = 1

        @_fit_guards.keep_state_on_error
        def fit(self, fail):
            self.coef_ = "new"
            self.extra_ = 1
            if fail:
                raise ValueError("boom")
            return self

    model = Model().fit(False)
    del model.extra_
    with pytest.raises(ValueError, match="boom"):
        model.fit(True)
    assert vars(model) == {"alpha": 1, "coef_": "new"}
    model.coef_ = "old"
    with pytest.raises(ValueError):
        model.fit(True)
    assert model.coef_ == "old" and not hasattr(model, "extra_")


# ------------------------------------------------------------- training that diverges
def _assert_finite_weights(clf):
    for name, tensor in clf.module_.state_dict().items():
        assert torch.isfinite(tensor.float()).all(), name


def _diverge(**params):
    """A refit whose first update (learning rate 1e30) sends the weights to inf."""
    return dict(learning_rate_init=1e30, batch_size=10, max_iter=3, **params)


@pytest.mark.parametrize("architecture", ["shared_bottom", "mmoe", "ple", "aitm"])
def test_divergence_names_the_first_bad_batch(architecture):
    # Batch 1's loss is computed before any update, so with 4 batches per epoch the first
    # non-finite loss is that of batch 2 of epoch 1, whatever the architecture.
    X, y = _data()
    clf = MultiTaskClassifier(architecture, **{**TINY, **_diverge()})
    info = assert_raises_and_unchanged(
        clf.fit, (X, y), ValueError,
        r"Training diverged: the loss became NaN or infinite at epoch 1, batch 2\. Lower "
        r"learning_rate_init \(now 1e\+30\)",
    )
    assert isinstance(info.value, FloatingPointError)
    assert not hasattr(clf, "module_") and not hasattr(clf, "classes_")


@pytest.mark.parametrize("failure", ["diverges", "bad-y"])
def test_failed_first_fit_leaves_the_estimator_unfitted(failure):
    # skmtl._fit_guards.keep_state_on_error: without it n_features_in_ would survive the
    # failed fit, check_is_fitted would pass and predict leak AttributeError: no 'module_'.
    X, y = _data()
    if failure == "diverges":
        clf, y_fit = MultiTaskClassifier(**{**TINY, **_diverge()}), y
    else:
        clf, y_fit = MultiTaskClassifier(**TINY), np.ones(40)
    with pytest.raises(ValueError):
        clf.fit(X, y_fit)
    assert not any(k.endswith("_") for k in vars(clf)), sorted(vars(clf))
    with pytest.raises(NotFittedError):
        clf.predict(X)


def test_divergence_at_the_very_first_batch():
    # A gate temperature of 1e-45 overflows the gates' softmax before any update.
    X, y = _data()
    with pytest.raises(FloatingPointError, match=r"at epoch 1, batch 1\."):
        _fit(architecture="mmoe", gate_temperature=1e-45, batch_size=10)(X, y)


@pytest.mark.parametrize("warm_start", [False, True])
def test_divergence_leaves_the_fitted_model_as_it_was(warm_start):
    X, y = _frame()
    clf = MultiTaskClassifier(**{**TINY, "max_iter": 2, "warm_start": warm_start}).fit(X, y)
    proba, module, curve = clf.predict_proba(X), clf.module_, list(clf.loss_curve_)
    state = {k: v.clone() for k, v in module.state_dict().items()}
    clf.set_params(**_diverge())
    with pytest.raises(FloatingPointError, match=r"epoch 1, batch 2"):
        clf.fit(X, y)
    assert clf.module_ is module and clf.loss_curve_ == curve and clf.n_iter_ == 2
    for name, tensor in module.state_dict().items():
        assert torch.equal(tensor, state[name]), name
    _assert_finite_weights(clf)
    for a, b in zip(proba, clf.predict_proba(X)):
        assert np.array_equal(a, b)


def test_divergence_on_other_columns_leaves_the_fitted_model_as_it_was():
    # skmtl._fit_guards.keep_state_on_error (as test_failed_refit_keeps_...).
    X, y = _frame()
    clf = _fit()(X, y)
    proba = clf.predict_proba(X)
    with pytest.raises(FloatingPointError):
        clf.set_params(**_diverge()).fit(X.rename(columns=str.upper), y)
    for a, b in zip(proba, clf.predict_proba(X)):
        assert np.array_equal(a, b)


def test_every_task_keyed_setting_takes_names_and_indices_alike():
    """One rule for "a task by name or index" (task_weights, class_weight, funnel,
    negative_sampling_rate, pos_label): an index and the task's name give the same model."""
    X, y = _frame()
    by_index = dict(
        task_weights={1: 2.0}, class_weight={1: "balanced"}, negative_sampling_rate={0: 0.5},
        pos_label={1: 0},
    )
    names = list(y.columns)
    by_name = dict(
        task_weights={names[1]: 2.0}, class_weight={names[1]: "balanced"},
        negative_sampling_rate={names[0]: 0.5}, pos_label={names[1]: 0},
    )
    fits = [_fit(**params)(X, y) for params in (by_index, by_name)]
    for a, b in zip(fits[0].predict_proba(X), fits[1].predict_proba(X)):
        np.testing.assert_array_equal(a, b)
    for setting, value in [("task_weights", {2: 1.0}), ("class_weight", {2: "balanced"}),
                           ("funnel", [0, 2]), ("negative_sampling_rate", {2: 0.5}),
                           ("pos_label", {2: 1})]:
        with pytest.raises(ValueError, match=rf"{setting} names task 2, which is not one of"):
            _fit(**{setting: value})(X, y)
    from skmtl._funnel import resolve_funnel

    classes = [np.array([0, 1])] * 2
    assert resolve_funnel([0, 1], names, classes) == resolve_funnel(names, names, classes)


def test_task_keyed_setting_is_refused_before_any_work_on_X():
    """A typo in task_weights fails before the encoder is fitted (no warning about X's
    columns first) and before the seed is drawn from a RandomState the user passed."""
    import warnings

    rng = np.random.RandomState(0)
    X = pd.DataFrame({"id": [f"u{i}" for i in range(60)], "x": rng.normal(size=60)})
    y = np.column_stack([rng.randint(0, 2, 60), rng.randint(0, 2, 60)])
    random_state = np.random.RandomState(7)
    before = random_state.get_state()[1].copy()
    clf = MultiTaskClassifier(task_weights={"nope": 2.0}, random_state=random_state, max_iter=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "kept no category" would be raised first
        with pytest.raises(ValueError, match="nope"):
            clf.fit(X, y)
    assert np.array_equal(random_state.get_state()[1], before)


def test_score_errors_are_the_ones_sklearn_users_expect():
    """Issue 12, item 6: not fitted -> NotFittedError; lengths -> sklearn's ValueError."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(60, 3))
    y = (X[:, :2] > 0).astype(int)
    with pytest.raises(NotFittedError):
        MultiTaskClassifier().score(X, y)
    clf = MultiTaskClassifier(max_iter=1, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match=r"inconsistent numbers of samples: \[60, 59\]"):
        clf.score(X, y[:-1])
    with pytest.raises(ValueError, match=r"inconsistent numbers of samples: \[60, 60, 59\]"):
        clf.score(X, y, sample_weight=np.ones(59))


def test_smaller_contract_points():
    """Issue 12, item 8: tags, flat classes in partial_fit, predict_log_proba, bool columns
    of object arrays, and dates refused as continuous columns."""
    tags = MultiTaskClassifier().__sklearn_tags__()
    assert tags.input_tags.string and tags.input_tags.categorical and not tags.input_tags.allow_nan

    rng = np.random.RandomState(0)
    n = 120
    X = rng.normal(size=(n, 3))
    y = np.column_stack([X[:, 0] > 0, X[:, 1] > 0]).astype(int)
    clf = MultiTaskClassifier(max_iter=1, random_state=0).partial_fit(X[:10], y[:10], classes=[0, 1])
    assert [c.tolist() for c in clf.classes_] == [[0, 1], [0, 1]]

    clf.fit(X, y)
    for log_proba, proba in zip(clf.predict_log_proba(X), clf.predict_proba(X)):
        np.testing.assert_array_equal(log_proba, np.log(proba))
    single = MultiTaskClassifier(max_iter=1, random_state=0).fit(X, y[:, 0])
    assert single.predict_log_proba(X).shape == (n, 2)

    objects = np.empty((n, 2), dtype=object)
    objects[:, 0] = X[:, 0] > 0
    objects[:, 1] = X[:, 1]
    assert MultiTaskClassifier(max_iter=1).fit(objects, y).is_categorical_.tolist() == [True, False]

    frame = pd.DataFrame({"when": pd.date_range("2024-01-01", periods=n, freq="h"), "x": X[:, 0]})
    with pytest.raises(ValueError, match=r"'when' hold dates or durations \(datetime64"):
        MultiTaskClassifier(max_iter=1).fit(frame, y)
    declared = MultiTaskClassifier(max_iter=1, categorical_features=["when"], min_frequency=1)
    assert declared.fit(frame, y).is_categorical_.tolist() == [True, False]


# ------------------------------------------- found by a review of bad inputs (2026-11-30)
def test_a_nullable_integer_categorical_column_is_saved_to_a_model_file(tmp_path):
    """save_model's table of pandas dtypes misspelt Int64/UInt64: such a column refused to save."""
    from skmtl import load_model, save_model

    X, y = _frame(n=60)
    X["store"] = pd.array([1, 2, None, 3] * 15, dtype="Int64")
    clf = _fit(categorical_features=["store"])(X, y)
    save_model(clf, tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    for a, b in zip(clf.predict_proba(X), loaded.predict_proba(X)):
        assert np.array_equal(a, b)


def test_sample_weight_trains_on_its_ratios_only(monkeypatch):
    """Scaled by a power of two, weights of a usual size train bit for bit as given; tiny or
    huge ones no longer underflow or overflow float32 (1e-44 stopped early at a loss of
    0.0003, 1e38 diverged)."""
    from skmtl import _base

    X, y = _frame(n=200)
    w = np.random.RandomState(0).uniform(0.5, 3.0, size=200)  # scaled by 1/2 for training
    fit = lambda weights: _fit(max_iter=4)(X, y, sample_weight=weights)
    base = fit(w)
    with monkeypatch.context() as patched:
        patched.setattr(_base, "float32_ready_weights", lambda weights, group: weights)
        as_given = fit(w)
    assert np.array_equal(as_given.loss_curve_, base.loss_curve_)
    for a, b in zip(as_given.predict_proba(X), base.predict_proba(X)):
        assert np.array_equal(a, b)
    for factor in (1e-44, 1e38):
        np.testing.assert_allclose(fit(w * factor).loss_curve_, base.loss_curve_, rtol=1e-5)
    before = w * 1e38
    kept = before.copy()
    fit(before)
    assert np.array_equal(before, kept)  # the user's weights are not rescaled in place
    with pytest.raises(ValueError, match="sample_weight spans more than float32 holds"):
        fit(np.r_[1e-300, np.ones(199)])


def test_complex_dataframe_column_is_refused_as_a_complex_array_is():
    X, y = _frame()
    X["a"] = X["a"] + 1j
    with pytest.raises(ValueError, match=r"Continuous column\(s\) 'a' hold complex numbers"):
        _fit()(X, y)


def test_values_whose_moments_overflow_are_refused():
    X, y = _frame()
    X["b"] = X["b"] * 1e160  # finite, but its squares are not
    with pytest.raises(ValueError, match=r"column\(s\) 'b' hold values too large"):
        _fit()(X, y)
    from skmtl import MultiTaskRegressor

    targets = y.astype(float).assign(buy=y["buy"] * 1e300)
    with pytest.raises(ValueError, match=r"task\(s\) \['buy'\] are too large"):
        MultiTaskRegressor(max_iter=1).fit(X, targets)


def test_unhashable_categorical_cells_at_predict_name_the_column():
    X, y = _frame()
    X["city"] = ["x", "y"] * 20
    clf = _fit(categorical_features=["city"])(X, y)
    bad = X.copy()
    bad["city"] = [["x"]] * 40
    with pytest.raises(ValueError, match="Categorical column 'city' holds values that cannot"):
        clf.predict_proba(bad)


@pytest.mark.parametrize(
    ("categories", "error", "match"),
    [
        (["city"], TypeError, "categories must be a dict"),
        ({"city": "xyz"}, ValueError, r"categories\['city'\] must be a list"),
        ({"city": [["x", "y"]]}, ValueError, "flat list of categories"),
        ({"city": {"x": 1, "z": 2}}, ValueError, r"categories\['city'\] must be a list"),
        ({True: ["x"]}, ValueError, "categories names True, which is not a categorical column"),
    ],
)
def test_partial_fit_categories_are_checked(categories, error, match):
    X, y = _frame()
    X["city"] = ["x", "y"] * 20
    clf = MultiTaskClassifier(categorical_features=["city"], max_iter=1, random_state=0)
    with pytest.raises(error, match=match):
        clf.partial_fit(X, y, categories=categories)


def test_partial_fit_categories_may_be_a_set():
    X, y = _frame()
    X["city"] = ["x", "y"] * 20
    clf = MultiTaskClassifier(categorical_features=["city"], max_iter=1, random_state=0)
    clf.partial_fit(X, y, categories={"city": {"z", "x", "y"}})
    assert clf.categories_[list(X.columns).index("city")].tolist() == ["x", "y", "z"]


def test_duplicate_task_names_are_refused():
    """task_weights={'t': 0} would have weighted the first of two tasks named 't' only."""
    X, y = _frame()
    with pytest.raises(ValueError, match=r"\['t'\] name more than one"):
        _fit()(X, y.set_axis(["t", "t"], axis=1))
    with pytest.raises(ValueError, match=r"\['1'\] name more than one"):
        _fit()(X, y.set_axis(["1", 1], axis=1))


@pytest.mark.parametrize(
    "setting",
    [
        {"class_weight": {"click": "balanced", 0: {0: 1.0, 1: 2.0}}},
        {"pos_label": {"click": 1, 0: 0}},
        {"negative_sampling_rate": {"click": 0.5, 0: 0.9}},
    ],
)
def test_a_setting_that_names_a_task_twice_is_refused(setting):
    """The last of the two entries won silently (class_weight lost 'balanced')."""
    X, y = _frame()
    with pytest.raises(ValueError, match="names task 'click' twice"):
        _fit(**setting)(X, y)


# ---------------------------------------------- X at predict time as the user may hand it over
def _member_data(n=300):
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"member": rng.random(n) > 0.5, "x": rng.normal(size=n)})
    y = pd.DataFrame({"buy": X.member.astype(int), "click": (X.x > 0).astype(int)})
    return X, y


def test_bool_and_0_1_categories_are_the_same_categories():
    from skmtl._encoding import encode_column

    bools = pd.Index([False, True])
    for values in (np.array([0, 1, 1, 2]), np.array([0.0, 1.0, 1.0, 0.5])):
        assert encode_column(values, bools).tolist() == [1, 2, 2, 0]
    assert encode_column(np.array([True, False]), pd.Index([0, 1])).tolist() == [2, 1]
    # bools learnt with missing values are an object vocabulary; pandas category columns too
    assert encode_column(np.array([0, 1]), pd.Index([False, True], dtype=object)).tolist() == [1, 2]
    assert encode_column(pd.Series([0, 1, 1]).astype("category"), bools).tolist() == [1, 2, 2]
    assert encode_column(pd.Series([True]).astype("category"), pd.Index([0, 1])).tolist() == [2]
    X, y = _member_data()
    model = MultiTaskClassifier(max_iter=2, random_state=0).fit(X, y)
    expected = model.predict_proba(X)
    for as_numbers in (X.assign(member=X.member.astype(int)), X.assign(member=X.member * 1.0)):
        for a, b in zip(model.predict_proba(as_numbers), expected):
            np.testing.assert_array_equal(a, b)


def test_a_list_of_rows_keeps_its_numbers_numbers():
    rng = np.random.default_rng(0)
    X = np.empty((200, 3), dtype=object)
    X[:, 0] = rng.choice(["paris", "lyon"], 200)
    X[:, 1] = rng.choice([3, 7], 200)
    X[:, 2] = rng.normal(size=200)
    y = np.c_[(X[:, 1] == 7).astype(int), (X[:, 2].astype(float) > 0).astype(int)]
    model = MultiTaskClassifier(max_iter=2, random_state=0, categorical_features=[0, 1]).fit(X, y)
    for a, b in zip(model.predict_proba(X[:50].tolist()), model.predict_proba(X[:50])):
        np.testing.assert_array_equal(a, b)  # 7 stayed 7, not '7' (the unknown category)
    # a list of strings only (csv.reader's rows) is read as numpy reads it
    strings = [[str(v) for v in row[1:]] for row in X[:50].tolist()]
    numeric = MultiTaskClassifier(**TINY).fit(strings, y[:50])
    assert not numeric.encoder_.categorical.columns.size


def test_a_pyarrow_table_with_its_index_first_keeps_every_column():
    pa = pytest.importorskip("pyarrow")
    from skmtl._frames import as_pandas

    X = pd.DataFrame({"store": pd.array([1, None, 3, 4], dtype="Int64"), "b": [10.0, 20.0, 30.0, 40.0]},
                     index=pd.Index([7, 8, 9, 10], name="row_id"))
    table = pa.Table.from_pandas(X).select(["row_id", "store", "b"])
    frame = as_pandas(table)
    assert frame["b"].tolist() == [10.0, 20.0, 30.0, 40.0]
    assert frame["store"].dtype == "Int64" and frame["store"].isna().tolist() == [False, True, False, False]
    # integer column names come back from pandas' metadata: still restored as integers
    frame = as_pandas(pa.Table.from_pandas(X.reset_index(drop=True).set_axis([0, 1], axis=1)))
    assert frame[0].dtype == "Int64" and frame[1].tolist() == [10.0, 20.0, 30.0, 40.0]


def test_from_dtype_takes_decimals_as_numbers_and_refuses_dates():
    import datetime
    import decimal

    rng = np.random.default_rng(0)
    y = (rng.random(100) > 0.5).astype(int)
    prices = pd.DataFrame({"price": [decimal.Decimal("1.50"), decimal.Decimal("9.99")] * 50,
                           "x": rng.normal(size=100)})
    model = MultiTaskClassifier(**TINY).fit(prices, y)
    assert model.encoder_.continuous.columns.tolist() == [0, 1]
    np.testing.assert_allclose(model.encoder_.continuous.mean_[0], (1.5 + 9.99) / 2)
    mixed = prices.assign(price=[decimal.Decimal("1.50"), 0.0] * 50)  # e.g. after fillna(0.0)
    assert MultiTaskClassifier(**TINY).fit(mixed, y).encoder_.continuous.columns.tolist() == [0, 1]
    for value, kind in ((datetime.date(2020, 1, 1), "date"), (datetime.time(12), "time")):
        dates = pd.DataFrame({"d": [value] * 100, "x": rng.normal(size=100)})
        with pytest.raises(ValueError, match=rf"Column 'd' holds {kind} values"):
            MultiTaskClassifier(**TINY).fit(dates, y)
        MultiTaskClassifier(**TINY, categorical_features=["d"]).fit(dates, y)  # when named


def test_declared_categories_that_no_value_is_are_refused():
    X, y = _member_data()
    X = X.assign(store=np.resize([10, 20, 30], len(X)))
    refused = r"Column 'store' holds numbers .* declared categories are strings"
    with pytest.raises(ValueError, match=refused):
        MultiTaskClassifier(**TINY, categorical_features=["store"]).partial_fit(
            X, y, classes=[[0, 1], [0, 1]], categories={"store": ["10", "20", "30"]}
        )
    MultiTaskClassifier(**TINY, categorical_features=["store"]).partial_fit(
        X, y, classes=[[0, 1], [0, 1]], categories={"store": [10, 20, 30, 40]}
    )
    # values of the right kind outside the declared set are unknown categories, as documented
    MultiTaskClassifier(**TINY, categorical_features=["store"]).partial_fit(
        X, y, classes=[[0, 1], [0, 1]], categories={"store": [40, 50]}
    )


@pytest.mark.parametrize("unknown", [
    [None] * 120, pd.Series([pd.NA] * 120, dtype="string"), pd.Series([pd.NA] * 120, dtype="Int64"),
])
def test_a_task_without_known_labels_of_a_nullable_dtype_is_set_aside(unknown):
    from skmtl import metrics

    rng = np.random.RandomState(0)
    X = rng.normal(size=(120, 3))
    y = pd.DataFrame({"click": np.where(X[:, 0] > 0, "yes", "no"), "buy": unknown})
    model = MultiTaskClassifier(max_iter=2, random_state=0).fit(X, y)  # float NaN's behaviour
    (click, buy), = model.predict(X[:1]).tolist()
    assert click in ("yes", "no") and buy is None and model.classes_[1].size == 0
    assert 0 <= metrics.get_scorer("mean_roc_auc")(model, X, y) <= 1


def test_score_refuses_labels_of_another_type_than_the_fitted_classes():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(100, 3))
    strings = np.where(X[:, 0] > 0, "1", "0")
    model = MultiTaskClassifier(**TINY).fit(X, strings)
    refused = r"holds labels \[.*\] \(numbers\) but the model's classes are \['0', '1'\]"
    with pytest.raises(ValueError, match=refused):
        model.score(X, (X[:, 0] > 0).astype(int))  # was 0.0: every label 'never seen in fit'
    model.score(X, strings)


def test_pyarrow_integer_labels_with_nulls_stay_integers_and_float_pos_label():
    pa = pytest.importorskip("pyarrow")
    rng = np.random.RandomState(0)
    X = rng.normal(size=(100, 3))
    labels = [None if i % 9 == 0 else int(v) for i, v in enumerate(X[:, 0] > 0)]
    for y in (pa.array(labels), pa.chunked_array([labels])):
        model = MultiTaskClassifier(**TINY).fit(X, y)
        assert model.classes_.dtype.kind == "i" and model.predict(X[:2]).dtype.kind == "i"
    floats = np.where(X[:, 0] > 0, 1.0, 0.0)
    floats[0] = np.nan  # float classes_, whose own values name the positive class
    assert MultiTaskClassifier(**TINY, pos_label=1.0).fit(X, floats).classes_.tolist() == [0.0, 1.0]
    MultiTaskClassifier(**TINY, pos_label=np.True_).fit(X, X[:, 0] > 0)


def test_inputs_review_cases():
    rng = np.random.RandomState(0)
    y = (rng.rand(60) > 0.5).astype(int)
    # a missing value in a list of string rows is missing, not the category 'nan'
    rows = [["a", "1"], [np.nan, "2"], ["b", "3"]] * 20
    model = MultiTaskClassifier(**TINY, categorical_features=[0]).fit(rows, y)
    assert "nan" not in [str(c) for c in model.categories_[0]]
    # object columns of plain numbers stay categorical, ints and floats mixed or not
    mixed = pd.DataFrame({"n": pd.Series([1, 2.5] * 30, dtype=object), "x": rng.normal(size=60)})
    assert MultiTaskClassifier(**TINY).fit(mixed, y).is_categorical_.tolist() == [True, False]
    # bytes never match strings
    X = pd.DataFrame({"c": ["a", "b"] * 30, "x": rng.normal(size=60)})
    refused = r"holds strings .* declared categories are bytes"
    with pytest.raises(ValueError, match=refused):
        MultiTaskClassifier(**TINY).partial_fit(X, y, classes=[0, 1], categories={"c": [b"a", b"b"]})


def test_review_cases_of_the_outputs_fixes():
    from skmtl import metrics

    rng = np.random.RandomState(0)
    X = rng.normal(size=(100, 3))
    yes = np.where(X[:, 0] > 0, "yes", "no")
    model = MultiTaskClassifier(**TINY).fit(X, yes)
    with pytest.raises(ValueError, match=r"\(bytes\) but the model's classes"):
        model.score(X, yes.astype("S"))  # b'yes' never matches 'yes'
    mixed = yes.astype(object)
    mixed[1:] = (X[1:, 0] > 0).astype(int)  # the first label text, the rest numbers
    with pytest.raises(ValueError, match=r"\(numbers, strings\) but the model's classes"):
        model.score(X, mixed)
    with pytest.raises(ValueError, match=r"class weights are finite numbers >= 0"):
        MultiTaskClassifier(**TINY, class_weight={"no": -1.0, "yes": 1.0}).fit(X, yes)
    # a funnel step without a known label is not scored, not an IndexError
    y_true = pd.DataFrame({"click": (X[:, 0] > 0).astype(float), "buy": np.nan})
    proba = [np.c_[1 - X[:, 0] ** 2 / 10, X[:, 0] ** 2 / 10]] * 2
    scores = metrics.per_task_scores("roc_auc", y_true, proba, funnel=[0, 1])
    assert np.isfinite(scores[0]) and np.isnan(scores[1])


def test_a_period_column_is_refused_as_an_object_column_of_periods_is():
    """period[M] has dtype kind 'O': from_dtype took each month as a category, silently."""
    rng = np.random.RandomState(0)
    X = pd.DataFrame({"d": pd.period_range("2020-01", periods=100, freq="M"),
                      "x": rng.normal(size=100)})
    y = (X["x"] > 0).astype(int)
    with pytest.raises(ValueError, match="Column 'd' holds period values"):
        MultiTaskClassifier(max_iter=1).fit(X, y)


def test_arrow_time_and_interval_columns_are_refused_as_object_ones_are():
    pa = pytest.importorskip("pyarrow")
    import datetime

    rng = np.random.RandomState(0)
    x = rng.normal(size=60)
    y = (x > 0).astype(int)
    times = pd.Series([datetime.time(i % 24) for i in range(60)],
                      dtype=pd.ArrowDtype(pa.time64("us")))
    with pytest.raises(ValueError, match="Column 't' holds time values"):
        MultiTaskClassifier(max_iter=1).fit(pd.DataFrame({"x": x, "t": times}), y)
    spans = pd.Series([pa.scalar((1, 2, 3), type=pa.month_day_nano_interval()).as_py()] * 60,
                      dtype=pd.ArrowDtype(pa.month_day_nano_interval()))
    with pytest.raises(ValueError, match="Column 't' holds pyarrow interval values"):
        MultiTaskClassifier(max_iter=1).fit(pd.DataFrame({"x": x, "t": spans}), y)


def test_arrow_interval_declared_categorical_and_arrow_decimals():
    pa = pytest.importorskip("pyarrow")
    import decimal

    rng = np.random.RandomState(0)
    x = rng.normal(size=60)
    y = (x > 0).astype(int)
    kind = pa.month_day_nano_interval()
    spans = pd.Series(pa.array([pa.scalar((i % 3, 1, 0), kind).as_py() for i in range(60)],
                               type=kind), dtype=pd.ArrowDtype(kind))
    with pytest.raises(ValueError, match=r"cannot sort into categories.*map\(str\)"):
        MultiTaskClassifier(max_iter=1, categorical_features=["t"]).fit(
            pd.DataFrame({"x": x, "t": spans}), y)
    money = pa.decimal128(10, 3)
    amounts = pd.Series(pa.array([decimal.Decimal(f"{v:.3f}") for v in x], type=money),
                        dtype=pd.ArrowDtype(money))
    model = MultiTaskClassifier(max_iter=1).fit(pd.DataFrame({"x": x, "d": amounts}), y)
    assert not model.is_categorical_.any()  # numbers, as object columns of Decimals
