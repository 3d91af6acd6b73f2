"""Small PyTorch building blocks shared by every architecture.

Every block creates its parameters with ``torch.empty`` and initialises them in
``reset_parameters(generator)``, so building a model never draws from torch's
global random number generator: the estimator passes an explicit
``torch.Generator`` seeded from ``random_state``. Blocks that draw random numbers
while training (dropout, unknown-category dropout) read them from the generator
stored in their ``generator`` attribute; the training loop sets it for the
duration of ``fit`` (see :func:`attach_generator`).

Shapes are named in the docstrings: ``B`` batch, ``G`` groups (experts or
tasks), ``F`` features, ``D`` embedding dimension.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from .sparse import SparseRows, dense

_ACTIVATIONS = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "silu": nn.SiLU,
}


def make_activation(name: str) -> nn.Module:
    """Return a fresh activation module for ``name`` (relu, gelu, tanh, silu)."""
    try:
        return _ACTIVATIONS[name]()
    except KeyError:
        raise ValueError(
            f"Unknown activation {name!r}; expected one of {sorted(_ACTIVATIONS)}."
        ) from None


def _uniform_(tensor: torch.Tensor, bound: float, generator: torch.Generator | None) -> None:
    with torch.no_grad():
        tensor.uniform_(-bound, bound, generator=generator)


def _input_mask(mask, n_groups: int, in_features: int) -> torch.Tensor:
    """``mask`` as a float (G, in) tensor of 0/1, checked."""
    mask = torch.as_tensor(mask, dtype=torch.float32)
    if mask.shape != (n_groups, in_features):
        raise ValueError(
            f"input_mask must have shape {(n_groups, in_features)}; got {tuple(mask.shape)}."
        )
    return mask


class RandomBlock(nn.Module):
    """Base for blocks that draw random numbers while training.

    ``generator`` is a plain attribute (not state): it is set by the training
    loop and never pickled. When it is ``None`` the block falls back to torch's
    global generator, as plain PyTorch modules do.
    """

    generator: torch.Generator | None = None

    def __getstate__(self):
        state = super().__getstate__().copy()
        state.pop("generator", None)
        return state


def attach_generator(module: nn.Module, generator: torch.Generator | None) -> None:
    """Make every :class:`RandomBlock` inside ``module`` draw from ``generator``."""
    for block in module.modules():
        if isinstance(block, RandomBlock):
            block.generator = generator


class Dropout(RandomBlock):
    """Inverted dropout whose masks come from an explicit generator.

    Parameters
    ----------
    p : float
        Probability of zeroing an element, in [0, 1).
    """

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = float(p)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.generator is None:
            return F.dropout(x, self.p, training=True)
        keep = torch.empty_like(x).bernoulli_(1.0 - self.p, generator=self.generator)
        return x * keep / (1.0 - self.p)

    def extra_repr(self) -> str:
        return f"p={self.p}"


class CategoricalEmbedding(RandomBlock):
    """One embedding table per categorical column, looked up by one gather.

    Column ``j`` with ``cardinalities[j]`` rows gets its own table; row 0 of
    every table is the reserved *unknown* row (unseen, rare or missing
    categories). The tables are stored as one matrix with per-column offsets so
    the lookup is a single gather. While training, each value is replaced by
    the unknown row with probability ``unknown_rate``, so that row learns a
    sensible "average" embedding for categories never seen in training.

    Parameters
    ----------
    cardinalities : sequence of int
        Number of rows of each table, unknown row included.
    embedding_dim : int
        ``D``.
    unknown_rate : float, default=0.0
        Training-time probability of mapping a value to row 0.
    n_copies : int, default=1
        ``C`` independent copies of every table, side by side in one row.

    Notes
    -----
    Shapes: (B, F_cat) integer codes (int32 or int64) -> tokens (B, F_cat, C * D).
    """

    lookup_tables = ("weight",)
    """Parameters read a few rows at a time: no L2 penalty, not counted as dense work."""

    def __init__(
        self,
        cardinalities: Sequence[int],
        embedding_dim: int,
        unknown_rate: float = 0.0,
        n_copies: int = 1,
    ):
        super().__init__()
        self.cardinalities = [int(c) for c in cardinalities]
        self.embedding_dim = int(embedding_dim)
        self.unknown_rate = float(unknown_rate)
        self.n_tokens = len(self.cardinalities)
        offsets = [0]
        for c in self.cardinalities[:-1]:
            offsets.append(offsets[-1] + c)
        self.register_buffer("offsets", torch.tensor(offsets, dtype=torch.long), persistent=True)
        self.weight = nn.Parameter(torch.empty(sum(self.cardinalities), int(n_copies) * self.embedding_dim))

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        _uniform_(self.weight, 1.0 / math.sqrt(self.embedding_dim), generator)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        if self.training and self.unknown_rate > 0.0:
            drop = torch.rand(codes.shape, device=codes.device, generator=self.generator)
            codes = codes.masked_fill(drop < self.unknown_rate, 0)
        # index_select rather than F.embedding: same values, and its backward
        # (index_add_) is several times cheaper on CPU.
        rows = (codes + self.offsets).reshape(-1)
        return self.weight.index_select(0, rows).view(codes.shape[0], codes.shape[1], self.weight.shape[1])

    def extra_repr(self) -> str:
        return (
            f"cardinalities={self.cardinalities}, embedding_dim={self.embedding_dim}, "
            f"unknown_rate={self.unknown_rate}"
        )


class ContinuousEmbedding(nn.Module):
    """Standardised continuous column ``j`` becomes ``x_j * weight_j + bias_j``.

    Parameters
    ----------
    n_columns : int
        ``F_cont``.
    embedding_dim : int
        ``D``.
    n_copies : int, default=1
        ``C`` independent copies of every map, side by side.

    Notes
    -----
    Shapes: (B, F_cont) float32 -> tokens (B, F_cont, C * D).
    """

    def __init__(self, n_columns: int, embedding_dim: int, n_copies: int = 1):
        super().__init__()
        self.n_tokens = int(n_columns)
        self.embedding_dim = int(embedding_dim)
        width = int(n_copies) * self.embedding_dim
        self.weight = nn.Parameter(torch.empty(self.n_tokens, width))
        self.bias = nn.Parameter(torch.empty(self.n_tokens, width))

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        bound = 1.0 / math.sqrt(self.embedding_dim)
        _uniform_(self.weight, bound, generator)
        _uniform_(self.bias, bound, generator)

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        # (B, F_cont, 1) * (F_cont, C*D) + (F_cont, C*D) -> (B, F_cont, C*D)
        return torch.addcmul(self.bias, values.unsqueeze(-1), self.weight)

    def extra_repr(self) -> str:
        return f"n_columns={self.n_tokens}, embedding_dim={self.embedding_dim}"


class PeriodicEmbedding(nn.Module):
    """Periodic embedding (PLR) of standardised continuous columns.

    Following Gorishniy, Rubachev and Babenko, "On Embeddings for Numerical
    Features in Tabular Deep Learning" (NeurIPS 2022), column ``j`` has ``k``
    trainable frequencies ``c_j``; its value ``x`` becomes the periodic
    features ``[cos(2 pi c_j x), sin(2 pi c_j x)]`` (``2k`` values), then a
    linear map of its own and a ReLU into the ``D`` values of its token:
    ``relu([cos(2 pi c_j x), sin(2 pi c_j x)] @ W_j + b_j)``. The frequencies
    are drawn from ``N(0, sigma)`` by :meth:`reset_parameters` (never
    initialised as linear weights). A constant column (0 once standardised)
    gets the constant features ``cos(0) = 1``, ``sin(0) = 0``.

    Parameters
    ----------
    n_columns, embedding_dim : int
        ``F_cont`` columns in, ``D`` values per token out.
    n_frequencies : int, default=16
        ``k``, the frequencies of each column.
    sigma : float, default=0.5
        Standard deviation of the initial frequencies (in cycles per
        standard deviation of the column).
    n_copies : int, default=1
        ``C`` independent copies (frequencies and maps), side by side.

    Notes
    -----
    Shapes: (B, F_cont) float32 -> tokens (B, F_cont, C * D).
    """

    def __init__(
        self, n_columns: int, embedding_dim: int, n_frequencies: int = 16, sigma: float = 0.5,
        n_copies: int = 1,
    ):
        super().__init__()
        self.n_tokens = int(n_columns)
        self.embedding_dim = int(embedding_dim)
        self.n_frequencies = int(n_frequencies)
        self.sigma = float(sigma)
        if self.n_frequencies < 1 or not (math.isfinite(self.sigma) and self.sigma > 0):
            raise ValueError(
                "PeriodicEmbedding needs n_frequencies >= 1 and a finite sigma > 0; got "
                f"{n_frequencies!r} and {sigma!r}."
            )
        self.n_copies = int(n_copies)
        c, f, k, d = self.n_copies, self.n_tokens, self.n_frequencies, self.embedding_dim
        self.frequencies = nn.Parameter(torch.empty(c, f, k))
        self.weight = nn.Parameter(torch.empty(c, f, 2 * k, d))
        self.bias = nn.Parameter(torch.empty(c, f, d))

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        with torch.no_grad():
            self.frequencies.normal_(0.0, self.sigma, generator=generator)
        bound = 1.0 / math.sqrt(2 * self.n_frequencies)  # nn.Linear's, fan-in 2k
        _uniform_(self.weight, bound, generator)
        _uniform_(self.bias, bound, generator)

    def periodic_features(self, values: torch.Tensor) -> torch.Tensor:
        """``[cos(2 pi c x), sin(2 pi c x)]``: (B, F) -> (B, C, F, 2k)."""
        angles = (2 * math.pi) * values[:, None, :, None] * self.frequencies
        return torch.cat([torch.cos(angles), torch.sin(angles)], dim=-1)

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        features = self.periodic_features(values)
        tokens = torch.einsum("bcfk,cfkd->bfcd", features, self.weight)
        tokens = torch.relu(tokens + self.bias.transpose(0, 1))
        return tokens.reshape(values.shape[0], self.n_tokens, self.n_copies * self.embedding_dim)

    def extra_repr(self) -> str:
        return (
            f"n_columns={self.n_tokens}, embedding_dim={self.embedding_dim}, "
            f"n_frequencies={self.n_frequencies}, sigma={self.sigma}"
        )


class LinearPeriodicEmbedding(nn.Module):
    """Every column's linear map, plus a periodic embedding (PLR) on some of them.

    Column ``j``'s token is ``x_j * w_j + b_j`` (as in
    :class:`ContinuousEmbedding`), to which the columns listed in
    ``periodic_columns`` add their :class:`PeriodicEmbedding` token,
    ``relu([cos(2 pi c_j x_j), sin(2 pi c_j x_j)] @ W_j + b'_j)``. The linear
    term keeps the straight trend a plain map learns easily; the periodic one
    adds the irregular shape a linear map of one value cannot give (the
    numeric embeddings of Gorishniy, Rubachev and Babenko, NeurIPS 2022).

    With ``scaled=True`` each periodic token is multiplied, value by value,
    by a learnt scale that :meth:`reset_parameters` sets to 0 (as ReZero,
    Bachlechner et al. 2021, starts its residual branches): the fit starts
    from the linear network and the periodic term grows only where the
    gradient keeps pushing it.

    Parameters
    ----------
    n_columns, embedding_dim : int
        ``F_cont`` columns in, ``D`` values per token out.
    periodic_columns : sequence of int
        Positions (in ``0 .. F_cont - 1``, distinct) of the columns that also
        get a periodic term; may be empty.
    n_frequencies : int, default=16
        ``k``, the frequencies of each periodic column.
    sigma : float, default=0.5
        Standard deviation of the initial frequencies.
    n_copies : int, default=1
        ``C`` independent copies of every map, side by side.
    scaled : bool, default=True
        Multiply the periodic tokens by the zero-initialised ``periodic_scale``
        (one value per periodic column and token value); ``False`` adds them as
        they are (models saved before the scale existed).

    Notes
    -----
    Shapes: (B, F_cont) float32 -> tokens (B, F_cont, C * D).
    """

    def __init__(
        self, n_columns: int, embedding_dim: int, periodic_columns, n_frequencies: int = 16,
        sigma: float = 0.5, n_copies: int = 1, scaled: bool = True,
    ):
        super().__init__()
        self.n_tokens = int(n_columns)
        self.embedding_dim = int(embedding_dim)
        columns = [int(j) for j in periodic_columns]
        if len(set(columns)) != len(columns) or not all(0 <= j < self.n_tokens for j in columns):
            raise ValueError(
                f"periodic_columns must be distinct positions in 0..{self.n_tokens - 1}; "
                f"got {list(periodic_columns)!r}."
            )
        self.columns_with_periodic = tuple(columns)
        self.linear = ContinuousEmbedding(n_columns, embedding_dim, n_copies)
        self.periodic = PeriodicEmbedding(len(columns), embedding_dim, n_frequencies, sigma, n_copies)
        # Column j takes periodic token token_of_column[j]; len(columns) is a zero token.
        token_of_column = torch.full((self.n_tokens,), len(columns), dtype=torch.long)
        token_of_column[columns] = torch.arange(len(columns))
        self.register_buffer("periodic_columns", torch.tensor(columns, dtype=torch.long),
                             persistent=False)
        self.register_buffer("token_of_column", token_of_column, persistent=False)
        self.scaled = bool(scaled)
        self.periodic_scale = (
            nn.Parameter(torch.zeros(len(columns), n_copies * embedding_dim)) if self.scaled else None
        )

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        self.linear.reset_parameters(generator)
        self.periodic.reset_parameters(generator)
        if self.periodic_scale is not None:
            with torch.no_grad():
                self.periodic_scale.zero_()

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        tokens = self.linear(values)
        if not self.periodic.n_tokens:
            return tokens
        extra = self.periodic(values.index_select(1, self.periodic_columns))
        scale = getattr(self, "periodic_scale", None)  # None in pickles from before the scale
        if scale is not None:
            extra = extra * scale
        padded = torch.cat([extra, extra.new_zeros(extra.shape[0], 1, extra.shape[2])], dim=1)
        return tokens + padded.index_select(1, self.token_of_column)

    def extra_repr(self) -> str:
        return f"periodic_columns={list(self.columns_with_periodic)}, scaled={getattr(self, 'scaled', False)}"


def _bin_edges(edges) -> np.ndarray:
    """One column's edges as strictly increasing float32 (ties once rounded removed)."""
    edges = np.asarray(edges, dtype=np.float64).reshape(-1)
    if edges.size == 0 or not np.isfinite(edges).all() or (np.diff(edges) < 0).any():
        raise ValueError(
            f"Piecewise-linear bins must be non-empty, finite and sorted; got {edges.tolist()!r}."
        )
    return np.unique(edges.astype(np.float32))  # sorted, distinct


class PiecewiseLinearEmbedding(nn.Module):
    """Piecewise-linear encoding (PLE) of standardised continuous columns, then a linear map.

    Following Gorishniy, Rubachev and Babenko, "On Embeddings for Numerical
    Features in Tabular Deep Learning" (NeurIPS 2022): column ``j`` has bin
    edges ``b_0 < b_1 < ... < b_T`` (fitted as quantiles of the training
    rows, :class:`skmtl._column_kinds.ContinuousColumns`), and its value ``x``
    becomes the ``T`` values
    ``e_t = clip((x - b_{t-1}) / (b_t - b_{t-1}), 0, 1)`` for ``t = 1, ..., T``
    (plain text: the docs load no remote maths renderer), except that ``e_1`` is not clipped below and ``e_T`` not clipped above (so
    values outside the training range extrapolate linearly); the token is
    ``e @ W_j + b_j``. A column with a single edge ``b_0`` (constant in the
    training rows) has one component, ``x - b_0``. Columns with fewer bins
    than the widest one are padded with components that are always 0.

    Parameters
    ----------
    bins : sequence of sequence of float
        The edges of each column, sorted, in the units of the input (the
        standardised values); ties once rounded to float32 are dropped.
    embedding_dim : int
        ``D``.
    n_copies : int, default=1
        ``C`` independent copies of every map, side by side (the encoding is shared).

    Notes
    -----
    Shapes: (B, F_cont) float32 -> tokens (B, F_cont, C * D).
    """

    def __init__(self, bins, embedding_dim: int, n_copies: int = 1):
        super().__init__()
        edges = [_bin_edges(b) for b in bins]
        self.n_tokens = len(edges)
        self.embedding_dim = int(embedding_dim)
        self.n_bins = [max(len(e) - 1, 1) for e in edges]
        width_t = max(self.n_bins, default=1)
        # Built in numpy (float32), so that the module also builds on the meta device.
        left = np.zeros((self.n_tokens, width_t), dtype=np.float32)
        width = np.ones((self.n_tokens, width_t), dtype=np.float32)
        lower = np.zeros((self.n_tokens, width_t), dtype=np.float32)
        upper = np.zeros((self.n_tokens, width_t), dtype=np.float32)  # padding: clipped to [0, 0]
        for j, e in enumerate(edges):
            t = self.n_bins[j]
            left[j, :t] = e[:t]
            if len(e) > 1:
                width[j, :t] = np.diff(e)
            upper[j, :t] = 1.0
            lower[j, 0], upper[j, t - 1] = -np.inf, np.inf
        for name, value in (("left", left), ("width", width), ("lower", lower), ("upper", upper)):
            self.register_buffer(name, torch.tensor(value))
        self.weight = nn.Parameter(torch.empty(self.n_tokens, width_t, int(n_copies) * self.embedding_dim))
        self.bias = nn.Parameter(torch.empty(self.n_tokens, int(n_copies) * self.embedding_dim))

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        bound = 1.0 / math.sqrt(self.weight.shape[1])  # nn.Linear's, fan-in T
        _uniform_(self.weight, bound, generator)
        _uniform_(self.bias, bound, generator)

    def encode(self, values: torch.Tensor) -> torch.Tensor:
        """The piecewise-linear encoding: (B, F) -> (B, F, T)."""
        ratio = (values.unsqueeze(-1) - self.left) / self.width
        return torch.minimum(torch.maximum(ratio, self.lower), self.upper)

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        # (B, F, T) x (F, T, C*D) -> (B, F, C*D): one small matmul per column.
        return torch.einsum("bft,ftd->bfd", self.encode(values), self.weight) + self.bias

    def extra_repr(self) -> str:
        return f"n_bins={self.n_bins}, embedding_dim={self.embedding_dim}"


class JointProjection(nn.Module):
    """All standardised continuous columns projected together into a few tokens.

    One linear map from the ``F_cont`` values of a row to ``k`` tokens of
    ``D`` values, ``x @ W + b`` viewed as ``(k, D)``, instead of one token per
    column (:class:`ContinuousEmbedding`). The layers above then read ``k * D``
    inputs instead of ``F_cont * D``: the model's cost grows with the number of
    columns by the ``F_cont * k * D`` weights of this map only, however many
    experts and gates read its tokens. As a per-column linear embedding
    followed by the first layer of an expert or a gate is itself a linear map
    of the ``F_cont`` values, this block is that map factorised through
    ``k * D`` values shared by every expert and gate.

    The work is one matmul of the ``(B, F_cont)`` input by ``weight``
    (``(F_cont, k * C * D)``), bias fused; :meth:`project` takes any input
    ``torch.addmm`` takes; a :class:`~skmtl.nn.sparse.SparseRows` input (a sparse
    ``X``) goes through the same weights without being densified
    (:meth:`SparseRows.project <skmtl.nn.sparse.SparseRows.project>`).

    Parameters
    ----------
    n_columns : int
        ``F_cont``.
    n_tokens : int
        ``k``, the number of tokens out.
    embedding_dim : int
        ``D``.
    n_copies : int, default=1
        ``C`` independent copies of the map, side by side (one per task for
        models that share nothing).

    Notes
    -----
    Shapes: (B, F_cont) float32 -> tokens (B, k, C * D). Parameters:
    ``(F_cont + 1) * k * C * D``.
    """

    takes_sparse_rows = True  # FeatureEmbedding hands it SparseRows as they are

    def __init__(self, n_columns: int, n_tokens: int, embedding_dim: int, n_copies: int = 1):
        super().__init__()
        self.n_columns = int(n_columns)
        self.n_tokens = int(n_tokens)
        self.embedding_dim = int(embedding_dim)
        self.n_copies = int(n_copies)
        if self.n_columns < 1 or self.n_tokens < 1:
            raise ValueError(
                "JointProjection needs n_columns >= 1 and n_tokens >= 1; got "
                f"{n_columns!r} and {n_tokens!r}."
            )
        width = self.n_tokens * self.n_copies * self.embedding_dim
        self.weight = nn.Parameter(torch.empty(self.n_columns, width))
        self.bias = nn.Parameter(torch.empty(width))

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        bound = 1.0 / math.sqrt(self.n_columns)  # nn.Linear's, fan-in F_cont
        _uniform_(self.weight, bound, generator)
        _uniform_(self.bias, bound, generator)

    def project(self, values: torch.Tensor) -> torch.Tensor:
        """``values @ weight + bias``: (B, F_cont) -> (B, k * C * D)."""
        if isinstance(values, SparseRows):
            return values.project(self.weight, self.bias)
        return torch.addmm(self.bias, values, self.weight)

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        return self.project(values).view(values.shape[0], self.n_tokens, -1)

    def extra_repr(self) -> str:
        return (
            f"n_columns={self.n_columns}, n_tokens={self.n_tokens}, "
            f"embedding_dim={self.embedding_dim}"
        )


class FeatureEmbedding(nn.Module):
    """Embed every kind of column into tokens and flatten them into one vector.

    Each column kind has its own module (a *token embedding*) that maps that
    kind's input tensor to ``(B, n_tokens, C * D)``: ``n_tokens`` tokens of
    ``C`` side-by-side copies of ``D`` values. The tokens of all kinds are
    concatenated in the order of ``kinds`` and flattened.

    Parameters
    ----------
    kinds : mapping of str to nn.Module
        Token embedding of each column kind, in input order. Each module has
        an ``n_tokens`` attribute (modules with none are skipped) and maps its
        input to ``(B, n_tokens, n_copies * embedding_dim)``.
    embedding_dim : int
        ``D``, the size of every token.
    n_copies : int, default=1
        ``C``, independent copies of every embedding (e.g. one per task for
        models that share nothing).

    Notes
    -----
    Shapes: one tensor per kind, in the order of ``kinds`` (e.g. ``x_cat`` (B,
    F_cat) integer codes, ``x_cont`` (B, F_cont) float32) -> (B, F * D), or (C, B,
    F * D) when ``n_copies > 1``, ``F`` the total number of tokens. An input may
    be :class:`~skmtl.nn.sparse.SparseRows` (a sparse ``X``): a token embedding
    whose class sets ``takes_sparse_rows = True`` gets it as it is, any other
    one the batch densified.
    """

    def __init__(self, kinds: Mapping[str, nn.Module], embedding_dim: int, n_copies: int = 1):
        super().__init__()
        self.kinds = nn.ModuleDict(kinds)
        self.embedding_dim = int(embedding_dim)
        self.n_copies = int(n_copies)
        self.n_features = sum(int(m.n_tokens) for m in self.kinds.values())

    @classmethod
    def tabular(
        cls,
        cardinalities: Sequence[int],
        n_continuous: int,
        embedding_dim: int,
        unknown_rate: float = 0.0,
        n_copies: int = 1,
    ) -> FeatureEmbedding:
        """Categorical tables then continuous maps: the two built-in column kinds."""
        return cls(
            {
                "categorical": CategoricalEmbedding(cardinalities, embedding_dim, unknown_rate, n_copies),
                "continuous": ContinuousEmbedding(n_continuous, embedding_dim, n_copies),
            },
            embedding_dim,
            n_copies,
        )

    @property
    def out_features(self) -> int:
        """Width of the flat output, ``F * D``."""
        return self.n_features * self.embedding_dim

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        batch = inputs[0].shape[0]
        parts = [
            module(x if getattr(module, "takes_sparse_rows", False) else dense(x))
            for module, x in zip(self.kinds.values(), inputs) if module.n_tokens
        ]
        tokens = parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)
        if self.n_copies == 1:
            return tokens.reshape(batch, self.out_features)
        # (B, F, C * D) -> (C, B, F * D)
        tokens = tokens.view(batch, self.n_features, self.n_copies, self.embedding_dim)
        return tokens.permute(2, 0, 1, 3).reshape(self.n_copies, batch, self.out_features)

    def extra_repr(self) -> str:
        return f"embedding_dim={self.embedding_dim}, n_copies={self.n_copies}"


