"""Tests for skmtl.datasets: the bundled census loader and the synthetic generator."""

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import skmtl.datasets
from skmtl.datasets import load_census_income, make_multitask_classification

CENSUS_FILE = Path(skmtl.datasets.__file__).parent / "data" / "census-income.test.gz"
CENSUS_SHA256 = "5ac4cacd3ca9f1ecb10de1a0a41e4ac68fdc419e3fec190f5c0c6cc03b2ea659"

NUMERIC_FEATURES = [
    "age",
    "wage_per_hour",
    "capital_gains",
    "capital_losses",
    "dividends_from_stocks",
    "num_persons_worked_for_employer",
    "weeks_worked_in_year",
]
CODED_CATEGORICAL_FEATURES = [
    "detailed_industry_recode",
    "detailed_occupation_recode",
    "own_business_or_self_employed",
    "veterans_benefits",
    "year",
]
NOT_FEATURES = ["education", "marital_stat", "instance_weight", "income"]


# --------------------------------------------------------------------------- census


@pytest.fixture(scope="module")
def census():
    return load_census_income()


def test_public_api():
    assert set(skmtl.datasets.__all__) == {
        "load_census_income", "make_ad_funnel", "make_click_watch_time",
        "make_multitask_classification", "make_wide_multitask_classification",
    }


def test_census_file_checksum():
    assert hashlib.sha256(CENSUS_FILE.read_bytes()).hexdigest() == CENSUS_SHA256


def test_census_shapes(census):
    assert census.data.shape == (99762, 38)
    assert census.target.shape == (99762, 2)
    assert census.sample_weight.shape == (99762,)
    assert census.frame.shape == (99762, 44)
    assert census.feature_names == list(census.data.columns)
    assert census.target_names == ["income_50k", "never_married"]
    assert list(census.target.columns) == census.target_names
    assert isinstance(census.DESCR, str) and "Census" in census.DESCR


def test_census_target_base_rates(census):
    assert census.target.dtypes.eq("int64").all()
    assert set(np.unique(census.target.to_numpy())) == {0, 1}
    rates = census.target.mean()
    assert round(rates["income_50k"], 4) == 0.0620
    assert round(rates["never_married"], 4) == 0.4325


def test_census_removed_columns_absent(census):
    for name in NOT_FEATURES:
        assert name not in census.data.columns
        assert name in census.frame.columns


def test_census_sample_weight(census):
    weight = census.sample_weight
    assert isinstance(weight, pd.Series)
    assert weight.dtype == np.float64
    assert (weight > 0).all()
    np.testing.assert_array_equal(weight.to_numpy(), census.frame["instance_weight"].to_numpy())


def test_census_dtypes(census):
    X = census.data
    assert not (X.dtypes == object).any()
    for name in NUMERIC_FEATURES:
        assert X[name].dtype in (np.int64, np.float64), name
    for name in X.columns:
        if name not in NUMERIC_FEATURES:
            assert isinstance(X[name].dtype, pd.CategoricalDtype), name
    for name in CODED_CATEGORICAL_FEATURES:
        assert pd.api.types.is_integer_dtype(X[name].cat.categories), name
    assert len(X.select_dtypes("category").columns) == 31


def test_census_missing_values_and_labels(census):
    X = census.data
    # "?" is missing, never a category; values are stripped of surrounding spaces
    assert X["migration_code_change_in_msa"].isna().sum() == 49946
    for name in X.select_dtypes("category").columns:
        categories = X[name].cat.categories
        assert "?" not in categories, name
        if not pd.api.types.is_integer_dtype(categories):
            assert (categories == categories.str.strip()).all(), name
    assert "Handlers equip cleaners etc" in X["major_occupation_code"].cat.categories
    assert not X[NUMERIC_FEATURES].isna().any().any()


def test_census_return_X_y_and_fresh_objects(census):
    X, y = load_census_income(return_X_y=True)
    # DataFrame.equals is much faster than assert_frame_equal on string categoricals
    assert X.equals(census.data) and (X.dtypes == census.data.dtypes).all()
    assert y.equals(census.target)
    X.loc[0, "age"] = -1
    y.loc[0, "income_50k"] = 7
    X_again, y_again = load_census_income(return_X_y=True)
    assert X_again.loc[0, "age"] == census.data.loc[0, "age"] != -1
    assert y_again.loc[0, "income_50k"] in (0, 1)


