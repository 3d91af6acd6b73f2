"""Regression tasks: real-valued targets, their internal scaling, and the per-task losses.

Targets are 1-D (one task) or 2-D ``(n_samples, n_tasks)`` numbers; NaN (or
None, ``pd.NA``) marks an unknown target, left out of that task's loss. Each
task has a loss named as :class:`~sklearn.ensemble.HistGradientBoostingRegressor`
names them:

- ``"squared_error"``: half the squared error ``(z - y)**2 / 2``;
- ``"absolute_error"``: ``|z - y|``;
- ``"huber"``: squared within ``huber_delta`` of the target, linear beyond
  (the delta in the user's units);
- ``"poisson"``: half the Poisson deviance with a log link,
  ``exp(z) - y * z + y * log(y) - y`` (the negative log-likelihood up to a
  term that does not depend on ``z``, so that the loss is 0 at a perfect fit
  and never negative, as loss balancing needs; non-negative targets, at least
  one positive);
- ``"log_loss"``: the binary cross-entropy with a logit link,
  ``softplus(z) - y * z`` (targets in [0, 1]: 0/1 labels, or probabilities
  and rates as soft labels); the prediction ``sigmoid(z)`` is the
  probability that the target is 1, which is E[y | x] for a 0/1 target.

The network learns standardised targets, ``(y - mean) / scale`` over the known
targets of each task given to ``fit`` (early stopping's validation rows
included, as for the continuous columns' scaling) (``y / mean`` for ``"poisson"``, whose log link
must not be centred; ``"log_loss"`` targets are used as they are, as a
classifier's labels), so its output layer starts at the mean whatever the
units; predictions are turned back into the user's units. Reported losses
(``loss_curve_``, ...) are in those internal units.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from numbers import Real

import numpy as np
import pandas as pd
import torch
from torch.nn import functional as F

from ._distributed import SingleProcess
from ._targets import task_columns
from .losses import consecutive_batch_sums

LOSSES = ("squared_error", "absolute_error", "huber", "poisson", "log_loss")


@dataclass
class RegressionTargets:
    """Targets of regression tasks, scaled for the network.

    Attributes
    ----------
    codes : ndarray of float32 of shape (n_samples, n_tasks)
        Scaled targets (what the loss reads), NaN where unknown.
    values : ndarray of float64 of shape (n_samples, n_tasks)
        The targets in the user's units, NaN where unknown.
    task_names : list of str
        DataFrame column names, a Series name, or ``task_0``, ``task_1``, ...
    one_dimensional : bool
        True when ``y`` was 1-D (a single task).
    offsets, scales : ndarray of shape (n_tasks,)
        ``target = offset + scale * network output`` (poisson tasks:
        ``target = scale * exp(network output)``, offset 0; log_loss tasks:
        ``sigmoid(network output)``, offset 0 and scale 1); set by
        :meth:`fit_scaling`.
    funnel : list of int
        Always empty (funnels are for binary tasks).
    task_weights : ndarray of shape (n_tasks,) or None
        Set by the estimator.
    losses, huber_deltas : list of str, ndarray of shape (n_tasks,)
        Each task's loss and Huber delta (user units), set by the estimator.
    trained : ndarray of bool of shape (n_tasks,)
        The tasks the model has learnt (some known target in this fit on some
        process, or in an earlier fit it continues), set by the estimator.
    spread : ndarray of bool of shape (n_tasks,)
        The tasks whose scale was learnt from targets with some spread (more
        than one distinct value; a positive mean for poisson; always for
        log_loss), set by :meth:`fit_scaling` (and by the estimator when it
        continues a fit).
    """

    values: np.ndarray
    task_names: list[str]
    one_dimensional: bool
    codes: np.ndarray | None = None
    offsets: np.ndarray | None = None
    scales: np.ndarray | None = None
    funnel: list[int] = field(default_factory=list)
    task_weights: np.ndarray | None = None
    losses: list[str] = field(default_factory=list)
    huber_deltas: np.ndarray | None = None
    trained: np.ndarray | None = None
    spread: np.ndarray | None = None

    @property
    def known(self) -> np.ndarray:
        """Which targets are known, ``(n_samples, n_tasks)`` bool."""
        return ~np.isnan(self.values)

    @property
    def n_outputs(self) -> list[int]:
        """One output per task."""
        return [1] * len(self.task_names)

    def fit_scaling(
        self, losses: Sequence[str], group=None, rows=None, sample_weight=None
    ) -> None:
        """Learn each task's offset and scale from the known targets of ``rows``.

        Every process's rows count (``group``); a task with a single distinct
        value keeps scale 1 (:attr:`spread` tells which tasks had more).
        With ``sample_weight`` (one per row of the targets, None when not
        given) the mean and deviation are weighted: a row of weight ``k``
        counts as ``k`` copies of it, a row of weight 0 not at all.
        """
        group = SingleProcess() if group is None else group
        values = self.values if rows is None else self.values[rows]
        known = ~np.isnan(values)
        if sample_weight is None:
            weights = known.astype(np.float64)
        else:
            weights = np.asarray(sample_weight, dtype=np.float64)
            weights = weights if rows is None else weights[rows]
            weights = np.where(known, weights[:, None], 0.0)
            known = weights > 0  # a row of weight 0 leaves no trace
        filled = np.where(known, values, 0.0)
        local = np.stack([weights.sum(axis=0), (weights * filled).sum(axis=0)])
        count, total = np.sum(group.share(lambda: local), axis=0)
        mean = np.where(count > 0, total / np.where(count > 0, count, 1.0), 0.0)
        # Two passes (the global mean, then squared deviations from it): E[y^2] - E[y]^2
        # cancels catastrophically for targets far from 0 (e.g. 1e8 + noise).
        squares = (weights * np.where(known, (values - mean) ** 2, 0.0)).sum(axis=0)
        std = np.sqrt(
            np.sum(group.share(lambda: squares), axis=0) / np.where(count > 0, count, 1.0)
        )
        overflowed = ~(np.isfinite(mean) & np.isfinite(std))
        if overflowed.any():  # e.g. targets near 1e300: their squares overflow float64
            names = [self.task_names[t] for t in np.flatnonzero(overflowed)]
            raise ValueError(
                f"The targets of task(s) {names} are too large for their mean and standard "
                "deviation to be computed in float64 (they overflow); rescale them (e.g. divide "
                "by a power of ten)."
            )
        offsets, scales = mean.copy(), np.where(std > 0, std, 1.0)
        spread = std > 0
        for t, loss in enumerate(losses):
            if loss == "poisson":
                offsets[t], scales[t] = 0.0, mean[t] if mean[t] > 0 else 1.0
                spread[t] = mean[t] > 0
            elif loss == "log_loss":  # labels (or probabilities) as they are
                offsets[t], scales[t] = 0.0, 1.0
                spread[t] = True
        self.offsets, self.scales, self.spread = offsets, scales, spread
        self.codes = self.scaled(self.values)

    def scaled(self, values: np.ndarray) -> np.ndarray:
        """``values`` in the network's units (float32, NaN kept)."""
        return ((values - self.offsets) / self.scales).astype(np.float32)


