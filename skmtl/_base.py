"""What every skmtl estimator shares, whatever its tasks: inputs, network, training, results.

:class:`BaseMultiTaskNetwork` is the private base of the public estimators.
It owns the parameters that do not depend on the kind of task (the
architecture's, the embeddings', the optimiser's, early stopping, device,
seeding) and ``fit`` as a short sequence of named steps::

    _check_fit_inputs  -> X (dtypes kept) and sample weights
    _fit_targets       -> the tasks' labels, encoded       (subclass)
    _split_rows        -> training and validation rows
    _fit_encoder       -> the column encoder (vocabularies, means, scales, bins)
    network_spec       -> network_spec_: what to build
    _build_network     -> module_, initialised from the fit's seed
    _make_objective    -> the loss and the probabilities     (subclass)
    _training_tensors  -> the encoded rows, as tensors on the device
    _train             -> the one training loop (:func:`skmtl._training.train`)
    _store_fit         -> the fitted attributes, only once training succeeded

Early stopping on a ``scoring`` other than the loss scores, at the end of every
epoch, a copy of the estimator that holds the network being trained
(:meth:`BaseMultiTaskNetwork._validation_scorer`): the scorer sees an estimator
and the validation rows, as in :class:`~sklearn.ensemble.HistGradientBoostingClassifier`,
while the loop computes the logits once.

A subclass supplies what depends on its tasks (labels, loss, prediction,
scoring) and its public ``__init__``, ``fit`` and ``partial_fit`` with their
docstrings.
"""

from __future__ import annotations

import copy
import functools
import inspect
import sys
from dataclasses import dataclass
from numbers import Integral, Real

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
from sklearn.base import BaseEstimator, MultiOutputMixin
from sklearn.metrics._scorer import _BaseScorer
from sklearn.model_selection import train_test_split
from sklearn.utils import _safe_indexing, check_random_state
from sklearn.utils._available_if import available_if
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import (
    _check_sample_weight,
    check_array,
    check_consistent_length,
    check_is_fitted,
    validate_data,
)

from . import metrics
from ._balancing import balancing_settings, make_balancer
from ._column_kinds import column
from ._distributed import (
    SingleProcess,
    check_fit_agrees,
    check_same_on_every_rank,
    process_group,
    resolve_device,
)
from ._encoding import TabularEncoder, column_name, resolve_categorical
from ._fit_guards import check_embedding_tables
from ._frames import as_pandas
from ._keyed_settings import declared_categories
from ._network_spec import build_from_spec, differing_entries, network_spec
from ._schedules import SCHEDULES, schedule_observers
from ._sequence_columns import changed_sequence_layout, check_no_list_cells, sequence_columns
from ._sparse import SparseRows, check_sparse, check_sparse_settings, is_sparse
from ._threads import begin_load_reading
from ._training import (
    TensorData,
    TrainingConfig,
    ValidationScorer,
    continue_optimizer,
    make_optimizer,
    predict_logits,
    train,
)
from ._warnings import warn_user
from .nn.architectures import ARCHITECTURES, check_module_outputs
from .nn.blocks import WEIGHT_INITS, init_parameters, kaiming_hidden_layers

EARLY_STOPPING_AUTO_MIN_SAMPLES = 2_000
"""``early_stopping="auto"`` holds out a validation set above this many rows.

It was 10,000 (HistGradientBoosting's threshold). A network trained for up to
``max_iter`` epochs on the training loss overfits a few thousand rows badly:
on 3,000 rows of ``make_multilabel_classification`` (12 labels, 100 columns;
benchmarks/quality.py, case ``small``) the model reached a mean test ROC AUC
of 0.694 (mean log loss 3.44; seeds 0 and 1) after 200 epochs without it, and
0.783 (log loss 0.450; seeds 0 to 2) with it in about 42 epochs, better on every
label of every seed measured.
Above 2,000 rows the validation set holds at least 200 of them.
"""


@dataclass(frozen=True)
class FitSeeds:
    """The random streams of one fit, all derived from one seed.

    With ``distributed=True`` the seed is rank 0's; every process then splits
    its own shard and draws its own dropout masks, while the shuffle order
    and the initial weights are the same on all of them.
    """

    seed: int
    rank: int | None  # None outside a distributed fit

    @classmethod
    def draw(cls, random_state, group) -> FitSeeds:
        """One seed from ``random_state`` (rank 0's in a distributed fit)."""
        rng = check_random_state(random_state)
        seed = group.share(lambda: int(rng.randint(np.iinfo(np.int32).max)))[0]
        return cls(seed, group.rank if group.active else None)

    def init_generator(self) -> torch.Generator:
        """Weight initialisation."""
        return torch.Generator().manual_seed(self.seed)

    def shuffle_generator(self) -> torch.Generator:
        """The order of the rows in every epoch."""
        return torch.Generator().manual_seed(self.seed + 1)

    def dropout_generator(self, device) -> torch.Generator:
        """Dropout masks and category dropout, on the training device."""
        if self.rank is None:
            seed = self.seed + 2
        else:
            seed = int(np.random.SeedSequence([self.seed, 2, self.rank]).generate_state(1)[0])
        return torch.Generator(device=device).manual_seed(seed)

    def balancing_generator(self) -> torch.Generator:
        """The order of the tasks in ``task_balancing="pcgrad"``'s projections."""
        return torch.Generator().manual_seed(self.seed + 3)

    def split_rng(self) -> np.random.RandomState:
        """The validation split."""
        return np.random.RandomState(self.seed if self.rank is None else [self.seed, self.rank])


def scoring_label(scoring) -> str:
    """A short, stable name for ``scoring`` (what the validation scores measured).

    For display, and for strings and skmtl scorers also for comparison (their
    repr says all they do). Whether another object is the scoring that was
    monitored is decided by identity (:meth:`BaseMultiTaskNetwork._same_monitor`),
    not by this name: no name can tell every two callables apart, and a repr
    with a memory address changes with every process. Never raises.
    """
    try:
        if scoring is None or isinstance(scoring, str) or _has_own_repr(scoring):
            return repr(scoring)
        if isinstance(scoring, functools.partial):
            return f"functools.partial({scoring_label(scoring.func)}, ...)"
        if inspect.ismethod(scoring):
            return f"{scoring_label(scoring.__self__)}.{scoring.__func__.__name__}"
        if isinstance(scoring, _BaseScorer):
            return f"make_scorer({scoring_label(getattr(scoring, '_score_func', None))}, ...)"
        named = scoring if hasattr(scoring, "__qualname__") else type(scoring)
        return f"{getattr(named, '__module__', '?')}.{named.__qualname__}"
    except Exception:  # noqa: BLE001 - a name for display must never stop a fit
        return type(scoring).__qualname__


