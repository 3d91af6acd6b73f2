"""Columns -> tensors: categorical vocabularies with an unknown row, standardised continuous columns.

The input is a pandas DataFrame or a 2-D numpy array whose columns are taken by
position. Categorical column ``j`` is mapped to int codes: ``0`` for the
reserved unknown row (missing, unseen at fit time, or rarer than
``min_frequency``) and ``1..K_j`` for its ``K_j`` learnt categories. Continuous
columns are standardised with the training mean and standard deviation. All of
it is vectorised (pandas hash lookups, numpy arithmetic): no Python loop over
rows, because it sits on the predict path.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

_MIXED_INFERRED = frozenset({"mixed", "mixed-integer"})


def is_categorical_dtype(dtype) -> bool:
    """True for pandas category, string/object and bool dtypes (by dtype kind)."""
    if isinstance(dtype, pd.CategoricalDtype):
        return True
    return getattr(dtype, "kind", None) in ("O", "S", "U", "b")


def column(X, j: int) -> np.ndarray | pd.Series:
    """Column ``j`` of a DataFrame (as a Series) or of a 2-D array."""
    return X.iloc[:, j] if isinstance(X, pd.DataFrame) else X[:, j]


def column_name(feature_names, j: int) -> str:
    return repr(str(feature_names[j])) if feature_names is not None else str(j)


def resolve_categorical(X, categorical_features, feature_names) -> np.ndarray:
    """Boolean mask of the categorical columns, with HistGradientBoosting's semantics.

    Parameters
    ----------
    X : DataFrame or ndarray of shape (n_samples, n_features)
    categorical_features : "from_dtype", None, bool mask, int indices or str names
        ``"from_dtype"`` takes pandas category, string/object and bool columns
        of a DataFrame; for a numpy object array, the columns holding strings.
    feature_names : ndarray of str or None
        Column names of a DataFrame input.

    Returns
    -------
    mask : ndarray of bool of shape (n_features,)
    """
    n_features = X.shape[1]
    if categorical_features is None:
        return np.zeros(n_features, dtype=bool)
    if isinstance(categorical_features, str):  # "from_dtype" (validated by the estimator)
        if isinstance(X, pd.DataFrame):
            return np.array([is_categorical_dtype(dt) for dt in X.dtypes], dtype=bool)
        if X.dtype == object:
            return np.array(
                [pd.api.types.infer_dtype(X[:, j], skipna=True) == "string"
                 for j in range(n_features)],
                dtype=bool,
            )
        return np.zeros(n_features, dtype=bool)

    spec = np.asarray(categorical_features)
    if spec.ndim != 1:
        raise ValueError("categorical_features must be 1-dimensional.")
    if spec.size == 0:
        return np.zeros(n_features, dtype=bool)
    if spec.dtype.kind == "b":
        if spec.shape[0] != n_features:
            raise ValueError(
                f"categorical_features is a boolean mask of length {spec.shape[0]}, "
                f"but X has {n_features} features."
            )
        return spec.copy()
    mask = np.zeros(n_features, dtype=bool)
    if spec.dtype.kind in "iu":
        bad = spec[(spec < 0) | (spec >= n_features)]
        if bad.size:
            raise ValueError(
                f"categorical_features has indices {bad.tolist()} outside "
                f"[0, {n_features - 1}] for X with {n_features} features."
            )
        mask[spec] = True
        return mask
    if spec.dtype.kind in "OU":
        if feature_names is None:
            raise ValueError(
                "categorical_features names columns by string, which needs X to be a "
                "pandas DataFrame with column names."
            )
        names = list(map(str, feature_names))
        missing = [s for s in spec.tolist() if s not in names]
        if missing:
            raise ValueError(
                f"categorical_features names {missing}, which are not columns of X."
            )
        for s in spec.tolist():
            mask[names.index(s)] = True
        return mask
    raise ValueError(
        "categorical_features must be 'from_dtype', None, a boolean mask, integer indices "
        f"or column names; got an array of dtype {spec.dtype}."
    )


def _category_counts(values) -> pd.Series:
    """How often each category of one column occurs (missing values left out)."""
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
        codes = values.cat.codes.to_numpy()
        return pd.Series(
            np.bincount(codes[codes >= 0], minlength=len(values.cat.categories)),
            index=values.cat.categories,
        )
    if isinstance(values, np.ndarray) and values.dtype.kind in "iuf":
        counts = _integer_counts(values)
        if counts is not None:
            return counts
    return pd.Series(values, copy=False).value_counts(dropna=True, sort=False)


def _integer_counts(values: np.ndarray) -> pd.Series | None:
    """Counts of integer-coded categories by ``np.bincount`` (None if the values aren't such)."""
    present = values[~np.isnan(values)] if values.dtype.kind == "f" else values
    if present.size == 0:
        return None
    low, high = present.min(), present.max()
    if not (np.isfinite(low) and np.isfinite(high)) or high - low + 1 > max(4 * present.size, 1024):
        return None
    if values.dtype.kind == "f" and not np.array_equal(present, np.floor(present)):
        return None
    counts = np.bincount((present - low).astype(np.int64))
    seen = np.flatnonzero(counts)
    return pd.Series(counts[seen], index=(seen + low).astype(values.dtype))


def _vocabulary(counts: pd.Series, min_frequency: int, max_categories: int | None, name: str) -> pd.Index:
    """Sorted categories of one column that earn an embedding row of their own."""
    inferred = pd.api.types.infer_dtype(counts.index, skipna=True)
    if inferred in _MIXED_INFERRED:
        kinds = sorted({type(v).__name__ for v in counts.index})
        raise ValueError(
            f"Categorical column {name} mixes value types ({', '.join(kinds)}); convert it "
            f"to one type first, e.g. X[col].astype(str)."
        )
    counts = counts[counts >= min_frequency]
    if max_categories is not None and len(counts) > max_categories:
        # The most frequent categories keep their rows; ties go to the smaller value.
        counts = counts.sort_index()
        counts = counts.iloc[np.argsort(-counts.to_numpy(), kind="stable")[:max_categories]]
    return pd.Index(counts.index).sort_values()


def _sum_counts(parts: list[pd.Series]) -> pd.Series:
    """Category counts of several shards added up (one shard: returned as is)."""
    if len(parts) == 1:
        return parts[0]
    return pd.concat(parts).groupby(level=0, sort=False).sum()


def _moments(values: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
    """(rows, column means, column sums of squared deviations) of one shard."""
    mean = values.mean(axis=0) if values.shape[0] else np.zeros(values.shape[1])
    return values.shape[0], mean, ((values - mean) ** 2).sum(axis=0)


def _combine_moments(parts) -> tuple[np.ndarray, np.ndarray]:
    """Mean and (population) standard deviation of the union of the shards.

    Chan, Golub and LeVeque's pairwise update: the squared deviations of each
    shard are corrected by ``n_i * (mean_i - mean)**2``, which avoids the
    cancellation of ``E[x^2] - E[x]^2``.
    """
    n = sum(p[0] for p in parts)
    mean = sum(p[0] * p[1] for p in parts) / n
    m2 = sum(p[2] + p[0] * (p[1] - mean) ** 2 for p in parts)
    return mean, np.sqrt(m2 / n)


def _declared_vocabulary(values, name: str) -> pd.Index:
    vocabulary = pd.Index(pd.unique(pd.Series(np.asarray(values, dtype=object)).dropna()))
    if pd.api.types.infer_dtype(vocabulary, skipna=True) in _MIXED_INFERRED:
        raise ValueError(f"The declared categories of column {name} mix value types.")
    return pd.Index(vocabulary.tolist()).sort_values()


class TabularEncoder:
    """Learn categorical vocabularies and continuous statistics; encode to arrays.

    Parameters
    ----------
    is_categorical : ndarray of bool of shape (n_features,)
        Which columns are categorical.
    min_frequency : int
        Categories seen fewer times than this in ``fit`` share the unknown row.
    max_categories : int or None
        At most this many categories per column get their own row (the most
        frequent); the rest share the unknown row.
    feature_names : ndarray of str or None
        Column names, for error messages.
    """

    def __init__(self, is_categorical, min_frequency=1, max_categories=None, feature_names=None):
        self.is_categorical = np.asarray(is_categorical, dtype=bool)
        self.min_frequency = min_frequency
        self.max_categories = max_categories
        self.feature_names = feature_names

    @property
    def categorical_indices(self) -> np.ndarray:
        return np.flatnonzero(self.is_categorical)

    @property
    def continuous_indices(self) -> np.ndarray:
        return np.flatnonzero(~self.is_categorical)

    @property
    def cardinalities(self) -> list[int]:
        """Rows of each categorical table: learnt categories plus the unknown row."""
        return [len(v) + 1 for v in self.vocabularies_]

    def fit(self, X, declared: dict | None = None, group=None) -> TabularEncoder:
        """Learn vocabularies and the mean/scale of continuous columns from ``X``.

        ``declared`` maps a categorical column's index to its full set of
        categories, used as given instead of being learnt from ``X`` (e.g.
        when ``X`` is only the first chunk of a stream).

        ``group`` (a :class:`~skmtl._distributed.ProcessGroup`, for
        data-parallel fits): category counts are summed over the processes
        before ``min_frequency`` and ``max_categories`` apply, and the mean
        and scale are those of all processes' rows.
        """
        declared = declared or {}
        if group is None or not group.active:
            counts, continuous = self._statistics(X, declared)
            self.mean_ = continuous.mean(axis=0)
            scale = continuous.std(axis=0)
        else:
            shards = group.share(lambda: self._shard_statistics(X, declared))
            counts = [
                None if j in declared else _sum_counts([shard[0][k] for shard in shards])
                for k, j in enumerate(self.categorical_indices)
            ]
            self.mean_, scale = _combine_moments([shard[1] for shard in shards])
        self.vocabularies_ = [
            _declared_vocabulary(declared[j], self.feature_name(j))
            if j in declared
            else _vocabulary(column_counts, self.min_frequency, self.max_categories, self.feature_name(j))
            for j, column_counts in zip(self.categorical_indices, counts)
        ]
        self.scale_ = np.where(scale > 0, scale, 1.0)
        return self

    def _statistics(self, X, declared: dict) -> tuple[list, np.ndarray]:
        """Category counts of the undeclared categorical columns, and the continuous columns."""
        counts = [
            None if j in declared else _category_counts(column(X, j))
            for j in self.categorical_indices
        ]
        return counts, self._continuous(X)

    def _shard_statistics(self, X, declared: dict) -> tuple[list, tuple]:
        """What one process sends: its category counts and its continuous moments."""
        counts, continuous = self._statistics(X, declared)
        return counts, _moments(continuous)

    def transform(self, X) -> tuple[np.ndarray, np.ndarray]:
        """Encode ``X``.

        Returns
        -------
        codes : ndarray of int64 of shape (n_samples, n_categorical)
            0 for unknown/missing, ``1..K_j`` for the learnt categories.
        continuous : ndarray of float32 of shape (n_samples, n_continuous)
            Standardised continuous columns.
        """
        n_samples = X.shape[0]
        codes = np.empty((n_samples, len(self.vocabularies_)), dtype=np.int64)
        for k, (j, vocabulary) in enumerate(zip(self.categorical_indices, self.vocabularies_)):
            codes[:, k] = encode_column(column(X, j), vocabulary)
        continuous = np.ascontiguousarray(
            (self._continuous(X) - self.mean_) / self.scale_, dtype=np.float32
        )
        if continuous.size and not np.isfinite(continuous).all():
            bad = np.flatnonzero(~np.isfinite(continuous).all(axis=0))
            raise ValueError(
                "Continuous column(s) "
                f"{', '.join(self.feature_name(self.continuous_indices[k]) for k in bad)} hold values "
                "too large for float32 once standardised with the training mean and scale; "
                "clip or rescale them (e.g. a log transform) first."
            )
        return codes, continuous

    def categories_by_feature(self) -> list[np.ndarray | None]:
        """Learnt categories of every feature, None for continuous ones."""
        out: list[np.ndarray | None] = [None] * len(self.is_categorical)
        for j, vocabulary in zip(self.categorical_indices, self.vocabularies_):
            out[j] = vocabulary.to_numpy()
        return out

    def feature_name(self, j: int) -> str:
        """Name of column ``j`` in messages (its DataFrame name, else its index)."""
        return column_name(self.feature_names, j)

    def _continuous(self, X) -> np.ndarray:
        """Continuous columns as float64, with clear errors for non-numeric or non-finite values."""
        idx = self.continuous_indices
        if isinstance(X, pd.DataFrame):
            parts = [to_float(X.iloc[:, j], self.feature_name(j)) for j in idx]
            values = np.column_stack(parts) if parts else np.empty((X.shape[0], 0))
        else:
            values = to_float(X[:, idx], ", ".join(self.feature_name(j) for j in idx))
        if values.size and not np.isfinite(values).all():
            bad = [self.feature_name(j) for j, ok in zip(idx, np.isfinite(values).all(axis=0)) if not ok]
            raise ValueError(
                f"Input X contains NaN or infinity in continuous column(s) {', '.join(bad)}. "
                "Impute them first (e.g. sklearn.impute.SimpleImputer in a Pipeline), or "
                "declare the column(s) in categorical_features, where missing values map to "
                "the unknown category."
            )
        return values


def to_float(values, name: str) -> np.ndarray:
    """float64 copy of ``values``; strings raise a ValueError naming the column."""
    try:
        if isinstance(values, pd.Series):
            return values.to_numpy(dtype=np.float64, na_value=np.nan)
        return np.asarray(values, dtype=np.float64)
    except ValueError as exc:
        raise ValueError(
            f"Continuous column(s) {name} hold non-numeric values ({exc}). Declare such "
            "columns in categorical_features (or give them a pandas string/category dtype "
            "with categorical_features='from_dtype')."
        ) from None


def encode_column(values, vocabulary: pd.Index) -> np.ndarray:
    """Codes of one column: ``1 + position`` in ``vocabulary``, 0 where absent or missing."""
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
        # Map the (few) categories once, then gather by the pandas codes.
        lookup = np.append(vocabulary.get_indexer(values.cat.categories) + 1, 0)
        return lookup[values.cat.codes.to_numpy()]  # code -1 (missing) -> last entry, 0
    if isinstance(values, pd.Series):
        values = values.to_numpy()
    table = _integer_table(vocabulary)
    if table is not None and values.dtype.kind in "iuf":
        # Integer-coded categories: a direct table lookup, several times faster than
        # hashing. Non-integral, out-of-range, NaN and inf values all miss (code 0).
        offset, codes = table
        position = values.astype(np.float64, copy=False) - offset
        hit = (position >= 0) & (position < len(codes)) & (position == np.floor(position))
        return np.where(hit, codes[np.where(hit, position, 0).astype(np.int64)], 0)
    return vocabulary.get_indexer(values) + 1


def _integer_table(vocabulary: pd.Index):
    """``(lowest category, codes by category - lowest)`` for compact integral vocabularies."""
    if len(vocabulary) == 0 or vocabulary.dtype.kind not in "iuf":
        return None
    values = vocabulary.to_numpy(dtype=np.float64)
    if not np.all(np.isfinite(values) & (values == np.floor(values))):
        return None
    low, high = values.min(), values.max()
    if high - low + 1 > max(4 * len(values), 1024):
        return None
    codes = np.zeros(int(high - low) + 1, dtype=np.int64)
    codes[(values - low).astype(np.int64)] = np.arange(1, len(values) + 1)
    return low, codes

