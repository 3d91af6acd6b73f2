"""``numeric_embedding``: how continuous columns enter the network (issue 15, item 1).

``"linear"`` (the default, unchanged: tests/test_golden.py), ``"periodic"``
(PLR) and ``"piecewise_linear"`` (PLE over training-row quantile bins), after
Gorishniy, Rubachev and Babenko, "On Embeddings for Numerical Features in
Tabular Deep Learning" (NeurIPS 2022). Each encoding is checked against a hand
computation; the bins against the training rows' quantiles; and the fitted
models through pickling, model files, ONNX, ``partial_fit``, data-parallel
statistics and scikit-learn's checks.
"""

from __future__ import annotations

import math
import pickle
import warnings

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score
from sklearn.utils.estimator_checks import parametrize_with_checks
from test_distributed_training import FakeGroup  # rank 0 of a simulated data-parallel fit

from skmtl import MultiTaskClassifier, MultiTaskRegressor, load_model, save_model
from skmtl._base import FitSeeds
from skmtl._column_kinds import (
    AUTO_PERIODIC_ROWS_PER_COLUMN,
    AUTO_PERIODIC_SKEWNESS,
    PIECEWISE_LINEAR_BINS,
    QUANTILE_SKETCH_SIZE,
    ContinuousColumns,
    FitContext,
    _skewness,
    check_continuous_entry,
)
from skmtl._distributed import SingleProcess
from skmtl.nn import (
    ContinuousEmbedding,
    LinearPeriodicEmbedding,
    PeriodicEmbedding,
    PiecewiseLinearEmbedding,
)

EMBEDDINGS = ("periodic", "piecewise_linear")


def signal_data(seed, n):
    """Task 0 follows sin(3 x_0) (non-monotonic), task 1 |x_1| > 1; x_2 is noise."""
    rng = np.random.RandomState(seed)
    X = rng.uniform(-2.5, 2.5, size=(n, 3))
    y = np.column_stack([
        (np.sin(3 * X[:, 0]) + 0.5 * rng.normal(size=n) > 0).astype(int),
        (np.abs(X[:, 1]) + 0.3 * rng.normal(size=n) > 1).astype(int),
    ])
    return X, y


@pytest.fixture(scope="module")
def data():
    X, y = signal_data(0, 600)
    X[:, 2] = 2.0  # a constant column
    return X, y


def fit(X, y, embedding, architecture="mmoe", **params):
    params = {"max_iter": 3, "random_state": 0, **params}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return MultiTaskClassifier(architecture, numeric_embedding=embedding, **params).fit(X, y)


# ------------------------------------------------------------- the encodings
def test_periodic_embedding_by_hand():
    module = PeriodicEmbedding(2, embedding_dim=3, n_frequencies=2, sigma=0.5)
    module.reset_parameters(torch.Generator().manual_seed(0))
    c = module.frequencies.detach().numpy()[0]  # (F, k)
    W, b = module.weight.detach().numpy()[0], module.bias.detach().numpy()[0]  # (F, 2k, D), (F, D)
    x = np.array([[-1.5, 0.0], [0.25, 2.0], [3.0, -0.5]])
    expected = np.empty((3, 2, 3))
    for i in range(3):
        for j in range(2):
            angles = 2 * math.pi * c[j] * x[i, j]
            features = np.concatenate([np.cos(angles), np.sin(angles)])
            expected[i, j] = np.maximum(features @ W[j] + b[j], 0.0)
    got = module(torch.tensor(x, dtype=torch.float32)).detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_periodic_frequencies_are_drawn_from_the_generator_as_normal_with_sigma():
    before = torch.random.get_rng_state()
    a = PeriodicEmbedding(50, 4, n_frequencies=64, sigma=0.5)
    b = PeriodicEmbedding(50, 4, n_frequencies=64, sigma=0.5)
    a.reset_parameters(torch.Generator().manual_seed(3))
    b.reset_parameters(torch.Generator().manual_seed(3))
    assert torch.equal(a.frequencies, b.frequencies) and torch.equal(a.weight, b.weight)
    assert torch.equal(torch.random.get_rng_state(), before)  # torch's global RNG untouched
    frequencies = a.frequencies.detach().numpy().ravel()
    assert abs(frequencies.std() - 0.5) < 0.02 and abs(frequencies.mean()) < 0.02
    # not a linear layer's uniform(+-1/sqrt(fan_in)) initialisation
    assert np.abs(frequencies).max() > 1.0


