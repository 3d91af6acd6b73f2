"""Frames besides pandas: polars and pyarrow inputs, seen as pandas objects.

skmtl reads ``X`` and ``y`` as pandas objects or numpy arrays: a pandas
DataFrame's dtypes say which columns are categorical, its column names become
``feature_names_in_`` or the task names. The other frames scikit-learn
recognises, a polars DataFrame or Series and a pyarrow Table or RecordBatch,
are converted once, where they enter, into pandas objects with the same names,
so that everything after (scikit-learn's feature-name checks, the name-keyed
parameters, the column kinds) treats them as it treats pandas. The user's
object is never modified.

Neither library is imported here: an object is recognised through the modules
already loaded, as scikit-learn does (a polars frame exists only once polars
is imported). A polars frame is converted column by column through numpy,
without pyarrow (which polars' own ``to_pandas`` needs):

- ``Categorical`` and ``Enum``: pandas ``category`` (an Enum keeps its
  categories), null -> missing;
- ``String``: pandas strings, null -> missing;
- ``Boolean``: ``bool``, or ``object`` (True, False, None) with nulls, as
  pandas builds it from such a list;
- integers: numpy integers, or pandas' nullable ``Int``/``UInt`` dtypes with
  nulls (integer labels stay integers);
- floats: numpy floats, null -> NaN;
- ``Null`` (no value at all): ``object`` of None;
- other dtypes: what ``Series.to_numpy`` gives (dates and durations as
  ``datetime64``/``timedelta64``, which the continuous columns refuse;
  nested values as Python objects).

A pyarrow Table is converted by pyarrow's own ``to_pandas`` (pyarrow is there
whenever such a table is), except that integer columns with nulls become
nullable integers there too (pyarrow would make them floats).
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd

__all__ = ["as_pandas"]


def as_pandas(data):
    """``data`` as a pandas object when it is a polars or pyarrow frame, else ``data`` itself.

    Parameters
    ----------
    data : object
        ``X`` or ``y`` as the user passed it.

    Returns
    -------
    data : pandas.DataFrame, pandas.Series or object
        A DataFrame for a polars DataFrame and a pyarrow Table or RecordBatch
        (same column names), a Series for a polars Series (named after it;
        polars' default empty name becomes no name); anything else unchanged.

    Raises
    ------
    TypeError
        For a polars LazyFrame (it holds no data until collected) and a
        polars column whose values numpy cannot hold.
    """
    pl = sys.modules.get("polars")
    if pl is not None:
        if isinstance(data, pl.DataFrame):
            return pd.DataFrame(
                {name: _polars_values(data.get_column(name)) for name in data.columns},
                copy=False,
            )
        if isinstance(data, pl.Series):
            return pd.Series(_polars_values(data), name=data.name or None, copy=False)
        if isinstance(data, pl.LazyFrame):
            raise TypeError(
                "A polars LazyFrame holds no data until it is collected; pass "
                "frame.collect() instead."
            )
    pa = sys.modules.get("pyarrow")
    if pa is not None and isinstance(data, (pa.Array, pa.ChunkedArray)):  # e.g. a y column
        if pa.types.is_integer(data.type) and data.null_count:
            # pyarrow makes them floats; integer labels stay integers, as from a Table
            return pd.Series(_nullable_integers(data.fill_null(0), data.is_null()), copy=False)
        return pd.Series(data.to_pandas(), copy=False)
    if pa is not None and isinstance(data, (pa.Table, pa.RecordBatch)):
        frame = data.to_pandas()
        # The frame's columns are the table's but its pandas index columns (to_pandas makes
        # them the index again), in order.
        index = {c for c in (data.schema.pandas_metadata or {}).get("index_columns", [])
                 if isinstance(c, str)}
        kept = [j for j, name in enumerate(data.column_names) if name not in index]
        for position, j in enumerate(kept):
            values = data.column(j)
            if pa.types.is_integer(values.type) and values.null_count:
                # pyarrow makes them floats; integer labels stay integers, as from polars
                frame.isetitem(position, _nullable_integers(values.fill_null(0), values.is_null()))
        return frame
    return data


def _nullable_integers(filled, missing) -> pd.arrays.IntegerArray:
    """A nullable pandas integer array: ``filled`` (nulls replaced) where not ``missing``."""
    return pd.arrays.IntegerArray(np.asarray(filled), np.asarray(missing, dtype=bool))


def _polars_values(series):
    """One polars column as a numpy array or pandas array (see the module docstring)."""
    pl = sys.modules["polars"]
    dtype = series.dtype
    if isinstance(dtype, pl.Enum):  # codes index the declared categories
        codes = series.to_physical().cast(pl.Int64).fill_null(-1).to_numpy()
        return pd.Categorical.from_codes(codes, categories=dtype.categories.to_list())
    if dtype == pl.Categorical:
        return pd.Categorical(series.to_numpy())
    if dtype == pl.Null:
        return np.full(len(series), None, dtype=object)
    if dtype.is_integer():
        if dtype in (getattr(pl, "Int128", None), getattr(pl, "UInt128", None)):
            raise TypeError(
                f"Column {series.name!r} has polars dtype {dtype}, which numpy cannot hold; "
                "cast it first (e.g. to Int64 or Float64)."
            )
        if series.null_count():
            return _nullable_integers(series.fill_null(0).to_numpy(), series.is_null().to_numpy())
        return series.to_numpy()
    values = series.to_numpy()
    if values.ndim != 1:  # e.g. structs and arrays: one Python object per row
        values = np.empty(len(series), dtype=object)
        for i, value in enumerate(series.to_list()):
            values[i] = value
    return values


_KINDS = {"string": "strings", "bytes": "bytes", "integer": "numbers", "floating": "numbers",
          "mixed-integer-float": "numbers", "decimal": "numbers", "boolean": "numbers"}


def value_kinds(values) -> set[str]:
    """The kinds of the non-missing values: "strings", "bytes", "numbers" (bools are numbers).

    Values of different kinds never match each other as categories or labels
    (``'7'`` is not ``7``, ``b'a'`` is not ``'a'``); bools match 0 and 1.
    Other values (dates, mixtures with other objects) are "other".
    """
    inferred = pd.api.types.infer_dtype(values, skipna=True)
    if inferred == "empty":
        return set()
    if inferred in _KINDS:
        return {_KINDS[inferred]}
    kinds = {_KINDS.get(pd.api.types.infer_dtype([v]), "other")
             for v in pd.Series(np.asarray(values, dtype=object)).dropna()}
    return kinds
