"""Synthetic feed impressions with a binary task (click) and a real-valued one (watch time)."""

import numpy as np
import pandas as pd
from sklearn.utils import Bunch, check_random_state

from ._ad_funnel import _calibrate_intercept, _check_rate, _sigmoid, _standardize
from ._synthetic import (
    _check_nonnegative_real,
    _check_sin_parameters,
    _check_task_correlation,
    _continuous_targets,
    _orthonormal_directions,
    _task_weights,
    check_int,
)

__all__ = ["make_click_watch_time"]

CLICK_STRENGTH = 2.0
"""Weight of the standardised click score in the click logit."""

WATCH_STRENGTH = 0.5
"""Weight of the standardised watch score in the log of the watch time."""


def make_click_watch_time(
    n_samples=20_000,
    n_features=10,
    *,
    task_correlation=0.5,
    ctr=0.2,
    watch_time_scale=1.0,
    noise=0.3,
    n_sin=10,
    return_X_y=False,
    random_state=None,
):
    """Generate impressions with a click (0/1) and a watch time (> 0) of known expectation.

    Each row is an item shown in a feed, with a binary task and a real-valued
    one: whether the user clicked it (liked, opened, ...) and how long the
    user watched it. Two scores of the features drive them, built as in
    :func:`make_multitask_classification` (a linear projection ``w_t . x`` of
    standard normal features plus ``sum_i sin(alpha_i * w_t . x + beta_i)``)
    from weight vectors ``w_click`` and ``w_watch`` of unit norm whose cosine
    is ``task_correlation``: 1 gives both tasks the same score, 0 independent
    ones. With ``s_click`` and ``s_watch`` the scores standardised over the
    sample:

    - ``P(click | x) = sigmoid(2 * s_click + b)``, ``b`` set by bisection so
      that the mean ``P(click | x)`` is ``ctr``; the click is drawn from it;
    - ``watch_time = watch_time_scale * exp(0.5 * s_watch + noise * e)``
      with ``e`` standard normal: log-normal given ``x``, with
      ``E[watch_time | x] = watch_time_scale * exp(0.5 * s_watch + noise**2 / 2)``.

    ``watch_time_scale`` changes the units of the watch time only (seconds,
    minutes, ...), so it sets how large the watch time's squared error is
    next to the click's log loss: the squared error grows as its square. At
    1 the two are of the same size (with the other defaults, the half
    squared error of predicting the mean watch time was 0.52 to 1.91 times
    the log loss of predicting the click rate, seeds 0 to 4); about 10 (7.2
    to 13.8) makes it 100 times larger.

    Parameters
    ----------
    n_samples : int, default=20_000
        Number of impressions.
    n_features : int, default=10
        Number of standard normal features, at least 2.
    task_correlation : float, default=0.5
        Cosine between the two tasks' weight vectors, in [-1, 1]: how much
        signal the click and the watch time share.
    ctr : float, default=0.2
        Expected click rate (the mean of ``P(click | x)``), in (0, 1).
    watch_time_scale : float, default=1.0
        Positive factor of every watch time (its units).
    noise : float, default=0.3
        Standard deviation of the normal noise on the log watch time, >= 0.
    n_sin : int, default=10
        Number of sinusoidal terms of each score (0: linear scores).
    return_X_y : bool, default=False
        If True, return ``(X, y)`` instead of a Bunch.
    random_state : int, RandomState instance or None, default=None
        Seed or generator for every random draw. Pass an int for
        reproducible output.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features)
        Returned when ``return_X_y`` is True. Standard normal features.
    y : pandas.DataFrame of shape (n_samples, 2)
        Returned when ``return_X_y`` is True. Columns ``click`` (int64, 0/1)
        and ``watch_time`` (float64, positive).
    bunch : sklearn.utils.Bunch
        Returned when ``return_X_y`` is False, with attributes ``data``
        (``X``), ``target`` (``y``), ``p_click`` (ndarray of shape
        ``(n_samples,)``, the true ``P(click | x)``), ``expected_watch_time``
        (the true ``E[watch_time | x]``), ``scores`` (ndarray of shape
        ``(n_samples, 2)``: ``s_click`` and ``s_watch``), ``weights``
        (ndarray of shape ``(2, n_features)``: ``w_click`` and ``w_watch``),
        ``alpha`` and ``beta`` (ndarrays of shape ``(n_sin,)``),
        ``click_intercept`` (``b``), ``task_correlation`` (float),
        ``feature_names`` and ``target_names`` (lists of str).

    Raises
    ------
    ValueError
        If a parameter is out of range: ``n_features < 2``,
        ``task_correlation`` outside [-1, 1], ``ctr`` outside (0, 1), a
        ``watch_time_scale`` that is not positive, or a negative ``noise``.

    See Also
    --------
    make_multitask_classification : Binary tasks of controlled relatedness.
    make_ad_funnel : Clicks and post-click conversions.

    Notes
    -----
    The true ``p_click`` and ``expected_watch_time`` are what the targets
    were drawn from, so their scores (the ROC AUC of ``p_click``, the R^2 of
    ``expected_watch_time``) are the best a model can reach on the sample.
    Fit the watch time with :class:`~skmtl.MultiTaskRegressor` next to the
    click, which gets ``loss="log_loss"``. The regressor standardises the
    watch time, so ``watch_time_scale`` changes nothing in its training; it
    matters for a model trained on the raw units, e.g. to study how tasks'
    losses of very different sizes are balanced.

    Examples
    --------
    >>> from skmtl.datasets import make_click_watch_time
    >>> data = make_click_watch_time(n_samples=5_000, random_state=0)
    >>> data.data.shape, list(data.target.columns)
    ((5000, 10), ['click', 'watch_time'])
    >>> bool(abs(data.p_click.mean() - 0.2) < 1e-6), bool(data.target["watch_time"].min() > 0)
    (True, True)
    """
    n_samples = check_int(n_samples, "n_samples", 1)
    n_features = check_int(n_features, "n_features", 2)
    (cosine,) = _check_task_correlation(task_correlation, 2)
    ctr = _check_rate(ctr, "ctr")
    if not _check_nonnegative_real(watch_time_scale, "watch_time_scale") > 0:
        raise ValueError(f"watch_time_scale must be > 0, got {watch_time_scale!r}.")
    watch_time_scale = float(watch_time_scale)
    noise = _check_nonnegative_real(noise, "noise")
    n_sin = check_int(n_sin, "n_sin", 0)
    rng = check_random_state(random_state)

    weights = _task_weights(_orthonormal_directions(n_features, 2, rng), np.array([cosine]), 1.0)
    alpha = _check_sin_parameters(None, "alpha", n_sin, rng)
    beta = _check_sin_parameters(None, "beta", n_sin, rng)
    X = rng.standard_normal((n_samples, n_features))
    raw = _continuous_targets(X, weights, alpha, beta, 0.0, rng)
    scores = np.column_stack([_standardize(raw[:, 0]), _standardize(raw[:, 1])])

    click_logit = CLICK_STRENGTH * scores[:, 0]
    intercept = _calibrate_intercept(click_logit, ctr)
    p_click = _sigmoid(click_logit + intercept)
    click = (rng.uniform(size=n_samples) < p_click).astype(np.int64)
    log_watch = WATCH_STRENGTH * scores[:, 1]
    watch_time = watch_time_scale * np.exp(log_watch + noise * rng.standard_normal(n_samples))

    y = pd.DataFrame({"click": click, "watch_time": watch_time})
    if return_X_y:
        return X, y
    return Bunch(
        data=X,
        target=y,
        p_click=p_click,
        expected_watch_time=watch_time_scale * np.exp(log_watch + noise**2 / 2),
        scores=scores,
        weights=weights,
        alpha=alpha,
        beta=beta,
        click_intercept=intercept,
        task_correlation=float(cosine),
        feature_names=[f"x{j}" for j in range(n_features)],
        target_names=["click", "watch_time"],
    )
