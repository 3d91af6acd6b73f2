"""Speed figures beyond throughput: one-row latency, scaling with n, memory, threading.

Measures, on the MMoE workload of ``bench_mmoe.py`` (same generator and model shape):

- ``predict_proba`` latency for ONE row, from a numpy array and from a DataFrame
  (median of many calls after warm-up);
- fit time at n and 10 n rows (it should grow about 10x);
- peak memory of ``fit`` (RSS growth during fit) relative to the size of the input array;
- training throughput with torch's default OpenMP threading and with
  ``OMP_WAIT_POLICY=PASSIVE``, alone and with a competing process on the other core.

Each measurement runs in a fresh subprocess. Run: ``python benchmarks/bench_extras.py``
(a few minutes); writes ``benchmarks/results/extras_latest.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _child(kind: str, rows: int, epochs: int) -> dict:
    import resource
    import warnings

    import numpy as np
    import pandas as pd
    import torch

    sys.path.insert(0, str(HERE))
    import bench_mmoe as bench

    warnings.filterwarnings("ignore")
    # The first torch.optim optimizer of a process imports torch._dynamo (about 1 s,
    # once per process): done here, outside the timed fit, as in bench_mmoe.py.
    import torch._dynamo  # noqa: F401

    data = bench.make_workload(rows, 2000, seed=0)
    X, y = data["X_train"], data["y_train"]
    clf, _ = bench._skmtl_estimator(epochs)
    if kind == "latency":
        clf.fit(X, y)
        frame = pd.DataFrame(data["X_test"], columns=[f"c{j}" for j in range(X.shape[1])])
        clf_frame = bench._skmtl_estimator(1)[0].fit(
            pd.DataFrame(X, columns=frame.columns), y
        )
        out = {}
        for name, model, row in (
            ("numpy", clf, data["X_test"][:1]),
            ("DataFrame", clf_frame, frame.iloc[:1]),
        ):
            for _ in range(50):
                model.predict_proba(row)
            times = []
            for _ in range(300):
                start = time.perf_counter()
                model.predict_proba(row)
                times.append(time.perf_counter() - start)
            out[name] = float(np.median(times) * 1e3)
        return out
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    start = time.perf_counter()
    clf.fit(X, y)
    seconds = time.perf_counter() - start
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "fit_seconds": seconds,
        "samples_per_second": rows * epochs / seconds,
        "input_mb": X.nbytes / 2**20,
        "fit_peak_growth_mb": rss_after - rss_before,
        "threads": torch.get_num_threads(),
    }


def _run(kind, rows, epochs, env_extra=None) -> dict:
    env = {**os.environ, "TQDM_DISABLE": "1", **(env_extra or {})}
    cmd = [sys.executable, __file__, "--child", kind, "--rows", str(rows), "--epochs", str(epochs)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def _with_competitor(fn):
    """Run fn() while another process keeps one core busy with its own OpenMP work."""
    busy = subprocess.Popen(
        [sys.executable, "-c", "import torch\na=torch.randn(800,800)\nwhile True: a@a"],
        env={**os.environ, "OMP_NUM_THREADS": "2"},
    )
    try:
        time.sleep(1.0)
        return fn()
    finally:
        busy.kill()


def _median_run(runs: list[dict]) -> dict:
    """The run with the median fit time."""
    return sorted(runs, key=lambda r: r["fit_seconds"])[len(runs) // 2]


def _wait_for_quiet(limit: float = 120.0) -> None:
    """Wait (up to ``limit`` s) for the 1-minute load average to fall below 0.5."""
    deadline = time.time() + limit
    while hasattr(os, "getloadavg") and os.getloadavg()[0] > 0.5 and time.time() < deadline:
        time.sleep(5)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--out", default=str(HERE / "results" / "extras_latest.md"))
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(_child(args.child, args.rows, args.epochs)))
        return 0

    n = args.rows
    _wait_for_quiet()
    load_before = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    latency = _run("latency", n, 1)
    # Scaling: 3 fits at n and 3 at 10 n, alternated; medians.
    sizes = [_run("fit", rows, args.epochs) for _ in range(3) for rows in (n, 10 * n)]
    small = _median_run(sizes[0::2])
    large = _median_run(sizes[1::2])
    default = _run("fit", 10 * n, args.epochs)
    passive = _run("fit", 10 * n, args.epochs, {"OMP_WAIT_POLICY": "PASSIVE"})
    load_alone = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    default_busy = _with_competitor(lambda: _run("fit", 10 * n, args.epochs))
    passive_busy = _with_competitor(
        lambda: _run("fit", 10 * n, args.epochs, {"OMP_WAIT_POLICY": "PASSIVE"})
    )
    lines = [
        f"## skmtl speed extras ({datetime.now(timezone.utc).isoformat(timespec='seconds')})",
        "",
        f"- command: `python benchmarks/bench_extras.py --rows {n} --epochs {args.epochs}`; "
        f"MMoE workload of bench_mmoe.py, batch 1024, {os.cpu_count()} CPUs; "
        f"1-minute load average before the runs {load_before:.2f} and after the runs "
        f"without a competing process {load_alone:.2f} (our own runs count; well above 1 "
        "the machine was shared by something else). Fit times exclude the one-off "
        "`import torch._dynamo` of a process's first optimizer.",
        "",
        "| measurement | value |",
        "|---|---:|",
        f"| predict_proba, 1 row, numpy (median ms) | {latency['numpy']:.3f} |",
        f"| predict_proba, 1 row, DataFrame (median ms) | {latency['DataFrame']:.3f} |",
        f"| fit time, {n:,} rows (s, median of 3) | {small['fit_seconds']:.2f} |",
        f"| fit time, {10 * n:,} rows (s, median of 3) | {large['fit_seconds']:.2f} |",
        f"| growth for 10x rows | {large['fit_seconds'] / small['fit_seconds']:.1f}x |",
        f"| input array, {10 * n:,} rows (MB) | {large['input_mb']:.1f} |",
        f"| peak RSS growth during fit (MB) | {large['fit_peak_growth_mb']:.1f} |",
        f"| peak fit memory / input size | {large['fit_peak_growth_mb'] / large['input_mb']:.1f}x |",
        f"| train samples/s, default OpenMP, no extra load | {default['samples_per_second']:,.0f} |",
        f"| train samples/s, OMP_WAIT_POLICY=PASSIVE, no extra load | {passive['samples_per_second']:,.0f} |",
        f"| train samples/s, default OpenMP, other core busy | {default_busy['samples_per_second']:,.0f} |",
        f"| train samples/s, OMP_WAIT_POLICY=PASSIVE, other core busy | {passive_busy['samples_per_second']:,.0f} |",
    ]
    text = "\n".join(lines) + "\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