def test_copies_are_independent_maps_of_the_same_columns():
    """single_task's C copies: copy c is a module of its own, side by side in the output."""
    x = torch.tensor([[-1.0, 0.5], [2.0, 0.0]])
    periodic = PeriodicEmbedding(2, 3, 4, 0.5, n_copies=2)
    periodic.reset_parameters(torch.Generator().manual_seed(0))
    for copy in range(2):
        single = PeriodicEmbedding(2, 3, 4, 0.5)
        with torch.no_grad():
            for name in ("frequencies", "weight", "bias"):
                getattr(single, name).copy_(getattr(periodic, name)[copy : copy + 1])
        torch.testing.assert_close(periodic(x)[..., copy * 3 : (copy + 1) * 3], single(x))
    piecewise = PiecewiseLinearEmbedding([[0.0, 1.0], [-1.0, 0.0, 1.0]], 3, n_copies=2)
    piecewise.reset_parameters(torch.Generator().manual_seed(0))
    single = PiecewiseLinearEmbedding([[0.0, 1.0], [-1.0, 0.0, 1.0]], 3)
    with torch.no_grad():
        single.weight.copy_(piecewise.weight[..., 3:])
        single.bias.copy_(piecewise.bias[..., 3:])
    torch.testing.assert_close(piecewise(x)[..., 3:], single(x))


def test_piecewise_linear_encoding_by_hand():
    module = PiecewiseLinearEmbedding([[0.0, 1.0, 3.0], [2.0], [-1.0, 0.0, 1.0, 2.0]], 2)
    x = torch.tensor([-2.0, -1.0, 0.5, 2.0, 4.0]).unsqueeze(1).expand(-1, 3)
    encoded = module.encode(x).numpy()
    # Column 0, bins [0, 1) and [1, 3]: e_1 = x (not clipped below), e_2 = (x - 1) / 2
    # (not clipped above); the third component pads to the widest column.
    np.testing.assert_allclose(
        encoded[:, 0], [[-2, 0, 0], [-1, 0, 0], [0.5, 0, 0], [1, 0.5, 0], [1, 1.5, 0]]
    )
    # Column 1, constant in training: one edge, one component x - 2.
    np.testing.assert_allclose(encoded[:, 1], [[-4, 0, 0], [-3, 0, 0], [-1.5, 0, 0], [0, 0, 0], [2, 0, 0]])
    # Column 2, three unit bins from -1.
    np.testing.assert_allclose(
        encoded[:, 2], [[-1, 0, 0], [0, 0, 0], [1, 0.5, 0], [1, 1, 1], [1, 1, 3]]
    )
    assert module.n_bins == [2, 1, 3]
    module.reset_parameters(torch.Generator().manual_seed(0))  # not left as torch.empty's memory
    W, b = module.weight.detach(), module.bias.detach()
    torch.testing.assert_close(module(x), torch.einsum("bft,ftd->bfd", torch.tensor(encoded), W) + b)


def test_piecewise_linear_edges_are_checked_and_ties_dropped():
    with pytest.raises(ValueError, match="sorted"):
        PiecewiseLinearEmbedding([[1.0, 0.0]], 2)
    with pytest.raises(ValueError, match="finite"):
        PiecewiseLinearEmbedding([[0.0, math.inf]], 2)
    module = PiecewiseLinearEmbedding([[0.0, 1.0, 1.0 + 1e-12, 2.0]], 2)  # equal in float32
    assert module.n_bins == [2] and torch.isfinite(module.encode(torch.tensor([[1.0]]))).all()


# ------------------------------------------------------------------ the bins
def _levels():
    return np.linspace(0, 1, PIECEWISE_LINEAR_BINS + 1)


def test_bins_are_the_training_rows_quantiles_never_the_validation_rows(data):
    X, y = data
    X = X.copy()
    params = dict(early_stopping=True, validation_fraction=0.2, random_state=4)
    model = fit(X, y, "piecewise_linear", **params)
    # The rows fit set aside for validation (its split, redone from the same seed).
    seeds = FitSeeds.draw(4, SingleProcess())
    validation = seeds.split_rng().permutation(len(X))[: round(0.2 * len(X))]
    training = np.setdiff1d(np.arange(len(X)), validation)
    expected = np.quantile(X[training], _levels(), axis=0)
    for k, edges in enumerate(model.encoder_.continuous.bins_):
        np.testing.assert_array_equal(edges, np.unique(expected[:, k]))
    assert not np.array_equal(model.encoder_.continuous.bins_[0], np.unique(np.quantile(X[:, 0], _levels())))
    # Validation rows do not move the bins, however extreme.
    X[validation, :2] *= 100
    moved = fit(X, y, "piecewise_linear", **params)
    for got, edges in zip(moved.encoder_.continuous.bins_, model.encoder_.continuous.bins_):
        np.testing.assert_array_equal(got, edges)
    # The description records them in standardised units.
    kind, entry = model.encoder_.continuous, model.network_spec_["embeddings"][1]
    for edges, recorded, mean, scale in zip(kind.bins_, entry["bins"], kind.mean_, kind.scale_):
        np.testing.assert_allclose(recorded, (edges - mean) / scale, rtol=0, atol=1e-12)


def test_without_early_stopping_the_bins_are_all_rows_quantiles(data):
    X, y = data
    model = fit(X, y, "piecewise_linear", early_stopping=False)
    for k, edges in enumerate(model.encoder_.continuous.bins_):
        np.testing.assert_array_equal(edges, np.unique(np.quantile(X[:, k], _levels())))


