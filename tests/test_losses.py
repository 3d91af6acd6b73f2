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


# ---------------------------------------------------------------- weights across mini-batches
def _weighted_run(weights, targets, class_weights=None):
    """A _TrainingRun of a one-feature logistic model on 4 rows, with its weight scale."""
    from skmtl._distributed import SingleProcess
    from skmtl._training import TensorData, TrainingConfig, _TrainingRun
    from skmtl.losses import MultiTaskObjective

    n_tasks = targets.shape[1]
    x = torch.tensor([[-1.0], [0.5], [1.5], [2.0]])
    module = torch.nn.Linear(1, n_tasks).double()

    class Model(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = module

        def forward(self, values):
            return list(self.linear(values.double()).T)

    model = Model()
    objective = MultiTaskObjective([1] * n_tasks, class_weights=class_weights)
    data = TensorData((x,), targets, torch.tensor(weights, dtype=torch.float32))
    config = TrainingConfig(max_iter=1, batch_size=2, learning_rate=0.0, shuffle=True,
                            n_iter_no_change=5, tol=0.0, objective=objective)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.0)
    run = _TrainingRun(model, data, None, config, optimizer, SingleProcess(), False, None)
    return run, model, data, objective


def _first_step_gradient(run, model, batch):
    run.step(model, run.optimizer, batch, None, None)
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def test_heavy_row_trains_as_its_copies_in_expectation_over_the_mini_batches():
    """Issue 12, item 3: weights [100, 1, 1, 1], batches of 2.

    The first step's gradient, averaged over every way of drawing its batch,
    equals the gradient of the plain mean loss on the rows repeated 100, 1, 1,
    1 times. Normalising inside each batch (sum w*l / sum w) gave about half
    the heavy row's gradient.
    """
    from itertools import combinations

    weights = [100.0, 1.0, 1.0, 1.0]
    targets = torch.tensor([[1, 0], [0, 1], [1, 1], [0, 0]])
    run, model, data, objective = _weighted_run(weights, targets)
    assert run.weight_scale is not None
    torch.testing.assert_close(run.weight_scale, torch.full((2,), 103 / 4))
    pairs = list(combinations(range(4), 2))
    gradients = [_first_step_gradient(run, model, data.take(torch.tensor(p))) for p in pairs]
    averaged = torch.stack(gradients).mean(dim=0)
    # The repeated rows, through the plain (unweighted) loss.
    repeat = torch.tensor([100, 1, 1, 1])
    model.zero_grad()
    logits = model(data.inputs[0].repeat_interleave(repeat, dim=0))
    total, _ = objective(logits, targets.repeat_interleave(repeat, dim=0))
    total.backward()
    expected = torch.cat([p.grad.flatten() for p in model.parameters()])
    torch.testing.assert_close(averaged, expected, rtol=1e-6, atol=1e-9)
    # What each batch's own total weight as divisor gave: the heavy row capped.
    capped = []
    for p in pairs:
        model.zero_grad()
        batch = data.take(torch.tensor(p))
        objective(model(*batch.inputs), batch.y, batch.sample_weight)[0].backward()
        capped.append(torch.cat([q.grad.flatten() for q in model.parameters()]))
    assert not torch.allclose(torch.stack(capped).mean(dim=0), expected, rtol=0.05)


def test_two_weighted_batches_average_to_the_full_weighted_loss():
    """With every label known, the batches of any partition average to the full-data loss."""
    from skmtl.losses import MultiTaskObjective

    z = [torch.tensor([0.3, -1.2, 2.0, 0.1], dtype=torch.float64)]
    targets = torch.tensor([[1], [0], [1], [0]])
    w = torch.tensor([100.0, 1.0, 1.0, 1.0])
    objective = MultiTaskObjective([1])
    full, _ = objective(z, targets, w)
    expected = np.sum(w.numpy() * _bce(z[0].numpy(), targets[:, 0].numpy())) / 103
    np.testing.assert_allclose(full.item(), expected, rtol=1e-12)
    scale = torch.tensor([103 / 4])
    for first in ([0, 1], [0, 2], [0, 3]):
        second = [i for i in range(4) if i not in first]
        parts = [
            objective([z[0][rows]], targets[rows], w[rows], weight_scale=scale)[0]
            for rows in (first, second)
        ]
        np.testing.assert_allclose(((parts[0] + parts[1]) / 2).item(), expected, rtol=1e-6)
    # Dividing by each batch's own weight: 0.5497 against 0.4938 in the case.
    own = [objective([z[0][r]], targets[r], w[r])[0] for r in ([0, 1], [2, 3])]
    assert abs(((own[0] + own[1]) / 2).item() - expected) > 0.01


def test_weight_scale_is_the_mean_known_label_weight_with_class_weights():
    """Unknown labels do not count; class weights multiply the sample weights."""
    targets = torch.tensor([[1, -1], [0, 1], [1, 1], [-1, 0]])
    cw = [torch.tensor([1.0, 3.0]), None]
    run, *_ = _weighted_run([2.0, 1.0, 1.0, 4.0], targets, class_weights=cw)
    # task 0: rows 0-2, weights 2*3, 1*1, 1*3 -> 10/3; task 1: rows 1-3, 1, 1, 4 -> 2.
    torch.testing.assert_close(run.weight_scale, torch.tensor([10 / 3, 2.0]))


def test_equal_weights_keep_each_batch_own_normalisation():
    """Unweighted (or equally weighted) fits take the unchanged path: no weight scale."""
    targets = torch.tensor([[1, -1], [0, 1], [1, 1], [-1, 0]])
    for weights in ([1.0] * 4, [2.5] * 4):
        run, *_ = _weighted_run(weights, targets)
        assert run.weight_scale is None
