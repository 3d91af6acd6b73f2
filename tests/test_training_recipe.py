"""The training-recipe options (issue 15, item 2): weight_decay, learning_rate_schedule, weight_init.

Each is checked against a hand computation (one AdamW step, the plateau
schedule's rates, Kaiming's bounds from the same random numbers), then the
fitted models through pickling, model files, ONNX, ``partial_fit`` and
scikit-learn's checks; data-parallel fits are compared with one process in
tests/test_distributed_training.py.
"""

from __future__ import annotations

import math
import pickle
import warnings

import numpy as np
import pytest
import torch
from conftest import assert_onnx_matches_predict_proba

from skmtl import MultiTaskClassifier, MultiTaskRegressor, load_model, save_model
from skmtl._hooks import TrainingState
from skmtl._schedules import PlateauSchedule, schedule_observers
from skmtl._training import make_optimizer, split_parameters
from skmtl.nn.blocks import GatedExperts, StackedMLP, init_parameters, kaiming_hidden_layers

RECIPE = {"weight_decay": 0.05, "learning_rate_schedule": "plateau", "weight_init": "kaiming"}


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(400, 4))
    y = np.column_stack([X[:, 0] + 0.3 * rng.normal(size=400) > 0, X[:, 1] * X[:, 2] > 0])
    return X, y.astype(int)


