"""A scipy sparse X: the same model as its dense equivalent, without ever densifying it.

Tolerances. The encoding of a sparse X is the dense encoding
(:class:`skmtl.nn.sparse.SparseRows` stores the float32 standardised value of
every stored entry and each column's standardised zero), but for the mean and
scale, which ``mean_variance_axis`` computes to float64 round-off of numpy's:
on some data a rare value lands one float32 ulp away. On the data here they
agree, so a network reading one token per column
(``continuous_projection="per_column"``, which densifies each batch) gives
bit-identical predictions and a bit-identical fit. The joint
projection multiplies the sparse rows as ``zeros @ W + (x - zeros) @ W`` over
the stored entries instead of ``x @ W``: the same sum in another order, so
float32 round-off (about 1e-7 relative per term, over a few hundred columns)
moves the probabilities by about 1e-7; the bounds below are 1e-5 (one
prediction) and 1e-4 (a fit of a few epochs, whose round-off feeds back into the
weights).
"""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
from sklearn.compose import make_column_transformer
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.metrics import roc_auc_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder

from skmtl import MultiTaskClassifier, MultiTaskRegressor, load_model, save_model
from skmtl.nn.sparse import SparseRows

JOINT_PREDICT_TOL = 1e-5
JOINT_FIT_TOL = 1e-4
FAST = {"max_iter": 4, "batch_size": 64, "early_stopping": False, "random_state": 0,
        "expert_layer_sizes": [16], "tower_layer_sizes": [8], "learning_rate_init": 0.01}


def tfidf_like(n_rows=400, n_columns=300, density=0.03, seed=0):
    """Non-negative sparse counts; two binary tasks, each a linear score of the first 10 columns.

    The 10 signal columns hold 40% non-zeros, the others ``density``.
    """
    rng = np.random.default_rng(seed)
    noise = sp.random(n_rows, n_columns - 10, density=density, format="csr", random_state=seed,
                      data_rvs=lambda k: rng.exponential(size=k))
    signal = sp.random(n_rows, 10, density=0.4, format="csr", random_state=seed + 100,
                       data_rvs=lambda k: rng.exponential(size=k))
    X = sp.hstack([signal, noise], format="csr")
    score = signal @ np.random.default_rng(42).normal(size=(10, 2))
    Y = (score > np.median(score, axis=0)).astype(int)
    return X, Y


def stack(proba):
    """Every task's probability of its second class, (n_tasks, n_samples)."""
    return np.stack([p[:, 1] for p in (proba if isinstance(proba, list) else [proba])])


@pytest.fixture(scope="module")
def data():
    return tfidf_like()


@pytest.fixture(scope="module")
def joint(data):
    X, Y = data
    return MultiTaskClassifier(**FAST).fit(X, Y)


# ------------------------------------------------------------------ the encoding
def test_sparse_rows_hold_the_dense_encoding_to_the_bit(data, joint):
    X, _ = data
    rows = joint.encoder_.transform(X)[1]
    dense = joint.encoder_.transform(X.toarray())[1]
    assert isinstance(rows, SparseRows) and rows.shape == dense.shape
    assert torch.equal(rows.to_dense(), torch.from_numpy(dense))
    index = torch.tensor([5, 3, 3, 399, 0])
    assert torch.equal(rows[index].to_dense(), torch.from_numpy(dense[index.numpy()]))
    assert torch.equal(rows[index][1:4].to_dense(), torch.from_numpy(dense[[3, 3, 399]]))
    assert torch.equal(rows[np.arange(10, 30)][2:5].to_dense(), torch.from_numpy(dense[12:15]))
    assert rows[7:7].to_dense().shape == (0, X.shape[1])
    # Memory: the stored entries, not rows x columns.
    assert rows.nbytes == 8 * (X.shape[0] + 1) + 12 * X.nnz + 4 * X.shape[1]
    assert rows.nbytes < dense.nbytes / 5


