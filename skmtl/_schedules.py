"""Learning-rate schedules of ``fit``: training observers that set the optimiser's rates.

The estimator's ``learning_rate_schedule`` names one:

- ``"constant"``: no observer; every step uses ``learning_rate_init``.
- ``"plateau"``: :class:`PlateauSchedule`, the rate divided by 5 once early
  stopping's monitored value has not improved for half of ``n_iter_no_change``
  epochs (as :class:`torch.optim.lr_scheduler.ReduceLROnPlateau`, and as
  scikit-learn's ``MLPClassifier(learning_rate="adaptive")`` divides it by 5).

A schedule only ever scales the rates the optimiser was built with, and puts
them back when training ends, so that ``optimizer_`` holds the configured rate
(``partial_fit``, which trains one epoch per call, keeps it constant).
"""

from __future__ import annotations

from ._hooks import TrainingObserver, TrainingState

SCHEDULES = ("constant", "plateau")

PLATEAU_FACTOR = 0.2
"""What the rate is multiplied by at each plateau."""


class PlateauSchedule(TrainingObserver):
    """Multiply the learning rate by ``factor`` after ``patience`` epochs without improvement.

    "Improvement" is early stopping's (:attr:`TrainingState.improved`: the
    monitored value beat its best by more than ``tol``), so the schedule
    and early stopping watch the same thing: with ``patience`` half of
    ``n_iter_no_change``, the rate drops once, and training stops unless the
    lower rate improves within the other half.

    Parameters
    ----------
    patience : int
        Epochs without improvement before each reduction (>= 1).
    factor : float, default=PLATEAU_FACTOR
        Multiplier of the rate at each reduction, in (0, 1).
    """

    def __init__(self, patience: int, factor: float = PLATEAU_FACTOR):
        self.patience = max(1, int(patience))
        self.factor = float(factor)
        self.scale = 1.0
        self.waited = 0
        self.base_rates: list[float] = []

    def on_train_begin(self, state: TrainingState) -> None:
        self.base_rates = [group["lr"] for group in state.optimizer.param_groups]
        self.scale, self.waited = 1.0, 0

    def on_epoch_end(self, state: TrainingState) -> bool:
        self.waited = 0 if state.improved else self.waited + 1
        if self.waited >= self.patience:
            self.scale *= self.factor
            self.waited = 0
            for group, rate in zip(state.optimizer.param_groups, self.base_rates):
                group["lr"] = rate * self.scale
        return False

    def on_train_end(self, state: TrainingState) -> None:
        for group, rate in zip(state.optimizer.param_groups, self.base_rates):
            group["lr"] = rate


def schedule_observers(name: str, n_iter_no_change: int, one_pass: bool) -> list[TrainingObserver]:
    """The observers of schedule ``name`` (none for ``"constant"`` and for ``partial_fit``)."""
    if name == "constant" or one_pass:
        return []
    if name == "plateau":
        return [PlateauSchedule(patience=n_iter_no_change // 2)]
    raise ValueError(f"unknown learning_rate_schedule {name!r}; expected one of {SCHEDULES}")
