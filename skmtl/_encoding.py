"""Columns -> arrays: which columns are categorical, and the encoder of all of them.

The input is a pandas DataFrame (a polars or pyarrow frame has been converted
to one, :mod:`skmtl._frames`) or a 2-D numpy array whose columns are taken by
position. Every column belongs to one column kind (:mod:`skmtl._column_kinds`):
categorical columns become int codes (``0`` for the reserved unknown row),
continuous ones are standardised, and further kinds bring their own encoding.
:class:`TabularEncoder` fits the kinds and encodes ``X`` to one array per kind.
All of it is vectorised (pandas hash lookups, numpy arithmetic): no Python loop
over rows, because it sits on the predict path.
"""

from __future__ import annotations

from decimal import Decimal
from numbers import Number

import numpy as np
import pandas as pd

from ._column_kinds import (
    CategoricalColumns,
    ColumnKind,
    ContinuousColumns,
    FitContext,
    column,
    column_name,
    encode_column,
    to_float,
)
from ._sparse import is_sparse

__all__ = [
    "TabularEncoder", "column", "column_name", "encode_column", "is_categorical_dtype",
    "resolve_categorical", "to_float",
]


def is_categorical_dtype(dtype) -> bool:
    """True for pandas category, string/object and bool dtypes (by dtype kind)."""
    if isinstance(dtype, pd.CategoricalDtype):
        return True
    return getattr(dtype, "kind", None) in ("O", "S", "U", "b")


def _arrow_kind(arrow_type) -> str | None:
    """"time", "timedelta" or "decimal" for those pyarrow types (dtype kind "O"), else None."""
    import pyarrow as pa

    if pa.types.is_time(arrow_type):
        return "time"
    if pa.types.is_interval(arrow_type):
        return "timedelta"
    if pa.types.is_decimal(arrow_type):
        return "decimal"
    return None


def _categorical_from_dtype(values: pd.Series, name: str) -> bool:
    """Whether ``"from_dtype"`` takes a DataFrame column as categorical.

    Its dtype decides, but for object columns of Python values that are
    numbers or dates: decimals are continuous (a numeric column, as polars
    ``Decimal``), dates and times are refused as datetime64 columns are.
    """
    if not is_categorical_dtype(values.dtype):
        return False
    arrow = getattr(values.dtype, "pyarrow_dtype", None)  # pandas' ArrowDtype
    arrow_kind = None if arrow is None else _arrow_kind(arrow)  # kind "O" too
    if isinstance(values.dtype, pd.PeriodDtype):  # kind "O", as object columns of periods
        inferred = "period"
    elif arrow_kind == "decimal":  # numbers, as object Decimals
        return False
    elif arrow_kind is not None:
        inferred = arrow_kind
    elif values.dtype != object:
        return True
    else:
        inferred = pd.api.types.infer_dtype(values, skipna=True)
    present = values.dropna()
    if inferred == "decimal" or inferred.startswith("mixed") and any(
        isinstance(v, Decimal) for v in present
    ) and all(isinstance(v, Number) and not isinstance(v, bool) for v in present):
        return False  # Decimals, maybe with floats or ints (a fillna(0.0) of a Decimal column)
    if arrow_kind == "timedelta":  # pyarrow intervals: no categories, no numbers
        raise ValueError(
            f"Column {name!r} holds pyarrow interval values, which skmtl takes neither as "
            "categories nor as numbers. Derive numeric features from them (e.g. their months "
            "and days), or make them strings first (X[col].map(str)) to embed them."
        )
    if inferred in ("date", "time", "datetime", "datetime64", "timedelta", "timedelta64", "period"):
        raise ValueError(
            f"Column {name!r} holds {inferred} values, which skmtl does not take as categories "
            "or numbers silently. Derive numeric features from them (e.g. hour, day of week, "
            "days since a reference date), or name the column in categorical_features."
        )
    return True