def test_the_sparse_projection_and_its_gradient_are_the_dense_ones(data, joint):
    X, _ = data
    rows = joint.encoder_.transform(X)[1][torch.arange(50, 150)]
    dense = rows.to_dense()
    gen = torch.Generator().manual_seed(0)
    weight = torch.randn(X.shape[1], 12, generator=gen, dtype=torch.float64).float().requires_grad_()
    bias = torch.randn(12, generator=gen).requires_grad_()
    out = rows.project(weight, bias)
    expected = (dense.double() @ weight.detach().double() + bias.detach().double()).float()
    torch.testing.assert_close(out.detach(), expected, rtol=1e-6, atol=1e-5)
    upstream = torch.randn(100, 12, generator=gen)
    grads = torch.autograd.grad((out * upstream).sum(), (weight, bias))
    dense_grads = torch.autograd.grad((torch.addmm(bias, dense, weight) * upstream).sum(),
                                      (weight, bias))
    for got, want in zip(grads, dense_grads):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------ sparse = dense equivalent
@pytest.mark.parametrize("fmt", ["csr", "csc", "coo"])
def test_a_sparse_fit_predicts_as_its_dense_equivalent(data, joint, fmt):
    X, Y = data
    assert joint.network_spec_["embeddings"][1]["projection"] == "joint"  # 300 > 256 columns
    Xs = X.asformat(fmt)
    np.testing.assert_allclose(stack(joint.predict_proba(Xs)), stack(joint.predict_proba(X.toarray())),
                               rtol=0, atol=JOINT_PREDICT_TOL)
    # A model fitted on the sparse matrix and one fitted on its dense form are one model.
    dense = MultiTaskClassifier(**FAST).fit(X.toarray(), Y)
    np.testing.assert_allclose(joint.loss_curve_, dense.loss_curve_, rtol=JOINT_FIT_TOL)
    np.testing.assert_allclose(stack(joint.predict_proba(X)), stack(dense.predict_proba(X.toarray())),
                               rtol=0, atol=JOINT_FIT_TOL)
    # ... and it learnt something in its 4 epochs: held-out ROC AUCs 0.676 and 0.696 when
    # written (0.5 by chance; 400 held-out rows put its standard error near 0.03).
    X_test, Y_test = tfidf_like(seed=1)
    auc = [roc_auc_score(Y_test[:, t], p) for t, p in enumerate(stack(joint.predict_proba(X_test)))]
    assert min(auc) > 0.62, auc


def test_one_token_per_column_gives_the_dense_fit_to_the_bit(data):
    X, Y = data
    X = X[:, :40]
    params = {**FAST, "continuous_projection": "per_column", "numeric_embedding": "periodic"}
    sparse = MultiTaskClassifier(**params).fit(X.tocsc(), Y)
    dense = MultiTaskClassifier(**params).fit(X.toarray(), Y)
    assert sparse.loss_curve_ == dense.loss_curve_
    np.testing.assert_array_equal(stack(sparse.predict_proba(X)), stack(dense.predict_proba(X.toarray())))


def test_a_regressor_takes_sparse_X_as_its_dense_equivalent(data):
    X, _ = data
    rng = np.random.default_rng(3)
    y = np.column_stack([X[:, :10] @ rng.normal(size=10) * 100 + 50, X[:, 10:20].sum(axis=1)])
    # The two fits differ only in rounding (sparse and dense products sum in other orders).
    # With the default flat gates (gate_temperature=10) this lr=0.01 fit amplifies it to
    # 4e-4 to 5e-4 of mean |y| on random_state 0 and 2 (measured; at 1: at most 2.2e-4 on
    # random states 0 to 3, none beyond the tolerance), so the paths are compared at 1.
    params = dict(FAST, gate_temperature=1.0)
    sparse = MultiTaskRegressor(**params).fit(X, y)
    dense = MultiTaskRegressor(**params).fit(X.toarray(), y)
    np.testing.assert_allclose(sparse.predict(X), dense.predict(X.toarray()), rtol=JOINT_FIT_TOL,
                               atol=JOINT_FIT_TOL * np.abs(y).mean())


def test_batched_prediction_of_many_sparse_rows(joint):
    X, _ = tfidf_like(n_rows=5000, seed=2)  # more than INFERENCE_BATCH_SIZE (2048) rows
    np.testing.assert_allclose(stack(joint.predict_proba(X)), stack(joint.predict_proba(X.toarray())),
                               rtol=0, atol=JOINT_PREDICT_TOL)


