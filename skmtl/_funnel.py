"""Funnels of tasks (click -> conversion -> ...): declaration, labels, conventions.

A funnel is an ordered chain of binary tasks where step ``k`` can only happen
after step ``k-1``. Its labels are taken over the whole impression space: the
label of step ``k`` is ``Y_k = y_1 * ... * y_k``. One convention holds
everywhere (training, ``score``, :mod:`skmtl.metrics`):

- a later step may be given as 0 or as unknown (NaN) where an earlier step is
  negative: either way it means 0 over the impression space;
- a positive later step with a known negative earlier step is an error (the
  data contradict the funnel);
- a positive step implies every earlier step: an unknown earlier label is
  then taken as positive (a conversion implies the click);
- otherwise an unknown earlier step leaves later steps unknown unless they are
  known negative.

The positive class of a funnel task is its class index 1 in the order the
estimator trains in: the one declared by ``pos_label`` (training orders a
declared task's classes as ``[negative, positive]``, kept in
``_label_order_``; the public ``classes_`` stay sorted), or the greater class
where it is evident (bool labels, numbers {0, 1} or {-1, 1}); other labels
(e.g. strings) must be declared.
"""

from __future__ import annotations

import numpy as np

from ._keyed_settings import check_positive_known, task_index
from ._targets import encode_targets


def funnel_steps(funnel, task_names: list[str]) -> list[int]:
    """Task indices that ``funnel`` names, unchecked (for the steps' classes, before
    :func:`resolve_funnel` validates them)."""
    if funnel is None:
        return []
    steps = list(funnel) if not isinstance(funnel, str) else [funnel]
    return [task_index(step, task_names, "funnel") for step in steps]


def resolve_funnel(
    funnel, task_names: list[str], classes: list[np.ndarray], positive: dict | None = None
) -> list[int]:
    """Task indices of ``funnel`` (names or indices), validated.

    ``positive``: the declared positive labels by task index
    (:func:`~skmtl._keyed_settings.positive_labels`).

    Raises
    ------
    ValueError
        If a step is not a task, appears twice, is not binary, has no declared
        or evident positive class, or the funnel has fewer than two steps.
    """
    if funnel is None:
        return []
    steps = list(funnel) if not isinstance(funnel, str) else [funnel]
    indices = funnel_steps(funnel, task_names)
    if len(indices) < 2:
        raise ValueError(f"funnel needs at least two steps; got {list(steps)}.")
    if len(set(indices)) != len(indices):
        raise ValueError(f"funnel repeats a task: {list(steps)}.")
    for t in indices:
        if len(classes[t]) < 2:
            raise ValueError(
                f"funnel step {task_names[t]!r} has classes {classes[t].tolist()} among its "
                "known labels in this fit; a step needs two. A step that shows only its "
                "negative class gets the positive one from pos_label (or from bool or 0/1 "
                "labels)."
            )
        if len(classes[t]) != 2:
            raise ValueError(
                f"funnel step {task_names[t]!r} must be a binary task; it has classes "
                f"{classes[t].tolist()}."
            )
        check_positive_known(t, task_names, classes, positive or {}, "funnel")
    return indices


def impression_space_codes(codes: np.ndarray, funnel: list[int], task_names=None) -> np.ndarray:
    """Labels of the funnel steps over the whole impression space.

    Parameters
    ----------
    codes : ndarray of int64 of shape (n_samples, n_tasks)
        Class indices (1 = positive), -1 unknown.
    funnel : list of int
        Task indices of the funnel, in order.

    Returns
    -------
    codes : ndarray of int64
        A copy in which funnel step ``k`` is 0 where any step ``<= k`` is
        known negative, 1 where all are positive (an unknown step counts as
        positive when a later step is positive), -2 where its own label was
        never seen in fit (-2 in ``codes``, when scoring), -1 otherwise.

    Raises
    ------
    ValueError
        If a step is positive where an earlier step is negative.
    """
    out = codes.copy()
    codes = codes.copy()
    later_positive = np.zeros(codes.shape[0], dtype=bool)
    for t in reversed(funnel):  # a positive step implies the unknown earlier ones
        codes[:, t] = np.where((codes[:, t] == -1) & later_positive, 1, codes[:, t])
        later_positive |= codes[:, t] == 1
    reached_negative = np.zeros(codes.shape[0], dtype=bool)
    all_positive = np.ones(codes.shape[0], dtype=bool)
    for k, t in enumerate(funnel):
        y = codes[:, t]
        contradiction = reached_negative & (y == 1)
        if contradiction.any():
            names = task_names or [str(i) for i in range(codes.shape[1])]
            earlier = ", ".join(repr(names[j]) for j in funnel[:k])
            raise ValueError(
                f"{int(contradiction.sum())} row(s) have funnel step {names[t]!r} positive while "
                f"an earlier step ({earlier}) is negative (first at row "
                f"{int(np.flatnonzero(contradiction)[0])}). A funnel step can only happen after "
                "the previous one: fix the labels or drop the funnel."
            )
        reached_negative |= y == 0
        all_positive &= y == 1
        # A label never seen in fit (-2, scoring only) stays one: it counts as wrong, as
        # on every other task, unless an earlier step already makes this step 0.
        out[:, t] = np.where(
            reached_negative, 0, np.where(all_positive, 1, np.where(y == -2, -2, -1))
        )
    return out


def fill_funnel_columns(columns: list[np.ndarray], classes: list[np.ndarray], funnel: list[int]):
    """Raw label columns with unknown funnel labels filled as training reads them.

    An unknown label after a negative step becomes the negative class; one
    before a positive step (a conversion without a logged click) the positive
    class.

    Parameters
    ----------
    columns : list of ndarray
        One label array per task (raw labels, NaN/None for unknown).
    classes : list of ndarray
        Each task's classes; the funnel tasks' negative class is ``classes[t][0]``.
    funnel : list of int
        Task indices of the funnel, in order.

    Returns
    -------
    columns : list of ndarray
        New arrays for the funnel tasks (object dtype where needed); the
        others unchanged.
    """
    codes = encode_targets(np.column_stack([np.asarray(c, dtype=object) for c in columns]), classes)
    filled = impression_space_codes(codes, funnel)
    columns = list(columns)
    for t in funnel:
        if len(classes[t]) < 2:  # a step without two classes here: not scored (NaN)
            continue
        # Unknown after a negative step: negative; unknown before a positive step: positive
        # (a conversion implies the click), as training reads them.
        becomes_known = (codes[:, t] < 0) & (filled[:, t] >= 0)
        if becomes_known.any():
            column = columns[t].astype(object)
            column[becomes_known] = classes[t][filled[becomes_known, t]]
            columns[t] = column
    return columns

