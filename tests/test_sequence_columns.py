"""Sequence and multi-hot columns (lists of categories per cell) and shared embedding tables.

The data: an item id (the candidate), the history of item ids the user
clicked (variable length, possibly empty or missing), the item's tags and a
price. ``click`` is 1 exactly when the history holds the candidate.
"""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.compose import ColumnTransformer
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from skmtl import MultiTaskClassifier, MultiTaskRegressor, load_model, save_model
from skmtl._sequence_columns import list_items, padded_codes
from skmtl.nn.sequence import SequenceEmbedding, TargetAttention, pool

N_ITEMS = 40


def make_data(n=1200, seed=0, max_history=12):
    """Candidate item, history (half of the rows hold the candidate), tags, price; two tasks."""
    rng = np.random.default_rng(seed)
    item = rng.integers(0, N_ITEMS, n)
    histories = np.empty(n, dtype=object)
    click = rng.random(n) < 0.5
    for i in range(n):
        others = rng.choice(np.setdiff1d(np.arange(N_ITEMS), item[i]), rng.integers(0, max_history))
        history = list(others)
        if click[i]:
            history.insert(int(rng.integers(0, len(history) + 1)), item[i])
        histories[i] = [int(v) for v in history]
    tags = np.empty(n, dtype=object)
    for i in range(n):
        tags[i] = list(rng.choice(["red", "blue", "sale", "new"], rng.integers(0, 3), replace=False))
    price = rng.normal(size=n)
    X = pd.DataFrame({"item_id": item, "history": histories, "tags": tags, "price": price})
    y = pd.DataFrame({
        "click": click.astype(int),
        "sale": np.array(["sale" in t for t in tags]).astype(int),
    })
    return X, y


SMALL = {
    "embedding_dim": 4, "expert_layer_sizes": (16,), "tower_layer_sizes": (8,), "n_experts": 2, "batch_size": 64,
    "max_iter": 2, "early_stopping": False, "random_state": 0, "min_frequency": 1,
}
SEQUENCE = {
    "sequence_features": ["history", "tags"], "shared_embeddings": [["item_id", "history"]],
    "attention_queries": {"history": "item_id"}, "max_sequence_length": {"history": 8, "tags": 3},
}


@pytest.fixture(scope="module")
def data():
    return make_data()


@pytest.fixture(scope="module")
def fitted(data):
    X, y = data
    return MultiTaskClassifier(**SMALL, **SEQUENCE).fit(X, y)


# ------------------------------------------------------------------ encoding
def test_cells_of_mixed_lengths_empty_missing_and_unseen_are_encoded():
    X = pd.DataFrame({"h": [[3, 1, 2], [], None, np.nan, (7, 1), np.array([1, 2, 3, 1, 2])],
                      "x": np.arange(6.0)})
    items, lengths = list_items(X["h"], "'h'")
    assert lengths.tolist() == [3, 0, 0, 0, 2, 5]
    assert items.dtype == np.int64 and items.tolist() == [3, 1, 2, 7, 1, 1, 2, 3, 1, 2]
    clf = MultiTaskClassifier(**SMALL, sequence_features=["h"], max_sequence_length=4)
    clf.fit(X, [0, 1, 0, 1, 0, 1])
    kind = clf.encoder_.kinds[2]
    assert kind.vocabularies_[0].tolist() == [1, 2, 3, 7]  # codes 1..4, 0 unknown
    new = pd.DataFrame({"h": [[9, 1], [2, 3, 7, 1, 2, 3], None], "x": [0.0, 1.0, 2.0]})
    codes = clf.encoder_.transform(new)[2]
    # 9 is unseen (0); the longest list keeps its LAST four items; a missing cell is empty.
    np.testing.assert_array_equal(codes, [[0, 1, -1, -1], [4, 1, 2, 3], [-1, -1, -1, -1]])
    assert clf.categories_[0].tolist() == [1, 2, 3, 7] and clf.categories_[1] is None
    assert not clf.is_categorical_.any()


def test_padding_keeps_the_most_recent_items():
    codes = padded_codes(np.arange(1, 11), np.array([4, 0, 6]), 3)
    np.testing.assert_array_equal(codes, [[2, 3, 4], [-1, -1, -1], [8, 9, 10]])