def _numeric_column(values: np.ndarray, name: str) -> np.ndarray:
    """One task's targets as float64, NaN for unknown; strings and infinity refused."""
    if values.dtype.kind in "biuf":
        column = values.astype(np.float64)
    else:
        try:
            column = pd.to_numeric(pd.Series(values, dtype=object), errors="raise")
            column = column.astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan)
        except (TypeError, ValueError):
            kinds = sorted({type(v).__name__ for v in values if not pd.isna(v)})
            raise ValueError(
                f"Task {name!r} has non-numeric targets ({', '.join(kinds)}); a regressor "
                "needs numbers (NaN/None for an unknown target). For labels use "
                "MultiTaskClassifier."
            ) from None
    if np.isinf(column).any():
        raise ValueError(f"Task {name!r}: y contains infinity; targets must be finite or NaN.")
    return column


def regression_targets(y) -> RegressionTargets:
    """``y`` as float64 targets per task (NaN unknown), with task names; not yet scaled."""
    columns, names, one_dimensional = task_columns(y)
    if not columns:
        raise ValueError("y has 0 tasks (columns); at least one task is required.")
    values = np.column_stack([_numeric_column(np.asarray(c), n) for c, n in zip(columns, names)])
    return RegressionTargets(values, names, one_dimensional)


