"""User-defined architectures: their outputs are checked, and what cannot be saved is refused.

Found by a review of the extension points (2026-11-30): a module returning a wrong shape
trained silently (an extra logit gave a 3-class task 4 probability columns) or failed in
the loss with a torch error; a lambda architecture was saved, and any other lambda of the
same module loaded in its place.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from skmtl import MultiTaskClassifier, MultiTaskRegressor, save_model
from skmtl.nn.architectures import check_module_outputs


class _Heads(torch.nn.Module):
    """One linear head per task, with ``extra`` more logits than asked (and other faults)."""

    def __init__(self, in_features, n_outputs, extra=0, fault=None):
        super().__init__()
        self.fault = fault
        self.heads = torch.nn.ModuleList(torch.nn.Linear(in_features, k + extra) for k in n_outputs)

    def forward(self, x):
        outputs = [h(x) for h in self.heads]
        outputs = [o.squeeze(-1) if o.shape[-1] == 1 else o for o in outputs]
        if self.fault == "unsqueezed":
            return [o.unsqueeze(-1) if o.dim() == 1 else o for o in outputs]
        if self.fault == "too_many":
            return [*outputs, outputs[0]]
        return outputs


def _data(n=120, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 4))
    y = np.column_stack([X[:, 0] > 0, np.digitize(X[:, 1], [-0.5, 0.5])]).astype(int)
    return X, y


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda i, n: _Heads(i, n, extra=1), r"returned \(2, 2\) for task 'task_0'"),
        (lambda i, n: _Heads(i, n, fault="unsqueezed"), r"returned \(2, 1\) for task 'task_0'"),
        (lambda i, n: _Heads(i, n, fault="too_many"), "returned list of 3"),
    ],
)
@pytest.mark.parametrize("estimator", [MultiTaskClassifier, MultiTaskRegressor])
def test_outputs_that_do_not_match_the_tasks_are_refused(estimator, make, match):
    X, y = _data()
    targets = y.astype(float) if estimator is MultiTaskRegressor else y
    with pytest.raises(ValueError, match=match):
        estimator(architecture=make, max_iter=1, random_state=0).fit(X, targets)


def test_a_matching_module_trains_and_a_probe_leaves_it_in_training_mode():
    X, y = _data()
    clf = MultiTaskClassifier(architecture=_Heads, max_iter=2, random_state=0).fit(X, y)
    assert [p.shape for p in clf.predict_proba(X)] == [(120, 2), (120, 3)]
    # The probe itself: eval mode and no gradients, then the module's own mode back, and
    # BatchNorm's running statistics untouched.
    network = torch.nn.Sequential(torch.nn.BatchNorm1d(4), _Heads(4, [1, 3]))
    network.train()
    before = network[0].running_mean.clone()
    check_module_outputs(network, [torch.randn(2, 4) * 5 + 3], [1, 3], ["a", "b"])
    assert network.training and torch.equal(network[0].running_mean, before)
    assert network[0].num_batches_tracked.item() == 0


def test_a_lambda_architecture_cannot_be_saved(tmp_path):
    X, y = _data()
    clf = MultiTaskClassifier(architecture=lambda i, n: _Heads(i, n), max_iter=1, random_state=0)
    clf.fit(X, y)
    with pytest.raises(TypeError, match="lambda or is defined inside a function"):
        save_model(clf, tmp_path / "model")


class _NumpyGates(_Heads):
    def gate_weights(self, x):
        return np.full((x.shape[0], 1, 2), 0.5)  # not a tensor


def test_gate_weights_of_the_wrong_kind_are_named():
    X, y = _data()
    clf = MultiTaskClassifier(architecture=_NumpyGates, max_iter=1, random_state=0).fit(X, y)
    with pytest.raises(ValueError, match=r"gate_weights returned .*expected a tensor of shape"):
        clf.gate_weights(X)