def fit(X, y, estimator=MultiTaskClassifier, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return estimator(**{"max_iter": 5, "random_state": 0, **params}).fit(X, y)


# ------------------------------------------------------------- weight_decay
def test_decoupled_weight_decay_step_by_hand():
    """With zero gradients, AdamW's step is w <- w * (1 - lr * wd) on weights only."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.Embedding(4, 2))
    before = [p.detach().clone() for p in net.parameters()]
    optimizer = make_optimizer(net, learning_rate=0.1, alpha=0.0, weight_decay=0.5)
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    weight, bias, table = (p.detach() for p in net.parameters())
    torch.testing.assert_close(weight, before[0] * (1 - 0.1 * 0.5))
    assert torch.equal(bias, before[1]) and torch.equal(table, before[2])


def test_coupled_alpha_is_unchanged_and_differs_from_decoupled_decay():
    """alpha adds alpha * w to the gradient (Adam then normalises it: a step of -lr)."""
    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    start = net.weight.detach().clone()
    optimizer = make_optimizer(net, learning_rate=0.1, alpha=0.5)
    assert not isinstance(optimizer, torch.optim.AdamW)  # coupled: Adam's L2 in the gradient
    for p in net.parameters():
        p.grad = torch.zeros_like(p)
    optimizer.step()
    torch.testing.assert_close(net.weight.detach(), start - 0.1 * torch.sign(start))


@pytest.mark.parametrize(
    ("params", "batch_rows"),
    [
        ({}, 400),  # batch_size="auto": min(512, 400 training rows)
        ({"batch_size": 64}, 64),
        ({"batch_size": 1000}, 400),  # a batch holds at most the training rows
        ({"early_stopping": True, "validation_fraction": 0.25}, 300),
    ],
)
@pytest.mark.parametrize("estimator", [MultiTaskClassifier, MultiTaskRegressor])
def test_alpha_is_on_mlp_scale_divided_by_the_batch_rows(data, estimator, params, batch_rows):
    """MLPClassifier's loss + 0.5 * alpha * ||W||^2 / n_batch: Adam's L2 of alpha / n_batch."""
    X, y = data
    model = fit(X, y.astype(float), estimator, alpha=2.0, max_iter=1, **params)
    rates = sorted(g["weight_decay"] for g in model.optimizer_.param_groups)
    assert rates == [0.0, pytest.approx(2.0 / batch_rows, rel=1e-12)]


def _l2_rates(model):
    return sorted(g["weight_decay"] for g in model.optimizer_.param_groups)


def _adam_steps(model):
    return sorted({int(state["step"]) for state in model.optimizer_.state.values()})


def test_partial_fit_takes_each_calls_rate_and_keeps_adam_state(data):
    """Each partial_fit chunk is penalised by alpha / its own rows (as MLPRegressor's)."""
    X, y = data
    model = MultiTaskRegressor(alpha=1.0, random_state=0)
    model.partial_fit(X[:10], y[:10].astype(float))
    assert _l2_rates(model) == [0.0, pytest.approx(1.0 / 10)]
    model.partial_fit(X, y.astype(float))  # one batch of 400 rows
    assert _l2_rates(model) == [0.0, pytest.approx(1.0 / 400)]
    assert _adam_steps(model) == [2]  # the same Adam, one step per call
    model.set_params(alpha=0.0).partial_fit(X, y.astype(float))
    assert _l2_rates(model) == [0.0, 0.0] and _adam_steps(model) == [3]


def test_alpha_set_between_partial_fit_calls_splits_the_weights_off_keeping_their_state(data):
    X, y = data
    model = MultiTaskRegressor(random_state=0).partial_fit(X, y.astype(float))
    assert len(model.optimizer_.param_groups) == 1  # no penalty: one group
    model.set_params(alpha=4.0).partial_fit(X, y.astype(float))
    groups = model.optimizer_.param_groups
    assert sorted(g["weight_decay"] for g in groups) == [0.0, pytest.approx(4.0 / 400)]
    penalised = next(g for g in groups if g["weight_decay"] > 0)["params"]
    assert {id(p) for p in penalised} == {id(p) for p in split_parameters(model.module_)[0]}
    assert _adam_steps(model) == [2]


def test_a_loaded_model_continues_with_the_same_rate_as_the_original(data, tmp_path):
    X, y = data
    model = fit(X, y.astype(float), MultiTaskRegressor, alpha=1.0, max_iter=2)
    save_model(model, tmp_path / "model")
    loaded = load_model(tmp_path / "model")
    for continued in (pickle.loads(pickle.dumps(model)), loaded):
        continued.partial_fit(X[:10], y[:10].astype(float))
        assert _l2_rates(continued) == [0.0, pytest.approx(1.0 / 10)]


def test_alpha_and_weight_decay_together_are_refused(data):
    X, y = data
    with pytest.raises(ValueError, match="set one of them to 0"):
        MultiTaskClassifier(alpha=0.01, weight_decay=0.01).fit(X, y)


def test_weight_decay_shrinks_the_fitted_weights(data):
    X, y = data
    plain = fit(X, y, max_iter=20)
    decayed = fit(X, y, max_iter=20, weight_decay=10.0)  # about (1 - 0.01) ** 20 = 0.82
    norm = lambda m: float(m.module_.body.experts.weight.detach().norm())
    assert norm(decayed) < 0.9 * norm(plain)


# ------------------------------------------------------- learning_rate_schedule
def test_plateau_schedule_divides_by_five_after_patience_and_restores_the_rate():
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.Adam([param], lr=0.01)
    schedule = PlateauSchedule(patience=2)
    state = TrainingState(module=None, optimizer=optimizer, history=None, max_iter=10)
    schedule.on_train_begin(state)
    rates = []
    for improved in [True, False, False, True, False, False, False, False]:
        state.improved = improved
        assert schedule.on_epoch_end(state) is False  # never stops training itself
        rates.append(optimizer.param_groups[0]["lr"])
    np.testing.assert_allclose(
        rates, [0.01, 0.01, 0.002, 0.002, 0.002, 0.0004, 0.0004, 0.00008], rtol=1e-12
    )
    schedule.on_train_end(state)
    assert optimizer.param_groups[0]["lr"] == 0.01


def test_schedule_observers():
    assert schedule_observers("constant", 10, one_pass=False) == []
    assert schedule_observers("plateau", 10, one_pass=True) == []  # partial_fit: constant
    (plateau,) = schedule_observers("plateau", 10, one_pass=False)
    assert plateau.patience == 5
    assert schedule_observers("plateau", 1, one_pass=False)[0].patience == 1


def test_plateau_changes_training_only_after_a_plateau(data):
    X, y = data
    params = {"early_stopping": True, "n_iter_no_change": 4, "max_iter": 60, "tol": 0.0,
              "learning_rate_init": 0.03, "batch_size": 32}
    constant = fit(X, y, **params)
    plateau = fit(X, y, learning_rate_schedule="plateau", **params)
    best, waited, drop = -np.inf, 0, None  # the epoch (from 0) after which the rate drops
    for epoch, score in enumerate(constant.validation_scores_):
        best, waited = (score, 0) if score > best else (best, waited + 1)
        if waited == 2:
            drop = epoch
            break
    assert drop is not None  # the constant rate stopped 2 epochs later at the earliest
    np.testing.assert_array_equal(
        plateau.validation_scores_[:drop + 1], constant.validation_scores_[:drop + 1]
    )
    assert plateau.validation_scores_[drop + 1] != constant.validation_scores_[drop + 1]
    for model in (constant, plateau):  # the fitted optimiser holds the configured rate
        assert model.optimizer_.param_groups[0]["lr"] == 0.03


# ------------------------------------------------------------------- weight_init
def test_kaiming_rescales_torch_draws_to_he_bounds():
    def built(kaiming):
        net = torch.nn.ModuleDict({
            "mlp": StackedMLP(2, 10, (16, 8)),
            "experts": GatedExperts(10, n_experts=3, layer_sizes=(12,), n_gates=2),
        })
        init_parameters(net, torch.Generator().manual_seed(0))
        if kaiming:
            kaiming_hidden_layers(net, "relu")
        return net

    torch_init, he = built(False), built(True)
    torch_init.requires_grad_(False)
    he.requires_grad_(False)
    for layer_torch, layer_he in zip(torch_init["mlp"].layers[::2], he["mlp"].layers[::2]):
        fan_in = layer_he.in_features
        torch.testing.assert_close(layer_he.weight, layer_torch.weight * math.sqrt(6.0))
        assert float(layer_he.weight.abs().max()) <= math.sqrt(6.0 / fan_in)
        assert float(layer_he.weight.abs().max()) > 0.9 * math.sqrt(6.0 / fan_in)
        assert not layer_he.bias.any()
    experts = 3 * 12
    torch.testing.assert_close(
        he["experts"].weight[:, :experts], torch_init["experts"].weight[:, :experts] * math.sqrt(6.0)
    )
    assert torch.equal(he["experts"].weight[:, experts:], torch_init["experts"].weight[:, experts:])
    assert not he["experts"].bias[:experts].any()
    assert torch.equal(he["experts"].bias[experts:], torch_init["experts"].bias[experts:])


@pytest.mark.parametrize("architecture", ["mmoe", "ple", "shared_bottom"])
def test_kaiming_initial_logits_are_not_near_zero(data, architecture):
    X, y = data
    spread = {}
    for init in ("torch", "kaiming"):
        model = fit(X, y, architecture=architecture, weight_init=init, learning_rate_init=1e-12,
                    max_iter=1)
        logits = torch.stack(model._logits(X))
        spread[init] = float(logits.std(dim=1).mean())
    assert spread["torch"] < 0.02
    assert spread["kaiming"] > 5 * spread["torch"]


# ------------------------------------------------ persistence, export, partial_fit
@pytest.mark.parametrize("estimator", [MultiTaskClassifier, MultiTaskRegressor])
def test_pickle_and_model_files_round_trip(data, estimator, tmp_path):
    X, y = data
    model = fit(X, y.astype(float) if estimator is MultiTaskRegressor else y, estimator, **RECIPE)
    predict = model.predict_proba if estimator is MultiTaskClassifier else model.predict
    expected = predict(X)
    path = tmp_path / "model.skmtl"
    save_model(model, path)
    for restored in (pickle.loads(pickle.dumps(model)), load_model(path)):
        assert {k: restored.get_params()[k] for k in RECIPE} == RECIPE
        got = restored.predict_proba(X) if estimator is MultiTaskClassifier else restored.predict(X)
        np.testing.assert_array_equal(np.asarray(got), np.asarray(expected))


def test_onnx_export_of_a_kaiming_model(data):
    X, y = data
    assert_onnx_matches_predict_proba(fit(X, y, **RECIPE), X)


def test_partial_fit_keeps_the_rate_and_decays(data):
    X, y = data
    model = MultiTaskClassifier(random_state=0, **RECIPE)
    model.partial_fit(X, y, classes=[[0, 1], [0, 1]])
    for _ in range(2):
        model.partial_fit(X, y)
    group = model.optimizer_.param_groups[0]
    assert isinstance(model.optimizer_, torch.optim.AdamW)  # decoupled decay
    assert group["lr"] == 1e-3 and group["weight_decay"] == 0.05
    assert model.n_iter_ == 3


# ------------------------------------------------- defaults that scale with the data
@pytest.mark.parametrize("estimator", [MultiTaskClassifier, MultiTaskRegressor])
def test_auto_early_stopping_holds_out_rows_above_2000(estimator):
    """early_stopping="auto": a validation set above 2,000 rows (it was 10,000)."""
    rng = np.random.RandomState(0)
    X = rng.normal(size=(2_001, 3))
    y = np.column_stack([X[:, 0] > 0, X[:, 1] > 0]).astype(int)
    above = fit(X, y, estimator, max_iter=2)
    below = fit(X[:2_000], y[:2_000], estimator, max_iter=2)
    assert len(above.validation_scores_) == 2
    assert below.validation_scores_ is None


def test_partial_fit_reads_the_learning_rate_and_weight_decay_of_each_call():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(200, 4))
    y = np.column_stack([X[:, 0] > 0, X[:, 1] > 0]).astype(int)
    model = MultiTaskClassifier(max_iter=1, random_state=0, weight_decay=0.5).partial_fit(X, y)
    model.set_params(learning_rate_init=0.1, weight_decay=0.1).partial_fit(X, y)
    groups = model.optimizer_.param_groups
    assert [g["lr"] for g in groups] == [0.1] * len(groups)
    assert sorted(g["weight_decay"] for g in groups) == [0.0, 0.1]
    with pytest.raises(ValueError, match=r"continues the optimiser of the first call, AdamW"):
        model.set_params(weight_decay=0.0, alpha=1.0).partial_fit(X, y)
    model.set_params(weight_decay=0.0, alpha=0.0).partial_fit(X, y)  # AdamW at 0 is Adam
    assert all(g["weight_decay"] == 0.0 for g in model.optimizer_.param_groups)
    adam = MultiTaskClassifier(max_iter=1, random_state=0).partial_fit(X, y)
    with pytest.raises(ValueError, match=r"continues the optimiser of the first call, Adam "):
        adam.set_params(weight_decay=0.1).partial_fit(X, y)


# ------------------------------------------------------------------ ema_epochs
class _StepRecorder:
    """A training observer that copies the weights after every step."""

    def __init__(self):
        self.steps = []

    def on_train_begin(self, state):
        pass

    def on_epoch_begin(self, state):
        pass

    def on_batch_end(self, state):
        self.steps.append([p.detach().clone() for p in state.module.parameters()])

    def on_epoch_end(self, state):
        return None

    def on_train_end(self, state):
        pass


def _recorded_fit(monkeypatch, X, y, **params):
    import functools

    from skmtl import _base, _training
    from skmtl._hooks import TrainingObserver

    recorder = type("Recorder", (_StepRecorder, TrainingObserver), {})()
    monkeypatch.setattr(_base, "train", functools.partial(_training.train, observers=[recorder]))
    try:
        return fit(X, y, **params), recorder.steps
    finally:
        monkeypatch.undo()


@pytest.mark.parametrize("ema_epochs", [1.0, 0.5])
def test_ema_weights_are_the_hand_computed_average_of_the_steps(monkeypatch, data, ema_epochs):
    """The fitted weights (no validation rows) are the exponential moving average of the
    weights after each step, computed here in float64 from the recorded trajectory."""
    X, y = data
    params = {"batch_size": 64, "max_iter": 4, "early_stopping": False, "shuffle": True}
    plain, steps = _recorded_fit(monkeypatch, X, y, ema_epochs=None, **params)
    averaged, same_steps = _recorded_fit(monkeypatch, X, y, ema_epochs=ema_epochs, **params)
    # The average does not change training: the same trajectory, the same training loss.
    assert len(steps) == 4 * 7 and len(same_steps) == len(steps)
    for a, b in zip(steps, same_steps):
        assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert averaged.loss_curve_ == plain.loss_curve_
    n_batches = 7  # 400 rows in batches of 64
    average = [p.double() for p in steps[0]]
    for t, weights in enumerate(steps[1:], start=1):
        decay = min(1 - 1 / (ema_epochs * n_batches), (1 + t) / (10 + t))
        average = [a + (1 - decay) * (w.double() - a) for a, w in zip(average, weights)]
    for got, want, last in zip(averaged.module_.parameters(), average, steps[-1]):
        np.testing.assert_allclose(got.detach().double(), want, rtol=1e-5, atol=1e-6)
    assert not all(torch.equal(p.detach(), q) for p, q in zip(averaged.module_.parameters(), steps[-1]))
    assert all(torch.equal(p.detach(), q) for p, q in zip(plain.module_.parameters(), steps[-1]))


def test_early_stopping_scores_and_keeps_the_average(data):
    """Each epoch's validation score is the averaged weights', and the kept model is the
    best epoch's average: scored again after fit, it gives the best score."""
    from sklearn.metrics import log_loss

    X, y = data
    seen = {}

    def scoring(estimator, X_val, y_val):
        seen["rows"] = (X_val, y_val)
        proba = estimator.predict_proba(X_val)
        return -float(np.mean([log_loss(y_val[:, t], proba[t], labels=[0, 1]) for t in range(2)]))

    params = {"batch_size": 64, "max_iter": 8, "early_stopping": True,
              "validation_fraction": 0.25, "scoring": scoring}
    plain = fit(X, y, ema_epochs=None, **params)
    averaged = fit(X, y, ema_epochs=1.0, **params)
    n = len(averaged.loss_curve_)
    assert averaged.loss_curve_ == plain.loss_curve_[:n]  # the same training
    assert averaged.validation_scores_ != plain.validation_scores_[:n]  # other weights scored
    X_val, y_val = seen["rows"]
    assert scoring(averaged, X_val, y_val) == pytest.approx(averaged.best_validation_score_,
                                                             rel=1e-9)
    assert scoring(plain, X_val, y_val) != pytest.approx(averaged.best_validation_score_,
                                                          rel=1e-9)


def test_partial_fit_is_not_averaged(data):
    X, y = data
    a = MultiTaskClassifier(random_state=0, batch_size=64, ema_epochs=1.0).partial_fit(X, y)
    b = MultiTaskClassifier(random_state=0, batch_size=64, ema_epochs=None).partial_fit(X, y)
    for p, q in zip(a.predict_proba(X), b.predict_proba(X)):
        np.testing.assert_array_equal(p, q)


def test_an_ema_horizon_below_one_step_keeps_the_weights(data):
    """ema_epochs * n_batches < 1 would make the decay negative (extrapolation: the
    weights grew without bound); the average then is the weights themselves."""
    X, y = data
    params = {"batch_size": 50, "max_iter": 10, "early_stopping": False}
    plain = fit(X, y, ema_epochs=None, **params)
    for tiny in (0.05, 0.1, 1e-300):  # 8 batches: horizons of 0.4, 0.8 and ~0 steps
        short = fit(X, y, ema_epochs=tiny, **params)
        for p, q in zip(short.predict_proba(X), plain.predict_proba(X)):
            np.testing.assert_array_equal(p, q)
