"""Standardised continuous columns held sparse: rows of a CSR matrix, in torch.

A sparse ``X`` (e.g. TF-IDF or one-hot output) is mostly zeros, but its
standardised form ``(x - mean) / scale`` is not: every zero becomes the
column's own ``-mean / scale``. :class:`SparseRows` holds such a matrix without
densifying it: the standardised value of every stored entry, and each
column's standardised zero. Its rows are the encoded continuous input of the
network, as a dense ``(B, F_cont)`` tensor would be; the training loop and
prediction take and slice them as they do tensors (``rows[index]``,
``rows[start:stop]``).

A block that projects all columns at once (:class:`~skmtl.nn.blocks.JointProjection`)
multiplies them without densifying (:meth:`SparseRows.project`); any other
block gets one dense batch at a time (:meth:`SparseRows.to_dense`), with the
values of the dense input (to the bit for the same mean and scale).
"""

from __future__ import annotations

import numpy as np
import torch
from torch.nn import functional as F


class SparseRows:
    """Rows of a standardised matrix stored as CSR: what differs from each column's zero.

    Row ``i``, column ``j`` of the matrix is ``values[p]`` where the CSR
    structure stores an entry ``p`` there, else ``zeros[j]``.

    Parameters
    ----------
    crow : LongTensor of shape (n_rows + 1,)
        Row pointers: row ``i``'s entries are ``crow[i]:crow[i + 1]`` (may
        start above 0: a slice of a larger matrix keeps its pointers' offset).
    col : LongTensor of shape (n_stored,)
        Column of every entry.
    values : FloatTensor of shape (n_stored,)
        Standardised value of every entry (float32).
    zeros : FloatTensor of shape (n_columns,)
        Standardised value of an entry that is not stored, per column (float32).

    Notes
    -----
    Shapes: ``shape`` is ``(n_rows, n_columns)``, as the dense tensor's. The
    memory is ``8 * (n_rows + 1) + 12 * n_stored + 4 * n_columns`` bytes against
    ``4 * n_rows * n_columns`` dense.
    """

    def __init__(self, crow: torch.Tensor, col: torch.Tensor, values: torch.Tensor,
                 zeros: torch.Tensor):
        self.crow, self.col, self.values, self.zeros = crow, col, values, zeros

    @classmethod
    def from_numpy(cls, indptr, indices, values, zeros) -> SparseRows:
        """From a CSR matrix's arrays (int64 indices and float32 values are shared, not copied)."""
        return cls(
            torch.from_numpy(np.asarray(indptr, dtype=np.int64)),
            torch.from_numpy(np.asarray(indices, dtype=np.int64)),
            torch.from_numpy(np.asarray(values, dtype=np.float32)),
            torch.from_numpy(np.asarray(zeros, dtype=np.float32)),
        )

    @property
    def shape(self) -> tuple[int, int]:
        return (self.crow.shape[0] - 1, self.zeros.shape[0])

    @property
    def device(self) -> torch.device:
        return self.values.device

    def __len__(self) -> int:
        return self.shape[0]

    @property
    def nbytes(self) -> int:
        """Bytes held (the stored entries, the row pointers and the zeros)."""
        return sum(t.numel() * t.element_size() for t in (self.crow, self.col, self.values, self.zeros))

    def to(self, device) -> SparseRows:
        return SparseRows(*(t.to(device) for t in (self.crow, self.col, self.values, self.zeros)))

    def _entries(self) -> tuple[int, int]:
        return int(self.crow[0]), int(self.crow[-1])

    def __getitem__(self, index) -> SparseRows:
        """Rows ``index``: a slice (views of the entries) or integer positions (a copy)."""
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                raise ValueError("SparseRows takes slices with step 1 only.")
            stop = max(start, stop)
            return SparseRows(self.crow[start:stop + 1], self.col, self.values, self.zeros)
        index = torch.as_tensor(index, device=self.crow.device)
        if index.dtype == torch.bool:
            index = index.nonzero().flatten()
        starts = self.crow[index]
        lengths = self.crow[index + 1] - starts
        crow = torch.zeros(len(index) + 1, dtype=self.crow.dtype, device=self.crow.device)
        torch.cumsum(lengths, 0, out=crow[1:])
        # Entry q of the new rows comes from entry starts[row] + (q - crow[row]) of these.
        source = torch.repeat_interleave(starts - crow[:-1], lengths, output_size=int(crow[-1]))
        source += torch.arange(int(crow[-1]), device=crow.device)
        return SparseRows(crow, self.col[source], self.values[source], self.zeros)

    def to_dense(self) -> torch.Tensor:
        """The standardised rows as a dense float32 tensor ``(n_rows, n_columns)``."""
        first, last = self._entries()
        rows = torch.repeat_interleave(
            torch.arange(len(self), device=self.crow.device), self.crow.diff(), output_size=last - first
        )
        dense = self.zeros.expand(len(self), -1).clone()
        dense[rows, self.col[first:last]] = self.values[first:last]
        return dense

    def project(self, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """``self.to_dense() @ weight + bias`` without the dense rows: ``(n_rows, width)``.

        The dense product is the zeros' product, the same for every row, plus
        each stored entry's difference from its column's zero times that
        column's weights: one ``embedding_bag`` (a weighted sum of weight rows
        per row) over the stored entries only.
        """
        first, last = self._entries()
        col = self.col[first:last]
        differences = self.values[first:last] - self.zeros[col]
        stored = F.embedding_bag(
            col, weight, self.crow[:-1] - first, mode="sum", per_sample_weights=differences
        )
        return stored + torch.addmv(bias, weight.T, self.zeros)

    def __repr__(self) -> str:
        n_rows, n_columns = self.shape
        first, last = self._entries()
        return f"SparseRows(n_rows={n_rows}, n_columns={n_columns}, n_stored={last - first})"


def dense(values):
    """``values`` as a dense tensor (:class:`SparseRows` densified, a tensor as it is)."""
    return values.to_dense() if isinstance(values, SparseRows) else values