def kept_epoch_from_scores(scores, best) -> int | None:
    """The kept epoch (1-based) of a model fitted before ``_kept_epoch_`` was recorded.

    The first epoch scoring ``best`` (training keeps an epoch only if it
    scores strictly higher); None without one, or when epochs without
    validation came after it and moved the weights.
    """
    if best is None or scores is None:
        return None
    scores = np.asarray(scores, dtype=float)
    matches = np.flatnonzero(scores == best)
    if not matches.size or np.isnan(scores[matches[0]:]).any():
        return None
    return int(matches[0]) + 1


def _same_callable(a, b) -> bool:
    """Whether ``a`` and ``b`` are one scoring: the same object, or rebuilt from the same parts.

    ``obj.score`` and ``functools.partial(f, task=0)`` make a new object each
    time they are written; they are the same scoring when they bind the same
    object and function (and arguments that are the same objects, or equal
    numbers, strings, booleans or None).
    """
    if a is b:
        return True
    if inspect.ismethod(a) and inspect.ismethod(b):
        return a.__self__ is b.__self__ and a.__func__ is b.__func__
    if isinstance(a, functools.partial) and isinstance(b, functools.partial):
        def same(x, y):
            plain = (int, float, str, bool, np.generic)  # numbers, strings, numpy scalars
            return x is y or (type(x) is type(y) and isinstance(x, plain) and np.ndim(x) == 0
                              and bool(x == y))

        return (
            _same_callable(a.func, b.func) and len(a.args) == len(b.args)
            and all(same(x, y) for x, y in zip(a.args, b.args))
            and a.keywords.keys() == b.keywords.keys()
            and all(same(a.keywords[k], b.keywords[k]) for k in a.keywords)
        )
    return False


def _pickled_by_reference(obj) -> bool:
    """Whether pickle stores ``obj`` by name from an importable module: free and safe to keep.

    A module-level function or class of a module other than ``__main__`` (a
    script's functions cannot be found by another process that loads the
    pickle), or a ``functools.partial`` of one with plain scalar arguments.
    Never raises.
    """
    try:
        if isinstance(obj, functools.partial):
            plain = (int, float, str, bool, type(None))
            return _pickled_by_reference(obj.func) and all(
                type(value) in plain
                or (isinstance(value, np.generic) and type(value).__module__ == "numpy")
                for value in (*obj.args, *obj.keywords.values())
            )
        name = getattr(obj, "__module__", None)
        if not isinstance(name, str) or name in ("__main__", "__mp_main__"):
            return False
        module = found = sys.modules.get(name)
        for part in str(getattr(obj, "__qualname__", "<none>")).split("."):
            found = getattr(found, part, None)
        return module is not None and found is obj
    except Exception:  # noqa: BLE001 - an odd object is simply not kept
        return False


def _has_own_repr(scoring) -> bool:
    """Whether ``scoring`` is an skmtl scorer, whose repr names everything it does."""
    return isinstance(scoring, metrics._MultiTaskScorer)


def checked_score_weights(sample_weight, y):
    """``score``'s ``sample_weight`` checked as ``fit``'s (None stays None)."""
    if sample_weight is None:
        return None
    n_samples = len(y) if not hasattr(y, "shape") else y.shape[0]
    return _check_sample_weight(
        sample_weight, np.empty((n_samples, 0)), dtype=np.float64, ensure_non_negative=True
    )


def validate_input(estimator, X, *, reset: bool):
    """Check X against ``estimator`` (feature names, n_features) without losing column dtypes.

    Returns a DataFrame (dtypes kept, so categorical columns stay as they
    are), a 2-D ndarray (object arrays stay object) or, for a scipy sparse
    matrix or array, a float64 CSR matrix (:func:`skmtl._sparse.check_sparse`:
    never densified). A polars or pyarrow
    frame becomes a pandas DataFrame first (:func:`skmtl._frames.as_pandas`),
    so its names are recorded and checked as a pandas frame's. ``reset=True``
    (in ``fit``) records ``n_features_in_`` and ``feature_names_in_``.
    """
    X = as_pandas(X)
    if is_sparse(X):
        X = check_sparse(X)
    elif not isinstance(X, pd.DataFrame):
        given = X
        X = check_array(X, dtype=None, ensure_all_finite=False, accept_sparse=False)
        if not hasattr(given, "dtype") and X.dtype.kind in "US":
            # a list of rows mixing strings and numbers: numpy makes every value a string
            # (7 -> '7', which no integer category matches); kept as objects, as
            # scikit-learn's encoders do (a list of strings only stays as numpy reads it)
            objects = check_array(given, dtype=object, ensure_all_finite=False, accept_sparse=False)
            if any(not isinstance(v, (str, bytes)) for v in objects.ravel()):  # NaN, None too
                X = objects
    validate_data(estimator, X, skip_check_array=True, reset=reset)
    if isinstance(X, pd.DataFrame):
        if X.shape[1] == 0:
            raise ValueError(
                f"0 feature(s) (shape={X.shape}) while a minimum of 1 is required."
            )
        if X.shape[0] == 0:
            raise ValueError(
                f"Found array with 0 sample(s) (shape={X.shape}) while a minimum of 1 is "
                "required."
            )
    return X


def float32_ready_weights(sample_weight: np.ndarray, group) -> np.ndarray:
    """``sample_weight`` times the power of two that puts the largest (of every process) in [1, 2).

    Training casts the weights to float32, and only their ratios matter (the
    losses are weighted means): scaling by a power of two is exact, so
    weights of a usual size train bit for bit as given, while tiny or huge
    ones (1e-44, 1e38) keep their ratios instead of underflowing to
    subnormals or overflowing. Raises when the ratios themselves do not fit.
    """
    largest = max(group.share(lambda: float(sample_weight.max())))
    exponent = int(np.floor(np.log2(largest)))
    scaled = np.ldexp(sample_weight, -exponent) if exponent else sample_weight
    smallest = min(group.share(lambda: float(np.min(sample_weight, initial=np.inf,
                                                       where=sample_weight > 0))))
    if np.ldexp(smallest, -exponent) < np.finfo(np.float32).tiny:
        raise ValueError(
            f"sample_weight spans more than float32 holds: its positive weights go from "
            f"{smallest:.3g} to {largest:.3g}, a ratio above 1e38, and the smallest would lose "
            "their precision or vanish. Set the negligible weights to 0, or clip the ratios."
        )
    return scaled


