"""Plots of a fitted :class:`~skmtl.MultiTaskClassifier`.

Two helpers, each drawing on a matplotlib ``Axes`` (a new figure when none is
given) and returning it:

- :func:`plot_learning_curves`: the training loss per epoch (the weighted total
  and each task's), and the validation loss when early stopping was on;
- :func:`plot_expert_usage`: how much each task's gate weighs each expert on
  average over some inputs (``"moe"`` and ``"mmoe"`` only).

matplotlib is an optional dependency (``pip install "skmtl[plot]"``); it is
imported when a function here is called, not when :mod:`skmtl` is imported.
"""

from __future__ import annotations

import numpy as np
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted

from ._base import kept_epoch_from_scores
from .metrics import _final_model, _final_model_and_input

__all__ = ["plot_expert_usage", "plot_learning_curves"]


def _pyplot():
    """Import and return ``matplotlib.pyplot``, or explain how to install it.

    Returns
    -------
    module
        ``matplotlib.pyplot``.

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    """
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:  # pragma: no cover - exercised only without matplotlib
        raise ImportError(
            "skmtl.plotting needs matplotlib, which is not installed. Install it with "
            "`pip install \"skmtl[plot]\"` (or `pip install matplotlib`)."
        ) from exc
    return plt


def _axes(ax):
    """Return ``ax``, or the Axes of a new figure when ``ax`` is None."""
    if ax is not None:
        return ax
    _, ax = _pyplot().subplots()
    return ax


def _task_names(estimator) -> list[str]:
    names = getattr(estimator, "task_names_", None)
    if names is None:
        return [f"task_{t}" for t in range(estimator.n_outputs_)]
    return [str(name) for name in names]


def _kept_epoch(estimator, scores: np.ndarray) -> int | None:
    """The epoch whose weights the estimator kept (1-based), or None when none is.

    Recorded by the fit (``_kept_epoch_``); for a model fitted before it was,
    read from the scores (:func:`~skmtl._base.kept_epoch_from_scores`).
    """
    if hasattr(estimator, "_kept_epoch_"):
        return estimator._kept_epoch_
    return kept_epoch_from_scores(scores, getattr(estimator, "best_validation_score_", None))