def check_losses(loss, huber_delta, task_names) -> tuple[list[str], np.ndarray]:
    """Each task's loss name and Huber delta (user units), validated.

    ``loss`` and ``huber_delta`` are one value for every task or a dict by task
    (tasks not named get ``"squared_error"`` and 1.0).

    Raises
    ------
    ValueError
        For an unknown loss or a non-positive delta (the poisson and log_loss
        targets are checked by :func:`check_poisson_targets` and
        :func:`check_log_loss_targets`).
    """
    from ._keyed_settings import entries_by_task

    n_tasks = len(task_names)

    def per_task(setting, name, default):
        if isinstance(setting, dict):
            out = [default] * n_tasks
            for t, value in entries_by_task(setting, task_names, name).items():
                out[t] = value
            return out
        return [setting] * n_tasks

    losses = per_task(loss, "loss", "squared_error")
    deltas = per_task(huber_delta, "huber_delta", 1.0)
    for name, task_loss, delta in zip(task_names, losses, deltas):
        if task_loss not in LOSSES:
            raise ValueError(
                f"loss for task {name!r} must be one of {list(LOSSES)}; got {task_loss!r}."
            )
        if isinstance(delta, bool) or not isinstance(delta, Real) or not delta > 0:
            raise ValueError(f"huber_delta for task {name!r} must be a positive number; "
                             f"got {delta!r}.")
    return losses, np.asarray(deltas, dtype=np.float64)


def _global_counts(losses, loss, values, group, count) -> list[tuple[int, tuple[int, ...]]]:
    """``count(known targets)`` of each task whose loss is ``loss``, summed over every process.

    ``count`` maps a task's known targets (1-D float64) to a tuple of ints.
    Returns ``(task index, summed tuple)`` pairs, the same on every process
    (none, without a collective call, when no task has that loss).
    """
    tasks = [t for t, task_loss in enumerate(losses) if task_loss == loss]
    if not tasks:
        return []
    group = SingleProcess() if group is None else group
    shares = group.share(lambda: [count(values[:, t][~np.isnan(values[:, t])]) for t in tasks])
    return [(t, tuple(int(sum(column)) for column in zip(*(share[i] for share in shares))))
            for i, t in enumerate(tasks)]


def check_poisson_targets(losses, task_names, values, group=None, need_positive=True) -> None:
    """Raise unless every poisson task's known targets (of every process) are >= 0, one > 0.

    ``need_positive`` (a bool, or one per task) False: a continued fit whose
    scale (their mean) is learnt already, so a chunk of zeros is allowed.

    Raises
    ------
    ValueError
        Naming the task, on every process.
    """

    def count(known):
        return int(np.sum(known < 0)), int(np.sum(known > 0)), int(known.size)

    for t, (negative, positive, size) in _global_counts(losses, "poisson", values, group, count):
        needs = need_positive if np.ndim(need_positive) == 0 else need_positive[t]
        if size and (negative or (needs and not positive)):
            raise ValueError(
                f"loss='poisson' needs non-negative targets with at least one positive; task "
                f"{task_names[t]!r} has {negative} negative, {size - negative - positive} zero "
                f"and {positive} positive known target(s)."
            )


def check_log_loss_targets(losses, task_names, values, group=None) -> None:
    """Raise unless every log_loss task's known targets (of every process) lie in [0, 1].

    0/1 labels and probabilities (soft labels, rates) are accepted. When the
    targets outside [0, 1] are all whole numbers (labels such as 2, 3, ...),
    the message names the multiclass case and what to use instead.
    """

    def count(known):
        outside = known[(known < 0) | (known > 1)]
        return int(outside.size), int(np.sum(outside == np.round(outside)))

    for t, (outside, whole) in _global_counts(losses, "log_loss", values, group, count):
        if not outside:
            continue
        hint = (
            " They are whole numbers: for a multiclass task use MultiTaskClassifier, or give "
            "the regressor one 0/1 column per class (one-vs-rest), each with loss='log_loss'."
            if whole == outside else ""
        )
        raise ValueError(
            f"loss='log_loss' needs targets in [0, 1] (0/1 labels, or probabilities); task "
            f"{task_names[t]!r} has {outside} known target(s) outside [0, 1].{hint}"
        )