def test_census_as_frame_false_raises():
    with pytest.raises(ValueError, match="as_frame=True"):
        load_census_income(as_frame=False)


# ------------------------------------------------------------------------ synthetic


def _cosine(a, b):
    return a @ b / (np.linalg.norm(a) * np.linalg.norm(b))


def _phi(y):
    """Phi coefficient (Pearson correlation of two binary label columns)."""
    return np.corrcoef(y[:, 0], y[:, 1])[0, 1]


def test_generator_default_output():
    X, y = make_multitask_classification(n_samples=500, random_state=0)
    assert X.shape == (500, 100) and X.dtype == np.float64
    assert y.shape == (500, 2) and y.dtype == np.int64
    assert set(np.unique(y)) == {0, 1}


@pytest.mark.parametrize("p", [-1.0, -0.7, -0.2, 0.0, 0.3, 0.5, 0.9, 1.0])
def test_generator_weight_cosine_equals_correlation(p):
    bunch = make_multitask_classification(
        n_samples=10, n_features=30, task_correlation=p, scale=2.5, return_X_y=False,
        random_state=1,
    )
    w = bunch.weights
    assert w.shape == (2, 30)
    np.testing.assert_allclose(np.linalg.norm(w, axis=1), [2.5, 2.5])
    assert _cosine(w[0], w[1]) == pytest.approx(p, abs=1e-12)


def test_generator_weight_cosines_many_tasks():
    cosines = [0.8, -0.4, 0.0, 1.0]
    bunch = make_multitask_classification(
        n_samples=10, n_features=8, n_tasks=5, task_correlation=cosines, return_X_y=False,
        random_state=2,
    )
    w = bunch.weights
    assert w.shape == (5, 8)
    for t, p in enumerate(cosines, start=1):
        assert _cosine(w[0], w[t]) == pytest.approx(p, abs=1e-12)
    # the components orthogonal to w[0] are orthogonal to each other
    assert _cosine(w[1], w[2]) == pytest.approx(0.8 * -0.4, abs=1e-12)
    np.testing.assert_array_equal(bunch.task_correlation, cosines)

    shared = make_multitask_classification(
        n_samples=10, n_features=3, n_tasks=3, task_correlation=0.6, return_X_y=False,
        random_state=3,
    )
    for t in (1, 2):
        assert _cosine(shared.weights[0], shared.weights[t]) == pytest.approx(0.6, abs=1e-12)


@pytest.mark.parametrize("random_state", [0, 4])
def test_generator_label_correlation_falls_with_task_correlation(random_state):
    phis = [
        _phi(make_multitask_classification(
            n_samples=20000, task_correlation=p, random_state=random_state
        )[1])
        for p in (1.0, 0.9, 0.5, 0.0)
    ]
    assert phis[0] > 0.8
    assert all(a > b for a, b in zip(phis, phis[1:])), phis
    assert abs(phis[-1]) < 0.05


def test_generator_reproducible():
    kwargs = dict(n_samples=300, n_features=12, n_tasks=3, task_correlation=0.4)
    X1, y1 = make_multitask_classification(**kwargs, random_state=42)
    X2, y2 = make_multitask_classification(**kwargs, random_state=42)
    np.testing.assert_array_equal(X1, X2)
    np.testing.assert_array_equal(y1, y2)
    X3, y3 = make_multitask_classification(**kwargs, random_state=43)
    assert not np.array_equal(X1, X3)
    assert not np.array_equal(y1, y3)


def test_generator_labels_balanced_at_median():
    bunch = make_multitask_classification(
        n_samples=2001, n_features=10, n_tasks=3, return_X_y=False, random_state=0
    )
    assert np.abs(bunch.target.mean(axis=0) - 0.5).max() < 1e-3
    medians = np.median(bunch.target_continuous, axis=0)
    np.testing.assert_array_equal(bunch.target, bunch.target_continuous > medians)