@pytest.mark.parametrize("embedding", EMBEDDINGS)
def test_constant_and_two_valued_columns(embedding):
    X, y = signal_data(1, 300)
    X[:, 1] = np.where(X[:, 1] > 0, 1.0, 0.0)  # two values
    X[:, 2] = -7.0  # constant
    model = fit(X, y, embedding)
    proba = model.predict_proba(X)
    assert all(np.isfinite(p).all() for p in proba)
    assert all(torch.isfinite(p).all() for p in model.module_.parameters())
    if embedding == "piecewise_linear":
        bins = model.encoder_.continuous.bins_
        np.testing.assert_array_equal(bins[1], [0.0, 1.0])
        np.testing.assert_array_equal(bins[2], [-7.0])
        assert model.module_.embedding.kinds["continuous"].n_bins[1:] == [1, 1]


@pytest.mark.parametrize("embedding", EMBEDDINGS)
def test_no_continuous_column(embedding, tmp_path):
    import pandas as pd

    rng = np.random.RandomState(0)
    X = pd.DataFrame({"a": rng.choice(list("xyz"), 200), "b": rng.choice(list("pq"), 200)})
    y = np.column_stack([(X.a == "x").astype(int), (X.b == "p").astype(int)])
    model = fit(X, y, embedding)
    assert model.network_spec_["embeddings"][1]["n_columns"] == 0
    np.testing.assert_array_equal(
        _saved_and_loaded(model, tmp_path).predict_proba(X)[0], model.predict_proba(X)[0]
    )


# ------------------------------------------------- the estimator and its files
def test_linear_describes_the_network_as_before(data):
    X, y = data
    model = fit(X, y, "linear")
    assert model.network_spec_["embeddings"][1] == {"kind": "continuous", "n_columns": 3}
    assert not hasattr(model.encoder_.continuous, "bins_")


@pytest.mark.parametrize("embedding", EMBEDDINGS)
def test_seeded_and_leaves_torch_global_rng_alone(data, embedding):
    X, y = data
    before = torch.random.get_rng_state()
    a, b = fit(X, y, embedding), fit(X, y, embedding)
    assert torch.equal(torch.random.get_rng_state(), before)
    for p, q in zip(a.module_.parameters(), b.module_.parameters()):
        assert torch.equal(p, q)


@pytest.mark.parametrize("architecture", ["mmoe", "single_task"])
@pytest.mark.parametrize("embedding", EMBEDDINGS)
def test_pickle_and_model_files_round_trip_exactly(data, embedding, architecture, tmp_path):
    X, y = data
    model = fit(X, y, embedding, architecture)
    expected = model.predict_proba(X)
    for restored in (pickle.loads(pickle.dumps(model)), _saved_and_loaded(model, tmp_path)):
        for got, want in zip(restored.predict_proba(X), expected):
            np.testing.assert_array_equal(got, want)
        assert restored.network_spec_ == model.network_spec_
        assert restored.encoder_.continuous.embedding == embedding
    if embedding == "piecewise_linear":
        loaded = _saved_and_loaded(model, tmp_path)
        for got, want in zip(loaded.encoder_.continuous.bins_, model.encoder_.continuous.bins_):
            np.testing.assert_array_equal(got, want)


def _saved_and_loaded(model, tmp_path):
    path = tmp_path / "model.skmtl"
    save_model(model, path)
    return load_model(path)


def test_regressor_takes_the_embeddings_too(data, tmp_path):
    X, _ = data
    target = np.column_stack([np.sin(3 * X[:, 0]), np.abs(X[:, 1])])
    model = MultiTaskRegressor(numeric_embedding="piecewise_linear", max_iter=3, random_state=0)
    model.fit(X, target)
    np.testing.assert_array_equal(_saved_and_loaded(model, tmp_path).predict(X), model.predict(X))


def test_a_file_with_a_bad_continuous_entry_is_refused():
    check_continuous_entry({"kind": "continuous", "n_columns": 2})
    bad = [
        ({"n_columns": 1, "embedding": "spline"}, "unknown numeric embedding"),
        ({"n_columns": 2, "embedding": "piecewise_linear", "bins": [[0.0, 1.0]]}, "2 columns"),
        ({"n_columns": 1, "embedding": "piecewise_linear"}, "takes"),
        ({"n_columns": 1, "embedding": "periodic", "n_frequencies": 0, "sigma": 1.0}, "n_frequencies"),
        ({"n_columns": 1, "embedding": "periodic", "n_frequencies": 2, "sigma": -1.0}, "sigma"),
    ]
    for entry, message in bad:
        with pytest.raises(ValueError, match=message):
            check_continuous_entry({"kind": "continuous", **entry})