class StackedLinear(nn.Module):
    """``G`` independent linear maps evaluated as one batched matmul.

    Parameters
    ----------
    n_groups : int
        ``G``, the number of independent maps (experts or tasks).
    in_features, out_features : int
        Input and output width of each map.

    Notes
    -----
    Shapes: (B, in) shared by all groups, or (G, B, in) one input per group ->
    (G, B, out).
    """

    def __init__(
        self,
        n_groups: int,
        in_features: int,
        out_features: int,
        input_mask: torch.Tensor | None = None,
    ):
        super().__init__()
        self.n_groups = int(n_groups)
        self.in_features = int(in_features)
        self.out_features = int(out_features)
        self.weight = nn.Parameter(torch.empty(self.n_groups, self.in_features, self.out_features))
        self.bias = nn.Parameter(torch.empty(self.n_groups, 1, self.out_features))
        if input_mask is not None:
            input_mask = _input_mask(input_mask, self.n_groups, self.in_features)
            # (G, in, 1): group g only reads the inputs where input_mask[g] is 1.
            self.register_buffer("input_mask", input_mask.unsqueeze(-1))
        else:
            self.input_mask = None

    def effective_weight(self) -> torch.Tensor:
        """The weight with masked inputs zeroed, (G, in, out)."""
        return self.weight if self.input_mask is None else self.weight * self.input_mask

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        # The bound of torch.nn.Linear's default initialisation.
        bound = 1.0 / math.sqrt(self.in_features)
        _uniform_(self.weight, bound, generator)
        _uniform_(self.bias, bound, generator)

    def forward_wide(self, x: torch.Tensor) -> torch.Tensor:
        """All groups on a shared input as one wide matmul, bias fused: (B, in) -> (B, G*out)."""
        wide = self.effective_weight().permute(1, 0, 2).reshape(self.in_features, -1)
        return torch.addmm(self.bias.reshape(-1), x, wide)

    def split_groups(self, wide: torch.Tensor) -> torch.Tensor:
        """(B, G*out) -> (G, B, out), a view."""
        return wide.view(wide.shape[0], self.n_groups, self.out_features).transpose(0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 2:
            return self.split_groups(self.forward_wide(x))
        return torch.baddbmm(self.bias, x, self.effective_weight())

    def extra_repr(self) -> str:
        return f"n_groups={self.n_groups}, in_features={self.in_features}, out_features={self.out_features}"


class StackedMLP(nn.Module):
    """``G`` independent MLPs of the same shape, computed together.

    Each layer is a :class:`StackedLinear` followed by the activation and
    dropout. With ``layer_sizes=()`` the block is the identity (broadcast to
    ``G`` groups).

    Parameters
    ----------
    n_groups : int
        ``G``, the number of MLPs (e.g. experts, or task towers).
    in_features : int
        Input width.
    layer_sizes : sequence of int
        Width of each hidden layer; the last one is the output width.
    activation : str, default="relu"
        Activation after every layer.
    dropout : float, default=0.0
        Dropout probability after every layer.
    input_mask : Tensor of shape (G, in), optional
        0/1 mask of the inputs each group may read (e.g. experts dedicated to
        a feature group); applied to the first layer's weights.

    Notes
    -----
    Shapes: (B, in) or (G, B, in) -> (G, B, layer_sizes[-1]).
    """

    def __init__(
        self,
        n_groups: int,
        in_features: int,
        layer_sizes: Sequence[int],
        activation: str = "relu",
        dropout: float = 0.0,
        input_mask: torch.Tensor | None = None,
    ):
        super().__init__()
        self.n_groups = int(n_groups)
        self.in_features = int(in_features)
        widths = [self.in_features, *(int(s) for s in layer_sizes)]
        layers: list[nn.Module] = []
        for i, (fan_in, fan_out) in enumerate(zip(widths[:-1], widths[1:])):
            mask = input_mask if i == 0 else None
            layers.append(StackedLinear(self.n_groups, fan_in, fan_out, mask))
            layers.append(make_activation(activation))
            if dropout > 0.0:
                layers.append(Dropout(dropout))
        self.layers = nn.Sequential(*layers)
        self.out_features = widths[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.layers) == 0:
            return x.expand(self.n_groups, *x.shape) if x.dim() == 2 else x
        if x.dim() == 2:
            # Shared input: the first layer is one wide matmul, activated while still
            # contiguous (cheaper forward and backward), then viewed as (G, B, out).
            first, activation = self.layers[0], self.layers[1]
            x = first.split_groups(activation(first.forward_wide(x)))
            return self.layers[2:](x)
        return self.layers(x)


def gate_softmax(
    logits: torch.Tensor, n_gates: int, n_experts: int, temperature: float = 1.0
) -> torch.Tensor:
    """Gate weights from gate logits: (B, n_gates * n_experts) -> (B, n_gates, n_experts).

    ``softmax(logits / temperature)`` over the experts of each gate; each row sums to 1.
    """
    logits = logits.reshape(logits.shape[0], n_gates, n_experts)
    if temperature != 1.0:
        logits = logits / temperature
    return torch.softmax(logits, dim=-1)


class Gate(nn.Module):
    """Softmax gates that mix experts: ``softmax((x @ W + b) / T)``.

    Parameters
    ----------
    in_features : int
        Width of the gate input (the embedded features).
    n_experts : int
        Number of experts to weigh.
    n_gates : int
        Number of independent gates (1 for MoE, one per task for MMoE).
    temperature : float, default=1.0
        Softmax temperature ``T``; larger values give flatter mixtures.

    Notes
    -----
    Shapes: (B, in) -> (B, n_gates, n_experts), each row summing to 1.
    """

    def __init__(self, in_features: int, n_experts: int, n_gates: int, temperature: float = 1.0):
        super().__init__()
        self.in_features = int(in_features)
        self.n_experts = int(n_experts)
        self.n_gates = int(n_gates)
        self.temperature = float(temperature)
        self.weight = nn.Parameter(torch.empty(self.in_features, self.n_gates * self.n_experts))
        self.bias = nn.Parameter(torch.empty(self.n_gates * self.n_experts))

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        bound = 1.0 / math.sqrt(self.in_features)
        _uniform_(self.weight, bound, generator)
        _uniform_(self.bias, bound, generator)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = torch.addmm(self.bias, x, self.weight)
        return gate_softmax(logits, self.n_gates, self.n_experts, self.temperature)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, n_experts={self.n_experts}, "
            f"n_gates={self.n_gates}, temperature={self.temperature}"
        )


