"""Sequence and multi-hot columns: cells that are lists of categories, and shared tables.

A *sequence column* holds in each row a list of categories of variable length
(a user's last clicked item ids, an item's tags): a list, tuple or 1-D array
per cell in a pandas object column (or a numpy object array), a pyarrow list
column (``pd.ArrowDtype(pa.list_(...))``), or a polars ``List``/``Array``
column. A missing cell (None, NaN) is an empty list; a missing value inside a
list is an unknown item. Columns are declared, never guessed from their cells
(the estimators' ``sequence_features``).

Columns may share one vocabulary and one embedding table (``shared_embeddings``,
e.g. an item id column and a history of item ids): a column of single
categories in such a group joins this kind, whose module reads the group's
table for both. :class:`SequenceColumns` is the column kind
(:mod:`skmtl._column_kinds`); :func:`sequence_columns` builds it from the
estimators' parameters.

Encoding: each sequence column becomes ``width`` int32 codes per row, the
LAST ``width`` items of its list (the most recent, when lists are in time
order) in their order, followed by ``-1`` padding; a single category is one
code. Codes are ``1 + position`` in the table's vocabulary, 0 for the unknown
row (unseen, rarer than ``min_frequency``, missing).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from itertools import chain
from numbers import Integral

import numpy as np
import pandas as pd
import torch

from ._column_kinds import (
    EXACT_INTEGERS,
    ColumnKind,
    FitContext,
    OnnxColumn,
    category_counts,
    category_lookup,
    check_declared_kind,
    column,
    declared_vocabulary,
    encode_column,
    learnt_vocabulary,
    onnx_category_codes,
    register_column_kind,
    sum_counts,
)
from .nn.sequence import POOLINGS, SequenceEmbedding

__all__ = [
    "SequenceColumns", "changed_sequence_layout", "check_no_list_cells", "list_items", "sequence_columns",
]

DEFAULT_MAX_SEQUENCE_LENGTH = 20
"""Items kept per list (the estimators' ``max_sequence_length``)."""

_LIST_CELLS = (list, tuple, np.ndarray)


# ------------------------------------------------------------------- cells
def _arrow_list_type(dtype):
    """The pyarrow list type of a pandas ``ArrowDtype`` list column, else None."""
    pa = sys.modules.get("pyarrow")
    if pa is None or not isinstance(dtype, pd.ArrowDtype):
        return None
    arrow = dtype.pyarrow_dtype
    return arrow if _is_arrow_list(pa, arrow) else None


def _is_arrow_list(pa, arrow_type) -> bool:
    lists = (pa.types.is_list, pa.types.is_large_list, pa.types.is_fixed_size_list)
    return any(is_list(arrow_type) for is_list in lists)


def list_items(values, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Every item of a column of list cells, in order, and the length of each cell.

    Parameters
    ----------
    values : pandas.Series or ndarray of shape (n_samples,)
        The cells: lists, tuples or 1-D arrays; None or NaN for an empty list.
    name : str
        The column's name in messages.

    Returns
    -------
    items : ndarray of shape (sum(lengths),)
        Numeric when every item is a number (NaN for missing items), else object.
    lengths : ndarray of int64 of shape (n_samples,)
    """
    if isinstance(values, pd.Series) and _arrow_list_type(values.dtype) is not None:
        import pyarrow.compute as pc

        pa = sys.modules["pyarrow"]
        lists = values.array.__arrow_array__()
        if _is_arrow_list(pa, lists.type.value_type):
            raise ValueError(_nested_message(name))
        lengths = pc.list_value_length(lists).fill_null(0).to_numpy().astype(np.int64)
        flat = pc.list_flatten(lists)
        if pa.types.is_dictionary(flat.type):  # its values (to_numpy reads a null's index)
            flat = flat.cast(flat.type.value_type)
        if pa.types.is_integer(flat.type) and flat.null_count:
            # to_numpy() would give float64, inexact above 2**53: the integers as they
            # are, None where an item is missing.
            missing = flat.is_null().to_numpy(zero_copy_only=False)
            items = flat.fill_null(0).to_numpy().astype(object)
            items[missing] = None
            return items, lengths
        return flat.to_numpy(zero_copy_only=False), lengths
    cells = values.to_numpy(dtype=object) if isinstance(values, pd.Series) else np.asarray(values, dtype=object)
    present = ~pd.isna(cells)
    lists = cells[present]
    bad = [c for c in lists[:1000] if not _is_list_cell(c)]
    if bad or not all(_is_list_cell(c) for c in lists):
        bad = bad or [c for c in lists if not _is_list_cell(c)]
        raise ValueError(
            f"Sequence column {name} holds {bad[0]!r} ({type(bad[0]).__name__}); its cells must "
            "be lists, tuples or 1-D arrays of categories (None or NaN for an empty list)."
        )
    lengths = np.zeros(len(cells), dtype=np.int64)
    lengths[present] = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
    arrays = len(lists) and all(isinstance(c, np.ndarray) and c.ndim == 1 for c in lists)
    if arrays and len({c.dtype for c in lists if len(c)}) <= 1:
        # One item type (empty cells aside: np.array([]) is float64 whatever the column
        # holds, and concatenating would cast every item to it).
        items = np.concatenate([c for c in lists if len(c)] or [np.array([])])
    else:
        items = np.fromiter(chain.from_iterable(lists), dtype=object, count=int(lengths.sum()))
    if items.dtype == object and any(isinstance(i, _LIST_CELLS) for i in items):
        raise ValueError(_nested_message(name))
    return _typed(items), lengths


def _nested_message(name: str) -> str:
    return (f"Sequence column {name} holds nested lists or arrays; its cells must be flat lists, "
            "tuples or 1-D arrays of categories.")


def _is_list_cell(cell) -> bool:
    """A list or tuple, or a 1-D array (a 0-d array is one value, not a list)."""
    return isinstance(cell, _LIST_CELLS) and not (isinstance(cell, np.ndarray) and cell.ndim != 1)


def _typed(items: np.ndarray) -> np.ndarray:
    """Object items as int64, uint64, float64 or bool when they all are such (NaN kept as missing).

    Integers stay objects where no such type holds them exactly: beyond the
    64-bit range, or beside missing items (which only float64 could mark) when
    a magnitude exceeds ``2**53``, float64's exact integers.
    """
    if items.dtype != object or items.size == 0:
        return items
    inferred = pd.api.types.infer_dtype(items, skipna=False)
    if inferred == "integer":
        for dtype in (np.int64, np.uint64):
            try:
                return items.astype(dtype)
            except OverflowError:
                pass
        return items
    if inferred == "mixed-integer-float":
        present = items[~pd.isna(items)]
        if any(isinstance(i, Integral) and abs(int(i)) > EXACT_INTEGERS for i in present):
            return items
        return items.astype(np.float64)
    if inferred == "floating":
        return items.astype(np.float64)
    if inferred == "boolean":
        return items.astype(bool)
    return items


def _is_list_column(values) -> bool:
    """Whether a column's first present cell is a list (or its dtype a pyarrow list)."""
    if isinstance(values, pd.Series):
        if _arrow_list_type(values.dtype) is not None:
            return True
        if values.dtype != object:
            return False
        values = values.to_numpy()
    elif getattr(values, "dtype", None) != object:
        return False
    present = np.flatnonzero(~pd.isna(values))
    return bool(present.size) and isinstance(values[present[0]], _LIST_CELLS)


def check_no_list_cells(X, columns, column_name) -> None:
    """Refuse columns of list cells that were not declared as sequence columns.

    Only object and pyarrow list columns are looked at, each by its first
    present cell.
    """
    for j in columns:
        if _is_list_column(column(X, j)):
            raise ValueError(
                f"Column {column_name(j)} holds lists; declare it in sequence_features to embed "
                "its items (see the user guide's 'Sequence and multi-hot columns')."
            )


def padded_codes(items_codes: np.ndarray, lengths: np.ndarray, width: int) -> np.ndarray:
    """The last ``width`` codes of every list, in order, then -1: int32 (n_samples, width)."""
    kept = np.minimum(lengths, width)
    ends = np.cumsum(lengths)
    first = np.repeat(ends - kept, kept)  # where each row's kept items start in the flat codes
    position = np.arange(int(kept.sum())) - np.repeat(np.cumsum(kept) - kept, kept)
    out = np.full((len(lengths), width), -1, dtype=np.int32)
    out[np.repeat(np.arange(len(lengths)), kept), position] = items_codes[first + position]
    return out


# ------------------------------------------------------------------ the kind
class SequenceColumns(ColumnKind):
    """Sequence columns and the single-category columns that share their tables.

    Each table has one vocabulary, learnt from the values of all its columns
    together (every item of every list counts once; ``min_frequency`` and
    ``max_categories`` apply to those counts; in a data-parallel fit the
    counts of all processes are summed first), or declared (``partial_fit``'s
    ``categories`` for any of its columns: their union). See the module
    docstring for the encoding and :class:`~skmtl.nn.sequence.SequenceEmbedding`
    for the embedding.

    Parameters
    ----------
    columns : array-like of int
        Positions in ``X`` of the kind's columns.
    widths : list of int
        Codes per row of each column: the items kept of a sequence column,
        1 for a single-category column.
    poolings : list of str or None
        Each column's pooling (``"mean"``, ``"sum"``, ``"max"``,
        ``"attention"``), None for a single-category column.
    tables : list of int
        The table of each column.
    queries : list of int
        For an ``"attention"`` column, the position (in ``columns``) of its
        query column; -1 for the others.
    min_frequency : int, default=1
    max_categories : int or None, default=None
        As for categorical columns, per table.

    Attributes
    ----------
    vocabularies_ : list of pandas.Index
        The sorted learnt categories of each table.
    """

    name = "sequence"
    exports_to_onnx = True

    def __init__(self, columns=(), widths=(), poolings=(), tables=(), queries=(), min_frequency=1,
                 max_categories=None):
        super().__init__(columns)
        self.widths = [int(w) for w in widths]
        self.poolings = list(poolings)
        self.tables = [int(t) for t in tables]
        self.queries = [int(q) for q in queries]
        self.min_frequency = min_frequency
        self.max_categories = max_categories

    @property
    def n_tables(self) -> int:
        return max(self.tables, default=-1) + 1

    def _table_name(self, t: int, column_name) -> str:
        return ", ".join(column_name(j) for j, s in zip(self.columns, self.tables) if s == t)

    def _values(self, X, k: int, name: str):
        """Column ``k``'s categories: ``(values, None)``, or ``(items, lengths)`` of a sequence."""
        values = column(X, self.columns[k])
        if self.poolings[k] is None:
            return values, None
        return list_items(values, name)

    def _counts(self, X, context: FitContext) -> list:
        """Category counts of each table without declared categories (None for the others)."""
        counts: list = [[] for _ in range(self.n_tables)]
        for k, (j, t) in enumerate(zip(self.columns, self.tables)):
            if not self._declared(t, context):
                counts[t].append(category_counts(self._values(X, k, context.column_name(j))[0]))
        return [sum_counts(parts) if parts else None for parts in counts]

    def _declared(self, t: int, context: FitContext) -> list:
        return [context.declared[j] for j, s in zip(self.columns, self.tables)
                if s == t and j in context.declared]

    def fit(self, X, context: FitContext) -> SequenceColumns:
        if not context.distributed:
            counts = self._counts(X, context)
        else:
            shards = context.group.share(lambda: self._counts(X, context))
            counts = [None if shards[0][t] is None else sum_counts([s[t] for s in shards])
                      for t in range(self.n_tables)]
        vocabularies = []
        for t, table_counts in enumerate(counts):
            name = self._table_name(t, context.column_name)
            declared = self._declared(t, context)
            if declared:
                vocabularies.append(declared_vocabulary(list(chain.from_iterable(declared)), name))
            else:
                vocabularies.append(
                    learnt_vocabulary(table_counts, self.min_frequency, self.max_categories, name)
                )
        self.vocabularies_ = vocabularies
        if context.declared and context.distributed:  # an error on one process stops all
            context.group.run(lambda: self._check_declared_kinds(X, context))
        elif context.declared:
            self._check_declared_kinds(X, context)
        return self

    def _check_declared_kinds(self, X, context: FitContext) -> None:
        """Declared categories of another kind than a table's values are refused."""
        for k, (j, t) in enumerate(zip(self.columns, self.tables)):
            if self._declared(t, context):
                name = context.column_name(j)
                check_declared_kind(self._values(X, k, name)[0], self.vocabularies_[t], name)

    def transform(self, X, context: FitContext) -> np.ndarray:
        """Codes, int32 of shape ``(n_samples, sum(widths))``, -1 for padding."""
        out = np.empty((X.shape[0], sum(self.widths)), dtype=np.int32)
        start = 0
        for k, (j, t, width) in enumerate(zip(self.columns, self.tables, self.widths)):
            values, lengths = self._values(X, k, context.column_name(j))
            codes = encode_column(values, self.vocabularies_[t])
            if lengths is None:
                out[:, start] = codes
            else:
                out[:, start:start + width] = padded_codes(np.asarray(codes), lengths, width)
            start += width
        return out

    def categories(self) -> dict:
        return {int(j): self.vocabularies_[t].to_numpy() for j, t in zip(self.columns, self.tables)}

    def embedding_args(self, values: Mapping) -> dict:
        args = {
            "tables": [len(v) + 1 for v in self.vocabularies_],
            "column_tables": list(self.tables),
            "widths": list(self.widths),
            "poolings": list(self.poolings),
            "queries": list(self.queries),
            "unknown_rate": float(values.get("category_dropout", 0.0)),
        }
        if "attention" in self.poolings:  # recorded where used; older descriptions mean "din"
            args["attention_weights"] = values.get("attention_weights", "softmax")
        return args

    @classmethod
    def make_embedding(cls, embedding_dim, n_copies, *, tables, column_tables, widths, poolings,
                       queries, unknown_rate=0.0, attention_weights="din"):
        return SequenceEmbedding(tables, column_tables, widths, poolings, queries, embedding_dim,
                                 unknown_rate, n_copies, attention_weights)

    def probe_values(self) -> list:
        return [None] * len(self.columns)  # unknown categories, empty lists

    # ONNX: a sequence column is an (N, width) input of its items (the kept ones, as in
    # the encoding) and an (N, 1) int64 input of their count, "<name>_length".
    def _lookups(self, names) -> list:
        return [category_lookup(self.vocabularies_[t], names[j]) for j, t in zip(self.columns, self.tables)]

    def onnx_columns(self, names) -> list[OnnxColumn]:
        out = []
        for k, (j, lookup) in enumerate(zip(self.columns, self._lookups(names))):
            if self.poolings[k] is None:
                out.append(OnnxColumn(names[j], int(j), lookup.kind, lookup.onnx_type))
            else:
                out.append(OnnxColumn(names[j], int(j), "sequence", lookup.onnx_type, self.widths[k]))
                out.append(OnnxColumn(length_input(names[j]), int(j), "sequence_length", "int64"))
        return out

    def onnx_feed(self, X, names) -> dict:
        codes = self.transform(X, FitContext(column_name=lambda j: repr(names[j])))
        feed, start = {}, 0
        for k, (j, lookup) in enumerate(zip(self.columns, self._lookups(names))):
            part = codes[:, start:start + self.widths[k]]
            start += self.widths[k]
            values = np.full(part.shape, lookup.missing, dtype=lookup.keys.dtype)
            known = part > 0
            values[known] = lookup.keys[part[known] - 1]
            feed[names[j]] = values
            if self.poolings[k] is not None:
                feed[length_input(names[j])] = (part >= 0).sum(axis=1, keepdims=True).astype(np.int64)
        return feed

    def onnx_encode(self, graph, names, output: str) -> None:
        parts = []
        for k, (j, lookup) in enumerate(zip(self.columns, self._lookups(names))):
            codes = graph.name(f"sequence_code_{k}")
            onnx_category_codes(graph, names[j], lookup, codes, f"sequence_{k}")
            if self.poolings[k] is not None:  # positions past the length are padding, -1
                positions = graph.const(f"sequence_positions_{k}",
                                        np.arange(self.widths[k], dtype=np.int64))
                inside, padded = graph.name(f"sequence_inside_{k}"), graph.name(f"sequence_padded_{k}")
                graph.node("Less", [positions, length_input(names[j])], [inside])
                graph.node("Where", [inside, codes, graph.const(f"sequence_padding_{k}",
                                                                np.full((), -1, dtype=np.int64))],
                           [padded])
                codes = padded
            parts.append(codes)
        graph.node("Concat", parts, [output], axis=1)

    def onnx_example(self, n_rows: int) -> torch.Tensor:
        return torch.zeros((n_rows, sum(self.widths)), dtype=torch.long)


register_column_kind(SequenceColumns)


def with_din_attention(network):
    """A network description written before ``attention_weights``, with DIN's weights recorded.

    Sequence entries with an ``"attention"`` pooling and no ``attention_weights``
    get ``"din"`` (what such models were trained with), so that the description
    matches the one the loaded estimator's parameters give (``partial_fit``,
    ``warm_start``). Anything else is returned as it is.
    """
    embeddings = network.get("embeddings") if isinstance(network, dict) else None
    if not isinstance(embeddings, list):
        return network
    upgraded = [
        {**entry, "attention_weights": "din"}
        if isinstance(entry, dict) and entry.get("kind") == "sequence"
        and "attention" in (entry.get("poolings") or ()) and "attention_weights" not in entry
        else entry
        for entry in embeddings
    ]
    return {**network, "embeddings": upgraded}


def length_input(name: str) -> str:
    """The ONNX input holding the lengths of sequence column ``name``."""
    return f"{name}_length"


# --------------------------------------------------- from the estimator's parameters
def sequence_columns(
    params: Mapping, n_features: int, feature_names, is_categorical, column_name,
) -> SequenceColumns | None:
    """The sequence kind the estimator's parameters describe (None: they describe none).

    Parameters
    ----------
    params : mapping
        The estimator's ``get_params()``: ``sequence_features``,
        ``sequence_pooling``, ``attention_queries``, ``max_sequence_length``,
        ``shared_embeddings``, ``categorical_features``, ``min_frequency``,
        ``max_categories``.
    n_features : int
    feature_names : ndarray of str or None
    is_categorical : ndarray of bool
        The categorical columns ``categorical_features`` resolves to.
    column_name : callable
        ``column_name(j)`` in messages.
    """
    find = _ColumnFinder(n_features, feature_names)
    sequences = find.all(params["sequence_features"], "sequence_features")
    groups = _shared_groups(params["shared_embeddings"], find)
    if not sequences and not groups:
        if params["attention_queries"] or isinstance(params["sequence_pooling"], dict):
            raise ValueError(
                "sequence_pooling as a dict and attention_queries need sequence_features."
            )
        return None
    if not isinstance(params["categorical_features"], str):
        both = [column_name(j) for j in sequences if is_categorical[j]]
        if both:
            raise ValueError(
                f"Column(s) {', '.join(both)} are named in both categorical_features and "
                "sequence_features; a column is one or the other."
            )
    columns = sorted({*sequences, *chain.from_iterable(groups)})
    table_of = {j: t for t, group in enumerate(groups) for j in group}
    for j in columns:  # a sequence column outside every group gets a table of its own
        if j not in table_of:
            table_of[j] = len(set(table_of.values()))
    poolings = _poolings(params, sequences, find)
    widths = _widths(params["max_sequence_length"], sequences, find)
    queries = {}
    for key, query_key in (params["attention_queries"] or {}).items():
        j, q = find.one(key, "attention_queries"), find.one(query_key, "attention_queries")
        if j not in sequences:
            raise ValueError(f"attention_queries names {key!r}, which is not a sequence column.")
        if q in sequences or table_of.get(q) != table_of[j]:
            raise ValueError(
                f"attention_queries pairs {key!r} with {query_key!r}: the query must be a column "
                f"of single categories sharing {key!r}'s table; add [{query_key!r}, {key!r}] to "
                "shared_embeddings."
            )
        queries[j] = q
    for j in queries:
        if isinstance(params["sequence_pooling"], dict) and j in poolings:
            raise ValueError(
                f"Column {column_name(j)} is pooled by attention (attention_queries) and also "
                "named in sequence_pooling."
            )
        poolings[j] = "attention"
    position = {j: k for k, j in enumerate(columns)}
    # Tables numbered in the order of their first column.
    order = {t: n for n, t in enumerate(dict.fromkeys(table_of[j] for j in columns))}
    return SequenceColumns(
        columns,
        widths=[widths.get(j, 1) for j in columns],
        poolings=[poolings.get(j, "mean") if j in sequences else None for j in columns],
        tables=[order[table_of[j]] for j in columns],
        queries=[position[queries[j]] if j in queries else -1 for j in columns],
        min_frequency=params["min_frequency"],
        max_categories=params["max_categories"],
    )


def _layout(kind: SequenceColumns | None) -> dict | None:
    """What the parameters decide about a sequence kind (not what it learns)."""
    if kind is None:
        return None
    return {"columns": kind.columns.tolist(), "widths": kind.widths, "poolings": kind.poolings,
            "tables": kind.tables, "queries": kind.queries}


def changed_sequence_layout(params: Mapping, encoder, feature_names) -> list[tuple[str, object, object]]:
    """``[("sequence columns", fitted, wanted)]`` when the parameters now describe others, else []."""
    fitted = next((kind for kind in encoder.kinds if isinstance(kind, SequenceColumns)), None)
    wanted = sequence_columns(params, encoder.n_features, feature_names, encoder.is_categorical,
                              encoder.feature_name)
    before, after = _layout(fitted), _layout(wanted)
    return [] if before == after else [("sequence columns", before, after)]


class _ColumnFinder:
    """Columns of X named by index or by name, as categorical_features names them."""

    def __init__(self, n_features: int, feature_names):
        self.n_features = n_features
        self.names = [str(n) for n in feature_names] if feature_names is not None else []

    def one(self, key, parameter: str) -> int:
        if isinstance(key, Integral) and not isinstance(key, bool) and 0 <= key < self.n_features:
            return int(key)
        if isinstance(key, str) and key in self.names:
            return self.names.index(key)
        raise ValueError(
            f"{parameter} names {key!r}, which is not a column of X (columns: "
            f"{self.names or list(range(self.n_features))})."
        )

    def all(self, keys, parameter: str) -> list[int]:
        if keys is None:
            return []
        if isinstance(keys, (str, Integral)):
            keys = [keys]
        found = [self.one(key, parameter) for key in keys]
        if len(set(found)) != len(found):
            raise ValueError(f"{parameter} names a column twice: {list(keys)!r}.")
        return found


def _shared_groups(shared_embeddings, find: _ColumnFinder) -> list[list[int]]:
    if shared_embeddings is None:
        return []
    groups, seen = [], set()
    for group in shared_embeddings:
        if isinstance(group, (str, Integral)) or len(group) < 2:
            raise ValueError(
                "shared_embeddings is a list of groups of at least two columns, e.g. "
                f"[['item_id', 'history']]; got {shared_embeddings!r}."
            )
        columns = find.all(group, "shared_embeddings")
        if seen & set(columns):
            raise ValueError(f"shared_embeddings puts a column in two groups: {shared_embeddings!r}.")
        seen |= set(columns)
        groups.append(columns)
    return groups


def _poolings(params: Mapping, sequences: list[int], find: _ColumnFinder) -> dict[int, str]:
    """The pooling of every sequence column named in a ``sequence_pooling`` dict (others: mean)."""
    pooling = params["sequence_pooling"]
    if isinstance(pooling, str):
        return dict.fromkeys(sequences, pooling)
    out = {}
    for key, value in pooling.items():
        j = find.one(key, "sequence_pooling")
        if j not in sequences:
            raise ValueError(f"sequence_pooling names {key!r}, which is not a sequence column.")
        if value not in POOLINGS[:3]:
            raise ValueError(
                f"sequence_pooling[{key!r}] must be one of {list(POOLINGS[:3])} (attention is "
                f"declared with attention_queries); got {value!r}."
            )
        out[j] = value
    return out


def _widths(max_length, sequences: list[int], find: _ColumnFinder) -> dict[int, int]:
    if not isinstance(max_length, Mapping):
        return dict.fromkeys(sequences, int(max_length))
    widths = dict.fromkeys(sequences, DEFAULT_MAX_SEQUENCE_LENGTH)
    for key, value in max_length.items():
        j = find.one(key, "max_sequence_length")
        if j not in sequences:
            raise ValueError(f"max_sequence_length names {key!r}, which is not a sequence column.")
        if not isinstance(value, Integral) or isinstance(value, bool) or value < 1:
            raise ValueError(f"max_sequence_length[{key!r}] must be an integer >= 1; got {value!r}.")
        widths[j] = int(value)
    return widths
