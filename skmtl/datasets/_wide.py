"""Synthetic wide multi-task data: fingerprint-like bits and counts, many tasks, missing labels."""

from numbers import Real

import numpy as np
from sklearn.utils import Bunch, check_random_state

from ._ad_funnel import _sigmoid
from ._synthetic import check_int

__all__ = ["make_wide_multitask_classification"]


def _check_fraction(value, name, *, closed_high=True):
    """A real number in [0, 1] (or [0, 1) with ``closed_high=False``)."""
    if isinstance(value, bool) or not isinstance(value, Real) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite real number, got {value!r}.")
    if not (0 <= value <= 1 if closed_high else 0 <= value < 1):
        raise ValueError(f"{name} must be in [0, 1{']' if closed_high else ')'}, got {value}.")
    return float(value)


def _intercepts(logits, prevalence, n_steps=60):
    """Per column ``b`` with ``mean(sigmoid(logits[:, t] + b_t)) = prevalence[t]`` (bisection)."""
    low = np.full(logits.shape[1], -40.0) - logits.max(axis=0)
    high = np.full(logits.shape[1], 40.0) - logits.min(axis=0)
    for _ in range(n_steps):
        middle = 0.5 * (low + high)
        below = _sigmoid(logits + middle).mean(axis=0) < prevalence
        low = np.where(below, middle, low)
        high = np.where(below, high, middle)
    return 0.5 * (low + high)


