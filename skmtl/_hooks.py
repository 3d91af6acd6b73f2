"""Extension points of the training loop (:func:`skmtl._training.train`).

Two kinds, both optional:

- observers (:class:`TrainingObserver`), told when training, each epoch and
  each batch begin or end, with a :class:`TrainingState` they may read (losses,
  validation score) and act on (the module and optimizer: a learning-rate
  schedule, a checkpoint); one may stop training after an epoch. The progress
  bar is one (:class:`ProgressBar`).
- the backward step (:class:`BackwardStep`), which turns the batch's task
  losses into gradients: the default backpropagates the objective's total
  (:func:`backward_total`); the estimators' ``task_balancing`` methods
  (uncertainty weighting, GradNorm, PCGrad: :mod:`skmtl._balancing`) replace it.

Both are arguments of ``train``; the estimators pass no observer of their own
except the balancer of ``task_balancing`` and the schedule of
``learning_rate_schedule="plateau"``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    from ._training import TrainingHistory


@dataclass(eq=False)
class TrainingState:
    """What observers see of one call of ``train``: one object, updated in place.

    Attributes
    ----------
    module : nn.Module
        The module being trained (not a data-parallel wrapper).
    optimizer : torch.optim.Optimizer
        Its optimizer; a schedule may change its ``param_groups``' learning rates.
    history : TrainingHistory
        The curves so far (``loss_curve``, ``task_loss_curves``,
        ``validation_scores``, ``best_loss``, ``best_validation_score``, ``n_iter``).
    max_iter : int
        Epochs at most.
    epoch : int
        The current epoch, counted from 1 (0 before the first one begins).
    batch : int
        In ``on_batch_end``: the batch just stepped on, counted from 1 in its epoch.
    batch_loss : Tensor of shape () or None
        In ``on_batch_end``: that batch's objective, detached, on the training
        device. ``float()`` on it waits for the device; in data-parallel
        training it is this process's part.
    batch_task_losses : Tensor of shape (n_tasks,) or None
        In ``on_batch_end``: that batch's loss of each task, as ``batch_loss``.
    loss : float or None
        From ``on_epoch_end``: the epoch's training loss, the value appended
        to ``history.loss_curve``: the task-weighted sum of ``task_losses``
        over the tasks that have one (not NaN), plus a funnel penalty's mean
        over the rows.
    task_losses : ndarray of shape (n_tasks,) or None
        From ``on_epoch_end``: each task's loss over the epoch's known labels
        (NaN for a task without any in the epoch).
    validation_loss : float or None
        From ``on_epoch_end``: the training objective on the validation rows,
        None without a validation set.
    validation_score : float or None
        From ``on_epoch_end``: what early stopping watches on the validation
        rows (greater is better): minus ``validation_loss``, or the score of
        the estimator's ``scoring`` (see ``score_name``); the value appended
        to ``history.validation_scores``. None without a validation set.
    improved : bool
        From ``on_epoch_end``: whether the monitored value (the validation
        score if there is a validation set, else the training loss) beat the
        best so far by more than ``tol``; an epoch that did not counts towards
        ``n_iter_no_change``.
    n_threads : int or None
        From ``on_epoch_end``: the thread count the thread policy's governor
        runs full-size steps on, None where no governor runs.
    monitor : str
        What early stopping watches, in words: ``"validation loss"``,
        ``"training loss"``, or ``"validation <score_name>"``.
    score_name : str or None
        The name of the validation score when it is not minus the validation
        loss (a ``scoring`` string, or ``"score"`` for a callable), else None.
    n_iter_no_change : int
        Epochs without improvement after which training stops.
    tol : float
        The improvement an epoch must make to count as one.
    one_pass : bool
        True in ``partial_fit``: one epoch over a chunk, no early stopping.
    best_epoch : int or None
        From ``on_epoch_end``: the epoch of the best validation score so far
        (whose weights are restored at the end); None without a validation set.
        0 from ``on_train_begin`` when the starting weights are the best so far
        (a ``warm_start`` fit continuing an earlier best).
    stop_reason : str or None
        In ``on_train_end``: ``"no_improvement"`` (early stopping),
        ``"observer"`` (an observer asked to stop), ``"max_iter"``, or None
        when training ended with an error.
    """

    module: nn.Module
    optimizer: torch.optim.Optimizer
    history: TrainingHistory
    max_iter: int
    epoch: int = 0
    batch: int = 0
    batch_loss: torch.Tensor | None = None
    batch_task_losses: torch.Tensor | None = None
    loss: float | None = None
    task_losses: np.ndarray | None = None
    validation_loss: float | None = None
    validation_score: float | None = None
    improved: bool = False
    n_threads: int | None = None
    monitor: str = "training loss"
    score_name: str | None = None
    n_iter_no_change: int = 0
    tol: float = 0.0
    one_pass: bool = False
    best_epoch: int | None = None
    stop_reason: str | None = None


class TrainingObserver:
    """Base class of the observers of ``train``: every method does nothing.

    A subclass overrides the methods it needs; each gets the run's
    :class:`TrainingState`. ``on_batch_end`` is called only on observers that
    override it, so that a fit without one pays nothing per batch.

    Observers are called in the order given, on every process of a
    data-parallel fit; there rank 0's decide whether training stops.
    """

    def on_train_begin(self, state: TrainingState) -> None:
        """Before the first epoch (and before the thread policy's check steps)."""

    def on_epoch_begin(self, state: TrainingState) -> None:
        """Before epoch ``state.epoch`` shuffles its rows."""

    def on_batch_end(self, state: TrainingState) -> None:
        """After the optimizer's step on batch ``state.batch`` of epoch ``state.epoch``."""

    def on_epoch_end(self, state: TrainingState) -> bool | None:
        """After epoch ``state.epoch`` is recorded and scored.

        Returns
        -------
        stop : bool or None
            True to stop training after this epoch (``n_iter_`` is then
            ``state.epoch``; the best weights are still restored where a
            validation set chose them).
        """

    def on_train_end(self, state: TrainingState) -> None:
        """Once training ends, however it ends (also after an error).

        After a normal end the module holds the weights ``train`` returns
        with (the best epoch's where a validation set chose them), in eval mode.
        """


def overrides(observer: TrainingObserver, method: str) -> bool:
    """Whether ``observer``'s class replaces :class:`TrainingObserver`'s ``method``."""
    return getattr(type(observer), method) is not getattr(TrainingObserver, method)


class ProgressBar(TrainingObserver):
    """A tqdm bar of the epochs, with the last losses and thread count, and why training ended.

    The bar names what early stopping watches and shows elapsed time and time
    per epoch, but no time remaining: training usually stops long before
    ``max_iter``, so an estimate for all of them would mislead. When training
    ends, one line says how: stopped early at epoch N (and which epoch's
    weights were restored), stopped by an observer, or ``max_iter`` reached.
    """

    BAR_FORMAT = "{desc}: {n_fmt}/{total_fmt} epochs [{elapsed}, {rate_inv_fmt}{postfix}]"

    def __init__(self):
        self._bar = None

    def on_train_begin(self, state: TrainingState) -> None:
        from tqdm.auto import tqdm

        description = (
            "partial_fit (one pass over the chunk)" if state.one_pass
            else f"fit (early stopping: {state.monitor}, patience {state.n_iter_no_change})"
        )
        self._bar = tqdm(
            total=state.max_iter, desc=description, unit="epoch", leave=True,
            bar_format=self.BAR_FORMAT,
        )

    def on_epoch_end(self, state: TrainingState) -> None:
        postfix = {"loss": f"{state.loss:.4f}"}
        if state.validation_loss is not None:
            postfix["val_loss"] = f"{state.validation_loss:.4f}"
        if state.score_name is not None and state.validation_score is not None:
            postfix[f"val_{state.score_name}"] = f"{state.validation_score:.4f}"
        if state.n_threads is not None:
            postfix["threads"] = state.n_threads
        self._bar.set_postfix(postfix)
        self._bar.update(1)

    def on_train_end(self, state: TrainingState) -> None:
        if self._bar is None:
            return
        bar, self._bar = self._bar, None
        shown = not bar.disable  # e.g. TQDM_DISABLE=1: no bar, no line (close() sets it)
        bar.close()
        message = ending_message(state)
        if message and shown:
            bar.write(message, file=bar.fp)


def ending_message(state: TrainingState) -> str | None:
    """One line on how training ended (None after an error, or after a ``partial_fit`` pass)."""
    if state.one_pass or state.stop_reason is None:
        return None
    restored = (
        "" if state.best_epoch is None
        else "earlier best restored" if state.best_epoch == 0  # warm_start's carried-over best
        else f"best epoch {state.best_epoch} restored"
    )
    if state.stop_reason == "no_improvement":
        by = f" by more than tol={state.tol:g}" if state.tol else ""
        return (
            f"stopped early at epoch {state.epoch} ({state.monitor} did not improve{by} for "
            f"{state.n_iter_no_change} epochs" + (f"; {restored})" if restored else ")")
        )
    if state.stop_reason == "observer":
        ending = f"stopped at epoch {state.epoch} by an observer"
    else:
        ending = f"reached max_iter={state.max_iter} epochs"
    return ending + (f" ({restored})" if restored else "")


class BackwardStep(Protocol):
    """Turns one batch's losses into gradients (``.grad`` of the parameters).

    ``train`` calls it between ``optimizer.zero_grad()`` and
    ``optimizer.step()``, once per batch. It is also called on throwaway
    copies of the module and optimizer before training starts (the thread
    policy's check, :mod:`skmtl._threads`), so it must act on the ``module``
    it is given, and any state it keeps across calls sees those calls too.

    Parameters
    ----------
    total : Tensor of shape ()
        The objective: the task-weighted sum of ``task_losses``, plus the
        funnel penalty where one is set.
    task_losses : Tensor of shape (n_tasks,)
        Each task's loss on the batch, attached to the graph.
    module : nn.Module
        The module of this step (a ``DistributedDataParallel`` wrapper in
        data-parallel training).
    gradient_scale : int
        The factor a gradient must carry (1 on one process; the number of
        processes in data-parallel training, where each process's losses are
        parts of one sum but ``DistributedDataParallel`` averages gradients).
    """

    def __call__(
        self, total: torch.Tensor, task_losses: torch.Tensor, *, module: nn.Module,
        gradient_scale: int,
    ) -> None: ...


def backward_total(
    total: torch.Tensor, task_losses: torch.Tensor, *, module: nn.Module, gradient_scale: int
) -> None:
    """The default :class:`BackwardStep`: backpropagate the objective's ``total``."""
    (total * gradient_scale if gradient_scale != 1 else total).backward()
