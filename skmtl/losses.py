"""Masked, weighted multi-task cross-entropy on logits, and funnel (ESMM) losses.

Conventions (shared by training, validation and the tests):

- ``targets`` is an int64 tensor ``(B, T)`` of class indices; ``-1`` marks an
  unknown label, which is left out of that task's loss only.
- Each task's loss is the weighted mean over its known labels,
  ``sum_i(w_i * l_i) / sum_i(w_i)`` with ``w_i = sample_weight_i *
  class_weight_t[y_i]``; a task with no known label in the batch contributes
  exactly zero (never NaN).
- In training, where the weights differ between rows, a mini-batch's sum is
  divided instead by ``k_b * s_t``: the batch's number of known labels of the
  task times ``s_t``, the task's mean weight over the known labels of all
  training rows (``weight_scale``). Dividing by the batch's own total weight
  would cap a heavy row's influence at its batch's share; with the global
  mean the expected batch loss is the full data's weighted mean, so weighting
  a row by ``k`` trains as ``k`` copies of it would, in expectation. With equal
  weights both are the same, and the plain path is used.
- The total is ``sum_t task_weight_t * loss_t``: a task's weight scales that
  task's gradient and nothing else.

Funnels (click -> conversion -> ...): the labels of funnel step ``k`` are
given over the whole impression space, ``Y_k = y_1 * ... * y_k``. In ESMM mode
(Ma et al., "Entire Space Multi-Task Model", SIGIR 2018) the model's heads give
the conditional logits ``a_j`` of each step and ``P(reach k) = prod_{j<=k}
sigmoid(a_j)``; the loss of step ``k`` is the cross-entropy of that product
against ``Y_k`` on all rows, computed in log space (:func:`chain_log_probs`).
In independent mode each head predicts ``P(reach k)`` directly and an optional
penalty ``mean(relu(p_k - p_{k-1}))`` discourages violations of the funnel.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch.nn import functional as F

_LOG_HALF = -math.log(2.0)

LogProbs = tuple[torch.Tensor, torch.Tensor]
"""``(log p, log(1 - p))`` of a binary event, each of shape (B,)."""


def chain_log_probs(logits: Sequence[torch.Tensor]) -> list[LogProbs]:
    """Log-probabilities of reaching each step of a chain of conditional events.

    For conditional logits ``a_1..a_K`` (``P(step j | step j-1) =
    sigmoid(a_j)``), returns for every ``k`` the pair ``(log P_k, log(1 -
    P_k))`` with ``P_k = prod_{j<=k} sigmoid(a_j)``, computed stably:

    - ``log P_k = -sum_{j<=k} softplus(-a_j)``;
    - ``1 - P_k`` is the probability of leaving the chain at some step
      ``j <= k``, a sum of disjoint events:
      ``1 - P_k = sum_{j<=k} P_{j-1} (1 - sigmoid(a_j))``, so
      ``log(1 - P_k) = logsumexp_j(log P_{j-1} - softplus(a_j))``: no
      cancellation, accurate whenever ``P_k > 1/2``;
    - where ``P_k <= 1/2``, ``log(1 - P_k) = log1p(-exp(log P_k))``, which
      keeps full relative precision as ``P_k`` goes to 0 (the sum above
      rounds to 1 there, e.g. for ``pCTCVR ~ 1e-7`` in float32).

    Unlike ``log1p(-exp(log P_k))`` alone this stays finite, with finite
    gradients, for float32 logits of any size (tested up to +-200), and both
    outputs and their gradients match a high-precision reference to a few
    float32 ulps.

    Parameters
    ----------
    logits : sequence of Tensor of shape (B,)
        Conditional logits of the steps, in funnel order.

    Returns
    -------
    log_probs : list of (Tensor, Tensor)
        ``(log P_k, log(1 - P_k))`` for each step ``k``.
    """
    out: list[LogProbs] = []
    log_p = torch.zeros_like(logits[0])  # log P_{k-1}, the probability of reaching step k-1
    exits: list[torch.Tensor] = []  # log P(reach step j-1, then fail step j), j <= k
    for a in logits:
        exits.append(log_p - F.softplus(a))
        log_p = log_p - F.softplus(-a)
        log_q_exits = torch.logsumexp(torch.stack(exits), dim=0)
        # The clamp keeps the unused branch finite (and its gradient zero) where P_k > 1/2.
        log_q_small_p = torch.log1p(-torch.exp(log_p.clamp(max=_LOG_HALF)))
        out.append((log_p, torch.where(log_p < _LOG_HALF, log_q_small_p, log_q_exits)))
    return out


def _row_losses(output: torch.Tensor | LogProbs, y: torch.Tensor) -> torch.Tensor:
    """Per-row cross-entropy of one task; ``y`` holds valid class indices."""
    if isinstance(output, tuple):
        log_p, log_q = output
        y = y.to(log_p.dtype)
        return -(y * log_p + (1.0 - y) * log_q)
    if output.dim() == 1:
        return F.binary_cross_entropy_with_logits(output, y.to(output.dtype), reduction="none")
    return F.cross_entropy(output, y, reduction="none")


def task_losses(
    outputs: Sequence[torch.Tensor | LogProbs],
    targets: torch.Tensor,
    sample_weight: torch.Tensor | None = None,
    class_weights: Sequence[torch.Tensor | None] | None = None,
    denominators: torch.Tensor | None = None,
    weight_scale: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-task weighted mean cross-entropy and per-task total weight.

    Parameters
    ----------
    outputs : sequence of Tensor or (Tensor, Tensor)
        One entry per task: ``(B,)`` logits of a binary task (the logit of
        class 1), ``(B, K)`` logits of a task with ``K`` classes, or a pair
        ``(log p, log(1 - p))`` of a binary task.
    targets : Tensor of shape (B, T), int64
        Class indices, ``-1`` where the label is unknown.
    sample_weight : Tensor of shape (B,), optional
        Non-negative weight of each row.
    class_weights : sequence of (Tensor of shape (K_t,) or None), optional
        Per-task weight of each class.
    denominators : Tensor of shape (T,), optional
        Divide each task's weighted loss sum by this instead of by this
        batch's total weight: in data-parallel training, the total weight of
        the whole global batch (all processes' parts), so that the processes'
        losses add up to the global batch's loss.
    weight_scale : Tensor of shape (T,), optional
        Each task's mean label weight over all training rows (see
        :meth:`MultiTaskObjective.label_weight_sums`); when given (and
        ``denominators`` is not), each task's weighted loss sum is divided by
        the batch's number of known labels times this, not by the batch's
        total weight.

    Returns
    -------
    losses : Tensor of shape (T,)
        Weighted mean loss of each task (0 where a task has no known label).
    weights : Tensor of shape (T,)
        Sum of this batch's weights behind each task's mean.
    """
    if denominators is None and weight_scale is not None:
        denominators = (targets >= 0).sum(dim=0) * weight_scale
    if all(torch.is_tensor(o) and o.dim() == 1 for o in outputs):
        return _binary_task_losses(outputs, targets, sample_weight, class_weights, denominators)
    first = outputs[0][0] if isinstance(outputs[0], tuple) else outputs[0]
    row_weights = label_weights(targets, sample_weight, class_weights, first.dtype)
    losses = []
    weights = []
    for t, output in enumerate(outputs):
        per_row = _row_losses(output, targets[:, t].clamp(min=0))
        w = row_weights[:, t].to(per_row.dtype)
        total = w.sum()
        divisor = total if denominators is None else denominators[t].to(per_row.dtype)
        # sum(w * l) / sum(w); an all-zero weight gives 0 / 1 = 0 (a tiny divisor would make
        # the gradient of a task weight of 4 overflow: 0 * inf = NaN)
        losses.append((w * per_row).sum() / _nonzero(divisor))
        weights.append(total)
    return torch.stack(losses), torch.stack(weights)


