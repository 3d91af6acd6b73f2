"""The column-kind plug-in point: a kind defined here, outside the package, trains end to end.

``Log1pColumns`` is a test-only kind: positive numeric columns, ``log1p`` then
standardised, each embedded by its own learned two-layer map. It is registered
with ``register_column_kind`` and given columns through the estimator's private
``_other_column_kinds``; nothing in ``skmtl`` names it.
"""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from skmtl import MultiTaskClassifier, load_model, save_model
from skmtl._column_kinds import COLUMN_KINDS, ColumnKind, FitContext, register_column_kind


class PerColumnMLP(nn.Module):
    """Column ``j``: ``relu(x_j * a_j + b_j) @ W_j + c_j``, one token per column.

    Shapes: (B, F) float32 -> (B, F, width). No ``reset_parameters``: the
    estimator initialises it with torch's defaults drawn from the fit's seed.
    """

    def __init__(self, n_columns: int, hidden: int, width: int):
        super().__init__()
        self.n_tokens = n_columns
        self.scale = nn.Parameter(torch.empty(n_columns, hidden))
        self.shift = nn.Parameter(torch.empty(n_columns, hidden))
        self.weight = nn.Parameter(torch.empty(n_columns, hidden, width))
        self.bias = nn.Parameter(torch.empty(n_columns, width))

    def forward(self, x):
        hidden = torch.relu(torch.addcmul(self.shift, x.unsqueeze(-1), self.scale))  # (B, F, H)
        return torch.einsum("bfh,fhw->bfw", hidden, self.weight) + self.bias


@register_column_kind
class Log1pColumns(ColumnKind):
    """Positive numeric columns, ``log1p`` then standardised; a two-layer map per column."""

    name = "log1p_test"

    def __init__(self, columns=(), hidden=4):
        super().__init__(columns)
        self.hidden = hidden

    def _logs(self, X, context):
        values = np.column_stack([np.asarray(pd.DataFrame(X).iloc[:, j], dtype=np.float64)
                                  for j in self.columns])
        if (values < 0).any():
            raise ValueError(f"{self.name} columns must be >= 0.")
        return np.log1p(values)

    def fit(self, X, context: FitContext):
        logs = self._logs(X, context)
        if context.distributed:  # (rows, sums, sums of squares) of every process
            parts = context.group.share(lambda: (len(logs), logs.sum(0), (logs**2).sum(0)))
            n = sum(p[0] for p in parts)
            self.mean_ = sum(p[1] for p in parts) / n
            scale = np.sqrt(np.maximum(sum(p[2] for p in parts) / n - self.mean_**2, 0))
        else:
            self.mean_, scale = logs.mean(0), logs.std(0)
        self.scale_ = np.where(scale > 0, scale, 1.0)
        return self

    def transform(self, X, context: FitContext):
        return ((self._logs(X, context) - self.mean_) / self.scale_).astype(np.float32)

    def embedding_args(self, values):
        return {"n_columns": len(self.columns), "hidden": int(self.hidden)}

    @classmethod
    def make_embedding(cls, embedding_dim, n_copies, *, n_columns, hidden):
        return PerColumnMLP(n_columns, hidden, n_copies * embedding_dim)

    def probe_values(self):
        return list(np.expm1(self.mean_))


def fit_with_log_income(X, y, **params):
    """A MultiTaskClassifier fitted with ``income`` given to :class:`Log1pColumns`.

    The estimator's private hook ``_other_column_kinds`` assigns the columns
    (no public parameter does yet); only the fit needs it.
    """

    def other_column_kinds(self, X, is_categorical):
        return [Log1pColumns([list(X.columns).index("income")])]

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(MultiTaskClassifier, "_other_column_kinds", other_column_kinds)
        return MultiTaskClassifier(**{**SMALL, **params}).fit(X, y)


def make_data(n=600, seed=0):
    rng = np.random.default_rng(seed)
    income = rng.lognormal(3.0, 1.0, n)
    X = pd.DataFrame({
        "city": pd.Categorical(rng.choice(["a", "b", "c"], n)),
        "income": income,
        "age": rng.normal(40, 10, n),
    })
    logit = (np.log1p(income) - 3.0) * 2.0 + (X["city"] == "a") * 1.0
    y = pd.DataFrame({
        "click": (logit + rng.normal(0, 0.5, n) > 0).astype(int),
        "buy": (X["age"] > 40).astype(int),
    })
    return X, y


SMALL = {
    "expert_layer_sizes": (16,), "tower_layer_sizes": (8,), "batch_size": 64, "max_iter": 15,
    "early_stopping": False, "random_state": 0, "embedding_dim": 4, "learning_rate_init": 0.01,
}


@pytest.fixture(scope="module")
def fitted():
    X, y = make_data()
    return fit_with_log_income(X, y), X, y


