"""Masked, weighted multi-task cross-entropy on logits.

Conventions (shared by training, validation and the tests):

- ``targets`` is an int64 tensor ``(B, T)`` of class indices; ``-1`` marks an
  unknown label, which is left out of that task's loss only.
- Each task's loss is the weighted mean over its known labels,
  ``sum_i(w_i * l_i) / sum_i(w_i)`` with ``w_i = sample_weight_i *
  class_weight_t[y_i]``; a task with no known label in the batch contributes
  exactly zero (never NaN).
- The total is ``sum_t task_weight_t * loss_t``: a task's weight scales that
  task's gradient and nothing else.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch.nn import functional as F


def task_losses(
    logits: Sequence[torch.Tensor],
    targets: torch.Tensor,
    sample_weight: torch.Tensor | None = None,
    class_weights: Sequence[torch.Tensor | None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-task weighted mean cross-entropy and per-task total weight.

    Parameters
    ----------
    logits : sequence of Tensor
        One tensor per task: ``(B,)`` for a binary task (the logit of class
        1), ``(B, K)`` for a task with ``K`` classes.
    targets : Tensor of shape (B, T), int64
        Class indices, ``-1`` where the label is unknown.
    sample_weight : Tensor of shape (B,), optional
        Non-negative weight of each row.
    class_weights : sequence of (Tensor of shape (K_t,) or None), optional
        Per-task weight of each class.

    Returns
    -------
    losses : Tensor of shape (T,)
        Weighted mean loss of each task (0 where a task has no known label).
    weights : Tensor of shape (T,)
        Sum of the weights behind each task's mean (its denominator).
    """
    losses = []
    weights = []
    for t, task_logits in enumerate(logits):
        y = targets[:, t]
        known = y >= 0
        y_safe = y.clamp(min=0)
        if task_logits.dim() == 1:
            per_row = F.binary_cross_entropy_with_logits(
                task_logits, y_safe.to(task_logits.dtype), reduction="none"
            )
        else:
            per_row = F.cross_entropy(task_logits, y_safe, reduction="none")
        w = known.to(per_row.dtype)
        if sample_weight is not None:
            w = w * sample_weight
        if class_weights is not None and class_weights[t] is not None:
            w = w * class_weights[t][y_safe]
        total = w.sum()
        # sum(w * l) / sum(w); an all-zero weight gives 0 / tiny = 0, never NaN.
        losses.append((w * per_row).sum() / total.clamp_min(torch.finfo(per_row.dtype).tiny))
        weights.append(total)
    return torch.stack(losses), torch.stack(weights)


def multitask_loss(
    logits: Sequence[torch.Tensor],
    targets: torch.Tensor,
    *,
    task_weights: torch.Tensor | None = None,
    sample_weight: torch.Tensor | None = None,
    class_weights: Sequence[torch.Tensor | None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Total training loss ``sum_t task_weights[t] * loss_t``.

    Parameters are those of :func:`task_losses`, plus ``task_weights`` of shape
    ``(T,)`` (all ones when None).

    Returns
    -------
    total : Tensor (scalar)
        The loss to minimise.
    losses : Tensor of shape (T,)
        Each task's unweighted-by-task mean loss (for logging).
    """
    losses, _ = task_losses(logits, targets, sample_weight, class_weights)
    total = losses.sum() if task_weights is None else (task_weights * losses).sum()
    return total, losses