class GatedExperts(nn.Module):
    """Expert MLPs and the softmax gates that mix them, on one shared input.

    The gates and the experts' first layer read the same input, so their
    weights are stored side by side in one ``(in, E * H_1 + G * E)`` matrix and
    computed by ONE matmul (with the bias fused); the experts' further layers
    are a :class:`StackedMLP`. Gate ``g``'s weights are
    ``softmax((x @ W_g + b_g) / T)`` as in :class:`Gate`.

    Parameters
    ----------
    in_features : int
        Width of the shared input.
    n_experts : int
        ``E``.
    layer_sizes : sequence of int
        Layers of every expert; with ``()`` each expert is the identity.
    n_gates : int
        ``G``, the number of independent gates (1 for MoE, one per task for MMoE).
    activation, dropout
        As in :class:`StackedMLP`.
    temperature : float, default=1.0
        Softmax temperature ``T`` of the gates.
    input_mask : Tensor of shape (E, in), optional
        0/1 mask of the inputs each expert reads (e.g. experts dedicated to a
        feature group); the gates read every input.

    Notes
    -----
    Shapes: (B, in) -> experts (E, B, H), gates (B, G, E).
    """

    def __init__(
        self,
        in_features: int,
        n_experts: int,
        layer_sizes: Sequence[int],
        n_gates: int,
        activation: str = "relu",
        dropout: float = 0.0,
        temperature: float = 1.0,
        input_mask: torch.Tensor | None = None,
    ):
        super().__init__()
        self.in_features = int(in_features)
        self.n_experts = int(n_experts)
        self.n_gates = int(n_gates)
        self.temperature = float(temperature)
        layer_sizes = [int(s) for s in layer_sizes]
        self.first_width = layer_sizes[0] if layer_sizes else 0
        expert_columns = self.n_experts * self.first_width
        width = expert_columns + self.n_gates * self.n_experts
        self.weight = nn.Parameter(torch.empty(self.in_features, width))
        self.bias = nn.Parameter(torch.empty(width))
        if input_mask is not None:
            input_mask = _input_mask(input_mask, self.n_experts, self.in_features)
            # (in, width): expert e's columns read the inputs of mask[e]; the gates read all.
            columns = input_mask.T.repeat_interleave(max(self.first_width, 1), dim=1)
            if not self.first_width:
                columns = columns[:, :0]
            gates = torch.ones(self.in_features, width - expert_columns)
            self.register_buffer("weight_mask", torch.cat([columns, gates], dim=1))
            self.register_buffer("identity_mask", input_mask.unsqueeze(1))  # (E, 1, in)
        else:
            self.weight_mask = None
            self.identity_mask = None
        layers: list[nn.Module] = []
        if layer_sizes:
            layers.append(make_activation(activation))
            if dropout > 0.0:
                layers.append(Dropout(dropout))
        self.first_activation = nn.Sequential(*layers)
        self.rest = StackedMLP(self.n_experts, self.first_width, layer_sizes[1:], activation, dropout)
        self.out_features = layer_sizes[-1] if layer_sizes else self.in_features

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        # nn.Linear's bound for the experts' first layer and the gates alike.
        bound = 1.0 / math.sqrt(self.in_features)
        _uniform_(self.weight, bound, generator)
        _uniform_(self.bias, bound, generator)

    def _pre_activations(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        weight = self.weight if self.weight_mask is None else self.weight * self.weight_mask
        # split (not slicing): its backward is one cat instead of zero-filled buffers.
        return torch.addmm(self.bias, x, weight).split(
            [self.n_experts * self.first_width, self.n_gates * self.n_experts], dim=1
        )

    def _gates(self, logits: torch.Tensor) -> torch.Tensor:
        return gate_softmax(logits, self.n_gates, self.n_experts, self.temperature)

    def _experts(self, x: torch.Tensor, first: torch.Tensor) -> torch.Tensor:
        if not self.first_width:  # identity experts, each seeing its inputs only
            experts = x.expand(self.n_experts, *x.shape)
            return experts if self.identity_mask is None else experts * self.identity_mask
        # Activated while contiguous, then viewed as (E, B, H_1).
        wide = self.first_activation(first)
        grouped = wide.view(wide.shape[0], self.n_experts, self.first_width).transpose(0, 1)
        return self.rest(grouped)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        first, gate_logits = self._pre_activations(x)
        return self._experts(x, first), self._gates(gate_logits)

    def gate_weights(self, x: torch.Tensor) -> torch.Tensor:
        """The gates only, (B, G, E)."""
        return self._gates(self._pre_activations(x)[1])

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, n_experts={self.n_experts}, "
            f"n_gates={self.n_gates}, temperature={self.temperature}"
        )


