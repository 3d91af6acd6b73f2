"""Blocks for columns whose cells are lists of categories: pooled bags and target attention.

A *sequence column* holds, in each row, a list of categories of variable
length (a user's last clicked items, an item's tags). It arrives as padded
integer codes: ``0`` is the table's unknown row, ``1..K-1`` its learnt
categories and ``-1`` padding, which never counts. Columns of single
categories may share a table with sequence columns (an item id and the history
of item ids): they then read the same parameter tensor.

Shapes: ``B`` batch, ``L`` codes of one column, ``C`` copies, ``D`` embedding
dimension.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .blocks import RandomBlock

POOLINGS = ("mean", "sum", "max", "attention")
"""How a sequence column's items become its token (``None`` marks a single-category column)."""

ATTENTION_HIDDEN = 32
"""Hidden units of the attention unit of every ``"attention"`` column."""

ATTENTION_WEIGHTS = ("softmax", "din")
"""How :class:`TargetAttention` turns its items' scores into weights."""


def _uniform(tensor: torch.Tensor, bound: float, generator: torch.Generator | None) -> None:
    with torch.no_grad():
        tensor.uniform_(-bound, bound, generator=generator)


def _exporting() -> bool:
    is_exporting = getattr(torch.compiler, "is_exporting", None)  # torch >= 2.5
    return (is_exporting is not None and is_exporting()) or torch.onnx.is_in_onnx_export()


def pool(weight: torch.Tensor, rows: torch.Tensor, items: torch.Tensor, pooling: str) -> torch.Tensor:
    """``embedding_bag``'s mean, sum or max by a gather and masked reductions.

    Shapes: weight (K, W), rows (B, L) indices, items (B, L) bool (False for
    padding) -> (B, W); an empty row gives zeros.
    """
    values = weight.index_select(0, rows.reshape(-1)).view(*rows.shape, weight.shape[1])
    inside = items.unsqueeze(-1)
    if pooling == "max":
        largest = values.masked_fill(~inside, -torch.inf).amax(dim=1)
        return torch.where(items.any(dim=1, keepdim=True), largest, torch.zeros_like(largest))
    total = (values * inside.to(values.dtype)).sum(dim=1)
    if pooling == "sum":
        return total
    count = items.sum(dim=1, keepdim=True).clamp(min=1).to(values.dtype)
    return total / count


