"""``embedding_dropout``: dropout on the embedded input (issue 15, item 2).

The network's training forward is checked against the same masks drawn by
hand, its predictions against the network without dropout; then the option
through the network description, pickling, model files, ONNX, ``partial_fit``,
``warm_start``, a funnel and bad values. Data-parallel fits are in
tests/test_distributed_training.py.
"""

from __future__ import annotations

import pickle
import warnings

import numpy as np
import pytest
import torch
from conftest import assert_onnx_matches_predict_proba
from sklearn.metrics import roc_auc_score

from skmtl import MultiTaskClassifier, MultiTaskRegressor, load_model, save_model
from skmtl._network_spec import build_from_spec, check_network_spec
from skmtl.nn.architectures import build_network
from skmtl.nn.blocks import Dropout, attach_generator, init_parameters


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(400, 4))
    y = np.column_stack([X[:, 0] + 0.3 * rng.normal(size=400) > 0, X[:, 1] + X[:, 2] > 0])
    return X, y.astype(int)


def fit(X, y, estimator=MultiTaskClassifier, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return estimator(**{"max_iter": 5, "random_state": 0, **params}).fit(X, y)


def _network(p: float):
    net = build_network(
        "mmoe", cardinalities=[5, 3], n_continuous=2, embedding_dim=4, n_outputs=[1, 3],
        options={"n_experts": 2, "expert_layer_sizes": (8,), "tower_layer_sizes": (4,)},
        embedding_dropout=p,
    )
    init_parameters(net, torch.Generator().manual_seed(0))
    return net


def _inputs():
    codes = torch.tensor([[0, 1], [4, 2], [2, 0]])
    values = torch.tensor([[0.5, -1.0], [1.5, 0.0], [-0.3, 2.0]])
    return codes, values


# ------------------------------------------------------------------ the network
def test_training_forward_is_the_body_on_masked_embeddings_by_hand():
    net, inputs = _network(0.25).train(), _inputs()
    generator = torch.Generator().manual_seed(7)
    attach_generator(net, generator)
    got = net(*inputs)
    # The same draws by hand: keep each embedded value with probability 0.75, scale by 1/0.75.
    embedded = net.embedding(*inputs)  # no category dropout: nothing else draws
    keep = torch.empty_like(embedded).bernoulli_(0.75, generator=torch.Generator().manual_seed(7))
    expected = net.body(embedded * keep / 0.75)
    assert 0 < int((keep == 0).sum()) < keep.numel()
    for g, e in zip(got, expected):
        torch.testing.assert_close(g, e, rtol=0, atol=0)
    unmasked = net.body(embedded)
    assert not torch.equal(got[0], unmasked[0])


def test_predictions_read_every_embedded_value():
    net, inputs = _network(0.5).eval(), _inputs()
    attach_generator(net, torch.Generator().manual_seed(0))
    plain = _network(0.0).eval()
    plain.load_state_dict(net.state_dict())  # dropout holds no parameters: same tensors
    for got, want in zip(net(*inputs), plain(*inputs)):
        torch.testing.assert_close(got, want, rtol=0, atol=0)


def test_zero_adds_no_module_and_no_description_entry(data):
    X, y = data
    assert "embedding_dropout" not in dict(_network(0.0).named_children())
    assert isinstance(_network(0.1).embedding_dropout, Dropout)
    default, dropped = fit(X, y), fit(X, y, embedding_dropout=0.1)
    assert "embedding_dropout" not in default.network_spec_
    assert dropped.network_spec_["embedding_dropout"] == 0.1
    rest = {k: v for k, v in dropped.network_spec_.items() if k != "embedding_dropout"}
    assert repr(rest) == repr(default.network_spec_)
    assert dropped.module_.embedding_dropout.p == 0.1
    assert repr(build_from_spec(dropped.network_spec_)) == repr(dropped.module_)


# ------------------------------------------------------------------- training
def test_it_changes_training_reproducibly_and_keeps_the_signal(data):
    X, y = data
    default = fit(X, y, max_iter=30)
    first, second = (fit(X, y, max_iter=30, embedding_dropout=0.2) for _ in range(2))
    assert first.loss_curve_ == second.loss_curve_
    assert first.loss_curve_ != default.loss_curve_
    proba = first.predict_proba(X)
    np.testing.assert_array_equal(proba[0], second.predict_proba(X)[0])
    assert roc_auc_score(y[:, 0], proba[0][:, 1]) > 0.9
    assert roc_auc_score(y[:, 1], proba[1][:, 1]) > 0.9


@pytest.mark.parametrize("estimator", [MultiTaskClassifier, MultiTaskRegressor])
def test_pickle_and_model_files_round_trip(data, estimator, tmp_path):
    X, y = data
    model = fit(X, y.astype(float) if estimator is MultiTaskRegressor else y, estimator,
                embedding_dropout=0.1)
    predict = model.predict_proba if estimator is MultiTaskClassifier else model.predict
    expected = predict(X)
    path = tmp_path / "model.skmtl"
    save_model(model, path)
    for restored in (pickle.loads(pickle.dumps(model)), load_model(path)):
        assert restored.embedding_dropout == 0.1
        assert restored.network_spec_["embedding_dropout"] == 0.1
        assert restored.module_.embedding_dropout.p == 0.1
        got = restored.predict_proba(X) if estimator is MultiTaskClassifier else restored.predict(X)
        np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))


def test_a_bad_value_in_a_description_is_refused(data):
    X, y = data
    spec = dict(fit(X, y, embedding_dropout=0.1).network_spec_)
    for bad in (1.0, -0.1, True, "0.1"):
        spec["embedding_dropout"] = bad
        with pytest.raises(ValueError, match=r"embedding_dropout must be in \[0, 1\)"):
            check_network_spec(spec, MultiTaskClassifier._parameter_constraints, "network_spec_")


@pytest.mark.slow
def test_onnx_export(data):
    X, y = data
    assert_onnx_matches_predict_proba(fit(X, y, embedding_dropout=0.1), X)


def test_partial_fit_continues_and_refuses_a_changed_rate(data):
    X, y = data
    model = MultiTaskClassifier(embedding_dropout=0.1, random_state=0)
    model.partial_fit(X, y, classes=[[0, 1], [0, 1]])
    before = model.predict_proba(X)[0]
    model.partial_fit(X, y)
    assert model.n_iter_ == 2
    assert not np.array_equal(model.predict_proba(X)[0], before)
    model.set_params(embedding_dropout=0.2)
    with pytest.raises(ValueError, match=r"embedding_dropout: 0\.1 -> 0\.2"):
        model.partial_fit(X, y)
    warm = fit(X, y, embedding_dropout=0.1, warm_start=True)
    warm.set_params(embedding_dropout=0.0)
    with pytest.raises(ValueError, match=r"embedding_dropout: 0\.1 -> None"):
        warm.fit(X, y)


def test_with_a_funnel(data):
    X, y = data
    funnel_y = y.copy()
    funnel_y[:, 1] &= funnel_y[:, 0]  # the second step only after the first
    model = fit(X, funnel_y, funnel=[0, 1], embedding_dropout=0.1, max_iter=20,
                learning_rate_init=0.01)
    first, second = (p[:, 1] for p in model.predict_proba(X))
    assert np.all(second <= first + 1e-6)
    assert roc_auc_score(funnel_y[:, 0], first) > 0.9
