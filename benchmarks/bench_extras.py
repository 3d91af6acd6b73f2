"""Speed figures beyond throughput: one-row latency, scaling with n, memory, threading.

Measures, on the MMoE workload of ``bench_mmoe.py`` (same generator and model shape):

- ``predict_proba`` latency for ONE row, from a numpy array and from a DataFrame
  (median of many calls after warm-up);
- fit time at n and 10 n rows (it should grow about 10x);
- peak extra memory of ``fit``: the peak resident set (VmHWM, reset just before
  the fit through ``/proc/self/clear_refs``) minus the resident set before it,
  relative to the size of the input array;
- contention: training throughput of the census fit (the example's split, the
  default MMoE, a fixed number of epochs) and of the MMoE workload, with
  skmtl's thread policy (the default), torch's default threads (policy off),
  ``OMP_WAIT_POLICY=PASSIVE`` (policy off) and one thread (``OMP_NUM_THREADS=1``),
  on a quiet machine, next to another 2-thread torch training process and next
  to a 1-thread pure-Python busy loop. Interleaved: each repeat runs every
  condition, and within it every configuration, in an order that alternates
  from repeat to repeat; medians, with the 1-minute load average of each run.

Each measurement runs in a fresh subprocess. Run: ``python benchmarks/bench_extras.py``
(about 30 minutes with the contention study; ``--contention-repeats 0`` skips
it); writes ``benchmarks/results/extras_latest.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent


def _child(kind: str, rows: int, epochs: int) -> dict:
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

    if kind == "census":
        from sklearn.model_selection import train_test_split

        from skmtl import MultiTaskClassifier
        from skmtl.datasets import load_census_income

        X, y = load_census_income(return_X_y=True)
        X, _, y, _ = train_test_split(X, y, test_size=0.2, random_state=0)
        clf = MultiTaskClassifier(
            "mmoe", random_state=0, max_iter=epochs, early_stopping=False, n_iter_no_change=epochs
        )
        return _timed_fit(clf, X, y, len(X) * epochs)
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
    out = _timed_fit(clf, X, y, rows * epochs)
    out["input_mb"] = X.nbytes / 2**20
    return out


def _status_mb(field: str) -> float:
    """A ``VmRSS``/``VmHWM`` line of /proc/self/status, in MB (NaN where there is none)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def _timed_fit(clf, X, y, samples: int) -> dict:
    import torch

    try:  # reset the peak resident set (VmHWM) to the current one
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        pass
    rss_before = _status_mb("VmRSS")
    start = time.perf_counter()
    clf.fit(X, y)
    seconds = time.perf_counter() - start
    return {
        "fit_seconds": seconds,
        "samples_per_second": samples / seconds,
        "fit_peak_extra_mb": _status_mb("VmHWM") - rss_before,
        "threads_after": torch.get_num_threads(),
    }


