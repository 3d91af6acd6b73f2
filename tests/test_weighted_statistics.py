"""``sample_weight`` in what ``fit`` learns from the data before training.

A row of weight ``k`` trains as ``k`` copies of it would (the estimators'
docstrings), so the statistics learnt before training must weigh rows the same
way: the continuous columns' mean and scale, the piecewise-linear bins and a
regressor's target offset and scale. A row of weight 0 must leave no trace: a
zero-weight outlier used to set the target scale (R^2 of -26,000 where
dropping the row gave 0.29) or the standardisation of X.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from test_distributed_training import FakeGroup  # rank 0 of a simulated data-parallel fit

from skmtl import MultiTaskClassifier, MultiTaskRegressor
from skmtl._column_kinds import (
    ContinuousColumns,
    FitContext,
    _merged_quantiles,
    _quantile_sketch,
    _repeated_rows_quantiles,
    _weighted_quantiles,
)
from skmtl._regression import RegressionTargets


def _fit(model, *args, **kwargs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(*args, **kwargs)


def _regression_data(n=300, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 3))
    return X, X[:, 0] + 0.1 * rng.normal(size=n)


SETTINGS = {"architecture": "shared_bottom", "max_iter": 3, "random_state": 0, "early_stopping": False}


def test_a_zero_weight_target_outlier_does_not_set_the_target_scale():
    X, y = _regression_data()
    dropped = _fit(MultiTaskRegressor(**SETTINGS), X, y)
    X_out, y_out = np.vstack([X, np.zeros((1, 3))]), np.append(y, 1e6)
    weights = np.append(np.ones(len(y)), 0.0)
    kept = _fit(MultiTaskRegressor(**SETTINGS), X_out, y_out, sample_weight=weights)
    np.testing.assert_allclose(kept.target_offset_, dropped.target_offset_, rtol=1e-12)
    np.testing.assert_allclose(kept.target_scale_, dropped.target_scale_, rtol=1e-12)
    assert abs(kept.score(X, y) - dropped.score(X, y)) < 1e-3


def test_a_zero_weight_feature_outlier_does_not_set_the_standardisation():
    X, y = _regression_data()
    X_out, y_out = np.vstack([X, np.full((1, 3), 1e6)]), np.append(y, 0.0)
    weights = np.append(np.ones(len(y)), 0.0)
    for model in (MultiTaskRegressor(**SETTINGS), MultiTaskClassifier(**SETTINGS)):
        target, target_out = (y, y_out) if isinstance(model, MultiTaskRegressor) else (
            (y > 0).astype(int), (y_out > 0).astype(int))
        dropped = _fit(model, X, target).encoder_.continuous
        kept = _fit(model, X_out, target_out, sample_weight=weights).encoder_.continuous
        np.testing.assert_allclose(kept.mean_, dropped.mean_, rtol=1e-12)
        np.testing.assert_allclose(kept.scale_, dropped.scale_, rtol=1e-12)


def test_integer_weights_give_the_statistics_of_repeated_rows():
    X, y = _regression_data(60)
    counts = np.random.RandomState(1).randint(1, 4, size=len(y))
    repeated = _fit(MultiTaskRegressor(**SETTINGS), np.repeat(X, counts, axis=0), np.repeat(y, counts))
    weighted = _fit(MultiTaskRegressor(**SETTINGS), X, y, sample_weight=counts.astype(float))
    np.testing.assert_allclose(weighted.target_offset_, repeated.target_offset_, rtol=1e-12)
    np.testing.assert_allclose(weighted.target_scale_, repeated.target_scale_, rtol=1e-12)
    np.testing.assert_allclose(weighted.encoder_.continuous.mean_,
                               repeated.encoder_.continuous.mean_, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(weighted.encoder_.continuous.scale_,
                               repeated.encoder_.continuous.scale_, rtol=1e-12)


def test_without_weights_the_statistics_are_unchanged():
    """Weights of 1 given explicitly learn what no weights learn, bit for bit."""
    X, y = _regression_data(80)
    plain = _fit(MultiTaskRegressor(**SETTINGS), X, y)
    ones = _fit(MultiTaskRegressor(**SETTINGS), X, y, sample_weight=np.ones(len(y)))
    np.testing.assert_allclose(ones.encoder_.continuous.mean_, plain.encoder_.continuous.mean_,
                               rtol=1e-14, atol=1e-16)
    np.testing.assert_allclose(ones.target_scale_, plain.target_scale_, rtol=1e-14)


def test_poisson_scale_is_the_weighted_mean():
    targets = RegressionTargets(np.array([[1.0], [3.0], [np.nan], [100.0]]), ["t"], False)
    targets.fit_scaling(["poisson"], sample_weight=np.array([1.0, 3.0, 5.0, 0.0]))
    np.testing.assert_allclose(targets.scales, [2.5])  # (1 + 3 * 3) / 4; the NaN and 100 out


def test_sparse_input_weighs_its_moments():
    X, y = _regression_data(50)
    X[X < 0.3] = 0.0
    X_out = np.vstack([X, np.full((1, 3), 1e6)])
    weights = np.append(np.ones(len(y)), 0.0)
    dense = _fit(MultiTaskRegressor(**SETTINGS), X, y).encoder_.continuous
    sparse = _fit(MultiTaskRegressor(**SETTINGS), sp.csr_matrix(X_out), np.append(y, 0.0),
                  sample_weight=weights).encoder_.continuous
    np.testing.assert_allclose(sparse.mean_, dense.mean_, rtol=1e-12)
    np.testing.assert_allclose(sparse.scale_, dense.scale_, rtol=1e-12)


# ----------------------------------------------------------------- the bins
def test_piecewise_linear_bins_leave_out_zero_weight_rows():
    X, y = _regression_data(400)
    X_out = np.vstack([X, np.full((20, 3), 50.0)])
    weights = np.append(np.ones(len(y)), np.zeros(20))
    settings = {**SETTINGS, "numeric_embedding": "piecewise_linear"}
    dropped = _fit(MultiTaskRegressor(**settings), X, y).encoder_.continuous.bins_
    kept = _fit(MultiTaskRegressor(**settings), X_out, np.append(y, np.zeros(20)),
                sample_weight=weights).encoder_.continuous.bins_
    for got, expected in zip(kept, dropped):
        np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_weighted_quantiles_are_numpys_for_equal_weights_and_follow_the_weights():
    rng = np.random.default_rng(0)
    values = rng.lognormal(size=(101, 2))
    levels = np.linspace(0, 1, 9)
    np.testing.assert_allclose(_weighted_quantiles(values, np.full(101, 2.5), levels),
                               np.quantile(values, levels, axis=0), rtol=1e-12)
    # a heavy row pulls the median to itself
    column = np.array([[0.0], [1.0], [2.0], [3.0]])
    median = _weighted_quantiles(column, np.array([1.0, 1.0, 10.0, 1.0]), np.array([0.5]))
    assert median[0, 0] == pytest.approx(2.0, abs=0.1)


def test_data_parallel_weighted_statistics_are_those_of_the_pooled_rows():
    rng = np.random.default_rng(1)
    shards = [rng.lognormal(size=(n, 2)) for n in (300, 200)]
    weights = [rng.integers(0, 4, size=len(s)).astype(float) for s in shards]

    def fit_kind(shard, w, group=None):
        kind = ContinuousColumns(np.arange(shard.shape[1]), "piecewise_linear")
        return kind.fit(shard, FitContext(group=group, sample_weight=w))

    recorder = FakeGroup()
    fit_kind(shards[1], weights[1], recorder)
    combined = fit_kind(shards[0], weights[0],
                        FakeGroup([list(values) for values in zip(recorder.sent)]))
    whole = fit_kind(np.concatenate(shards), np.concatenate(weights))
    np.testing.assert_allclose(combined.mean_, whole.mean_, rtol=1e-12)
    np.testing.assert_allclose(combined.scale_, whole.scale_, rtol=1e-12)
    for got, expected in zip(combined.bins_, whole.bins_):
        np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_integer_weights_give_the_bins_of_repeated_rows():
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.uniform(size=(30, 1)), [[5.0]]])
    counts = np.append(rng.integers(1, 4, size=30), 60)
    levels = np.linspace(0, 1, 49)
    repeated = np.quantile(np.repeat(values, counts, axis=0), levels, axis=0)
    np.testing.assert_allclose(_repeated_rows_quantiles(values, counts.astype(float), levels),
                               repeated, rtol=1e-12, atol=1e-15)
    # only the ratios matter
    np.testing.assert_allclose(_repeated_rows_quantiles(values, counts * 0.01, levels),
                               repeated, rtol=1e-12, atol=1e-15)
    X = values
    y = (X[:, 0] > 0.5).astype(float)
    settings = {**SETTINGS, "numeric_embedding": "piecewise_linear"}
    by_weight = _fit(MultiTaskRegressor(**settings), X, y, sample_weight=counts.astype(float))
    by_rows = _fit(MultiTaskRegressor(**settings), np.repeat(X, counts, axis=0),
                   np.repeat(y, counts))
    for got, expected in zip(by_weight.encoder_.continuous.bins_, by_rows.encoder_.continuous.bins_):
        np.testing.assert_allclose(got, expected, rtol=1e-12)


def test_a_weighted_sketch_of_a_large_shard_stays_near_the_weighted_quantiles():
    rng = np.random.default_rng(2)
    values = rng.lognormal(size=(20_000, 1))
    weights = rng.integers(1, 5, size=20_000).astype(float)
    levels = np.linspace(0, 1, 11)
    sketch = _quantile_sketch(values, weights)
    assert sketch[0] == weights.sum() and sketch[2] is None
    merged = _merged_quantiles([sketch], levels, 1)
    np.testing.assert_allclose(merged, _repeated_rows_quantiles(values, weights, levels),
                               rtol=2e-3)


# ------------------------------------------------------- continued regression
def test_a_task_first_seen_with_one_value_is_rescaled_once_its_targets_spread():
    """partial_fit: a first chunk with one known target kept scale 1 for good (raw 1e5 units)."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(300, 3))
    y = np.column_stack([X[:, 1], 1e5 * X[:, 0] + 1e6])
    first = y[:100].copy()
    first[1:, 1] = np.nan  # the second task's first chunk: a single known target
    model = MultiTaskRegressor("shared_bottom", random_state=0)
    model.partial_fit(X[:100], first)
    assert model.target_scale_[1] == 1.0 and not model._scaled_tasks_[1]
    offset = model.target_offset_[1]
    model.partial_fit(X[100:200], y[100:200])
    assert model._scaled_tasks_.all()
    assert model.target_scale_[1] == pytest.approx(np.std(y[100:200, 1]), rel=1e-12)
    assert model.target_offset_[1] != offset
    scale = model.target_scale_.copy()
    model.partial_fit(X[200:], y[200:])  # once scaled, the scale stays
    np.testing.assert_array_equal(model.target_scale_, scale)