class TargetAttention(nn.Module):
    """Target attention over a history, as in DIN (Zhou et al., KDD 2018).

    For a query ``q`` (the candidate item's embedding) and the history's item
    embeddings ``k_1..k_L``, each item gets the score
    ``s_i = v . sigmoid(W [q, k_i, q - k_i, q * k_i] + b) + c`` (one hidden
    layer of ``hidden`` units), and the output is ``sum_i w_i k_i`` over the
    items that are not padding, with weights

    - ``"softmax"``: ``w = softmax(s)`` over the items: a weighted mean of the
      history, whatever its length (an empty history gives zeros);
    - ``"din"``: ``w = s``, not normalised, as in the paper, so the output
      also grows with how much of the history relates to the candidate.

    On ``make_ad_funnel``'s histories of up to 50 items
    (``benchmarks/results/history_signal_latest.md``) the unnormalised weights
    lost to the model without the history when the history carried no signal,
    as sum pooling did, and the softmax did not. Padding positions get weight
    0: a history gives the same output however much padding follows it.

    Parameters
    ----------
    embedding_dim : int
        ``D``.
    hidden : int, default=ATTENTION_HIDDEN
        Hidden units of the unit that scores each item.
    n_copies : int, default=1
        ``C`` independent units, one per copy of the embeddings (side by side
        in the last axis of the inputs).
    weights : {"softmax", "din"}, default="din"
        How the scores become weights (see above). The block's default is the
        paper's; the estimators' ``attention_weights`` defaults to
        ``"softmax"`` and is passed on explicitly.

    Notes
    -----
    Shapes: query (B, C * D), keys (B, L, C * D), mask (B, L) bool (True for
    items) -> (B, C * D).
    """

    def __init__(self, embedding_dim: int, hidden: int = ATTENTION_HIDDEN, n_copies: int = 1,
                 weights: str = "din"):
        super().__init__()
        if weights not in ATTENTION_WEIGHTS:
            raise ValueError(f"Unknown attention weights {weights!r}; expected one of {ATTENTION_WEIGHTS}.")
        self.embedding_dim = int(embedding_dim)
        self.hidden = int(hidden)
        self.n_copies = int(n_copies)
        self.normalisation = weights
        c, d, h = self.n_copies, self.embedding_dim, self.hidden
        self.hidden_weight = nn.Parameter(torch.empty(c, 4 * d, h))
        self.hidden_bias = nn.Parameter(torch.empty(c, h))
        self.score_weight = nn.Parameter(torch.empty(c, h))
        self.score_bias = nn.Parameter(torch.empty(c))

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        # nn.Linear's bounds: fan-in 4D for the hidden layer, H for the score.
        _uniform(self.hidden_weight, 1.0 / math.sqrt(4 * self.embedding_dim), generator)
        _uniform(self.hidden_bias, 1.0 / math.sqrt(4 * self.embedding_dim), generator)
        _uniform(self.score_weight, 1.0 / math.sqrt(self.hidden), generator)
        _uniform(self.score_bias, 1.0 / math.sqrt(self.hidden), generator)

    def weights(self, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Each item's weight, 0 at padding: (B, L, C)."""
        batch, length = keys.shape[0], keys.shape[1]
        k = keys.view(batch, length, self.n_copies, self.embedding_dim)
        q = query.view(batch, 1, self.n_copies, self.embedding_dim).expand_as(k)
        features = torch.cat([q, k, q - k, q * k], dim=-1)  # (B, L, C, 4D)
        hidden = torch.sigmoid(torch.einsum("blcf,cfh->blch", features, self.hidden_weight)
                               + self.hidden_bias)
        scores = torch.einsum("blch,ch->blc", hidden, self.score_weight) + self.score_bias
        items = mask.unsqueeze(-1).to(scores.dtype)
        if self.normalisation == "softmax":
            # Padding scores at the lowest float: exp gives 0 next to any item; a history of
            # padding only gets equal weights, zeroed by the mask below.
            scores = scores.masked_fill(~mask.unsqueeze(-1), torch.finfo(scores.dtype).min)
            scores = torch.softmax(scores, dim=1)
        return scores * items

    def forward(self, query: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        batch, length = keys.shape[0], keys.shape[1]
        k = keys.view(batch, length, self.n_copies, self.embedding_dim)
        pooled = torch.einsum("blc,blcd->bcd", self.weights(query, keys, mask), k)
        return pooled.reshape(batch, self.n_copies * self.embedding_dim)

    def extra_repr(self) -> str:
        return (f"embedding_dim={self.embedding_dim}, hidden={self.hidden}, n_copies={self.n_copies}, "
                f"weights={self.normalisation!r}")


class SequenceEmbedding(RandomBlock):
    """Sequence columns and the single-category columns sharing their tables: one token each.

    Table ``t`` is one parameter, ``table_t``, of ``tables[t] + 1`` rows: row 0
    is its reserved unknown row, rows ``1..tables[t]-1`` its learnt
    categories, and the last row is padding (excluded from every pooling,
    never trained). Every column names its table, so columns that share a
    table (an item id and a history of item ids) read and train one tensor.
    Column ``k`` takes ``widths[k]`` consecutive codes of the input and
    becomes one token by its ``poolings[k]``:

    - ``None``: a single category (width 1), its table row;
    - ``"mean"``, ``"sum"``, ``"max"``: the mean, sum or elementwise maximum of
      its items' rows (:func:`torch.nn.functional.embedding_bag`, padding
      excluded; an empty list gives zeros);
    - ``"attention"``: :class:`TargetAttention` with the token of the
      single-category column ``queries[k]`` (of the same table) as query.

    While training, each category (single or inside a list, never padding) is
    replaced by its table's unknown row with probability ``unknown_rate``, as
    :class:`~skmtl.nn.blocks.CategoricalEmbedding` does.

    Parameters
    ----------
    tables : sequence of int
        Rows of each table: the unknown row and the learnt categories.
    column_tables : sequence of int
        The table of each column.
    widths : sequence of int
        Codes of each column in the input (1 for a single-category column).
    poolings : sequence of str or None
        Each column's pooling (see above).
    queries : sequence of int
        For an ``"attention"`` column, the position of its query column; -1
        for the others.
    embedding_dim : int
        ``D``.
    unknown_rate : float, default=0.0
        Training-time probability of mapping a category to its unknown row.
    n_copies : int, default=1
        ``C`` independent copies of every table and attention unit.
    attention_weights : {"softmax", "din"}, default="din"
        :class:`TargetAttention`'s weights (``"din"``, the default here, is
        what models described before the option was added were trained with).

    Notes
    -----
    Shapes: (B, sum(widths)) integer codes (int32 or int64), ``-1`` for
    padding -> tokens (B, n_columns, C * D).
    """

    def __init__(
        self,
        tables: Sequence[int],
        column_tables: Sequence[int],
        widths: Sequence[int],
        poolings: Sequence[str | None],
        queries: Sequence[int],
        embedding_dim: int,
        unknown_rate: float = 0.0,
        n_copies: int = 1,
        attention_weights: str = "din",
    ):
        super().__init__()
        self.tables = [int(k) for k in tables]
        self.column_tables = [int(t) for t in column_tables]
        self.widths = [int(w) for w in widths]
        self.poolings = list(poolings)
        self.queries = [int(q) for q in queries]
        self.embedding_dim = int(embedding_dim)
        self.unknown_rate = float(unknown_rate)
        self.n_copies = int(n_copies)
        self.n_tokens = len(self.widths)
        self._check()
        self.starts = [sum(self.widths[:k]) for k in range(self.n_tokens)]
        width = self.n_copies * self.embedding_dim
        for t, rows in enumerate(self.tables):
            self.register_parameter(f"table_{t}", nn.Parameter(torch.empty(rows + 1, width)))
        self.lookup_tables = tuple(f"table_{t}" for t in range(len(self.tables)))
        self.attention = nn.ModuleDict({
            str(k): TargetAttention(self.embedding_dim, n_copies=self.n_copies,
                                    weights=attention_weights)
            for k, pooling in enumerate(self.poolings) if pooling == "attention"
        })

    def _check(self) -> None:
        n = self.n_tokens
        if not (len(self.column_tables) == len(self.poolings) == len(self.queries) == n):
            raise ValueError("column_tables, widths, poolings and queries need one entry per column.")
        if any(k < 1 for k in self.tables) or any(not 0 <= t < len(self.tables) for t in self.column_tables):
            raise ValueError(f"Bad tables {self.tables} or column tables {self.column_tables}.")
        for k, (pooling, width, query) in enumerate(zip(self.poolings, self.widths, self.queries)):
            if pooling is not None and pooling not in POOLINGS:
                raise ValueError(f"Unknown pooling {pooling!r}; expected None or one of {POOLINGS}.")
            if width < 1 or (pooling is None and width != 1):
                raise ValueError(f"Column {k} has width {width}; a single category has width 1.")
            if (pooling == "attention") != (query >= 0):
                raise ValueError(f"Column {k}: an 'attention' column, and only it, names a query.")
            if query >= 0 and not (
                query < n and self.poolings[query] is None
                and self.column_tables[query] == self.column_tables[k]
            ):
                raise ValueError(
                    f"Column {k}'s query must be a single-category column of the same table."
                )

    def table(self, t: int) -> nn.Parameter:
        """Table ``t``, (tables[t] + 1, C * D); its last row is padding."""
        return getattr(self, f"table_{t}")

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        for t in range(len(self.tables)):
            weight = self.table(t)
            _uniform(weight, 1.0 / math.sqrt(self.embedding_dim), generator)
            with torch.no_grad():
                weight[-1].zero_()  # padding: never read into a token
        for unit in self.attention.values():
            unit.reset_parameters(generator)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        if self.training and self.unknown_rate > 0.0:
            drop = torch.rand(codes.shape, device=codes.device, generator=self.generator)
            codes = codes.masked_fill((drop < self.unknown_rate) & (codes > 0), 0)
        tokens: list[torch.Tensor | None] = [None] * self.n_tokens
        for k in range(self.n_tokens):  # single categories first: they are the queries
            if self.poolings[k] is None:
                weight = self.table(self.column_tables[k])
                tokens[k] = weight.index_select(0, codes[:, self.starts[k]])
        for k, pooling in enumerate(self.poolings):
            if pooling is None:
                continue
            weight = self.table(self.column_tables[k])
            part = codes[:, self.starts[k]: self.starts[k] + self.widths[k]]
            items = part >= 0
            padding = weight.shape[0] - 1
            rows = torch.where(items, part, torch.full_like(part, padding))
            if pooling == "attention":
                keys = weight.index_select(0, rows.reshape(-1)).view(*rows.shape, weight.shape[1])
                tokens[k] = self.attention[str(k)](tokens[self.queries[k]], keys, items)
            elif _exporting():  # the exporters turn embedding_bag into a loop over the rows
                tokens[k] = pool(weight, rows, items, pooling)
            else:
                tokens[k] = F.embedding_bag(rows, weight, mode=pooling, padding_idx=padding)
        return torch.stack(tokens, dim=1)

    def extra_repr(self) -> str:
        return (
            f"tables={self.tables}, column_tables={self.column_tables}, widths={self.widths}, "
            f"poolings={self.poolings}, embedding_dim={self.embedding_dim}, "
            f"unknown_rate={self.unknown_rate}"
        )