def test_pyarrow_and_polars_list_columns_encode_as_python_lists(data, fitted):
    pa = pytest.importorskip("pyarrow")
    pl = pytest.importorskip("polars")
    X = data[0].iloc[:50].copy()
    X.loc[X.index[3], "history"] = None
    expected = fitted.encoder_.transform(X)
    arrow = X.astype({"history": pd.ArrowDtype(pa.list_(pa.int64())),
                      "tags": pd.ArrowDtype(pa.list_(pa.string()))})
    polars = pl.DataFrame({
        "item_id": X["item_id"].to_numpy(), "history": list(X["history"]),
        "tags": [list(t) for t in X["tags"]], "price": X["price"].to_numpy(),
    })
    assert polars.schema["history"] == pl.List(pl.Int64)
    table = pa.table({
        "item_id": X["item_id"].to_numpy(), "history": pa.array(list(X["history"]), pa.list_(pa.int64())),
        "tags": pa.array(list(X["tags"]), pa.list_(pa.string())), "price": X["price"].to_numpy(),
    })
    for other in (arrow, polars, table):
        for a, b in zip(expected, fitted.encoder_.transform(fitted._validate_X(other, reset=False))):
            np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(fitted.predict_proba(other)[0], fitted.predict_proba(X)[0])


# ------------------------------------------------------------------- modules
def test_pooling_excludes_padding_and_an_empty_list_gives_zeros():
    module = SequenceEmbedding([5], [0, 0, 0], [3, 3, 3], ["mean", "sum", "max"], [-1, -1, -1], 2)
    module.reset_parameters(torch.Generator().manual_seed(0))
    codes = torch.tensor([[1, 2, -1] * 3, [-1, -1, -1] * 3, [4, 0, 4] * 3], dtype=torch.int32)
    tokens = module(codes)
    table = module.table(0).detach()
    rows = [table[[1, 2]], table[[4, 0, 4]]]
    for b, r in ((0, rows[0]), (2, rows[1])):
        torch.testing.assert_close(tokens[b, 0], r.mean(0))
        torch.testing.assert_close(tokens[b, 1], r.sum(0))
        torch.testing.assert_close(tokens[b, 2], r.max(0).values)
    assert torch.equal(tokens[1], torch.zeros(3, 2))
    # The path taken while exporting to ONNX (a gather and masked reductions) agrees.
    rows = torch.where(codes[:, :3] >= 0, codes[:, :3], 5)
    for k, pooling in enumerate(("mean", "sum", "max")):
        torch.testing.assert_close(pool(module.table(0), rows, codes[:, :3] >= 0, pooling), tokens[:, k])


@pytest.mark.parametrize("weights", ["softmax", "din"])
def test_attention_masks_padding(weights):
    torch.manual_seed(0)
    unit = TargetAttention(4, n_copies=2, weights=weights)
    unit.reset_parameters(torch.Generator().manual_seed(1))
    query, keys = torch.randn(5, 8), torch.randn(5, 3, 8)
    unpadded = unit(query, keys, torch.ones(5, 3, dtype=torch.bool))
    padding = torch.randn(5, 4, 8) * 100  # whatever the padding rows hold
    padded = unit(query, torch.cat([keys, padding], 1),
                  torch.cat([torch.ones(5, 3), torch.zeros(5, 4)], 1).bool())
    torch.testing.assert_close(padded, unpadded, rtol=1e-6, atol=1e-6)
    # One copy's scores, by hand: v . sigmoid(W [q, k, q - k, q * k] + b) + c.
    q, k = query[0, :4], keys[0, :, :4]
    features = torch.cat([q.expand(3, 4), k, q - k, q * k], 1)
    score = torch.sigmoid(features @ unit.hidden_weight[0] + unit.hidden_bias[0]) @ unit.score_weight[0]
    score = score + unit.score_bias[0]
    weight = torch.softmax(score, 0) if weights == "softmax" else score
    torch.testing.assert_close(unpadded[0, :4], (weight[:, None] * k).sum(0))
    # A history of padding only: a zero token, never NaN.
    empty = unit(query, padding, torch.zeros(5, 4, dtype=torch.bool))
    torch.testing.assert_close(empty, torch.zeros(5, 8))


