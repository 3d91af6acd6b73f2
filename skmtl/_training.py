"""The one training loop: batches, loss, early stopping, progress, restore best.

It knows tensors and modules only (nothing of pandas or the estimator). The
data are tensors on the training device built once per fit; a batch is an index
slice of a (possibly shuffled) permutation. Inside the batch loop nothing is
read back to the host: running loss sums and a non-finite flag stay on the
device and are read once per epoch.
"""

from __future__ import annotations

import contextlib
import copy
import math
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from torch import nn

from ._config import get_config
from ._distributed import SingleProcess
from ._hooks import (
    BackwardStep,
    ProgressBar,
    TrainingObserver,
    TrainingState,
    backward_total,
    overrides,
)
from ._threads import (
    CHECK_STEPS,
    LOAD_WINDOW,
    MIN_GOVERNED_STEPS,
    ThreadGovernor,
    available_cores,
    concurrent_fits,
    fixed_thread_count,
    set_threads,
    step_work,
    steps_agree,
    take_load_reading,
    thread_scope,
    user_thread_limit,
)
from ._warnings import warn_user
from .losses import MultiTaskObjective
from .nn.blocks import StackedLinear, attach_generator

INFERENCE_BATCH_SIZE = 2048
"""Rows per forward pass when predicting (and for the validation loss).

Small chunks keep the activations in cache: on the MMoE benchmark model,
predict_proba on 200,000 rows took 0.34 s in chunks of 2,048 rows against
0.80 s in chunks of 65,536 on one thread (0.28 s against 0.52 s on two), with
identical probabilities, and the activations of a chunk take about 9 MB
instead of about 290 MB.
"""

INFERENCE_ROW_BLOCK = 16
"""Forward passes at predict time take a multiple of this many rows.

Without this padding (and :func:`inference_row_floor`) a row's prediction
changes with the number of rows computed with it (measured with torch 2.13's
MKL on AVX-512, one and two threads): the float32 matrix products take rows in
blocks of four and finish a remainder, or a single row, on another path that
sums in another order, and torch's elementwise float64 loops (the sigmoid of
the probabilities) take 16 values per step and finish the last few with
scalar code, which rounds differently. sklearn's
``check_methods_subset_invariance`` asks for the same predictions within
1e-7 for a batch and for its rows one at a time; single rows differed by up
to thousands of ulps of the logit before (PLE's regressor failed the check).

Padded, the default network with binary tasks predicts a row the same, bit
for bit, alone or anywhere in a batch. What padding cannot remove: for some
output widths of one product (5-7 and 9-11 columns: a 5-class task's head,
PLE's gates of two tasks) MKL's result also depends on whether the row sits
at an even or an odd position in the batch, so those networks' rows still
differ by a few ulps (at most 6.4e-9 in probability, measured) from the same
rows elsewhere in a batch.
"""

BMM_NAIVE_LOOP_WORK = 400
"""ATen's CPU ``bmm``/``baddbmm`` multiplies each matrix of fewer than this
many multiply-adds (contraction x rows x columns) by its own loop, and larger
ones by BLAS, which sums in another order: a stacked layer's rows must not
cross that line with the batch size."""

_row_floors: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def inference_row_floor(module: nn.Module) -> int:
    """The fewest rows a predict-time forward of ``module`` takes (cached per module).

    A multiple of ``INFERENCE_ROW_BLOCK`` large enough that every
    :class:`~skmtl.nn.blocks.StackedLinear` product takes the BLAS path
    (``BMM_NAIVE_LOOP_WORK``): 16 rows for the default networks, more for
    very narrow layers (a tower of width 4 feeding its one output: 112).
    """
    floor = _row_floors.get(module)
    if floor is None:
        rows = [
            math.ceil(BMM_NAIVE_LOOP_WORK / (layer.in_features * layer.out_features))
            for layer in module.modules()
            if isinstance(layer, StackedLinear) and layer.in_features * layer.out_features
        ]
        floor = _row_floors[module] = _round_up(max(rows, default=1), INFERENCE_ROW_BLOCK)
    return floor


