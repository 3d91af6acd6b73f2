"""Synthetic advertising funnel: impressions -> clicks -> conversions with known probabilities."""

from numbers import Real

import numpy as np
import pandas as pd
from sklearn.utils import Bunch, check_random_state

from ._history import (
    CLICK_WEIGHTS,
    CONVERSION_WEIGHTS,
    check_history,
    draw_histories,
    history_columns,
    history_terms,
)
from ._synthetic import check_int

__all__ = ["make_ad_funnel"]

_SEGMENTS = ["bargain", "family", "student", "professional", "senior", "gamer", "traveller",
             "casual"]
_DEVICES = ["android", "ios", "web"]
_CATEGORIES = ["books", "electronics", "fashion", "home", "toys", "sports", "beauty", "grocery",
               "garden", "music", "auto", "pets"]
_USER_FEATURES = ["user_segment", "device", "user_activity", "user_age"]
_ITEM_FEATURES = ["item_category", "item_price", "item_rating"]
_HISTORY_FEATURES = ["history_item_id", "history_category"]
_SEGMENT_SHARES = [0.18, 0.16, 0.14, 0.14, 0.1, 0.1, 0.08, 0.1]
_LATENT_DIM = 3


def _check_rate(value, name):
    """Return ``value`` as a float after checking it lies strictly between 0 and 1.

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
        If ``value`` is not a real number in the open interval (0, 1).
    """
    if isinstance(value, bool) or not isinstance(value, Real) or not np.isfinite(value):
        raise ValueError(f"{name} must be a real number in (0, 1), got {value!r}.")
    if not 0.0 < value < 1.0:
        raise ValueError(f"{name} must lie strictly between 0 and 1, got {value}.")
    return float(value)


def _sigmoid(z):
    """Logistic function ``1 / (1 + exp(-z))``, without overflow warnings.

    Parameters
    ----------
    z : ndarray

    Returns
    -------
    p : ndarray of the same shape
    """
    out = np.empty_like(z, dtype=np.float64)
    positive = z >= 0
    out[positive] = 1.0 / (1.0 + np.exp(-z[positive]))
    e = np.exp(z[~positive])
    out[~positive] = e / (1.0 + e)
    return out


def _calibrate_intercept(logit, target, weights=None, n_steps=100):
    """Find ``b`` such that the (weighted) mean of ``sigmoid(logit + b)`` equals ``target``.

    The mean is strictly increasing in ``b`` and runs from 0 to 1, so bisection
    on ``[-60, 60]`` (where it runs from below 1e-25 to above 1 - 1e-25 for
    logits of moderate size) converges to the unique root.

    Parameters
    ----------
    logit : ndarray of shape (n_samples,)
        Logits before the intercept.
    target : float
        Wanted mean probability, in (0, 1).
    weights : ndarray of shape (n_samples,), default=None
        Non-negative weights of the rows in the mean (None: equal weights).
    n_steps : int, default=100
        Bisection steps (each halves the bracket).

    Returns
    -------
    intercept : float
    """
    low, high = -60.0 - logit.max(), 60.0 - logit.min()
    for _ in range(n_steps):
        middle = 0.5 * (low + high)
        if np.average(_sigmoid(logit + middle), weights=weights) < target:
            low = middle
        else:
            high = middle
    return 0.5 * (low + high)


_INTENT_NODES = 16
"""Gauss-Hermite nodes for averaging over the hidden intent, up to ``selection_bias=2``;
``4 b**2`` above it (the sigmoid of ``c + b h`` narrows as ``b`` grows: 16 nodes were off by
8 % at ``b=6``)."""
MAX_SELECTION_BIAS = 5.0
"""The largest ``selection_bias``: 100 nodes keep the true probabilities within 0.1 %."""