def test_softmax_attention_is_a_weighted_mean_whatever_the_length():
    """Repeating every item of a history leaves a softmax token unchanged, not a DIN one."""
    unit = {w: TargetAttention(4, weights=w) for w in ("softmax", "din")}
    for u in unit.values():
        u.reset_parameters(torch.Generator().manual_seed(2))
    query, keys = torch.randn(3, 4), torch.randn(3, 5, 4)
    twice = torch.cat([keys, keys], 1)
    for name, u in unit.items():
        once = u(query, keys, torch.ones(3, 5, dtype=torch.bool))
        doubled = u(query, twice, torch.ones(3, 10, dtype=torch.bool))
        if name == "softmax":
            torch.testing.assert_close(doubled, once)
        else:
            torch.testing.assert_close(doubled, 2 * once)


def test_attention_weights_are_recorded_and_older_descriptions_mean_din(data):
    X, y = data
    din = MultiTaskClassifier(**SMALL, **SEQUENCE, attention_weights="din").fit(X, y)
    default = MultiTaskClassifier(**SMALL, **SEQUENCE).fit(X, y)
    kinds = {e["kind"]: e for e in default.network_spec_["embeddings"]}
    assert kinds["sequence"]["attention_weights"] == "softmax"
    assert {e["kind"]: e for e in din.network_spec_["embeddings"]}["sequence"]["attention_weights"] == "din"
    attention = default.module_.embedding.kinds["sequence"].attention
    assert [u.normalisation for u in attention.values()] == ["softmax"]
    # A description without the entry (written before the option) builds DIN's weights.
    from skmtl._sequence_columns import SequenceColumns

    args = dict(kinds["sequence"])
    del args["kind"], args["attention_weights"]
    old = SequenceColumns.make_embedding(4, 1, **args)
    assert [u.normalisation for u in old.attention.values()] == ["din"]
    assert not np.allclose(np.asarray(din.predict_proba(X)[0]), np.asarray(default.predict_proba(X)[0]))
    with pytest.raises(ValueError, match=r"\(attention_weights: 'din' -> 'softmax'\)"):
        din.set_params(warm_start=True, attention_weights="softmax").fit(X, y)


def test_a_model_file_written_before_attention_weights_loads_as_din_and_keeps_training(data, tmp_path):
    """Such a file has no attention_weights: not in its parameters, not in its network."""
    import json
    import zipfile

    from skmtl import _persistence

    X, y = data
    din = MultiTaskClassifier(**SMALL, **SEQUENCE, attention_weights="din").fit(X, y)
    path = tmp_path / "old.skmtl"
    save_model(din, path)
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    document = json.loads(members["model.json"])
    del document["params"]["attention_weights"]
    for entry in document["network"]["embeddings"]:
        entry.pop("attention_weights", None)
    model_json = json.dumps(document).encode()
    checksums = _persistence._checksums(model_json, members["weights.pt"], None)
    _persistence._write_archive(path, {"checksums.json": json.dumps(checksums).encode(),
                                       "model.json": model_json, "weights.pt": members["weights.pt"]})
    old = load_model(path)
    assert old.get_params()["attention_weights"] == "din"
    np.testing.assert_array_equal(np.asarray(old.predict_proba(X)), np.asarray(din.predict_proba(X)))
    old.partial_fit(X, y)  # the same network: continues
    with pytest.raises(ValueError, match="attention_weights"):
        old.set_params(attention_weights="softmax").partial_fit(X, y)