def test_generator_continuous_targets_follow_formula():
    alpha = np.array([0.5, -1.0, 2.0])
    beta = np.array([0.1, 0.0, -0.3])
    bunch = make_multitask_classification(
        n_samples=200, n_features=5, n_sin=3, alpha=alpha, beta=beta, noise=0.0,
        return_X_y=False, random_state=0,
    )
    np.testing.assert_array_equal(bunch.alpha, alpha)
    np.testing.assert_array_equal(bunch.beta, beta)
    z = bunch.data @ bunch.weights.T
    expected = z + np.sin(z[..., None] * alpha + beta).sum(axis=-1)
    np.testing.assert_allclose(bunch.target_continuous, expected)


def test_generator_categorical_columns():
    X, y = make_multitask_classification(
        n_samples=800, n_features=6, n_categorical=2, n_bins=5, random_state=0
    )
    assert isinstance(X, pd.DataFrame)
    assert list(X.columns) == [f"x{j}" for j in range(6)]
    for name in ("x0", "x1"):
        assert isinstance(X[name].dtype, pd.CategoricalDtype)
        assert list(X[name].cat.categories) == [0, 1, 2, 3, 4]
        counts = X[name].value_counts()
        assert (counts == 160).all()  # quantile bins hold equal counts
    for name in ("x2", "x3", "x4", "x5"):
        assert X[name].dtype == np.float64
    assert y.shape == (800, 2)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(task_correlation=1.5), r"\[-1, 1\]"),
        (dict(task_correlation=-1.01), r"\[-1, 1\]"),
        (dict(task_correlation=[0.5, 0.2]), "one value per task after the first"),
        (dict(n_tasks=3, task_correlation=[0.5, 2.0]), r"\[-1, 1\]"),
        (dict(n_features=2, n_tasks=3), "n_features must be >= n_tasks"),
        (dict(n_samples=0), "n_samples"),
        (dict(n_samples=10.5), "n_samples must be an integer"),
        (dict(n_tasks=0), "n_tasks"),
        (dict(scale=-1.0), "scale"),
        (dict(noise=-0.1), "noise"),
        (dict(n_sin=-1), "n_sin"),
        (dict(n_sin=3, alpha=[1.0, 2.0]), "alpha must have shape"),
        (dict(n_sin=2, beta=[1.0, 2.0, 3.0]), "beta must have shape"),
        (dict(n_categorical=11), "n_categorical must be <= n_features"),
        (dict(n_categorical=2, n_bins=1), "n_bins"),
    ],
)
def test_generator_invalid_parameters(kwargs, message):
    params = dict(n_samples=20, n_features=10, random_state=0)
    params.update(kwargs)
    with pytest.raises(ValueError, match=message):
        make_multitask_classification(**params)


# --------------------------------------------------------------------------- click + watch time


def test_click_watch_time_draws_from_its_stated_probabilities_and_expectations():
    from sklearn.metrics import r2_score, roc_auc_score

    from skmtl.datasets import make_click_watch_time

    data = make_click_watch_time(n_samples=40_000, task_correlation=0.5, ctr=0.2,
                                 random_state=0)
    X, y = data.data, data.target
    assert X.shape == (40_000, 10) and list(y.columns) == ["click", "watch_time"]
    assert y["click"].dtype == np.int64 and set(np.unique(y["click"])) == {0, 1}
    assert data.p_click.mean() == pytest.approx(0.2, abs=1e-9)
    assert y["click"].mean() == pytest.approx(0.2, abs=0.01)
    # Clicks drawn from p_click: calibrated within noise in each decile of p_click.
    deciles = np.digitize(data.p_click, np.quantile(data.p_click, np.linspace(0.1, 0.9, 9)))
    for d in range(10):
        rows = deciles == d
        assert abs(y["click"][rows].mean() - data.p_click[rows].mean()) < 0.025
    # Log-normal watch time around E[watch | x]; the stated formula holds.
    assert (y["watch_time"] > 0).all()
    ratio = y["watch_time"] / data.expected_watch_time
    assert ratio.mean() == pytest.approx(1.0, abs=0.01)
    np.testing.assert_allclose(np.log(ratio).std(), 0.3, rtol=0.02)
    np.testing.assert_allclose(data.expected_watch_time,
                               np.exp(0.5 * data.scores[:, 1] + 0.3**2 / 2))
    # The true values' scores are what a model can reach; they depend on the drawn sines
    # (seeds 0-5: ROC AUC 0.67-0.91, R^2 0.57-0.84). Seed 0 measured 0.913 and 0.726.
    assert 0.9 < roc_auc_score(y["click"], data.p_click) < 0.925
    assert 0.7 < r2_score(y["watch_time"], data.expected_watch_time) < 0.75
    # The weight vectors have unit norm and the stated cosine.
    np.testing.assert_allclose(np.linalg.norm(data.weights, axis=1), 1.0)
    assert data.weights[0] @ data.weights[1] == pytest.approx(0.5)