def make_wide_multitask_classification(
    n_samples=50_000,
    n_features=1000,
    *,
    n_tasks=100,
    binary_fraction=0.75,
    n_latent=16,
    missing_rate=0.4,
    signal=1.5,
    return_X_y=True,
    random_state=None,
):
    """Generate wide binary multi-task data: fingerprint-like columns, shared latent factors.

    Many columns, many tasks, many missing labels, as in molecular bioactivity
    panels (fingerprint bits and substructure counts, one assay per task):

    1. Columns. Each row has a size ``s_i ~ LogNormal(0, 0.3)`` (a molecule's
       size: larger ones set more bits). A share ``binary_fraction`` of the
       columns are 0/1 bits, set with probability ``min(p_j * s_i, 0.95)``,
       ``p_j`` log-uniform in [0.02, 0.3]; the others are counts, Poisson of
       mean ``lambda_j * s_i``, ``lambda_j`` log-uniform in [0.2, 5].
    2. Latent factors, shared by the tasks. With ``z`` the standardised
       columns, factor ``k`` is a hinge of a sparse combination of 24
       columns: ``h_k = max(z @ a_k, 0)``, ``a_k`` with 24 non-zero
       ``N(0, 1)`` entries, ``z @ a_k`` standardised.
    3. Tasks. Task ``t``'s logit is ``h @ b_t`` (``b_t ~ N(0, I)``: every task
       reads every factor, in its own mix) plus a direct effect of its own,
       ``0.5 * z @ v_t`` (8 columns of its own, weights ``N(0, 1/8)``); the sum is
       standardised, scaled by ``signal``, and shifted by an intercept that sets
       the task's share of positives, drawn uniformly in [0.05, 0.4]. Labels are
       drawn from ``Bernoulli(sigmoid(logit))``.
    4. Missing labels. Task ``t`` loses each label with probability ``m_t``,
       uniform within ``d = min(0.2, missing_rate, 0.95 - missing_rate)`` of
       ``missing_rate`` (so their mean is ``missing_rate``, and 0 means no
       missing label); a missing label is NaN.

    A linear model per task sees the factors' linear part only; a network that
    shares its first layers across the tasks can learn the factors (the hinges)
    once for all of them. ``probabilities`` in the returned bunch are the true
    ``P(y = 1 | x)``: their ROC AUC is the best any model can reach.

    Parameters
    ----------
    n_samples : int, default=50_000
        Number of rows.
    n_features : int, default=1000
        Number of columns (at least 24 + 8, the columns a factor and a task's own
        effect read).
    n_tasks : int, default=100
        Number of binary tasks.
    binary_fraction : float, default=0.75
        Share of the columns that are 0/1 bits (the others are counts).
    n_latent : int, default=16
        Number of shared latent factors.
    missing_rate : float, default=0.4
        Mean share of missing labels, in [0, 0.95].
    signal : float, default=1.5
        Standard deviation of every task's logit before its intercept (>= 0);
        larger values give easier tasks.
    return_X_y : bool, default=True
        If True, return ``(X, y)``; otherwise a Bunch with more details.
    random_state : int, RandomState instance or None, default=None
        Seed or generator for every draw. Pass an int for reproducible output.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features), float64
        The columns: bits first, then counts. Returned when ``return_X_y`` is True.
    y : ndarray of shape (n_samples, n_tasks), float64
        Labels 0.0 or 1.0, NaN where missing. Returned when ``return_X_y`` is True.
    bunch : sklearn.utils.Bunch
        Returned when ``return_X_y`` is False, with attributes ``data`` (``X``),
        ``target`` (``y``), ``probabilities`` (ndarray of shape
        ``(n_samples, n_tasks)``, the true ``P(y = 1 | x)``), ``is_binary``
        (ndarray of bool of shape ``(n_features,)``), ``latent_weights``
        (``(n_features, n_latent)``, the ``a_k`` as columns), ``task_loadings``
        (``(n_tasks, n_latent)``, the ``b_t``), ``own_weights``
        (``(n_tasks, n_features)``, the ``v_t``), ``prevalence`` and
        ``missing_rates`` (``(n_tasks,)``), ``feature_names`` and
        ``target_names`` (lists of str).

    Raises
    ------
    ValueError
        If a parameter is out of range.

    Examples
    --------
    >>> import numpy as np
    >>> from skmtl.datasets import make_wide_multitask_classification
    >>> X, y = make_wide_multitask_classification(
    ...     n_samples=1000, n_features=200, n_tasks=10, random_state=0
    ... )
    >>> X.shape, y.shape
    ((1000, 200), (1000, 10))
    >>> bool(0.3 < np.isnan(y).mean() < 0.5)
    True
    """
    n_samples = check_int(n_samples, "n_samples", 1)
    n_features = check_int(n_features, "n_features", 32)
    n_tasks = check_int(n_tasks, "n_tasks", 1)
    n_latent = check_int(n_latent, "n_latent", 1)
    binary_fraction = _check_fraction(binary_fraction, "binary_fraction")
    missing_rate = _check_fraction(missing_rate, "missing_rate")
    if missing_rate > 0.95:
        raise ValueError(f"missing_rate must be at most 0.95, got {missing_rate}.")
    if isinstance(signal, bool) or not isinstance(signal, Real) or not 0 <= signal < np.inf:
        raise ValueError(f"signal must be a finite real number >= 0, got {signal!r}.")
    rng = check_random_state(random_state)

    # 1. Columns: bits then counts, both denser in larger rows.
    n_bits = round(binary_fraction * n_features)
    size = rng.lognormal(0.0, 0.3, size=(n_samples, 1))
    density = np.exp(rng.uniform(np.log(0.02), np.log(0.3), size=n_bits))
    rates = np.exp(rng.uniform(np.log(0.2), np.log(5.0), size=n_features - n_bits))
    X = np.empty((n_samples, n_features))
    X[:, :n_bits] = rng.uniform(size=(n_samples, n_bits)) < np.minimum(size * density, 0.95)
    X[:, n_bits:] = rng.poisson(size * rates)
    scale = X.std(axis=0)
    z = (X - X.mean(axis=0)) / np.where(scale > 0, scale, 1.0)

    # 2. Shared latent factors: hinges of sparse combinations.
    latent_weights = np.zeros((n_features, n_latent))
    for k in range(n_latent):
        latent_weights[rng.choice(n_features, 24, replace=False), k] = rng.normal(size=24)
    combined = z @ latent_weights
    spread = combined.std(axis=0)  # 0 where a factor reads only constant columns (few rows)
    combined = (combined - combined.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    factors = np.maximum(combined, 0.0)

    # 3. Tasks: their own mix of the factors plus a direct effect of their own.
    loadings = rng.normal(size=(n_tasks, n_latent))
    own_weights = np.zeros((n_tasks, n_features))
    for t in range(n_tasks):
        own_weights[t, rng.choice(n_features, 8, replace=False)] = rng.normal(0, np.sqrt(1 / 8), 8)
    logits = factors @ loadings.T + 0.5 * (z @ own_weights.T)
    spread = logits.std(axis=0)
    logits = signal * (logits - logits.mean(axis=0)) / np.where(spread > 0, spread, 1.0)
    prevalence = rng.uniform(0.05, 0.4, size=n_tasks)
    probabilities = _sigmoid(logits + _intercepts(logits, prevalence))
    y = (rng.uniform(size=probabilities.shape) < probabilities).astype(np.float64)

    # 4. Missing labels.
    # Half-width d keeps the range in [0, 0.95] with its mean at missing_rate (a clipped
    # +-0.2 had raised it near the bounds: 0.05 missing for missing_rate=0).
    half_width = min(0.2, missing_rate, 0.95 - missing_rate)
    missing_rates = rng.uniform(missing_rate - half_width, missing_rate + half_width, size=n_tasks)
    y[rng.uniform(size=y.shape) < missing_rates] = np.nan

    if return_X_y:
        return X, y
    return Bunch(
        data=X,
        target=y,
        probabilities=probabilities,
        is_binary=np.arange(n_features) < n_bits,
        latent_weights=latent_weights,
        task_loadings=loadings,
        own_weights=own_weights,
        prevalence=prevalence,
        missing_rates=missing_rates,
        feature_names=[f"x{j}" for j in range(n_features)],
        target_names=[f"task_{t}" for t in range(n_tasks)],
    )