def _run(kind, rows, epochs, env_extra=None, timeout=None) -> dict:
    env = {**os.environ, "TQDM_DISABLE": "1", **(env_extra or {})}
    cmd = [sys.executable, __file__, "--child", kind, "--rows", str(rows), "--epochs", str(epochs)]
    out = subprocess.run(
        cmd, env=env, capture_output=True, text=True, check=True, timeout=timeout
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


TORCH_TRAINER = """
import torch
torch.manual_seed(0)
net = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 1))
opt = torch.optim.Adam(net.parameters())
x, y = torch.randn(512, 64), torch.randn(512, 1)
while True:
    opt.zero_grad()
    ((net(x) - y) ** 2).mean().backward()
    opt.step()
"""

COMPETITORS = {
    "quiet": None,
    "next to a 2-thread torch training process": (TORCH_TRAINER, {"OMP_NUM_THREADS": "2"}),
    "next to a 1-thread Python busy loop": ("while True:\n    pass\n", {}),
}

CONFIGS = {
    "skmtl default (thread policy)": {},
    "torch's default threads (policy off)": {"SKMTL_THREAD_POLICY": "off"},
    "OMP_WAIT_POLICY=PASSIVE (policy off)": {
        "SKMTL_THREAD_POLICY": "off", "OMP_WAIT_POLICY": "PASSIVE"
    },
    "one thread (OMP_NUM_THREADS=1)": {"OMP_NUM_THREADS": "1"},
}


def _start_competitor(condition: str):
    spec = COMPETITORS[condition]
    if spec is None:
        return None
    code, env = spec
    process = subprocess.Popen([sys.executable, "-c", code], env={**os.environ, **env})
    time.sleep(1.0)
    return process


def _with_competitor(fn, condition="next to a 2-thread torch training process"):
    """Run fn() while a competing process runs."""
    busy = _start_competitor(condition)
    try:
        return fn()
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()


def _load() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def contention_study(workloads: dict, repeats: int, timeout: float) -> list[dict]:
    """Every (workload, condition, config) ``repeats`` times, interleaved; one record per run."""
    records = []
    for repeat in range(repeats):
        for condition in COMPETITORS:
            busy = _start_competitor(condition)
            try:
                for workload, (kind, rows, epochs) in workloads.items():
                    names = list(CONFIGS)
                    if (repeat + list(COMPETITORS).index(condition)) % 2:
                        names.reverse()
                    for name in names:
                        load = _load()
                        try:
                            run = _run(kind, rows, epochs, CONFIGS[name], timeout=timeout)
                        except subprocess.TimeoutExpired:
                            run = {"samples_per_second": float("nan"), "fit_seconds": float("nan")}
                        records.append({
                            "workload": workload, "condition": condition, "config": name,
                            "repeat": repeat, "load_before": load, **run,
                        })
                        print(f"{workload} | {condition} | {name}: "
                              f"{run['samples_per_second']:,.0f} samples/s (load {load:.2f})",
                              file=sys.stderr, flush=True)
            finally:
                if busy is not None:
                    busy.kill()
                    busy.wait()
    return records


def _nanmedian(values):
    import math

    import numpy as np

    values = [v for v in values if not math.isnan(v)]
    return float(np.median(values)) if values else float("nan")


def contention_table(records: list[dict], timeout: float) -> list[str]:
    """Markdown: median samples/s per (workload, condition, config) and ratios within the run."""
    lines = [
        "| workload | condition | configuration | train samples/s (median) | vs same config quiet "
        "| vs torch's default quiet | load avg (median) | runs |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    cell = {}
    for r in records:
        cell.setdefault((r["workload"], r["condition"], r["config"]), []).append(r)
    base = list(CONFIGS)[1]
    for (workload, condition, config), runs in cell.items():
        median = _nanmedian([r["samples_per_second"] for r in runs])
        quiet = _nanmedian(
            [r["samples_per_second"] for r in cell[(workload, "quiet", config)]]
        )
        torch_quiet = _nanmedian(
            [r["samples_per_second"] for r in cell[(workload, "quiet", base)]]
        )
        timed_out = sum(math.isnan(r["samples_per_second"]) for r in runs)
        runs_text = f"{len(runs)}" + (f" ({timed_out} over {timeout:.0f} s)" if timed_out else "")
        lines.append(
            f"| {workload} | {condition} | {config} | {median:,.0f} | {median / quiet:.2f}x | "
            f"{median / torch_quiet:.2f}x | "
            f"{_nanmedian([r['load_before'] for r in runs]):.2f} | {runs_text} |"
        )
    return lines


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
    parser.add_argument("--contention-repeats", type=int, default=3)
    parser.add_argument("--contention-rows", type=int, default=200_000)
    parser.add_argument("--census-epochs", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=240.0,
                        help="seconds after which a contention run is stopped")
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
    load_alone = _load()
    lines = [
        f"## skmtl speed extras ({datetime.now(UTC).isoformat(timespec='seconds')})",
        "",
        f"- command: `python benchmarks/bench_extras.py --rows {n} --epochs {args.epochs} "
        f"--contention-repeats {args.contention_repeats}`; MMoE workload of bench_mmoe.py, "
        f"batch 1024, {os.cpu_count()} CPUs; 1-minute load average before the runs "
        f"{load_before:.2f} and after the latency and scaling runs {load_alone:.2f} (our own "
        "runs count; well above 1 the machine was shared by something else). Fit times "
        "exclude the one-off `import torch._dynamo` of a process's first optimizer.",
        "",
        "| measurement | value |",
        "|---|---:|",
        f"| predict_proba, 1 row, numpy (median ms) | {latency['numpy']:.3f} |",
        f"| predict_proba, 1 row, DataFrame (median ms) | {latency['DataFrame']:.3f} |",
        f"| fit time, {n:,} rows (s, median of 3) | {small['fit_seconds']:.2f} |",
        f"| fit time, {10 * n:,} rows (s, median of 3) | {large['fit_seconds']:.2f} |",
        f"| growth for 10x rows | {large['fit_seconds'] / small['fit_seconds']:.1f}x |",
        f"| input array, {10 * n:,} rows (MB) | {large['input_mb']:.1f} |",
        f"| peak extra RSS of fit, VmHWM (MB) | {large['fit_peak_extra_mb']:.1f} |",
        f"| peak extra RSS of fit / input size | "
        f"{large['fit_peak_extra_mb'] / large['input_mb']:.1f}x |",
    ]
    records = []
    if args.contention_repeats:
        workloads = {
            f"census fit ({args.census_epochs} epochs)": ("census", 0, args.census_epochs),
            f"MMoE workload ({args.contention_rows:,} rows, {args.epochs} epochs)": (
                "fit", args.contention_rows, args.epochs
            ),
        }
        records = contention_study(workloads, args.contention_repeats, args.timeout)
        lines += [
            "",
            f"Contention ({args.contention_repeats} interleaved repeats; a run stopped after "
            f"{args.timeout:.0f} s counts as missing):",
            "",
            *contention_table(records, args.timeout),
        ]
    Path(args.out).with_suffix(".json").write_text(json.dumps(
        {"latency": latency, "scaling": sizes, "contention": records}, indent=1
    ))
    text = "\n".join(lines) + "\n"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
