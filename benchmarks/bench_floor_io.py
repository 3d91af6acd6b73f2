"""Predict from raw input and fit memory, against hand-written loops (issue "Fast on a busy machine").

Two measurements on the MMoE workload of ``bench_mmoe.py`` (its generator, model
shape and hand-written training loop ``FloorMMoE``):

``predict``
    ``predict_proba`` of a fitted ``MultiTaskClassifier`` on 200,000 rows
    given (a) as the raw float64 array ``(n, 18)`` of the workload and (b) as
    a DataFrame (the 8 categorical columns as pandas ``category``, 10 float64
    columns), against a hand-written loop that starts from the same raw input,
    does the same lookups (each categorical column through the fitted
    vocabulary, ``pandas.Index.get_indexer``; categories of a ``category``
    column mapped once, then gathered by their codes), standardises the
    continuous columns with the fitted mean and scale, runs the SAME fitted
    module in chunks of as many rows as skmtl's (``INFERENCE_BATCH_SIZE``)
    under ``inference_mode`` and returns
    ``[1 - p, p]`` per task. Interleaved: each repeat times skmtl, then the
    loop (alternating order); medians and the ratio of medians (throughput of
    skmtl over the loop's), with the load average. Also one-row latency
    (median of 2,000 calls) from numpy and from a DataFrame.
``memory``
    Peak extra resident memory of ``fit``: the process's peak (VmHWM, reset
    through ``/proc/self/clear_refs`` just before) minus its resident set
    before, each fit in a fresh process, relative to the input's bytes and to
    ``FloorMMoE.fit`` (the hand-written loop) on the same array, at 200,000
    and 2,000,000 rows, 1 epoch, ``bench_mmoe``'s settings (no early
    stopping) and skmtl's defaults (early stopping on: a 10 % validation
    split). For skmtl, the same peak measured over each step of ``fit`` (the
    named steps of :mod:`skmtl._base`), each relative to the resident set at
    the step's start.

Run: ``python benchmarks/bench_floor_io.py`` (about 5 minutes on 2 cores);
writes ``benchmarks/results/floor_io_latest.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_mmoe
from bench_extras import _status_mb  # a line of /proc/self/status, in MB

sys.path.pop(0)

FIT_STEPS = (
    "_check_fit_inputs", "_fit_targets", "_fit_encoder", "_build_network", "_split_rows",
    "_make_objective", "_training_tensors", "_train", "_store_fit",
)


# ------------------------------------------------------------------ memory
def _reset_peak() -> float:
    """Reset VmHWM to the current resident set; return that resident set (MB)."""
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")
    return _status_mb("VmRSS")


def _data(rows: int):
    workload = bench_mmoe.make_workload(rows, 1, seed=0)
    return workload["X_train"], workload["y_train"]


def _step_profiler(peaks: dict):
    """Wrap the named steps of ``fit`` so each records its own peak extra memory."""
    from skmtl import MultiTaskClassifier

    def wrap(name, method):
        def timed(self, *args, **kwargs):
            start = _reset_peak()
            try:
                return method(self, *args, **kwargs)
            finally:
                peaks[name] = max(peaks.get(name, 0.0), _status_mb("VmHWM") - start)

        return timed

    for name in FIT_STEPS:
        setattr(MultiTaskClassifier, name, wrap(name, getattr(MultiTaskClassifier, name)))


def memory_child(impl: str, rows: int, defaults: bool, steps: bool) -> dict:
    import warnings

    import torch

    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    import torch._dynamo

    X, y = _data(rows)
    if impl == "floor":
        model = bench_mmoe.FloorMMoE(epochs=1)
    else:
        model, _ = bench_mmoe._skmtl_estimator(1)
        if defaults:
            model.set_params(early_stopping="auto", n_iter_no_change=10, tol=1e-4)
    peaks: dict = {}
    if steps and impl == "skmtl":
        _step_profiler(peaks)
    before = _reset_peak()
    start = time.perf_counter()
    model.fit(X, y)
    seconds = time.perf_counter() - start
    return {
        "impl": impl, "rows": rows, "defaults": defaults,
        "input_mb": (X.nbytes + y.nbytes) / 2**20,
        "peak_extra_mb": _status_mb("VmHWM") - before if not steps else float("nan"),
        "fit_seconds": seconds, "steps": peaks,
    }


# ----------------------------------------------------------------- predict
def _hand_loop(clf, X):
    """The floor of predict_proba: the same lookups, the same module, nothing else."""
    import pandas as pd
    import torch

    categorical, continuous_columns = clf.encoder_.categorical, clf.encoder_.continuous
    module = clf.module_
    n = X.shape[0]
    codes = np.empty((n, len(categorical.vocabularies_)), dtype=np.int64)
    for k, (j, vocabulary) in enumerate(zip(categorical.columns, categorical.vocabularies_)):
        if isinstance(X, pd.DataFrame):
            values = X.iloc[:, j]
            lookup = np.append(vocabulary.get_indexer(values.cat.categories) + 1, 0)
            codes[:, k] = lookup[values.cat.codes.to_numpy()]
        else:
            codes[:, k] = vocabulary.get_indexer(X[:, j]) + 1
    idx = continuous_columns.columns
    raw = X.iloc[:, idx].to_numpy(np.float64) if isinstance(X, pd.DataFrame) else X[:, idx]
    continuous = ((raw - continuous_columns.mean_) / continuous_columns.scale_).astype(np.float32)
    x_cat, x_cont = torch.from_numpy(codes), torch.from_numpy(continuous)
    from skmtl._training import INFERENCE_BATCH_SIZE as size  # the same chunks as skmtl's

    chunks = []
    with torch.inference_mode():
        for start in range(0, n, size):
            logits = module(x_cat[start:start + size], x_cont[start:start + size])
            chunks.append([torch.sigmoid(z) for z in logits])
    out = []
    for parts in zip(*chunks):
        p = torch.cat(parts).double().numpy()
        out.append(np.column_stack([1 - p, p]))
    return out


def _frame(X):
    import pandas as pd

    n_cat = len(bench_mmoe.CARDINALITIES)
    columns = {f"c{j}": pd.Categorical(X[:, j].astype(np.int64)) for j in range(n_cat)}
    columns.update({f"x{j}": X[:, n_cat + j] for j in range(X.shape[1] - n_cat)})
    return pd.DataFrame(columns)


def predict_child(rows: int, repeats: int) -> dict:
    import warnings

    import torch

    warnings.filterwarnings("ignore")
    torch.set_num_threads(1)
    X, y = _data(rows)
    clf, _ = bench_mmoe._skmtl_estimator(1)
    results = {}
    for kind, data in (("array", X), ("DataFrame", _frame(X))):
        clf.fit(data[:20_000] if kind == "array" else data.iloc[:20_000], y[:20_000])
        expected, got = _hand_loop(clf, data), clf.predict_proba(data)
        difference = max(float(np.abs(a - b).max()) for a, b in zip(expected, got))
        times = {"skmtl": [], "loop": []}
        for repeat in range(repeats):
            order = ("skmtl", "loop") if repeat % 2 == 0 else ("loop", "skmtl")
            for name in order:
                start = time.perf_counter()
                clf.predict_proba(data) if name == "skmtl" else _hand_loop(clf, data)
                times[name].append(time.perf_counter() - start)
        skmtl, loop = statistics.median(times["skmtl"]), statistics.median(times["loop"])
        row = data[:1] if kind == "array" else data.iloc[:1]
        for _ in range(50):
            clf.predict_proba(row)
        latency = []
        for _ in range(2000):
            start = time.perf_counter()
            clf.predict_proba(row)
            latency.append(time.perf_counter() - start)
        results[kind] = {
            "skmtl_s": skmtl, "loop_s": loop, "ratio": loop / skmtl,
            "paired": statistics.median(b / a for a, b in zip(times["skmtl"], times["loop"])),
            "max_abs_difference": difference, "one_row_ms": 1000 * statistics.median(latency),
        }
    return results


# ------------------------------------------------------------------ driver
def _run(args: list[str]) -> dict:
    env = {**os.environ, "TQDM_DISABLE": "1"}
    out = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, env=env,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[200_000, 2_000_000])
    parser.add_argument("--predict-rows", type=int, default=200_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--memory-repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=HERE / "results" / "floor_io_latest")
    parser.add_argument("--child", nargs="*")
    args = parser.parse_args(argv)
    if args.child is not None:
        kind, *rest = args.child
        if kind == "memory":
            impl, rows, defaults, steps = rest
            result = memory_child(impl, int(rows), defaults == "1", steps == "1")
        else:
            result = predict_child(int(rest[0]), int(rest[1]))
        print(json.dumps(result))
        return 0

    load_before = os.getloadavg()[0]
    predict = _run(["predict", str(args.predict_rows), str(args.repeats)])
    memory = []
    for rows in args.rows:
        for repeat in range(args.memory_repeats):
            arms = [("floor", "0"), ("skmtl", "0"), ("skmtl", "1")]
            for impl, defaults in arms if repeat % 2 == 0 else arms[::-1]:
                memory.append(_run(["memory", impl, str(rows), defaults, "0"]))
        memory.append(_run(["memory", "skmtl", str(rows), "1", "1"]))
    load_after = os.getloadavg()[0]

    lines = [
        f"## Predict from raw input and fit memory ({datetime.now(UTC).isoformat(timespec='seconds')})",
        "",
        "- command: `" + " ".join(["python benchmarks/bench_floor_io.py", *(argv or sys.argv[1:])])
        + "`",
        f"- load average (1 min) before / after: {load_before:.2f} / {load_after:.2f}; "
        f"{os.cpu_count()} CPUs; torch on 1 thread in every child",
        "",
        f"### predict_proba, {args.predict_rows:,} rows ({args.repeats} interleaved repeats, medians)",
        "",
        "| input | skmtl s | hand-written loop s | skmtl throughput / loop's | paired | "
        "max abs difference | one row, ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for kind, r in predict.items():
        lines.append(
            f"| {kind} | {r['skmtl_s']:.3f} | {r['loop_s']:.3f} | {r['ratio']:.2f}x | "
            f"{r['paired']:.2f}x | {r['max_abs_difference']:.1e} | {r['one_row_ms']:.3f} |"
        )
    lines += [
        "",
        "### Peak extra memory of fit (1 epoch; median over repeats, each in a fresh process)",
        "",
        "| rows | input MB | floor loop MB | skmtl MB (bench_mmoe settings) | skmtl / floor | "
        "skmtl MB (defaults: early stopping) | defaults / floor |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for rows in args.rows:
        def median(impl, defaults, rows=rows):
            values = [m["peak_extra_mb"] for m in memory if m["impl"] == impl
                      and m["rows"] == rows and m["defaults"] == defaults and not m["steps"]]
            return statistics.median(values)

        floor, plain, default = median("floor", False), median("skmtl", False), median("skmtl", True)
        input_mb = next(m["input_mb"] for m in memory if m["rows"] == rows)
        lines.append(
            f"| {rows:,} | {input_mb:.0f} | {floor:.0f} | {plain:.0f} | {plain / floor:.2f}x | "
            f"{default:.0f} | {default / floor:.2f}x |"
        )
    lines += ["", "Peak extra memory of each step of skmtl's fit (defaults), MB:", ""]
    lines += ["| rows | " + " | ".join(FIT_STEPS) + " |", "|---:|" + "---:|" * len(FIT_STEPS)]
    for m in memory:
        if m["steps"]:
            lines.append(f"| {m['rows']:,} | " + " | ".join(
                f"{m['steps'].get(step, float('nan')):.0f}" for step in FIT_STEPS) + " |")
    text = "\n".join(lines) + "\n"
    print(text)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text(text)
    args.out.with_suffix(".json").write_text(json.dumps(
        {"predict": predict, "memory": memory, "load": [load_before, load_after]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