def label_weights(
    targets: torch.Tensor,
    sample_weight: torch.Tensor | None = None,
    class_weights: Sequence[torch.Tensor | None] | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Weight of each row in each task's mean, ``(B, T)``.

    ``sample_weight[i] * class_weights[t][y_it]`` where the label is known,
    0 where it is unknown (``-1``).
    """
    weights = (targets >= 0).to(dtype)
    if sample_weight is not None:
        weights = weights * sample_weight.unsqueeze(1)
    if class_weights is not None:
        safe = targets.clamp(min=0)
        for t, table in enumerate(class_weights):
            if table is not None:
                weights[:, t] = weights[:, t] * table.to(dtype)[safe[:, t]]
    return weights


def _binary_task_losses(logits, targets, sample_weight, class_weights, denominators=None):
    """:func:`task_losses` for binary logits only, all tasks in one batched computation."""
    z = torch.stack(list(logits))  # (T, B)
    y_safe = targets.T.clamp(min=0)  # (T, B)
    per_row = F.binary_cross_entropy_with_logits(z, y_safe.to(z.dtype), reduction="none")
    w = label_weights(targets, sample_weight, class_weights, z.dtype).T  # (T, B)
    totals = w.sum(dim=1)
    divisor = totals if denominators is None else denominators.to(z.dtype)
    losses = (w * per_row).sum(dim=1) / _nonzero(divisor)
    return losses, totals


def _nonzero(divisor: torch.Tensor) -> torch.Tensor:
    """``divisor`` with its zeros (no known label in the batch) replaced by 1.

    Weights are never negative (sample weights and class weights are checked),
    so a divisor is positive or 0.
    """
    return torch.where(divisor > 0, divisor, torch.ones_like(divisor))


def multitask_loss(
    logits: Sequence[torch.Tensor],
    targets: torch.Tensor,
    *,
    task_weights: torch.Tensor | None = None,
    sample_weight: torch.Tensor | None = None,
    class_weights: Sequence[torch.Tensor | None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Total training loss ``sum_t task_weights[t] * loss_t`` of independent tasks.

    Parameters are those of :func:`task_losses`, plus ``task_weights`` of shape
    ``(T,)`` (all ones when None).

    Returns
    -------
    total : Tensor (scalar)
        The loss to minimise.
    losses : Tensor of shape (T,)
        Each task's mean loss (before task weights).
    """
    losses, _ = task_losses(logits, targets, sample_weight, class_weights)
    total = losses.sum() if task_weights is None else (task_weights * losses).sum()
    return total, losses


def consecutive_batch_sums(weights: torch.Tensor, batch_size: int, n_batches: int) -> torch.Tensor:
    """``(n_batches, T + 1)``: each batch's column sums of ``weights`` ``(n, T)``, then its rows.

    Batch ``b`` is rows ``b * batch_size`` to ``(b + 1) * batch_size``;
    batches past the end of the data are all zeros.
    """
    per_row = torch.cat([weights, torch.ones_like(weights[:, :1])], dim=1)
    padded = per_row.new_zeros(n_batches * batch_size, per_row.shape[1])
    padded[: per_row.shape[0]] = per_row[: padded.shape[0]]
    return padded.view(n_batches, batch_size, per_row.shape[1]).sum(dim=1)


def funnel_violation(
    probabilities: Sequence[torch.Tensor], n_rows: torch.Tensor | None = None
) -> torch.Tensor:
    """``sum_k mean(relu(p_k - p_{k-1}))`` over consecutive funnel steps.

    Parameters
    ----------
    probabilities : sequence of Tensor of shape (B,)
        Probability of reaching each step, in funnel order.
    n_rows : Tensor (scalar), optional
        Divide the sums by this instead of ``B`` (the rows of the whole global
        batch in data-parallel training).
    """
    penalty = torch.zeros((), dtype=probabilities[0].dtype, device=probabilities[0].device)
    for earlier, later in zip(probabilities[:-1], probabilities[1:]):
        excess = F.relu(later - earlier)
        penalty = penalty + (excess.mean() if n_rows is None else excess.sum() / n_rows.clamp_min(1))
    return penalty


class MultiTaskObjective:
    """Everything about the loss of one fit: task and class weights, funnel, offsets.

    It turns the model's per-task logits into the training loss and into
    probabilities, so the training loop and the predict path share one
    definition.

    Parameters
    ----------
    n_outputs : sequence of int
        Logits per task (1 for binary tasks).
    task_weights : Tensor of shape (T,), optional
        Weight of each task's loss (ones when None).
    class_weights : sequence of (Tensor or None), optional
        Per-task class weights.
    funnel : sequence of int, default=()
        Indices of the binary tasks that form a funnel, in order.
    funnel_mode : {"esmm", "independent"}, default="esmm"
        ``"esmm"``: the funnel tasks' heads are conditional logits and the
        probability of reaching step ``k`` is their product.
        ``"independent"``: each head predicts its step directly.
    funnel_penalty : float, default=0.0
        Strength of :func:`funnel_violation` added to the loss in independent
        mode (0 turns it off; ESMM satisfies the funnel by construction).
    logit_offsets : Tensor of shape (T,), optional
        Added to each binary task's (conditional) logit when predicting, e.g.
        ``log(rate)`` to undo negative downsampling at ``rate``.
    """

    def __init__(
        self,
        n_outputs: Sequence[int],
        *,
        task_weights: torch.Tensor | None = None,
        class_weights: Sequence[torch.Tensor | None] | None = None,
        funnel: Sequence[int] = (),
        funnel_mode: str = "esmm",
        funnel_penalty: float = 0.0,
        logit_offsets: torch.Tensor | None = None,
    ):
        self.n_outputs = [int(k) for k in n_outputs]
        self.task_weights = task_weights
        self.class_weights = class_weights
        self.funnel = [int(t) for t in funnel]
        self.funnel_mode = funnel_mode
        self.funnel_penalty = float(funnel_penalty)
        self.logit_offsets = logit_offsets

    def to(self, device) -> MultiTaskObjective:
        """Move the objective's tensors to ``device`` (returns self)."""
        move = lambda t: None if t is None else t.to(device)
        self.task_weights = move(self.task_weights)
        self.logit_offsets = move(self.logit_offsets)
        if self.class_weights is not None:
            self.class_weights = [move(w) for w in self.class_weights]
        return self

    def outputs(self, logits: Sequence[torch.Tensor]) -> list[torch.Tensor | LogProbs]:
        """Per-task loss inputs: logits, or ``(log p, log(1-p))`` for ESMM funnel steps."""
        outputs: list[torch.Tensor | LogProbs] = list(logits)
        if self.funnel and self.funnel_mode == "esmm":
            chain = chain_log_probs([logits[t] for t in self.funnel])
            for t, log_probs in zip(self.funnel, chain):
                outputs[t] = log_probs
        return outputs

    def __call__(
        self,
        logits: Sequence[torch.Tensor],
        targets: torch.Tensor,
        sample_weight: torch.Tensor | None = None,
        global_totals: torch.Tensor | None = None,
        weight_scale: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Total loss (with penalties) and each task's mean loss.

        ``global_totals`` (data-parallel training): the :meth:`batch_totals`
        row of the global batch this batch is a part of; the losses are then
        this part's share of the global batch's, and they add up over the
        processes. ``weight_scale`` (training on a mini-batch of unequally
        weighted rows): see :func:`task_losses`.
        """
        denominators = n_rows = None
        if global_totals is not None:
            denominators, n_rows = global_totals[:-1], global_totals[-1]
        losses, _ = task_losses(
            self.outputs(logits), targets, sample_weight, self.class_weights, denominators,
            weight_scale,
        )
        total = losses.sum() if self.task_weights is None else (self.task_weights * losses).sum()
        if self.funnel and self.funnel_mode == "independent" and self.funnel_penalty > 0:
            steps = [torch.sigmoid(logits[t]) for t in self.funnel]
            total = total + self.funnel_penalty * funnel_violation(steps, n_rows)
        return total, losses

    def plain_binary(self) -> bool:
        """Whether every task is binary, without class weights or funnel.

        Then, on rows whose labels are all known and whose weights are all
        equal, each task's loss is a plain mean: :meth:`mean_binary_losses`.
        """
        no_class_weights = self.class_weights is None or all(c is None for c in self.class_weights)
        return all(k == 1 for k in self.n_outputs) and not self.funnel and no_class_weights

    def mean_binary_losses(
        self, logits: Sequence[torch.Tensor], labels: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`__call__` where every label is known and every row weighs the same.

        The training loop's fast path (a few operations instead of the masked,
        weighted means); valid only when :meth:`plain_binary` is True.
        ``labels`` is ``(T, B)`` float, 0 or 1.
        """
        z = torch.stack(list(logits))  # (T, B)
        losses = F.binary_cross_entropy_with_logits(z, labels, reduction="none").mean(dim=1)
        total = losses.sum() if self.task_weights is None else (self.task_weights * losses).sum()
        return total, losses

    def weighted(self, targets: torch.Tensor, sample_weight: torch.Tensor | None) -> bool:
        """Whether rows of ``targets`` weigh differently in some task's mean.

        True with class weights, or with sample weights that are not all
        equal; then training divides batch sums by a global ``weight_scale``
        (:meth:`label_weight_sums`).
        """
        if self.class_weights is not None and any(c is not None for c in self.class_weights):
            return True
        return sample_weight is not None and bool((sample_weight != sample_weight[0]).any())

    def label_weight_sums(
        self, targets: torch.Tensor, sample_weight: torch.Tensor | None
    ) -> torch.Tensor:
        """Each task's total label weight and number of known labels, ``(2, T)`` float64.

        Summed over the training rows of every process, their ratio is the
        ``weight_scale`` of :func:`task_losses`.
        """
        weights = label_weights(targets, sample_weight, self.class_weights, torch.float64)
        return torch.stack([weights.sum(dim=0), (targets >= 0).sum(dim=0).to(torch.float64)])

    def batch_totals(
        self,
        targets: torch.Tensor,
        sample_weight: torch.Tensor | None,
        batch_size: int,
        n_batches: int,
        weight_scale: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Per-batch denominators of consecutive batches, ``(n_batches, T + 1)``.

        Row ``b`` holds each task's total weight over rows ``b * batch_size``
        to ``(b + 1) * batch_size`` (see :func:`label_weights`), or with
        ``weight_scale`` its number of known labels times the task's scale
        (see :func:`task_losses`), then the number of those rows; batches past
        the end of the data are all zeros.
        """
        if weight_scale is None:
            weights = label_weights(targets, sample_weight, self.class_weights)
        else:
            weights = (targets >= 0).to(weight_scale.dtype) * weight_scale
        return consecutive_batch_sums(weights, batch_size, n_batches)

    def _offset(self, logits: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Logits with the negative-sampling offsets applied (as float64).

        In independent funnel mode only the first step carries an offset; the
        later steps' heads, trained on the same sampled rows, are rescaled by
        the first step's correction ``p_1 / p_1_sampled``: downsampling
        non-clicks keeps every clicked row, so ``P(step k) / P(click)`` is
        unbiased and only ``P(click)`` needs the correction.
        """
        logits = [z.double() for z in logits]
        if self.logit_offsets is None:
            return logits
        offsets = self.logit_offsets.double()
        shifted = [z + offsets[t] if z.dim() == 1 else z for t, z in enumerate(logits)]
        if self.funnel and self.funnel_mode == "independent":
            first = self.funnel[0]
            # log(p_1 / p_1_sampled), added in log space to the later steps' log-probabilities.
            log_scale = F.logsigmoid(shifted[first]) - F.logsigmoid(logits[first])
            for t in self.funnel[1:]:
                p = torch.exp(F.logsigmoid(logits[t]) + log_scale)
                shifted[t] = torch.logit(p.clamp(0.0, 1.0))
        return shifted

    def probabilities(self, logits: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """Class probabilities of every task, in float64, ``(B, K_t)`` each.

        Funnel steps give the probability of reaching the step over the whole
        impression space (e.g. pCTR, pCTCVR).
        """
        logits = self._offset(logits)
        positive: dict[int, torch.Tensor] = {}
        if self.funnel and self.funnel_mode == "esmm":
            for t, (log_p, _) in zip(self.funnel, chain_log_probs([logits[t] for t in self.funnel])):
                positive[t] = torch.exp(log_p)
        probabilities = []
        for t, z in enumerate(logits):
            if z.dim() == 1:
                p = positive.get(t, torch.sigmoid(z))
                probabilities.append(torch.stack([1.0 - p, p], dim=1))
            else:
                probabilities.append(torch.softmax(z, dim=1))
        return probabilities

    def export_outputs(self, logits: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """What an exported graph returns per task: :meth:`probabilities`."""
        return self.probabilities(logits)

    def conditional_probabilities(self, logits: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """``P(step k | step k-1)`` of each funnel step, shape (B,) each, in float64.

        The first step's is its plain probability. In independent mode it is
        ``p_k / p_{k-1}`` clipped to [0, 1].
        """
        logits = self._offset(logits)
        steps = [torch.sigmoid(logits[t]) for t in self.funnel]
        if self.funnel_mode == "esmm":
            return steps
        conditional = [steps[0]]
        for earlier, later in zip(steps[:-1], steps[1:]):
            conditional.append(
                torch.where(earlier > 0, later / earlier.clamp_min(1e-300), 0.0).clamp(0.0, 1.0)
            )
        return conditional
