"""The public classifier: its parameters, its labels and loss, predictions and scores.

Inputs, the network, training and persistence of the fitted state are the
shared base's (:mod:`skmtl._base`).
"""

from __future__ import annotations

from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import ClassifierMixin, _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_consistent_length, check_is_fitted

from . import metrics
from ._base import BaseMultiTaskNetwork, checked_score_weights
from ._fit_guards import keep_state_on_error
from ._funnel import funnel_steps, impression_space_codes, resolve_funnel
from ._keyed_settings import (
    class_weight_specs,
    class_weight_vectors,
    declared_positive_labels,
    logit_offsets,
    positive_labels,
    put_positive_last,
    task_weight_vector,
)
from ._targets import (
    check_scored_tasks,
    complete_binary_classes,
    declared_classes,
    encode_targets,
    fit_targets,
    misnamed_tasks,
    predict_dtype,
    public_classes,
    restored_label_order,
    sorting_permutation,
    stored_label_order,
    task_columns,
    untrainable_tasks,
)
from ._warnings import UntrainableTaskWarning, warn_user
from .losses import MultiTaskObjective


class MultiTaskClassifier(ClassifierMixin, BaseMultiTaskNetwork):
    """Multi-task neural network classifier (shared-bottom, MoE, MMoE, PLE, AITM...) on PyTorch.

    One model learns several classification tasks at once, sharing its
    parameters across them. Categorical columns are embedded (one table per
    column with a reserved, trained row for unknown values), continuous columns
    are standardised and linearly projected into the same embedding space, and
    the concatenated embeddings feed the chosen architecture, which ends in one
    tower per task. The PyTorch model is built inside :meth:`fit` and is
    available as ``module_``.

    Parameters
    ----------
    architecture : str or callable, default="mmoe"
        One of the following names, or a module class or factory:

        - ``"shared_bottom"``: one shared MLP encoder (``expert_layer_sizes``)
          feeding one tower per task.
        - ``"moe"``: ``n_experts`` expert MLPs mixed by ONE softmax gate shared
          by all tasks, then the towers.
        - ``"mmoe"``: the same experts, with one gate PER task (Ma et al.,
          "Modeling Task Relationships in Multi-task Learning with Multi-gate
          Mixture-of-Experts", KDD 2018).
        - ``"ple"``: Progressive Layered Extraction (Tang et al., RecSys
          2020): ``n_levels`` levels of task-specific (``n_task_experts`` per
          task) and shared (``n_shared_experts``) experts; each task's gate
          mixes its own and the shared experts. One level is CGC.
        - ``"aitm"``: Adaptive Information Transfer Multi-task (Xi et al., KDD
          2021) for ordered tasks: one encoder and tower per task, and an
          attention unit passing information from each step of ``funnel``
          (all tasks in order when ``funnel`` is None) to the next. Its
          behavioural expectation calibrator is ``funnel_penalty`` with
          ``funnel_mode="independent"``.
        - ``"single_task"``: no sharing at all, one independent network
          (embeddings, encoder, tower) per task: the baseline every
          multi-task model should beat.
        - a ``torch.nn.Module`` class or factory, called as
          ``architecture(in_features, n_outputs)`` with the width of the
          embedded input and the number of logits per task (1 for binary
          tasks); its module maps the embedded input ``(batch, in_features)``
          to a list with one logit tensor per task (``(batch,)`` for binary,
          ``(batch, n_classes)`` otherwise). Define the class at module level
          so the estimator pickles. Its parameters are re-initialised from
          the fit's seed (see :func:`skmtl.nn.blocks.init_parameters`).

    categorical_features : "from_dtype", array-like or None, default="from_dtype"
        Which columns are categorical (a mask of bools, or indices or names
        of columns), as in
        :class:`~sklearn.ensemble.HistGradientBoostingClassifier`:

        - ``"from_dtype"``: DataFrame columns of pandas ``category``,
          string/object or bool dtype (polars ``Categorical``, ``Enum``,
          ``String`` or ``Boolean``); for a numpy object array, the columns
          holding strings or bools; for a numeric numpy array, none. Date,
          time and duration columns (also object columns of Python dates or
          times) are refused unless declared categorical; object columns of
          ``decimal.Decimal`` (polars ``Decimal``) are continuous.
          Categories are looked up by value: an integer category matches the
          same integer as a float, ``False``/``True`` match ``0``/``1`` (as
          in scikit-learn's encoders), a string never matches a number.
        - None: no categorical column.
        - boolean mask of shape (n_features,), integer indices, or column names
          (DataFrame input only).

    embedding_dim : int or "auto", default=8
        Size ``D`` of every column's embedding (categorical and continuous).
        ``"auto"`` picks one size from the median size ``K`` of the
        embedding tables (categorical columns' and sequence/shared tables',
        each with its unknown row): ``clip(round(1.6 * K ** 0.56), 4, 32)``;
        8 without any table.

    min_frequency : int, default=5
        Categories seen fewer than this many times in ``fit`` get no row of
        their own: they share the unknown row, which therefore learns what
        rare categories look like.

    max_categories : int or None, default=None
        If set, only the ``max_categories`` most frequent categories of each
        column get their own row (the others share the unknown row). Bounds
        the memory of ID-like columns.

    category_dropout : float, default=0.02
        While training, each categorical value is replaced by the unknown row
        with this probability, so that the unknown row is trained on every
        column and an unseen category at predict time gets a sensible
        embedding.

    numeric_embedding : {"auto", "linear", "periodic", "piecewise_linear"}, default="auto"
        How each continuous column, standardised with its training mean and
        standard deviation, becomes its embedding of ``embedding_dim``
        values:

        - ``"linear"``: ``x * w_j + b_j``, one weight and one bias vector per
          column.
        - ``"periodic"``: PLR (Gorishniy, Rubachev and Babenko, "On
          Embeddings for Numerical Features in Tabular Deep Learning",
          NeurIPS 2022): ``relu([cos(2 pi c_j x), sin(2 pi c_j x)] @ W_j +
          b_j)`` with 16 trainable frequencies ``c_j`` per column, drawn
          from ``N(0, 0.5)`` (in cycles per standard deviation) at
          initialisation.
        - ``"piecewise_linear"``: the piecewise-linear encoding of the same
          paper over up to 48 quantile bins per column, then a linear map:
          the value fills the bins below it (1 each) and the fraction of its
          own bin, and values beyond the first and last edges extrapolate
          linearly. The bin edges are the quantiles of the training rows
          only (the rows left after the ``early_stopping`` validation split;
          validation rows never shape them), repeated edges dropped, so a
          column with few distinct values gets fewer bins and a constant
          column one edge. :meth:`partial_fit` takes them from its first
          chunk; a data-parallel fit from all processes' training rows (see
          :doc:`/data_parallel`).

        - ``"auto"``: the linear map for every column, plus the periodic
          term (as ``"periodic"``, added to the linear token) for each
          heavy-tailed column, whose training values take more than two
          values and have a skewness beyond 5 in absolute value: amounts
          that are 0 on most rows and large on a few (capital gains,
          dividends, spend), where most rows sit in a
          sliver of the standardised range and the effect comes from
          thresholds and spikes. With at least 5,000 training rows per
          continuous column, every column that takes more than two values
          gets the term (ages, weeks, counts: there are rows enough to learn
          their thresholds and peaks). Each periodic token is multiplied by a
          learnt scale that starts at 0, so the fit starts from the linear
          network and the term grows where the loss pulls it in. The other
          columns keep the linear map alone, so data with neither such a
          column nor so many rows get exactly the ``"linear"`` model. The
          columns are chosen from the training rows of positive weight
          (of all processes in a data-parallel fit, from the first chunk of
          :meth:`partial_fit`) and listed in
          ``encoder_.continuous.periodic_columns_`` (a sparse ``X``'s
          implicit zeros count as values); the joint projection of wide data
          keeps the linear map.

        The non-linear embeddings capture non-monotonic and spiky effects of
        a numeric column that a linear map leaves to the layers above. The
        standardisation itself (as the categorical vocabularies) is learnt
        from every row given to ``fit``.

    continuous_projection : {"auto", "per_column", "joint"}, default="auto"
        How the continuous columns become tokens for the layers above:

        - ``"per_column"``: one token of ``embedding_dim`` values per column,
          as ``numeric_embedding`` says. Every expert and gate reads
          ``n_continuous * embedding_dim`` inputs.
        - ``"joint"``: one linear map of all the standardised columns to 16
          tokens (fewer if there are fewer columns) of ``embedding_dim``
          values (:class:`~skmtl.nn.blocks.JointProjection`), so the experts
          and gates read ``16 * embedding_dim`` inputs however many columns
          there are. For wide data: fingerprints, counts, sensor panels
          (see :ref:`wide-data`). It needs ``numeric_embedding`` ``"linear"``
          or ``"auto"`` (projected linearly) and no ``feature_groups`` (a
          ValueError otherwise).
        - ``"auto"``: ``"joint"`` above 256 continuous columns when
          ``numeric_embedding`` is ``"linear"`` or ``"auto"`` and
          ``feature_groups`` is None,
          else ``"per_column"``; narrower data are fitted as before.

        ``network_spec_`` records the choice; model files, pickles and the
        ONNX export keep it.

    sequence_features : array-like of str or int, default=None
        Columns (names or indices) whose cells are lists of categories of
        variable length: a user's last clicked item ids, an item's tags.
        A cell is a list, tuple or 1-D array (pandas object columns, numpy
        object arrays), a pyarrow list (``pd.ArrowDtype(pa.list_(...))``) or
        a polars ``List``/``Array`` value; None or NaN is an empty list, and
        a missing value inside a list is an unknown item. Each column gets a
        vocabulary (every item counts; ``min_frequency`` and
        ``max_categories`` apply) and a table with an unknown row, and
        becomes ONE token of ``embedding_dim`` values by its
        ``sequence_pooling``. Columns are never guessed from their cells: a
        column of lists that is not declared here is refused with an error.
        See :ref:`sequence-columns`.

    sequence_pooling : {"mean", "sum", "max"} or dict, default="mean"
        How the item embeddings of a sequence column become its token: their
        mean, sum or elementwise maximum (padding never counts; an empty
        list gives zeros). A dict ``{column: pooling}`` sets it per column
        (others: ``"mean"``).

    attention_queries : dict, default=None
        ``{sequence column: query column}``: those sequence columns are
        pooled by target attention (DIN, Zhou et al., "Deep Interest Network
        for Click-Through Rate Prediction", KDD 2018): each item's weight is
        computed by a small network from the query's embedding (the
        candidate item's) and the item's, and the token is the weighted sum
        of the items (padding masked). The query is a column of single
        categories that shares the sequence column's table
        (``shared_embeddings``).

    attention_weights : {"softmax", "din"}, default="softmax"
        How attention turns the items' scores into weights: ``"softmax"``
        normalises them over the history's items (a weighted mean, whatever
        the history's length); ``"din"`` keeps them unnormalised, as in the
        DIN paper, so the token also grows with how much of the history
        relates to the candidate. On ``make_ad_funnel`` histories of up to 50
        items the unnormalised weights lowered pCTR AUC against the model
        without the history where the history held no signal, and the
        softmax did not (the user guide's "Sequence and multi-hot columns").

    max_sequence_length : int or dict, default=20
        Items kept of each list: the LAST ones (the most recent, for lists
        in time order); shorter lists are padded. A dict ``{column: length}``
        sets it per column (others: 20). The encoded rows take
        ``max_sequence_length`` int32 values per sequence column.

    shared_embeddings : list of lists of str or int, default=None
        Groups of columns that share one vocabulary and one embedding table
        (one parameter tensor, trained by all of them), e.g.
        ``[["item_id", "clicked_items"]]`` for an item id column and a
        history of item ids. The vocabulary counts the values of every
        column of the group; unknown and missing values map to the table's
        unknown row. A column of single categories in a group is
        categorical whatever its dtype.

    expert_layer_sizes : array-like of int, default=(64, 32)
        Layers of each expert (for ``"moe"``, ``"mmoe"`` and ``"ple"``), of
        the shared encoder (for ``"shared_bottom"``) or of each task's
        encoder (for ``"aitm"`` and ``"single_task"``). Not used by a
        user-defined ``architecture``.

    n_experts : int, default=4
        Number of experts. Used only when ``architecture`` is ``"moe"`` or
        ``"mmoe"``.

    gate_temperature : float, default=10.0
        Temperature ``T`` of the gates' softmax, ``softmax(logits / T)``.
        Used only when ``architecture`` is ``"moe"``, ``"mmoe"`` or ``"ple"``.
        A high temperature starts every gate near a uniform mixture of the
        experts and, as Adam's steps on the gate weights do not shrink with
        ``T``, lets the gates' logits move about ``1 / T`` as fast as at
        ``T=1``: a gate specialises only as far as many steps of consistent
        evidence take it, so a few thousand rows keep the experts shared
        while large data can still route tasks apart. ``T=1`` (the plain
        softmax of the MMoE paper, and this estimator's default until
        December 2026) lets gates specialise from the first epochs, which a
        tiny network trained for a few dozen epochs may need. The
        measurements behind the default are in the documentation's results
        ("Flat gates by default").

    n_levels : int, default=2
        Extraction levels. Used only when ``architecture="ple"``.

    n_task_experts : int, default=1
        Experts dedicated to each task at every level. Used only when
        ``architecture="ple"``.

    n_shared_experts : int, default=2
        Experts shared by all tasks at every level. Used only when
        ``architecture="ple"``.

    tower_layer_sizes : array-like of int or dict, default=(32,)
        Hidden layers of each task's tower; every tower ends in a linear head
        with one logit (binary task) or one per class, and ``()`` gives a
        linear head on the shared representation. A sequence of ints gives
        every tower that shape. A dict ``{task: sizes}`` gives the tasks it
        names their own shape, e.g. ``{"conversion": (64, 32)}`` for a bigger
        tower on a rare task; it names tasks as every setting keyed by task
        does (see ``class_weight``), and the tasks it does not name get the
        default, ``(32,)``. Towers of the same shape are still computed
        together. Not used by a user-defined ``architecture``.

    activation : {"relu", "gelu", "tanh", "silu"}, default="relu"
        Activation of every hidden layer.

    dropout : float, default=0.0
        Dropout probability after every hidden layer (experts and towers).

    embedding_dropout : float, default=0.0
        Dropout probability on the embedded input while training: every value
        of the concatenated embeddings (categorical, continuous, sequence) is
        zeroed with this probability and the others scaled by ``1 / (1 - p)``
        before the architecture reads them; predictions use every value. It
        regularises the embeddings themselves, which ``dropout`` (after the
        hidden layers) does not reach. On census-income (benchmarks/tabm.py)
        ``embedding_dropout=0.2`` raised the default model's test ROC AUC on
        both tasks in each of three seeds, by little (income +0.0002 to
        +0.0007), and did not help the periodic embedding's recipe (see
        :doc:`/results`). Recorded in ``network_spec_``; with 0 the network
        has no dropout module there.

    task_weights : array-like of shape (n_tasks,), dict or None, default=None
        Weight of each task's loss; a dict maps task names (or indices) to
        weights, missing tasks weigh 1, and so does a pandas Series, read by
        its index. The total loss is
        ``sum_t task_weights[t] * loss_t``, so a task's weight scales that
        task's gradient and nothing else. None weighs all tasks 1.

    task_balancing : str or dict, default="fixed"
        One of ``"fixed"``, ``"uncertainty"``, ``"gradnorm"``, ``"pcgrad"``
        (or a dict with options, below): how the task losses ``L_t`` combine
        into each step's gradient; the ``task_weights`` ``c_t`` multiply each
        task's balanced term. Early stopping always watches the fixed
        objective ``sum_t c_t L_t`` on the validation rows.

        - ``"fixed"``: ``sum_t c_t L_t``.
        - ``"uncertainty"`` (Kendall et al., CVPR 2018): learnt log-variances
          ``s_t``, ``sum_t c_t (exp(-s_t) L_t + s_t / 2)`` for every task
          (classification: the paper's ``L / sigma^2 + log sigma``;
          ``"squared_error"`` regression: exactly its Gaussian likelihood).
          At equilibrium a task weighs ``c_t / (2 L_t)``.
        - ``"gradnorm"`` (Chen et al., ICML 2018): learnt weights ``w_t``
          (summing to the number of tasks) such that the norms of the
          tasks' gradients on the last shared layer follow their relative
          training rates ``(L_t / L_t(0)) / mean``, to the power ``alpha``;
          the network minimises ``sum_t c_t w_t L_t``.
        - ``"pcgrad"`` (Yu et al., NeurIPS 2020): each task's gradient on the
          shared parameters loses its component along every other task's
          gradient it conflicts with (other tasks in an order drawn from the
          fit's seed); the projected gradients are summed.

        A dict sets options: ``{"method": "gradnorm", "alpha": 1.5,
        "learning_rate": None}`` (``alpha`` >= 0, default 1.5; the balancing
        weights' Adam learning rate, default ``learning_rate_init``), or
        ``{"method": "uncertainty", "learning_rate": ...}``. The learnt
        values go on with ``warm_start`` and ``partial_fit`` and are saved
        with the model; ``task_balance_weights_`` records each epoch's
        effective weights. ``"gradnorm"`` and ``"pcgrad"`` take one backward
        pass per task (about T times a step's backward) and refuse
        ``distributed=True``. See :doc:`/user_guide` (task balancing).

    class_weight : "balanced", dict, list or None, default=None
        Per-task class weights: ``"balanced"`` for every task (computed on the
        known labels of the training rows as in
        :func:`~sklearn.utils.class_weight.compute_class_weight`, with the
        fit's ``sample_weight`` counting each row, as scikit-learn does),
        a list with one entry (None, ``"balanced"`` or ``{class: weight}``) per
        task, or a dict keyed by task (missing tasks get None). For a single
        task, a plain ``{class: weight}`` dict. Every setting keyed by task
        (``tower_layer_sizes``, ``task_weights``, ``class_weight``, ``funnel``,
        ``negative_sampling_rate``, ``pos_label``) names tasks the same way: an
        int is a task's position in ``y``, anything else its name.

    funnel : array-like of str or int, default=None
        An ordered chain of binary tasks (names or indices) where each step
        can only happen after the previous one, e.g. ``("click",
        "conversion")`` or ``("click", "cart", "purchase")``. Labels of a
        later step may be 0 or unknown (NaN) where an earlier step is
        negative: both mean 0 over the impression space (the same convention
        holds in training, ``score`` and :mod:`skmtl.metrics`); a positive
        later step after a negative earlier one is an error. For funnel steps
        ``predict_proba`` gives the probability of reaching the step over all
        impressions (pCTR, pCTCVR) and :meth:`predict_conditional_proba` the
        post-click conditionals (pCVR). A funnel step's positive class is the
        one ``pos_label`` declares, or for bool labels and numbers {0, 1} or
        {-1, 1} the greater one (True, 1); other labels (e.g. strings) must
        be declared. A positive step implies the earlier ones (an unknown
        click with a known conversion counts as a click).

    funnel_mode : {"esmm", "independent"}, default="esmm"
        Used only when ``funnel`` is set. ``"esmm"`` (Ma et al., SIGIR 2018):
        each step's head predicts the conditional probability
        ``P(step k | step k-1)``; the probability of reaching step ``k`` is the
        product of the conditionals and is trained against the
        impression-space label on ALL rows, so ``P(step k) <= P(step k-1)``
        holds by construction. ``"independent"``: each head predicts its
        step's impression-space probability directly; ``funnel_penalty`` can
        discourage violations of the funnel order.

    funnel_penalty : float, default=0.0
        Used only when ``funnel_mode="independent"``: strength of the penalty
        ``sum_k mean(relu(p_k - p_{k-1}))`` added to the loss (0 turns it
        off). The mean is over a batch's rows, unweighted: ``sample_weight``
        weighs the task losses, not this penalty (a constraint every row
        should meet).

    negative_sampling_rate : float, dict or None, default=None
        Corrects predicted probabilities for negatives that were downsampled
        before training: with a fraction ``r`` of the negatives kept, a
        binary task's logit is shifted by ``log(r)`` when predicting
        (``p' = p / (p + (1 - p) / r)``). A float applies to the single task
        of 1-D ``y`` or, with a funnel, to its first step (non-clicks
        downsampled, every clicked row kept): in ESMM mode the later steps'
        conditionals are unbiased and pCTCVR = corrected pCTR * pCVR; in
        independent mode the later steps are rescaled by the same factor as
        pCTR. A dict maps task names (or indices) to rates (within a funnel,
        only the first step may have one). The negatives are the rows not of
        the task's positive class (see ``pos_label``).

    pos_label : str, int, float, bool, dict or None, default=None
        The positive class of binary tasks, as in scikit-learn's metrics: a
        dict maps task names (or indices) to their positive label; a single
        label is the positive class of every binary task (each must have it).
        It changes what is learnt and scored (the funnel, the negatives of
        ``negative_sampling_rate``, the positive class of
        :mod:`skmtl.metrics`' scorers), not the order of ``classes_``: every
        task's ``classes_`` stay sorted, as in every scikit-learn classifier
        (scikit-learn's scorers rely on it), so the positive class's column of
        ``predict_proba`` is ``list(classes_[t]).index(label)``, which is 0
        when the positive label sorts first (``"click"`` before
        ``"no_click"``). Funnel steps and tasks corrected by
        ``negative_sampling_rate`` need a positive class: declared here, or
        evident from bool labels or numbers {0, 1} / {-1, 1} (the greater
        one). None declares none. Inside scikit-learn's ``VotingClassifier``,
        ``StackingClassifier``, ``BaggingClassifier`` and
        ``OneVsRestClassifier``, which encode ``y`` as 0, 1, ... in the order
        of their sorted ``classes_`` before fitting this estimator, the labels
        it sees are those numbers: declare the positive class by its index
        there (``pos_label=0`` for ``"click"`` beside ``"no_click"``), since
        the evident positive class of {0, 1} is 1 whatever it stood for.

    feature_groups : dict of str to array-like, default=None
        Used only when ``architecture`` is ``"moe"`` or ``"mmoe"``: feature
        groups (e.g. ``{"user": [...], "item": [...]}``, columns by name or
        index) that get ``n_group_experts`` dedicated experts each. A
        dedicated expert reads only its group's embeddings; the
        ``n_experts`` shared experts read all of them, and the gates mix all
        experts.

    n_group_experts : int, default=1
        Used only with ``feature_groups``: dedicated experts per group.

    learning_rate_init : float, default=1e-3
        Adam's learning rate.

    alpha : float, default=0.0
        Strength of the L2 penalty on every weight matrix (experts, gates,
        towers, output heads and the continuous-feature projections), on
        ``MLPClassifier``'s scale: ``0.5 * alpha * ||W||^2 / batch_rows`` is
        added to each batch's mean loss, so ``alpha`` weighs against the
        summed loss of a batch. ``batch_rows`` is ``batch_size`` (512 for
        ``"auto"``), at most the training rows of the call (all processes'
        in a data-parallel fit; each ``partial_fit`` call's own). Unlike
        ``MLPClassifier``, the rate is the same for an epoch's last, smaller
        batch, counts rows rather than summed sample weights, and (for
        :class:`MultiTaskRegressor`) weighs against the loss of standardised
        targets. Biases and categorical embedding tables are not penalised.
        It is applied as Adam's (coupled) ``weight_decay`` of
        ``alpha / batch_rows`` on those parameters, i.e. it is NOT decoupled
        weight decay (AdamW): see ``weight_decay``.
        (Earlier skmtl did not divide by ``batch_rows``, torch's scale: its
        ``alpha=a`` is ``alpha=a * batch_rows`` here.)

    weight_decay : float, default=0.0
        Decoupled weight decay (AdamW; Loshchilov and Hutter, "Decoupled
        Weight Decay Regularization", ICLR 2019): at every step the weights
        ``alpha`` would penalise shrink by ``learning_rate * weight_decay``
        times themselves, beside (not through) Adam's normalised gradient
        step, so every weight decays at the same rate whatever its gradient
        history. At most one of ``alpha`` and ``weight_decay`` may be
        positive.

    learning_rate_schedule : {"constant", "plateau"}, default="constant"
        How the learning rate changes during ``fit``: ``"constant"`` keeps
        ``learning_rate_init``; ``"plateau"`` divides it by 5 whenever the
        value early stopping watches (the validation score, or the training
        loss without early stopping) has not improved by ``tol`` for
        ``n_iter_no_change // 2`` epochs (as scikit-learn's
        ``MLPClassifier(learning_rate="adaptive")`` and torch's
        ``ReduceLROnPlateau``). :meth:`partial_fit`, one epoch per call, keeps
        the rate constant; the fitted ``optimizer_`` holds
        ``learning_rate_init`` again after ``fit``.

    ema_epochs : float or None, default=1.0
        Horizon, in epochs, of an exponential moving average of the weights
        (Polyak averaging), which ``fit`` scores and keeps instead of the
        weights of the last step. After step ``t`` the average moves towards
        the weights by ``1 - d``, with ``d = max(0, min(1 - 1 / (ema_epochs *
        n_batches), (1 + t) / (10 + t)))``: the horizon is the shorter of
        ``ema_epochs`` epochs and about ``t / 9`` steps, so it reaches
        ``ema_epochs`` epochs only after about ``9 * ema_epochs`` epochs (in
        shorter fits a larger value changes nothing), and a horizon below one
        step keeps the weights. Early stopping scores the average on the
        validation rows and keeps the best epoch's average; without validation
        rows the last average is the fitted model. Within a fit, training (the
        optimizer's steps, the training loss and ``loss_curve_``) follows the
        weights, not the average; a later ``warm_start`` fit or
        :meth:`partial_fit` continues from the fitted (averaged) weights, as
        it continues from the best epoch's weights after early stopping.
        Buffers (e.g. a user module's batch-norm statistics) are the last
        step's. None keeps the weights themselves, as before this parameter
        existed; :meth:`partial_fit` always does. A fit stopped by
        ``max_iter`` while its loss still falls fast may be better without
        the average, which lags behind the weights. Measured in
        :ref:`weight-averaging`: higher test ROC AUC on census income (every
        seed), on the synthetic cases and on every score of the ESMM funnel,
        about the same on the small-data case.

    weight_init : {"torch", "kaiming"}, default="torch"
        Initialisation of the hidden layers (experts, encoders, towers):
        ``"torch"`` is torch's default for ``nn.Linear`` (uniform in
        ``+-1/sqrt(fan_in)``, biases too), under which the signal shrinks at
        every layer and the initial logits are close to 0; ``"kaiming"`` is
        He et al.'s uniform initialisation for the ``activation`` (``+-gain *
        sqrt(3 / fan_in)``, zero biases), which keeps the signal's scale.
        Both are drawn from the fit's seed. Embeddings, gates and output
        heads are initialised as with ``"torch"``; so are the layers of a
        user-defined ``architecture`` other than skmtl's blocks.

    batch_size : int or "auto", default="auto"
        Mini-batch size; ``"auto"`` uses ``min(512, n_samples)``.

    max_iter : int, default=200
        Maximum number of epochs.

    shuffle : bool, default=True
        Whether to shuffle the rows before every epoch.

    early_stopping : "auto" or bool, default="auto"
        Hold out ``validation_fraction`` of the rows and stop when their score
        (``scoring``: by default minus their loss, the masked, weighted
        training objective) has not improved by ``tol`` for
        ``n_iter_no_change`` epochs; the weights of the best epoch are
        restored. ``"auto"`` enables it when there are more than 2,000 rows
        (it was 10,000: a few thousand rows trained on the training loss
        for up to ``max_iter`` epochs overfit).
        When disabled, the training loss is monitored the same way.

    scoring : str or callable, default="loss"
        What early stopping watches on the validation rows, as in
        :class:`~sklearn.ensemble.HistGradientBoostingClassifier`; greater is
        better:

        - ``"loss"``: minus the validation loss.
        - a name of :func:`skmtl.metrics.get_scorer` (``"mean_roc_auc"``,
          ``"mean_average_precision"``, ``"neg_mean_log_loss"``): that
          metric, averaged over the tasks on their known labels.
        - a callable ``scorer(estimator, X, y)``, e.g.
          ``skmtl.metrics.make_task_scorer("roc_auc", "conversion")`` for one
          task's ROC AUC. At the end of every epoch it is given an estimator
          holding that epoch's network and the validation rows of ``X`` and
          ``y`` (and ``sample_weight=`` their weights when ``fit`` was given
          some); it must return a number.

        ``tol`` is in the score's units. In a distributed fit the validation
        rows of every process are scored together, so every process sees the
        same score. Used only when early stopping is on (a string is checked
        by every ``fit``).

    validation_fraction : float, default=0.1
        Fraction of rows held out for early stopping. With a single
        classification task the split is stratified by its classes (as
        ``MLPClassifier``'s); otherwise (several tasks, a regressor) it is a
        plain random split. Validation rows without a known label of
        positive weight are refused.

    n_iter_no_change : int, default=10
        Epochs without improvement before stopping.

    tol : float, default=1e-4
        Minimum improvement of the monitored value (the validation score, or
        the training loss without early stopping).

    warm_start : bool, default=False
        Reuse the fitted model (encoders and weights) and keep training it.
        The tasks and their classes must be those of the first fit, and the
        parameters must still describe the fitted network (``network_spec_``):
        training settings such as ``learning_rate_init`` or ``max_iter`` may
        change, the architecture's sizes may not. With early stopping, the
        best validation score is over every fit (as ``MLPClassifier``'s): a
        continuation keeps its starting weights (the earlier best, and the
        task balance trained with them) unless one of its epochs scores
        higher. The starting weights are scored again at the start of the
        continuation, on its validation rows and with its settings (changed
        ``task_weights`` or ``class_weight`` change the loss's units; the
        same data, settings and int ``random_state`` give the earlier best
        score again); a changed ``scoring`` starts afresh. A string or an
        skmtl scorer is the same scoring when its name is; any other callable
        must be the object the earlier fit monitored (a bound method or a
        ``functools.partial`` rebuilt from the same parts counts as it; a
        pickle keeps it): another object with the same name starts afresh,
        with a warning.

    device : {"auto", "cpu", "cuda"}, default="auto"
        Where to train; ``"auto"`` uses a CUDA GPU when available. A model
        trained on a GPU predicts on the GPU; once pickled it unpickles on
        CPU-only machines and predicts there. On the CPU, how many threads a
        training step uses is skmtl's thread policy (:func:`skmtl.set_config`):
        torch's count on an idle machine, one thread while other processes
        hold the cores, never in a way that makes the fitted model depend on
        the machine's load (where the count changes the results, small steps
        always run on one thread, so the model can differ from
        ``thread_policy="off"``'s); a count you set yourself is kept.

    distributed : bool, default=False
        Data-parallel training with ``torch.distributed``: every process of
        an initialised process group (started with ``torchrun``, see
        :doc:`/data_parallel`) calls ``fit`` with its own shard of the rows and
        the same parameters, and they train one model together through
        ``DistributedDataParallel`` (gloo on CPUs, nccl on GPUs, where each
        process uses ``cuda:LOCAL_RANK``). Classes, category vocabularies,
        continuous-column statistics and class weights are learnt from all
        shards; ``batch_size`` is the global batch, split between the
        processes; each task's loss is normalised by its label weight over
        the whole global batch and the early-stopping decisions are taken on
        losses summed over all processes. Every process ends with the same
        fitted estimator. ``random_state`` should be an int (with None, rank
        0's seed is used by all).

    random_state : int, RandomState instance or None, default=None
        Draws the one seed of each ``fit``, used through explicit
        ``torch.Generator`` objects for weight initialisation, the
        validation split, shuffling and dropout. The global torch and numpy
        random states are never touched (None draws from numpy's global RNG,
        as scikit-learn does).

    verbose : int, default=0
        Show a progress bar with the epoch, the training loss, the validation
        loss and (with a ``scoring`` other than ``"loss"``) the validation
        score.

    Attributes
    ----------
    classes_ : ndarray or list of ndarray
        Sorted classes of each task (whatever ``pos_label`` declares); an
        ndarray when ``y`` is 1-D. The columns of ``predict_proba`` follow it.
    n_outputs_ : int
        Number of tasks.
    task_names_ : ndarray of str
        Task names: DataFrame ``y`` columns, else ``task_0``, ``task_1``, ...
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of str
        Feature names, when ``X`` is a DataFrame with string column names.
    is_categorical_ : ndarray of bool of shape (n_features_in_,)
        Which features were treated as categorical.
    categories_ : list of (ndarray or None)
        Categories with an embedding row of their own, per feature (None for
        continuous features); for a sequence column or a column of
        ``shared_embeddings``, its table's.
    encoder_ : object
        The fitted column encoder (vocabularies, continuous mean and scale).
    module_ : torch.nn.Module
        The trained PyTorch model; it maps categorical codes and standardised
        continuous values to a list of per-task logits.
    network_spec_ : dict
        Everything needed to rebuild ``module_`` (untrained): the architecture,
        the embedding tables' sizes, the logits per task and the
        architecture's resolved arguments, recorded by ``fit``; model files
        store it (see :func:`skmtl.save_model`).
    n_iter_ : int
        Number of epochs trained, counting on across ``partial_fit`` calls
        and ``warm_start`` fits (as ``loss_curve_``, ``task_loss_curves_``
        and ``validation_scores_`` go on).
    optimizer_ : torch.optim.Adam or None
        The optimiser of the last ``fit``; ``partial_fit`` continues it. None
        after :func:`skmtl.load_model` (model files keep no optimiser state).
    loss_curve_ : list of float
        Training loss (the weighted sum over tasks) at each epoch.
    task_loss_curves_ : ndarray of shape (n_iter_, n_outputs_)
        Each task's training loss at each epoch: the epoch's batch losses
        weighed by their known labels (their weights), i.e. the task's mean
        loss over the epoch's known labels, as the model trained through the
        epoch (a task with few labels is not diluted by the batches that have
        none); NaN for a task without a known label in the epoch (or in a
        ``partial_fit`` chunk).
    task_balance_weights_ : ndarray of shape (n_iter_, n_outputs_)
        The effective weight of each task at each epoch: the factor on the
        task's loss gradient, averaged over the epoch's steps (``c_t`` with
        ``task_balancing="fixed"``, ``c_t exp(-s_t)`` with ``"uncertainty"``,
        ``c_t w_t`` with ``"gradnorm"``; with ``"pcgrad"`` ``c_t`` times the
        norm of the task's projected shared gradient over its raw norm).
    validation_scores_ : list of float or None
        The score early stopping watched at each epoch, on the validation
        rows (higher is better): minus the validation loss with
        ``scoring="loss"``, else the ``scoring`` score. None without early
        stopping. A continued fit (``warm_start``, ``partial_fit``) keeps one
        entry per epoch of ``n_iter_``: NaN for epochs without validation
        (``partial_fit`` calls, fits without early stopping) and for earlier
        epochs scored with another ``scoring``.
    best_validation_score_ : float or None
        The score of the weights that were kept: the best score of the fit
        that kept them (after a ``warm_start`` fit on other rows it can be
        below an earlier fit's entries of ``validation_scores_``), or, in a
        ``warm_start`` continuation that no epoch improved, its starting
        weights' score measured at its start (in its own units; see
        ``warm_start``): a continuation keeps its starting weights (the
        earlier best) unless one of its epochs scores higher, as
        ``MLPClassifier``'s best is over every fit.
    best_loss_ : float
        Lowest training loss.
    device_ : torch.device
        Device the model was trained on.
    funnel_ : list of int
        Task indices of the funnel, in order (empty without a funnel).
    objective_ : MultiTaskObjective
        The loss of the fit (task and class weights, funnel, logit offsets);
        it also turns logits into probabilities.

    See Also
    --------
    sklearn.neural_network.MLPClassifier : A single-network classifier.
    sklearn.multioutput.MultiOutputClassifier : One independent model per task.

    Notes
    -----
    Labels that are NaN/None/``pd.NA`` are unknown for their task: they are
    left out of that task's loss only. scikit-learn's built-in scorers raise
    on NaN in ``y``; use :mod:`skmtl.metrics` with partially labelled data.

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl import MultiTaskClassifier
    >>> rng = np.random.RandomState(0)
    >>> X = rng.normal(size=(200, 4))
    >>> y = np.column_stack([X[:, 0] > 0, X[:, 1] + X[:, 0] > 0]).astype(int)
    >>> clf = MultiTaskClassifier(max_iter=30, random_state=0).fit(X, y)
    >>> [p.shape for p in clf.predict_proba(X[:3])]
    [(3, 2), (3, 2)]
    """

    _parameter_constraints: dict = {
        **BaseMultiTaskNetwork._parameter_constraints,
        "class_weight": [StrOptions({"balanced"}), dict, list, None],
        "funnel": ["array-like", None],
        "funnel_mode": [StrOptions({"esmm", "independent"})],
        "funnel_penalty": [Interval(Real, 0, None, closed="left")],
        "negative_sampling_rate": [Interval(Real, 0, 1, closed="right"), dict, None],
        "pos_label": [str, Integral, Real, "boolean", dict, None],
    }

    def __init__(
        self,
        architecture="mmoe",
        *,
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
        class_weight=None,
        funnel=None,
        funnel_mode="esmm",
        funnel_penalty=0.0,
        negative_sampling_rate=None,
        pos_label=None,
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
        self.class_weight = class_weight
        self.funnel = funnel
        self.funnel_mode = funnel_mode
        self.funnel_penalty = funnel_penalty
        self.negative_sampling_rate = negative_sampling_rate
        self.pos_label = pos_label
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
            Labels of each task (ints, bools or strings); NaN/None marks an
            unknown label, left out of that task's loss.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each row. A row of weight ``k`` trains as
            ``k`` copies of it would, in expectation over the mini-batches
            (each batch is normalised by the data's mean weight, not by its
            own total). Only the ratios matter: the weights are scaled by a
            power of two (exactly) before training in float32, so any
            multiple of them trains alike; ratios above about 1e38 are
            refused.

        Returns
        -------
        self : MultiTaskClassifier
            The fitted estimator.
        """
        return self._fit(X, y, sample_weight, reuse=self.warm_start and hasattr(self, "module_"))

    @_fit_context(prefer_skip_nested_validation=True)
    @keep_state_on_error
    def partial_fit(self, X, y, sample_weight=None, *, classes=None, categories=None):
        """Train one epoch on a chunk of data, continuing from earlier calls.

        For data that arrive in chunks or do not fit in memory. The first call
        builds the model: it takes the tasks' classes from ``classes`` (or from
        this chunk's labels), the categorical vocabularies from ``categories``
        (or from this chunk: categories first seen later map to the unknown
        row) and the continuous columns' mean and scale from this chunk. Later
        calls train the same model with the same Adam state, reading
        ``learning_rate_init``, ``alpha`` and ``weight_decay`` afresh (a
        switch between ``alpha``'s Adam and ``weight_decay``'s AdamW is
        refused: fit a new model). Early stopping and ``max_iter`` do not
        apply: each call is one pass over its chunk.

        Parameters
        ----------
        X : array-like, DataFrame or sparse matrix of shape (n_samples, n_features)
            A chunk of input features.
        y : array-like or DataFrame of shape (n_samples, n_tasks) or (n_samples,)
            Its labels; NaN/None marks an unknown label.
        sample_weight : array-like of shape (n_samples,), default=None
            Non-negative weight of each row.
        classes : list of array-like, or array-like, default=None
            Every class of each task (one array per task), needed on the
            first call when a chunk may miss some; later calls may pass the
            same classes again (scikit-learn's ``learning_curve`` does) and
            are refused if they differ. One flat array gives the classes of
            every task (what
            ``learning_curve(exploit_incremental_learning=True)`` passes);
            missing values (NaN/None) among them are left out: they mark
            unknown labels, never a class.
        categories : dict, default=None
            First call only: the full set of categories of some categorical
            or sequence columns, keyed by column name (DataFrame input) or
            index (for a group of ``shared_embeddings``: of any of its
            columns, their union).

        Returns
        -------
        self : MultiTaskClassifier
            The updated estimator.
        """
        first = not hasattr(self, "module_")
        if classes is not None:
            if np.ndim(classes[0]) == 0:  # one flat array: the classes of every task
                classes = [classes] * len(task_columns(y)[0])
            classes = [declared_classes(c) for c in classes]

        def check_call():
            if _uses_balanced(self.class_weight):
                raise ValueError(
                    "class_weight='balanced' is not supported by partial_fit (each chunk's "
                    "class counts would give other weights, as for scikit-learn's "
                    "SGDClassifier): compute the weights once, e.g. with "
                    "sklearn.utils.class_weight.compute_class_weight('balanced', "
                    "classes=classes, y=y) on a large enough sample of the labels, and pass "
                    "them as a {class: weight} dict."
                )
            if not first and categories is not None:
                raise ValueError("categories are taken on the first partial_fit call only.")
            if not first and classes is not None:  # scikit-learn passes them on every call
                self._check_same_classes(classes)

        return self._fit(
            X, y, sample_weight, reuse=not first, partial=True,
            classes=classes if first else None, categories=categories, check_call=check_call,
        )

    # ------------------------------------------------------- the tasks' part
    def _fit_targets(self, y, group, *, reuse, partial, classes, sample_weight=None):
        """Classes of each task (the fitted ones when continuing), labels as class indices.

        ``sample_weight`` is not needed here (the loss weighs the rows).
        """
        if reuse:  # on every process, so that an error on one is raised on all
            group.run(lambda: self._check_continued_tasks(y, partial))
        if reuse and partial:  # the training order, in which class 1 is the positive one
            classes = self._label_order_
        targets = fit_targets(y, classes, group, allow_single_class=not partial)
        if reuse:  # matched by position (an array, a Series, or the same names), as checked:
            # the tasks keep the fitted names, which settings and scorers refer to
            targets.task_names = [str(name) for name in self.task_names_]
        if reuse and partial:  # a chunk's y of shape (n, 1) continues a 1-D fit as 1-D
            targets.one_dimensional = not isinstance(self.classes_, list)
        if not partial:
            self._set_aside_untrainable_tasks(targets)
        positive = positive_labels(self.pos_label, targets.task_names, targets.classes)
        put_positive_last(targets.codes, targets.classes, positive)
        if reuse:
            self._check_continued_classes(targets, partial)
        targets.funnel = resolve_funnel(
            self.funnel, targets.task_names, targets.classes, positive
        )
        if targets.funnel:
            targets.codes = group.run(
                lambda: impression_space_codes(targets.codes, targets.funnel, targets.task_names)
            )
        if self.funnel_penalty and (not targets.funnel or self.funnel_mode != "independent"):
            warn_user(
                f"funnel_penalty={self.funnel_penalty} changes nothing: the penalty applies only "
                "with a funnel in funnel_mode='independent' (in 'esmm' mode the funnel order "
                f"holds by construction); here funnel={self.funnel!r}, "
                f"funnel_mode={self.funnel_mode!r}.",
                UserWarning,
            )
        # Settings keyed by task, resolved (and refused) before any work on X.
        targets.task_weights = task_weight_vector(self.task_weights, targets.task_names)
        targets.logit_offsets = logit_offsets(
            self.negative_sampling_rate, targets.task_names, targets.classes, targets.funnel,
            positive,
        )
        return targets

    def _set_aside_untrainable_tasks(self, targets) -> None:
        """Complete known-binary tasks that show one class; set aside what still cannot train.

        A funnel step, or a task named in a ``pos_label`` dict, that shows only
        its negative class (e.g. no conversion in a cross-validation fold)
        gets its positive class and trains as usual. A single ``pos_label``
        completes funnel steps only, and only where it is of the observed
        class's kind (a string for strings, a number for numbers): it must
        not invent a class for an unrelated task. Any other task with fewer
        than two classes is left out of the loss and predicts its observed
        class, with an :class:`UntrainableTaskWarning`; with no trainable
        task at all, ``fit`` raises.
        """
        names, classes = targets.task_names, targets.classes
        if isinstance(self.pos_label, dict):
            named, single = declared_positive_labels(self.pos_label, names, classes), None
        else:
            named, single = {}, self.pos_label
        binary = {}
        for t in {*funnel_steps(self.funnel, names), *named}:
            label = named.get(t, single)
            binary[t] = label if _same_kind(label, classes[t]) else None
        complete_binary_classes(targets, binary)
        untrainable = untrainable_tasks(targets)
        if untrainable:
            seen = [
                "no known label" if classes[t].size == 0 else f"only {classes[t].tolist()[0]!r}"
                for t in untrainable
            ]
            described = ", ".join(f"{names[t]!r} ({s})" for t, s in zip(untrainable, seen))
            warn_user(
                f"Task(s) {described} have fewer than two classes among the known labels of "
                "this fit: they are left out of training and predict their observed class "
                "(no class: NaN), and their scores are undefined. The other tasks train as "
                "usual. For a binary task, declare pos_label to keep it binary when only "
                "its negative class is present.",
                UntrainableTaskWarning,
            )

    def _split_strata(self, targets) -> np.ndarray | None:
        """With one task, its classes (unknown labels a stratum of their own), as MLPClassifier.

        Several tasks have no single stratification; the split is then a plain
        random one, checked by :meth:`_check_training_rows`.
        """
        if targets.codes.shape[1] != 1:
            return None
        return targets.codes[:, 0]

    def _check_training_rows(self, targets, train_rows, group) -> None:
        """Warn about classes that only the validation rows hold (they cannot be learnt).

        The check of :meth:`_set_aside_untrainable_tasks` sees every row of
        ``fit``; the validation split can still leave a rare class, or a
        binary task's only positive, out of the training rows.
        """
        in_training = np.zeros(len(targets.codes), dtype=bool)
        in_training[train_rows] = True

        def classes_seen(rows):
            codes = targets.codes[rows]
            return [np.unique(codes[:, t][codes[:, t] >= 0]).tolist()
                    for t in range(codes.shape[1])]

        seen = group.share(lambda: (classes_seen(in_training), classes_seen(~in_training)))
        missing = []
        for t, classes in enumerate(targets.classes):
            if len(classes) < 2:  # set aside already (UntrainableTaskWarning)
                continue
            trained = set().union(*(shard[0][t] for shard in seen))
            validated = set().union(*(shard[1][t] for shard in seen))
            # (a class no row holds, e.g. a funnel step's positive added for a fold without
            # one, is not the split's doing)
            lost = [classes[c] for c in sorted(validated - trained)]
            if lost:
                shown = ", ".join(repr(c.item() if isinstance(c, np.generic) else c) for c in lost)
                missing.append(f"{targets.task_names[t]!r} ({shown})")
        if missing:
            warn_user(
                f"The validation split left class(es) of task(s) {'; '.join(missing)} "
                "without any training row (they are in the validation rows only): the model "
                "cannot learn them. Use a smaller validation_fraction, more rows of those "
                "classes, or early_stopping=False.",
                UntrainableTaskWarning,
            )

    def _check_same_classes(self, classes: list[np.ndarray]) -> None:
        """Classes given to a later partial_fit call must be the fitted ones."""
        fitted = self._label_order_
        if len(classes) != len(fitted) or any(
            len(new) != len(old) or set(new.tolist()) != set(old.tolist())
            for new, old in zip(classes, fitted)
        ):
            raise ValueError(
                f"partial_fit got classes {[c.tolist() for c in classes]}, but the model was "
                f"fitted with {[c.tolist() for c in fitted]}; the classes are fixed by the "
                "first call."
            )

    def _check_continued_tasks(self, y, partial: bool) -> None:
        """A continued fit (partial_fit, warm_start) trains each head on the task it learnt.

        y's columns are matched by position; when they carry names (a
        DataFrame of several tasks), the names must be the fitted ones in the
        fitted order.
        """
        names = task_columns(y)[1]
        fitted = [str(name) for name in self.task_names_]
        if len(names) != len(fitted):
            how = "partial_fit:" if partial else "warm_start=True:"
            advice = "" if partial else " Set warm_start=False to fit a new model."
            raise ValueError(
                f"{how} y has {len(names)} task(s) but the fitted model has {len(fitted)}."
                + advice
            )
        if misnamed_tasks(y, fitted) is not None:
            advice = "" if partial else ", or set warm_start=False to fit a new model"
            raise ValueError(
                f"Continuing the fitted model needs y's tasks in the fitted order: fitted "
                f"{fitted}, got {names}. Reorder y's columns (y[{fitted}]){advice}."
            )

    def _changed_output_meaning(self, targets) -> list[tuple]:
        """An ESMM funnel's later steps output P(step | previous step), not P(step).

        Turning ESMM on or off, or changing its steps, would read the trained
        heads as the other probability.
        """
        def esmm_steps(funnel, mode):
            return [str(targets.task_names[t]) for t in funnel] if mode == "esmm" else []

        fitted = esmm_steps(self.objective_.funnel, self.objective_.funnel_mode)
        now = esmm_steps(targets.funnel, self.funnel_mode)
        if fitted == now:
            return []
        what = (f"the steps trained ESMM-style (now funnel={self.funnel!r}, "
                f"funnel_mode={self.funnel_mode!r})")
        return [(what, fitted, now)]

    def _check_continued_classes(self, targets, partial: bool) -> None:
        """The fitted classes in the fitted training order, or a ValueError.

        The order puts ``pos_label``'s class last: a ``pos_label`` changed since
        the first fit would swap what the trained output heads mean.
        """
        fitted = self._label_order_  # compared in the training order (pos_label's too)
        call = "partial_fit" if partial else "warm_start=True"
        if len(fitted) != len(targets.classes):
            raise ValueError(
                f"warm_start=True: y has {len(targets.classes)} task(s) but the fitted model "
                f"has {len(fitted)}. Set warm_start=False to fit a new model."
            )
        for name, old, new in zip(targets.task_names, fitted, targets.classes):
            if len(old) == len(new) and set(old.tolist()) == set(new.tolist()) and not np.all(
                    old == new):
                raise ValueError(
                    f"{call}: pos_label now makes {new.tolist()[-1]!r} the positive class of "
                    f"task {name!r}, but the model was trained with {old.tolist()[-1]!r} as its "
                    "positive class. Set pos_label back, or fit a new model"
                    + (" (warm_start=False)." if not partial else " (fit).")
                )
            if len(old) != len(new) or not np.all(old == new):
                raise ValueError(
                    f"warm_start=True: task {name!r} has classes {new.tolist()} but the fitted "
                    f"model has {old.tolist()}. Set warm_start=False to fit a new model."
                )

    def _make_objective(
        self, spec, targets, train_rows, group, sample_weight
    ) -> MultiTaskObjective:
        """Per-task cross-entropy with the task and class weights, funnel and logit offsets."""
        as_tensor = lambda a: None if a is None else torch.tensor(a, dtype=torch.float32)
        class_weights = self._class_weight_vectors(targets, train_rows, group, sample_weight)
        return MultiTaskObjective(
            spec["n_outputs"],
            task_weights=as_tensor(targets.task_weights),
            class_weights=[as_tensor(w) for w in class_weights],
            funnel=targets.funnel,
            funnel_mode=self.funnel_mode,
            funnel_penalty=self.funnel_penalty,
            logit_offsets=as_tensor(targets.logit_offsets),
        )

    def _class_weight_vectors(
        self, targets, train_rows, group, sample_weight
    ) -> list[np.ndarray | None]:
        specs = class_weight_specs(self.class_weight, targets.task_names)
        balanced = [t for t, spec in enumerate(specs) if isinstance(spec, str)]
        counts = {}
        if balanced:  # weighted class counts over every process's training rows (as sklearn's)
            codes, weights = targets.codes[train_rows], sample_weight[train_rows]
            local = [
                np.bincount(codes[codes[:, t] >= 0, t], weights=weights[codes[:, t] >= 0],
                            minlength=len(targets.classes[t]))
                for t in balanced
            ]
            for t, shards in zip(balanced, zip(*group.share(lambda: local))):
                counts[t] = np.sum(shards, axis=0)
        vectors = class_weight_vectors(specs, targets.classes, targets.task_names, counts)
        # A task set aside in fit (fewer than two classes, labels all unknown) has no
        # classes to weigh: its rows never reach the loss.
        return [None if len(c) < 2 else v for c, v in zip(targets.classes, vectors)]

    def _store_targets(self, targets) -> None:
        self.funnel_ = targets.funnel
        # Training's order (a declared positive class at index 1) predicts; classes_ and
        # predict_proba's columns are sorted, as every scikit-learn classifier's.
        self._label_order_ = list(targets.classes)
        self.classes_ = public_classes(self._label_order_, targets.one_dimensional)

    # ------------------------------------------------------------- prediction
    def _task_probabilities(self, X) -> list[np.ndarray]:
        """Each task's probabilities, columns in the training order (``_label_order_``)."""
        check_is_fitted(self)
        probabilities = [
            p.cpu().numpy() for p in self._logits(X, then=self.objective_.probabilities)
        ]
        for t, task_classes in enumerate(self._label_order_):
            if len(task_classes) < 2:  # set aside in fit: its one observed class, or none
                probabilities[t] = np.ones((probabilities[t].shape[0], len(task_classes)))
        return probabilities

    def _sorted_columns(self) -> list[np.ndarray | None]:
        """Per task, the training-order columns that give ``classes_``'s order (None: the same)."""
        orders = [sorting_permutation(c) for c in self._label_order_]
        return [None if np.array_equal(o, np.arange(len(o))) else o for o in orders]

    @staticmethod
    def _predicted_codes(proba: np.ndarray, order: np.ndarray | None) -> np.ndarray:
        """Index (in the training order) of the most probable class; -3 for a task without one.

        Ties go to the first of the sorted classes (``order``: the training-order
        columns in ``classes_``'s order), as ``classes_[argmax(predict_proba)]``.
        """
        if proba.shape[1] == 0:
            return np.full(proba.shape[0], -3)
        if order is None:
            return proba.argmax(axis=1)
        return order[proba[:, order].argmax(axis=1)]

    def predict_proba(self, X):
        """Probability of each class of each task.

        Parameters
        ----------
        X : array-like, DataFrame or sparse matrix of shape (n_samples, n_features)
            Input features.

        Returns
        -------
        proba : list of ndarray of shape (n_samples, n_classes_t), or ndarray
            One array per task (columns ordered as ``classes_[t]``, which are
            sorted); a single array when the model was fitted on 1-D ``y``.
        """
        probabilities = [
            p if order is None else p[:, order]
            for p, order in zip(self._task_probabilities(X), self._sorted_columns())
        ]
        return probabilities[0] if not isinstance(self.classes_, list) else probabilities

    def predict_log_proba(self, X):
        """Log of :meth:`predict_proba` (``-inf`` where a probability is 0).

        Parameters
        ----------
        X : array-like, DataFrame or sparse matrix of shape (n_samples, n_features)
            Input features.

        Returns
        -------
        log_proba : list of ndarray of shape (n_samples, n_classes_t), or ndarray
            As :meth:`predict_proba`, in logs.
        """
        probabilities = self.predict_proba(X)
        with np.errstate(divide="ignore"):
            if isinstance(probabilities, list):
                return [np.log(p) for p in probabilities]
            return np.log(probabilities)

    def predict(self, X):
        """Most probable class of each task.

        Parameters
        ----------
        X : array-like, DataFrame or sparse matrix of shape (n_samples, n_features)
            Input features.

        Returns
        -------
        y_pred : ndarray of shape (n_samples, n_tasks) or (n_samples,)
            Predicted labels, with the dtype of the fitted labels; 1-D when the
            model was fitted on 1-D ``y``.
        """
        probabilities = self._task_probabilities(X)
        classes = self._label_order_
        out = np.empty((probabilities[0].shape[0], len(classes)), dtype=predict_dtype(classes))
        orders = self._sorted_columns()
        for t, (proba, task_classes) in enumerate(zip(probabilities, classes)):
            if len(task_classes) == 0:  # a task without any known label in fit
                out[:, t] = None if out.dtype == object else np.nan
                continue
            out[:, t] = task_classes[self._predicted_codes(proba, orders[t])]
        return out if isinstance(self.classes_, list) else out[:, 0]

    def predict_conditional_proba(self, X):
        """Conditional probability of each funnel step given the previous one.

        For a funnel ``("click", "conversion")`` this returns pCTR and the
        post-click pCVR = P(conversion | click), while :meth:`predict_proba`
        gives pCTR and pCTCVR = P(click and conversion) over all impressions
        (pCTCVR = pCTR * pCVR in ESMM mode).

        Parameters
        ----------
        X : array-like, DataFrame or sparse matrix of shape (n_samples, n_features)
            Input features.

        Returns
        -------
        proba : dict of str to ndarray of shape (n_samples,)
            ``P(step k | step k-1)`` keyed by task name, in funnel order (the
            first step's is its plain probability).

        Raises
        ------
        AttributeError
            If the model was fitted without a funnel.
        """
        check_is_fitted(self)
        if not self.funnel_:
            raise AttributeError(
                "predict_conditional_proba needs a model fitted with funnel=...; this one has "
                "no funnel."
            )
        conditional = self._logits(X, then=self.objective_.conditional_probabilities)
        return {
            str(self.task_names_[t]): p.cpu().numpy() for t, p in zip(self.funnel_, conditional)
        }

    def score(self, X, y, sample_weight=None):
        """Subset accuracy, skipping unknown (NaN) labels task by task.

        A row counts as correct when every one of its known labels is
        predicted; rows with no known label are left out. A label never seen
        in ``fit`` is a known label that no prediction matches: it counts as
        wrong, on every task (funnel steps included, unless an earlier step
        is negative, which makes the step 0). Without unknown
        labels this is :func:`sklearn.metrics.accuracy_score`'s subset
        accuracy.

        To compare models by ranking or probability quality, as in
        ``GridSearchCV(scoring=...)``, use the scorers of :mod:`skmtl.metrics`
        (``metrics.get_scorer("mean_roc_auc")``,
        ``metrics.get_scorer("neg_mean_log_loss")``,
        :func:`~skmtl.metrics.per_task_scorers`), which score each task on its
        known labels and average over tasks. scikit-learn's built-in
        ``"neg_log_loss"`` and ``"neg_brier_score"`` are wrong here: they read
        the tasks' positive-class probabilities as the class probabilities of
        ONE problem (hence their warning that they do not sum to one), so they
        measure another quantity and can choose another model; all of
        scikit-learn's scorers raise on unknown labels.

        Parameters
        ----------
        X : array-like, DataFrame or sparse matrix of shape (n_samples, n_features)
            Input features.
        y : array-like or DataFrame of shape (n_samples, n_tasks) or (n_samples,)
            True labels; NaN/None marks an unknown label.
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each row.

        Returns
        -------
        score : float
            Weighted fraction of rows whose known labels are all predicted.

        See Also
        --------
        skmtl.metrics.get_scorer : Mean-over-tasks scorers for model selection.
        skmtl.metrics.per_task_scores : Each task's ROC AUC, average precision
            or log loss.
        """
        check_is_fitted(self)
        check_consistent_length(X, y, sample_weight)
        sample_weight = checked_score_weights(sample_weight, y)
        check_scored_tasks(y, self.task_names_)
        codes = encode_targets(y, self._label_order_)  # class 1 positive, for the funnel
        if self.funnel_:
            codes = impression_space_codes(codes, self.funnel_, list(self.task_names_))
        predicted = np.column_stack(
            [self._predicted_codes(p, order)
             for p, order in zip(self._task_probabilities(X), self._sorted_columns())]
        )
        return metrics.subset_accuracy_from_codes(codes, predicted, sample_weight=sample_weight)

    # --------------------------------------------------------------- plumbing
    def __getstate__(self):
        # classes_ pickles in the training order, without _label_order_, as it always did.
        return stored_label_order(super().__getstate__())

    def __setstate__(self, state):
        super().__setstate__(restored_label_order(state))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = True
        # String and category columns are embedded; NaN stays refused in continuous columns.
        tags.input_tags.string = True
        tags.input_tags.categorical = True
        # Continuous columns, never densified whole; piecewise-linear bins need dense columns.
        tags.input_tags.sparse = self.numeric_embedding != "piecewise_linear"
        return tags


def _same_kind(label, task_classes: np.ndarray) -> bool:
    """Whether ``label`` could be a class of a task with these classes (str vs number)."""
    if label is None or task_classes.size == 0:
        return False
    observed = task_classes.tolist()[0]
    return isinstance(label, str) == isinstance(observed, str)


def _uses_balanced(class_weight) -> bool:
    """Whether ``class_weight`` asks for "balanced" weights for some task."""
    if isinstance(class_weight, str):
        return class_weight == "balanced"
    values = class_weight if isinstance(class_weight, list) else (
        class_weight.values() if isinstance(class_weight, dict) else ()
    )
    return any(isinstance(v, str) and v == "balanced" for v in values)