def test_fit_and_predict_never_densify_the_whole_matrix(data, monkeypatch):
    X, Y = data
    n_rows = X.shape[0]

    def refuse(self, *args, **kwargs):
        if self.shape[0] == n_rows:
            raise AssertionError(f"a {self.shape} matrix was densified")
        return original(self, *args, **kwargs)

    original = sp._compressed._cs_matrix.toarray
    for name in ("toarray", "todense"):
        monkeypatch.setattr(sp._compressed._cs_matrix, name, refuse)
    monkeypatch.setattr(sp._base._spbase, "__array__", refuse, raising=False)
    for densify in (X.toarray, X.tocsc().todense, lambda: np.asarray(X, dtype=float)):
        with pytest.raises((AssertionError, ValueError, TypeError)):
            densify()  # the patches catch it
    for params in ({}, {"continuous_projection": "per_column"}, {"early_stopping": True}):
        clf = MultiTaskClassifier(**{**FAST, **params}).fit(X, Y)
        clf.predict_proba(X)
        clf.partial_fit(X, Y)
        clf.score(X, Y)


# ---------------------------------------------------------------- sklearn plumbing
def test_pipelines_with_one_hot_and_tfidf_output():
    rng = np.random.default_rng(0)
    n = 300
    words = np.array(["cheap", "fast", "refund", "late", "great", "broken", "love", "slow"])
    text = [" ".join(rng.choice(words, 4)) for _ in range(n)]
    frame = pd.DataFrame({"text": text, "city": rng.choice(["a", "b", "c", "d"], n),
                          "age": rng.normal(size=n)})
    good = np.array([(" great" in " " + t) or (" love" in " " + t) for t in text])
    y = np.column_stack([good, frame["city"].isin(["a", "b"]) & (frame["age"] > -1)]).astype(int)

    def columns(sparse):
        return make_column_transformer(
            (TfidfVectorizer(), "text"),
            (OneHotEncoder(sparse_output=sparse), ["city"]),
            remainder="passthrough", sparse_threshold=1.0 if sparse else 0.0,
        )

    params = {**FAST, "max_iter": 20}
    sparse = make_pipeline(columns(True), MultiTaskClassifier(**params)).fit(frame, y)
    assert sp.issparse(sparse[0].transform(frame))
    dense = make_pipeline(columns(False), MultiTaskClassifier(**params)).fit(frame, y)
    # 14 columns: one token each (densified per batch), so the dense fit to the bit.
    np.testing.assert_array_equal(stack(sparse.predict_proba(frame)), stack(dense.predict_proba(frame)))
    accuracy = (sparse.predict(frame) == y).mean(axis=0)
    assert accuracy.min() > 0.9, accuracy

    one_hot = make_pipeline(OneHotEncoder(), MultiTaskClassifier(**FAST)).fit(frame[["city"]], y[:, 1:])
    assert one_hot.predict(frame[["city"]]).shape == (n, 1)


def test_pickle_and_model_files_of_a_sparse_fit_predict_alike(data, joint, tmp_path):
    X, _ = data
    expected = stack(joint.predict_proba(X))
    np.testing.assert_array_equal(stack(pickle.loads(pickle.dumps(joint)).predict_proba(X)), expected)
    save_model(joint, tmp_path / "model.skmtl")
    np.testing.assert_array_equal(stack(load_model(tmp_path / "model.skmtl").predict_proba(X)), expected)


@pytest.mark.parametrize("projection", ["joint", "per_column"])
def test_partial_fit_on_sparse_chunks_is_partial_fit_on_their_dense_form(data, projection):
    X, Y = data
    models = []
    for convert in (lambda a: a, lambda a: a.toarray()):
        clf = MultiTaskClassifier(**FAST, continuous_projection=projection)
        for rows in (slice(0, 200), slice(200, 400)):
            clf.partial_fit(convert(X[rows]), Y[rows])
        models.append(clf)
    sparse, dense = (stack(m.predict_proba(X)) for m in models)
    if projection == "per_column":
        np.testing.assert_array_equal(sparse, dense)
    else:
        np.testing.assert_allclose(sparse, dense, rtol=0, atol=JOINT_FIT_TOL)