def _round_up(n: int, block: int) -> int:
    return -(-n // block) * block


def _padded_rows(x, rows: int):
    """``x`` with copies of its last row appended up to ``rows`` rows.

    ``x`` is a tensor, or :class:`~skmtl.nn.sparse.SparseRows` (a sparse
    ``X``), which takes the rows by position.
    """
    n = x.shape[0]
    missing = rows - n
    if missing <= 0 or n == 0:
        return x
    if not isinstance(x, torch.Tensor):
        return x[torch.cat([torch.arange(n), torch.full((missing,), n - 1)]).to(x.device)]
    return torch.cat([x, x[-1:].expand(missing, *x.shape[1:])])


class TrainingDivergedError(FloatingPointError, ValueError):
    """The training loss became NaN or infinite."""


_ON_EVERY_RANK = "_skmtl_raised_on_every_rank"
"""Set on an error that every process of a data-parallel fit raises alike: none is left
waiting, so the process group stays up (as after a :class:`TrainingDivergedError`)."""


@dataclass
class TensorData:
    """Encoded rows on one device: one tensor per column kind, labels, weights."""

    inputs: tuple[torch.Tensor, ...]  # one per column kind, rows first (e.g. codes, values)
    y: torch.Tensor  # (n, T) int64, -1 unknown
    sample_weight: torch.Tensor  # (n,) float32

    def __len__(self) -> int:
        return self.y.shape[0]

    def take(self, index: torch.Tensor) -> TensorData:
        """Rows ``index`` (a copy)."""
        return TensorData(
            tuple(x[index] for x in self.inputs), self.y[index], self.sample_weight[index]
        )

    def slice(self, start: int, stop: int) -> TensorData:
        """Rows ``start:stop`` (views, no copy)."""
        return TensorData(
            tuple(x[start:stop] for x in self.inputs), self.y[start:stop],
            self.sample_weight[start:stop],
        )


@dataclass(frozen=True)
class ValidationScorer:
    """What early stopping watches instead of the validation loss (the estimator's ``scoring``).

    Attributes
    ----------
    name : str
        How the progress bar and the messages call it (e.g. ``"mean_roc_auc"``).
    score : callable
        ``score(logits) -> float``, greater is better: ``logits`` holds each
        task's logits for every validation row, in the order of the rows (in
        data-parallel training, every process's rows in rank order, the same
        tensors on every process).
    """

    name: str
    score: Callable[[list[torch.Tensor]], float]


@dataclass
class TrainingConfig:
    """Settings of one call of :func:`train`."""

    max_iter: int
    batch_size: int
    learning_rate: float  # named in the divergence error; the optimizer holds its own
    shuffle: bool
    n_iter_no_change: int
    tol: float
    objective: MultiTaskObjective
    verbose: int = 0
    warn_on_max_iter: bool = True
    one_pass: bool = False  # partial_fit: one epoch over a chunk, no early stopping
    validation_scorer: ValidationScorer | None = None  # None: minus the validation loss
    # warm_start: the earlier fits' best validation score, whose weights training starts
    # from (not None: those weights are scored again, in this fit's units, and an epoch must
    # beat that to be kept, as MLPClassifier's best over all fits).
    previous_best_score: float | None = None
    # The horizon, in epochs, of the exponential moving average of the weights that is
    # scored and kept (None: the weights themselves); see _TrainingRun.update_average.
    ema_epochs: float | None = None

    @property
    def monitor(self) -> str:
        """What early stopping watches on the validation rows, in words."""
        scorer = self.validation_scorer
        return "validation loss" if scorer is None else f"validation {scorer.name}"


@dataclass
class TrainingHistory:
    """What :func:`train` measured, one entry per epoch."""

    loss_curve: list[float] = field(default_factory=list)
    task_loss_curves: list[np.ndarray] = field(default_factory=list)
    validation_scores: list[float] | None = None
    best_validation_score: float | None = None
    best_loss: float = np.inf
    n_iter: int = 0
    converged: bool = False
    best_epoch: int | None = None  # the kept weights' epoch (0: the starting weights)


def split_parameters(module: nn.Module) -> tuple[list, list]:
    """(weights that get the L2 penalty, parameters that do not).

    Penalised: every weight matrix (experts, gates, towers, heads, the
    continuous-feature projections). Not penalised: biases and embedding
    tables (``nn.Embedding`` and the parameters a block lists in its
    ``lookup_tables``, e.g. the categorical tables).
    """
    decay, no_decay = [], []
    for block in module.modules():
        tables = getattr(block, "lookup_tables", ())
        for name, param in block.named_parameters(recurse=False):
            exempt = (
                name == "bias"
                or name.endswith("_bias")
                or isinstance(block, nn.Embedding)
                or name in tables
            )
            (no_decay if exempt else decay).append(param)
    return decay, no_decay


def make_optimizer(
    module: nn.Module, learning_rate: float, alpha: float, weight_decay: float = 0.0
) -> torch.optim.Optimizer:
    """Adam with coupled L2 (``alpha``) or decoupled weight decay (AdamW's), on the weight matrices only.

    The weights :func:`split_parameters` penalises get ``alpha`` as Adam's
    ``weight_decay`` (added to the gradient) or, with ``weight_decay > 0``,
    AdamW's decoupled decay (``w <- w - lr * weight_decay * w`` beside the
    Adam step); at most one of the two is positive (the estimator checks).
    """
    decay_rate = weight_decay if weight_decay > 0 else alpha
    if decay_rate == 0:  # one group: one fused kernel per step
        groups = [{"params": list(module.parameters()), "weight_decay": 0.0}]
    else:
        decay, no_decay = split_parameters(module)
        groups = [
            {"params": decay, "weight_decay": decay_rate, "penalised": True},
            {"params": no_decay, "weight_decay": 0.0, "penalised": False},
        ]
    groups = [g for g in groups if g["params"]]
    # AdamW for the decoupled decay (Adam's own decoupled_weight_decay needs torch >= 2.7).
    optimizer = torch.optim.AdamW if weight_decay > 0 else torch.optim.Adam
    try:
        # The fused kernel updates all parameters at once (about 4x faster than
        # the per-parameter loop on CPU for these small models).
        return optimizer(groups, lr=learning_rate, fused=True)
    except (RuntimeError, ValueError):  # a device or dtype without a fused kernel
        return optimizer(groups, lr=learning_rate)


def continue_optimizer(
    optimizer: torch.optim.Optimizer, module: nn.Module, learning_rate: float, l2_rate: float,
    weight_decay: float,
) -> None:
    """Give a kept optimiser (``partial_fit``'s) this call's rate, L2 rate and weight decay.

    Adam (coupled L2, ``alpha``) and AdamW (``weight_decay``) are different
    optimisers: a call that switches between them is refused rather than
    silently keeping the first call's.
    """
    adamw = isinstance(optimizer, torch.optim.AdamW)
    if (weight_decay > 0 and not adamw) or (adamw and l2_rate > 0):  # AdamW at 0 is Adam
        raise ValueError(
            "partial_fit continues the optimiser of the first call, "
            f"{'AdamW (weight_decay > 0)' if adamw else 'Adam (weight_decay=0)'}; "
            + ("alpha > 0 (Adam's L2) needs Adam. Keep alpha=0"
               if adamw else f"weight_decay={weight_decay} needs AdamW. Keep weight_decay=0")
            + ", or fit a new model."
        )
    for group in optimizer.param_groups:
        group["lr"] = learning_rate
        # Optimisers pickled before groups were marked: marked now, before a rate of 0
        # could hide which group is the penalised one.
        group.setdefault("penalised", group["weight_decay"] > 0)
        if adamw and group["penalised"]:
            group["weight_decay"] = weight_decay
    if not adamw:
        set_l2_rate(optimizer, module, l2_rate)


def set_l2_rate(optimizer: torch.optim.Optimizer, module: nn.Module, rate: float) -> None:
    """Give a kept Adam (``partial_fit``'s) the coupled L2 rate of this call.

    The penalised weights' group gets ``weight_decay=rate``; an optimiser made
    with no penalty (one group of every parameter) has its penalised weights
    split off into a group of their own first, keeping their Adam state (it
    is keyed by parameter). AdamW's decoupled decay is left as it was made.
    """
    if isinstance(optimizer, torch.optim.AdamW):
        return
    # Optimisers pickled before groups were marked: the penalised group has a rate.
    penalised = [g for g in optimizer.param_groups if g.get("penalised", g["weight_decay"] > 0)]
    for group in penalised:
        group["weight_decay"] = rate
    if penalised or rate == 0:
        return
    weights = {id(p) for p in split_parameters(module)[0]}
    (group,) = optimizer.param_groups
    kept = [p for p in group["params"] if id(p) not in weights]
    moved = [p for p in group["params"] if id(p) in weights]
    if not moved:
        return
    group["params"], group["penalised"] = kept, False
    optimizer.add_param_group(
        {"params": moved, "weight_decay": rate, "penalised": True, "lr": group["lr"]}
    )
    if not kept:
        optimizer.param_groups.remove(group)


def predict_logits(
    module: nn.Module,
    inputs: Sequence[torch.Tensor],
    then: Callable[[list[torch.Tensor]], Any] | None = None,
) -> Any:
    """Logits of every task for all rows (``inputs``: one tensor per column kind).

    In large batches, without autograd; a batch of fewer rows than
    :func:`inference_row_floor`, or not a multiple of ``INFERENCE_ROW_BLOCK``,
    is padded with copies of its last row, so that a row's logits do not
    depend on the other rows predicted with it. ``then`` (e.g. the
    objective's probabilities) is applied to each padded batch's logits, for
    the same reason; it returns a tensor or a list of tensors with one row per
    input row, and the result is that, over all rows.
    """
    if module.training:  # walking the module tree costs more than a one-row forward
        module.eval()
    floor = inference_row_floor(module)
    chunks: list = []
    with torch.inference_mode():
        for start in range(0, inputs[0].shape[0], INFERENCE_BATCH_SIZE):
            stop = start + INFERENCE_BATCH_SIZE
            rows = min(stop, inputs[0].shape[0]) - start
            padded = max(floor, _round_up(rows, INFERENCE_ROW_BLOCK))
            outputs = module(*(_padded_rows(x[start:stop], padded) for x in inputs))
            if then is not None:
                outputs = then(outputs)
            if padded > rows:
                outputs = _first_rows(outputs, rows)
            chunks.append(outputs)
    if not chunks:  # the estimators refuse 0 rows before this
        raise ValueError("predict_logits needs at least one row; got 0.")
    if len(chunks) == 1:
        return chunks[0]
    if isinstance(chunks[0], torch.Tensor):
        return torch.cat(chunks)
    return [torch.cat(parts) for parts in zip(*chunks)]


def _first_rows(outputs, rows: int):
    if isinstance(outputs, torch.Tensor):
        return outputs[:rows]
    return [output[:rows] for output in outputs]


def epoch_means(batch_losses: torch.Tensor, sizes: torch.Tensor, objective) -> torch.Tensor:
    """An epoch's loss and task losses from its batches' (see ``_TrainingRun.run_epoch``).

    Each task's loss is the mean of its batches' losses weighed by their
    known-label weights, i.e. the task's loss over all its known labels of
    the epoch; the total is the row-weighed mean of the batches' totals
    corrected by those task means (times the task weights), so that a funnel
    penalty (a per-row term) keeps its row weights.
    """
    rows, tasks = sizes[:, 0], sizes[:, 1:]
    by_rows = rows @ batch_losses / rows.sum()
    known = tasks.sum(0) > 0
    task_means = torch.where(
        known, (tasks * batch_losses[:, 1:]).sum(0) / tasks.sum(0).clamp_min(1e-30), by_rows[1:]
    )
    weights = getattr(objective, "task_weights", None)
    weights = torch.ones_like(task_means) if weights is None else weights.to(task_means)
    total = by_rows[0] + (weights * (task_means - by_rows[1:])).sum()
    # A task without a known label in the epoch has no loss (NaN), not a perfect one (0).
    return torch.cat([total.view(1), torch.where(known, task_means, torch.nan)])


def validation_loss(
    logits: Sequence[torch.Tensor],
    data: TensorData,
    config: TrainingConfig,
    group: SingleProcess = SingleProcess(),
    global_totals: torch.Tensor | None = None,
) -> torch.Tensor:
    """The training objective on ``data`` (all rows at once, their ``logits``), as a 0-d tensor.

    Data-parallel: ``data`` is this process's part, ``global_totals`` the
    objective's denominators over every process's part, and the result is the
    loss over all of them (the same on every process).
    """
    total, _ = config.objective(list(logits), data.y, data.sample_weight, global_totals)
    return group.sum_in_place(total.detach().reshape(1))[0]


def gathered_logits(logits: Sequence[torch.Tensor], group: SingleProcess) -> list[torch.Tensor]:
    """Each task's logits on the rows of every process, in rank order (the same on all of them)."""
    if not group.active:
        return list(logits)
    device = logits[0].device
    parts = group.gather([task.detach().cpu().clone() for task in logits])
    return [torch.cat(tasks).to(device) for tasks in zip(*parts)]


def validation_score(
    scorer: ValidationScorer, logits: Sequence[torch.Tensor], epoch: int, group: SingleProcess
) -> float:
    """``scorer`` on every process's validation rows; rank 0's value, on every process.

    Each process scores the gathered rows; an error on one stops all of them
    (:meth:`~skmtl._distributed.SingleProcess.share`), and rank 0's score
    decides, so that every process restores the same epoch even if the scorer
    is not deterministic.

    Raises
    ------
    ValueError
        If the score is not a number, or is NaN.
    """
    everything = gathered_logits(logits, group)

    def compute() -> float:
        value = scorer.score(everything)
        try:
            number = None if isinstance(value, (bool, str)) else float(value)
        except (TypeError, ValueError):
            number = None
        if number is None or math.isnan(number):
            raise ValueError(
                f"The validation score ({scorer.name}) was {value!r} at epoch {epoch}; early "
                "stopping needs a number that is not NaN. A metric undefined "
                "on the validation rows (e.g. ROC AUC of a task showing one class there) "
                "needs another scoring, a larger validation_fraction, or early_stopping=False."
            )
        return number

    try:
        return group.share(compute)[0]
    except Exception as exc:
        setattr(exc, _ON_EVERY_RANK, True)
        raise


def local_batch_size(batch_size: int, group: SingleProcess) -> int:
    """This process's part of a global batch of ``batch_size`` rows (split as evenly as can be)."""
    return batch_size // group.world_size + (group.rank < batch_size % group.world_size)


def _plan_threads(
    module, optimizer, run_step, data, all_known_unweighted, batch_size, max_steps,
    dropout_generator, group,
) -> tuple[ThreadGovernor | None, int | None]:
    """Apply the thread policy (:mod:`skmtl._threads`) to this training run.

    Returns the governor that times the steps (or None), and the count chosen
    without measuring (None where the policy leaves torch's count alone).
    """
    others = take_load_reading()  # taken here whatever follows: no reading outlives its fit
    n_threads = torch.get_num_threads()
    if (
        get_config()["thread_policy"] != "auto"
        or data.y.device.type != "cpu"
        or group.active
        or n_threads == 1
        or user_thread_limit() is not None
    ):
        return None, None
    size = min(batch_size, len(data))
    starts = sorted({int(s) for s in np.linspace(0, len(data) - size, CHECK_STEPS)})
    labels = data.y.T.to(torch.float32) if all_known_unweighted else None

    def run(net, opt):
        generator = torch.Generator(device=data.y.device)
        generator.set_state(dropout_generator.get_state())
        attach_generator(net, generator)
        net.train()  # as in training (the copy may come from a module left in eval mode)
        outputs = []
        for start in starts:  # several batches and states, one after the other
            total, losses = run_step(
                net, opt, data.slice(start, start + size),
                None if labels is None else labels[:, start:start + size], None,
            )
            outputs += [total.detach(), losses.detach()]
        return outputs

    def verify() -> bool:
        attach_generator(module, None)  # the copies get their own generator
        try:
            with torch.random.fork_rng(devices=[]):  # a user module may draw from it
                return steps_agree(run, module, optimizer, (n_threads, 1))
        finally:
            attach_generator(module, dropout_generator)

    fixed = fixed_thread_count(n_threads, step_work(module, batch_size))
    if max_steps < MIN_GOVERNED_STEPS or concurrent_fits():
        return None, fixed
    if fixed != 1:  # a large step may start on n_threads only once the check has passed
        if not verify():
            return None, fixed
        verify = None
    cores = available_cores()

    def room_for_threads() -> bool | None:
        if not others.supported:
            return True
        busy = others(min_seconds=LOAD_WINDOW)
        return None if busy is None else busy <= cores - n_threads + 0.25

    governor = ThreadGovernor(
        n_threads, fixed_threads=fixed, verify=verify, room_for_threads=room_for_threads
    )
    return governor, fixed


class _TrainingRun:
    """One call of :func:`train`: what setup decides, and one method per part of an epoch."""

    def __init__(self, module, data, validation, config, optimizer, group, user_module, backward):
        self.module = module
        self.data = data
        self.validation = validation
        self.config = config
        self.optimizer = optimizer
        self.group = group
        self.backward = backward_total if backward is None else backward
        # DistributedDataParallel averages the gradients over the processes;
        # their losses are parts of one sum, so scale back to that sum.
        self.gradient_scale = group.world_size if group.active else 1
        self.history = TrainingHistory(validation_scores=[] if validation is not None else None)
        self.device = data.y.device
        objective = config.objective
        self.batch_size = local_batch_size(config.batch_size, group)
        self.n_batches = -(-len(data) // self.batch_size)
        self.validation_totals = None
        if group.active:  # every process takes as many steps as the one with the most rows
            self.n_batches = max(group.gather(self.n_batches))
            if validation is not None:
                self.validation_totals = group.sum_in_place(
                    objective.batch_totals(validation.y, validation.sample_weight, len(validation), 1)
                )[0]
        self.weight_scale = self.mean_label_weights(objective, data, group)
        self.model = group.wrap(module, self.device, user_module)
        # Fast path: every label known and every row the same weight, binary tasks only.
        self.all_known_unweighted = (
            not group.active
            and objective.plain_binary()
            and bool((data.y >= 0).all())
            and bool((data.sample_weight == data.sample_weight[0]).all())
        )
        self.governor = self.fixed_threads = None
        self.best_state = None
        # The moving average of the weights of ``averaged`` (the floating-point
        # parameters, listed once: not per step), created at the first step.
        self.averaged = [p for p in module.parameters() if p.is_floating_point()]
        self.average = None
        self.average_steps = 0
        if validation is not None and config.previous_best_score is not None:
            # The earlier best's weights, scored again here: the objective (task or class
            # weights) or the validation rows may have changed since, and an epoch must beat
            # these weights in today's units to replace them.
            logits = predict_logits(module, validation.inputs)
            loss = float(validation_loss(logits, validation, config, group, self.validation_totals))
            self.history.best_validation_score = (
                -loss if config.validation_scorer is None
                else validation_score(config.validation_scorer, logits, 0, group)
            )
            self.best_state = copy.deepcopy(module.state_dict())
        self.epochs_without_improvement = 0

    @staticmethod
    def mean_label_weights(objective, data: TensorData, group) -> torch.Tensor | None:
        """Each task's mean label weight over the training rows (of every process), or None.

        The ``weight_scale`` of :func:`skmtl.losses.task_losses`: with it, a
        mini-batch's weighted loss sum is divided by its known labels times the
        global mean weight, not by its own total weight, so a heavy row is not
        capped at its batch's share. None (each batch's own total) where every
        row weighs the same; data-parallel training always computes it, as the
        processes' weights may differ from each other.
        """
        if not group.active and not objective.weighted(data.y, data.sample_weight):
            return None
        sums = objective.label_weight_sums(data.y, data.sample_weight)
        if group.active:
            sums = group.sum_in_place(sums)
        scale = sums[0] / sums[1].clamp_min(1)
        # A task without known labels (or of zero total weight) is never divided by it.
        scale = torch.where(scale > 0, scale, torch.ones_like(scale))
        return scale.to(torch.float32)

    def step(self, net, opt, batch, labels, batch_totals):
        """One optimisation step on ``batch``: forward, loss, backward, Adam."""
        objective = self.config.objective
        logits = net(*batch.inputs)
        if labels is not None:
            total, losses = objective.mean_binary_losses(logits, labels)
        elif batch_totals is None:
            total, losses = objective(
                logits, batch.y, batch.sample_weight, weight_scale=self.weight_scale
            )
        else:
            total, losses = objective(logits, batch.y, batch.sample_weight, batch_totals)
        opt.zero_grad(set_to_none=True)
        self.backward(total, losses, module=net, gradient_scale=self.gradient_scale)
        opt.step()
        return total, losses

    def update_average(self) -> None:
        """Move the average of the weights towards the weights after a step.

        An exponential moving average (Polyak averaging): after the ``t``-th
        step since the first, ``average += (1 - d_t) * (weights - average)``
        with ``d_t = max(0, min(1 - 1 / (ema_epochs * n_batches), (1 + t) / (10 + t)))``:
        a horizon of ``ema_epochs`` epochs, shorter at the start (about the
        last ``t / 9`` steps, until ``t`` is about ``9 * ema_epochs *
        n_batches``) so that the first epochs' average is not held back by the
        starting weights. The average starts as the weights after the first
        step.
        """
        with torch.no_grad():
            if self.average is None:
                self.average = [p.detach().clone() for p in self.averaged]
                return
            self.average_steps += 1
            t = self.average_steps
            # (a horizon shorter than a step, ema_epochs * n_batches < 1, keeps the
            # weights: a negative decay would extrapolate past them)
            decay = max(0.0, min(1.0 - 1.0 / (self.config.ema_epochs * self.n_batches),
                                 (1 + t) / (10 + t)))
            torch._foreach_lerp_(self.average, self.averaged, 1.0 - decay)

    @contextlib.contextmanager
    def averaged_weights(self):
        """The module holds the averaged weights inside the block, its own weights after."""
        if self.average is None:
            yield
            return
        self._swap_average()  # tensors exchanged, not copied: no extra memory
        try:
            yield
        finally:
            self._swap_average()

    def _swap_average(self) -> None:
        for i, param in enumerate(self.averaged):
            param.data, self.average[i] = self.average[i], param.data

    def plan_threads(self, dropout_generator: torch.Generator) -> None:
        """Apply the thread policy; from here on the rest of the epoch runs on the fixed count."""
        self.governor, self.fixed_threads = _plan_threads(
            self.module, self.optimizer, self.step, self.data, self.all_known_unweighted,
            self.batch_size, self.n_batches * self.config.max_iter, dropout_generator, self.group,
        )
        # Everything but the governed full-size steps (the last, smaller batch,
        # shuffles, loss bookkeeping, validation loss) runs on the count chosen
        # without measuring, re-set before each step: a fit running beside this one
        # in another thread may have changed it.
        if self.fixed_threads is not None:
            set_threads(self.fixed_threads)

    def run_epoch(self, shuffle_generator, state, batch_observers) -> tuple[torch.Tensor, torch.Tensor]:
        """Shuffle, then one step per batch.

        Returns the batches' losses ``(n_batches, 1 + n_tasks)`` (row b: the
        batch's total, then each task's) and their sizes, the same shape
        (row b: its rows, then each task's known-label weight: what that
        task's loss of the batch was divided by), summed over processes.
        """
        data, batch_size, n_batches, group = self.data, self.batch_size, self.n_batches, self.group
        model, optimizer, governor, fixed_threads = (
            self.model, self.optimizer, self.governor, self.fixed_threads
        )
        model.train()
        if self.config.shuffle:
            order = torch.randperm(len(data), generator=shuffle_generator).to(self.device)
            data = data.take(order)  # one gather per epoch; batches are then views
        starts = range(0, n_batches * batch_size, batch_size)
        totals = labels = None
        if self.all_known_unweighted:  # (T, n) float labels, sliced per batch
            labels = data.y.T.to(torch.float32)
        if group.active:  # (n_batches, T + 1): the global batches' denominators
            totals = group.sum_in_place(self.config.objective.batch_totals(
                data.y, data.sample_weight, batch_size, n_batches, self.weight_scale
            ))
        # One write per batch, read back once per epoch.
        batch_losses = torch.empty(n_batches, 1 + data.y.shape[1], device=self.device)
        for batch_number, start in enumerate(starts):
            batch = data.slice(start, start + batch_size)
            if governor is not None and len(batch) == batch_size:
                governor.start_step()
            elif fixed_threads is not None:
                set_threads(fixed_threads)
            total, losses = self.step(
                model, optimizer, batch,
                None if labels is None else labels[:, start:start + batch_size],
                None if totals is None else totals[batch_number],
            )
            if governor is not None and len(batch) == batch_size:
                governor.end_step()
            if self.config.ema_epochs is not None:
                self.update_average()
            torch.cat([total.detach().view(1), losses.detach()], out=batch_losses[batch_number])
            if batch_observers:
                state.batch = batch_number + 1
                state.batch_loss, state.batch_task_losses = total.detach(), losses.detach()
                for observer in batch_observers:
                    observer.on_batch_end(state)
        if fixed_threads is not None:  # the rest of the epoch on the fixed count
            set_threads(fixed_threads)
        if totals is None:
            rows = torch.tensor(
                [min(batch_size, len(data) - start) for start in starts],
                dtype=batch_losses.dtype, device=self.device,
            )
            # Each task's loss of a batch is a mean over that batch's known labels: the
            # epoch's mean weighs it by them (a batch without a task's labels adds nothing).
            tasks = None if labels is not None else self.config.objective.batch_totals(
                data.y, data.sample_weight, batch_size, n_batches, self.weight_scale
            )[:, :-1].to(batch_losses.dtype)
        else:
            group.sum_in_place(batch_losses)
            rows, tasks = totals[:, -1], totals[:, :-1]
        sizes = torch.cat([rows[:, None], rows[:, None].expand(-1, data.y.shape[1])
                           if tasks is None else tasks], dim=1)
        return batch_losses, sizes

    def check_finite(self, epoch: int, batch_losses: torch.Tensor) -> None:
        """Raise :class:`TrainingDivergedError` (on every process) if a batch loss is not finite."""
        finite = torch.isfinite(batch_losses[:, 0])
        bad_batch = -1 if bool(finite.all()) else int((~finite).nonzero()[0, 0])
        if self.group.decide(bad_batch >= 0):
            raise TrainingDivergedError(
                f"Training diverged: the loss became NaN or infinite at epoch {epoch}, "
                f"batch {bad_batch + 1}. Lower learning_rate_init (now "
                f"{self.config.learning_rate:g}), add an L2 penalty (alpha), avoid a tiny "
                "gate_temperature, or check the inputs and sample weights for extreme "
                "values."
            )

    def end_epoch(self, epoch: int, batch_losses, sizes, state: TrainingState) -> bool:
        """Record epoch ``epoch`` (from 1) and score it; whether early stopping says stop.

        Keeps the best validation epoch's weights, and fills ``state``'s
        epoch fields for the observers.
        """
        history, config = self.history, self.config
        means = epoch_means(batch_losses, sizes, config.objective).cpu().numpy()
        epoch_loss = float(means[0])
        history.loss_curve.append(epoch_loss)
        history.task_loss_curves.append(means[1:])
        history.n_iter = epoch
        score = loss = None
        if self.validation is not None:
            with self.averaged_weights():  # what fit would keep is what is scored
                logits = predict_logits(self.module, self.validation.inputs)
                loss = float(validation_loss(
                    logits, self.validation, config, self.group, self.validation_totals
                ))
                if config.validation_scorer is None:
                    score = -loss
                else:
                    score = validation_score(config.validation_scorer, logits, epoch, self.group)
                history.validation_scores.append(score)
                best = history.best_validation_score
                improved = best is None or score > best + config.tol
                if best is None or score > best:
                    history.best_validation_score = score
                    self.best_state = copy.deepcopy(self.module.state_dict())
                    state.best_epoch = epoch
        else:
            improved = epoch_loss < history.best_loss - config.tol
        history.best_loss = min(history.best_loss, epoch_loss)
        state.loss, state.task_losses = epoch_loss, means[1:]
        state.validation_loss, state.validation_score = loss, score
        state.improved = improved
        state.n_threads = None if self.governor is None else self.governor.current
        self.epochs_without_improvement = 0 if improved else self.epochs_without_improvement + 1
        return self.epochs_without_improvement >= config.n_iter_no_change

    def restore_best(self) -> None:
        """The best validation epoch's weights (if any; else the averaged weights, if
        averaging), rank 0's buffers, eval mode."""
        if self.best_state is not None:
            self.module.load_state_dict(self.best_state)
        elif self.average is not None:
            with torch.no_grad():
                torch._foreach_copy_(self.averaged, self.average)
        self.group.sync_buffers(self.module)
        self.module.eval()


def train(
    module: nn.Module,
    data: TensorData,
    validation: TensorData | None,
    config: TrainingConfig,
    *,
    shuffle_generator: torch.Generator,
    dropout_generator: torch.Generator,
    optimizer: torch.optim.Optimizer,
    group: SingleProcess = SingleProcess(),
    user_module: bool = False,
    observers: Sequence[TrainingObserver] = (),
    backward: BackwardStep | None = None,
) -> TrainingHistory:
    """Train ``module`` in place with ``optimizer`` on mini-batches of ``data``.

    With ``validation`` given, training stops once the validation score has not
    improved by ``tol`` for ``n_iter_no_change`` epochs and the weights of the
    best epoch are restored; otherwise the training loss is monitored the same
    way (without restoring). The validation score is ``config.validation_scorer``'s
    (:class:`ValidationScorer`) or, without one, minus the validation loss.

    ``optimizer`` (from :func:`make_optimizer`) may continue an earlier
    optimisation (``partial_fit``).

    ``observers`` (:class:`~skmtl._hooks.TrainingObserver`) are told of each
    epoch and batch and may stop training; with ``config.verbose`` a
    :class:`~skmtl._hooks.ProgressBar` (on rank 0) comes first. ``backward``
    (a :class:`~skmtl._hooks.BackwardStep`) turns each batch's task losses into
    gradients; None backpropagates the objective's total
    (:func:`~skmtl._hooks.backward_total`).

    Data-parallel training (``group`` a :class:`~skmtl._distributed.ProcessGroup`):
    ``data`` and ``validation`` are this process's shards and
    ``config.batch_size`` is the global batch; a validation scorer sees every
    process's validation logits, gathered. Every process takes the same
    number of steps per epoch; each step's loss is normalised by the global
    batch's label weights (:meth:`MultiTaskObjective.batch_totals`, summed
    over processes once per epoch) and ``DistributedDataParallel`` sums the
    gradients, so a step is the step of one process on the global batch.
    ``user_module`` (an architecture not built by skmtl) makes it look for
    unused parameters and send rank 0's buffers before every forward; at the
    end every rank gets rank 0's buffers. An unexpected error on one rank
    destroys the process group, so the other ranks fail at once instead of
    waiting for it.

    Raises
    ------
    TrainingDivergedError
        If a batch loss is NaN or infinite. The module is then left in an
        unspecified state: callers train a copy.
    """
    run = _TrainingRun(module, data, validation, config, optimizer, group, user_module, backward)
    history = run.history
    if config.verbose and group.rank == 0:
        observers = [ProgressBar(), *observers]
    batch_observers = [o for o in observers if overrides(o, "on_batch_end")]
    state = TrainingState(
        module=module, optimizer=optimizer, history=history, max_iter=config.max_iter,
        monitor=config.monitor if validation is not None else "training loss",
        score_name=(
            config.validation_scorer.name
            if validation is not None and config.validation_scorer is not None else None
        ),
        n_iter_no_change=config.n_iter_no_change, tol=config.tol, one_pass=config.one_pass,
        # 0: the starting weights are the best so far (warm_start's carried-over best).
        best_epoch=0 if run.best_state is not None else None,
    )
    with thread_scope():
        attach_generator(module, dropout_generator)
        try:
            for observer in observers:
                observer.on_train_begin(state)
            run.plan_threads(dropout_generator)
            for epoch in range(1, config.max_iter + 1):
                state.epoch = epoch
                for observer in observers:
                    observer.on_epoch_begin(state)
                batch_losses, sizes = run.run_epoch(shuffle_generator, state, batch_observers)
                run.check_finite(epoch, batch_losses)
                no_improvement = run.end_epoch(epoch, batch_losses, sizes, state)
                # Every observer sees the epoch's end, whether or not an earlier one stops.
                stop_requests = [observer.on_epoch_end(state) for observer in observers]
                if group.decide(no_improvement or any(stop_requests)):
                    history.converged = no_improvement
                    state.stop_reason = "no_improvement" if no_improvement else "observer"
                    break
            else:
                state.stop_reason = "max_iter"
            run.restore_best()
            history.best_epoch = state.best_epoch
        except TrainingDivergedError:  # raised on every rank alike
            raise
        except BaseException as exc:
            if not getattr(exc, _ON_EVERY_RANK, False):
                group.abort()
            raise
        finally:
            attach_generator(module, None)
            for observer in observers:
                observer.on_train_end(state)
    if config.warn_on_max_iter and state.stop_reason == "max_iter":
        warn_user(
            f"Stopped at max_iter={config.max_iter} epochs before the {state.monitor} stopped "
            "improving; consider increasing max_iter.",
            ConvergenceWarning,
        )
    return history
