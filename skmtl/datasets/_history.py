"""Behaviour histories for the synthetic ad funnel: each impression's recently clicked items.

Each user has a hidden interest profile over the item categories (not among
the features); their earlier clicks are items of those categories. Each
impression carries the most recent part of its user's history, of a length
that varies from impression to impression (none at all for cold users). The
generator :func:`skmtl.datasets.make_ad_funnel` adds ``history_signal``
times :func:`history_terms` of each impression to its logits.
"""

from numbers import Real

import numpy as np

from ._synthetic import check_int

INTEREST_CONCENTRATION = 0.3
"""Dirichlet parameter of each user's interests over categories (small: a few favourites)."""

COLD_USER_SHARE = 0.1
"""Share of users without any history."""

DEPTH_BETA = (2.0, 2.0)
"""Beta parameters of a user's typical share of ``history_length`` kept per impression."""

CLICK_WEIGHTS = (1.0, 1.0)
"""Weights of the category affinity and the re-engagement in the click logit (times the signal)."""

CONVERSION_WEIGHTS = (0.5, 0.5)
"""Weights of the category affinity and the re-engagement in the conversion logit."""


def check_history(history_length, history_signal):
    """Validate the history parameters of :func:`~skmtl.datasets.make_ad_funnel`.

    Parameters
    ----------
    history_length : int
        Longest history, >= 0 (0: no history).
    history_signal : float
        Strength of the history's terms in the logits, finite and >= 0.

    Returns
    -------
    history_length : int
    history_signal : float

    Raises
    ------
    ValueError
        If either is out of range, or the signal is positive without a history.
    """
    history_length = check_int(history_length, "history_length", 0)
    if (
        isinstance(history_signal, bool) or not isinstance(history_signal, Real)
        or not np.isfinite(history_signal) or history_signal < 0
    ):
        raise ValueError(
            f"history_signal must be a finite real number >= 0, got {history_signal!r}."
        )
    if history_signal > 0 and history_length == 0:
        raise ValueError(
            f"history_signal={history_signal} needs a history: set history_length >= 1."
        )
    return history_length, float(history_signal)


def _draw_categories(probabilities, size, rng):
    """One category per cell of each row, drawn from the row's probabilities.

    Parameters
    ----------
    probabilities : ndarray of shape (n_rows, n_categories)
        Rows summing to 1.
    size : int
        Draws per row.
    rng : numpy.random.RandomState

    Returns
    -------
    categories : ndarray of int of shape (n_rows, size)
    """
    cumulative = np.cumsum(probabilities, axis=1)
    cumulative[:, -1] = 1.0
    u = rng.uniform(size=(probabilities.shape[0], size))
    drawn = (u[:, :, None] >= cumulative[:, None, :]).sum(axis=2)
    return np.minimum(drawn, probabilities.shape[1] - 1)


def draw_histories(n_users, item_category, n_categories, history_length, user_index, rng):
    """Each user's past clicks, and how much of them each impression carries.

    Each user gets interests ``theta ~ Dirichlet(INTEREST_CONCENTRATION)``
    over the categories that have items, and a stream of ``history_length``
    earlier clicks, oldest first: each a category drawn from ``theta``, then
    an item of that category drawn uniformly. A share ``COLD_USER_SHARE`` of
    the users have no history; the others keep, at each impression, the
    last ``k ~ Binomial(history_length, q)`` items of their stream, with a
    depth ``q ~ Beta(*DEPTH_BETA)`` of their own. Nothing here depends on
    the other features or the labels.

    Parameters
    ----------
    n_users : int
        Size of the user pool.
    item_category : ndarray of int of shape (n_items,)
        Category of each item.
    n_categories : int
        Number of categories.
    history_length : int
        Length of each user's stream, >= 1.
    user_index : ndarray of int of shape (n_samples,)
        User of each impression.
    rng : numpy.random.RandomState

    Returns
    -------
    streams : ndarray of int of shape (n_users, history_length)
        Each user's past clicked items, oldest first.
    lengths : ndarray of int of shape (n_samples,)
        How many of the most recent items each impression carries.
    """
    present = np.bincount(item_category, minlength=n_categories) > 0
    interests = rng.dirichlet(np.full(n_categories, INTEREST_CONCENTRATION), size=n_users)
    interests = interests * present
    # A Dirichlet draw this concentrated may put (numerically) all of its mass on
    # categories without items: such a user's interests are then uniform over the others.
    total = interests.sum(axis=1, keepdims=True)
    interests = np.where(total > 0, interests / np.where(total > 0, total, 1.0),
                         present / present.sum())
    categories = _draw_categories(interests, history_length, rng)
    by_category = np.argsort(item_category, kind="stable")
    counts = np.bincount(item_category, minlength=n_categories)
    starts = np.cumsum(counts) - counts
    offset = np.floor(rng.uniform(size=categories.shape) * counts[categories]).astype(np.int64)
    streams = by_category[starts[categories] + np.minimum(offset, counts[categories] - 1)]
    cold = rng.uniform(size=n_users) < COLD_USER_SHARE
    depth = np.where(cold, 0.0, rng.beta(*DEPTH_BETA, size=n_users))
    lengths = rng.binomial(history_length, depth[user_index])
    return streams, lengths


def history_terms(streams, lengths, user_index, item_index, item_category, n_categories):
    """The candidate's affinity with the history, and whether the history holds it.

    The affinity is ``log(n_categories * (c + 1) / (k + n_categories))``,
    with ``k`` the history's length and ``c`` how many of its items share
    the candidate's category: the log lift of that category in the history
    over uniform interests (Laplace smoothed), 0 for an empty history.

    Parameters
    ----------
    streams, lengths : ndarray
        From :func:`draw_histories`.
    user_index, item_index : ndarray of int of shape (n_samples,)
        User and candidate item of each impression.
    item_category : ndarray of int of shape (n_items,)
    n_categories : int

    Returns
    -------
    affinity : ndarray of float64 of shape (n_samples,)
    reengaged : ndarray of bool of shape (n_samples,)
        The candidate is among the history's items.
    """
    history = streams[user_index]
    kept = np.arange(history.shape[1])[None, :] >= history.shape[1] - lengths[:, None]
    same_category = item_category[history] == item_category[item_index][:, None]
    count = (same_category & kept).sum(axis=1)
    affinity = np.log(n_categories * (count + 1.0) / (lengths + n_categories))
    reengaged = ((history == item_index[:, None]) & kept).any(axis=1)
    return affinity, reengaged


def history_columns(streams, lengths, user_index, item_category, category_names):
    """The two list columns: the history's item ids and their categories, most recent last.

    Parameters
    ----------
    streams, lengths, user_index : ndarray
        As for :func:`history_terms`.
    item_category : ndarray of int of shape (n_items,)
    category_names : list of str

    Returns
    -------
    item_ids, categories : list of list
        Per impression, the item ids (int) and the category names (str) of
        its history.
    """
    width = streams.shape[1]
    names = np.asarray(category_names, dtype=object)
    item_ids, categories = [], []
    for user, length in zip(user_index.tolist(), lengths.tolist()):
        items = streams[user, width - length:]
        item_ids.append(items.tolist())
        categories.append(names[item_category[items]].tolist())
    return item_ids, categories