class AttentionTransfer(nn.Module):
    """AITM's adaptive information transfer between consecutive tasks.

    Following Xi et al., "Modeling the Sequential Dependence among Audience
    Multi-step Conversions with Multi-task Learning in Targeted Display
    Advertising" (KDD 2021): the previous task's representation ``z_prev`` is
    mapped to the information it passes on, ``p = relu(z_prev W_t + b_t)``;
    then self-attention over the two candidates ``u in {p, q}`` (``q`` the
    current task's own representation) weighs them by
    ``softmax_u(<u W_q, u W_k> / sqrt(H))`` and returns ``sum_u w_u (u W_v)``.

    Parameters
    ----------
    width : int
        ``H``, the width of the task representations.

    Notes
    -----
    Shapes: ``z_prev`` (B, H), ``q`` (B, H) -> (B, H).
    """

    def __init__(self, width: int):
        super().__init__()
        self.width = int(width)
        # transfer, query, key, value: four (H, H) maps evaluated together.
        self.maps = StackedLinear(4, self.width, self.width)

    def forward(self, z_prev: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
        transfer = self.maps.weight[0], self.maps.bias[0]
        p = torch.relu(torch.addmm(transfer[1], z_prev, transfer[0]))
        candidates = torch.stack([p, q])  # (2, B, H)
        query, key, value = (
            torch.baddbmm(self.maps.bias[i], candidates, self.maps.weight[i].expand(2, -1, -1))
            for i in (1, 2, 3)
        )
        scores = (query * key).sum(-1) / math.sqrt(self.width)  # (2, B)
        weights = torch.softmax(scores, dim=0).unsqueeze(-1)
        return (weights * value).sum(0)


def tower_shapes(layer_sizes, n_tasks: int) -> list[tuple[int, ...]]:
    """Each task's hidden tower layers, from one shape for all or one shape per task.

    Parameters
    ----------
    layer_sizes : sequence of int, or sequence of sequences of int
        Hidden layers of every tower (e.g. ``(32,)``), or one such sequence
        per task (e.g. ``[(32,), (64, 32)]``).
    n_tasks : int
        ``T``.

    Returns
    -------
    shapes : list of tuple of int
        ``T`` tuples, one per task.

    Raises
    ------
    ValueError
        If ``layer_sizes`` mixes ints and sequences, or gives a number of
        shapes other than ``n_tasks``.
    """
    entries = list(layer_sizes)
    nested = [hasattr(entry, "__len__") for entry in entries]
    if not any(nested):
        return [tuple(int(s) for s in entries)] * n_tasks
    if not all(nested):
        raise ValueError(
            "tower layer sizes must be ints (one shape for every tower) or one sequence of "
            f"ints per task, not a mix; got {layer_sizes!r}."
        )
    if len(entries) != n_tasks:
        raise ValueError(
            f"{len(entries)} tower shapes were given for {n_tasks} task(s); give one per task."
        )
    return [tuple(int(s) for s in entry) for entry in entries]


class TaskTowers(nn.Module):
    """One tower per task, all of the same hidden shape, plus output heads.

    Binary tasks get one logit, a task with ``K > 2`` classes gets ``K``.
    Towers of different shapes are :class:`TaskTowerGroups` (see
    :func:`task_towers`).

    Parameters
    ----------
    in_features : int
        Width of each tower's input.
    n_outputs : sequence of int
        Number of logits of each task (1 for binary).
    layer_sizes : sequence of int
        Hidden layers shared in shape (not in weights) by all towers.
    activation, dropout
        As in :class:`StackedMLP`.

    Notes
    -----
    Shapes: (B, in) shared by all towers or (T, B, in) one input per task -> list of
    T tensors: (B,) for a binary task, (B, K) for a multiclass one.
    """

    def __init__(
        self,
        in_features: int,
        n_outputs: Sequence[int],
        layer_sizes: Sequence[int] = (),
        activation: str = "relu",
        dropout: float = 0.0,
    ):
        super().__init__()
        self.n_outputs = [int(k) for k in n_outputs]
        n_tasks = len(self.n_outputs)
        self.hidden = StackedMLP(n_tasks, in_features, layer_sizes, activation, dropout)
        self.head = StackedLinear(n_tasks, self.hidden.out_features, max(self.n_outputs))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        logits = self.head(self.hidden(x))  # (T, B, max K)
        return [
            logits[t, :, 0] if k == 1 else logits[t, :, :k] for t, k in enumerate(self.n_outputs)
        ]


class TaskTowerGroups(nn.Module):
    """Task towers of different shapes: the tasks that share a shape form one :class:`TaskTowers`.

    Each group's towers are still computed together (one batched matmul per
    layer); a model with two shapes runs two groups.

    Parameters
    ----------
    in_features, n_outputs
        As in :class:`TaskTowers`.
    shapes : sequence of sequence of int
        Hidden layers of each task's tower, one sequence per task.
    activation, dropout
        As in :class:`StackedMLP`.

    Attributes
    ----------
    groups : nn.ModuleList of TaskTowers
        One per distinct shape, in the order of the tasks that first have it.
    tasks : list of list of int
        The tasks of each group, in order.

    Notes
    -----
    Shapes: as :class:`TaskTowers`.
    """

    def __init__(
        self,
        in_features: int,
        n_outputs: Sequence[int],
        shapes: Sequence[Sequence[int]],
        activation: str = "relu",
        dropout: float = 0.0,
    ):
        super().__init__()
        self.n_outputs = [int(k) for k in n_outputs]
        shapes = [tuple(int(s) for s in shape) for shape in shapes]
        if len(shapes) != len(self.n_outputs):
            raise ValueError(
                f"{len(shapes)} tower shapes were given for {len(self.n_outputs)} task(s)."
            )
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for t, shape in enumerate(shapes):
            by_shape.setdefault(shape, []).append(t)
        self.tasks = list(by_shape.values())
        self.groups = nn.ModuleList(
            TaskTowers(in_features, [self.n_outputs[t] for t in tasks], shape, activation, dropout)
            for shape, tasks in by_shape.items()
        )
        for g, tasks in enumerate(self.tasks):  # how a per-task input (T, B, in) is split
            index = torch.tensor(tasks, dtype=torch.long)
            self.register_buffer(f"_tasks_{g}", index, persistent=False)

    def _inputs(self, x: torch.Tensor, g: int) -> torch.Tensor:
        if x.dim() == 2:  # one input shared by every tower
            return x
        tasks = self.tasks[g]
        if tasks == list(range(tasks[0], tasks[-1] + 1)):  # consecutive tasks: a view
            return x[tasks[0] : tasks[-1] + 1]
        return x.index_select(0, getattr(self, f"_tasks_{g}"))

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        logits: list[torch.Tensor | None] = [None] * len(self.n_outputs)
        for g, (towers, tasks) in enumerate(zip(self.groups, self.tasks)):
            for t, task_logits in zip(tasks, towers(self._inputs(x, g))):
                logits[t] = task_logits
        return logits

    def extra_repr(self) -> str:
        return f"tasks={self.tasks}"


def task_towers(
    in_features: int,
    n_outputs: Sequence[int],
    layer_sizes=(),
    activation: str = "relu",
    dropout: float = 0.0,
) -> TaskTowers | TaskTowerGroups:
    """The towers of an architecture: :class:`TaskTowers` when all share a shape.

    Parameters
    ----------
    in_features, n_outputs
        As in :class:`TaskTowers`.
    layer_sizes : sequence of int, or sequence of sequences of int
        Hidden layers of every tower, or one sequence per task (see
        :func:`tower_shapes`). Per-task shapes that are all equal give the
        same module as the shared shape.
    activation, dropout
        As in :class:`StackedMLP`.

    Returns
    -------
    towers : TaskTowers or TaskTowerGroups
    """
    shapes = tower_shapes(layer_sizes, len(n_outputs))
    if len(set(shapes)) <= 1:
        return TaskTowers(in_features, n_outputs, shapes[0] if shapes else (), activation, dropout)
    return TaskTowerGroups(in_features, n_outputs, shapes, activation, dropout)


_SKMTL_BLOCKS = (
    CategoricalEmbedding, ContinuousEmbedding, PeriodicEmbedding, PiecewiseLinearEmbedding,
    StackedLinear, Gate, GatedExperts,
)


def _init_torch_layer(layer: nn.Module, generator: torch.Generator | None) -> None:
    """torch's default initialisation of common layers, drawn from ``generator``."""
    if isinstance(layer, nn.Embedding):
        with torch.no_grad():
            layer.weight.normal_(0.0, 1.0, generator=generator)
        return
    if isinstance(layer, (nn.LayerNorm, nn.modules.batchnorm._NormBase, nn.GroupNorm)):
        layer.reset_parameters()  # deterministic: ones, zeros, fresh running statistics
        return
    # nn.Linear's (and most layers') default bound, 1 / sqrt(fan_in), for weights and biases.
    weight = getattr(layer, "weight", None)
    layer_fan_in = weight[0].numel() if isinstance(weight, torch.Tensor) and weight.dim() > 1 else None
    for param in layer.parameters(recurse=False):
        fan_in = layer_fan_in or (param[0].numel() if param.dim() > 1 else param.numel())
        _uniform_(param, 1.0 / math.sqrt(max(fan_in, 1)), generator)


def init_parameters(module: nn.Module, generator: torch.Generator | None) -> None:
    """Initialise every parameter of ``module`` from ``generator``, in module order.

    skmtl's blocks use their own ``reset_parameters(generator)``; so does any
    module defining ``reset_parameters`` with a ``generator`` argument (which
    then owns its whole subtree). Other modules with parameters of their own
    get torch's default initialisation drawn from ``generator``: uniform in
    ``+-1/sqrt(fan_in)`` (as ``nn.Linear``), ``N(0, 1)`` for ``nn.Embedding``,
    ones and zeros for normalisation layers.
    """
    owned: set[int] = set()
    for block in module.modules():
        if id(block) in owned:
            continue
        if isinstance(block, _SKMTL_BLOCKS):
            block.reset_parameters(generator)
        elif _accepts_generator(getattr(block, "reset_parameters", None)):
            block.reset_parameters(generator=generator)
            owned.update(id(m) for m in block.modules())
        elif any(True for _ in block.parameters(recurse=False)):
            _init_torch_layer(block, generator)


WEIGHT_INITS = ("torch", "kaiming")

_GAINS = {"relu": math.sqrt(2.0), "gelu": math.sqrt(2.0), "silu": math.sqrt(2.0), "tanh": 5.0 / 3.0}
"""He et al.'s gain of each activation (:func:`torch.nn.init.calculate_gain`'s; GELU and SiLU as ReLU)."""


def kaiming_hidden_layers(module: nn.Module, activation: str) -> None:
    """Rescale the hidden layers initialised by :func:`init_parameters` to He et al.'s variance.

    torch's default bound ``1 / sqrt(fan_in)`` shrinks the signal by about
    ``sqrt(6)`` at every ReLU layer, so a network of four layers outputs
    logits of a standard deviation near 0.002 at initialisation. This
    multiplies the weights of every layer followed by ``activation`` (the
    layers of each :class:`StackedMLP`, the experts' first layer of each
    :class:`GatedExperts`) by ``gain * sqrt(3)``, which turns the uniform draw
    of ``+-1/sqrt(fan_in)`` into Kaiming's uniform ``+-gain * sqrt(3 / fan_in)``
    with the same random numbers, and zeroes their biases. Embeddings, gates,
    attention maps and output heads keep their initialisation.
    """
    ratio = _GAINS[activation] * math.sqrt(3.0)
    with torch.no_grad():
        for block in module.modules():
            if isinstance(block, StackedMLP):
                for layer in block.layers:
                    if isinstance(layer, StackedLinear):
                        layer.weight.mul_(ratio)
                        layer.bias.zero_()
            elif isinstance(block, GatedExperts) and block.first_width:
                columns = block.n_experts * block.first_width
                block.weight[:, :columns].mul_(ratio)
                block.bias[:columns].zero_()


def _accepts_generator(method) -> bool:
    if method is None:
        return False
    import inspect

    try:
        return "generator" in inspect.signature(method).parameters
    except (TypeError, ValueError):
        return False