def _intent_quadrature(selection_bias):
    """Nodes ``b * z_k`` and weights of ``E[f(b Z)]`` for ``Z ~ N(0, 1)``.

    Parameters
    ----------
    selection_bias : float
        The standard deviation ``b`` of the hidden intent's effect on both logits.

    Returns
    -------
    shifts, weights : ndarray of shape (n_nodes,)
        ``E[f(b Z)] ~= sum(weights * f(shifts))``; the weights sum to 1.
    """
    n_nodes = max(_INTENT_NODES, int(np.ceil(4 * selection_bias**2)))
    nodes, weights = np.polynomial.hermite_e.hermegauss(n_nodes)
    return selection_bias * nodes, weights / weights.sum()


def _calibrate_intercept_over_intent(mean_probability, target, bounds, n_steps=60):
    """Find ``b`` with ``mean_probability(b) == target`` by bisection (increasing in ``b``).

    Parameters
    ----------
    mean_probability : callable
        Maps an intercept to a mean probability, strictly increasing.
    target : float
        Wanted value, in (0, 1).
    bounds : tuple of float
        A bracket of the root.
    n_steps : int, default=60
        Bisection steps (60 halvings of a bracket ~150 wide leave ~1e-16).

    Returns
    -------
    intercept : float
    """
    low, high = bounds
    for _ in range(n_steps):
        middle = 0.5 * (low + high)
        if mean_probability(middle) < target:
            low = middle
        else:
            high = middle
    return 0.5 * (low + high)


def _true_probabilities_over_intent(click_logit, conversion_logit, ctr, cvr, selection_bias):
    """Intercepts, and the true probabilities given the observed features, averaged over intent.

    A hidden intent ``h ~ N(0, 1)`` of each impression adds ``selection_bias * h`` to both
    logits. Given the observed features ``x``, ``P(click | x) = E_h[s(c + b h)]``
    and ``P(click, conversion | x) = E_h[s(c + b h) s(v + b h)]``, with ``s`` the
    sigmoid; ``P(conversion | click, x)`` is their ratio. The intercepts set
    the mean of ``P(click | x)`` to ``ctr`` and the expected post-click rate,
    ``mean P(click, conversion | x) / mean P(click | x)``, to ``cvr``.

    Returns
    -------
    click_intercept, conversion_intercept : float
    p_click, p_conversion : ndarray of shape (n_samples,)
        ``P(click | x)`` and ``P(click, conversion | x)``.
    """
    shifts, weights = _intent_quadrature(selection_bias)

    def click_at(b):
        return _sigmoid(click_logit[:, None] + b + shifts[None, :])

    spread = 60.0 + np.abs(shifts).max()
    click_intercept = _calibrate_intercept_over_intent(
        lambda b: float(np.mean(click_at(b) @ weights)), ctr,
        (-spread - click_logit.max(), spread - click_logit.min()),
    )
    click_given_intent = click_at(click_intercept)
    p_click = click_given_intent @ weights
    mean_click = p_click.mean()

    def joint(b):
        conversion_at = _sigmoid(conversion_logit[:, None] + b + shifts[None, :])
        return (click_given_intent * conversion_at) @ weights

    conversion_intercept = _calibrate_intercept_over_intent(
        lambda b: float(joint(b).mean() / mean_click), cvr,
        (-spread - conversion_logit.max(), spread - conversion_logit.min()),
    )
    return click_intercept, conversion_intercept, p_click, joint(conversion_intercept)


def _standardize(values):
    """Centre ``values`` and scale them to unit standard deviation (0 if constant).

    Parameters
    ----------
    values : ndarray of shape (n,)

    Returns
    -------
    z : ndarray of shape (n,)
    """
    std = values.std()
    return (values - values.mean()) / (std if std > 0 else 1.0)