def test_the_kind_is_fitted_encoded_and_embedded(fitted):
    clf, X, _ = fitted
    kinds = clf.encoder_.kinds
    assert [k.name for k in kinds] == ["categorical", "continuous", "log1p_test"]
    assert kinds[2].columns.tolist() == [1]
    assert kinds[1].columns.tolist() == [2]  # income is no longer continuous
    np.testing.assert_allclose(kinds[2].mean_, np.log1p(X["income"]).mean())
    assert clf.network_spec_["embeddings"][2] == {"kind": "log1p_test", "n_columns": 1, "hidden": 4}
    assert isinstance(clf.module_.embedding.kinds["log1p_test"], PerColumnMLP)
    assert clf.module_.embedding.out_features == 3 * 4
    encoded = clf.encoder_.transform(X)
    assert [a.shape for a in encoded] == [(600, 1), (600, 1), (600, 1)]


def test_the_kind_is_trained_and_drives_predictions(fitted):
    clf, X, y = fitted
    # The kind's module moved from its (seeded) initial weights...
    fresh = fit_with_log_income(X, y, max_iter=1)
    mlp, other = clf.module_.embedding.kinds["log1p_test"], fresh.module_.embedding.kinds["log1p_test"]
    assert not torch.equal(mlp.weight, other.weight)
    # ...and the click task learnt from income, which only this kind sees.
    proba = clf.predict_proba(X)[0][:, 1]
    assert np.corrcoef(proba, np.log1p(X["income"]))[0, 1] > 0.5
    assert np.mean(clf.predict(X)[:, 0] == y["click"]) > 0.8
    shifted = X.assign(income=X["income"] * 20)
    assert clf.predict_proba(shifted)[0][:, 1].mean() > proba.mean() + 0.05


def test_the_kind_works_with_per_task_embedding_copies():
    X, y = make_data(300)
    clf = fit_with_log_income(X, y, architecture="single_task", max_iter=2)
    mlp = clf.module_.embedding.kinds["log1p_test"]
    assert mlp.weight.shape == (1, 4, 2 * 4)  # two tasks' copies side by side
    assert all(np.isfinite(p).all() for p in clf.predict_proba(X))


def test_feature_groups_see_the_kinds_tokens():
    X, y = make_data(300)
    clf = fit_with_log_income(X, y, architecture="mmoe", max_iter=1,
                              feature_groups={"money": ["income"]})
    mask = clf.network_spec_["options"]["expert_input_mask"]
    # tokens: city (categorical), age (continuous), income (log1p_test)
    assert mask[-1].tolist() == [0.0] * 8 + [1.0] * 4


def test_pickle_round_trip(fitted):
    clf, X, _ = fitted
    restored = pickle.loads(pickle.dumps(clf))
    for a, b in zip(clf.predict_proba(X), restored.predict_proba(X)):
        np.testing.assert_array_equal(a, b)


def test_model_file_round_trip(fitted, tmp_path):
    clf, X, _ = fitted
    save_model(clf, tmp_path / "m.skmtl")
    restored = load_model(tmp_path / "m.skmtl")
    assert type(restored.encoder_.kinds[2]) is Log1pColumns
    for a, b in zip(clf.predict_proba(X), restored.predict_proba(X)):
        np.testing.assert_array_equal(a, b)


def test_a_file_naming_an_unregistered_kind_is_refused(fitted, tmp_path, monkeypatch):
    clf, _, _ = fitted
    save_model(clf, tmp_path / "m.skmtl")
    monkeypatch.delitem(COLUMN_KINDS, "log1p_test")
    with pytest.raises(ValueError, match="Log1pColumns"):
        load_model(tmp_path / "m.skmtl")


def test_to_onnx_refuses_a_kind_without_export(fitted):
    from skmtl.export import onnx_inputs, to_onnx

    clf, X, _ = fitted
    match = r"Column kind 'log1p_test' \(Log1pColumns, columns \['income'\]\) does not export"
    with pytest.raises(ValueError, match=match):
        onnx_inputs(clf, X)  # needs no onnx package
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    with pytest.raises(ValueError, match=match):
        to_onnx(clf)


def test_registration_checks():
    class Nameless(ColumnKind):
        pass

    with pytest.raises(ValueError, match="identifier"):
        register_column_kind(Nameless)

    class Clash(ColumnKind):
        name = "categorical"

    with pytest.raises(ValueError, match="already registered"):
        register_column_kind(Clash)
    with pytest.raises(TypeError, match="subclasses ColumnKind"):
        register_column_kind(int)


# ------------------------------------- integer category codes beyond float64's exact range
def _codes(model, X):
    return model.encoder_.transform(X)[0]