def plot_learning_curves(estimator, *, ax=None, tasks=True, validation=True, ylim="auto"):
    """Plot the loss per epoch of a fitted multi-task classifier.

    Draws the training loss ``loss_curve_`` (the weighted sum over tasks that
    the optimiser minimises), each task's training loss from
    ``task_loss_curves_``, and, when the estimator was fitted with early
    stopping, the validation loss (``-validation_scores_``, the same weighted
    objective on the held-out rows) with a dotted vertical line at the best
    epoch, whose weights the estimator kept. With a ``scoring`` other than
    ``"loss"``, ``validation_scores_`` holds that score instead: it is drawn
    on a second y axis on the right (``ax.figure.axes[-1]``, sharing the
    epochs), with the same best-epoch line on ``ax``.

    The first epoch's training loss, averaged over batches of a network still
    close to its initialisation, is often several times the later ones; on a
    linear axis that includes it, the later epochs, where models differ, are a
    flat band. By default the y range therefore fits the epochs from the
    second on, and the x label says when the first epoch lies above it.

    Parameters
    ----------
    estimator : MultiTaskClassifier
        A fitted estimator.
    ax : matplotlib.axes.Axes, default=None
        Where to draw; a new figure is created when None.
    tasks : bool, default=True
        Also draw one line per task (dashed).
    validation : bool, default=True
        Also draw the validation loss when it was recorded.
    ylim : "auto", None or (float, float), default="auto"
        The y range. ``"auto"``: that of the drawn losses from the second
        epoch on (all epochs when there are fewer than three), with a margin;
        where a first-epoch value lies above it, its segment leaves the axes
        and the x label says so. None: matplotlib's own range,
        which shows every point. A pair: ``(bottom, top)``, as in
        ``ax.set_ylim``.

    Returns
    -------
    ax : matplotlib.axes.Axes
        The Axes drawn on. Its lines are, in order: the total training loss,
        one line per task (if ``tasks``), the validation loss (if recorded and
        ``validation``, and ``scoring="loss"``) and the best epoch's vertical
        line. Epochs on the x axis start at 1.

    Raises
    ------
    ValueError
        If ``ylim`` is neither ``"auto"``, None nor a pair.

    See Also
    --------
    plot_expert_usage : Mean gate weight of each expert per task.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from skmtl import MultiTaskClassifier
    >>> from skmtl.datasets import make_multitask_classification
    >>> from skmtl.plotting import plot_learning_curves
    >>> X, y = make_multitask_classification(300, 8, random_state=0)
    >>> clf = MultiTaskClassifier(max_iter=5, random_state=0).fit(X, y)
    >>> ax = plot_learning_curves(clf)
    >>> len(ax.lines)  # total + one per task (no early stopping on 300 rows)
    3
    """
    if ylim is not None and not (isinstance(ylim, str) and ylim == "auto"):
        if isinstance(ylim, str) or len(ylim) != 2:
            raise ValueError(f"ylim must be 'auto', None or (bottom, top); got {ylim!r}.")
    estimator = _final_model(estimator)  # a Pipeline's, a search's or a FrozenEstimator's
    check_is_fitted(estimator, "loss_curve_")
    ax = _axes(ax)
    loss = np.asarray(estimator.loss_curve_, dtype=float)
    epochs = np.arange(1, len(loss) + 1)
    drawn = [loss]
    ax.plot(epochs, loss, color="black", linewidth=2, label="training loss (total)")
    if tasks:
        task_curves = np.asarray(estimator.task_loss_curves_, dtype=float)
        for t, name in enumerate(_task_names(estimator)):
            ax.plot(epochs, task_curves[:, t], linestyle="--", label=f"training loss: {name}")
            drawn.append(task_curves[:, t])
    scores = getattr(estimator, "validation_scores_", None)
    score_ax = None
    if validation and scores:
        scores = np.asarray(scores, dtype=float)
        # What the recorded scores measured (not the scoring set since the fit).
        monitor = getattr(estimator, "_validation_monitor_", None) or "loss"
        scoring = "loss" if monitor == "loss" else monitor.split(": ", 1)[0]
        if scoring == "loss":
            ax.plot(epochs[: len(scores)], -scores, color="tab:red", linewidth=2,
                    label="validation loss (total)")
            drawn.append(-scores)
        else:  # another unit: its own axis
            name = f"validation {scoring}"
            score_ax = ax.twinx()
            score_ax.plot(epochs[: len(scores)], scores, color="tab:red", linewidth=2,
                          label=name)
            score_ax.set_ylabel(name)
        best_epoch = _kept_epoch(estimator, scores)
        if best_epoch is not None:
            ax.axvline(best_epoch, color="tab:red", linestyle=":", linewidth=1,
                       label=f"best epoch ({best_epoch})")
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    if ylim == "auto":
        _fit_ylim_to_later_epochs(ax, drawn)
    elif ylim is not None:
        ax.set_ylim(*ylim)
    handles, labels = ax.get_legend_handles_labels()
    if score_ax is not None:
        more = score_ax.get_legend_handles_labels()
        handles, labels = handles + more[0], labels + more[1]
    ax.legend(handles, labels, fontsize="small")
    return ax


def _fit_ylim_to_later_epochs(ax, curves) -> None:
    """Set the y range to the curves' values from the second epoch on (see ``ylim``)."""
    if min(len(curve) for curve in curves) < 3:
        return
    later = np.concatenate([curve[1:] for curve in curves])
    later = later[np.isfinite(later)]
    if later.size == 0:
        return
    low, high = float(later.min()), float(later.max())
    margin = 0.05 * (high - low) if high > low else 0.05 * max(abs(high), 1e-12)
    low, high = low - margin, high + margin
    first = np.array([curve[0] for curve in curves], dtype=float)
    if not np.any(first > high):
        return  # the first epoch fits: matplotlib's own range is as good
    ax.set_ylim(low, high)
    ax.set_xlabel("epoch (epoch 1 lies above the y range)")


def _expert_labels(estimator, n_experts: int) -> list[str]:
    """The expert axis's labels: PLE's gates weigh each task's own experts, then the shared ones.

    So for PLE the first ``n_task_experts`` positions are a different network
    for each task ("own expert i"), and the rest the shared experts.
    """
    spec = getattr(estimator, "network_spec_", None) or {}  # the fitted network, not set_params
    if spec.get("architecture") == "ple":
        own = int(spec["options"]["n_task_experts"])
        return ([f"own expert {e}" for e in range(own)]
                + [f"shared expert {e}" for e in range(n_experts - own)])
    return [f"expert {e}" for e in range(n_experts)]


