"""Guards for ``MultiTaskClassifier.fit``: a failed fit changes nothing; embedding-table warnings.

Both are small and self-contained so the estimator wires each in with one line:
``@keep_state_on_error`` under ``@_fit_context`` on ``fit``, and
``check_embedding_tables(encoder, params["embedding_dim"])`` once the encoder
is fitted and the architecture parameters are resolved.
"""

from __future__ import annotations

import functools

from ._warnings import warn_user

MAX_EMBEDDING_PARAMETERS = 10_000_000
"""Above this many categorical embedding parameters, ``fit`` warns.

Embedding gradients are dense: every Adam step reads and writes the whole
table, its gradient and two moment buffers, so a table of ``P`` parameters
costs about ``16 * P`` bytes and ``O(P)`` time per step whatever the batch
size. 10 million parameters is 160 MB and makes each step tens of
milliseconds on a CPU.
"""


def _fitted_state(estimator) -> dict:
    """Fitted attributes by scikit-learn's convention (trailing ``_``, not dunder)."""
    return {k: v for k, v in vars(estimator).items() if k.endswith("_") and not k.startswith("__")}


def keep_state_on_error(fit):
    """Decorate ``fit`` so that, when it raises, the estimator is left exactly as before.

    ``validate_data(reset=True)`` sets ``n_features_in_`` and
    ``feature_names_in_`` before the data are checked further or the model is
    trained; without this guard a refit that fails (bad ``y``, diverging
    training, ...) leaves a previously fitted model with the new feature names
    and the old network, so it can no longer predict on its own data.

    The snapshot is shallow: it relies on ``fit`` assigning fitted attributes
    rather than mutating them in place (``fit`` trains a copy of ``module_``).

    Parameters
    ----------
    fit : callable
        The estimator's ``fit(self, X, y, ...)``.

    Returns
    -------
    wrapper : callable
        ``fit`` with its fitted attributes restored on any exception.
    """

    @functools.wraps(fit)
    def wrapper(self, *args, **kwargs):
        before = _fitted_state(self)
        try:
            return fit(self, *args, **kwargs)
        except BaseException:
            for name in set(_fitted_state(self)) - set(before):
                delattr(self, name)
            vars(self).update(before)
            raise

    return wrapper


def check_embedding_tables(encoder, embedding_dim: int) -> None:
    """Warn about categorical columns whose embedding table is useless or too large.

    Parameters
    ----------
    encoder : TabularEncoder
        The fitted column encoder (its categorical kind's ``vocabularies_``,
        ``columns`` and ``min_frequency``).
    embedding_dim : int
        The resolved embedding size ``D``.

    Warns
    -----
    UserWarning
        - When a categorical column kept no category of its own (no value was
          seen ``min_frequency`` times, e.g. an ID column): all its values
          share the unknown row, so the model cannot use that column.
        - When the tables hold more than :data:`MAX_EMBEDDING_PARAMETERS`
          parameters: the message names the largest column and suggests
          ``max_categories``.
    """
    categorical = encoder.categorical
    names = [encoder.feature_name(j) for j in categorical.columns]
    empty = [name for name, vocabulary in zip(names, categorical.vocabularies_) if len(vocabulary) == 0]
    if empty:
        warn_user(
            f"Categorical column(s) {', '.join(empty)} kept no category: no value was seen "
            f"min_frequency={categorical.min_frequency} times, so all of them share the unknown "
            "row and the model cannot use the column(s). Lower min_frequency, or drop them.",
            UserWarning,
        )
    rows = categorical.cardinalities
    n_parameters = sum(rows) * embedding_dim
    if n_parameters > MAX_EMBEDDING_PARAMETERS:
        largest = max(range(len(rows)), key=rows.__getitem__)
        warn_user(
            f"The categorical embedding tables hold {n_parameters:,} parameters (column "
            f"{names[largest]}: {rows[largest]:,} rows x embedding_dim={embedding_dim}). "
            "Every optimiser step updates whole tables (dense gradients), so each step is "
            f"slow and training takes about {16 * n_parameters / 2**20:,.0f} MiB for them. "
            "Set max_categories (e.g. 10_000) or raise min_frequency.",
            UserWarning,
        )