@pytest.mark.slow  # about 5 s: the export
def test_a_sparse_fit_exports_to_onnx(data):
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from skmtl.export import onnx_inputs, to_onnx

    X, Y = data
    X = X[:, :30]
    clf = MultiTaskClassifier(**FAST, continuous_projection="joint").fit(X, Y)
    model = to_onnx(clf)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    outputs = session.run(None, onnx_inputs(clf, X))  # the graph's inputs are dense columns
    for got, want in zip(outputs, clf.predict_proba(X)):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


# ---------------------------------------------------------------------- bad input
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_infinity_stored_in_a_sparse_X_is_refused(data, joint, bad):
    X, Y = data
    X = X.copy()
    X.data[3] = bad
    with pytest.raises(ValueError, match="sparse matrix with NaN or infinite"):
        MultiTaskClassifier(**FAST).fit(X, Y)
    with pytest.raises(ValueError, match="sparse matrix with NaN or infinite"):
        joint.predict_proba(X)


@pytest.mark.parametrize("params, match", [
    ({"categorical_features": [0, 3]}, "continuous columns only"),
    ({"categorical_features": np.arange(300) < 2}, "continuous columns only"),
    ({"sequence_features": [1]}, "sequence_features"),
    ({"numeric_embedding": "piecewise_linear"}, "piecewise_linear"),
])
def test_parameters_that_need_other_columns_are_refused_with_sparse_X(data, params, match):
    X, Y = data
    with pytest.raises(ValueError, match=match):
        MultiTaskClassifier(**FAST, **params).fit(X, Y)
    assert not MultiTaskClassifier(numeric_embedding="piecewise_linear").__sklearn_tags__().input_tags.sparse
    assert MultiTaskRegressor().__sklearn_tags__().input_tags.sparse


@pytest.mark.filterwarnings("ignore:X does not have valid feature names")
def test_a_model_with_categorical_columns_refuses_a_sparse_X():
    X = pd.DataFrame({"city": ["a", "b", "c"] * 20, "x": np.arange(60.0)})
    clf = MultiTaskClassifier(**FAST).fit(X, np.arange(60) % 2)
    with pytest.raises(ValueError, match="categorical or sequence column.*'city'"):
        clf.predict_proba(sp.csr_matrix(np.ones((3, 2))))


def test_a_sparse_X_is_not_modified():
    # Unsorted, duplicated entries (summed, as toarray sums them) and int values.
    X = sp.csr_matrix((np.array([3, 1, 2, 5]), np.array([2, 0, 2, 1]), np.array([0, 3, 3, 4])),
                      shape=(3, 3))
    before = (X.data.copy(), X.indices.copy(), X.indptr.copy())
    X_big = sp.vstack([X] * 20, format="csr")
    X_big.has_canonical_format = False
    big_before = (X_big.data.copy(), X_big.indices.copy(), X_big.indptr.copy())
    clf = MultiTaskClassifier(**FAST, continuous_projection="per_column").fit(X_big, np.arange(60) % 2)
    np.testing.assert_array_equal(stack(clf.predict_proba(X)), stack(clf.predict_proba(X.toarray())))
    for got, want in zip((X.data, X.indices, X.indptr, X_big.data, X_big.indices, X_big.indptr),
                         before + big_before):
        np.testing.assert_array_equal(got, want)
    # A canonical float64 CSR with int64 indices, whose arrays the encoding could share.
    shared = sp.random(60, 5, density=0.4, format="csr", random_state=0)
    shared.indices, shared.indptr = shared.indices.astype(np.int64), shared.indptr.astype(np.int64)
    shared_before = (shared.data.copy(), shared.indices.copy(), shared.indptr.copy())
    joint = MultiTaskClassifier(**FAST, continuous_projection="joint")
    joint.fit(shared, np.arange(60) % 2).partial_fit(shared, np.arange(60) % 2)
    joint.predict_proba(shared)
    for got, want in zip((shared.data, shared.indices, shared.indptr), shared_before):
        np.testing.assert_array_equal(got, want)