def _draw_users(n_users, rng):
    """Draw the attributes of the user pool.

    Parameters
    ----------
    n_users : int
        Number of distinct users.
    rng : numpy.random.RandomState
        Random number generator.

    Returns
    -------
    users : dict of str to ndarray of shape (n_users,)
        ``segment`` and ``device`` (integer codes), ``activity`` (sessions
        per week, log-normal) and ``age`` (whole years, 18 to 80).
    """
    return {
        "segment": rng.choice(len(_SEGMENTS), size=n_users, p=_SEGMENT_SHARES),
        "device": rng.choice(len(_DEVICES), size=n_users, p=[0.5, 0.35, 0.15]),
        "activity": rng.lognormal(mean=1.0, sigma=0.8, size=n_users),
        "age": np.round(np.clip(rng.normal(40.0, 13.0, size=n_users), 18.0, 80.0)),
    }


def _draw_items(n_items, rng):
    """Draw the attributes of the item pool.

    Parameters
    ----------
    n_items : int
        Number of distinct items (ads).
    rng : numpy.random.RandomState
        Random number generator.

    Returns
    -------
    items : dict of str to ndarray of shape (n_items,)
        ``category`` (integer codes), ``price`` (log-normal, with a
        category-dependent median) and ``rating`` (1 to 5).
    """
    category = rng.randint(len(_CATEGORIES), size=n_items)
    category_price = rng.normal(3.0, 0.7, size=len(_CATEGORIES))
    price = np.exp(category_price[category] + 0.6 * rng.standard_normal(n_items))
    rating = np.clip(rng.normal(3.8, 0.6, size=n_items), 1.0, 5.0)
    return {"category": category, "price": np.round(price, 2), "rating": np.round(rating, 1)}


def _draw_effects(rng):
    """Draw the coefficients of the two logits.

    Parameters
    ----------
    rng : numpy.random.RandomState
        Random number generator.

    Returns
    -------
    effects : dict
        ``segment_factors`` (n_segments, 3) and ``category_factors``
        (n_categories, 3): low-rank user x item affinity shared by both tasks;
        ``click_device``, ``conversion_device``, ``conversion_category``,
        ``price_sensitivity`` (one per segment): task-specific effects.
    """
    return {
        "segment_factors": (
            rng.standard_normal((len(_SEGMENTS), _LATENT_DIM)) / np.sqrt(_LATENT_DIM)
        ),
        "category_factors": rng.standard_normal((len(_CATEGORIES), _LATENT_DIM)),
        "click_device": np.array([0.3, 0.2, -0.4]) + 0.1 * rng.standard_normal(len(_DEVICES)),
        "conversion_device": np.array([-0.3, 0.1, 0.5]) + 0.1 * rng.standard_normal(len(_DEVICES)),
        "conversion_category": 0.5 * rng.standard_normal(len(_CATEGORIES)),
        "price_sensitivity": rng.uniform(0.2, 1.2, size=len(_SEGMENTS)),
    }


def _logits(users, items, user_index, item_index, effects):
    """Click and post-click conversion logits of each impression, before intercepts.

    Both logits share the user x item affinity ``a(segment, category)`` (a
    low-rank interaction) and the user's activity; each also has its own
    terms:

    - click: ``1.0 a + 0.5 activity + device_c + 0.4 rating - 0.2 price``;
    - conversion given click: ``0.7 a + 0.3 activity + device_v + category_v
      + 0.5 rating - price_sensitivity(segment) * price + 0.3 age * price``,

    where activity (log activity), age, price (log price) and rating are
    standardised over the user or item pool. The segment-dependent price
    sensitivity and the age x price term are user x item interactions seen
    only by conversions.

    Parameters
    ----------
    users, items : dict of str to ndarray
        Pools from :func:`_draw_users` and :func:`_draw_items`.
    user_index, item_index : ndarray of int of shape (n_samples,)
        User and item of each impression.
    effects : dict
        Coefficients from :func:`_draw_effects`.

    Returns
    -------
    click_logit, conversion_logit : ndarray of shape (n_samples,)
    """
    segment = users["segment"][user_index]
    device = users["device"][user_index]
    category = items["category"][item_index]
    activity = _standardize(np.log(users["activity"]))[user_index]
    age = _standardize(users["age"])[user_index]
    price = _standardize(np.log(items["price"]))[item_index]
    rating = _standardize(items["rating"])[item_index]
    affinity = np.einsum(
        "nk,nk->n", effects["segment_factors"][segment], effects["category_factors"][category]
    )
    click = (
        1.0 * affinity
        + 0.5 * activity
        + effects["click_device"][device]
        + 0.4 * rating
        - 0.2 * price
    )
    conversion = (
        0.7 * affinity
        + 0.3 * activity
        + effects["conversion_device"][device]
        + effects["conversion_category"][category]
        + 0.5 * rating
        - effects["price_sensitivity"][segment] * price
        + 0.3 * age * price
    )
    return click, conversion


