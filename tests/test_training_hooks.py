"""The training loop's extension points (skmtl/_hooks.py): observers and the backward step.

The estimator does not expose them yet, so these tests give them to ``train``
by replacing the function the estimator calls.
"""

import copy
import functools
import warnings

import numpy as np
import pytest
import torch
from sklearn.exceptions import ConvergenceWarning

from skmtl import MultiTaskClassifier, _base, _training
from skmtl._hooks import TrainingObserver, backward_total
from skmtl.datasets import make_multitask_classification

# 600 rows in batches of 64: 9 full batches and one of 24 per epoch.
PARAMS = {
    "architecture": "mmoe", "batch_size": 64, "random_state": 0, "n_iter_no_change": 100,
    "expert_layer_sizes": (8,), "tower_layer_sizes": (4,),
}
N_BATCHES = 10


@pytest.fixture(scope="module")
def data():
    X, y = make_multitask_classification(n_samples=600, n_features=6, random_state=0)[:2]
    return X, y


def fit(monkeypatch, X, y, params=None, **hooks):
    """``MultiTaskClassifier(**PARAMS, **params).fit(X, y)`` with ``hooks`` passed to ``train``."""
    if hooks:
        monkeypatch.setattr(_base, "train", functools.partial(_training.train, **hooks))
    try:
        return MultiTaskClassifier(**{**PARAMS, **(params or {})}).fit(X, y)
    finally:
        monkeypatch.undo()


class Recorder(TrainingObserver):
    """Writes down every call and what the state held then."""

    def __init__(self):
        self.events = []

    def on_train_begin(self, state):
        self.events.append(("train_begin", state.epoch))

    def on_epoch_begin(self, state):
        self.events.append(("epoch_begin", state.epoch))

    def on_batch_end(self, state):
        self.events.append((
            "batch_end", state.epoch, state.batch, float(state.batch_loss),
            state.batch_task_losses.numpy().copy(),
        ))

    def on_epoch_end(self, state):
        self.events.append((
            "epoch_end", state.epoch, state.loss, state.task_losses.copy(),
            state.validation_score, state.improved, state.module.training,
        ))

    def on_train_end(self, state):
        self.events.append(("train_end", state.epoch, state.module.training))

    def calls(self):
        return [event[:2] if event[0] != "batch_end" else event[:3] for event in self.events]

    def of(self, kind):
        return [event for event in self.events if event[0] == kind]


def test_observer_is_called_per_epoch_and_batch_with_the_fitted_losses(monkeypatch, data):
    recorder = Recorder()
    clf = fit(monkeypatch, *data, {"max_iter": 3, "early_stopping": False}, observers=[recorder])

    expected = [("train_begin", 0)]
    for epoch in (1, 2, 3):
        expected += [("epoch_begin", epoch)]
        expected += [("batch_end", epoch, batch) for batch in range(1, N_BATCHES + 1)]
        expected += [("epoch_end", epoch)]
    expected += [("train_end", 3)]
    assert recorder.calls() == expected

    epoch_ends = recorder.of("epoch_end")
    assert [loss for _, _, loss, *_ in epoch_ends] == clf.loss_curve_
    np.testing.assert_array_equal(
        np.vstack([task_losses for *_, task_losses, _, _, _ in epoch_ends]), clf.task_loss_curves_
    )
    assert all(score is None for *_, score, _, _ in epoch_ends)
    # The training loss falls here, so every epoch beats the best so far.
    assert [improved for *_, improved, _ in epoch_ends] == [True, True, True]
    assert all(training for *_, training in epoch_ends)
    assert recorder.of("train_end") == [("train_end", 3, False)]  # eval mode, as returned

    # An epoch's loss is the row-weighted mean of its batches' losses.
    sizes = np.array([64] * 9 + [24])
    for epoch in (1, 2, 3):
        batches = [event for event in recorder.of("batch_end") if event[1] == epoch]
        batch_losses = np.array([loss for _, _, _, loss, _ in batches])
        task_losses = np.vstack([tasks for *_, tasks in batches])
        np.testing.assert_allclose(sizes @ batch_losses / 600, clf.loss_curve_[epoch - 1], rtol=1e-5)
        np.testing.assert_allclose(
            sizes @ task_losses / 600, clf.task_loss_curves_[epoch - 1], rtol=1e-5
        )
        np.testing.assert_allclose(task_losses.sum(axis=1), batch_losses, rtol=1e-5)


def test_observer_sees_the_validation_scores(monkeypatch, data):
    recorder = Recorder()
    clf = fit(
        monkeypatch, *data, {"max_iter": 6, "early_stopping": True, "tol": 0.01},
        observers=[recorder],
    )
    epoch_ends = recorder.of("epoch_end")
    assert len(epoch_ends) == clf.n_iter_ == 6
    scores = [score for *_, score, _, _ in epoch_ends]
    assert scores == clf.validation_scores_
    # Improved: beat the best score so far by more than tol (here some epochs do, some not).
    best_before = np.maximum.accumulate([-np.inf, *scores])[:-1]
    expected = list(np.array(scores) > best_before + 0.01)
    assert True in expected and False in expected
    assert [improved for *_, improved, _ in epoch_ends] == expected