@pytest.mark.parametrize("architecture", ["mmoe", "single_task"])
@pytest.mark.parametrize("embedding", EMBEDDINGS)
def test_onnx_export_matches_predict_proba(data, embedding, architecture):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from skmtl.export import onnx_inputs, to_onnx

    X, y = data
    model = fit(X, y, embedding, architecture)
    session = ort.InferenceSession(to_onnx(model).SerializeToString())
    held_out = signal_data(7, 50)[0] * 1.5  # beyond the training range too
    outputs = session.run(None, onnx_inputs(model, held_out))
    for got, want in zip(outputs, model.predict_proba(held_out)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ partial_fit
def test_partial_fit_takes_the_bins_from_its_first_chunk():
    X, y = signal_data(2, 900)
    model = MultiTaskClassifier(numeric_embedding="piecewise_linear", random_state=0)
    model.partial_fit(X[:300], y[:300])
    first = [edges.copy() for edges in model.encoder_.continuous.bins_]
    for k, edges in enumerate(first):
        np.testing.assert_array_equal(edges, np.unique(np.quantile(X[:300, k], _levels())))
    model.partial_fit(X[300:] * 3, y[300:])  # a wider chunk does not move them
    for got, edges in zip(model.encoder_.continuous.bins_, first):
        np.testing.assert_array_equal(got, edges)
    model.set_params(numeric_embedding="periodic")
    with pytest.raises(ValueError, match="describe another one"):
        model.partial_fit(X[:10], y[:10])


# ------------------------------------------------------------ data-parallel bins
def _fit_kind(shard, embedding, group=None):
    kind = ContinuousColumns(np.arange(shard.shape[1]), embedding)
    return kind.fit(shard, FitContext(group=group))


def _fitted_over_shards(shards, embedding):
    """The kind fitted by rank 0 of a data-parallel fit over ``shards``, and over all rows."""
    sent = []
    for shard in shards[1:]:
        recorder = FakeGroup()
        _fit_kind(shard, embedding, recorder)
        sent.append(recorder.sent)
    # One collective for the moments, one for the quantile sketches or the skewness.
    combined = _fit_kind(shards[0], embedding, FakeGroup([list(values) for values in zip(*sent)]))
    return combined, _fit_kind(np.concatenate(shards), embedding)


def _bins_over_shards(shards):
    combined, whole = _fitted_over_shards(shards, "piecewise_linear")
    return combined.bins_, whole.bins_


def test_data_parallel_bins_are_the_quantiles_of_all_processes_rows():
    rng = np.random.default_rng(0)
    small = [rng.lognormal(size=(n, 2)) for n in (300, 500, 200)]
    combined, whole = _bins_over_shards(small)  # shards shared whole: exact
    for got, expected in zip(combined, whole):
        np.testing.assert_allclose(got, expected, rtol=1e-12)
    large = [rng.lognormal(size=(n, 2)) for n in (20_000, 7_000, 3_000)]
    assert max(len(s) for s in large) > QUANTILE_SKETCH_SIZE
    combined, whole = _bins_over_shards(large)  # sketched: approximate
    pooled = np.concatenate(large)
    for k, (got, expected) in enumerate(zip(combined, whole)):
        assert got[0] == expected[0] and got[-1] == expected[-1]  # min and max are exact
        # each edge within 0.1 percentile point of its level
        ranks = np.searchsorted(np.sort(pooled[:, k]), got) / len(pooled)
        np.testing.assert_allclose(ranks, _levels()[: len(got)], atol=1e-3)


# ---------------------------------------------------------------- known signal
def test_non_monotonic_signal_is_learnt_better_than_by_the_linear_map():
    """At one small budget, sin(3 x) is learnt by periodic and piecewise, not by linear.

    Measured (mmoe, 15 epochs, 2,000 training rows, seeds 0 and 1), test ROC
    AUC of the sin task: linear 0.533 / 0.506, periodic 0.892 / 0.898,
    piecewise_linear 0.891 / 0.898; the |x| > 1 task: 0.969 / 0.968, 0.954 /
    0.953, 0.966 / 0.963.
    """
    X, y = signal_data(0, 3000)
    train, test = slice(0, 2000), slice(2000, None)
    for seed in (0, 1):
        auc = {}
        for embedding in ("linear", *EMBEDDINGS):
            model = fit(X[train], y[train], embedding, max_iter=15, early_stopping=False,
                        random_state=seed)
            proba = model.predict_proba(X[test])
            auc[embedding] = [roc_auc_score(y[test, t], proba[t][:, 1]) for t in range(2)]
        for embedding in EMBEDDINGS:
            assert auc[embedding][0] > auc["linear"][0] + 0.3, auc
            assert auc[embedding][1] > auc["linear"][1] - 0.03, auc


# ------------------------------------------------------------ sklearn's checks
def _expected_failed_checks(estimator):
    reason = (
        "Mini-batch training in float32: weighting a row by 2 is not bit-for-bit the same "
        "optimisation path as repeating it (batches differ), so the fitted models differ."
    )
    # The same check on a sparse X, where the estimator takes one (input_tags.sparse).
    return {"check_sample_weight_equivalence_on_dense_data": reason,
            "check_sample_weight_equivalence_on_sparse_data": reason}


# The default ("linear") runs them in tests/test_sklearn_checks.py; piecewise_linear,
# whose bins are fitted state, in the fast tier; periodic in the slow one.
@parametrize_with_checks(
    [MultiTaskClassifier(numeric_embedding="piecewise_linear", random_state=0)],
    expected_failed_checks=_expected_failed_checks,
)
def test_sklearn_checks_pass_with_piecewise_linear(estimator, check):
    check(estimator)


@pytest.mark.slow
@parametrize_with_checks(
    [MultiTaskClassifier(numeric_embedding="periodic", random_state=0)],
    expected_failed_checks=_expected_failed_checks,
)
def test_sklearn_checks_pass_with_periodic(estimator, check):
    check(estimator)


# ------------------------------------------------------ numeric_embedding="auto"
def auto_data(seed=0, n=600):
    """Columns: ages (whole numbers, a peaked effect), a measurement, a 0/1 flag, an
    amount that is 0 on most rows (heavy-tailed), a log-normal price (skewed, not
    heavy-tailed enough), and a constant."""
    rng = np.random.RandomState(seed)
    X = np.column_stack([
        rng.randint(18, 90, n), rng.normal(size=n), rng.randint(0, 2, n),
        np.where(rng.rand(n) < 0.9, 0, rng.lognormal(8, 1, n)).round(),
        rng.lognormal(3, 0.5, n).round(2), np.full(n, 4.0),
    ]).astype(np.float64)
    y = np.column_stack([
        (np.sin(X[:, 0] / 8) + 0.3 * rng.normal(size=n) > 0).astype(int),
        (X[:, 1] + (X[:, 3] > 0) > 0.5).astype(int),
    ])
    return X, y


def _third_moments(values, weights=None):
    """(weight, means, sums of squared and of cubed deviations) of one shard, by hand."""
    weights = np.ones(len(values)) if weights is None else weights
    n = weights.sum()
    mean = weights @ values / n if n else np.zeros(values.shape[1])
    return n, mean, weights @ (values - mean) ** 2, weights @ (values - mean) ** 3


def _skewness_of(values):
    centred = values - values.mean(axis=0)
    m2, m3 = (centred**2).mean(axis=0), (centred**3).mean(axis=0)
    return np.where(m2 > 0, m3 / np.where(m2 > 0, m2, 1.0) ** 1.5, 0.0)


def test_auto_adds_the_periodic_term_to_heavy_tailed_columns():
    X, y = auto_data()
    skewness = _skewness_of(X)
    assert abs(skewness[3]) > AUTO_PERIODIC_SKEWNESS > abs(skewness[4]) > 1  # the price is skewed too
    model = fit(X, y, "auto")
    np.testing.assert_array_equal(model.encoder_.continuous.periodic_columns_, [3])
    assert model.network_spec_["embeddings"][1] == {
        "kind": "continuous", "n_columns": 6, "embedding": "auto", "periodic_columns": [3],
        "n_frequencies": 16, "sigma": 0.5, "periodic_scale": True,
    }
    module = model.module_.embedding.kinds["continuous"]
    assert isinstance(module, LinearPeriodicEmbedding)
    assert module.periodic.n_tokens == 1 and module.linear.n_tokens == 6
    X_flag = X.copy()
    X_flag[:, 2] = np.arange(len(X)) % 50 == 0  # a rare 0/1 flag: skewed, but two values
    assert abs(_skewness_of(X_flag)[2]) > AUTO_PERIODIC_SKEWNESS
    np.testing.assert_array_equal(fit(X_flag, y, "auto").encoder_.continuous.periodic_columns_, [3])
    X_tail = X.copy()
    X_tail[:3, 1] = [40.0, 55.0, 70.0]  # three extreme measurements: a heavy tail, left too
    X_tail[:, 0] *= -1
    assert abs(_skewness_of(X_tail)[1]) > AUTO_PERIODIC_SKEWNESS
    np.testing.assert_array_equal(fit(X_tail, y, "auto").encoder_.continuous.periodic_columns_,
                                  [1, 3])


def test_skewness_of_shards_is_the_skewness_of_all_rows():
    rng = np.random.default_rng(0)
    shards = [rng.lognormal(size=(n, 3)) * [1, 10, 1e4] + [0, -5, 3] for n in (1, 40, 900, 0, 7)]
    shards[2][:, 2] = 2.5  # one process holds a constant
    parts = [_third_moments(shard) for shard in shards]
    pooled = np.concatenate(shards)
    np.testing.assert_allclose(_skewness(parts), _skewness_of(pooled), rtol=1e-9)
    weights = rng.integers(1, 4, size=len(pooled)).astype(float)
    np.testing.assert_allclose(_skewness([_third_moments(pooled, weights)]),
                               _skewness_of(np.repeat(pooled, weights.astype(int), axis=0)),
                               rtol=1e-9)
    assert _skewness([_third_moments(np.full((5, 1), 3.0))])[0] == 0.0


def test_linear_periodic_embedding_by_hand():
    module = LinearPeriodicEmbedding(3, embedding_dim=2, periodic_columns=[2, 0], n_frequencies=2,
                                     scaled=False)
    module.reset_parameters(torch.Generator().manual_seed(0))
    linear = ContinuousEmbedding(3, 2)
    periodic = PeriodicEmbedding(2, 2, n_frequencies=2)
    linear.load_state_dict(module.linear.state_dict())
    periodic.load_state_dict(module.periodic.state_dict())
    x = torch.tensor([[-1.5, 0.3, 2.0], [0.25, -2.0, 0.0]])
    expected = linear(x).clone()
    extra = periodic(x[:, [2, 0]])  # periodic token k belongs to column [2, 0][k]
    expected[:, 2] += extra[:, 0]
    expected[:, 0] += extra[:, 1]
    torch.testing.assert_close(module(x), expected)
    scaled = LinearPeriodicEmbedding(3, embedding_dim=2, periodic_columns=[2, 0], n_frequencies=2)
    scaled.reset_parameters(torch.Generator().manual_seed(0))
    assert scaled.periodic_scale.shape == (2, 2) and not scaled.periodic_scale.any()
    for name, tensor in module.state_dict().items():  # the same draws, in the same order
        assert torch.equal(scaled.state_dict()[name], tensor), name
    torch.testing.assert_close(scaled(x), linear(x), rtol=0, atol=0)  # starts linear
    scale = torch.tensor([[0.5, -2.0], [3.0, 0.25]])  # one value per periodic column and value
    with torch.no_grad():
        scaled.periodic_scale.copy_(scale)
    expected = linear(x).clone()
    expected[:, 2] += extra[:, 0] * scale[0]
    expected[:, 0] += extra[:, 1] * scale[1]
    torch.testing.assert_close(scaled(x), expected)
    with pytest.raises(ValueError, match="distinct positions"):
        LinearPeriodicEmbedding(3, 2, [0, 0])
    with pytest.raises(ValueError, match="distinct positions"):
        LinearPeriodicEmbedding(3, 2, [3])


def test_auto_is_the_default_and_without_such_a_column_the_linear_model_bit_for_bit(data, tmp_path):
    assert MultiTaskClassifier().numeric_embedding == MultiTaskRegressor().numeric_embedding == "auto"
    X, y = data  # uniform values and a constant column
    auto, linear = fit(X, y, "auto"), fit(X, y, "linear")
    assert auto.encoder_.continuous.periodic_columns_.size == 0
    assert auto.network_spec_ == linear.network_spec_  # described as the linear network
    assert type(auto.module_.embedding.kinds["continuous"]) is ContinuousEmbedding
    loaded = _saved_and_loaded(auto, tmp_path)
    assert loaded.encoder_.continuous.embedding == "auto" and loaded.numeric_embedding == "auto"
    for got, want in zip(auto.predict_proba(X), linear.predict_proba(X)):
        np.testing.assert_array_equal(got, want)
    epochs = auto.n_iter_
    auto.set_params(numeric_embedding="linear", warm_start=True, max_iter=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        auto.fit(X, y)  # the same (linear) network: the fit continues
    assert auto.n_iter_ == epochs + 1
    heavy_X, heavy_y = auto_data(5)
    heavy = fit(heavy_X, heavy_y, "auto").set_params(numeric_embedding="linear", warm_start=True)
    with pytest.raises(ValueError, match="describe another"):
        heavy.fit(heavy_X, heavy_y)  # its heavy-tailed column has a periodic term


def test_sparse_skewness_counts_the_implicit_zeros():
    from scipy import sparse

    from skmtl._sparse import sparse_third_moments

    rng = np.random.default_rng(3)
    dense = np.where(rng.random((400, 4)) < 0.8, 0.0, rng.lognormal(2, 1, (400, 4)))
    dense[:, 3] = np.where(rng.random(400) < 0.5, 0.0, 1.0 + rng.random(400))  # not heavy-tailed
    X = sparse.csr_matrix(dense)
    X.data[0] = 0.0  # an explicit zero, stored
    dense[0, X.indices[0]] = 0.0
    assert X.nnz > np.count_nonzero(dense)
    weights = rng.integers(1, 4, size=400).astype(float)
    kind = ContinuousColumns(np.arange(4), "auto")
    for w in (None, weights):
        expected = _skewness([_third_moments(dense, w)])
        np.testing.assert_allclose(_skewness([sparse_third_moments(X, w)]), expected, rtol=1e-9)
        moments, _, _ = kind._dense_summary(dense, FitContext(sample_weight=w))
        np.testing.assert_allclose(_skewness([moments]), expected, rtol=1e-9)
    rows = np.arange(0, 400, 3)  # the training rows only
    moments, _, _ = kind._dense_summary(dense, FitContext(rows=rows, sample_weight=weights))
    np.testing.assert_allclose(_skewness([moments]),
                               _skewness([_third_moments(dense[rows], weights[rows])]), rtol=1e-9)
    kinds = [ContinuousColumns(np.arange(4), "auto").fit(data, FitContext()) for data in (X, dense)]
    np.testing.assert_array_equal(kinds[0].periodic_columns_, kinds[1].periodic_columns_)
    assert 3 not in kinds[0].periodic_columns_ and kinds[0].periodic_columns_.size


def test_auto_looks_at_training_rows_of_positive_weight_only():
    X, y = auto_data(1)
    X[:5, 1] = 1e3  # outliers that make the measurement heavy-tailed, on rows that do not count
    weights = np.ones(len(X))
    weights[:5] = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = MultiTaskClassifier(numeric_embedding="auto", max_iter=2, random_state=0)
        model.fit(X, y, sample_weight=weights)
    np.testing.assert_array_equal(model.encoder_.continuous.periodic_columns_, [3])
    context = FitContext(rows=np.arange(5, len(X)))  # rows 0..4: the validation rows
    kind = ContinuousColumns(np.arange(X.shape[1]), "auto").fit(X, context)
    np.testing.assert_array_equal(kind.periodic_columns_, [3])
    kind = ContinuousColumns(np.arange(X.shape[1]), "auto").fit(X, FitContext())
    np.testing.assert_array_equal(kind.periodic_columns_, [1, 3])


def test_data_parallel_auto_decides_on_all_processes_rows():
    rng = np.random.default_rng(1)
    # Column 0: one process holds the tail (its own rows are all 1e3: skewness 0);
    # column 1: a tail on every process; column 2: normal; column 3: rare 1s on
    # one process and rare 9s on another (two values each, three in all).
    shards = [np.column_stack([np.zeros(n), rng.pareto(1.5, n), rng.normal(size=n), np.zeros(n)])
              for n in (500, 300, 8)]
    shards[2][:, 0] = 1e3
    shards[2][:, 0] += np.arange(8)  # more than two values
    shards[0][::100, 3] = 1.0
    shards[1][::100, 3] = 9.0
    combined, whole = _fitted_over_shards(shards, "auto")
    np.testing.assert_array_equal(combined.periodic_columns_, [0, 1, 3])
    np.testing.assert_array_equal(whole.periodic_columns_, [0, 1, 3])
    for shard in shards:  # no process alone sees column 0's tail or column 3's three values
        assert not {0, 3} & set(_fit_kind(shard, "auto").periodic_columns_)


def test_auto_adds_the_periodic_term_to_every_column_when_rows_are_many():
    from scipy import sparse

    n_columns = 3
    enough = AUTO_PERIODIC_ROWS_PER_COLUMN * n_columns
    rng = np.random.default_rng(4)
    X = np.column_stack([rng.normal(size=enough + 10), rng.integers(18, 90, enough + 10),
                         rng.integers(0, 2, enough + 10)]).astype(float)  # nothing heavy-tailed
    assert np.all(np.abs(_skewness_of(X)) < 1)

    def chosen(data, **context):
        kind = ContinuousColumns(np.arange(n_columns), "auto")
        return kind.fit(data, FitContext(**context)).periodic_columns_.tolist()

    # Every column with more than two values (not the 0/1 one) once the training rows
    # reach the line, dense or sparse; one row fewer and none of them.
    assert chosen(X[:enough]) == chosen(sparse.csr_matrix(X[:enough])) == [0, 1]
    assert chosen(X[:enough - 1]) == chosen(sparse.csr_matrix(X[:enough - 1])) == []
    # Only training rows count (not the validation rows), and only those of positive weight.
    assert chosen(X, rows=np.arange(enough)) == [0, 1]
    assert chosen(X, rows=np.arange(enough - 1)) == []
    weights = np.ones(len(X))
    weights[:11] = 0.0  # 11 rows that do not count leave one row too few
    assert chosen(X, sample_weight=weights) == []
    weights[:11] = 0.5  # weights below 1 still count their rows
    assert chosen(X, sample_weight=weights) == [0, 1]
    # A data-parallel fit counts the rows of all processes.
    half = enough // 2
    combined, whole = _fitted_over_shards([X[:half], X[half:enough]], "auto")
    assert combined.periodic_columns_.tolist() == whole.periodic_columns_.tolist() == [0, 1]
    assert _fit_kind(X[:half], "auto").periodic_columns_.tolist() == []


@pytest.mark.parametrize("architecture", ["mmoe", "single_task"])
def test_auto_round_trips_and_exports_exactly(architecture, tmp_path):
    X, y = auto_data(2)
    model = fit(X, y, "auto", architecture)
    expected = model.predict_proba(X)
    for restored in (pickle.loads(pickle.dumps(model)), _saved_and_loaded(model, tmp_path)):
        for got, want in zip(restored.predict_proba(X), expected):
            np.testing.assert_array_equal(got, want)
        assert restored.network_spec_ == model.network_spec_
        np.testing.assert_array_equal(restored.encoder_.continuous.periodic_columns_, [3])
    before = torch.random.get_rng_state()
    again = fit(X, y, "auto", architecture)
    assert torch.equal(torch.random.get_rng_state(), before)
    for p, q in zip(model.module_.parameters(), again.module_.parameters()):
        assert torch.equal(p, q)
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from skmtl.export import onnx_inputs, to_onnx

    session = ort.InferenceSession(to_onnx(model).SerializeToString())
    held_out = auto_data(8, 50)[0] * 1.5  # fractional and beyond the training range
    for got, want in zip(session.run(None, onnx_inputs(model, held_out)), model.predict_proba(held_out)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_partial_fit_takes_the_auto_columns_from_its_first_chunk():
    X, y = auto_data(3, 900)
    model = MultiTaskClassifier(numeric_embedding="auto", random_state=0)
    model.partial_fit(X[:300], y[:300])
    np.testing.assert_array_equal(model.encoder_.continuous.periodic_columns_, [3])
    X_later = X[300:].copy()
    X_later[:5, 1] = 1e3  # now heavy-tailed: the choice stays
    model.partial_fit(X_later, y[300:])
    np.testing.assert_array_equal(model.encoder_.continuous.periodic_columns_, [3])


def test_wide_auto_projects_jointly_and_linearly(tmp_path):
    rng = np.random.RandomState(0)
    X = rng.pareto(1.5, size=(300, 300))  # every column heavy-tailed
    y = np.column_stack([(X[:, 0] > 1).astype(int), (X[:, 1] > 0.5).astype(int)])
    model = fit(X, y, "auto")
    assert model.network_spec_["embeddings"][1] == {
        "kind": "continuous", "n_columns": 300, "projection": "joint", "n_tokens": 16,
    }
    np.testing.assert_array_equal(
        _saved_and_loaded(model, tmp_path).predict_proba(X)[0], model.predict_proba(X)[0]
    )


def test_the_zero_scale_lets_only_the_scale_learn_at_first():
    """At the first step the periodic maps get no gradient (their output is multiplied by 0)
    while the scale does, so the fit moves away from the linear network only where the loss
    pulls the periodic term in."""
    module = LinearPeriodicEmbedding(4, embedding_dim=3, periodic_columns=[1, 3], n_frequencies=4)
    module.reset_parameters(torch.Generator().manual_seed(2))
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(3))
    target = torch.sin(3 * x[:, 1:2])  # a shape only the periodic term can give column 1
    ((module(x)[:, 1] - target) ** 2).mean().backward()
    for p in module.periodic.parameters():
        assert p.grad is not None and not p.grad.any()
    assert module.periodic_scale.grad[0].abs().sum() > 0  # column 1's scale
    assert module.linear.weight.grad.abs().sum() > 0


def test_a_file_with_a_bad_auto_entry_is_refused():
    good = {"kind": "continuous", "n_columns": 3, "embedding": "auto", "periodic_columns": [0, 2],
            "n_frequencies": 16, "sigma": 0.5}
    check_continuous_entry(good)
    # Files written before the zero-initialised scale have no periodic_scale: unscaled terms.
    assert ContinuousColumns.make_embedding(2, 1, **good).periodic_scale is None
    check_continuous_entry({**good, "periodic_scale": True})
    assert ContinuousColumns.make_embedding(
        2, 1, **good, periodic_scale=True).periodic_scale.shape == (2, 2)
    for bad in (1, "true", None):
        with pytest.raises(ValueError, match="periodic_scale"):
            check_continuous_entry({**good, "periodic_scale": bad})
    with pytest.raises(ValueError, match="takes"):
        check_continuous_entry({"kind": "continuous", "n_columns": 3, "embedding": "periodic",
                                "n_frequencies": 16, "sigma": 0.5, "periodic_scale": True})
    for columns in ([3], [0, 0], [True], "0", [0.0]):
        with pytest.raises(ValueError, match="periodic_columns"):
            check_continuous_entry({**good, "periodic_columns": columns})
    with pytest.raises(ValueError, match="takes"):
        check_continuous_entry({k: v for k, v in good.items() if k != "periodic_columns"})


def test_a_file_written_before_the_parameter_continues_linearly(tmp_path):
    """A file without numeric_embedding embedded every column linearly: its parameters say so."""
    from test_persistence import loaded_without_param

    X, y = auto_data(4)
    loaded = loaded_without_param(fit(X, y, "linear"), tmp_path / "model.skmtl", "numeric_embedding")
    assert loaded.numeric_embedding == "linear"
    loaded.set_params(warm_start=True, max_iter=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        loaded.fit(X, y)  # continues: the parameters describe the fitted network
    assert type(loaded.module_.embedding.kinds["continuous"]) is ContinuousEmbedding
