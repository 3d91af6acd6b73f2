"""Fit time of the training loop with no hook set: this tree against a base commit's.

The issue asks that training throughput with no observer and the default
backward step stay within 2 % of the loop before the extension points. The
driver times ``MultiTaskClassifier("mmoe", max_iter=3, early_stopping=False,
random_state=0).fit`` on one census-like synthetic table (categorical and
continuous columns, two binary tasks) in fresh subprocesses, alternately with
the code of two worktrees (``cwd`` set to each, so ``import skmtl`` picks that
tree), in interleaved pairs whose order alternates. It reports the median fit
time of each arm, their ratio, the median of the paired ratios, the 1-minute
load average around every run, and checks that both arms computed the same
loss curve. Make a worktree of the base commit first::

    git worktree add ../wt-base d8b89b1
    python benchmarks/bench_hooks.py --base ../wt-base --pairs 7

``--observer`` adds a third arm: this tree with one observer that does
nothing per batch (the cost of the per-batch call itself).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULT_PREFIX = "BENCH_HOOKS "
CARDINALITIES = [9, 17, 52, 47, 10, 38, 8, 24]  # as bench_mmoe.py (census-like)
N_CONTINUOUS = 6


def make_table(n_rows: int, seed: int = 0):
    """Census-like rows: string categories with skewed frequencies, continuous values, 2 tasks."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    columns, logits = {}, np.zeros((n_rows, 2))
    for j, k in enumerate(CARDINALITIES):
        codes = rng.choice(k, size=n_rows, p=rng.dirichlet(np.full(k, 1.5)))
        columns[f"cat{j}"] = np.array([f"c{i}" for i in range(k)], dtype=object)[codes]
        logits += rng.normal(0.0, 0.4, (k, 2))[codes]
    x = rng.standard_normal((n_rows, N_CONTINUOUS))
    for j in range(N_CONTINUOUS):
        columns[f"num{j}"] = x[:, j]
    logits += np.column_stack([np.tanh(x[:, 0] * x[:, 1]), 0.5 * x[:, 2] - 0.3 * x[:, 0]])
    y = (rng.random((n_rows, 2)) < 1.0 / (1.0 + np.exp(-logits))).astype(np.int64)
    return pd.DataFrame(columns), y


def child(args) -> dict:
    """One timed fit with the skmtl of the current directory."""
    sys.path.insert(0, os.getcwd())
    import torch

    torch.set_num_threads(args.threads)
    import skmtl

    X, y = make_table(args.rows)
    params = {
        "architecture": "mmoe", "max_iter": args.epochs, "early_stopping": False,
        "random_state": 0,
    }
    if args.observer:
        from skmtl import _classifier, _training
        from skmtl._hooks import TrainingObserver

        class NothingPerBatch(TrainingObserver):
            def on_batch_end(self, state):
                pass

        _classifier.train = functools.partial(_training.train, observers=[NothingPerBatch()])
    # The process's first fit pays one-off imports (torch._dynamo for the fused Adam).
    skmtl.MultiTaskClassifier(**{**params, "max_iter": 1}).fit(X[:2000], y[:2000])
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    clf = skmtl.MultiTaskClassifier(**params).fit(X, y)
    seconds = time.perf_counter() - start
    return {
        "fit_s": seconds, "loss_curve": clf.loss_curve_, "skmtl": skmtl.__file__,
        "load_before": load_before, "load_after": os.getloadavg()[0],
    }


def run_arm(tree: Path, args, observer: bool = False) -> dict:
    cmd = [
        sys.executable, str(Path(__file__).resolve()), "--child", "--rows", str(args.rows),
        "--epochs", str(args.epochs), "--threads", str(args.threads),
    ] + (["--observer"] if observer else [])
    env = {**os.environ, "TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, cwd=tree, capture_output=True, text=True, env=env, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith(RESULT_PREFIX)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{cmd} in {tree} failed:\n{proc.stdout}\n{proc.stderr}")
    result = json.loads(lines[-1][len(RESULT_PREFIX):])
    if Path(result["skmtl"]).resolve().parents[1] != tree.resolve():
        raise RuntimeError(f"the child in {tree} imported {result['skmtl']}")
    return result


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", type=Path, help="worktree of the base commit")
    parser.add_argument("--pairs", type=int, default=7)
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads in each child")
    parser.add_argument("--observer", action="store_true", help="add the no-op observer arm")
    parser.add_argument("--out", type=Path, help="also write the report to this file")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(RESULT_PREFIX + json.dumps(child(args)), flush=True)
        return 0
    if args.base is None:
        parser.error("--base is required")

    arms = {"base": (args.base, False), "this tree": (REPO, False)}
    if args.observer:
        arms["this tree, no-op batch observer"] = (REPO, True)
    start_uptime = uptime()
    runs = {name: [] for name in arms}
    for pair in range(args.pairs):
        order = list(arms) if pair % 2 == 0 else list(reversed(arms))
        for name in order:
            tree, observer = arms[name]
            runs[name].append(run_arm(tree, args, observer))
            result = runs[name][-1]
            print(f"pair {pair + 1} {name}: {result['fit_s']:.3f} s "
                  f"(load {result['load_before']:.2f} -> {result['load_after']:.2f})", flush=True)
    end_uptime = uptime()

    curves = {name: runs[name][0]["loss_curve"] for name in arms}
    same_losses = all(curve == curves["base"] for curve in curves.values())
    base = [run["fit_s"] for run in runs["base"]]
    lines = [
        (
            f"`python benchmarks/bench_hooks.py --base {args.base} --pairs {args.pairs} "
            f"--rows {args.rows} --epochs {args.epochs} --threads {args.threads}"
            f"{' --observer' if args.observer else ''}`: MMoE fit, {args.rows:,} rows "
            f"({len(CARDINALITIES)} categorical + {N_CONTINUOUS} continuous columns, 2 tasks), "
            f"{args.epochs} epochs, {args.threads} torch thread(s), {os.cpu_count()} CPUs."
        ),
        "",
        f"- uptime before: {start_uptime}",
        f"- uptime after: {end_uptime}",
        f"- the same loss curve in every arm: {same_losses}",
        "",
        (
            "| arm | median fit s | vs base (medians) | median of paired ratios | fit s (all) "
            "| load avg (median) |"
        ),
        "|---|---:|---:|---:|---|---:|",
    ]
    for name in arms:
        times = [run["fit_s"] for run in runs[name]]
        paired = [t / b for t, b in zip(times, base, strict=True)]
        loads = [run["load_before"] for run in runs[name]]
        lines.append(
            f"| {name} | {statistics.median(times):.3f} | "
            f"{statistics.median(times) / statistics.median(base):.4f} | "
            f"{statistics.median(paired):.4f} | {', '.join(f'{t:.2f}' for t in times)} | "
            f"{statistics.median(loads):.2f} |"
        )
    report = "\n".join(lines)
    print(report)
    if args.out is not None:
        args.out.write_text(report + "\n")
    return 0 if same_losses else 1


if __name__ == "__main__":
    sys.exit(main())
