"""The masked, weighted multi-task loss against hand computations."""

import numpy as np
import pytest
import torch

from skmtl.losses import multitask_loss, task_losses


def _bce(z, y):
    p = 1 / (1 + np.exp(-z))
    return -(y * np.log(p) + (1 - y) * np.log(1 - p))


def _ce(z, y):
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -logp[np.arange(len(y)), y]


def test_loss_equals_hand_computation():
    binary = np.array([0.3, -1.2, 2.0, 0.0])
    multi = np.array([[0.1, 0.5, -0.3], [1.0, 0.0, 0.0], [-0.2, 0.4, 2.0], [0.0, 0.0, 0.0]])
    targets = np.array([[1, 2], [0, -1], [-1, 0], [1, 1]])
    sw = np.array([1.0, 2.0, 0.5, 1.5])
    cw = [np.array([1.0, 3.0]), np.array([1.0, 2.0, 0.5])]
    task_w = np.array([0.7, 2.0])

    # Hand computation: per task sum(w*l)/sum(w) over known rows.
    known0 = targets[:, 0] >= 0
    w0 = sw[known0] * cw[0][targets[known0, 0]]
    l0 = (w0 * _bce(binary[known0], targets[known0, 0])).sum() / w0.sum()
    known1 = targets[:, 1] >= 0
    w1 = sw[known1] * cw[1][targets[known1, 1]]
    l1 = (w1 * _ce(multi[known1], targets[known1, 1])).sum() / w1.sum()
    expected_total = 0.7 * l0 + 2.0 * l1

    total, losses = multitask_loss(
        [torch.tensor(binary), torch.tensor(multi)],
        torch.tensor(targets),
        task_weights=torch.tensor(task_w),
        sample_weight=torch.tensor(sw),
        class_weights=[torch.tensor(c) for c in cw],
    )
    np.testing.assert_allclose(losses.numpy(), [l0, l1], rtol=1e-12)
    assert total.item() == pytest.approx(expected_total, rel=1e-12)


def test_masked_labels_do_not_change_the_loss():
    rng = np.random.RandomState(0)
    logits = torch.tensor(rng.normal(size=6))
    targets = torch.tensor([[1], [0], [-1], [1], [-1], [0]])
    loss, _ = task_losses([logits], targets)
    # Whatever the model says on masked rows, the loss is the same ...
    changed = logits.clone()
    changed[[2, 4]] = torch.tensor([50.0, -50.0], dtype=changed.dtype)
    loss_changed, _ = task_losses([changed], targets)
    assert loss_changed.item() == loss.item()
    # ... and equals the mean over known rows only.
    keep = [0, 1, 3, 5]
    expected = _bce(logits.numpy()[keep], targets.numpy()[keep, 0]).mean()
    assert loss.item() == pytest.approx(expected, rel=1e-12)


def test_task_without_known_label_contributes_zero_not_nan():
    logits = [torch.zeros(3, requires_grad=True), torch.zeros(3, requires_grad=True)]
    targets = torch.tensor([[1, -1], [0, -1], [1, -1]])
    total, losses = multitask_loss(logits, targets)
    assert losses[1].item() == 0.0
    assert total.item() == pytest.approx(np.log(2))
    total.backward()
    assert torch.all(logits[1].grad == 0)
    assert torch.isfinite(logits[0].grad).all()


def test_zero_sample_weights_contribute_zero():
    logits = [torch.tensor([0.5, -0.5])]
    targets = torch.tensor([[1], [0]])
    losses, weights = task_losses(logits, targets, sample_weight=torch.tensor([0.0, 0.0]))
    assert losses.item() == 0.0 and weights.item() == 0.0


def test_batched_binary_path_equals_the_per_task_computation():
    rng = np.random.RandomState(1)
    z = [torch.tensor(rng.normal(size=20) * 3), torch.tensor(rng.normal(size=20) * 3)]
    targets = torch.tensor(rng.randint(-1, 2, size=(20, 2)))
    sw = torch.tensor(rng.rand(20))
    cw = [torch.tensor([1.0, 4.0], dtype=torch.float64), None]
    batched, totals = task_losses(z, targets, sw, cw)
    # (log p, log(1 - p)) pairs take the general per-task path.
    pairs = [(-torch.nn.functional.softplus(-a), -torch.nn.functional.softplus(a)) for a in z]
    general, general_totals = task_losses(pairs, targets, sw, cw)
    torch.testing.assert_close(batched, general, rtol=1e-12, atol=0)
    torch.testing.assert_close(totals, general_totals, rtol=1e-12, atol=0)


def test_fast_path_of_unweighted_binary_tasks_equals_the_masked_weighted_loss():
    """The training loop's plain-mean path gives the general path's losses and gradients."""
    from skmtl.losses import MultiTaskObjective

    generator = torch.Generator().manual_seed(0)
    logits = [torch.randn(37, generator=generator, requires_grad=True) for _ in range(3)]
    targets = torch.randint(0, 2, (37, 3), generator=generator)
    weights = torch.tensor([1.0, 0.5, 2.0])
    for task_weights in (None, weights):
        objective = MultiTaskObjective([1, 1, 1], task_weights=task_weights)
        assert objective.plain_binary()
        total, losses = objective(logits, targets, torch.full((37,), 3.0))
        expected_grads = torch.autograd.grad(total, logits)
        fast_total, fast_losses = objective.mean_binary_losses(logits, targets.T.float())
        grads = torch.autograd.grad(fast_total, logits)
        torch.testing.assert_close(fast_total, total, rtol=1e-6, atol=0)
        torch.testing.assert_close(fast_losses, losses, rtol=1e-6, atol=0)
        for got, expected in zip(grads, expected_grads):
            torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-9)
    assert not MultiTaskObjective([1, 3]).plain_binary()
    assert not MultiTaskObjective([1, 1], funnel=[0, 1]).plain_binary()
    assert not MultiTaskObjective([1, 1], class_weights=[None, torch.ones(2)]).plain_binary()


def test_fit_takes_the_fast_path_only_where_it_gives_the_same_training(monkeypatch):
    """A fit through the fast path matches the same fit through the masked, weighted path."""
    from skmtl import MultiTaskClassifier
    from skmtl.datasets import make_multitask_classification
    from skmtl.losses import MultiTaskObjective

    X, y = make_multitask_classification(n_samples=600, random_state=0)[:2]
    params = dict(max_iter=4, random_state=0, early_stopping=False, batch_size=64)
    calls = []
    original = MultiTaskObjective.mean_binary_losses

    def counting(self, *args):
        calls.append(1)
        return original(self, *args)

    monkeypatch.setattr(MultiTaskObjective, "mean_binary_losses", counting)
    fast = MultiTaskClassifier(**params).fit(X, y)
    assert len(calls) == 4 * 10  # every batch of every epoch
    calls.clear()
    y_missing = np.asarray(y, dtype=float).copy()
    y_missing[0, 0] = np.nan  # one unknown label: the general path
    MultiTaskClassifier(**params).fit(X, y_missing)
    assert not calls
    monkeypatch.setattr(MultiTaskObjective, "plain_binary", lambda self: False)
    general = MultiTaskClassifier(**params).fit(X, y)
    assert not calls
    np.testing.assert_allclose(fast.loss_curve_, general.loss_curve_, rtol=1e-5)
    for p_fast, p_general in zip(fast.predict_proba(X), general.predict_proba(X)):
        np.testing.assert_allclose(p_fast, p_general, atol=1e-5)