def _features(users, items, user_index, item_index):
    """The observed features of each impression as a DataFrame.

    Parameters
    ----------
    users, items : dict of str to ndarray
        Pools from :func:`_draw_users` and :func:`_draw_items`.
    user_index, item_index : ndarray of int of shape (n_samples,)
        User and item of each impression.

    Returns
    -------
    X : pandas.DataFrame of shape (n_samples, 7)
        Categorical columns ``user_segment``, ``device``, ``item_category``
        (pandas ``category`` dtype); float64 columns ``user_activity``,
        ``user_age``, ``item_price``, ``item_rating``.
    """

    def categorical(codes, labels):
        return pd.Categorical.from_codes(codes, categories=labels)

    columns = {
        "user_segment": categorical(users["segment"][user_index], _SEGMENTS),
        "device": categorical(users["device"][user_index], _DEVICES),
        "user_activity": users["activity"][user_index].astype(np.float64),
        "user_age": users["age"][user_index].astype(np.float64),
        "item_category": categorical(items["category"][item_index], _CATEGORIES),
        "item_price": items["price"][item_index].astype(np.float64),
        "item_rating": items["rating"][item_index].astype(np.float64),
    }
    return pd.DataFrame(columns)[_USER_FEATURES + _ITEM_FEATURES]


