"""Synthetic multi-task classification data with controlled task relatedness."""

from numbers import Integral, Real

import numpy as np
import pandas as pd
from sklearn.utils import Bunch, check_random_state

__all__ = ["make_multitask_classification"]


def check_int(value, name, minimum):
    """Check that ``value`` is an integer (not a bool) no smaller than ``minimum``.

    Parameters
    ----------
    value : object
        Value to check.
    name : str
        Parameter name, used in the error message.
    minimum : int
        Smallest allowed value.

    Returns
    -------
    value : int
        The value as a Python int.

    Raises
    ------
    ValueError
        If ``value`` is not an integer or is smaller than ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"{name} must be an integer, got {value!r}.")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}.")
    return int(value)


def _check_nonnegative_real(value, name):
    """Check that ``value`` is a finite real number >= 0.

    Parameters
    ----------
    value : object
        Value to check.
    name : str
        Parameter name, used in the error message.

    Returns
    -------
    value : float

    Raises
    ------
    ValueError
        If ``value`` is not a finite non-negative real number.
    """
    if isinstance(value, bool) or not isinstance(value, Real) or not np.isfinite(value):
        raise ValueError(f"{name} must be a finite real number, got {value!r}.")
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}.")
    return float(value)


def _check_task_correlation(task_correlation, n_tasks):
    """Turn ``task_correlation`` into one cosine per extra task.

    Parameters
    ----------
    task_correlation : float or sequence of float
        A single cosine shared by all tasks after the first, or one per such task.
    n_tasks : int
        Number of tasks.

    Returns
    -------
    cosines : ndarray of shape (n_tasks - 1,)
        Cosine between the weight vector of task ``t`` (t >= 1) and that of task 0.

    Raises
    ------
    ValueError
        If a value is not in [-1, 1] or the sequence has the wrong length.
    """
    if isinstance(task_correlation, bool):
        raise ValueError(f"task_correlation must be a float, got {task_correlation!r}.")
    try:
        if isinstance(task_correlation, (str, bytes)):
            raise TypeError
        cosines = np.asarray(task_correlation, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            "task_correlation must be a float or a sequence of floats, "
            f"got {task_correlation!r}."
        ) from None
    if cosines.ndim == 0:
        cosines = np.full(n_tasks - 1, float(cosines))
    elif cosines.shape != (n_tasks - 1,):
        raise ValueError(
            "task_correlation must be a float or a sequence with one value per task after "
            f"the first ({n_tasks - 1}), got shape {cosines.shape}."
        )
    if not np.all(np.isfinite(cosines)) or np.any(np.abs(cosines) > 1):
        raise ValueError(
            f"task_correlation must lie in [-1, 1], got {task_correlation!r}."
        )
    return cosines


def _check_sin_parameters(values, name, n_sin, random_state):
    """Validate user-given ``alpha`` or ``beta``, or draw them from N(0, 1).

    Parameters
    ----------
    values : array-like of shape (n_sin,) or None
        Given parameters, or None to draw them.
    name : str
        Parameter name, used in the error message.
    n_sin : int
        Number of sinusoidal terms.
    random_state : numpy.random.RandomState
        Generator used when ``values`` is None.

    Returns
    -------
    values : ndarray of shape (n_sin,)

    Raises
    ------
    ValueError
        If the given values have the wrong shape or are not finite.
    """
    if values is None:
        return random_state.standard_normal(n_sin)
    values = np.asarray(values, dtype=np.float64)
    if values.shape != (n_sin,):
        raise ValueError(
            f"{name} must have shape (n_sin,) = ({n_sin},), got shape {values.shape}."
        )
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{name} must contain only finite values.")
    return values


def _orthonormal_directions(n_features, n_tasks, random_state):
    """Draw ``n_tasks`` random orthonormal vectors in ``R^n_features``.

    Random Gaussian vectors are orthonormalised one after the other (Gram-Schmidt):
    each is made orthogonal to all previous ones, then scaled to unit length.

    Parameters
    ----------
    n_features : int
        Dimension of the vectors; must be >= ``n_tasks``.
    n_tasks : int
        Number of vectors.
    random_state : numpy.random.RandomState
        Random number generator.

    Returns
    -------
    directions : ndarray of shape (n_tasks, n_features)
        Rows are unit vectors, pairwise orthogonal.
    """
    directions = np.empty((n_tasks, n_features))
    t = 0
    while t < n_tasks:
        vector = random_state.standard_normal(n_features)
        for previous in directions[:t]:
            vector -= (vector @ previous) * previous
        norm = np.linalg.norm(vector)
        if norm < 1e-8:  # numerically dependent draw (almost never happens): redraw
            continue
        directions[t] = vector / norm
        t += 1
    return directions


def _task_weights(directions, cosines, scale):
    """Build the task weight vectors from orthonormal directions.

    Task 0 gets ``scale * u_0``; task ``t >= 1`` gets
    ``scale * (p_t * u_0 + sqrt(1 - p_t**2) * u_t)``, whose cosine with the first
    weight vector is ``p_t``.

    Parameters
    ----------
    directions : ndarray of shape (n_tasks, n_features)
        Orthonormal directions ``u_0, ..., u_{n_tasks - 1}``.
    cosines : ndarray of shape (n_tasks - 1,)
        Target cosines ``p_1, ..., p_{n_tasks - 1}``.
    scale : float
        Norm ``c`` of every weight vector.

    Returns
    -------
    weights : ndarray of shape (n_tasks, n_features)
    """
    weights = np.empty_like(directions)
    weights[0] = directions[0]
    for t, p in enumerate(cosines, start=1):
        weights[t] = p * directions[0] + np.sqrt(1.0 - p**2) * directions[t]
    return scale * weights


def _continuous_targets(X, weights, alpha, beta, noise, random_state):
    """Compute ``y_t = w_t.x + sum_i sin(alpha_i * w_t.x + beta_i) + eps_t``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Inputs.
    weights : ndarray of shape (n_tasks, n_features)
        Task weight vectors.
    alpha, beta : ndarray of shape (n_sin,)
        Frequencies and phases of the sinusoidal terms, shared by all tasks.
    noise : float
        Standard deviation of the Gaussian noise ``eps_t``.
    random_state : numpy.random.RandomState
        Random number generator for the noise.

    Returns
    -------
    y : ndarray of shape (n_samples, n_tasks)
    """
    projections = X @ weights.T
    # (n_samples, n_tasks, n_sin) -> summed over the sinusoidal terms
    sines = np.sin(projections[..., np.newaxis] * alpha + beta).sum(axis=-1)
    eps = noise * random_state.standard_normal(projections.shape)
    return projections + sines + eps


def _binarize_at_median(y_continuous):
    """Label each task 1 above its median and 0 otherwise.

    Parameters
    ----------
    y_continuous : ndarray of shape (n_samples, n_tasks)

    Returns
    -------
    y : ndarray of shape (n_samples, n_tasks), dtype int64
    """
    medians = np.median(y_continuous, axis=0)
    return (y_continuous > medians).astype(np.int64)


def _quantile_bins(column, n_bins):
    """Replace a continuous column by the index of its quantile bin.

    Parameters
    ----------
    column : ndarray of shape (n_samples,)
    n_bins : int
        Number of bins of (roughly) equal counts.

    Returns
    -------
    codes : ndarray of shape (n_samples,), dtype int64
        Values in ``0, ..., n_bins - 1``.
    """
    inner_edges = np.quantile(column, np.linspace(0.0, 1.0, n_bins + 1)[1:-1])
    return np.searchsorted(inner_edges, column, side="right").astype(np.int64)


def _to_frame_with_categories(X, n_categorical, n_bins):
    """Build a DataFrame whose first ``n_categorical`` columns are binned categories.

    Parameters
    ----------
    X : ndarray of shape (n_samples, n_features)
        Continuous inputs.
    n_categorical : int
        Number of leading columns to bin.
    n_bins : int
        Number of quantile bins per binned column.

    Returns
    -------
    frame : pandas.DataFrame of shape (n_samples, n_features)
        Columns ``x0, ..., x{n_features - 1}``; the first ``n_categorical`` have
        ``category`` dtype with the integer categories ``0, ..., n_bins - 1``, the
        others are float64.
    """
    dtype = pd.CategoricalDtype(categories=list(range(n_bins)))
    columns = {}
    for j in range(X.shape[1]):
        if j < n_categorical:
            columns[f"x{j}"] = pd.Series(_quantile_bins(X[:, j], n_bins), dtype=dtype)
        else:
            columns[f"x{j}"] = X[:, j]
    return pd.DataFrame(columns)


def make_multitask_classification(
    n_samples=10000,
    n_features=100,
    *,
    n_tasks=2,
    task_correlation=0.5,
    scale=1.0,
    n_sin=10,
    alpha=None,
    beta=None,
    noise=0.01,
    n_categorical=0,
    n_bins=8,
    return_X_y=True,
    random_state=None,
):
    """Generate binary multi-task data whose task relatedness is controlled.

    This is the synthetic benchmark of the MMoE paper (Ma et al., KDD 2018, section
    3.2), with each regression target turned into a balanced binary label. The
    relatedness of two tasks is set by the cosine between their weight vectors:

    1. draw orthonormal unit vectors ``u_0, ..., u_{T-1}`` in ``R^d``;
    2. set ``w_0 = c * u_0`` and, for every other task ``t``,
       ``w_t = c * (p_t * u_0 + sqrt(1 - p_t**2) * u_t)``, so that
       ``cos(w_0, w_t) = p_t``;
    3. draw inputs ``x ~ N(0, I_d)``;
    4. compute ``y_t = w_t.x + sum_{i=1}^{m} sin(alpha_i * w_t.x + beta_i) + eps_t``
       with ``eps_t ~ N(0, noise**2)``; ``alpha`` and ``beta`` are shared by all
       tasks;
    5. label each task 1 where ``y_t`` is above its median over the sample, else 0.

    The sinusoidal terms make the tasks non-linear, so the correlation between the
    labels is a decreasing function of ``p_t`` but not equal to it.

    Parameters
    ----------
    n_samples : int, default=10000
        Number of samples.
    n_features : int, default=100
        Input dimension ``d``; must be at least ``n_tasks``.
    n_tasks : int, default=2
        Number of tasks ``T``.
    task_correlation : float or sequence of float, default=0.5
        Cosine ``p_t`` in [-1, 1] between the weight vector of task ``t >= 1`` and
        that of task 0: one value for all such tasks, or a sequence of length
        ``n_tasks - 1``. Two tasks ``s, t >= 1`` have cosine ``p_s * p_t``. A
        single value is ignored when ``n_tasks`` is 1 (a sequence must then be
        empty).
    scale : float, default=1.0
        Norm ``c`` of every weight vector (>= 0).
    n_sin : int, default=10
        Number ``m`` of sinusoidal terms; 0 gives linear tasks.
    alpha : array-like of shape (n_sin,), default=None
        Frequencies ``alpha_i`` of the sinusoidal terms. None draws them from a
        standard normal distribution.
    beta : array-like of shape (n_sin,), default=None
        Phases ``beta_i`` of the sinusoidal terms. None draws them from a standard
        normal distribution.
    noise : float, default=0.01
        Standard deviation of the Gaussian noise added to each continuous target.
    n_categorical : int, default=0
        Number of leading input columns to turn into categorical features. When
        positive, ``X`` is a DataFrame whose columns ``x0, ..., x{n_categorical-1}``
        hold the quantile bin (``0, ..., n_bins - 1``) of the continuous value, with
        ``category`` dtype. The targets are computed from the continuous inputs, so
        binning removes some information.
    n_bins : int, default=8
        Number of quantile bins of each categorical column (>= 2).
    return_X_y : bool, default=True
        If True, return ``(X, y)``; otherwise a Bunch with more details.
    random_state : int, RandomState instance or None, default=None
        Seed or generator for every random draw (directions, ``alpha``, ``beta``,
        inputs and noise). Pass an int for reproducible output.

    Returns
    -------
    X : ndarray of shape (n_samples, n_features) or pandas.DataFrame
        Inputs: a float64 array, or a DataFrame with columns ``x0, ...`` when
        ``n_categorical > 0``. Returned when ``return_X_y`` is True.
    y : ndarray of shape (n_samples, n_tasks), dtype int64
        Binary labels, about half ones per task. Returned when ``return_X_y`` is
        True.
    bunch : sklearn.utils.Bunch
        Returned when ``return_X_y`` is False, with attributes ``data`` (``X``),
        ``target`` (``y``), ``target_continuous`` (ndarray of shape
        ``(n_samples, n_tasks)``, the ``y_t`` before thresholding), ``weights``
        (ndarray of shape ``(n_tasks, n_features)``, the ``w_t``), ``alpha`` and
        ``beta`` (ndarrays of shape ``(n_sin,)``), ``task_correlation`` (ndarray of
        shape ``(n_tasks - 1,)``, the ``p_t``), ``feature_names`` and
        ``target_names`` (lists of str).

    Raises
    ------
    ValueError
        If a parameter is out of range, e.g. ``task_correlation`` outside [-1, 1],
        ``n_features < n_tasks``, ``n_categorical > n_features``, or ``alpha`` /
        ``beta`` of a length other than ``n_sin``.

    Notes
    -----
    The paper does not say how ``alpha`` and ``beta`` are chosen ("given
    parameters"); drawing them from a standard normal is this function's choice.
    The paper writes the noise as ``N(0, 0.01)``, which may mean a variance or a
    standard deviation of 0.01; the default here is a standard deviation of 0.01.
    Keep the noise small: the sinusoidal terms often make ``y_t`` vary slowly near
    its median, so larger noise flips many labels, and even with
    ``task_correlation=1`` the two label columns then disagree often.
    The paper uses ``d = 100``, ``c = 1`` and ``m = 10``, the defaults here.

    References
    ----------
    .. [1] J. Ma, Z. Zhao, X. Yi, J. Chen, L. Hong and E. H. Chi, "Modeling Task
       Relationships in Multi-task Learning with Multi-gate Mixture-of-Experts",
       KDD 2018.

    Examples
    --------
    >>> from skmtl.datasets import make_multitask_classification
    >>> X, y = make_multitask_classification(
    ...     n_samples=1000, n_features=20, task_correlation=0.9, random_state=0
    ... )
    >>> X.shape, y.shape
    ((1000, 20), (1000, 2))
    >>> y.mean(axis=0).tolist()
    [0.5, 0.5]
    """
    n_samples = check_int(n_samples, "n_samples", 1)
    n_tasks = check_int(n_tasks, "n_tasks", 1)
    n_features = check_int(n_features, "n_features", 1)
    if n_features < n_tasks:
        raise ValueError(
            f"n_features must be >= n_tasks to draw orthogonal task directions, got "
            f"n_features={n_features} and n_tasks={n_tasks}."
        )
    n_sin = check_int(n_sin, "n_sin", 0)
    n_categorical = check_int(n_categorical, "n_categorical", 0)
    if n_categorical > n_features:
        raise ValueError(
            f"n_categorical must be <= n_features={n_features}, got {n_categorical}."
        )
    n_bins = check_int(n_bins, "n_bins", 2)
    scale = _check_nonnegative_real(scale, "scale")
    noise = _check_nonnegative_real(noise, "noise")
    cosines = _check_task_correlation(task_correlation, n_tasks)
    rng = check_random_state(random_state)

    directions = _orthonormal_directions(n_features, n_tasks, rng)
    weights = _task_weights(directions, cosines, scale)
    alpha = _check_sin_parameters(alpha, "alpha", n_sin, rng)
    beta = _check_sin_parameters(beta, "beta", n_sin, rng)
    X = rng.standard_normal((n_samples, n_features))
    y_continuous = _continuous_targets(X, weights, alpha, beta, noise, rng)
    y = _binarize_at_median(y_continuous)

    data = X if n_categorical == 0 else _to_frame_with_categories(X, n_categorical, n_bins)
    if return_X_y:
        return data, y
    return Bunch(
        data=data,
        target=y,
        target_continuous=y_continuous,
        weights=weights,
        alpha=alpha,
        beta=beta,
        task_correlation=cosines,
        feature_names=[f"x{j}" for j in range(n_features)],
        target_names=[f"task_{t}" for t in range(n_tasks)],
    )
