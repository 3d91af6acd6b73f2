"""Quality of a linear + periodic numeric embedding, patched in outside the library.

The question: the periodic embedding (``numeric_embedding="periodic"``) lifts
census income but collapses the synthetic cases; does keeping today's linear
map and *adding* the periodic one (so the network can always fall back on the
linear map) keep the census gain without the collapse? This runs
``benchmarks/quality.py`` with one extra, non-estimator key in a variant's
parameters, ``"_hybrid"``, which replaces the linear continuous embedding of
that fit by one of:

- ``"sum"``: ``linear(x) + periodic(x)`` (PLR as in the library: 16 trainable
  frequencies per column, drawn from ``N(0, sigma)``, a linear map and a ReLU);
- ``"rezero"``: ``linear(x) + g * periodic(x)``, ``g`` a trained gain per
  column and value that starts at 0, so the fit starts as today's network;
- ``"periodic"``: the periodic embedding alone (as ``numeric_embedding=
  "periodic"``, with the chosen ``sigma``).

A mode may end in ``@sigma`` (e.g. ``"sum@0.1"``) for the frequencies'
standard deviation (default 0.5, the library's). Every fit runs in its own
process, as in ``quality.py``; the patch is applied in each. Example::

    python benchmarks/numeric_embedding_hybrid.py --cases census synthetic_0.9 \\
        --models default --variant 'hybrid_sum={"_hybrid": "sum"}' \\
        --output benchmarks/results/numeric_embedding_hybrid.md

The results: ``benchmarks/results/numeric_embedding_hybrid.md`` and
:doc:`/results` (the library's numeric embeddings are unchanged by this
script).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import quality
import torch
from torch import nn

from skmtl import _column_kinds
from skmtl.nn.blocks import ContinuousEmbedding, PeriodicEmbedding

_MODE: dict[str, str | None] = {"hybrid": None}


class HybridEmbedding(nn.Module):
    """``linear(x) + [g *] periodic(x)`` per continuous column, or the periodic part alone."""

    def __init__(self, n_columns: int, embedding_dim: int, n_copies: int, mode: str):
        super().__init__()
        kind, _, sigma = mode.partition("@")
        if kind not in ("sum", "rezero", "periodic"):
            raise ValueError(f"_hybrid must be 'sum', 'rezero' or 'periodic'[@sigma]; got {mode!r}")
        self.kind = kind
        self.n_tokens, self.embedding_dim = int(n_columns), int(embedding_dim)
        self.linear = ContinuousEmbedding(n_columns, embedding_dim, n_copies)
        self.periodic = PeriodicEmbedding(
            n_columns, embedding_dim, 16, float(sigma) if sigma else 0.5, n_copies
        )
        self.gain = (
            nn.Parameter(torch.zeros(self.n_tokens, n_copies * embedding_dim))
            if kind == "rezero" else None
        )

    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        self.linear.reset_parameters(generator)
        self.periodic.reset_parameters(generator)
        if self.gain is not None:
            with torch.no_grad():
                self.gain.zero_()

    def forward(self, values: torch.Tensor) -> torch.Tensor:
        periodic = self.periodic(values)
        if self.kind == "periodic":
            return periodic
        if self.gain is not None:
            periodic = periodic * self.gain
        return self.linear(values) + periodic


_make_embedding = _column_kinds.ContinuousColumns.make_embedding.__func__


def _patched_make_embedding(cls, embedding_dim, n_copies, *, n_columns, embedding="linear",
                            **settings):
    if _MODE["hybrid"] and embedding == "linear" and settings.get("projection") != "joint":
        return HybridEmbedding(n_columns, embedding_dim, n_copies, _MODE["hybrid"])
    return _make_embedding(cls, embedding_dim, n_copies, n_columns=n_columns,
                           embedding=embedding, **settings)


_fit_and_score = quality.fit_and_score


def _patched_fit_and_score(case, model, seed, params, proba_dir=None):
    params = dict(params or {})
    _MODE["hybrid"] = params.pop("_hybrid", None)
    row = _fit_and_score(case, model, seed, params or None, proba_dir)
    if _MODE["hybrid"]:
        row["params"] = {**(row["params"] or {}), "_hybrid": _MODE["hybrid"]}
    return row


_column_kinds.ContinuousColumns.make_embedding = classmethod(_patched_make_embedding)
quality.fit_and_score = _patched_fit_and_score
quality.__file__ = __file__  # each fit's worker process runs this script, so it is patched too

if __name__ == "__main__":
    quality.main()