def make_ad_funnel(
    n_samples=200_000,
    *,
    ctr=0.04,
    cvr=0.10,
    n_users=5_000,
    n_items=1_000,
    conversion_when_not_clicked="zero",
    selection_bias=0.0,
    history_length=0,
    history_signal=0.0,
    return_X_y=False,
    random_state=None,
):
    """Generate ad impressions with clicks and post-click conversions of known probability.

    Each impression shows one item (ad) to one user. A click is drawn from a
    known ``P(click | x)``; a conversion is drawn from a known
    ``P(conversion | click, x)`` for clicked impressions only, so a
    conversion can never happen without a click. The two probabilities are
    related but different, so a multi-task model has something to share:

    - both depend on a low-rank user x item affinity between the user's
      segment and the item's category, and on the user's activity;
    - clicks also depend on the device, the item's rating and weakly on its
      price;
    - conversions depend on the device (in the opposite direction: web users
      click less and convert more), the item's category, its rating, and
      strongly on its price, with a segment-dependent price sensitivity and
      an age x price interaction.

    The intercepts are set by bisection on the sample so that the expected
    click-through rate (mean ``P(click | x)``) is ``ctr`` and the expected
    post-click conversion rate (mean ``P(conversion | click, x)`` weighted by
    ``P(click | x)``) is ``cvr``; the realised rates differ from these by
    sampling noise only.

    Parameters
    ----------
    n_samples : int, default=200_000
        Number of impressions.
    ctr : float, default=0.04
        Expected click-through rate, in (0, 1).
    cvr : float, default=0.10
        Expected conversion rate among clicked impressions, in (0, 1).
    n_users : int, default=5_000
        Number of distinct users; each impression's user is drawn with
        probability proportional to the user's activity.
    n_items : int, default=1_000
        Number of distinct items, drawn uniformly for each impression.
    conversion_when_not_clicked : {"zero", "nan"}, default="zero"
        Conversion label of impressions without a click: ``"zero"`` gives 0
        (the ``conversion`` column is int64), ``"nan"`` gives NaN, i.e.
        unobserved (the column is float64 with 0.0/1.0 on clicked rows).
        :class:`~skmtl.MultiTaskClassifier` with
        ``funnel=("click", "conversion")`` treats both alike.
    selection_bias : float, default=0.0
        Strength ``b >= 0`` of a hidden purchase intent ``h ~ N(0, 1)``, drawn
        for each impression (the user's need at that moment; not among the
        features), that adds ``b * h`` to both the click and the conversion
        logit: impressions that get clicked more also convert more, so the
        clicked impressions over-represent high intent and their
        conversion rate is higher than the impressions' would be if every
        impression were clicked (sample-selection bias, as in Ma et al.,
        "Entire Space Multi-Task Model", SIGIR 2018). The returned true
        probabilities are those given the observed features, averaged over
        the intent (Gauss-Hermite quadrature, 16 nodes up to ``b=2`` and
        ``4 b**2`` above, within 0.1 % of a dense integral); at most 5. 0
        (the default) adds nothing and draws nothing: the output is that of
        earlier versions.
    history_length : int, default=0
        Longest behaviour history, >= 0; 0 (the default) adds no history and
        draws nothing for it. Otherwise each user has hidden interests over
        the item categories (a few favourites, independent of the user's
        features) and ``history_length`` earlier clicks on items of those
        categories, oldest first; each impression carries the most recent
        ``k`` of them, ``k`` varying from impression to impression (10 % of
        the users have an empty history, and so do some impressions of the
        others: about 10 % of all impressions for ``history_length=50``, and
        more for short histories, about 55 % for ``history_length=1``). Three columns are added: ``item_id`` (the candidate item,
        int64), ``history_item_id`` and ``history_category`` (lists of item
        ids and of category names, most recent last), for
        ``MultiTaskClassifier(sequence_features=...)``.
    history_signal : float, default=0.0
        Strength ``s >= 0`` of the history in the labels (needs
        ``history_length >= 1``). With the candidate's *affinity* ``a = log(12
        (c + 1) / (k + 12))`` (the log lift of its category in a history of
        ``k`` items, ``c`` of them of that category; 0 for an empty history)
        and *re-engagement* ``r`` (1 if the history holds the candidate
        item), the click logit gains ``s (a + r)`` and the conversion logit
        ``0.5 s (a + r)``, before the intercepts are calibrated, so ``ctr``,
        ``cvr`` and the true probabilities stay exact at every ``s``. With 0
        the history is drawn after, and independently of, everything that
        decides the labels: the features, labels and probabilities are
        bit for bit those without a history, and a model can only overfit
        to it.
    return_X_y : bool, default=False
        If True, return ``(X, y)`` instead of a Bunch.
    random_state : int, RandomState instance or None, default=None
        Seed or generator for every random draw (users, items, effects,
        impressions and labels). Pass an int for reproducible output.

    Returns
    -------
    X : pandas.DataFrame of shape (n_samples, 7) or (n_samples, 10)
        Returned when ``return_X_y`` is True. User features
        ``user_segment`` (8 categories), ``device`` (android, ios, web),
        ``user_activity`` (sessions per week), ``user_age``; item features
        ``item_category`` (12 categories), ``item_price``, ``item_rating``.
        Categorical columns have pandas ``category`` dtype, the others
        float64. With ``history_length >= 1`` also ``item_id`` (int64),
        ``history_item_id`` and ``history_category`` (object columns of
        lists).
    y : pandas.DataFrame of shape (n_samples, 2)
        Returned when ``return_X_y`` is True. Columns ``click`` (int64) and
        ``conversion`` (see ``conversion_when_not_clicked``).
    bunch : sklearn.utils.Bunch
        Returned when ``return_X_y`` is False, with attributes ``data``
        (``X``), ``target`` (``y``), ``p_click`` (ndarray of shape
        ``(n_samples,)``, the true ``P(click | x)``),
        ``p_conversion_given_click`` (the true ``P(conversion | click, x)``),
        ``p_conversion`` (``p_click * p_conversion_given_click``, the true
        probability of a conversion over all impressions), ``user_index`` and
        ``item_index`` (int64 arrays: which user and item each impression
        shows, e.g. for group-aware splits), ``feature_groups`` (dict
        ``{"user": [...], "item": [...]}`` of column names, ready for
        ``MultiTaskClassifier(feature_groups=...)``), ``intercepts`` (dict
        with the calibrated ``"click"`` and ``"conversion"`` intercepts),
        ``feature_names`` and ``target_names`` (lists of str). With
        ``selection_bias > 0`` also ``intent`` (the hidden ``h`` of each
        impression, float64), and the three probabilities are averaged
        over it. With ``history_length >= 1`` also ``history_affinity``
        (``a`` above, float64) and ``history_reengaged`` (``r``, bool), and
        ``feature_groups`` holds the history columns among the user's and
        ``item_id`` among the item's.

    Raises
    ------
    ValueError
        If ``n_samples``, ``n_users`` or ``n_items`` is not a positive
        integer, ``ctr`` or ``cvr`` is not in (0, 1),
        ``conversion_when_not_clicked`` is not ``"zero"`` or ``"nan"``,
        ``selection_bias`` or ``history_signal`` is not a finite number
        >= 0, ``history_length`` is not an integer >= 0, or
        ``history_signal`` is positive while ``history_length`` is 0.

    See Also
    --------
    make_multitask_classification : Synthetic tasks of controlled relatedness.

    Notes
    -----
    The true probabilities are those the labels were drawn from, so scores
    computed from them (e.g. the ROC AUC of ``p_conversion`` against the
    conversion labels) are the best any model can reach on this data. All
    the effects are functions of the observed features; users and items
    recur (about ``n_samples / n_users`` impressions per user), but no
    hidden per-user or per-item effect exists; ``selection_bias`` adds a
    hidden intent per impression, and the true probabilities then average
    over it. The users' interests are hidden, but the history's terms are
    functions of the observed history and candidate, so the true
    probabilities remain functions of the observed columns.

    Examples
    --------
    >>> from skmtl.datasets import make_ad_funnel
    >>> funnel = make_ad_funnel(n_samples=50_000, random_state=0)
    >>> funnel.data.shape, list(funnel.target.columns)
    ((50000, 7), ['click', 'conversion'])
    >>> bool(abs(funnel.p_click.mean() - 0.04) < 1e-6)
    True
    >>> int((funnel.target["conversion"] > funnel.target["click"]).sum())
    0
    >>> logs = make_ad_funnel(2_000, history_length=20, history_signal=1.0, random_state=0)
    >>> list(logs.data.columns[-3:])
    ['item_id', 'history_item_id', 'history_category']
    >>> bool(abs(logs.p_click.mean() - 0.04) < 1e-6)
    True
    """
    n_samples = check_int(n_samples, "n_samples", 1)
    n_users = check_int(n_users, "n_users", 1)
    n_items = check_int(n_items, "n_items", 1)
    ctr = _check_rate(ctr, "ctr")
    cvr = _check_rate(cvr, "cvr")
    if conversion_when_not_clicked not in ("zero", "nan"):
        raise ValueError(
            "conversion_when_not_clicked must be 'zero' or 'nan', got "
            f"{conversion_when_not_clicked!r}."
        )
    if (
        isinstance(selection_bias, bool) or not isinstance(selection_bias, Real)
        or not np.isfinite(selection_bias) or selection_bias < 0
    ):
        raise ValueError(
            f"selection_bias must be a finite real number >= 0, got {selection_bias!r}."
        )
    if selection_bias > MAX_SELECTION_BIAS:
        raise ValueError(
            f"selection_bias must be at most {MAX_SELECTION_BIAS:g} (the true probabilities "
            f"are averaged over the intent by quadrature), got {selection_bias!r}."
        )
    history_length, history_signal = check_history(history_length, history_signal)
    rng = check_random_state(random_state)

    users = _draw_users(n_users, rng)
    items = _draw_items(n_items, rng)
    effects = _draw_effects(rng)
    user_popularity = users["activity"] / users["activity"].sum()
    user_index = rng.choice(n_users, size=n_samples, p=user_popularity)
    item_index = rng.randint(n_items, size=n_samples)

    # Every draw that decides the labels comes first, in the order of earlier versions;
    # the history comes after them, so without a signal nothing else changes.
    intent = rng.standard_normal(n_samples) if selection_bias > 0 else None
    click_uniform = rng.uniform(size=n_samples)
    conversion_uniform = rng.uniform(size=n_samples)
    click_logit, conversion_logit = _logits(users, items, user_index, item_index, effects)
    extra = {}
    if history_length > 0:
        streams, lengths = draw_histories(
            n_users, items["category"], len(_CATEGORIES), history_length, user_index, rng
        )
        affinity, reengaged = history_terms(
            streams, lengths, user_index, item_index, items["category"], len(_CATEGORIES)
        )
        if history_signal > 0:
            for (w_affinity, w_reengaged), logit in [
                (CLICK_WEIGHTS, click_logit), (CONVERSION_WEIGHTS, conversion_logit)
            ]:
                logit += history_signal * (w_affinity * affinity + w_reengaged * reengaged)
        extra.update(history_affinity=affinity, history_reengaged=reengaged)
    if selection_bias == 0:
        click_intercept = _calibrate_intercept(click_logit, ctr)
        p_click = _sigmoid(click_logit + click_intercept)
        conversion_intercept = _calibrate_intercept(conversion_logit, cvr, weights=p_click)
        p_conversion_given_click = _sigmoid(conversion_logit + conversion_intercept)
        p_conversion = p_click * p_conversion_given_click
        click_draw, conversion_draw = p_click, p_conversion_given_click
    else:
        click_intercept, conversion_intercept, p_click, p_conversion = (
            _true_probabilities_over_intent(
                click_logit, conversion_logit, ctr, cvr, float(selection_bias)
            )
        )
        p_conversion_given_click = p_conversion / p_click
        click_draw = _sigmoid(click_logit + click_intercept + selection_bias * intent)
        conversion_draw = _sigmoid(conversion_logit + conversion_intercept + selection_bias * intent)
        extra["intent"] = intent

    click = click_uniform < click_draw
    converted = conversion_uniform < conversion_draw
    conversion = (click & converted).astype(np.int64)
    if conversion_when_not_clicked == "nan":
        conversion = np.where(click, conversion, np.nan)

    X = _features(users, items, user_index, item_index)
    feature_groups = {"user": list(_USER_FEATURES), "item": list(_ITEM_FEATURES)}
    if history_length > 0:
        item_ids, categories = history_columns(
            streams, lengths, user_index, items["category"], _CATEGORIES
        )
        X["item_id"] = item_index.astype(np.int64)
        X["history_item_id"] = pd.Series(item_ids, dtype=object)
        X["history_category"] = pd.Series(categories, dtype=object)
        feature_groups["user"] += _HISTORY_FEATURES
        feature_groups["item"].append("item_id")
    y = pd.DataFrame({"click": click.astype(np.int64), "conversion": conversion})
    if return_X_y:
        return X, y
    return Bunch(
        data=X,
        target=y,
        p_click=p_click,
        p_conversion_given_click=p_conversion_given_click,
        p_conversion=p_conversion,
        user_index=user_index.astype(np.int64),
        item_index=item_index.astype(np.int64),
        feature_groups=feature_groups,
        intercepts={"click": click_intercept, "conversion": conversion_intercept},
        feature_names=list(X.columns),
        target_names=["click", "conversion"],
        **extra,
    )
