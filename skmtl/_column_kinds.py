"""Column kinds: how each kind of input column is learnt, encoded, embedded and exported.

A *column kind* is one class (a subclass of :class:`ColumnKind`) that owns
everything about one kind of column, for the columns of ``X`` assigned to it:

1. ``fit(X, context)``: learn its statistics from its columns (in a
   data-parallel fit, combined over the processes through ``context.group``);
2. ``transform(X, context)``: its columns as ONE array whose first axis is the
   rows (the training loop gathers and slices it with the other kinds');
3. ``embedding_args(values)`` and ``make_embedding(...)``: the plain values
   the network description records, and the ``nn.Module`` built from them
   that maps the array's tensor to tokens ``(B, n_tokens, n_copies * D)``;
4. its state in model files: the constructor's arguments and the fitted
   attributes (ending in ``_``), plain values (numbers, strings, lists,
   numpy arrays, pandas indexes);
5. optionally ONNX export (``exports_to_onnx = True`` and the ``onnx_*``
   methods); :func:`skmtl.export.to_onnx` refuses a model with a kind that
   does not export.

:class:`~skmtl._encoding.TabularEncoder` holds a list of fitted kinds; the
network's embedding holds one module per kind and concatenates their tokens in
the same order; ``module_(*inputs)`` takes one tensor per kind. A new kind is
one subclass plus :func:`register_column_kind` (which lets model files name
it). The two built-in kinds come first in every encoder:
:class:`CategoricalColumns` and :class:`ContinuousColumns`.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
import pandas as pd
import torch

from ._frames import value_kinds
from ._sparse import (
    SparseRows,
    is_sparse,
    sparse_mean_scale,
    sparse_moments,
    sparse_third_moments,
    standardised_rows,
)
from .nn.blocks import (
    CategoricalEmbedding,
    ContinuousEmbedding,
    JointProjection,
    LinearPeriodicEmbedding,
    PeriodicEmbedding,
    PiecewiseLinearEmbedding,
)

_MIXED_INFERRED = frozenset({"mixed", "mixed-integer"})


# ----------------------------------------------------------------- interface
@dataclass(frozen=True)
class FitContext:
    """What a kind may need besides ``X`` while it learns or encodes.

    Attributes
    ----------
    column_name : callable
        ``column_name(j)``: column ``j``'s name in messages.
    group : SingleProcess or ProcessGroup, optional
        The processes of a data-parallel fit (None: this process only); a
        kind combines its statistics over them, e.g. with
        ``group.share(compute)``.
    declared : dict, optional
        Categories declared up front (``partial_fit``'s ``categories``), by
        column index.
    rows : ndarray of int, optional
        The training rows of ``X`` (None: all of them): the rows left once
        ``fit`` has set its validation rows aside. Statistics that shape the
        network (the piecewise-linear bins) are learnt from these only; the
        standardisation and the vocabularies use every row given to ``fit``.
    sample_weight : ndarray of shape (n_samples,), optional
        The rows' weights when the user gave some (None: unweighted). The
        continuous columns' mean, scale and bins are then weighted: a row of
        weight ``k`` counts as ``k`` copies of it, and a row of weight 0 not at
        all. The categorical vocabularies leave rows of weight 0 out and count
        the others once each (sequence columns count every row).
    """

    column_name: Callable[[int], str] = str
    group: object = None
    declared: Mapping = field(default_factory=dict)
    rows: np.ndarray | None = None
    sample_weight: np.ndarray | None = None

    @property
    def distributed(self) -> bool:
        return self.group is not None and self.group.active


@dataclass
class OnnxColumn:
    """One graph input of an exported model: a raw feature column."""

    name: str
    index: int  # position in X
    kind: str  # recorded in the model's metadata ("continuous", "string", ...)
    onnx_type: str  # "string", "int64" or "double"
    width: int = 1  # the input's shape is (N, width)


class ColumnKind:
    """Base of the column kinds: one kind of column and the columns of ``X`` that have it.

    Parameters
    ----------
    columns : array-like of int
        Positions in ``X`` of the columns of this kind.

    Notes
    -----
    Subclasses set :attr:`name` (unique; the key of :data:`COLUMN_KINDS`, the
    name of the kind's module in the embedding and of its tensors in model
    files) and implement :meth:`fit`, :meth:`transform`,
    :meth:`embedding_args` and :meth:`make_embedding`. A kind with
    ``exports_to_onnx = True`` also implements the ``onnx_*`` methods, given
    the graph builder of :mod:`skmtl.export`.
    """

    name: ClassVar[str] = ""
    exports_to_onnx: ClassVar[bool] = False

    def __init__(self, columns=()):
        self.columns = np.asarray(columns, dtype=np.int64).reshape(-1)

    def fit(self, X, context: FitContext) -> ColumnKind:
        """Learn the kind's statistics from its columns of ``X``; returns self."""
        raise NotImplementedError

    def transform(self, X, context: FitContext) -> np.ndarray:
        """The kind's columns of ``X`` as one array of shape ``(n_samples, ...)``."""
        raise NotImplementedError

    def embedding_args(self, values: Mapping) -> dict:
        """Plain keyword arguments of :meth:`make_embedding`, recorded in ``network_spec_``.

        ``values`` are the estimator's resolved parameters (e.g. ``category_dropout``).
        """
        raise NotImplementedError

    @classmethod
    def make_embedding(cls, embedding_dim: int, n_copies: int, **args) -> torch.nn.Module:
        """The module mapping the kind's tensor to tokens ``(B, n_tokens, n_copies * D)``.

        It has an ``n_tokens`` attribute; parameters it lists in a
        ``lookup_tables`` attribute get no L2 penalty. Its parameters are
        initialised by its ``reset_parameters(generator)`` if it has one,
        else with torch's default initialisation drawn from the fit's seed.
        """
        raise NotImplementedError

    def categories(self) -> dict:
        """The learnt categories of the kind's columns, by column index (none by default)."""
        return {}

    def token_columns(self) -> np.ndarray:
        """The column of ``X`` behind each token (by default one token per column)."""
        return self.columns

    def probe_values(self) -> list:
        """A typical value of each column (e.g. the training mean).

        :func:`~skmtl.load_model` predicts one row of these to check a model file.
        """
        raise NotImplementedError

    # ONNX (kinds with exports_to_onnx = True)
    def onnx_columns(self, names) -> list[OnnxColumn]:
        """The graph input of each column; ``names[j]`` is column ``j``'s input name."""
        raise NotImplementedError

    def onnx_feed(self, X, names) -> dict:
        """The graph inputs' values for the rows of ``X``, arrays of shape ``(n, width)``."""
        raise NotImplementedError

    def onnx_encode(self, graph, names, output: str) -> None:
        """Add the nodes that turn the graph inputs into the network's input ``output``."""
        raise NotImplementedError

    def onnx_example(self, n_rows: int) -> torch.Tensor:
        """An input tensor of ``n_rows`` rows, to trace the network with."""
        raise NotImplementedError

    def onnx_invalid_rows(self, x: torch.Tensor) -> torch.Tensor | None:
        """Rows ``(B, 1)`` whose probabilities the graph sets to NaN, or None."""
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(columns={self.columns.tolist()})"


COLUMN_KINDS: dict[str, type[ColumnKind]] = {}
"""Registry: kind name -> class. Model files rebuild kinds from this table only."""


def register_column_kind(cls: type[ColumnKind]) -> type[ColumnKind]:
    """Add ``cls`` to :data:`COLUMN_KINDS` (usable as a class decorator)."""
    if not (isinstance(cls, type) and issubclass(cls, ColumnKind)):
        raise TypeError(f"A column kind subclasses ColumnKind; got {cls!r}.")
    if not cls.name.isidentifier():
        raise ValueError(f"A column kind's name must be an identifier; got {cls.name!r}.")
    known = COLUMN_KINDS.get(cls.name)
    if known is not None and known is not cls:
        raise ValueError(f"Column kind {cls.name!r} is already registered ({known.__qualname__}).")
    COLUMN_KINDS[cls.name] = cls
    return cls


# ------------------------------------------------------------ column helpers
def column(X, j: int) -> np.ndarray | pd.Series:
    """Column ``j`` of a DataFrame (as a Series) or of a 2-D array."""
    return X.iloc[:, j] if isinstance(X, pd.DataFrame) else X[:, j]


def column_name(feature_names, j: int) -> str:
    return repr(str(feature_names[j])) if feature_names is not None else str(j)


def category_counts(values) -> pd.Series:
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


EXACT_INTEGERS = 2**53
"""The integer lookups below work in float64 or int64 offsets: only codes up to this
magnitude (exact in float64) take them; larger ones (hashed ids) are hashed exactly."""


def _integral_range(values: np.ndarray) -> tuple[int, int] | None:
    """(lowest, highest) as Python ints when every value is an integer of magnitude at most
    :data:`EXACT_INTEGERS` (None otherwise, or when there are none)."""
    if values.size == 0:
        return None
    low, high = values.min(), values.max()
    if values.dtype.kind == "f":
        if not (np.isfinite(low) and np.isfinite(high)):
            return None
        if not np.array_equal(values, np.floor(values)):
            return None
    low, high = int(low), int(high)  # Python ints: no wrap-around in int8/uint64 arithmetic
    if max(abs(low), abs(high)) > EXACT_INTEGERS:
        return None
    return low, high


def _integer_counts(values: np.ndarray) -> pd.Series | None:
    """Counts of integer-coded categories by ``np.bincount`` (None if the values aren't such)."""
    present = values[~np.isnan(values)] if values.dtype.kind == "f" else values
    bounds = _integral_range(present)
    if bounds is None or bounds[1] - bounds[0] + 1 > max(4 * present.size, 1024):
        return None
    low = bounds[0]
    counts = np.bincount(present.astype(np.int64) - low)
    seen = np.flatnonzero(counts)
    return pd.Series(counts[seen], index=(seen + low).astype(values.dtype))


def learnt_vocabulary(counts: pd.Series, min_frequency: int, max_categories: int | None, name: str) -> pd.Index:
    """Sorted categories of one column that earn an embedding row of their own."""
    try:
        inferred = pd.api.types.infer_dtype(counts.index, skipna=True)
    except NotImplementedError:  # e.g. pyarrow month_day_nano_interval values
        raise ValueError(
            f"Categorical column {name} holds values of type {counts.index.dtype} that skmtl "
            "cannot sort into categories; convert them first, e.g. X[col].map(str)."
        ) from None
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


def sum_counts(parts: list[pd.Series]) -> pd.Series:
    """Category counts of several shards added up (one shard: returned as is)."""
    if len(parts) == 1:
        return parts[0]
    return pd.concat(parts).groupby(level=0, sort=False).sum()


def _moments(values: np.ndarray, weights=None) -> tuple[float, np.ndarray, np.ndarray]:
    """(rows, column means, column sums of squared deviations) of one shard.

    With ``weights`` (one per row, all positive), the weighted moments: "rows"
    is the total weight, and a row of weight ``k`` counts as ``k`` copies of it.
    """
    if weights is None:
        mean = values.mean(axis=0) if values.shape[0] else np.zeros(values.shape[1])
        return values.shape[0], mean, ((values - mean) ** 2).sum(axis=0)
    total = float(weights.sum())
    if total == 0:
        return 0, np.zeros(values.shape[1]), np.zeros(values.shape[1])
    mean = weights @ values / total
    return total, mean, weights @ ((values - mean) ** 2)


def _training_rows(n_rows: int, context: FitContext) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Positions of the training rows of positive weight (None: all rows) and their weights."""
    keep, weights = context.rows, context.sample_weight
    if weights is None:
        return keep, None
    keep = np.arange(n_rows) if keep is None else np.asarray(keep)
    keep = keep[weights[keep] > 0]
    return keep, weights[keep]


def _first_values(column: np.ndarray, k: int) -> set:
    """Up to ``k`` distinct values of ``column``, the first ones met (``k`` passes at most)."""
    seen: set = set()
    rest = np.ones(column.shape[0], dtype=bool)
    while len(seen) < k and rest.any():
        value = float(column[rest.argmax()])
        seen.add(value)
        rest &= column != value
    return seen


def _skewness(parts) -> np.ndarray:
    """Skewness ``m3 / m2**1.5`` (population moments) of the union of the shards.

    Each shard is ``(weight, means, sums of squared deviations, sums of cubed
    deviations)`` (as :func:`_moments`, plus the cubes); they are merged one
    at a time with Pébay's pairwise update ("Formulas for robust, one-pass
    parallel computation of covariances and arbitrary-order statistical
    moments", Sandia report SAND2008-6212). A constant column has skewness 0; values so large that
    their cubes overflow give an infinite or NaN skewness (no warning).
    """
    n, mean, m2, m3 = parts[0]
    with np.errstate(all="ignore"):
        for n_b, mean_b, m2_b, m3_b in parts[1:]:
            if n_b == 0:
                continue
            if n == 0:
                n, mean, m2, m3 = n_b, mean_b, m2_b, m3_b
                continue
            total, delta = n + n_b, mean_b - mean
            m3 = (m3 + m3_b + delta**3 * n * n_b * (n - n_b) / total**2
                  + 3 * delta * (n * m2_b - n_b * m2) / total)
            m2 = m2 + m2_b + delta**2 * n * n_b / total
            mean = mean + delta * n_b / total
            n = total
        skewness = np.sqrt(n) * m3 / m2**1.5
    return np.where(m2 > 0, skewness, 0.0)


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


def declared_vocabulary(values, name: str) -> pd.Index:
    vocabulary = pd.Index(pd.unique(pd.Series(np.asarray(values, dtype=object)).dropna()))
    if pd.api.types.infer_dtype(vocabulary, skipna=True) in _MIXED_INFERRED:
        raise ValueError(f"The declared categories of column {name} mix value types.")
    return pd.Index(vocabulary.tolist()).sort_values()


def to_float(values, name: str) -> np.ndarray:
    """``values`` as float64 (a view where no conversion is needed).

    Strings, dates and durations raise a ValueError naming the column: a
    date is never used silently as a count of nanoseconds.
    """
    dtype = getattr(values, "dtype", None)
    if getattr(dtype, "kind", None) == "c":
        raise ValueError(
            f"Continuous column(s) {name} hold complex numbers ({dtype}); complex data is not "
            "supported. Pass the real and imaginary parts (or modulus and phase) as columns."
        )
    if getattr(dtype, "kind", None) in ("M", "m") or isinstance(dtype, pd.PeriodDtype):
        raise ValueError(
            f"Continuous column(s) {name} hold dates or durations ({dtype}), which skmtl does "
            "not turn into numbers silently. Derive numeric features from them (e.g. hour, "
            "day of week, days since a reference date), or declare them in "
            "categorical_features."
        )
    try:
        if isinstance(values, pd.Series):
            return values.to_numpy(dtype=np.float64, na_value=np.nan)
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"Continuous column(s) {name} hold non-numeric values ({exc}). Declare such "
            "columns in categorical_features (or give them a string/category dtype, pandas "
            "or polars, with categorical_features='from_dtype')."
        ) from None


def encode_column(values, vocabulary: pd.Index) -> np.ndarray:
    """Codes of one column: ``1 + position`` in ``vocabulary``, 0 where absent or missing."""
    if vocabulary.dtype == object and len(vocabulary) and pd.api.types.infer_dtype(
            vocabulary, skipna=True) == "boolean":  # learnt from bools with missing values
        vocabulary = pd.Index(vocabulary.to_numpy().astype(bool))
    if isinstance(values, pd.Series) and isinstance(values.dtype, pd.CategoricalDtype):
        # Map the (few) categories once, then gather by the pandas codes.
        lookup = np.append(encode_column(np.asarray(values.cat.categories), vocabulary), 0)
        return lookup[values.cat.codes.to_numpy()]  # code -1 (missing) -> last entry, 0
    if isinstance(values, pd.Series):
        if (isinstance(values.dtype, pd.api.extensions.ExtensionDtype)
                and values.dtype.kind in "iu" and values.hasnans):
            # Nullable integers with NA: to_numpy() would make them float64 (inexact above
            # 2**53); the integers as they are, and the missing ones to the unknown row.
            missing = values.isna().to_numpy()
            codes = encode_column(values.to_numpy(dtype=values.dtype.numpy_dtype, na_value=0),
                                  vocabulary)
            return np.where(missing, 0, codes)
        values = values.to_numpy()
    if (values.dtype.kind == "f" and vocabulary.dtype.kind in "iu" and len(values)
            and len(vocabulary)  # sorted: its ends bound it
            and _integral_range(vocabulary[[0, -1]].to_numpy()) is None):
        # Float values against integer ids beyond 2**53: only exact integers can match
        # (a float near 1.5e18 stands for many ids), looked up as int64.
        exact = (np.abs(values) <= EXACT_INTEGERS) & (values == np.floor(values))
        codes = np.zeros(len(values), dtype=np.int64)
        codes[exact] = encode_column(values[exact].astype(np.int64), vocabulary)
        return codes
    if vocabulary.dtype == bool and values.dtype.kind in "iuf":
        # 0/1 (a database's tinyint, JSON) against bool categories match, as in
        # scikit-learn's encoders: False and True are 0 and 1
        return encode_column(values, pd.Index(vocabulary.to_numpy().astype(np.int64)))
    if values.dtype == bool and vocabulary.dtype.kind in "iuf":
        values = values.astype(np.int64)
    table = _integer_table(vocabulary) if values.dtype.kind in "iuf" else None
    if table is not None:
        # Integer-coded categories: a direct table lookup, several times faster than
        # hashing. Non-integral, out-of-range, NaN and inf values all miss (code 0).
        offset, codes = table
        if values.dtype.kind == "f":  # the table's values are exact in float64
            position = values.astype(np.float64, copy=False) - offset
            hit = (position >= 0) & (position < len(codes)) & (position == np.floor(position))
            position = np.where(hit, position, 0).astype(np.int64)
        else:  # in int64: a huge id must not round onto a known one
            fits = values <= np.iinfo(np.int64).max if values.dtype.kind == "u" else True
            position = np.where(fits, values, 0).astype(np.int64) - np.int64(offset)
            hit = fits & (position >= 0) & (position < len(codes))
            position = np.where(hit, position, 0)
        return np.where(hit, codes[position], 0)
    return vocabulary.get_indexer(values) + 1


def check_declared_kind(values, vocabulary: pd.Index, name: str) -> None:
    """Refuse declared categories of another kind than a column's values ('7' for 7).

    No value of the other kind can match one (every row would get the unknown
    category); values outside the declared set of the right kind are unknown
    categories, as documented.
    """
    if not len(vocabulary):
        return
    values = pd.Series(np.asarray(values, dtype=object)).dropna()
    declared, given = value_kinds(vocabulary), value_kinds(values)
    if len(declared) == len(given) == 1 and "other" not in declared | given and declared != given:
        raise ValueError(
            f"Column {name} holds {given.pop()} ({values.iloc[:3].tolist()}, ...) but its "
            f"declared categories are {declared.pop()} ({vocabulary[:3].tolist()}, ...): none "
            "could match. Declare them as the column holds them (7, not '7'; 'a', not b'a')."
        )


_INTEGER_TABLES: dict[int, tuple | None] = {}  # by id() of a live vocabulary, see below


def _integer_table(vocabulary: pd.Index):
    """``(lowest category, codes by category - lowest)`` for compact integral vocabularies.

    Built once per vocabulary (an immutable ``pd.Index``) and kept while it
    lives: building it reads the whole vocabulary, which cost a one-row
    ``predict_proba`` about a sixth of its time when repeated on every call.
    """
    if len(vocabulary) == 0 or vocabulary.dtype.kind not in "iuf":
        return None
    key = id(vocabulary)
    if key not in _INTEGER_TABLES:
        _INTEGER_TABLES[key] = _build_integer_table(vocabulary)
        weakref.finalize(vocabulary, _INTEGER_TABLES.pop, key, None)
    return _INTEGER_TABLES[key]


def _build_integer_table(vocabulary: pd.Index):
    values = vocabulary.to_numpy()
    bounds = _integral_range(values)
    if bounds is None or bounds[1] - bounds[0] + 1 > max(4 * len(values), 1024):
        return None
    low, high = bounds
    codes = np.zeros(high - low + 1, dtype=np.int64)
    codes[values.astype(np.int64) - low] = np.arange(1, len(values) + 1)
    codes.flags.writeable = False  # shared by every later lookup in this vocabulary
    return low, codes



def _quantile_sketch(
    values: np.ndarray, weights=None
) -> tuple[float, np.ndarray, np.ndarray | None]:
    """(rows, values or evenly spaced order statistics, their weights) of one shard, per column.

    A shard of at most :data:`QUANTILE_SKETCH_SIZE` rows is shared whole
    (with its rows' ``weights``, None when unweighted); a larger one by the
    (weighted) quantiles at ``QUANTILE_SKETCH_SIZE`` evenly spaced levels from
    0 to 1 (its minimum and maximum included), each standing for an equal
    share of the shard's rows (weights None). "rows" is the shard's total
    weight when weighted.
    """
    n = values.shape[0] if weights is None else float(np.sum(weights))
    if values.shape[0] <= QUANTILE_SKETCH_SIZE:
        return n, values, weights
    levels = np.linspace(0.0, 1.0, QUANTILE_SKETCH_SIZE)
    if weights is None:
        return n, np.quantile(values, levels, axis=0), None
    return n, _repeated_rows_quantiles(values, weights, levels), None


def _repeated_rows_quantiles(
    values: np.ndarray, weights: np.ndarray, levels: np.ndarray
) -> np.ndarray:
    """Quantiles ``(len(levels), n_columns)`` as if each row were repeated as its weight says (> 0).

    In units of the smallest weight ``m`` (only the ratios matter), row
    ``i`` fills the positions ``C_{i-1}`` to ``C_i - m`` of the cumulative
    weight ``C``, and the quantile at level ``q`` is read at position
    ``q * (C_n - m)``, interpolating linearly between rows: for integer
    weights whose smallest is 1, exactly ``np.quantile`` of the repeated rows
    (and the same for any multiple of them).
    """
    # Scaled by a power of two (exactly) to a largest weight in [1, 2): gaps between
    # positions in subnormal units would overflow the interpolation's slopes.
    weights = np.ldexp(weights, -int(np.floor(np.log2(weights.max()))))
    smallest = weights.min()
    out = np.empty((len(levels), values.shape[1]))
    for k in range(values.shape[1]):
        order = np.argsort(values[:, k], kind="stable")
        w, v = weights[order], values[order, k]
        end = np.cumsum(w)
        start = end - w
        positions = np.column_stack([start, np.maximum(start, end - smallest)]).ravel()
        out[:, k] = np.interp(levels * (end[-1] - smallest), positions, np.repeat(v, 2))
    return out


def _weighted_quantiles(values: np.ndarray, weights: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Quantiles ``(len(levels), n_columns)`` of points of ``values`` standing for ``weights`` rows.

    For the sketches of unweighted shards (each point stands for an equal
    share of its shard's rows). Each point sits at the middle of its weight
    in the cumulative weight, the first at level 0 and the last at 1, and the
    quantiles interpolate linearly between them: with equal weights,
    ``np.quantile``'s (linear) quantiles.
    """
    out = np.empty((len(levels), values.shape[1]))
    for k in range(values.shape[1]):
        order = np.argsort(values[:, k], kind="stable")
        w = weights[order]
        span = w.sum() - w[0] / 2 - w[-1] / 2
        if span <= 0:  # a single row
            out[:, k] = values[order[0], k]
            continue
        position = (np.cumsum(w) - w / 2 - w[0] / 2) / span
        out[:, k] = np.interp(levels, position, values[order, k])
    return out


def _merged_quantiles(sketches, levels: np.ndarray, n_columns: int) -> np.ndarray:
    """Quantiles ``(len(levels), n_columns)`` of the union of the processes' shards.

    Exact (``np.quantile`` of the pooled rows) when every shard was shared
    whole and unweighted; otherwise each shared point stands for its row's
    weight, or for ``rows / points`` rows, and the quantiles interpolate the
    pooled points' mid-cumulative weights (:func:`_weighted_quantiles`).
    """
    sketches = [sketch for sketch in sketches if sketch[0] > 0]
    if not sketches:
        raise ValueError("No training rows to learn the piecewise-linear bins from.")
    pooled = np.concatenate([points for _, points, _ in sketches], axis=0)
    if all(w is None and n == len(points) for n, points, w in sketches):
        return np.quantile(pooled, levels, axis=0)
    weights = np.concatenate([
        np.full(len(points), n / len(points)) if w is None else w for n, points, w in sketches
    ])
    if all(w is None for _, _, w in sketches):  # sketches of unweighted shards
        return _weighted_quantiles(pooled, weights, levels)
    return _repeated_rows_quantiles(pooled, weights, levels)


def check_continuous_entry(entry: Mapping) -> None:
    """Check a continuous kind's entry of a network description (e.g. read from a file)."""
    embedding = entry.get("embedding", "linear")
    if embedding not in NUMERIC_EMBEDDINGS:
        raise ValueError(f"unknown numeric embedding {embedding!r} (known: {list(NUMERIC_EMBEDDINGS)})")
    n_columns = entry["n_columns"]
    if not isinstance(n_columns, int) or isinstance(n_columns, bool) or n_columns < 0:
        raise ValueError(f"n_columns must be an integer >= 0; got {n_columns!r}.")
    expected = {"linear": set(), "periodic": {"n_frequencies", "sigma"},
                "piecewise_linear": {"bins"},
                "auto": {"periodic_columns", "n_frequencies", "sigma"}}[embedding]
    if "projection" in entry:
        n_tokens = entry.get("n_tokens")
        if entry["projection"] != "joint" or embedding != "linear":
            raise ValueError(
                f"projection {entry['projection']!r} with the {embedding} numeric embedding is not "
                "a continuous projection skmtl builds ('joint', of the linear embedding, is)."
            )
        if not isinstance(n_tokens, int) or isinstance(n_tokens, bool) or not 1 <= n_tokens:
            raise ValueError(f"n_tokens must be an integer >= 1; got {n_tokens!r}.")
        if n_columns == 0:
            raise ValueError("a joint projection needs at least one continuous column.")
        expected = {"projection", "n_tokens"}
    given = set(entry) - {"kind", "n_columns", "embedding"}
    if embedding == "auto" and "periodic_scale" in given:  # absent in files written before it
        expected = expected | {"periodic_scale"}
        if not isinstance(entry["periodic_scale"], bool):
            raise ValueError(f"periodic_scale must be true or false; got {entry['periodic_scale']!r}.")
    if given != expected:
        raise ValueError(
            f"the {embedding} numeric embedding takes {sorted(expected)}; got {sorted(given)}."
        )
    if embedding == "auto":
        columns = entry["periodic_columns"]
        if not isinstance(columns, list) or len(set(columns)) != len(columns) or not all(
            isinstance(j, int) and not isinstance(j, bool) and 0 <= j < n_columns for j in columns
        ):
            raise ValueError(
                f"periodic_columns must be distinct column positions in 0..{n_columns - 1}; "
                f"got {columns!r}."
            )
    if embedding in ("periodic", "auto"):
        n, sigma = entry["n_frequencies"], entry["sigma"]
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise ValueError(f"n_frequencies must be an integer >= 1; got {n!r}.")
        if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not 0 < sigma < np.inf:
            raise ValueError(f"sigma must be a finite number > 0; got {sigma!r}.")
    if embedding == "piecewise_linear":
        bins = entry["bins"]
        if not isinstance(bins, list) or len(bins) != n_columns or not all(
            isinstance(edges, list) and edges
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in edges)
            for edges in bins
        ):
            raise ValueError(f"bins must be a non-empty list of numbers for each of the {n_columns} columns.")


# ------------------------------------------------------------ built-in kinds
class CategoricalColumns(ColumnKind):
    """Categorical columns: learnt vocabularies, int codes, one embedding table each.

    Column ``j`` is mapped to int codes: ``0`` for the reserved unknown row
    (missing, unseen at fit time, or rarer than ``min_frequency``) and
    ``1..K_j`` for its ``K_j`` learnt categories. In a data-parallel fit the
    category counts are summed over the processes before ``min_frequency``
    and ``max_categories`` apply.

    Parameters
    ----------
    columns : array-like of int
        Positions of the categorical columns in ``X``.
    min_frequency : int, default=1
        Categories seen fewer times than this share the unknown row.
    max_categories : int or None, default=None
        At most this many categories per column get their own row (the most
        frequent); the rest share the unknown row.

    Attributes
    ----------
    vocabularies_ : list of pandas.Index
        The sorted learnt categories of each column.
    """

    name = "categorical"
    exports_to_onnx = True

    def __init__(self, columns=(), min_frequency=1, max_categories=None):
        super().__init__(columns)
        self.min_frequency = min_frequency
        self.max_categories = max_categories

    @property
    def cardinalities(self) -> list[int]:
        """Rows of each table: learnt categories plus the unknown row."""
        return [len(v) + 1 for v in self.vocabularies_]

    def _counts(self, X, declared, weights=None) -> list:
        """Category counts of the undeclared columns (None for declared ones).

        Rows of weight 0 (``weights``, None when unweighted) are left out: a
        category seen only there would get a row of its own that training
        never reaches, instead of the trained unknown row. The other rows
        count once each, whatever their weight (only the weights' ratios
        matter, so they cannot be counts for ``min_frequency``).
        """
        keep = None if weights is None or np.all(weights > 0) else weights > 0

        def values(j):
            values = column(X, j)
            return values if keep is None else values[keep]

        return [None if j in declared else category_counts(values(j)) for j in self.columns]

    def fit(self, X, context: FitContext) -> CategoricalColumns:
        declared = context.declared
        weights = context.sample_weight
        if not context.distributed:
            counts = self._counts(X, declared, weights)
        else:
            shards = context.group.share(lambda: self._counts(X, declared, weights))
            counts = [
                None if j in declared else sum_counts([shard[k] for shard in shards])
                for k, j in enumerate(self.columns)
            ]
        self.vocabularies_ = [
            declared_vocabulary(declared[j], context.column_name(j))
            if j in declared
            else learnt_vocabulary(column_counts, self.min_frequency, self.max_categories, context.column_name(j))
            for j, column_counts in zip(self.columns, counts)
        ]
        if declared and context.distributed:  # on every process: an error on one is raised on all
            context.group.run(lambda: self._check_declared_match(X, context))
        elif declared:
            self._check_declared_match(X, context)
        return self

    def _check_declared_match(self, X, context: FitContext) -> None:
        """Refuse declared categories of another kind than a column's values ('7' for 7).

        No value of the other kind can match one (every row would get the
        unknown category); values outside the declared set of the right kind
        are unknown categories, as documented.
        """
        for j, vocabulary in zip(self.columns, self.vocabularies_):
            if j in context.declared:
                check_declared_kind(column(X, j), vocabulary, context.column_name(j))


    def transform(self, X, context: FitContext) -> np.ndarray:
        """Codes, int32 of shape ``(n_samples, n_columns)``.

        int32 halves the memory of the encoded training rows and of their
        per-epoch shuffled copy (a vocabulary never nears 2**31 rows); the
        embedding adds its int64 table offsets to each batch.
        """
        codes = np.empty((X.shape[0], len(self.vocabularies_)), dtype=np.int32)
        for k, (j, vocabulary) in enumerate(zip(self.columns, self.vocabularies_)):
            try:
                codes[:, k] = encode_column(column(X, j), vocabulary)
            except TypeError as exc:  # unhashable cells: lists, dicts, sets, arrays
                raise ValueError(
                    f"Categorical column {context.column_name(j)} holds values that cannot be "
                    f"looked up as categories ({exc}): lists, dicts, sets or arrays. A column "
                    "of lists is a sequence column (declared in sequence_features at fit)."
                ) from None
        return codes

    def categories(self) -> dict:
        return {int(j): vocabulary.to_numpy() for j, vocabulary in zip(self.columns, self.vocabularies_)}

    def embedding_args(self, values: Mapping) -> dict:
        return {
            "cardinalities": self.cardinalities,
            "unknown_rate": float(values.get("category_dropout", 0.0)),
        }

    @classmethod
    def make_embedding(cls, embedding_dim, n_copies, *, cardinalities, unknown_rate=0.0):
        return CategoricalEmbedding(cardinalities, embedding_dim, unknown_rate, n_copies)

    # ONNX: a LabelEncoder (or Equal/Where/ReduceMax for float keys) per column.
    def _lookups(self, names) -> list[_CategoryLookup]:
        return [category_lookup(v, names[j]) for j, v in zip(self.columns, self.vocabularies_)]

    def onnx_columns(self, names) -> list[OnnxColumn]:
        return [
            OnnxColumn(names[j], int(j), lookup.kind, lookup.onnx_type)
            for j, lookup in zip(self.columns, self._lookups(names))
        ]

    def onnx_feed(self, X, names) -> dict:
        feed = {}
        for j, vocabulary, lookup in zip(self.columns, self.vocabularies_, self._lookups(names)):
            codes = np.asarray(encode_column(column(X, j), vocabulary))
            values = np.full(codes.shape, lookup.missing, dtype=lookup.keys.dtype)
            known = codes > 0
            values[known] = lookup.keys[codes[known] - 1]
            feed[names[j]] = values.reshape(-1, 1)
        return feed

    def onnx_encode(self, graph, names, output: str) -> None:
        codes = []
        for k, (j, lookup) in enumerate(zip(self.columns, self._lookups(names))):
            codes.append(graph.name(f"code_{k}"))
            onnx_category_codes(graph, names[j], lookup, codes[-1], str(k))
        graph.node("Concat", codes, [output], axis=1)

    def onnx_example(self, n_rows: int) -> torch.Tensor:
        return torch.zeros((n_rows, len(self.columns)), dtype=torch.long)

    def probe_values(self) -> list:
        return [None] * len(self.columns)  # missing: the unknown rows


@dataclass
class _CategoryLookup:
    """How one categorical column enters an exported graph."""

    kind: str  # "string", "bool", "int" or "float"
    keys: np.ndarray  # the categories as graph values (object str, int64, float64)
    missing: object  # a graph value that is not a learnt category

    @property
    def onnx_type(self) -> str:
        return {"string": "string", "bool": "int64", "int": "int64"}.get(self.kind, "double")


def onnx_category_codes(graph, name: str, lookup: _CategoryLookup, output: str, tag: str) -> None:
    """Nodes giving the codes (int64, 0 unknown) of the graph values ``name`` of any shape.

    A ``LabelEncoder`` for string, bool and integer keys; for float keys (which
    its version 2 does not take) the matching code by ``Equal``, ``Where`` and
    ``ReduceMax`` over a new last axis. ``tag`` makes the internal names unique.
    """
    if len(lookup.keys) == 0:  # no learnt category: always unknown
        shape = graph.name(f"shape_{tag}")
        graph.node("Shape", [name], [shape])
        graph.node("ConstantOfShape", [shape], [output], value=graph.tensor(np.zeros(1, dtype=np.int64)))
    elif lookup.kind == "float":
        # (..., 1) == (K,) -> (..., K); the matching code, or 0; max over K.
        last = graph.const(f"axis_{tag}", np.full(1, -1, dtype=np.int64))
        column, equal, picked = (graph.name(f"{s}_{tag}") for s in ("column", "equal", "picked"))
        graph.node("Unsqueeze", [name, last], [column])
        graph.node("Equal", [column, graph.const(f"keys_{tag}", lookup.keys)], [equal])
        codes = graph.const(f"values_{tag}", np.arange(1, len(lookup.keys) + 1, dtype=np.int64))
        graph.node("Where", [equal, codes, graph.const(f"zero_{tag}", np.zeros((), dtype=np.int64))],
                   [picked])
        graph.node("ReduceMax", [picked, last], [output], keepdims=0)
    else:
        keys = ({"keys_strings": lookup.keys.tolist()} if lookup.kind == "string"
                else {"keys_int64s": lookup.keys.tolist()})
        graph.node("LabelEncoder", [name], [output], domain="ai.onnx.ml",
                   values_int64s=list(range(1, len(lookup.keys) + 1)), default_int64=0, **keys)


def _category_kind(vocabulary: pd.Index, name: str) -> str:
    """``string``, ``bool``, ``int`` or ``float``: how a column's categories are fed."""
    dtype = vocabulary.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "bool"
    if pd.api.types.is_integer_dtype(dtype):
        return "int"
    if pd.api.types.is_float_dtype(dtype):
        return "float"
    if pd.api.types.is_string_dtype(dtype) or dtype == object:
        inferred = pd.api.types.infer_dtype(vocabulary, skipna=True)
        kinds = {"string": "string", "empty": "string", "boolean": "bool", "integer": "int",
                 "floating": "float", "mixed-integer-float": "float"}
        if inferred in kinds:
            return kinds[inferred]
        dtype = inferred
    raise ValueError(
        f"Categorical column {name!r} has categories of type {dtype}, which the ONNX export "
        "does not support (strings, bools, integers and floats are); convert the column, "
        "e.g. X[col].astype(str), and refit."
    )


def _unused(candidates, taken) -> object:
    taken = set(taken)
    return next(c for c in candidates if c not in taken)


def category_lookup(vocabulary: pd.Index, name: str) -> _CategoryLookup:
    kind = _category_kind(vocabulary, name)
    values = vocabulary.to_numpy(dtype=object)
    if kind == "string":
        keys = np.array([str(v) for v in values], dtype=object)
        missing = _unused(("", *(f"<missing {i}>" for i in range(len(values) + 1))), keys)
    elif kind == "bool":
        keys, missing = np.array([int(bool(v)) for v in values], dtype=np.int64), -1
    elif kind == "int":
        ints = [int(v) for v in values]
        info = np.iinfo(np.int64)
        if ints and not (info.min <= min(ints) and max(ints) <= info.max):
            raise ValueError(
                f"Categorical column {name!r} has integer categories outside the int64 "
                "range, which ONNX cannot feed."
            )
        keys = np.array(ints, dtype=np.int64)
        missing = _unused((-1, info.min, info.max, *range(-2, -len(ints) - 3, -1)), ints)
    else:
        keys, missing = np.array([float(v) for v in values], dtype=np.float64), np.nan
        if len(np.unique(keys)) < len(keys):
            raise ValueError(
                f"Categorical column {name!r} mixes floats with integers beyond 2**53 that "
                "float64 cannot tell apart, and ONNX feeds such a column as doubles; convert "
                "its values (or items) to str before fitting to export it."
            )
    return _CategoryLookup(kind, keys, missing)


NUMERIC_EMBEDDINGS = ("linear", "periodic", "piecewise_linear", "auto")
"""How continuous columns enter the network (the estimators' ``numeric_embedding``)."""

AUTO_PERIODIC_SKEWNESS = 5.0
"""``numeric_embedding="auto"`` adds the periodic term to the columns whose training
values have a skewness beyond this (in absolute value) and take more than two values:
heavy tails such as amounts that are 0 on most rows. A log-normal column with sigma
0.8 has a skewness near 3.7; a 0/1 column with 1 on 3 % of the rows, near 5.6, but
two values need no more than the linear map."""

AUTO_PERIODIC_ROWS_PER_COLUMN = 5_000
"""``numeric_embedding="auto"`` adds the periodic term to every column that takes more
than two values, skewed or not, when there are at least this many training rows (of
positive weight) per continuous column. The term adds about ``32 * embedding_dim``
weights and 16 frequencies per column; fitted from a few thousand rows it overfits (even
with its zero-initialised scale), while with many rows a column whose effect has
thresholds or a peak (ages, weeks worked) gains from it. Census-income's 71,828 training
rows and 7 continuous columns (about 10,000 rows a column) are above the line, as the ad
funnel's 200,000 impressions and 4 columns; the quality benchmark's 10,000-row synthetic
cases (90 rows a column) and its small case (27) are far below it. Measured in the
documentation's results (``periodic-zero-scale``)."""

PIECEWISE_LINEAR_BINS = 48
"""Quantile bins per column of ``numeric_embedding="piecewise_linear"`` (at most)."""

PERIODIC_FREQUENCIES = 16
"""Frequencies per column of ``numeric_embedding="periodic"``."""

PERIODIC_SIGMA = 0.5
"""Standard deviation of the initial periodic frequencies (cycles per standard deviation)."""

QUANTILE_SKETCH_SIZE = 4096
"""Order statistics per column a process shares for the global bins of a data-parallel fit."""

CONTINUOUS_PROJECTIONS = ("auto", "per_column", "joint")
"""How the continuous columns become tokens (the estimators' ``continuous_projection``)."""

JOINT_PROJECTION_TOKENS = 16
"""Tokens ``k`` of the joint projection (fewer when there are fewer continuous columns)."""

JOINT_PROJECTION_MIN_COLUMNS = 256
"""``continuous_projection="auto"`` projects jointly above this many continuous columns."""


def joint_projection_tokens(projection, n_columns: int, numeric_embedding, feature_groups) -> int | None:
    """Tokens of the joint projection of ``n_columns`` continuous columns, or None (one per column).

    ``"auto"`` projects jointly when there are more than
    :data:`JOINT_PROJECTION_MIN_COLUMNS` columns, ``numeric_embedding`` is
    ``"linear"`` or ``"auto"`` (whose periodic terms the projection then
    leaves out: all columns are projected linearly) and there are no
    ``feature_groups`` (whose experts read the tokens of their own columns);
    otherwise it keeps one token per column.
    ``"joint"`` with a non-linear ``numeric_embedding`` or with
    ``feature_groups`` raises a ValueError. Without continuous columns there is
    nothing to project.
    """
    if projection not in CONTINUOUS_PROJECTIONS:
        raise ValueError(
            f"continuous_projection must be one of {list(CONTINUOUS_PROJECTIONS)}; got {projection!r}."
        )
    if projection == "per_column" or n_columns == 0:
        return None
    if projection == "auto":
        wide = n_columns > JOINT_PROJECTION_MIN_COLUMNS
        if not wide or numeric_embedding not in ("linear", "auto") or feature_groups is not None:
            return None
    elif numeric_embedding not in ("linear", "auto"):
        raise ValueError(
            "continuous_projection='joint' projects the standardised values linearly, so it "
            f"does not combine with numeric_embedding={numeric_embedding!r} (a token per "
            "column); use numeric_embedding='linear' or 'auto', or continuous_projection='per_column'."
        )
    elif feature_groups is not None:
        raise ValueError(
            "continuous_projection='joint' leaves no token per column for the experts of "
            "feature_groups to read; use continuous_projection='per_column' with feature_groups."
        )
    return min(JOINT_PROJECTION_TOKENS, int(n_columns))


class ContinuousColumns(ColumnKind):
    """Continuous columns: standardised with the training mean and scale, then embedded.

    Every value is standardised, ``(x - mean) / scale``; ``embedding`` says how
    the standardised column becomes its token of ``D`` values:

    - ``"linear"``: ``x * w_j + b_j``
      (:class:`~skmtl.nn.blocks.ContinuousEmbedding`);
    - ``"periodic"``: PLR, ``relu([cos(2 pi c_j x), sin(2 pi c_j x)] @ W_j + b_j)``
      with :data:`PERIODIC_FREQUENCIES` trainable frequencies per column drawn
      from ``N(0, PERIODIC_SIGMA)`` (:class:`~skmtl.nn.blocks.PeriodicEmbedding`);
    - ``"piecewise_linear"``: the piecewise-linear encoding over quantile bins,
      then a linear map (:class:`~skmtl.nn.blocks.PiecewiseLinearEmbedding`);
    - ``"auto"``: the linear map for every column, plus the periodic term for
      each heavy-tailed column, whose training values take more than two
      values and have a skewness beyond
      :data:`AUTO_PERIODIC_SKEWNESS` in absolute value (amounts that are 0 on
      most rows, with a long tail: once standardised, most rows sit in a
      sliver near one value and the effect comes from thresholds and spikes),
      and, with at least :data:`AUTO_PERIODIC_ROWS_PER_COLUMN` training rows
      of positive weight per continuous column, every column that takes more
      than two values: the columns listed in ``periodic_columns_``
      (:class:`~skmtl.nn.blocks.LinearPeriodicEmbedding`, whose periodic
      tokens are multiplied by a learnt scale that starts at 0). The other
      columns keep the linear map alone.

    The periodic and piecewise-linear embeddings are those of Gorishniy,
    Rubachev and Babenko, "On Embeddings for Numerical Features in Tabular
    Deep Learning" (NeurIPS 2022).

    The bins are the quantiles at levels ``0, 1/n_bins, ..., 1`` of the
    training rows (``context.rows``: validation rows never enter them), with
    repeated edges dropped, so a column with few distinct values gets fewer
    bins and a constant column a single edge. In a data-parallel fit the mean
    and scale are those of all processes' rows, and the bins are quantiles of
    all processes' training rows: exact when every process has at most
    :data:`QUANTILE_SKETCH_SIZE` training rows (its rows are pooled), else
    approximate, each process sharing :data:`QUANTILE_SKETCH_SIZE` evenly
    spaced order statistics of each column (its minimum and maximum among
    them) weighted by its number of rows. The columns of ``"auto"`` are
    chosen from the training rows of positive weight as well (of all
    processes in a data-parallel fit; from the first chunk of
    ``partial_fit``, like the mean and scale; the implicit zeros of a sparse
    ``X`` count as values).

    Parameters
    ----------
    columns : array-like of int
        Positions of the continuous columns in ``X``.
    embedding : {"linear", "periodic", "piecewise_linear", "auto"}, default="linear"
        How the standardised columns are embedded.
    n_bins : int, default=PIECEWISE_LINEAR_BINS
        Quantile bins per column (at most) for ``"piecewise_linear"``.

    Attributes
    ----------
    mean_, scale_ : ndarray of shape (n_columns,)
        Training mean and (population) standard deviation, 1 where it is 0.
    bins_ : list of ndarray
        ``"piecewise_linear"`` only: the sorted, distinct bin edges of each
        column, in the column's units.
    periodic_columns_ : ndarray of int
        ``"auto"`` only: the positions (among the continuous columns, in
        increasing order) of the columns that get the periodic term.
    """

    name = "continuous"
    exports_to_onnx = True

    def values(self, X, context: FitContext) -> np.ndarray:
        """The columns as a new float64 array (never a view of ``X``).

        Non-numeric or non-finite values raise errors that name the columns.
        """
        idx, name = self.columns, context.column_name
        if isinstance(X, pd.DataFrame):
            parts = [to_float(X.iloc[:, j], name(j)) for j in idx]
            values = np.column_stack(parts) if parts else np.empty((X.shape[0], 0))
        else:  # indexing by an array of positions copies
            values = to_float(X[:, idx], ", ".join(name(j) for j in idx))
        if values.size and not np.isfinite(values).all():
            bad = [name(j) for j, ok in zip(idx, np.isfinite(values).all(axis=0)) if not ok]
            raise ValueError(
                f"Input X contains NaN or infinity in continuous column(s) {', '.join(bad)}. "
                "Impute them first (e.g. sklearn.impute.SimpleImputer in a Pipeline), or "
                "declare the column(s) in categorical_features, where missing values map to "
                "the unknown category."
            )
        return values

    def __init__(self, columns=(), embedding="linear", n_bins=PIECEWISE_LINEAR_BINS):
        super().__init__(columns)
        self.embedding = embedding
        self.n_bins = n_bins

    def fit(self, X, context: FitContext) -> ContinuousColumns:
        if self.embedding not in NUMERIC_EMBEDDINGS:
            raise ValueError(
                f"embedding must be one of {list(NUMERIC_EMBEDDINGS)}; got {self.embedding!r}."
            )
        weights = context.sample_weight
        if is_sparse(X):  # the columns are all of X's (the estimator checked)
            self._check_sparse(X)
            rows = X
            if weights is not None:  # rows of weight 0 left out (0 * inf would be NaN)
                rows, weights = X[weights > 0], weights[weights > 0]
            if not context.distributed:
                self.mean_, scale = sparse_mean_scale(rows, weights)
            else:
                self.mean_, scale = _combine_moments(
                    context.group.share(lambda: sparse_moments(rows, weights))
                )
        elif not context.distributed and weights is None:
            values = self.values(X, context)
            self.mean_ = values.mean(axis=0)
            scale = values.std(axis=0)
        else:
            def shard_moments():
                values = self.values(X, context)
                if weights is None:
                    return _moments(values)
                return _moments(values[weights > 0], weights[weights > 0])

            shards = (context.group.share(shard_moments) if context.distributed
                      else [shard_moments()])
            self.mean_, scale = _combine_moments(shards)
        overflowed = ~(np.isfinite(self.mean_) & np.isfinite(scale))
        if overflowed.any():  # e.g. values near 1e160: their squares overflow float64
            names = [context.column_name(j) for j in np.asarray(self.columns)[overflowed]]
            raise ValueError(
                f"Continuous column(s) {', '.join(names)} hold values too large for their mean "
                "and standard deviation to be computed in float64 (they overflow); rescale "
                "them (e.g. divide by a power of ten) or take their logarithm."
            )
        self.scale_ = np.where(scale > 0, scale, 1.0)
        if self.embedding == "auto":
            self.periodic_columns_ = self._fit_periodic_columns(X, context)
        if self.embedding == "piecewise_linear":
            self.bins_ = self._fit_bins(X, context)
        return self

    def _fit_periodic_columns(self, X, context: FitContext) -> np.ndarray:
        """The columns of ``"auto"`` that get the periodic term (see the class docstring)."""
        summary = self._sparse_summary if is_sparse(X) else self._dense_summary
        parts = (context.group.share(lambda: summary(X, context)) if context.distributed
                 else [summary(X, context)])
        skewness = _skewness([moments for moments, _, _ in parts])
        n_values = np.array([len(set().union(*(distinct[k] for _, distinct, _ in parts)))
                             for k in range(len(self.columns))], dtype=np.int64)
        n_rows = sum(rows for _, _, rows in parts)
        many_rows = n_rows >= AUTO_PERIODIC_ROWS_PER_COLUMN * len(self.columns)
        chosen = ((np.abs(skewness) > AUTO_PERIODIC_SKEWNESS) | many_rows) & (n_values > 2)
        return np.flatnonzero(chosen).astype(np.int64)

    def _dense_summary(self, X, context: FitContext) -> tuple:
        """Weight, means and sums of squared and cubed deviations of the training rows of
        positive weight, up to three distinct values of each column, one column at a
        time (no copy of all of them), and the number of those rows."""
        keep, weights = _training_rows(X.shape[0], context)
        n = (len(X) if keep is None else len(keep)) if weights is None else float(weights.sum())
        mean, squares, cubes = (np.zeros(len(self.columns)) for _ in range(3))
        distinct = []
        for k, j in enumerate(self.columns):
            values = to_float(column(X, j), context.column_name(j))
            # contiguous: a column of a C-ordered array is strided
            values = np.ascontiguousarray(values if keep is None else values[keep])
            if n:
                mean[k] = values.mean() if weights is None else weights @ values / n
                deviations = values - mean[k]
                squared = deviations * deviations
                with np.errstate(over="ignore", invalid="ignore"):  # |x| near 1e103: inf or NaN
                    squares[k] = squared.sum() if weights is None else weights @ squared
                    cubes[k] = squared @ deviations if weights is None else weights @ (
                        squared * deviations)
            distinct.append(_first_values(values, 3))
        n_rows = X.shape[0] if keep is None else len(keep)
        return (n, mean, squares, cubes), distinct, n_rows

    @staticmethod
    def _sparse_summary(X, context: FitContext) -> tuple:
        """:meth:`_dense_summary` of a sparse ``X``, whose implicit zeros are values too."""
        keep, weights = _training_rows(X.shape[0], context)
        rows = X if keep is None else X[keep]
        by_column = rows.tocsc()
        stored = np.diff(by_column.indptr)
        distinct = [
            _first_values(by_column.data[by_column.indptr[k]:by_column.indptr[k + 1]], 3)
            | ({0.0} if stored[k] < rows.shape[0] else set())
            for k in range(rows.shape[1])
        ]
        return sparse_third_moments(rows, weights), distinct, rows.shape[0]

    def _fit_bins(self, X, context: FitContext) -> list[np.ndarray]:
        """Distinct quantiles of the training rows, per column (see the class docstring)."""
        levels = np.linspace(0.0, 1.0, int(self.n_bins) + 1)

        def training_values() -> tuple[np.ndarray, np.ndarray | None]:
            """The training rows' values and weights (None: unweighted), weight-0 rows left out."""
            values, weights = self.values(X, context), context.sample_weight
            if context.rows is not None:
                values = values[context.rows]
                weights = None if weights is None else weights[context.rows]
            if weights is None:
                return values, None
            return values[weights > 0], weights[weights > 0]

        if not context.distributed:
            values, weights = training_values()
            if not len(values):
                raise ValueError("No training row (of positive weight) to learn the "
                                 "piecewise-linear bins from.")
            edges = (np.quantile(values, levels, axis=0) if weights is None
                     else _repeated_rows_quantiles(values, weights, levels))
        else:
            edges = _merged_quantiles(
                context.group.share(lambda: _quantile_sketch(*training_values())),
                levels, len(self.columns),
            )
        return [np.unique(edges[:, k]) for k in range(len(self.columns))]

    def _check_sparse(self, X) -> None:
        if not np.array_equal(self.columns, np.arange(X.shape[1])):
            raise ValueError("A sparse X holds continuous columns only; all of its columns are.")

    def transform(self, X, context: FitContext) -> np.ndarray | SparseRows:
        """Standardised values, float32 of shape ``(n_samples, n_columns)``.

        A sparse ``X`` (CSR, from :func:`skmtl._sparse.check_sparse`) gives
        :class:`~skmtl.nn.sparse.SparseRows` holding the same values, without
        the dense matrix.
        """
        if is_sparse(X):
            self._check_sparse(X)
            rows = standardised_rows(X, self.mean_, self.scale_)
            self._check_float32(np.concatenate([rows.values.numpy(), rows.zeros.numpy()]),
                                np.concatenate([X.indices, np.arange(X.shape[1])]), context)
            return rows
        values = self.values(X, context)  # our own copy: standardised in place, then
        values -= self.mean_  # rounded to float32 (the same bits as (x - mean) / scale)
        values /= self.scale_
        standardised = np.ascontiguousarray(values, dtype=np.float32)
        del values
        self._check_float32(standardised, None, context)
        return standardised

    def _check_float32(self, standardised, columns, context) -> None:
        """Refuse values that overflowed float32 (``columns``: of each value, None for 2-D)."""
        if standardised.size and not np.isfinite(standardised).all():
            if columns is None:
                bad = np.flatnonzero(~np.isfinite(standardised).all(axis=0))
            else:
                bad = np.unique(columns[~np.isfinite(standardised)])
            raise ValueError(
                "Continuous column(s) "
                f"{', '.join(context.column_name(self.columns[k]) for k in bad)} hold values "
                "too large for float32 once standardised with the training mean and scale; "
                "clip or rescale them (e.g. a log transform) first."
            )

    def embedding_args(self, values: Mapping) -> dict:
        """``n_columns``; for the non-linear embeddings ``embedding`` and its settings.

        The piecewise-linear ``bins`` are recorded in standardised units (the
        embedding's input). ``"auto"`` without a heavy-tailed column is
        described as ``"linear"``. ``values["numeric_embedding"]``, when it differs
        from the fitted ``embedding``, is recorded without settings, so that a
        continued fit sees that the parameters describe another network. A
        joint projection (``values["continuous_projection"]``, see
        :func:`joint_projection_tokens`) is recorded as ``projection="joint"``
        and its ``n_tokens``.
        """
        args = {"n_columns": len(self.columns)}
        embedding = values.get("numeric_embedding", self.embedding)
        n_tokens = joint_projection_tokens(
            values.get("continuous_projection", "per_column"), len(self.columns), embedding,
            values.get("feature_groups"),
        )
        if n_tokens is not None:
            return {**args, "projection": "joint", "n_tokens": n_tokens}
        if embedding == "linear":  # whatever was fitted, "linear" asks for the linear network
            return args
        if embedding != self.embedding:
            return {**args, "embedding": embedding}
        if embedding == "periodic":
            return {**args, "embedding": embedding, "n_frequencies": PERIODIC_FREQUENCIES,
                    "sigma": PERIODIC_SIGMA}
        if embedding == "auto":
            if not len(self.periodic_columns_):  # the linear network, described as such
                return args
            return {**args, "embedding": embedding,
                    "periodic_columns": [int(j) for j in self.periodic_columns_],
                    "n_frequencies": PERIODIC_FREQUENCIES, "sigma": PERIODIC_SIGMA,
                    "periodic_scale": True}
        if embedding == "piecewise_linear":
            bins = [((edges - mean) / scale).tolist()
                    for edges, mean, scale in zip(self.bins_, self.mean_, self.scale_)]
            return {**args, "embedding": embedding, "bins": bins}
        return args

    @classmethod
    def make_embedding(cls, embedding_dim, n_copies, *, n_columns, embedding="linear", **settings):
        check_continuous_entry({"n_columns": n_columns, "embedding": embedding, **settings})
        if settings.get("projection") == "joint":
            return JointProjection(n_columns, settings["n_tokens"], embedding_dim, n_copies)
        if embedding == "periodic":
            return PeriodicEmbedding(n_columns, embedding_dim, settings["n_frequencies"],
                                     settings["sigma"], n_copies)
        if embedding == "piecewise_linear":
            return PiecewiseLinearEmbedding(settings["bins"], embedding_dim, n_copies)
        if embedding == "auto":
            return LinearPeriodicEmbedding(n_columns, embedding_dim, settings["periodic_columns"],
                                           settings["n_frequencies"], settings["sigma"], n_copies,
                                           scaled=settings.get("periodic_scale", False))
        return ContinuousEmbedding(n_columns, embedding_dim, n_copies)

    # ONNX: float64 inputs, standardised in float64 inside the graph, then cast.
    def onnx_columns(self, names) -> list[OnnxColumn]:
        return [OnnxColumn(names[j], int(j), "continuous", "double") for j in self.columns]

    def onnx_feed(self, X, names) -> dict:
        return {names[j]: to_float(column(X, j), repr(names[j])).reshape(-1, 1) for j in self.columns}

    def onnx_encode(self, graph, names, output: str) -> None:
        raw, centred, scaled = (graph.name(s) for s in ("continuous", "centred", "scaled"))
        graph.node("Concat", [names[j] for j in self.columns], [raw], axis=1)
        graph.node("Sub", [raw, graph.const("mean", np.asarray(self.mean_, dtype=np.float64))], [centred])
        graph.node("Div", [centred, graph.const("scale", np.asarray(self.scale_, dtype=np.float64))],
                   [scaled])
        graph.node("Cast", [scaled], [output], to=graph.FLOAT)

    def onnx_example(self, n_rows: int) -> torch.Tensor:
        return torch.zeros((n_rows, len(self.columns)), dtype=torch.float32)

    def probe_values(self) -> list:
        return list(self.mean_)

    def onnx_invalid_rows(self, x: torch.Tensor) -> torch.Tensor:
        """Rows with a NaN or infinite value: the graph cannot raise as ``predict_proba`` does."""
        return ~torch.isfinite(x).all(dim=1, keepdim=True)


register_column_kind(CategoricalColumns)
register_column_kind(ContinuousColumns)