def plot_expert_usage(estimator, X, *, ax=None, kind="bar"):
    """Plot each task's average gate weight per expert.

    For every task ``t`` and expert ``e`` the quantity drawn is
    ``estimator.gate_weights(X).mean(axis=0)[t, e]``: the weight that task's
    gate gives the expert, averaged over the rows of ``X``. Each task's weights
    sum to 1. With ``architecture="mmoe"`` every task has its own gate, so the
    rows differ when the tasks use the experts differently; with ``"moe"`` the
    one gate is shared and all tasks show the same weights. With ``"ple"``
    each task's gate (the last level's) weighs its own experts, then the
    shared ones: the axis is labelled "own expert i" (a different network for
    each task) and "shared expert j".

    Parameters
    ----------
    estimator : MultiTaskClassifier
        A fitted estimator with gates (``architecture`` ``"moe"``, ``"mmoe"``
        or ``"ple"``, or a user module with ``gate_weights``).
    X : array-like or DataFrame of shape (n_samples, n_features)
        Inputs on which the gate weights are averaged.
    ax : matplotlib.axes.Axes, default=None
        Where to draw; a new figure is created when None.
    kind : {"bar", "heatmap"}, default="bar"
        ``"bar"``: grouped bars, one group per expert and one bar per task
        (``ax.containers[t]`` holds task ``t``'s bars) and a dotted line at
        ``1 / n_experts``, the weight of every expert under a uniform gate,
        labelled as such in the legend.
        ``"heatmap"``: an
        image with tasks as rows, experts as columns and each cell's value
        written in it.

    Returns
    -------
    ax : matplotlib.axes.Axes
        The Axes drawn on.

    Raises
    ------
    ValueError
        If ``kind`` is unknown or the estimator's architecture has no gates.

    See Also
    --------
    MultiTaskClassifier.gate_weights : The per-sample weights averaged here.
    plot_learning_curves : Loss per epoch.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from skmtl import MultiTaskClassifier
    >>> from skmtl.datasets import make_multitask_classification
    >>> from skmtl.plotting import plot_expert_usage
    >>> X, y = make_multitask_classification(300, 8, random_state=0)
    >>> clf = MultiTaskClassifier("mmoe", n_experts=3, max_iter=5, random_state=0).fit(X, y)
    >>> ax = plot_expert_usage(clf, X)
    >>> [len(bars) for bars in ax.containers]  # one bar per expert, for each task
    [3, 3]
    """
    if kind not in ("bar", "heatmap"):
        raise ValueError(f"kind must be 'bar' or 'heatmap'; got {kind!r}.")
    if isinstance(estimator, Pipeline):
        check_is_fitted(estimator)
    # down to the model (in a Pipeline, a search, ...), with what the earlier steps make of X
    estimator, X = _final_model_and_input(estimator, X)
    check_is_fitted(estimator)
    if not hasattr(estimator, "gate_weights"):
        raise ValueError(
            "plot_expert_usage needs a model with gates (architecture 'moe', 'mmoe', 'ple', "
            "or a module with a gate_weights method); this one has "
            f"architecture={getattr(estimator, 'architecture', None)!r}."
        )
    weights = estimator.gate_weights(X)
    mean = weights.mean(axis=0)  # (n_tasks, n_experts)
    n_tasks, n_experts = mean.shape
    names = _task_names(estimator)
    labels = _expert_labels(estimator, n_experts)
    ax = _axes(ax)
    if kind == "bar":
        width = 0.8 / n_tasks
        positions = np.arange(n_experts)
        handles = []
        for t in range(n_tasks):
            offset = (t - (n_tasks - 1) / 2) * width
            handles.append(ax.bar(positions + offset, mean[t], width=width, label=names[t]))
        ax.set_xticks(positions, labels)
        ax.set_ylabel("mean gate weight")
        handles.append(ax.axhline(1.0 / n_experts, color="grey", linestyle=":", linewidth=1,
                                  label=f"uniform gate (1/{n_experts})"))
        ax.set_ylim(0.0, 1.25 * float(mean.max()))  # room for the legend above the bars
        ax.legend(handles=handles, fontsize="small", loc="upper right", ncol=min(n_tasks + 1, 3))
    else:
        image = ax.imshow(mean, vmin=0.0, vmax=max(float(mean.max()), 1e-12), cmap="viridis",
                          aspect="auto")
        for t in range(n_tasks):
            for e in range(n_experts):
                ax.text(e, t, f"{mean[t, e]:.2f}", ha="center", va="center",
                        color="white" if mean[t, e] < 0.6 * mean.max() else "black")
        ax.set_xticks(np.arange(n_experts), labels)
        ax.set_yticks(np.arange(n_tasks), names)
        ax.figure.colorbar(image, ax=ax, label="mean gate weight")
    spec = getattr(estimator, "network_spec_", None) or {}
    architecture = spec.get("architecture", getattr(estimator, "architecture", ""))
    if not isinstance(architecture, str):  # a user-defined module (a class or a factory)
        architecture = getattr(architecture, "__name__", type(architecture).__name__)
    ax.set_title(f"{architecture}: mean gate weight per expert")
    return ax