def test_more_padding_gives_the_same_tokens(fitted, data):
    X = data[0]
    module = fitted.module_.embedding.kinds["sequence"].eval()
    codes = fitted.encoder_.transform(X[X["history"].map(len) <= 8])[2]  # item, 8 history, 3 tags
    assert (codes[:, 1:9] == -1).any()
    padding = np.full((len(codes), 12), -1, dtype=np.int32)
    wider = np.concatenate([codes[:, :9], padding, codes[:, 9:]], axis=1)
    weights = next(iter(module.attention.values())).normalisation
    wide = SequenceEmbedding(module.tables, module.column_tables, [1, 20, 3], module.poolings,
                             module.queries, 4, attention_weights=weights).eval()
    wide.load_state_dict(module.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(wide(torch.from_numpy(wider)), module(torch.from_numpy(codes)),
                                   rtol=1e-6, atol=1e-6)


def test_shared_columns_read_and_train_one_table(fitted, data):
    module = fitted.module_.embedding.kinds["sequence"]
    kind = fitted.encoder_.kinds[2]
    assert kind.columns.tolist() == [0, 1, 2]  # item_id, history, tags
    assert kind.tables == [0, 0, 1] and module.column_tables == [0, 0, 1]
    tables = [name for name, _ in module.named_parameters() if name.startswith("table_")]
    assert tables == ["table_0", "table_1"]
    assert module.table(0).shape == (N_ITEMS + 2, 4)  # unknown row, 40 items, padding
    codes = torch.from_numpy(fitted.encoder_.transform(data[0].iloc[:64])[2])
    module.eval()
    for k in (0, 1):  # the item id's token alone, then the history's alone
        module.zero_grad()
        module(codes)[:, k].sum().backward()
        grad = module.table(0).grad
        assert grad.abs().sum() > 0 and module.table(1).grad.abs().sum() == 0
        assert grad[-1].abs().sum() == 0  # padding is never trained
    module.zero_grad()


def test_columns_of_single_categories_can_share_a_table():
    rng = np.random.default_rng(0)
    teams = np.array(["ajax", "psv", "az", "fcu"], dtype=object)
    X = pd.DataFrame({"home": teams[rng.integers(0, 3, 200)], "away": teams[rng.integers(1, 4, 200)],
                      "x": rng.normal(size=200)})
    clf = MultiTaskClassifier(**SMALL, shared_embeddings=[["home", "away"]]).fit(X, X["x"] > 0)
    kind = clf.encoder_.kinds[2]
    assert kind.poolings == [None, None] and kind.tables == [0, 0]
    assert kind.vocabularies_[0].tolist() == ["ajax", "az", "fcu", "psv"]  # both columns' values
    codes = clf.encoder_.transform(pd.DataFrame({"home": ["psv", None], "away": ["psv", "x"], "x": 0.0}))
    np.testing.assert_array_equal(codes[2], [[4, 4], [0, 0]])
    assert clf.categories_[0].tolist() == clf.categories_[1].tolist()


def test_auto_embedding_dim_counts_the_sequence_tables(data):
    from skmtl._network_spec import auto_embedding_dim

    X, y = data
    params = {**SMALL, "embedding_dim": "auto", "sequence_features": ["history", "tags"]}
    clf = MultiTaskClassifier(**params).fit(X[["history", "tags", "price"]], y)
    sizes = [len(v) + 1 for v in clf.encoder_.kinds[2].vocabularies_]  # history's items, tags
    assert sizes == [N_ITEMS + 1, 5]
    # no categorical column: the rule of thumb on the two tables' median, not the 8 of no table
    assert clf.network_spec_["embedding_dim"] == auto_embedding_dim(sizes) != auto_embedding_dim([])


# ---------------------------------------------------------------- estimator
def test_round_trips_pickle_model_file_and_batched_predictions(fitted, data, tmp_path, monkeypatch):
    X = data[0]
    expected = fitted.predict_proba(X)
    for restored in (pickle.loads(pickle.dumps(fitted)), _saved_and_loaded(fitted, tmp_path)):
        for a, b in zip(expected, restored.predict_proba(X)):
            np.testing.assert_array_equal(a, b)
    monkeypatch.setattr("skmtl._training.INFERENCE_BATCH_SIZE", 100)
    for a, b in zip(expected, fitted.predict_proba(X)):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def _saved_and_loaded(estimator, tmp_path):
    save_model(estimator, tmp_path / "model.skmtl")
    return load_model(tmp_path / "model.skmtl")


def test_onnx_export_matches_predict_proba(fitted, data):
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from skmtl.export import onnx_inputs, to_onnx

    X = data[0].iloc[:300].copy()
    X.loc[X.index[:3], "history"] = [None, [], [999, 1000]]  # empty, empty, unseen items
    model = to_onnx(fitted)
    inputs = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim]
              for i in model.graph.input}
    assert inputs == {"item_id": ["N", 1], "history": ["N", 8], "history_length": ["N", 1],
                      "tags": ["N", 3], "tags_length": ["N", 1], "price": ["N", 1]}
    feed = onnx_inputs(fitted, X)
    assert feed["history_length"][:3, 0].tolist() == [0, 0, 2]
    session = ort.InferenceSession(model.SerializeToString())
    for a, b in zip(fitted.predict_proba(X), session.run(None, feed)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_partial_fit_with_declared_vocabularies():
    X, y = make_data(600, seed=1)
    items = list(range(N_ITEMS)) + [100]  # 100 never occurs, 39 not in the first chunk
    first = X["item_id"] != 39
    clf = MultiTaskClassifier(**SMALL, **SEQUENCE)
    clf.partial_fit(X[first].iloc[:200], y[first].iloc[:200],
                    categories={"history": items, "tags": ["red", "blue", "sale", "new"]})
    kind = clf.encoder_.kinds[2]
    assert kind.vocabularies_[0].tolist() == items
    assert kind.vocabularies_[1].tolist() == ["blue", "new", "red", "sale"]
    clf.partial_fit(X, y)
    codes = clf.encoder_.transform(X[X["item_id"] == 39])[2]
    assert (codes[:, 0] == 40).all()  # 39's own row, declared before it was seen
    with pytest.raises(ValueError, match="not a categorical column"):
        MultiTaskClassifier(**SMALL, **SEQUENCE).partial_fit(X, y, categories={"price": [1.0]})
    # items declared as strings for integer items: none could match, refused as for categorical
    with pytest.raises(ValueError, match=r"holds numbers .* declared categories are strings"):
        MultiTaskClassifier(**SMALL, **SEQUENCE).partial_fit(
            X, y, categories={"history": [str(i) for i in items]}
        )


def test_pipeline_with_a_column_transformer_passing_lists_through(data):
    X, y = data
    transformer = ColumnTransformer([("scale", StandardScaler(), ["price"])], remainder="passthrough")
    as_array = make_pipeline(transformer, MultiTaskClassifier(
        **SMALL, sequence_features=[2, 3], categorical_features=[1],
        shared_embeddings=[[1, 2]], attention_queries={2: 1}))
    as_array.fit(X, y)  # the output is an object array: price, item_id, history, tags
    assert as_array[-1].encoder_.kinds[2].columns.tolist() == [1, 2, 3]
    frame = make_pipeline(
        ColumnTransformer([("scale", StandardScaler(), ["price"])], remainder="passthrough",
                          verbose_feature_names_out=False).set_output(transform="pandas"),
        MultiTaskClassifier(**SMALL, **SEQUENCE),
    ).fit(X, y)
    for a, b in zip(frame.predict_proba(X), as_array.predict_proba(X)):
        assert a.shape == b.shape and np.isfinite(b).all()


def test_the_regressor_takes_sequence_columns(data):
    X, y = data
    reg = MultiTaskRegressor(**SMALL, sequence_features=["history", "tags"],
                             sequence_pooling={"tags": "sum"}, max_sequence_length=5)
    reg.fit(X, y.astype(float))
    assert reg.encoder_.kinds[2].poolings == ["mean", "sum"]
    assert reg.predict(X).shape == (len(X), 2)


@pytest.mark.parametrize(
    "params, match",
    [
        ({"sequence_features": ["nope"]}, r"sequence_features names 'nope', which is not a column"),
        ({"sequence_features": ["history"], "categorical_features": ["history"]},
         r"named in both categorical_features and sequence_features"),
        ({"sequence_features": ["history"], "attention_queries": {"history": "item_id"}},
         r"the query must be a column of single categories sharing 'history'"),
        ({"sequence_features": ["history"], "attention_queries": {"tags": "item_id"}},
         r"attention_queries names 'tags', which is not a sequence column"),
        ({"sequence_features": ["history"], "sequence_pooling": {"history": "attention"}},
         r"sequence_pooling\['history'\] must be one of \['mean', 'sum', 'max'\]"),
        ({"sequence_features": ["history"], "shared_embeddings": [["history"]]},
         r"groups of at least two columns"),
        ({"sequence_features": ["history"], "shared_embeddings": [["history", "tags"], ["tags", "item_id"]]},
         r"puts a column in two groups"),
        ({"sequence_features": ["history"], "max_sequence_length": {"history": 0}},
         r"max_sequence_length\['history'\] must be an integer >= 1"),
        ({"sequence_features": ["history"]}, r"Column 'tags' holds lists; declare it in sequence_features"),
        ({"sequence_features": ["history", "price"]},
         r"Sequence column 'price' holds .*\(float\); its cells must be lists"),
        ({"attention_queries": {"history": "item_id"}}, r"need sequence_features"),
        # a list column shared with a column of single categories, but not declared a sequence
        ({"shared_embeddings": [["item_id", "history"]], "sequence_features": ["tags"]},
         r"Column 'history' holds lists; declare it in sequence_features"),
    ],
)
def test_bad_declarations_are_named(data, params, match):
    X, y = data
    X = X if "tags" in str(params) or "holds lists" in match else X.drop(columns="tags")
    with pytest.raises(ValueError, match=match):
        MultiTaskClassifier(**SMALL, **params).fit(X.iloc[:100], y.iloc[:100])


def test_default_parameters_refuse_lists_and_are_unchanged_otherwise(data):
    X, y = data
    with pytest.raises(ValueError, match="Column 'history' holds lists"):
        MultiTaskClassifier(**SMALL).fit(X, y)
    clf = MultiTaskClassifier(**SMALL).fit(X[["item_id", "price"]], y)
    assert [k.name for k in clf.encoder_.kinds] == ["categorical", "continuous"]


# ------------------------------------------------------------- data-parallel
DISTRIBUTED = dict(
    SMALL, **SEQUENCE, max_iter=3, shuffle=False, category_dropout=0.0, min_frequency=3,
    batch_size=64,
)


def distributed_data():
    """The rows of the data-parallel test and each row's rank (its half of a global batch).

    Item 99 occurs twice in each rank's histories: rarer than ``min_frequency=3``
    on either rank, frequent enough over both, so it must get a row.
    """
    X, y = make_data(640, seed=2)
    shard = (np.arange(len(X)) % 64) // 32
    histories = X["history"].to_numpy(copy=True)
    for i in (3, 40, 70, 100):  # ranks 0, 1, 0, 1
        histories[i] = [*histories[i], 99]
    return X.assign(history=histories), y, shard


@pytest.mark.slow
@pytest.mark.skipif(
    not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
    reason="torch.distributed with gloo is not available",
)
def test_two_processes_learn_the_vocabularies_and_model_of_one(tmp_path):
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    worker = Path(__file__).with_name("sequence_worker.py")
    (tmp_path / "params.json").write_text(json.dumps(DISTRIBUTED))
    path = os.pathsep.join(p for p in (str(worker.parents[1]), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "PYTHONPATH": path}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         str(worker), str(tmp_path / "params.json"), str(tmp_path / "out")],
        check=False, capture_output=True, text=True, timeout=600, env=env,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    ranks = [dict(np.load(tmp_path / "out" / f"rank{r}.npz")) for r in range(2)]
    X, y, _ = distributed_data()
    one = MultiTaskClassifier(**DISTRIBUTED).fit(X, y)
    assert "99" in ranks[0]["vocabulary_0"].tolist() and 99 in one.encoder_.kinds[2].vocabularies_[0]
    for t, vocabulary in enumerate(one.encoder_.kinds[2].vocabularies_):
        for rank in ranks:
            assert rank[f"vocabulary_{t}"].tolist() == [str(v) for v in vocabulary]
    for rank in ranks:
        np.testing.assert_allclose(rank["loss_curve"], one.loss_curve_, rtol=1e-5, atol=1e-6)
        for t, p in enumerate(one.predict_proba(X)):
            np.testing.assert_allclose(rank[f"proba_{t}"], p, rtol=1e-5, atol=1e-5)
    for t in range(2):
        np.testing.assert_array_equal(ranks[0][f"proba_{t}"], ranks[1][f"proba_{t}"])


def test_continuing_a_fit_with_other_sequence_parameters_is_refused(data):
    X, y = data
    clf = MultiTaskClassifier(**SMALL, **SEQUENCE).fit(X, y)
    clf.set_params(warm_start=True, max_sequence_length=4)
    with pytest.raises(ValueError, match=r"sequence columns: .*'widths': \[1, 8, 3\].*\[1, 4, 4\]"):
        clf.fit(X, y)
    clf.set_params(max_sequence_length=SEQUENCE["max_sequence_length"], max_iter=1)
    assert clf.fit(X, y).n_iter_ == 3


# ------------------------------------------------------------- known signal
@pytest.mark.slow
def test_history_pooling_and_attention_learn_whether_the_history_holds_the_candidate():
    X, y = make_data(5000, seed=5)
    train, test = slice(0, 3000), slice(3000, None)
    common = {
        "embedding_dim": 8, "expert_layer_sizes": (32,), "tower_layer_sizes": (16,), "n_experts": 2,
        "batch_size": 64, "max_iter": 20, "learning_rate_init": 0.01, "early_stopping": False,
        "min_frequency": 1, "random_state": 0,
    }
    shared = {"sequence_features": ["history", "tags"], "shared_embeddings": [["item_id", "history"]]}
    models = {
        "no history": (["item_id", "tags", "price"],
                       {"categorical_features": ["item_id"], "sequence_features": ["tags"]}),
        "mean": (list(X.columns), shared),
        "attention": (list(X.columns), dict(shared, attention_queries={"history": "item_id"})),
    }
    auc = {}
    for name, (columns, params) in models.items():
        clf = MultiTaskClassifier(**common, **params).fit(X[columns].iloc[train], y.iloc[train])
        auc[name] = roc_auc_score(y["click"].iloc[test], clf.predict_proba(X[columns].iloc[test])[0][:, 1])
    # Measured (seed 5): no history 0.484, mean pooling 0.668, attention 0.954.
    assert auc["no history"] < 0.56, auc
    assert auc["mean"] > auc["no history"] + 0.1, auc
    assert auc["attention"] > max(0.9, auc["mean"] + 0.15), auc


@pytest.mark.slow
def test_the_recommender_example_runs_and_the_history_helps(capsys):
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "recommender_history.py"
    spec = importlib.util.spec_from_file_location("recommender_history", path)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    rows = {row["model"]: row for row in example.main(20_000, signal=2.0)}
    assert "AUC pCTCVR" in capsys.readouterr().out
    # make_ad_funnel(history_signal=2), 15,000 impressions to train. Measured: AUC pCTR
    # 0.601 / 0.729 / 0.801 and pCTCVR 0.802 / 0.851 / 0.878 (none/mean/attention); the
    # true probabilities 0.922 and 0.974.
    for model in ("history, mean", "history, attention"):
        for auc in ("AUC pCTR", "AUC pCTCVR"):
            assert rows[model][auc] > rows["no history"][auc] + 0.03, rows
            assert rows[model][auc] < rows["truth (ceiling)"][auc], rows


@pytest.mark.parametrize(
    "cell, match",
    [
        (np.array(3), r"holds array\(3\) \(ndarray\); its cells must be lists"),
        (np.zeros((2, 2)), r"\(ndarray\); its cells must be lists, tuples or 1-D arrays"),
        ([1, [2, 3]], r"holds nested lists or arrays; its cells must be flat"),
        ((1, np.array([2, 3])), r"holds nested lists or arrays"),
    ],
)
def test_malformed_sequence_cells_are_named(cell, match):
    with pytest.raises(ValueError, match=match):
        list_items(pd.Series([[1, 2], cell, None], dtype=object), "'h'")


# ------------------------------------------------------ item ids that float64 cannot hold
BIG_IDS = np.array([2**60 + 1, 2**60 + 2, 2**60 + 3])


def test_large_integer_items_keep_their_identity_beside_missing_or_empty_cells():
    """Ids above 2**53 differ by 1: float64 would make them one category."""
    pa = pytest.importorskip("pyarrow")
    rows = [[int(BIG_IDS[0]), int(BIG_IDS[1])], [int(BIG_IDS[2]), None], []]
    arrow = pd.Series(rows, dtype=pd.ArrowDtype(pa.list_(pa.int64())))
    items, lengths = list_items(arrow, "'hist'")
    assert list(lengths) == [2, 2, 0]
    assert list(items[[0, 1, 2]]) == [int(v) for v in BIG_IDS] and items[3] is None
    # Cells that are numpy arrays: an empty float64 cell beside int64 ones.
    arrays = pd.Series([BIG_IDS[:2], np.array([]), BIG_IDS[2:]], dtype=object)
    items, _ = list_items(arrays, "'hist'")
    assert items.dtype == np.int64 and list(items) == list(BIG_IDS)
    # Python ints beside a NaN item.
    items, _ = list_items(pd.Series([[int(BIG_IDS[0]), float("nan")], [int(BIG_IDS[1])]]), "'hist'")
    assert items[0] == BIG_IDS[0] and pd.isna(items[1]) and items[2] == BIG_IDS[1]


def test_unsigned_64_bit_item_ids_are_sequence_items():
    ids = [2**63 + 5, 2**64 - 1, 3]
    items, _ = list_items(pd.Series([[ids[0], ids[1]], [ids[2]]]), "'hist'")
    assert items.dtype == np.uint64 and list(items) == ids
    mixed = [-1, 2**63 + 5]  # neither int64 nor uint64 holds both: objects, exact
    items, _ = list_items(pd.Series([mixed]), "'hist'")
    assert list(items) == mixed


def test_large_integer_history_fits_as_many_categories_and_rows_do_not_affect_each_other():
    rng = np.random.default_rng(0)
    n = 300
    hist = [rng.choice(BIG_IDS, rng.integers(1, 4)) for _ in range(n)]
    X = pd.DataFrame({"hist": hist, "x": rng.normal(size=n)})
    y = np.c_[[BIG_IDS[0] in h for h in hist], rng.integers(0, 2, n)].astype(int)
    model = MultiTaskClassifier(sequence_features=["hist"], embedding_dim=4, max_iter=3,
                                early_stopping=False, random_state=0).fit(X, y)
    assert list(model.categories_[0]) == list(BIG_IDS)
    batch = X.iloc[:3].copy()
    before = model.predict_proba(batch)[0][:2]
    batch.at[batch.index[2], "hist"] = np.array([])
    np.testing.assert_array_equal(model.predict_proba(batch)[0][:2], before)


def test_nested_arrow_lists_are_refused_as_nested():
    pa = pytest.importorskip("pyarrow")
    column = pd.Series([[[1, 2]], [[3]]] * 20, dtype=pd.ArrowDtype(pa.list_(pa.list_(pa.int64()))))
    X = pd.DataFrame({"hist": column, "x": np.arange(40.0)})
    with pytest.raises(ValueError, match="nested lists"):
        MultiTaskClassifier(sequence_features=["hist"], max_iter=1).fit(X, np.tile([0, 1], 20))


def test_large_integer_items_beside_a_real_float_stay_exact_and_export_is_refused():
    big = 2**60 + 1
    items, _ = list_items(pd.Series([[big, 1.0], [big + 1]]), "'hist'")
    assert list(items) == [big, 1.0, big + 1] and items[0] != items[2]
    from skmtl._column_kinds import category_lookup

    with pytest.raises(ValueError, match="cannot tell apart"):  # ONNX would feed doubles
        category_lookup(pd.Index([1.0, big, big + 1], dtype=object), "hist")


def test_dictionary_encoded_arrow_items_keep_their_missing_items():
    pa = pytest.importorskip("pyarrow")
    column = pd.Series([["a", None], ["b"]],
                       dtype=pd.ArrowDtype(pa.list_(pa.dictionary(pa.int32(), pa.string()))))
    items, lengths = list_items(column, "'hist'")
    assert list(items) == ["a", None, "b"] and list(lengths) == [2, 1]