def test_click_watch_time_shares_signal_by_task_correlation_and_scales_by_its_unit():
    from skmtl.datasets import make_click_watch_time

    same = make_click_watch_time(n_samples=5000, task_correlation=1.0, random_state=1)
    np.testing.assert_allclose(same.scores[:, 0], same.scores[:, 1], atol=1e-12)
    apart = make_click_watch_time(n_samples=5000, task_correlation=0.0, random_state=1)
    assert abs(np.corrcoef(apart.scores.T)[0, 1]) < 0.05
    half = make_click_watch_time(n_samples=5000, task_correlation=0.5, random_state=1)
    assert 0.2 < np.corrcoef(half.scores.T)[0, 1] < 0.8
    # The unit changes the watch time only, by exactly the factor.
    X, y = make_click_watch_time(n_samples=500, return_X_y=True, random_state=2)
    X60, y60 = make_click_watch_time(n_samples=500, watch_time_scale=60.0, return_X_y=True,
                                     random_state=2)
    np.testing.assert_array_equal(X60, X)
    np.testing.assert_array_equal(y60["click"], y["click"])
    np.testing.assert_allclose(y60["watch_time"], 60.0 * y["watch_time"], rtol=1e-12)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_features": 1}, "n_features must be >= 2"),
        ({"task_correlation": 1.2}, r"\[-1, 1\]"),
        ({"ctr": 1.0}, "ctr must lie strictly between 0 and 1"),
        ({"watch_time_scale": 0.0}, "watch_time_scale must be > 0"),
        ({"watch_time_scale": -2.0}, "watch_time_scale must be >= 0"),
        ({"watch_time_scale": float("inf")}, "watch_time_scale must be a finite real"),
        ({"noise": -0.5}, "noise must be >= 0"),
        ({"n_sin": -1}, "n_sin must be >= 0"),
    ],
)
def test_click_watch_time_invalid_parameters(kwargs, message):
    from skmtl.datasets import make_click_watch_time

    with pytest.raises(ValueError, match=message):
        make_click_watch_time(n_samples=20, random_state=0, **kwargs)


@pytest.mark.parametrize("missing_rate", [0.0, 0.05, 0.9, 0.95])
def test_wide_missing_rate_is_the_mean_share_near_the_bounds(missing_rate):
    """A clipped +-0.2 range raised the share near the bounds (0.05 missing for 0)."""
    from skmtl.datasets import make_wide_multitask_classification

    _, y = make_wide_multitask_classification(
        n_samples=400, n_features=32, n_tasks=60, missing_rate=missing_rate, random_state=0
    )
    share = np.isnan(y).mean()
    assert share == 0.0 if missing_rate == 0 else abs(share - missing_rate) < 0.02, share


def test_wide_generator_gives_finite_probabilities_for_two_rows():
    """A latent factor reading only constant columns had std 0: NaN probabilities, labels made up."""
    from skmtl.datasets import make_wide_multitask_classification

    data = make_wide_multitask_classification(
        n_samples=2, n_features=1000, n_tasks=3, return_X_y=False, random_state=54
    )
    assert np.all(np.isfinite(data.probabilities))


def test_task_correlation_given_as_a_string_is_refused():
    from skmtl.datasets import make_multitask_classification

    with pytest.raises(ValueError, match="float or a sequence of floats"):
        make_multitask_classification(10, 4, task_correlation="0.5")
