"""A scipy sparse ``X``: checked, standardised and encoded without densifying it.

A sparse matrix (CSR, CSC or any other scipy format) is taken as continuous
columns only, by position: it has no column names and no categorical codes.
Its columns are standardised as a dense ``X``'s would be, with the same mean
and scale (to float64 round-off), and encoded as
:class:`~skmtl.nn.sparse.SparseRows`: the standardised value of every stored
entry (the dense path's float32 values, but for a rare one-ulp difference)
and each column's standardised zero. Nothing here builds the
dense matrix: memory grows with the stored entries, not with rows x columns.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.utils.sparsefuncs import mean_variance_axis
from sklearn.utils.validation import check_array

from .nn.sparse import SparseRows

__all__ = ["SparseRows", "check_sparse", "check_sparse_settings", "is_sparse", "sparse_mean_scale",
           "sparse_moments", "standardised_rows"]


def is_sparse(X) -> bool:
    return sp.issparse(X)


def check_sparse(X):
    """``X`` as a float64 CSR matrix in canonical form (a new matrix where it must change).

    Every other format becomes CSR (a copy of the stored entries, never the
    dense matrix); duplicate entries are summed, as ``X.toarray()`` sums
    them. ``X`` itself is never modified.

    Raises
    ------
    ValueError
        If a stored value is NaN or infinite.
    """
    X = check_array(X, accept_sparse="csr", dtype=np.float64, ensure_all_finite=False)
    if not np.isfinite(X.data).all():
        raise ValueError(
            "Input X is a sparse matrix with NaN or infinite stored values. skmtl takes a sparse "
            "X as continuous columns, which must be finite: impute or drop them first (e.g. "
            "sklearn.impute.SimpleImputer in a Pipeline)."
        )
    if not X.has_canonical_format:  # duplicates summed on a copy
        X = X.copy()
        X.sum_duplicates()
    return X


def check_sparse_settings(params, is_categorical) -> None:
    """Refuse the parameters that need named or categorical columns with a sparse X.

    ``params`` are the estimator's ``get_params()``; ``is_categorical`` the mask
    ``categorical_features`` resolves to.
    """
    if np.any(is_categorical):
        raise ValueError(
            f"categorical_features={params['categorical_features']!r} marks columns of a sparse X "
            "as categorical, but a sparse X holds continuous columns only (no categorical "
            "codes). Pass the raw categorical columns in a DataFrame instead of one-hot "
            "columns (see the user guide), or leave categorical_features at its default."
        )
    for name in ("sequence_features", "shared_embeddings"):
        if params.get(name) is not None and len(params[name]):
            raise ValueError(
                f"{name} names columns holding lists, which a sparse X (continuous columns "
                f"only) cannot hold; pass a DataFrame, or set {name}=None."
            )
    if params.get("numeric_embedding") == "piecewise_linear":
        raise ValueError(
            "numeric_embedding='piecewise_linear' bins every column at its quantiles, which skmtl "
            "does not compute from a sparse X; use numeric_embedding='linear' or 'periodic', or "
            "pass X.toarray() if it fits in memory."
        )


def sparse_mean_scale(X, weights=None) -> tuple[np.ndarray, np.ndarray]:
    """Column means and (population) standard deviations of a CSR ``X``, zeros included.

    ``weights`` (one per row, or None): the rows' weights, as for
    :func:`sparse_moments`.
    """
    mean, variance = mean_variance_axis(X, axis=0, weights=weights)
    return mean, np.sqrt(variance)


def sparse_moments(X, weights=None) -> tuple[float, np.ndarray, np.ndarray]:
    """(rows, column means, column sums of squared deviations), zeros included, of a CSR ``X``.

    With ``weights`` (one per row), the weighted moments: "rows" is the
    total weight, and a row of weight ``k`` counts as ``k`` copies of it.
    """
    n_rows = X.shape[0] if weights is None else float(np.sum(weights))
    if n_rows == 0:
        return 0, np.zeros(X.shape[1]), np.zeros(X.shape[1])
    mean, variance = mean_variance_axis(X, axis=0, weights=weights)
    return n_rows, mean, variance * n_rows


def sparse_third_moments(X, weights=None) -> tuple:
    """:func:`sparse_moments` plus the column sums of cubed deviations, zeros included."""
    n_rows, mean, squares = sparse_moments(X, weights)
    if n_rows == 0:
        return n_rows, mean, squares, np.zeros(X.shape[1])
    entry_weights = (np.ones(X.nnz) if weights is None
                     else np.repeat(np.asarray(weights, dtype=np.float64), np.diff(X.indptr)))
    with np.errstate(over="ignore", invalid="ignore"):  # as the dense path: inf or NaN, no warning
        cubes = np.bincount(X.indices, weights=entry_weights * (X.data - mean[X.indices]) ** 3,
                            minlength=X.shape[1])
        stored = np.bincount(X.indices, weights=entry_weights, minlength=X.shape[1])
        cubes += (n_rows - stored) * (-mean) ** 3  # the implicit zeros
    return n_rows, mean, squares, cubes


def standardised_rows(X, mean: np.ndarray, scale: np.ndarray) -> SparseRows:
    """``(X - mean) / scale`` as :class:`SparseRows`, float32 as the dense encoding.

    The stored entries and the zeros go through the dense path's arithmetic
    (float64 ``(x - mean) / scale``, then float32). The mean and scale come
    from :func:`~sklearn.utils.sparsefuncs.mean_variance_axis`, which agrees
    with the dense path's ``mean``/``std`` to float64 round-off only, so a
    rare value can land one float32 ulp away from the dense encoding's.
    """
    values = X.data - mean[X.indices]
    values /= scale[X.indices]
    zeros = (0.0 - mean) / scale
    return SparseRows.from_numpy(X.indptr, X.indices, values.astype(np.float32),
                                 zeros.astype(np.float32))