@pytest.mark.parametrize("scoring", ["loss", "mean_roc_auc"])
def test_observer_sees_the_validation_loss_and_the_score(monkeypatch, data, scoring):
    class Seen(TrainingObserver):
        def __init__(self):
            self.seen = []

        def on_train_begin(self, state):
            self.names = state.monitor, state.score_name

        def on_epoch_end(self, state):
            self.seen.append((state.validation_loss, state.validation_score))

    seen = Seen()
    clf = fit(
        monkeypatch, *data,
        {"max_iter": 3, "early_stopping": True, "scoring": scoring, "n_iter_no_change": 5},
        observers=[seen],
    )
    losses, scores = (list(values) for values in zip(*seen.seen))
    assert scores == clf.validation_scores_
    if scoring == "loss":
        assert seen.names == ("validation loss", None) and scores == [-v for v in losses]
    else:
        assert seen.names == ("validation mean_roc_auc", "mean_roc_auc")
        assert all(0.5 < s <= 1 for s in scores) and all(v > 0 for v in losses)
    # The loss is the same whatever the scoring.
    plain = fit(monkeypatch, *data, {"max_iter": 3, "early_stopping": True, "n_iter_no_change": 5})
    assert [-s for s in plain.validation_scores_] == losses


class StopAt(TrainingObserver):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, state):
        return state.epoch == self.epoch


@pytest.mark.parametrize("early_stopping", [False, True])
def test_an_observer_stops_training(monkeypatch, data, early_stopping):
    params = {"max_iter": 8, "early_stopping": early_stopping}
    recorder = Recorder()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)  # stopped, not out of epochs
        clf = fit(monkeypatch, *data, params, observers=[StopAt(3), recorder])
    assert clf.n_iter_ == 3
    assert len(clf.loss_curve_) == 3
    assert recorder.calls()[-2:] == [("epoch_end", 3), ("train_end", 3)]  # seen by the others too

    # The same model as a fit that ran out of epochs there (best weights restored alike).
    with pytest.warns(ConvergenceWarning):
        three = fit(monkeypatch, *data, {**params, "max_iter": 3})
    assert clf.loss_curve_ == three.loss_curve_
    for name, value in three.module_.state_dict().items():
        assert torch.equal(clf.module_.state_dict()[name], value), name


def backward_first_task(total, task_losses, *, module, gradient_scale):
    """A test-only backward step: task 0's loss alone."""
    (task_losses[0] * gradient_scale).backward()


class TowerGradients(TrainingObserver):
    """Per batch, the summed |gradient| of each task's tower (and head); its initial weights."""

    def __init__(self):
        self.sums = []  # (batch, task)
        self.initial = None

    def on_train_begin(self, state):
        self.initial = copy.deepcopy(state.module.body.towers.state_dict())

    def on_batch_end(self, state):
        towers = state.module.body.towers
        grads = [p.grad for p in towers.parameters()]  # stacked: task first
        self.sums.append([sum(float(g[t].abs().sum()) for g in grads) for t in range(2)])


def test_a_replaced_backward_step_trains_only_the_chosen_task(monkeypatch, data):
    params = {"max_iter": 2, "early_stopping": False}
    default, only_first = TowerGradients(), TowerGradients()
    clf_default = fit(monkeypatch, *data, params, observers=[default])
    clf = fit(monkeypatch, *data, params, observers=[only_first], backward=backward_first_task)

    default_sums, sums = np.array(default.sums), np.array(only_first.sums)
    assert default_sums.shape == sums.shape == (2 * N_BATCHES, 2)
    assert (default_sums > 0).all()
    assert (sums[:, 0] > 0).all()
    assert (sums[:, 1] == 0).all()
    # With no gradient (and alpha=0) Adam leaves task 1's tower where it started.
    towers = clf.module_.body.towers.state_dict()
    for name, initial in only_first.initial.items():
        assert torch.equal(towers[name][1], initial[1]), name
        assert not torch.equal(towers[name][0], initial[0]), name
    assert not np.allclose(clf.task_loss_curves_[:, 0], clf_default.task_loss_curves_[:, 0])
    assert clf.task_loss_curves_[-1, 1] > clf_default.task_loss_curves_[-1, 1]


class DoesNothingPerBatch(TrainingObserver):
    def on_batch_end(self, state):
        pass


@pytest.mark.parametrize("early_stopping", [False, True])
def test_the_default_backward_step_passed_explicitly_gives_the_same_bits(
    monkeypatch, data, early_stopping
):
    params = {"max_iter": 3, "early_stopping": early_stopping, "dropout": 0.2}
    plain = fit(monkeypatch, *data, params)
    hooked = fit(
        monkeypatch, *data, params, observers=[DoesNothingPerBatch()], backward=backward_total
    )
    assert hooked.loss_curve_ == plain.loss_curve_
    assert hooked.validation_scores_ == plain.validation_scores_
    for name, value in plain.module_.state_dict().items():
        assert torch.equal(hooked.module_.state_dict()[name], value), name
    first = [state["exp_avg"] for state in plain.optimizer_.state.values()]
    second = [state["exp_avg"] for state in hooked.optimizer_.state.values()]
    assert all(torch.equal(a, b) for a, b in zip(first, second, strict=True))


def test_observers_hear_the_end_of_a_failed_training(monkeypatch, data):
    def failing_backward(total, task_losses, *, module, gradient_scale):
        raise RuntimeError("boom")

    recorder = Recorder()
    with pytest.raises(RuntimeError, match="boom"):
        fit(monkeypatch, *data, {"max_iter": 2}, observers=[recorder], backward=failing_backward)
    assert recorder.calls() == [("train_begin", 0), ("epoch_begin", 1), ("train_end", 1)]


def test_an_observer_stopping_on_the_last_epoch_is_no_convergence_failure(monkeypatch, data):
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf = fit(monkeypatch, *data, {"max_iter": 3}, observers=[StopAt(3)])
    assert clf.n_iter_ == 3
