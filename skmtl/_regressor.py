"""The public regressor: its parameters, its targets and losses, predictions and scores.

Inputs, the network, training and persistence of the fitted state are the
shared base's (:mod:`skmtl._base`); the targets' scaling and the losses are
:mod:`skmtl._regression`'s.
"""

from __future__ import annotations

import re
from numbers import Real

import numpy as np
import torch
from sklearn.base import RegressorMixin, _fit_context
from sklearn.metrics import r2_score
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_consistent_length, check_is_fitted

from ._base import BaseMultiTaskNetwork, checked_score_weights
from ._classifier import MultiTaskClassifier
from ._fit_guards import keep_state_on_error
from ._keyed_settings import task_weight_vector
from ._regression import (
    LOSSES,
    RegressionObjective,
    check_log_loss_targets,
    check_losses,
    check_poisson_targets,
    regression_targets,
)
from ._targets import check_scored_tasks, misnamed_tasks
from ._warnings import UntrainableTaskWarning, warn_user


class MultiTaskRegressor(RegressorMixin, BaseMultiTaskNetwork):
    """Multi-task neural network regressor (shared-bottom, MoE, MMoE, PLE, AITM...) on PyTorch.

    One model learns several real-valued targets at once, sharing its
    parameters across them: the inputs, architectures, training, persistence
    and data-parallel paths of :class:`MultiTaskClassifier`, with one output
    per task and a loss per task named as
    :class:`~sklearn.ensemble.HistGradientBoostingRegressor` names them. The
    network learns standardised targets (each task's mean and standard
    deviation over the known targets given to ``fit``, early stopping's
    validation rows included, like the continuous columns' scaling; for ``"poisson"`` the targets divided by their mean, as
    a log link must not be centred) and
    :meth:`predict` returns the user's units.

    Binary tasks can sit next to real-valued ones (a click and a watch
    time): give them ``loss="log_loss"`` and 0/1 targets. A regressor
    predicts ``E[y | x]``, which for a 0/1 target is ``P(y = 1 | x)``, so
    :meth:`predict` returns that probability in the task's column (the
    sigmoid of the network's output, a logit link) and the real-valued
    prediction in the others.

    Parameters
    ----------
    architecture : {"shared_bottom", "moe", "mmoe", "ple", "aitm", "single_task"} \
            or callable, default="mmoe"
        The network, as in :class:`MultiTaskClassifier` (every task has one
        output).

    loss : {"squared_error", "absolute_error", "huber", "poisson", "log_loss"} \
            or dict, default="squared_error"
        Each task's loss: one name for every task, or a dict keyed by task
        name (or index; tasks not named get ``"squared_error"``).
        ``"squared_error"`` is half the squared error; ``"absolute_error"``
        predicts a conditional median; ``"huber"`` is squared within
        ``huber_delta`` of the target and linear beyond; ``"poisson"`` is the
        Poisson deviance with a log link, for non-negative targets (counts,
        rates) with at least one positive; ``"log_loss"`` is the binary
        cross-entropy with a logit link, for a binary task: targets 0/1, or
        probabilities in [0, 1] (soft labels, rates), used unscaled; the task
        predicts ``P(y = 1 | x)``. Targets outside [0, 1] are refused (a
        multiclass task belongs in :class:`MultiTaskClassifier`, or in one
        0/1 column per class).

    huber_delta : float or dict, default=1.0
        Used only where a task's ``loss`` is ``"huber"``: the distance from the
        target, in the target's own units, where the loss turns from squared
        to linear. A dict keyed by task gives each task its own (others: 1.0).

{shared_parameters}

    Attributes
    ----------
    n_outputs_ : int
        Number of tasks.
    task_names_ : ndarray of str
        Task names: DataFrame ``y`` columns, else ``task_0``, ``task_1``, ...
    loss_ : list of str
        Each task's loss.
    target_offset_, target_scale_ : ndarray of shape (n_outputs_,)
        The scaling of each task's targets learnt in ``fit``: the network's
        output ``z`` predicts ``target_offset_ + target_scale_ * z``
        (``target_scale_ * exp(z)`` for ``"poisson"``; ``sigmoid(z)`` for
        ``"log_loss"``, whose offset is 0 and scale 1).
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of str
        Feature names, when ``X`` is a DataFrame with string column names.
    is_categorical_ : ndarray of bool of shape (n_features_in_,)
        Which features were treated as categorical.
    categories_ : list of (ndarray or None)
        Categories with an embedding row of their own, per feature (a
        sequence or shared column: its table's).
    encoder_ : object
        The fitted column encoder (vocabularies, continuous mean and scale).
    module_ : torch.nn.Module
        The trained PyTorch model; it maps categorical codes and standardised
        continuous values to a list of per-task outputs (scaled targets).
    network_spec_ : dict
        Everything needed to rebuild ``module_`` (untrained).
    n_iter_ : int
        Number of epochs trained (counting on across ``partial_fit`` calls and
        ``warm_start`` fits).
    optimizer_ : torch.optim.Adam or None
        The optimiser of the last ``fit``; ``partial_fit`` continues it.
    loss_curve_ : list of float
        Training loss (the weighted sum over tasks, in scaled units) at each
        epoch.
    task_loss_curves_ : ndarray of shape (n_iter_, n_outputs_)
        Each task's training loss at each epoch, over the epoch's known
        targets (as in :class:`MultiTaskClassifier`; NaN for a task without
        any in the epoch).
    task_balance_weights_ : ndarray of shape (n_iter_, n_outputs_)
        Each task's effective weight at each epoch, as in
        :class:`MultiTaskClassifier` (see ``task_balancing``).
    validation_scores_ : list of float or None
        Negative validation loss at each epoch, when early stopping is on.
    best_validation_score_ : float or None
        Best of ``validation_scores_``, whose epoch's weights were kept (with
        ``warm_start``, over every fit, as in the classifier).
    best_loss_ : float
        Lowest training loss.
    device_ : torch.device
        Device the model was trained on.
    objective_ : object
        The loss of the fit; it also turns network outputs into predictions.

    See Also
    --------
    MultiTaskClassifier : The same networks for classification tasks.
    sklearn.neural_network.MLPRegressor : A single-network regressor.
    sklearn.multioutput.MultiOutputRegressor : One independent model per task.

    Notes
    -----
    Targets that are NaN/None/``pd.NA`` are unknown for their task: they are
    left out of that task's loss only, and :meth:`score` skips them.
    scikit-learn's built-in regression scorers raise on NaN in ``y``.

    The estimator type is ``"regressor"`` with binary (``"log_loss"``) tasks
    too: scikit-learn's default cross-validation splits it with ``KFold``,
    and :meth:`score` is the R^2 of every task, which for a ``"log_loss"``
    task is the Brier skill score (1 - Brier score / Brier score of the base
    rate). The per-task scorers of :mod:`skmtl.metrics` score a
    ``"log_loss"`` task's column of :meth:`predict` with ROC AUC, average
    precision or log loss, e.g. ``make_task_scorer("roc_auc", task="click")``.
    ``class_weight`` and ``funnel`` are :class:`MultiTaskClassifier`'s
    (weight rows with ``sample_weight``).

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl import MultiTaskRegressor
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(300, 4))
    >>> y = np.column_stack([X[:, 0] + X[:, 1], np.sin(X[:, 0]) * 10 + 50])
    >>> reg = MultiTaskRegressor(max_iter=50, random_state=0).fit(X, y)
    >>> reg.predict(X[:3]).shape
    (3, 2)

    A binary task (here task 0, 0/1 targets) next to a real-valued one:

    >>> y_mixed = np.column_stack([X[:, 0] + X[:, 1] > 0, X[:, 2] * 100])
    >>> mixed = MultiTaskRegressor(loss={0: "log_loss"}, max_iter=20, random_state=0)
    >>> p_click = mixed.fit(X, y_mixed).predict(X)[:, 0]   # P(y_0 = 1 | x)
    >>> bool(((p_click > 0) & (p_click < 1)).all())
    True
    """

    _parameter_constraints: dict = {
        **BaseMultiTaskNetwork._parameter_constraints,
        "loss": [StrOptions(set(LOSSES)), dict],
        "huber_delta": [Interval(Real, 0, None, closed="neither"), dict],
    }

    def __init__(
        self,
        architecture="mmoe",
        *,
        loss="squared_error",
        huber_delta=1.0,
        categorical_features="from_dtype",
        embedding_dim=8,
        min_frequency=5,
        max_categories=None,
        category_dropout=0.02,
        numeric_embedding="auto",
        continuous_projection="auto",
        sequence_features=None,
        sequence_pooling="mean",
        attention_queries=None,
        attention_weights="softmax",
        max_sequence_length=20,
        shared_embeddings=None,
        expert_layer_sizes=(64, 32),
        n_experts=4,
        gate_temperature=10.0,
        n_levels=2,
        n_task_experts=1,
        n_shared_experts=2,
        tower_layer_sizes=(32,),
        activation="relu",
        dropout=0.0,
        embedding_dropout=0.0,
        task_weights=None,
        task_balancing="fixed",
        feature_groups=None,
        n_group_experts=1,
        learning_rate_init=1e-3,
        alpha=0.0,
        weight_decay=0.0,
        learning_rate_schedule="constant",
        ema_epochs=1.0,
        weight_init="torch",
        batch_size="auto",
        max_iter=200,
        shuffle=True,
        early_stopping="auto",
        scoring="loss",
        validation_fraction=0.1,
        n_iter_no_change=10,
        tol=1e-4,
        warm_start=False,
        device="auto",
        distributed=False,
        random_state=None,
        verbose=0,
    ):
        self.architecture = architecture
        self.loss = loss
        self.huber_delta = huber_delta
        self.categorical_features = categorical_features
        self.embedding_dim = embedding_dim
        self.min_frequency = min_frequency
        self.max_categories = max_categories
        self.category_dropout = category_dropout
        self.numeric_embedding = numeric_embedding
        self.continuous_projection = continuous_projection
        self.sequence_features = sequence_features
        self.sequence_pooling = sequence_pooling
        self.attention_queries = attention_queries
        self.attention_weights = attention_weights
        self.max_sequence_length = max_sequence_length
        self.shared_embeddings = shared_embeddings
        self.expert_layer_sizes = expert_layer_sizes
        self.n_experts = n_experts
        self.gate_temperature = gate_temperature
        self.n_levels = n_levels
        self.n_task_experts = n_task_experts
        self.n_shared_experts = n_shared_experts
        self.tower_layer_sizes = tower_layer_sizes
        self.activation = activation
        self.dropout = dropout
        self.embedding_dropout = embedding_dropout
        self.task_weights = task_weights
        self.task_balancing = task_balancing
        self.feature_groups = feature_groups
        self.n_group_experts = n_group_experts
        self.learning_rate_init = learning_rate_init
        self.alpha = alpha
        self.weight_decay = weight_decay
        self.learning_rate_schedule = learning_rate_schedule
        self.ema_epochs = ema_epochs
        self.weight_init = weight_init
        self.batch_size = batch_size
        self.max_iter = max_iter
        self.shuffle = shuffle
        self.early_stopping = early_stopping
        self.scoring = scoring
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.tol = tol
        self.warm_start = warm_start
        self.device = device
        self.distributed = distributed
        self.random_state = random_state
        self.verbose = verbose

    # ---------------------------------------------------------------- fitting
    @_fit_context(prefer_skip_nested_validation=True)
    @keep_state_on_error
    def fit(self, X, y, sample_weight=None):
        """Fit the model to ``X`` and the multi-task targets ``y``.

        Parameters
        ----------
        X : array-like, DataFrame or sparse matrix of shape (n_samples, n_features)
            Input features. Categorical columns are chosen by
            ``categorical_features``; the others must be numeric and finite.
            A scipy sparse matrix holds continuous columns only and is never
            densified whole (see the user guide's "Sparse input").
        y : array-like or DataFrame of shape (n_samples, n_tasks) or (n_samples,)
            Targets of each task (numbers); NaN/None marks an unknown target,
            left out of that task's loss.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each row; a row of weight ``k`` trains as
            ``k`` copies of it would, in expectation over the mini-batches.
            Only the ratios matter (see :meth:`MultiTaskClassifier.fit`).

        Returns
        -------
        self : MultiTaskRegressor
            The fitted estimator.
        """
        return self._fit(X, y, sample_weight, reuse=self.warm_start and hasattr(self, "module_"))

    @_fit_context(prefer_skip_nested_validation=True)
    @keep_state_on_error
    def partial_fit(self, X, y, sample_weight=None, *, categories=None):
        """Train one epoch on a chunk of data, continuing from earlier calls.

        The first call builds the model and learns the targets' scaling, the
        categorical vocabularies (or takes them from ``categories``) and the
        continuous columns' mean and scale from this chunk; later calls train
        the same model with the same Adam state. Early stopping and
        ``max_iter`` do not apply.

        Parameters
        ----------
        X : array-like, DataFrame or sparse matrix of shape (n_samples, n_features)
            A chunk of input features.
        y : array-like or DataFrame of shape (n_samples, n_tasks) or (n_samples,)
            Its targets; NaN/None marks an unknown target.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each row.
        categories : dict, default=None
            First call only: the full set of categories of some categorical
            or sequence columns, keyed by column name (or index), as in
            :meth:`MultiTaskClassifier.partial_fit`.

        Returns
        -------
        self : MultiTaskRegressor
            The updated estimator.
        """
        first = not hasattr(self, "module_")

        def check_call():
            if not first and categories is not None:
                raise ValueError("categories are taken on the first partial_fit call only.")

        return self._fit(
            X, y, sample_weight, reuse=not first, partial=True, categories=categories,
            check_call=check_call,
        )

    # ------------------------------------------------------- the tasks' part
    def _fit_targets(self, y, group, *, reuse, partial, classes, sample_weight=None):
        """The targets, scaled as the fitted model's (when continuing) or as learnt here."""
        targets = group.run(lambda: regression_targets(y))
        names = group.share(lambda: targets.task_names)
        if any(other != targets.task_names for other in names):
            raise ValueError(
                "Every process of a distributed fit must pass y with the same tasks; "
                f"got {names}."
            )
        if (reuse and len(targets.task_names) == len(self.task_names_)
                and misnamed_tasks(y, self.task_names_) is None):
            # Matched by position (an array, a Series, the same names, or any names for
            # a model fitted without them), as the classifier does: the tasks keep the
            # fitted names, which settings and scorers refer to.
            targets.task_names = [str(name) for name in self.task_names_]
        if reuse and partial:  # a chunk's y of shape (n, 1) continues a 1-D fit as 1-D
            targets.one_dimensional = self._one_dimensional_
        losses, deltas = check_losses(self.loss, self.huber_delta, targets.task_names)
        # A continued chunk may be all zeros where the scale is learnt (not for a task
        # first seen now: its scale, the mean, comes from this call).
        learnt = np.asarray(self._trained_tasks_, dtype=bool) if reuse else None
        check_poisson_targets(losses, targets.task_names, targets.values, group,
                              need_positive=True if learnt is None else ~learnt)
        check_log_loss_targets(losses, targets.task_names, targets.values, group)
        targets.task_weights = task_weight_vector(self.task_weights, targets.task_names)
        if reuse:
            self._check_same_tasks(targets, losses, partial)
            earlier = np.asarray(self._trained_tasks_, dtype=bool)
            # (a model fitted before the spread was recorded counts its tasks as scaled)
            scaled = earlier & np.asarray(getattr(self, "_scaled_tasks_", earlier), dtype=bool)
            offsets, scales = self.target_offset_, self.target_scale_
            spread = scaled
            if not scaled.all():
                # A task no earlier fit had targets for is scaled from this call's targets
                # (it kept the placeholder 0 / 1, and learnt raw 1e4-sized targets); so is
                # one whose earlier targets had a single value (scale 1 kept) once this
                # call's have some spread: its network output was trained towards 0.
                targets.fit_scaling(losses, group, sample_weight=sample_weight)
                rescale = ~scaled & (targets.spread | ~earlier)
                offsets = np.where(rescale, targets.offsets, offsets)
                scales = np.where(rescale, targets.scales, scales)
                spread = scaled | (rescale & targets.spread)
            targets.offsets, targets.scales, targets.spread = offsets, scales, spread
            targets.codes = targets.scaled(targets.values)
        else:
            targets.fit_scaling(losses, group, sample_weight=sample_weight)
        targets.trained = self._set_aside_untrainable(targets, group, reuse)
        targets.losses, targets.huber_deltas = losses, deltas
        return targets

    def _set_aside_untrainable(self, targets, group, reuse: bool) -> np.ndarray:
        """Which tasks the model has learnt, over every process (and earlier fits it continues).

        Warns about tasks without any known target (in this fit, on every
        process) that no earlier fit trained; raises if no task has one.
        """
        counts = np.sum(group.share(lambda: targets.known.sum(axis=0)), axis=0)
        if not np.any(counts > 0):
            raise ValueError(
                f"Task {targets.task_names[0]!r} has no known target (all values are NaN/None); "
                "drop the task or give it some targets."
            )
        trained = counts > 0
        if reuse:  # a task learnt by an earlier call stays learnt
            trained |= self._trained_tasks_
        empty = [targets.task_names[t] for t in np.flatnonzero(~trained)]
        if empty:
            warn_user(
                f"Task(s) {empty} have no known target in this fit: they are left out of "
                "training and predict NaN. The other tasks train as usual.",
                UntrainableTaskWarning,
            )
        return trained

    def _check_same_tasks(self, targets, losses, partial: bool) -> None:
        fitted = list(self.task_names_)
        if targets.task_names != fitted or list(losses) != list(self.loss_):
            raise ValueError(
                f"Continuing the fitted model needs the same tasks and losses: fitted "
                f"{fitted} with {self.loss_}, got {targets.task_names} with {losses}. "
                + ("Use fit to fit a new model." if partial
                   else "Set warm_start=False to fit a new model.")
            )

    def _make_objective(
        self, spec, targets, train_rows, group, sample_weight
    ) -> RegressionObjective:
        """Each task's loss on the scaled targets, and the way back to the user's units."""
        as_tensor = lambda a: torch.tensor(np.asarray(a, dtype=np.float64), dtype=torch.float32)
        # The way back to the user's units stays in float64: a float32 offset of
        # 1e11 is off by thousands.
        as_float64 = lambda a: torch.tensor(np.asarray(a, dtype=np.float64), dtype=torch.float64)
        return RegressionObjective(
            targets.losses,
            huber_deltas=as_tensor(targets.huber_deltas / targets.scales),
            offsets=as_float64(targets.offsets),
            scales=as_float64(targets.scales),
            task_weights=as_tensor(targets.task_weights),
        )

    def _store_targets(self, targets) -> None:
        self.loss_ = list(targets.losses)
        self.target_offset_ = np.asarray(targets.offsets, dtype=np.float64)
        self.target_scale_ = np.asarray(targets.scales, dtype=np.float64)
        self._one_dimensional_ = targets.one_dimensional
        self._trained_tasks_ = np.asarray(targets.trained, dtype=bool).copy()
        # Which tasks' scales came from targets with some spread (a continued fit rescales
        # the others once their targets have some).
        self._scaled_tasks_ = np.asarray(targets.spread, dtype=bool).copy()

    # ------------------------------------------------------------- prediction
    def predict(self, X):
        """Predicted targets of every task, in the targets' units.

        Parameters
        ----------
        X : array-like, DataFrame or sparse matrix of shape (n_samples, n_features)
            Input features.

        Returns
        -------
        y_pred : ndarray of shape (n_samples, n_tasks) or (n_samples,)
            One column per task (NaN for a task that had no known target in
            ``fit``); 1-D when the model was fitted on 1-D ``y``. A
            ``"log_loss"`` task's column is the probability ``P(y = 1 | x)``.
        """
        check_is_fitted(self)
        predictions = self._logits(X, then=self.objective_.predictions).cpu().numpy()
        predictions[:, ~self._trained_tasks_] = np.nan
        return predictions[:, 0] if self._one_dimensional_ else predictions

    def score(self, X, y, sample_weight=None):
        """Coefficient of determination R^2, averaged over tasks, on known targets only.

        Each task's R^2 (:func:`sklearn.metrics.r2_score`) is computed on the
        rows where its target is known (NaN/None targets are skipped task by
        task), then the tasks are averaged with equal weights. Without unknown
        targets this is scikit-learn's multi-output R^2
        (``multioutput="uniform_average"``). For a ``"log_loss"`` task, the
        R^2 of its predicted probabilities is the Brier skill score; score
        such a task with ROC AUC through :mod:`skmtl.metrics` instead.

        Parameters
        ----------
        X : array-like, DataFrame or sparse matrix of shape (n_samples, n_features)
            Input features.
        y : array-like or DataFrame of shape (n_samples, n_tasks) or (n_samples,)
            True targets; NaN/None marks an unknown target.
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each row.

        Returns
        -------
        score : float
            Mean R^2 over the tasks with at least two known targets.

        Raises
        ------
        ValueError
            If no task has two known targets.
        """
        check_is_fitted(self)
        check_consistent_length(X, y, sample_weight)
        sample_weight = checked_score_weights(sample_weight, y)
        check_scored_tasks(y, self.task_names_)
        truth = regression_targets(y).values
        predicted = self.predict(X).reshape(truth.shape[0], -1)
        if truth.shape[1] != predicted.shape[1]:
            raise ValueError(
                f"y has {truth.shape[1]} task(s) but the model was fitted on "
                f"{predicted.shape[1]}."
            )
        weights = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        scores = []
        for t in range(truth.shape[1]):
            # A task fitted without targets predicts NaN: it has no score, as in skmtl.metrics.
            known = ~np.isnan(truth[:, t]) & ~np.isnan(predicted[:, t])
            if known.sum() >= 2:
                w = None if weights is None else weights[known]
                scores.append(r2_score(truth[known, t], predicted[known, t], sample_weight=w))
        if not scores:
            raise ValueError("R^2 needs at least two known targets of some task in y.")
        return float(np.mean(scores))

    # --------------------------------------------------------------- plumbing
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        # String and category columns are embedded; NaN stays refused in continuous columns.
        tags.input_tags.string = True
        tags.input_tags.categorical = True
        # Continuous columns, never densified whole; piecewise-linear bins need dense columns.
        tags.input_tags.sparse = self.numeric_embedding != "piecewise_linear"
        return tags


def _parameter_blocks(docstring: str, names: list[str]) -> str:
    """The numpydoc entries of ``names`` in ``docstring``'s Parameters section, in order."""
    section = docstring.split("    Parameters\n    ----------\n", 1)[1].split("\n    Attributes", 1)[0]
    blocks = re.split(r"\n(?=    [A-Za-z_][A-Za-z_0-9]* : )", section)
    by_name = {block.split(" : ", 1)[0].strip(): block.rstrip() for block in blocks}
    return "\n\n".join(by_name[name] for name in names)


_SHARED = [
    name for name in BaseMultiTaskNetwork._parameter_constraints if name != "architecture"
]
MultiTaskRegressor.__doc__ = MultiTaskRegressor.__doc__.replace(
    "{shared_parameters}", _parameter_blocks(MultiTaskClassifier.__doc__, _SHARED)
)