def continued_scores(earlier, earlier_epochs: int, later, later_epochs: int, same_monitor: bool):
    """``validation_scores_`` of a continued fit: one entry per epoch of ``n_iter_``, or None.

    Epochs without validation (a ``partial_fit`` call, a fit without early
    stopping) are NaN, and so are earlier scores of another monitor (another
    ``scoring``: other units), so that the list lines up with the epochs and
    its maximum is over comparable scores.
    """
    if earlier is None and later is None:
        return None
    if earlier is None or (later is not None and not same_monitor):
        earlier = [float("nan")] * earlier_epochs
    if later is None:
        later = [float("nan")] * later_epochs
    return list(earlier) + list(later)


class BaseMultiTaskNetwork(MultiOutputMixin, BaseEstimator):
    """Private base of skmtl's estimators; see the module docstring.

    Subclasses define ``__init__`` with every parameter of
    :attr:`_parameter_constraints` plus their own, and implement:

    - ``_fit_targets(y, group, *, reuse, partial, classes, sample_weight)``:
      the encoded labels (``sample_weight``: the user's, None when not
      given), as an object with ``codes`` (``(n_samples, n_tasks)``, what
      the loss reads), ``known`` (a boolean array of the same shape: which
      labels are known), ``task_names``, ``n_outputs`` (logits per task) and
      ``funnel`` (ordered task indices, possibly empty);
    - ``_make_objective(spec, targets, train_rows, group, sample_weight)``: the
      :class:`~skmtl.losses.MultiTaskObjective`-like loss, which also turns
      logits into predictions (``sample_weight``: float64, one per row of X);
    - ``_store_targets(targets)``: their fitted attributes about the tasks.
    """

    _parameter_constraints: dict = {
        "architecture": [StrOptions(set(ARCHITECTURES)), callable],
        "categorical_features": ["array-like", StrOptions({"from_dtype"}), None],
        "embedding_dim": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "min_frequency": [Interval(Integral, 1, None, closed="left")],
        "max_categories": [Interval(Integral, 1, None, closed="left"), None],
        "category_dropout": [Interval(Real, 0, 1, closed="left")],
        "numeric_embedding": [StrOptions({"linear", "periodic", "piecewise_linear", "auto"})],
        "continuous_projection": [StrOptions({"auto", "per_column", "joint"})],
        "sequence_features": ["array-like", None],
        "sequence_pooling": [StrOptions({"mean", "sum", "max"}), dict],
        "attention_queries": [dict, None],
        "attention_weights": [StrOptions({"softmax", "din"})],
        "max_sequence_length": [Interval(Integral, 1, None, closed="left"), dict],
        "shared_embeddings": ["array-like", None],
        "expert_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
        "n_experts": [Interval(Integral, 1, None, closed="left")],
        "gate_temperature": [Interval(Real, 0, None, closed="neither")],
        "n_levels": [Interval(Integral, 1, None, closed="left")],
        "n_task_experts": [Interval(Integral, 1, None, closed="left")],
        "n_shared_experts": [Interval(Integral, 1, None, closed="left")],
        "tower_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left"), dict],
        "activation": [StrOptions({"relu", "gelu", "tanh", "silu"})],
        "dropout": [Interval(Real, 0, 1, closed="left")],
        "embedding_dropout": [Interval(Real, 0, 1, closed="left")],
        "task_weights": ["array-like", dict, None],
        "task_balancing": [StrOptions({"fixed", "uncertainty", "gradnorm", "pcgrad"}), dict],
        "feature_groups": [dict, None],
        "n_group_experts": [Interval(Integral, 1, None, closed="left")],
        "learning_rate_init": [Interval(Real, 0, None, closed="neither")],
        "alpha": [Interval(Real, 0, None, closed="left")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "learning_rate_schedule": [StrOptions(set(SCHEDULES))],
        "ema_epochs": [Interval(Real, 0, None, closed="neither"), None],
        "weight_init": [StrOptions(set(WEIGHT_INITS))],
        "batch_size": [Interval(Integral, 1, None, closed="left"), StrOptions({"auto"})],
        "max_iter": [Interval(Integral, 1, None, closed="left")],
        "shuffle": ["boolean"],
        "early_stopping": [StrOptions({"auto"}), "boolean"],
        "scoring": [str, callable],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "tol": [Interval(Real, 0, None, closed="left")],
        "warm_start": ["boolean"],
        "device": [StrOptions({"auto", "cpu", "cuda"})],
        "distributed": ["boolean"],
        "random_state": ["random_state"],
        "verbose": ["verbose"],
    }

    # ------------------------------------------------------------------ input
    def _validate_X(self, X, *, reset: bool):
        return validate_input(self, X, reset=reset)

    def _encode(self, X) -> tuple[torch.Tensor, ...]:
        """``X`` encoded: one tensor per column kind, on the module's device."""
        device = next(self.module_.parameters()).device
        return tuple(_to_device(a, device) for a in self.encoder_.transform(X))

    # ---------------------------------------------------------------- fitting
    def _fit(
        self, X, y, sample_weight, *, reuse, partial=False, classes=None, categories=None,
        check_call=None,
    ):
        """The work of ``fit`` and ``partial_fit``, as named steps.

        ``reuse`` continues the fitted network (``warm_start`` or a later
        ``partial_fit`` call); ``partial`` trains one epoch without early
        stopping. With ``distributed=True`` every step that learns from the
        data goes through the process group: each process validates its own
        shard (an error on any process stops all of them with a ValueError,
        rather than leaving the others waiting) and the statistics are shared.
        """
        begin_load_reading()  # the thread policy's first look at other processes' load
        balancing = balancing_settings(self.task_balancing, self.distributed)
        if self.alpha > 0 and self.weight_decay > 0:
            raise ValueError(
                f"alpha={self.alpha} (an L2 penalty in the gradient) and weight_decay="
                f"{self.weight_decay} (decoupled weight decay) are two ways of shrinking the "
                "weights; set one of them to 0."
            )
        group = process_group(self.distributed)
        weighted = sample_weight is not None
        X, sample_weight = self._check_fit_inputs(X, y, sample_weight, group, reuse, partial)
        if check_call is not None:  # partial_fit's checks of its arguments, on every process
            group.run(check_call)
        scoring = None if partial else self._early_stopping_scorer()
        targets = self._fit_targets(
            y, group, reuse=reuse, partial=partial, classes=classes,
            sample_weight=sample_weight if weighted else None,
        )
        usable = targets.known & (sample_weight[:, None] > 0)
        if not any(group.share(lambda: bool(usable.any()))):
            # Nothing to learn: the loss would be 0 while Adam's momentum still moved the model.
            raise ValueError(
                f"{'This partial_fit chunk' if partial else 'y'} has no known label of "
                "positive weight for any task: there is nothing to train on"
                f"{' (skip the chunk)' if partial else ''}."
            )
        device = resolve_device(self.device, group, self.batch_size)
        seeds = FitSeeds.draw(self.random_state, group)
        # The split comes first: what the network learns from X (the bins) sees training rows only.
        train_rows, val_rows = self._split_rows(
            X.shape[0], targets, seeds, group, partial, sample_weight
        )
        if reuse:
            encoder, spec = self.encoder_, self._fitted_network_spec()
            self._check_same_network(spec, targets, X, group)
            module, optimizer = self._copy_network(device, keep_optimizer=partial)
        else:
            encoder = self._fit_encoder(
                X, categories, group, train_rows, sample_weight if weighted else None
            )
            spec = network_spec(
                self.get_params(deep=False), encoder, targets.n_outputs, targets.funnel,
                getattr(self, "feature_names_in_", None), task_names=targets.task_names,
            )
            module, optimizer = self._build_network(spec, encoder, seeds, device), None
        objective = self._make_objective(spec, targets, train_rows, group, sample_weight)
        objective = objective.to(device)
        # alpha on MLPClassifier's scale: Adam's coupled L2 of alpha / min(batch_size, n_train),
        # this call's (a partial_fit chunk's) training rows on every process.
        n_train = sum(group.share(lambda: len(train_rows)))
        l2_rate = self.alpha / self._batch_rows(n_train)
        if optimizer is None:
            optimizer = make_optimizer(module, self.learning_rate_init, l2_rate, self.weight_decay)
        else:
            continue_optimizer(optimizer, module, self.learning_rate_init, l2_rate, self.weight_decay)
        data, validation = self._training_tensors(
            encoder, X, targets.codes, sample_weight, (train_rows, val_rows), device, group
        )
        # A user's new module (a continued one was checked when built), on every process.
        if not reuse and not isinstance(spec["architecture"], str):
            group.run(lambda: check_module_outputs(
                module, data.slice(0, 2).inputs, spec["n_outputs"], targets.task_names
            ) if len(data) else None)
        validation_scorer = self._validation_scorer(
            scoring, X, y, sample_weight if weighted else None, val_rows, group,
            dict(encoder=encoder, spec=spec, module=module, objective=objective, device=device,
                 targets=targets),
        )
        balancer = make_balancer(
            balancing, module, objective, len(targets.task_names),
            learning_rate=self.learning_rate_init, generator=seeds.balancing_generator(),
            group=group,
        )
        if balancer is not None and reuse:  # the balance goes on (Adam's moments as optimizer_'s)
            balancer.restore(getattr(self, "_task_balance_state_", None),
                             keep_moments=partial and self.optimizer_ is not None)
        # What the scores measure: the loss, or the scoring given (see _same_monitor).
        monitor = (
            "loss" if validation_scorer is None
            else f"{validation_scorer.name}: {scoring_label(self.scoring)}"
        )
        same_scores = reuse and self._same_monitor(monitor)  # (asked once: it may warn)
        history = self._train(
            module, optimizer, objective, data, validation, seeds, device, group,
            partial=partial, user_module=not isinstance(spec["architecture"], str),
            validation_scorer=validation_scorer, balancer=balancer,
            # warm_start goes on from the earlier best (its restored weights): an epoch must
            # beat that score to be kept, as MLPClassifier's best is over all fits, when the
            # score is the same one (a changed scoring starts afresh).
            previous_best=getattr(self, "best_validation_score_", None) if same_scores else None,
        )
        # What this call's validation scores measure (None: it had none), and what the
        # scores kept so far measured.
        validated = monitor if history.validation_scores is not None else None
        earlier = getattr(self, "_validation_monitor_", None) if reuse else None
        # Only now, with training finished, does the estimator change.
        self._store_fit(
            encoder, spec, module, optimizer, objective, device, targets, history,
            reuse=reuse, partial=partial, balancer=balancer, monitor=monitor,
            same_monitor=same_scores,
        )
        # What validation_scores_ (and best_validation_score_) measure; a later warm_start
        # fit compares with it (and with the very scoring object that was monitored).
        if validated is not None:
            self._monitored_scoring_ = None if validated == "loss" else self.scoring
        self._validation_monitor_ = validated or earlier
        return self

    def _same_monitor(self, monitor: str) -> bool:
        """Whether this fit's validation scores measure what the fitted ones did.

        The loss, a scoring string and an skmtl scorer are compared by name.
        Any other callable must be the very object that was monitored (a
        pickle keeps it one object with ``scoring``): a name cannot tell two
        lambdas, closures or stateful scorers apart, and a scorer whose state
        changes as it scores is still the same scoring.
        """
        if getattr(self, "_validation_monitor_", None) != monitor:
            return False
        if monitor == "loss" or isinstance(self.scoring, str) or _has_own_repr(self.scoring):
            return True
        if _same_callable(self.scoring, getattr(self, "_monitored_scoring_", None)):
            return True
        warn_user(
            f"scoring is another object than the one validation_scores_ measured (both "
            f"{scoring_label(self.scoring)}): the earlier scores and best are not carried "
            "over (an epoch of this fit need not beat them). Pass the same scoring object "
            "again to continue from them."
        )
        return False

    def _check_fit_inputs(self, X, y, sample_weight, group, reuse: bool, partial: bool):
        """X (dtypes kept) and float64 sample weights, checked on every process."""

        def check_inputs():
            X_checked = self._validate_X(X, reset=not reuse)
            n_samples = X_checked.shape[0]
            if n_samples < (1 if partial else 2):
                raise ValueError(
                    f"n_samples={n_samples}: at least {1 if partial else 2} samples are "
                    f"required to fit {type(self).__name__}."
                )
            pl = sys.modules.get("polars")
            if pl is not None and isinstance(y, pl.LazyFrame):
                as_pandas(y)  # its clear TypeError: collect() first
            check_consistent_length(X_checked, y)
            weights = _check_sample_weight(  # all zeros here may be one shard's (checked below)
                sample_weight, np.empty((n_samples, 0)), dtype=np.float64,
                ensure_non_negative=True, allow_all_zero_weights=True,
            )
            return X_checked, weights

        X, sample_weight = group.run(check_inputs)
        if group.active:
            check_fit_agrees(
                group, self.get_params(deep=False), X.shape[1],
                getattr(self, "feature_names_in_", None),
                {"continues a fitted model": reuse, "partial_fit": partial,
                 "sparse X": is_sparse(X)},
            )
        if not any(group.share(lambda: bool(np.any(sample_weight > 0)))):
            raise ValueError("sample_weight is zero for every row; at least one must be positive.")
        return X, sample_weight

    def _fit_encoder(
        self, X, categories, group, train_rows=None, sample_weight=None
    ) -> TabularEncoder:
        """Which columns are categorical, their vocabularies, the continuous moments and bins.

        The vocabularies and the standardisation are learnt from every row of
        ``X`` (as they always were); the piecewise-linear bins of
        ``numeric_embedding`` from ``train_rows`` only, so that no validation
        row shapes the network. With ``sample_weight`` (given by the user),
        the standardisation and the bins are weighted: a row of weight 0
        leaves no trace in them.
        """
        feature_names = getattr(self, "feature_names_in_", None)
        is_categorical = group.run(
            lambda: resolve_categorical(X, self.categorical_features, feature_names)
        )
        if group.active:  # e.g. a column of strings on one process, of numbers on another
            check_same_on_every_rank(group, "categorical columns", is_categorical.tolist())
        if is_sparse(X):
            group.run(lambda: check_sparse_settings(self.get_params(deep=False), is_categorical))
        others = group.run(lambda: self._other_column_kinds(X, is_categorical))
        with_categories = is_categorical.copy()  # partial_fit's categories may name these
        for kind in others:
            with_categories[kind.columns] = True
        declared = group.run(lambda: declared_categories(categories, with_categories, feature_names))
        if group.active:  # one vocabulary: the full sets, the same on every process
            check_same_on_every_rank(
                group, "partial_fit categories",
                {j: set(pd.Series(np.asarray(values, dtype=object)).dropna().tolist())
                 for j, values in declared.items()},
            )
        encoder = TabularEncoder.from_mask(
            is_categorical, self.min_frequency, self.max_categories, feature_names,
            others=others, numeric_embedding=self.numeric_embedding,
        )
        return encoder.fit(X, declared, group, rows=train_rows, sample_weight=sample_weight)

    def _other_column_kinds(self, X, is_categorical) -> list:
        """Column kinds besides categorical and continuous, unfitted.

        The private place where a kind (:mod:`skmtl._column_kinds`) is given
        columns; the columns of the kinds returned here are neither categorical
        nor continuous. The parameters ``sequence_features`` and
        ``shared_embeddings`` give columns to
        :class:`~skmtl._sequence_columns.SequenceColumns`; the other columns
        must not hold lists.
        """
        if is_sparse(X):  # continuous columns only (_fit_encoder has checked the parameters)
            return []
        feature_names = getattr(self, "feature_names_in_", None)

        def name(j):
            return column_name(feature_names, j)

        kind = sequence_columns(self.get_params(deep=False), X.shape[1], feature_names,
                                is_categorical, name)
        kinds = [] if kind is None else [kind]
        # A column of a shared table that is not in sequence_features holds one category a row.
        taken = {int(j) for k in kinds for j, pooling in zip(k.columns, k.poolings)
                 if pooling is not None}
        check_no_list_cells(X, [j for j in range(X.shape[1]) if j not in taken], name)
        return kinds

    def _build_network(self, spec: dict, encoder, seeds: FitSeeds, device) -> torch.nn.Module:
        """The described network, initialised from the fit's seed, on ``device``."""
        check_embedding_tables(encoder, spec["embedding_dim"])
        module = build_from_spec(spec)
        init_parameters(module, seeds.init_generator())
        if self.weight_init == "kaiming":
            kaiming_hidden_layers(module, spec["options"].get("activation", self.activation))
        return module.to(device)

    def _copy_network(self, device, keep_optimizer: bool):
        """Copies of the fitted module and (for ``partial_fit``) its optimiser.

        Module and optimiser are copied together, so the copy's Adam state
        points at the copied parameters; the estimator keeps its model if
        training fails.
        """
        module, optimizer = copy.deepcopy((self.module_, getattr(self, "optimizer_", None)))
        return module.to(device), optimizer if keep_optimizer else None

    def _split_rows(
        self, n_samples, targets, seeds: FitSeeds, group, partial: bool, sample_weight
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Training rows, and validation rows when early stopping is on.

        Raises when the validation rows hold no known label of positive
        weight (the validation score would be 0 at every epoch); warns about
        tasks they hold none for, and (:meth:`_check_training_rows`) about
        what the training rows lost to the split.
        """
        known = targets.known
        early = False if partial else self.early_stopping
        if early == "auto":  # decided on the rows of every process
            early = sum(group.share(lambda: n_samples)) > EARLY_STOPPING_AUTO_MIN_SAMPLES
        if not early:
            return np.arange(n_samples), None

        def split():
            n_val = int(round(self.validation_fraction * n_samples))
            if n_val < 1 or n_samples - n_val < 1:
                raise ValueError(
                    f"early_stopping with validation_fraction={self.validation_fraction} leaves "
                    f"{n_val} validation and {n_samples - n_val} training rows out of "
                    f"{n_samples}; use more data, another validation_fraction, or "
                    "early_stopping=False."
                )
            strata = self._split_strata(targets)
            if strata is not None:  # as MLPClassifier: stratified by the one task's classes
                _, inverse, counts = np.unique(
                    strata, return_inverse=True, return_counts=True
                )
                single = counts[inverse] == 1  # a stratum of one row cannot be split: it trains
                rows = np.flatnonzero(~single)
                try:
                    train, val = train_test_split(
                        rows, test_size=n_val, stratify=strata[rows],
                        random_state=seeds.split_rng(),
                    )
                    return np.sort(np.concatenate([train, np.flatnonzero(single)])), np.sort(val)
                except ValueError:  # more classes than validation rows, or too few rows left
                    pass
            order = seeds.split_rng().permutation(n_samples)
            return np.sort(order[n_val:]), np.sort(order[:n_val])

        train_rows, val_rows = group.run(split)
        labelled = np.any(known[train_rows], axis=0)
        labelled = np.any(group.share(lambda: labelled), axis=0)
        # Tasks without any known label (set aside as untrainable) need none.
        any_known = np.any(group.share(lambda: np.any(known, axis=0)), axis=0)
        labelled |= ~any_known
        if not labelled.all():
            raise ValueError(
                f"The validation split left task {np.flatnonzero(~labelled)[0]} without known "
                "labels for training; use early_stopping=False or a smaller validation_fraction."
            )
        # The validation score must see some label: with none (or only rows of weight 0) it
        # would be 0 at every epoch, and early stopping would keep the first epoch's weights.
        weighed = known[val_rows] & (sample_weight[val_rows, None] > 0)
        validated = np.any(group.share(lambda: np.any(weighed, axis=0)), axis=0)
        names = targets.task_names
        if not validated[any_known].any():
            raise ValueError(
                f"The validation split (validation_fraction={self.validation_fraction}) left "
                "no validation row with a known label of positive weight, so the validation "
                "score could not tell the epochs apart; use early_stopping=False, a larger "
                "validation_fraction or more labelled rows."
            )
        unvalidated = [names[t] for t in np.flatnonzero(any_known & ~validated)]
        if unvalidated:
            warn_user(
                f"No validation row has a known label (of positive weight) for task(s) "
                f"{unvalidated}: early stopping watches the other tasks only. Use a larger "
                "validation_fraction, or early_stopping=False."
            )
        self._check_training_rows(targets, train_rows, group)
        return train_rows, val_rows

    def _split_strata(self, targets) -> np.ndarray | None:
        """Labels to stratify the validation split by (None: a plain random split)."""
        return None

    def _check_training_rows(self, targets, train_rows, group) -> None:
        """Warn about what the validation split took from training (the classifier: classes)."""

    def _training_tensors(
        self, encoder, X, labels, sample_weight, rows, device, group
    ) -> tuple[TensorData, TensorData | None]:
        """The encoded training (and validation) rows as tensors on the device.

        Without a validation split the encoded arrays become the tensors as
        they are (no copy on the CPU); with one, the full arrays live only in
        this function, so they are freed before training starts.
        """
        encoded = group.run(lambda: encoder.transform(X))  # one array per column kind
        train_rows, val_rows = rows
        sample_weight = float32_ready_weights(sample_weight, group)  # training's copy only

        def tensors(rows) -> TensorData:
            take = (lambda a: a) if rows is None else (lambda a: a[rows])
            return TensorData(
                tuple(_to_device(take(values), device) for values in encoded),
                torch.from_numpy(take(labels)).to(device),
                torch.from_numpy(take(sample_weight).astype(np.float32)).to(device),
            )

        if val_rows is None:  # every row trains (train_rows is all of them, in order)
            return tensors(None), None
        return tensors(train_rows), tensors(val_rows)

    def _early_stopping_scorer(self):
        """``scoring`` as ``(scorer, name)``; the scorer is None for the validation loss.

        A string is checked here, in every ``fit``, even where early stopping
        is off and the scorer is not used.
        """
        scoring = self.scoring
        if callable(scoring):
            return scoring, "score"
        if scoring == "loss":
            return None, "loss"
        try:
            return metrics.get_scorer(scoring), scoring
        except ValueError as exc:
            raise ValueError(
                f"scoring={scoring!r} is not a score early stopping knows. {exc} Pass "
                "'loss' (the validation loss), one of those names, or a callable "
                "scorer(estimator, X, y) such as skmtl.metrics.make_task_scorer(metric, task)."
            ) from None

    def _validation_scorer(
        self, scoring, X, y, sample_weight, val_rows, group, model: dict
    ) -> ValidationScorer | None:
        """The score early stopping watches, or None for minus the validation loss.

        The scorer of ``scoring`` (from :meth:`_early_stopping_scorer`) is called as
        ``scorer(estimator, X_val, y_val)`` (with ``sample_weight=`` when
        ``fit`` was given weights) at the end of every epoch. ``X_val`` and
        ``y_val`` are the validation rows of ``X`` and ``y`` (of every
        process, in rank order, in a data-parallel fit); ``estimator`` is a
        new estimator with these parameters and the ``model`` being trained
        (:meth:`_set_model`), whose predictions for ``X_val`` are the
        epoch's logits, computed once by the training loop. The estimator
        itself is not touched until training has succeeded.
        """
        scorer, name = scoring if scoring is not None else (None, "loss")
        if scorer is None or val_rows is None:
            return None

        def validation_rows():
            labels = as_pandas(y)
            if not isinstance(labels, (pd.DataFrame, pd.Series)):
                labels = np.asarray(labels)
            return _safe_indexing(X, val_rows), _safe_indexing(labels, val_rows), val_rows

        X_val, y_val, rows = group.run(validation_rows)
        weighted = any(group.share(lambda: sample_weight is not None))
        weights = np.ones(len(rows)) if sample_weight is None else sample_weight[rows]
        if group.active:  # every process's rows, in rank order (as the gathered logits)
            X_val, y_val, weights = (
                _concatenate(parts) for parts in zip(*group.gather((X_val, y_val, weights)))
            )
        view = type(self)(**self.get_params(deep=False))
        for name_in in ("n_features_in_", "feature_names_in_"):
            if hasattr(self, name_in):
                setattr(view, name_in, getattr(self, name_in))
        view._set_model(optimizer=None, **model)
        epoch_logits = view._logits = _EpochLogits(view, X_val)
        extra = {"sample_weight": weights} if weighted else {}

        def score(logits):
            epoch_logits.logits = logits
            return scorer(view, X_val, y_val, **extra)

        return ValidationScorer(name, score)

    def _batch_rows(self, n_train: int) -> int:
        """Rows in one (global) batch: ``batch_size`` (``"auto"``: 512), at most ``n_train``."""
        return min(512 if self.batch_size == "auto" else self.batch_size, n_train)

    def _train(
        self, module, optimizer, objective, data, validation, seeds, device, group, *,
        partial: bool, user_module: bool, validation_scorer: ValidationScorer | None = None,
        balancer=None, previous_best: float | None = None,
    ):
        """The training settings, and the one training loop (with ``task_balancing``'s step)."""
        n_train = sum(group.share(lambda: len(data)))
        config = TrainingConfig(
            max_iter=1 if partial else self.max_iter,
            batch_size=self._batch_rows(n_train) if self.batch_size == "auto" else self.batch_size,
            learning_rate=self.learning_rate_init,
            shuffle=self.shuffle,
            n_iter_no_change=self.n_iter_no_change,
            tol=self.tol,
            objective=objective,
            verbose=self.verbose,
            warn_on_max_iter=not partial,
            one_pass=partial,
            validation_scorer=validation_scorer,
            previous_best_score=None if partial else previous_best,
            # partial_fit trains the weights themselves: an average over one chunk's
            # epoch would lag behind them, and averaging across calls is not kept.
            ema_epochs=None if partial else self.ema_epochs,
        )
        schedule = schedule_observers(
            self.learning_rate_schedule, self.n_iter_no_change, one_pass=partial
        )
        observers = (*(() if balancer is None else (balancer,)), *schedule)
        return train(
            module,
            data,
            validation,
            config,
            shuffle_generator=seeds.shuffle_generator(),
            dropout_generator=seeds.dropout_generator(device),
            optimizer=optimizer,
            group=group,
            user_module=user_module,
            **({} if balancer is None else {"backward": balancer}),
            # none: train's own default
            **({"observers": observers} if observers else {}),
        )

    def _store_fit(
        self, encoder, spec, module, optimizer, objective, device, targets, history, *,
        reuse: bool, partial: bool, balancer=None, monitor=None, same_monitor=False,
    ) -> None:
        """Set the fitted attributes.

        A fit that continues the fitted network (a later ``partial_fit`` call,
        or ``fit`` with ``warm_start=True``) continues the curves too, as
        scikit-learn's ``MLPClassifier`` does: ``n_iter_`` counts every epoch
        and ``loss_curve_``, ``task_loss_curves_`` and ``validation_scores_``
        go on.
        """
        if balancer is None:  # fixed weights: the task weights, every epoch
            weights = objective.task_weights
            weights = np.ones(len(targets.task_names)) if weights is None else weights.cpu().numpy()
            balance = np.tile(np.asarray(weights, dtype=np.float64), (history.n_iter, 1))
        else:
            balance = np.vstack(balancer.epoch_weights)
        if reuse and getattr(self, "task_balance_weights_", None) is not None:
            balance = np.vstack([self.task_balance_weights_, balance])
        # The epoch whose weights are kept, counted over every fit (None: the last epoch's,
        # as without validation); plot_learning_curves marks it.
        earlier_epochs = self.n_iter_ if reuse else 0
        if history.validation_scores is None or history.best_epoch is None:
            kept = None
        elif history.best_epoch == 0:  # a continuation (reuse) that kept its starting weights
            kept = (
                self._kept_epoch_ if hasattr(self, "_kept_epoch_")  # else fitted before it
                else kept_epoch_from_scores(self.validation_scores_, self.best_validation_score_)
            )
        else:
            kept = earlier_epochs + history.best_epoch
        if reuse:  # the curves go on
            history.loss_curve = self.loss_curve_ + history.loss_curve
            history.task_loss_curves = [*self.task_loss_curves_, *history.task_loss_curves]
            history.n_iter += self.n_iter_
            history.best_loss = min(history.best_loss, self.best_loss_)
            history.validation_scores = continued_scores(
                self.validation_scores_, self.n_iter_, history.validation_scores,
                history.n_iter - self.n_iter_,
                same_monitor=same_monitor,
            )
        self._set_model(encoder, spec, module, optimizer, objective, device, targets)
        self._kept_epoch_ = kept
        self.n_iter_ = history.n_iter
        self.loss_curve_ = history.loss_curve
        self.task_loss_curves_ = np.vstack(history.task_loss_curves)
        self.validation_scores_ = history.validation_scores
        self.best_validation_score_ = history.best_validation_score
        self.best_loss_ = history.best_loss
        self.task_balance_weights_ = balance
        self._task_balance_state_ = None if balancer is None else balancer.export()

    def _set_model(self, encoder, spec, module, optimizer, objective, device, targets) -> None:
        """The fitted attributes that predict: encoder, network, objective, tasks."""
        if getattr(self, "encoder_", None) is not encoder:  # a continued fit keeps its own
            self.encoder_ = encoder
            self.is_categorical_ = encoder.is_categorical.copy()
            # the setting that chose them (a continued fit tells a changed one from a chunk's)
            self._categorical_setting_ = copy.deepcopy(self.categorical_features)
            self.categories_ = encoder.categories_by_feature()
        self.network_spec_ = spec
        self.module_ = module
        self.optimizer_ = optimizer
        self.device_ = device
        self.objective_ = objective
        self.n_outputs_ = len(targets.task_names)
        self.task_names_ = np.asarray(targets.task_names, dtype=object)
        self._store_targets(targets)

    # ------------------------------------------------------------- prediction
    def _logits(self, X, then=None):
        """Each task's logits for ``X``, or ``then`` of them (see :func:`predict_logits`)."""
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        return predict_logits(self.module_, self._encode(X), then)

    def _has_gates(self) -> bool:
        if hasattr(self, "module_"):
            return hasattr(self.module_.body, "gate_weights")
        architecture = self.architecture
        if isinstance(architecture, str):
            architecture = ARCHITECTURES.get(architecture)
        return hasattr(architecture, "gate_weights")

    @available_if(_has_gates)
    def gate_weights(self, X):
        """How much each task's gate weighs each expert, for every sample.

        Parameters
        ----------
        X : array-like, DataFrame or sparse matrix of shape (n_samples, n_features)
            Input features.

        Returns
        -------
        weights : ndarray of shape (n_samples, n_tasks, n_experts)
            Softmax gate weights (each ``weights[i, t]`` sums to 1). With
            ``architecture="moe"`` all tasks share one gate, so the task rows
            are identical.

        Notes
        -----
        Available only for architectures with gates (``"moe"``, ``"mmoe"``,
        ``"ple"``, and user modules defining ``gate_weights``); for
        ``"ple"`` these are the last level's task gates, over each task's own
        experts followed by the shared ones.
        """
        check_is_fitted(self)
        body = self.module_.body
        X = self._validate_X(X, reset=False)
        inputs = self._encode(X)
        self.module_.eval()
        with torch.inference_mode():
            weights = body.gate_weights(self.module_.embedding(*inputs))
        if not (isinstance(weights, torch.Tensor) and weights.dim() == 3
                and weights.shape[0] == X.shape[0] and weights.shape[1] in (1, self.n_outputs_)):
            got = tuple(weights.shape) if isinstance(weights, torch.Tensor) else type(weights)
            raise ValueError(
                f"The architecture's gate_weights returned {got}; expected a tensor of shape "
                f"(n_samples, n_tasks or 1, n_experts) with n_samples={X.shape[0]}, "
                f"n_tasks={self.n_outputs_}."
            )
        weights = weights.expand(-1, self.n_outputs_, -1)
        return weights.double().cpu().numpy()

    # --------------------------------------------------------------- plumbing
    def _check_same_network(self, spec: dict, targets, X=None, group=None) -> None:
        """Continuing a fit needs parameters that still describe the fitted network."""
        wanted = network_spec(
            self.get_params(deep=False), self.encoder_, targets.n_outputs, targets.funnel,
            getattr(self, "feature_names_in_", None), task_names=targets.task_names,
        )
        changed = differing_entries(spec, wanted) + changed_sequence_layout(
            self.get_params(deep=False), self.encoder_, getattr(self, "feature_names_in_", None)
        ) + self._changed_encoding(X, group) + self._changed_output_meaning(targets)
        if changed:
            described = "; ".join(f"{name}: {old!r} -> {new!r}" for name, old, new in changed)
            raise ValueError(
                f"{'partial_fit' if not self.warm_start else 'warm_start=True'} continues the "
                f"fitted network, but the parameters now describe another one ({described}). "
                "Restore them, or fit a new model (warm_start=False)."
            )

    def _changed_encoding(self, X, group) -> list[tuple]:
        """``(what, fitted, now)`` for encoder settings that no longer describe the fitted encoder.

        The network description is rebuilt from the fitted encoder, so it
        cannot show a changed ``categorical_features``, ``min_frequency`` or
        ``max_categories``; they are compared here (the columns that
        ``categorical_features`` now selects in ``X``, against the fitted ones).
        """
        changed = []
        if X is not None and not is_sparse(X):
            group = SingleProcess() if group is None else group
            feature_names = getattr(self, "feature_names_in_", None)
            fitted = np.asarray(self.is_categorical_, dtype=bool)

            def selected() -> list[bool]:
                now = resolve_categorical(X, self.categorical_features, feature_names)
                if now.shape != fitted.shape:
                    return fitted.tolist()  # the feature count is checked elsewhere
                for kind in self.encoder_.kinds[2:]:  # sequence columns etc.: neither kind
                    now[np.asarray(kind.columns)] = False
                setting = self.categorical_features
                if isinstance(setting, str) and setting == getattr(
                    self, "_categorical_setting_", setting
                ):  # "from_dtype", as when fitted
                    # A column missing in every row of this call has no dtype to read
                    # (float64 NaN, or None): it says nothing about the setting.
                    for j in np.flatnonzero(now != fitted):
                        if pd.isna(pd.Series(column(X, j), dtype=object)).all():
                            now[j] = fitted[j]
                return now.tolist()

            # On every process the same verdict: one shard's columns vote for all.
            answers = group.share(lambda: group.run(selected))
            now = np.asarray(answers[0], dtype=bool)
            for other in answers[1:]:
                if not np.array_equal(np.asarray(other, dtype=bool), fitted):
                    now = np.asarray(other, dtype=bool)
            if not np.array_equal(now, fitted):
                def names(mask):
                    columns = np.flatnonzero(mask)
                    if feature_names is None:
                        return [int(j) for j in columns]
                    return [str(feature_names[j]) for j in columns]

                changed.append(("categorical columns", names(fitted), names(now)))
        vocabularies = [kind for kind in self.encoder_.kinds
                        if len(kind.columns) and hasattr(kind, "min_frequency")]
        for param in ("min_frequency", "max_categories"):
            fitted_values = {getattr(kind, param, None) for kind in vocabularies}
            if fitted_values and fitted_values != {getattr(self, param)}:
                changed.append((param, next(iter(fitted_values)), getattr(self, param)))
        return changed

    def _changed_output_meaning(self, targets) -> list[tuple]:
        """``(what, fitted, now)`` for what the parameters now read the outputs as otherwise."""
        return []

    def _fitted_network_spec(self) -> dict:
        """``network_spec_``, or a clear error for a model pickled without one."""
        spec = getattr(self, "network_spec_", None)
        if spec is None:
            raise ValueError(
                f"This {type(self).__name__} has no network_spec_: it was pickled by an older "
                "skmtl (pickles are read by the version that wrote them only). Refit it."
            )
        return spec

    def __getstate__(self):
        state = super().__getstate__()
        monitored = state.get("_monitored_scoring_")
        if monitored is not None and not _same_callable(monitored, state.get("scoring")) and (
            not _pickled_by_reference(monitored)
        ):
            # a scoring replaced since, that a pickle would copy (or could not pickle): only
            # the very object could match it again
            state = dict(state)
            state["_monitored_scoring_"] = None
        module = state.get("module_")
        if module is not None and any(p.device.type != "cpu" for p in module.parameters()):
            # A GPU-trained model pickles to CPU tensors, so it unpickles anywhere.
            state = dict(state)
            module, optimizer = copy.deepcopy((module, state.get("optimizer_")))
            module.cpu()
            if optimizer is not None:
                for values in optimizer.state.values():
                    for key, value in values.items():
                        if torch.is_tensor(value):
                            values[key] = value.cpu()
            state["module_"], state["optimizer_"] = module, optimizer
            if state.get("objective_") is not None:
                state["objective_"] = copy.deepcopy(state["objective_"]).to("cpu")
        return state


class _EpochLogits:
    """``_logits`` of the estimator a ``scoring`` callable sees during ``fit``.

    For the validation rows (the very object given to the scorer) it returns
    the logits the training loop computed for the epoch; any other input is
    predicted by the network being trained.
    """

    def __init__(self, view: BaseMultiTaskNetwork, X_val):
        self.view, self.X_val, self.logits = view, X_val, None

    def __call__(self, X, then=None):
        # The epoch's validation logits were computed whole, so ``then`` here sees
        # unpadded rows: the scorer's probabilities may differ from predict_proba's
        # after fit by an ulp (see skmtl._training.INFERENCE_ROW_BLOCK).
        if X is self.X_val and self.logits is not None:
            return self.logits if then is None else then(self.logits)
        return BaseMultiTaskNetwork._logits(self.view, X, then)


def _concatenate(parts: list):
    """The processes' parts of the validation rows (frames, series, arrays or sparse), in order."""
    if isinstance(parts[0], (pd.DataFrame, pd.Series)):
        return pd.concat(parts)
    if is_sparse(parts[0]):
        return sp.vstack(parts, format="csr")
    return np.concatenate(parts)


def _to_device(values, device) -> torch.Tensor | SparseRows:
    """One kind's encoded rows (an array, or :class:`SparseRows`) on ``device``."""
    if isinstance(values, SparseRows):
        return values.to(device)
    return torch.from_numpy(values).to(device)