def resolve_categorical(X, categorical_features, feature_names) -> np.ndarray:
    """Boolean mask of the categorical columns, with HistGradientBoosting's semantics.

    Parameters
    ----------
    X : DataFrame or ndarray of shape (n_samples, n_features)
    categorical_features : "from_dtype", None, bool mask, int indices or str names
        ``"from_dtype"`` takes pandas category, string/object and bool columns
        of a DataFrame; for a numpy object array, the columns holding strings
        or bools.
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
            return np.array(
                [_categorical_from_dtype(X.iloc[:, j], name)
                 for j, name in enumerate(map(str, X.columns))],
                dtype=bool,
            )
        if X.dtype == object:
            return np.array(
                [pd.api.types.infer_dtype(X[:, j], skipna=True) in ("string", "boolean")
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
                "pandas DataFrame (or a polars one) with column names."
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


class TabularEncoder:
    """Fit every column kind on its columns of ``X``; encode ``X`` to one array per kind.

    Parameters
    ----------
    kinds : list of ColumnKind
        The column kinds, each holding its columns; every column of ``X``
        belongs to exactly one. The network's embedding takes the kinds'
        tokens in this order. Built by :meth:`from_mask` for the two built-in
        kinds, :class:`~skmtl._column_kinds.CategoricalColumns` then
        :class:`~skmtl._column_kinds.ContinuousColumns`.
    feature_names : ndarray of str or None
        Column names, for error messages.
    """

    def __init__(self, kinds, feature_names=None):
        self.kinds = list(kinds)
        self.feature_names = feature_names

    @classmethod
    def from_mask(
        cls, is_categorical, min_frequency=1, max_categories=None, feature_names=None, others=(),
        numeric_embedding="linear",
    ) -> TabularEncoder:
        """Categorical columns where ``is_categorical``, continuous ones elsewhere.

        ``others`` are further kinds; their columns are neither categorical
        nor continuous. ``numeric_embedding`` is the continuous kind's
        ``embedding``.
        """
        is_categorical = np.asarray(is_categorical, dtype=bool)
        taken = np.zeros(len(is_categorical), dtype=bool)
        for kind in others:
            taken[kind.columns] = True
        return cls(
            [
                CategoricalColumns(np.flatnonzero(is_categorical & ~taken), min_frequency, max_categories),
                ContinuousColumns(np.flatnonzero(~is_categorical & ~taken), numeric_embedding),
                *others,
            ],
            feature_names,
        )

    # The built-in kinds, which every encoder holds (first and second).
    @property
    def categorical(self) -> CategoricalColumns:
        return self.kinds[0]

    @property
    def continuous(self) -> ContinuousColumns:
        return self.kinds[1]

    @property
    def n_features(self) -> int:
        return sum(len(kind.columns) for kind in self.kinds)

    @property
    def is_categorical(self) -> np.ndarray:
        """Boolean mask of the categorical columns, of shape (n_features,)."""
        mask = np.zeros(self.n_features, dtype=bool)
        mask[self.categorical.columns] = True
        return mask

    @property
    def categorical_indices(self) -> np.ndarray:
        return self.categorical.columns

    @property
    def continuous_indices(self) -> np.ndarray:
        return self.continuous.columns

    @property
    def cardinalities(self) -> list[int]:
        """Rows of each categorical table: learnt categories plus the unknown row."""
        return self.categorical.cardinalities

    @property
    def table_sizes(self) -> list[int]:
        """Rows of every embedding table: the categorical columns' and the sequence tables'."""
        sequence_tables = [
            len(vocabulary) + 1
            for kind in self.kinds
            if kind.name == "sequence"
            for vocabulary in kind.vocabularies_
        ]
        return list(self.cardinalities) + sequence_tables

    def token_columns(self) -> np.ndarray:
        """The column of ``X`` behind each embedded token, in the network's order."""
        return np.concatenate([kind.token_columns() for kind in self.kinds]).astype(np.int64)

    def check_kinds(self) -> None:
        if not (
            len(self.kinds) >= 2
            and all(isinstance(kind, ColumnKind) for kind in self.kinds)
            and isinstance(self.kinds[0], CategoricalColumns)
            and isinstance(self.kinds[1], ContinuousColumns)
        ):
            raise TypeError(
                "TabularEncoder's kinds are CategoricalColumns, ContinuousColumns, then any "
                f"other ColumnKind; got {self.kinds!r}."
            )
        names = [kind.name for kind in self.kinds]
        if len(set(names)) != len(names):
            raise ValueError(f"Each column kind may appear once in an encoder; got {names}.")
        columns = np.sort(np.concatenate([kind.columns for kind in self.kinds]))
        if not np.array_equal(columns, np.arange(len(columns))):
            raise ValueError("Every column must belong to exactly one column kind.")

    def _context(self, declared=None, group=None, rows=None, sample_weight=None) -> FitContext:
        return FitContext(
            column_name=self.feature_name, group=group, declared=declared or {}, rows=rows,
            sample_weight=sample_weight,
        )

    def fit(
        self, X, declared: dict | None = None, group=None, rows=None, sample_weight=None
    ) -> TabularEncoder:
        """Fit every kind on its columns of ``X``.

        ``declared`` maps a categorical column's index to its full set of
        categories, used as given instead of being learnt from ``X`` (e.g.
        when ``X`` is only the first chunk of a stream).

        ``group`` (a :class:`~skmtl._distributed.ProcessGroup`, for
        data-parallel fits): each kind combines its statistics over the
        processes (category counts are summed before ``min_frequency`` and
        ``max_categories`` apply; the mean and scale are those of all rows).

        ``rows`` (this process's training rows of ``X``, None for all): what a
        kind learns for the network beyond the standardisation (the
        piecewise-linear bins) comes from these rows only.

        ``sample_weight`` (the user's row weights, None when not given): the
        continuous columns' mean, scale and bins are weighted by them (a row
        of weight 0 leaves no trace); the categorical vocabularies leave rows of
        weight 0 out and count the others once each.
        """
        self.check_kinds()
        context = self._context(declared, group, rows, sample_weight)
        for kind in self.kinds:
            kind.fit(X, context)
        return self

    def transform(self, X) -> tuple[np.ndarray, ...]:
        """Encode ``X``: one array per kind, in the order of ``kinds``.

        The first two are the categorical codes (int32 of shape ``(n_samples,
        n_categorical)``, 0 for unknown/missing, ``1..K_j`` for the learnt
        categories) and the standardised continuous columns (float32 of shape
        ``(n_samples, n_continuous)``; :class:`~skmtl.nn.sparse.SparseRows` for
        a sparse ``X``, whose columns are all continuous).
        """
        if is_sparse(X):
            self._check_sparse(X)
        context = self._context()
        return tuple(kind.transform(X, context) for kind in self.kinds)

    def _check_sparse(self, X) -> None:
        """A sparse ``X`` (continuous columns only) fits an encoder of continuous columns only."""
        others = [self.feature_name(j) for kind in self.kinds if kind is not self.continuous
                  for j in kind.columns]
        if others:
            raise ValueError(
                f"X is a sparse matrix, which holds continuous columns only, but the model was "
                f"fitted with categorical or sequence column(s) {', '.join(others[:5])}"
                f"{' ...' if len(others) > 5 else ''}; pass X as it was in fit (e.g. a DataFrame)."
            )

    def categories_by_feature(self) -> list[np.ndarray | None]:
        """Learnt categories of every feature (its table's, for a shared one), None for the others."""
        out: list[np.ndarray | None] = [None] * self.n_features
        for kind in self.kinds:
            for j, categories in kind.categories().items():
                out[j] = categories
        return out

    def feature_name(self, j: int) -> str:
        """Name of column ``j`` in messages (its DataFrame name, else its index)."""
        return column_name(self.feature_names, j)