def test_hashed_int64_ids_keep_a_row_each_and_their_neighbours_stay_unseen():
    """Ids near 1.5e18 all shared one code (float64 rounding), and B + 1 matched B."""
    from skmtl._column_kinds import encode_column

    base = 1_500_000_000_000_000_000
    ids = base + np.arange(6) * 7
    X = pd.DataFrame({"user": np.repeat(ids, 20), "x": np.linspace(0, 1, 120)})
    y = np.tile([0, 1], 60)
    model = MultiTaskClassifier(categorical_features=["user"], max_iter=1, random_state=0)
    model.fit(X, y)
    assert model.categories_[0].tolist() == ids.tolist()
    assert sorted(set(_codes(model, X)[:, 0].tolist())) == [1, 2, 3, 4, 5, 6]
    vocabulary = pd.Index(np.array([base], dtype=np.int64))
    values = np.array([base, base + 1, base + 100, 7], dtype=np.int64)
    assert encode_column(values, vocabulary).tolist() == [1, 0, 0, 0]


@pytest.mark.parametrize(
    "column",
    [
        np.array([2**60 + k for k in range(5)] * 8, dtype=np.uint64),  # vocabulary was corrupt
        np.array([-100, 0, 100, 0, -100] * 8, dtype=np.int8),  # the range wrapped: fit failed
        np.array([-(2**62), 2**62, 0, 5, 9] * 8, dtype=np.int64),  # likewise
    ],
)
def test_integer_codes_of_any_width_and_range_are_exact(column):
    X = pd.DataFrame({"id": column, "x": np.linspace(0, 1, len(column))})
    model = MultiTaskClassifier(categorical_features=["id"], max_iter=1, random_state=0)
    model.fit(X, np.tile([0, 1], len(column) // 2))
    distinct = np.unique(column)
    assert model.categories_[0].tolist() == distinct.tolist()
    expected = np.searchsorted(distinct, column) + 1
    np.testing.assert_array_equal(_codes(model, X)[:, 0], expected)


def test_a_history_of_hashed_64_bit_item_ids_fits():
    rng = np.random.RandomState(0)
    items = rng.randint(-(2**62), 2**62, size=30, dtype=np.int64)
    X = pd.DataFrame({
        "history": [list(rng.choice(items, size=4)) for _ in range(60)],
        "x": rng.normal(size=60),
    })
    model = MultiTaskClassifier(sequence_features=["history"], min_frequency=1, max_iter=1,
                                random_state=0)
    model.fit(X, np.tile([0, 1], 30))
    history = model.categories_[list(X.columns).index("history")]
    assert sorted(history.tolist()) == sorted(set(np.concatenate(X["history"].to_list()).tolist()))


def test_nullable_int64_ids_with_missing_values_and_float_lookups_stay_exact():
    """Int64 with NA became float64 (all ids near 1.5e18 shared one code), and a float 2**60
    matched the id 2**60 + 1."""
    from skmtl._column_kinds import encode_column

    base = 1_500_000_000_000_000_000
    ids = pd.array([None] + [base + 7 * k for k in range(6)] * 10, dtype="Int64")
    X = pd.DataFrame({"user": ids, "x": np.linspace(0, 1, len(ids))})
    model = MultiTaskClassifier(categorical_features=["user"], max_iter=1, random_state=0)
    model.fit(X, np.arange(len(ids)) % 2)
    codes = _codes(model, X)[:, 0]
    assert codes[0] == 0 and sorted(set(codes[1:].tolist())) == [1, 2, 3, 4, 5, 6]
    vocabulary = pd.Index(np.array([2**60 + 1, 2**60 + 9], dtype=np.int64))
    assert encode_column(np.array([2.0**60, 5.0]), vocabulary).tolist() == [0, 0]


def test_integer_lookup_table_is_built_once_per_vocabulary_and_freed_with_it(monkeypatch):
    """A one-row predict must not rebuild the lookup table of a large vocabulary on every call."""
    import gc

    from skmtl import _column_kinds as kinds

    built = []
    build = kinds._build_integer_table
    monkeypatch.setattr(kinds, "_build_integer_table", lambda v: built.append(1) or build(v))
    vocabulary = pd.Index(np.arange(10, 5000, 3))
    for values in (np.array([10, 13, 11, 4999, 7]), np.array([13.0, np.nan, 16.5, -1.0])):
        first = kinds.encode_column(values, vocabulary)
        assert kinds.encode_column(values, vocabulary).tolist() == first.tolist()
    assert first.tolist() == [2, 0, 0, 0]
    assert len(built) == 1
    low, codes = kinds._integer_table(vocabulary)
    assert low == 10 and not codes.flags.writeable
    key = id(vocabulary)
    assert key in kinds._INTEGER_TABLES
    del vocabulary, codes
    gc.collect()
    assert key not in kinds._INTEGER_TABLES