class RegressionObjective:
    """The loss of one regression fit, and the way back from network outputs to targets.

    The training loop reads the same interface as
    :class:`~skmtl.losses.MultiTaskObjective`: a call giving the total and
    per-task losses on a batch, the weight bookkeeping of weighted and
    data-parallel training, and :meth:`to`.

    Parameters
    ----------
    losses : sequence of str
        Each task's loss (see :data:`LOSSES`).
    huber_deltas : Tensor of shape (T,)
        Each task's Huber delta in the network's (scaled) units.
    offsets, scales : Tensor of shape (T,)
        ``target = offset + scale * output`` (``scale * exp(output)`` for
        poisson tasks, ``sigmoid(output)`` for log_loss tasks).
    task_weights : Tensor of shape (T,), optional
        Weight of each task's loss (ones when None).
    """

    def __init__(self, losses, huber_deltas, offsets, scales, task_weights=None):
        self.losses = list(losses)
        self.huber_deltas = huber_deltas
        self.offsets = offsets
        self.scales = scales
        self.task_weights = task_weights

    @property
    def n_outputs(self) -> list[int]:
        """One output per task."""
        return [1] * len(self.losses)

    def to(self, device) -> RegressionObjective:
        """Move the objective's tensors to ``device`` (returns self)."""
        for name in ("huber_deltas", "offsets", "scales", "task_weights"):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value.to(device))
        return self

    def _row_losses(self, outputs: Sequence[torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
        """``(B, T)`` per-row losses, 0 where the target is unknown."""
        known = ~torch.isnan(targets)
        safe = torch.where(known, targets, torch.zeros_like(targets))
        columns = []
        for t, (z, loss) in enumerate(zip(outputs, self.losses)):
            z = z.reshape(-1)
            y = safe[:, t].to(z.dtype)
            if loss == "squared_error":
                row = 0.5 * (z - y) ** 2
            elif loss == "absolute_error":
                row = (z - y).abs()
            elif loss == "huber":
                row = F.huber_loss(z, y, reduction="none", delta=float(self.huber_deltas[t]))
            elif loss == "log_loss":  # logit link; stable for any z, soft labels too
                row = F.binary_cross_entropy_with_logits(z, y, reduction="none")
            else:  # poisson, log link: half the deviance, 0 at a perfect fit (never negative)
                row = torch.exp(z) - y * z + torch.special.xlogy(y, y) - y
            columns.append(row)
        rows = torch.stack(columns, dim=1)
        return torch.where(known, rows, torch.zeros_like(rows))

    def row_weights(self, targets: torch.Tensor, sample_weight, dtype=torch.float32):
        """``(B, T)``: the row's weight where its target is known, else 0."""
        weights = (~torch.isnan(targets)).to(dtype)
        if sample_weight is not None:
            weights = weights * sample_weight.to(dtype).unsqueeze(1)
        return weights

    def __call__(self, outputs, targets, sample_weight=None, global_totals=None, weight_scale=None):
        """Total loss and each task's weighted mean loss (see ``MultiTaskObjective``)."""
        per_row = self._row_losses(outputs, targets)
        w = self.row_weights(targets, sample_weight, per_row.dtype)
        if global_totals is not None:
            divisor = global_totals[:-1].to(per_row.dtype)
        elif weight_scale is not None:
            divisor = (~torch.isnan(targets)).sum(dim=0) * weight_scale
        else:
            divisor = w.sum(dim=0)
        losses = (w * per_row).sum(dim=0) / divisor.clamp_min(torch.finfo(per_row.dtype).tiny)
        total = losses.sum() if self.task_weights is None else (self.task_weights * losses).sum()
        return total, losses

    def plain_binary(self) -> bool:
        """No fast path of binary tasks here."""
        return False

    def weighted(self, targets: torch.Tensor, sample_weight) -> bool:
        """Whether rows weigh differently (unequal sample weights)."""
        return sample_weight is not None and bool((sample_weight != sample_weight[0]).any())

    def label_weight_sums(self, targets: torch.Tensor, sample_weight) -> torch.Tensor:
        """Each task's total weight and number of known targets, ``(2, T)`` float64."""
        weights = self.row_weights(targets, sample_weight, torch.float64)
        known = (~torch.isnan(targets)).sum(dim=0).to(torch.float64)
        return torch.stack([weights.sum(dim=0), known])

    def batch_totals(self, targets, sample_weight, batch_size, n_batches, weight_scale=None):
        """Per-batch denominators of consecutive batches, ``(n_batches, T + 1)``."""
        if weight_scale is None:
            weights = self.row_weights(targets, sample_weight)
        else:
            weights = (~torch.isnan(targets)).to(weight_scale.dtype) * weight_scale
        return consecutive_batch_sums(weights, batch_size, n_batches)

    def predictions(self, outputs: Sequence[torch.Tensor]) -> torch.Tensor:
        """``(B, T)`` float64 predictions in the user's units."""
        columns = []
        for t, (z, loss) in enumerate(zip(outputs, self.losses)):
            z = z.reshape(-1).double()
            scale, offset = self.scales[t].double(), self.offsets[t].double()
            if loss == "poisson":
                columns.append(scale * torch.exp(z))
            elif loss == "log_loss":  # P(y = 1 | x), i.e. E[y | x]
                columns.append(torch.sigmoid(z))
            else:
                columns.append(offset + scale * z)
        return torch.stack(columns, dim=1)

    def export_outputs(self, outputs: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        """What an exported graph returns per task: its prediction, ``(B, 1)`` float64."""
        return [column.unsqueeze(1) for column in self.predictions(outputs).unbind(dim=1)]