def test_a_task_whose_targets_never_spread_keeps_its_offset():
    X, _ = _regression_data(40)
    model = MultiTaskRegressor("shared_bottom", random_state=0)
    model.partial_fit(X[:20], np.full(20, 7.0))
    model.partial_fit(X[20:], np.full(20, 7.0))
    assert model.target_offset_[0] == 7.0 and model.target_scale_[0] == 1.0
    np.testing.assert_allclose(model.predict(X), 7.0, atol=0.5)


# -------------------------------------------------------------- vocabularies
def test_a_category_seen_only_in_zero_weight_rows_maps_to_the_unknown_row():
    import pandas as pd

    rng = np.random.RandomState(0)
    n = 200
    X = pd.DataFrame({"x": rng.normal(size=n), "c": rng.choice(["a", "b"], n)})
    X.loc[:9, "c"] = "ghost"
    y = (X["x"] > 0).astype(int).to_numpy()
    weights = np.where(np.arange(n) < 10, 0.0, 1.0)
    model = _fit(MultiTaskClassifier(**{**SETTINGS, "min_frequency": 1}), X, y,
                 sample_weight=weights)
    assert "ghost" not in list(model.categories_[1])
    unknown = model.encoder_.transform(pd.DataFrame({"x": [0.0], "c": ["never seen"]}))[0]
    ghost = model.encoder_.transform(pd.DataFrame({"x": [0.0], "c": ["ghost"]}))[0]
    np.testing.assert_array_equal(ghost, unknown)
    # with positive weights every row counts once, whatever its weight
    heavy = _fit(MultiTaskClassifier(**{**SETTINGS, "min_frequency": 1}), X, y,
                 sample_weight=np.where(np.arange(n) < 10, 1e-3, 1.0))
    assert "ghost" in list(heavy.categories_[1])


def test_weights_whose_ratio_overflows_still_give_finite_bins():
    values = np.array([[0.0], [1.0], [2.0]])
    edges = _repeated_rows_quantiles(values, np.array([1e-310, 1.0, 1.0]), np.linspace(0, 1, 5))
    assert np.all(np.isfinite(edges))  # NaN where the weights were divided by 1e-310
    assert np.all(np.diff(edges[:, 0]) >= 0) and edges[-1, 0] == 2.0


def test_equal_subnormal_weights_give_the_unweighted_bins():
    values = np.arange(6.0)[:, None]
    levels = np.linspace(0, 1, 5)
    np.testing.assert_allclose(_repeated_rows_quantiles(values, np.full(6, 1e-320), levels),
                               np.quantile(values, levels, axis=0), rtol=1e-12)
