"""Cost of one training step, skmtl vs the hand-written floor, in ONE process.

bench_mmoe.py times whole fits, each in a process of its own, as users see
them; on a shared machine those timings move by 20-30 % from process to
process. This script isolates the part skmtl controls, the training step
(forward, loss, backward, Adam), by timing the floor's step and skmtl's step
alternately in the same process on the same data (bench_mmoe.py's workload and
models), and counts the operators each step dispatches::

    python benchmarks/step_costs.py                 # medians over 8 rounds
    python benchmarks/step_costs.py --rounds 12 --steps 200

skmtl's step is the one its training loop takes for this data: the model's
forward, the objective (the plain-mean fast path when every label is known and
rows are unweighted), ``zero_grad``, ``backward`` and the fused Adam step.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_mmoe as bench


def build(rows: int):
    """The floor's and skmtl's step functions on the same encoded data."""
    import torch
    from torch.nn import functional as F

    data = bench.make_workload(rows, 1000, seed=0)
    X, y = data["X_train"], data["y_train"]
    floor = bench.FloorMMoE(1).fit(X[:4096], y[:4096])
    params = list(floor.params_.values())
    for p in params:
        p.requires_grad_(True)
    codes, cont = floor._encode(X)
    labels = torch.from_numpy(np.ascontiguousarray(y.T, dtype=np.float32))
    floor_adam = torch.optim.Adam(params, lr=bench.LEARNING_RATE, fused=True)

    clf = bench._skmtl_estimator(1)[0].fit(X[:4096], y[:4096])
    module, objective = clf.module_, clf.objective_
    module.train()
    x_cat, x_cont = clf._encode(X)
    targets = torch.from_numpy(np.asarray(y, dtype=np.int64))
    float_targets = targets.T.to(torch.float32)
    fast = hasattr(objective, "plain_binary") and objective.plain_binary()
    skmtl_adam = torch.optim.Adam(module.parameters(), lr=bench.LEARNING_RATE, fused=True)
    B = bench.BATCH_SIZE
    last = rows - B

    def floor_step(i):
        s = (i * B) % last
        logits = floor._forward(codes[s:s + B], cont[s:s + B])
        loss = F.binary_cross_entropy_with_logits(logits, labels[:, s:s + B]) * bench.N_TASKS
        floor_adam.zero_grad(set_to_none=True)
        loss.backward()
        floor_adam.step()

    def skmtl_step(i):
        s = (i * B) % last
        logits = module(x_cat[s:s + B], x_cont[s:s + B])
        if fast:
            total, _ = objective.mean_binary_losses(logits, float_targets[:, s:s + B])
        else:
            total, _ = objective(logits, targets[s:s + B], None)
        skmtl_adam.zero_grad(set_to_none=True)
        total.backward()
        skmtl_adam.step()

    def floor_forward(i):
        s = (i * B) % last
        with torch.no_grad():
            floor._forward(codes[s:s + B], cont[s:s + B])

    def skmtl_forward(i):
        s = (i * B) % last
        with torch.no_grad():
            module(x_cat[s:s + B], x_cont[s:s + B])

    return {
        "floor step": floor_step,
        "skmtl step": skmtl_step,
        "floor forward": floor_forward,
        "skmtl forward": skmtl_forward,
    }


def ops_per_call(fn, n: int = 50) -> float:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for i in range(n):
            fn(i)
    return sum(e.count for e in prof.key_averages() if e.key.startswith("aten::")) / n


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=150, help="steps per timing")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    import torch
    import torch._dynamo

    fns = build(args.rows)
    for fn in fns.values():
        for i in range(20):
            fn(i)
    times: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for r in range(args.rounds):
        for name in names if r % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            for i in range(args.steps):
                fns[name](i)
            times[name].append((time.perf_counter() - start) / args.steps * 1e3)
    ops = {name: ops_per_call(fn) for name, fn in fns.items()}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), batch "
          f"{bench.BATCH_SIZE}, {args.rounds} rounds of {args.steps} steps")
    print("| measurement | floor | skmtl | skmtl / floor |")
    print("|---|---:|---:|---:|")
    for what in ("step", "forward"):
        f = statistics.median(times[f"floor {what}"])
        s = statistics.median(times[f"skmtl {what}"])
        paired = statistics.median(
            b / a for a, b in zip(times[f"floor {what}"], times[f"skmtl {what}"])
        )
        print(f"| {what} ms (median) | {f:.3f} | {s:.3f} | {s / f:.2f} (paired {paired:.2f}) |")
        print(f"| aten ops per {what} | {ops[f'floor {what}']:.0f} | {ops[f'skmtl {what}']:.0f} "
              f"| {ops[f'skmtl {what}'] / ops[f'floor {what}']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
