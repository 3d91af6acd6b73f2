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
