"""Sparse X: the joint projection on sparse rows against densifying each batch.

Two ways a training step can read a mini-batch of a scipy sparse ``X`` through
the joint projection (``continuous_projection="joint"``, ``k * D = 128``
outputs), both computing the same standardised ``x @ W + b``:

- ``sparse_rows`` (what skmtl does): the encoded input is
  :class:`skmtl.nn.sparse.SparseRows`; the epoch's shuffled copy is one row
  gather of the stored entries, a batch is a slice of it, and the projection is
  one ``embedding_bag`` over the batch's stored entries plus the zeros'
  product (:meth:`SparseRows.project`);
- ``densify_batch``: the CSR matrix stays as scipy holds it; a batch is
  ``X[rows].toarray()``, standardised as skmtl standardises a dense ``X``
  (float64, then float32), then ``torch.addmm``.

Each step is the projection's forward and backward and an Adam step on its
weights (the rest of the network is the same for both). The two run
interleaved, ``--repeats`` times ``--steps`` steps each; the report gives
medians, their ratio and the 1-minute load average (the machine is shared:
compare the ratio, not the seconds). Memory: the bytes of the encoded input
(``SparseRows.nbytes``) against the dense float32 encoding (rows x columns x 4).

Data: ``tfidf`` (50,000 x 20,000, 0.5 % stored, exponential values) and
``one_hot`` (50,000 rows, 20 categorical columns of 100 categories one-hot
encoded: 2,000 columns, exactly 20 ones per row).

Run: ``python benchmarks/sparse_input.py [--rows 50000] [--steps 20] [--repeats 5]``;
the report goes to ``benchmarks/results/sparse_input_latest.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
import scipy.sparse as sp
import torch

from skmtl._encoding import TabularEncoder
from skmtl.nn.blocks import JointProjection

RESULTS = Path(__file__).resolve().parent / "results"
BATCH = 512
TOKENS, DIM = 16, 8  # the joint projection's defaults without categorical columns


def tfidf(n_rows: int, rng) -> sp.csr_matrix:
    return sp.random(n_rows, 20_000, density=0.005, format="csr", random_state=rng,
                     data_rvs=lambda k: rng.exponential(size=k))


def one_hot(n_rows: int, rng) -> sp.csr_matrix:
    codes = rng.integers(0, 100, size=(n_rows, 20)) + 100 * np.arange(20)
    indptr = np.arange(0, 20 * n_rows + 1, 20)
    return sp.csr_matrix((np.ones(codes.size), codes.ravel(), indptr), shape=(n_rows, 2000))


def load_average() -> float:
    return os.getloadavg()[0]


def measure(X: sp.csr_matrix, steps: int, repeats: int, seed: int) -> dict:
    encoder = TabularEncoder.from_mask(np.zeros(X.shape[1], dtype=bool)).fit(X)
    cont = encoder.continuous
    rows = encoder.transform(X)[1]
    mean, scale = cont.mean_, cont.scale_
    projection = JointProjection(X.shape[1], TOKENS, DIM)
    projection.reset_parameters(torch.Generator().manual_seed(seed))
    optimizer = torch.optim.Adam(projection.parameters(), lr=1e-3)
    order = torch.randperm(X.shape[0], generator=torch.Generator().manual_seed(seed))
    target = torch.randn(BATCH, TOKENS * DIM, generator=torch.Generator().manual_seed(seed))

    def step(batch):
        loss = (projection.project(batch) - target[: len(batch)]).square().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def sparse_rows():
        shuffled = rows[order]  # the epoch's one gather
        for s in range(steps):
            step(shuffled[s * BATCH:(s + 1) * BATCH])

    def densify_batch():
        for s in range(steps):
            index = order[s * BATCH:(s + 1) * BATCH].numpy()
            values = X[index].toarray()
            values -= mean
            values /= scale
            step(torch.from_numpy(values.astype(np.float32)))

    # The same product, to float32 round-off.
    batch = order[:BATCH]
    dense = torch.from_numpy(((X[batch.numpy()].toarray() - mean) / scale).astype(np.float32))
    with torch.no_grad():
        gap = float((projection.project(rows[batch]) - projection.project(dense)).abs().max())
    times = {"sparse_rows": [], "densify_batch": []}
    loads = []
    for _ in range(repeats):
        for name, run in (("sparse_rows", sparse_rows), ("densify_batch", densify_batch)):
            start = time.perf_counter()
            run()
            times[name].append((time.perf_counter() - start) / steps)
        loads.append(load_average())
    medians = {k: float(np.median(v)) for k, v in times.items()}
    return {
        "shape": list(X.shape), "stored": int(X.nnz), "density": X.nnz / np.prod(X.shape),
        "encoded_bytes": rows.nbytes, "dense_bytes": 4 * X.shape[0] * X.shape[1],
        "ms_per_step": {k: 1e3 * v for k, v in medians.items()},
        "densify_over_sparse": medians["densify_batch"] / medians["sparse_rows"],
        "max_abs_gap": gap, "load_average": loads, "threads": torch.get_num_threads(),
    }


def report(results: dict, args) -> str:
    lines = [
        "# Sparse X: joint projection on sparse rows vs densifying each batch",
        "",
        (f"`python benchmarks/sparse_input.py --rows {args.rows} --steps {args.steps} "
         f"--repeats {args.repeats}`; batch {BATCH}, projection {TOKENS} x {DIM} outputs, "
         "forward + backward + Adam per step; medians over interleaved repeats on a shared "
         "machine (compare the ratio, not the milliseconds)."),
        "",
        ("| data | shape | stored | encoded input | dense float32 | sparse_rows ms/step | "
         "densify_batch ms/step | densify / sparse | max gap | load avg (1 min) | threads |"),
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['shape'][0]:,} x {r['shape'][1]:,} | {r['density']:.2%} | "
            f"{r['encoded_bytes'] / 2**20:,.0f} MiB | {r['dense_bytes'] / 2**20:,.0f} MiB | "
            f"{r['ms_per_step']['sparse_rows']:.1f} | {r['ms_per_step']['densify_batch']:.1f} | "
            f"{r['densify_over_sparse']:.1f}x | {r['max_abs_gap']:.1e} | "
            f"{', '.join(f'{v:.2f}' for v in r['load_average'])} | {r['threads']} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=RESULTS / "sparse_input_latest")
    args = parser.parse_args(argv)
    results = {}
    for name, make in (("tfidf", tfidf), ("one_hot", one_hot)):
        X = make(args.rows, np.random.default_rng(0))
        results[name] = measure(X, args.steps, args.repeats, seed=0)
        print(name, json.dumps(results[name]), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2) + "\n")
    text = report(results, args)
    args.out.with_suffix(".md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
