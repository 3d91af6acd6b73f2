"""Time one GridSearchCV over skmtl in this process and on a local Dask cluster.

The same search (8 candidates x 3 folds = 24 fits, ``refit=False`` so that only
the fits that can run in parallel are timed) runs:

- ``sequential``: ``n_jobs=1``, every fit in this process (torch on one thread);
- ``dask, W workers``: under ``joblib.parallel_config(backend="dask")`` on a
  ``distributed.LocalCluster`` of W worker processes with one thread each, for
  each W of ``--workers`` (default 1 and 2);
- ``ray, C CPUs`` (with ``--ray``): under Ray's joblib backend on a local Ray
  instance started with ``num_cpus=C``, for the same values.

Each cluster is started once per worker count; its start-up and the import of
skmtl on its workers are timed apart, then the search is timed ``--repeats``
times. skmtl is deterministic given an int ``random_state``, so every run must
give the sequential run's test scores bit for bit: the script checks it and
fails otherwise.

The machine may be shared: the report gives, for each timed run, the share of
the CPUs used by other processes meanwhile (from ``/proc/stat``, less the CPU
time of this process and its children). With ``--wait-idle SECONDS`` each run
first waits up to that long for the machine to be idle.

Run from the repository root, with the ``distributed`` extra installed::

    OMP_NUM_THREADS=1 python benchmarks/dask_search.py

It prints a Markdown report and writes it to
``benchmarks/results/dask_search.md`` (``--out ''`` writes nothing).
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "results" / "dask_search.md"

GRID = [
    {"architecture": ["shared_bottom"], "expert_layer_sizes": [(32,), (64, 32)]},
    {"architecture": ["moe", "mmoe"], "n_experts": [2, 4]},
    {"architecture": ["ple", "single_task"]},
]
N_SPLITS = 3


def _n_candidates():
    from sklearn.model_selection import ParameterGrid

    return len(ParameterGrid(GRID))


# ------------------------------------------------------------------ CPU accounting
def _cpu_jiffies():
    """(busy, total) jiffies of the whole machine, from /proc/stat; None where absent."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except OSError:
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def _own_cpu_seconds():
    """CPU seconds of this process and of its living children (the cluster's workers)."""
    import psutil

    me = psutil.Process()
    total = 0.0
    for proc in [me, *me.children(recursive=True)]:
        try:
            t = proc.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


class CpuMeter:
    """The share of all CPUs that processes other than ours used during a block."""

    def __enter__(self):
        self.start = _cpu_jiffies()
        self.own = _own_cpu_seconds()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        self.wall = time.perf_counter() - self.t0
        end = _cpu_jiffies()
        own = _own_cpu_seconds() - self.own
        self.others_share = None
        if self.start is not None and end is not None and end[1] > self.start[1]:
            tick = os.sysconf("SC_CLK_TCK")
            busy_s = (end[0] - self.start[0]) / tick
            capacity_s = (end[1] - self.start[1]) / tick  # summed over the CPUs
            self.others_share = max(0.0, (busy_s - own) / capacity_s)
        return False


def _wait_until_idle(limit_s, threshold=0.15):
    """Wait up to ``limit_s`` seconds until the CPUs are under ``threshold`` busy."""
    deadline = time.monotonic() + limit_s
    busy = None
    while True:
        a = _cpu_jiffies()
        time.sleep(1.0)
        b = _cpu_jiffies()
        if a is None or b is None:
            return None
        busy = (b[0] - a[0]) / max(1, b[1] - a[1])
        if busy < threshold or time.monotonic() > deadline:
            return busy


# ------------------------------------------------------------------ the search
def make_data(rows, seed=0):
    from skmtl.datasets import make_multitask_classification

    # 4 categorical (binned) columns and 12 continuous ones, 2 tasks.
    return make_multitask_classification(
        n_samples=rows, n_features=16, n_categorical=4, random_state=seed
    )


def make_search(max_iter, n_jobs):
    from sklearn.model_selection import GridSearchCV, KFold

    from skmtl import MultiTaskClassifier, metrics

    estimator = MultiTaskClassifier(
        max_iter=max_iter, batch_size=128, early_stopping=False, random_state=0, device="cpu"
    )
    return GridSearchCV(
        estimator, GRID, cv=KFold(N_SPLITS), n_jobs=n_jobs, refit=False,
        scoring=metrics.get_scorer("mean_roc_auc"),
    )


def cv_test_scores(search):
    keys = [f"split{i}_test_score" for i in range(N_SPLITS)]
    return np.column_stack([search.cv_results_[k] for k in keys])


def timed_search(X, y, args, backend=None, **backend_kwargs):
    import joblib

    if args.wait_idle > 0:
        _wait_until_idle(args.wait_idle)
    search = make_search(args.max_iter, n_jobs=1 if backend is None else -1)
    with CpuMeter() as meter:
        if backend is None:
            search.fit(X, y)
        else:
            with joblib.parallel_config(backend=backend, **backend_kwargs):
                search.fit(X, y)
    return meter.wall, meter.others_share, cv_test_scores(search)


def _warm_up():
    import torch

    import skmtl  # noqa: F401  (imports torch and scikit-learn)

    return torch.get_num_threads()


def run_dask(n_workers, X, y, args, log):
    from distributed import Client, LocalCluster

    # joblib runs a call whose backend offers ONE slot in the calling process
    # (effective n_jobs == 1): a cluster of one single-threaded worker would not be
    # used at all. That worker gets two threads and one "slot" resource instead,
    # and every fit asks for the slot: the fits run on the worker, one at a time.
    one_slot = n_workers == 1
    cluster_kwargs = (
        dict(threads_per_worker=2, resources={"slot": 1}) if one_slot
        else dict(threads_per_worker=1)
    )
    backend_kwargs = dict(resources={"slot": 1}) if one_slot else {}
    t0 = time.perf_counter()
    with LocalCluster(n_workers=n_workers, processes=True, dashboard_address=":0",
                      **cluster_kwargs) as cluster, Client(cluster) as client:
        client.wait_for_workers(n_workers, timeout=120)
        threads = sorted(set(client.run(_warm_up).values()))
        startup = time.perf_counter() - t0
        log(f"[dask {n_workers}] cluster up and skmtl imported in {startup:.1f} s; "
            f"torch threads per worker: {threads}")
        runs = []
        for r in range(args.repeats):
            with _count_worker_tasks(client) as counted:
                wall, others, scores = timed_search(X, y, args, "dask", **backend_kwargs)
            if counted.n_tasks == 0:
                raise SystemExit(f"dask {n_workers}: no task ran on the cluster")
            log(f"[dask {n_workers}] run {r + 1}: {wall:.1f} s, {counted.n_tasks} dask tasks"
                + (f" (others used {others:.0%} of the CPUs)" if others is not None else ""))
            runs.append((wall, others, scores))
    return startup, threads, runs


class _count_worker_tasks:
    """How many tasks the cluster ran during a block (joblib batches several fits per task)."""

    def __init__(self, client):
        from distributed import get_task_stream

        self._stream = get_task_stream(client)

    def __enter__(self):
        self._stream.__enter__()
        return self

    def __exit__(self, *exc):
        self._stream.__exit__(*exc)
        self.n_tasks = len(self._stream.data)
        return False


def run_ray(n_cpus, X, y, args, log):
    """Ray's joblib backend on a local Ray instance with ``n_cpus`` CPUs (2 or more:
    with one CPU joblib would run the search in this process)."""
    import ray
    from joblib.pool import PicklingPool
    from ray.util.joblib import register_ray

    bases = PicklingPool.__bases__
    register_ray()
    t0 = time.perf_counter()
    ray.init(num_cpus=n_cpus, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    try:
        threads = sorted(set(ray.get(
            [ray.remote(num_cpus=1)(_warm_up).remote() for _ in range(n_cpus)]
        )))
        startup = time.perf_counter() - t0
        log(f"[ray {n_cpus}] started in {startup:.1f} s; torch threads per worker: {threads}")
        runs = []
        for r in range(args.repeats):
            wall, others, scores = timed_search(X, y, args, "ray")
            log(f"[ray {n_cpus}] run {r + 1}: {wall:.1f} s"
                + (f" (others used {others:.0%} of the CPUs)" if others is not None else ""))
            runs.append((wall, others, scores))
    finally:
        ray.shutdown()
        PicklingPool.__bases__ = bases
    return startup, threads, runs


# ------------------------------------------------------------------ report
def _fmt_share(values):
    values = [v for v in values if v is not None]
    return "n/a" if not values else ", ".join(f"{v:.0%}" for v in values)


def report(args, rows_out, meta):
    lines = [
        "# GridSearchCV over skmtl on a local Dask cluster",
        "",
        f"{meta['candidates']} candidates x {N_SPLITS} folds = {meta['candidates'] * N_SPLITS} "
        f"fits of `MultiTaskClassifier(max_iter={args.max_iter}, batch_size=128, "
        f"early_stopping=False)` on {args.rows} rows (16 features, 4 of them categorical, "
        f"2 tasks), `refit=False`. Wall times of the search alone, {args.repeats} runs "
        "each; the cluster's start-up (and the import of skmtl on its workers) is "
        "timed apart. Every run gave the sequential run's test scores bit for bit.",
        "",
        "| run | workers | search wall s (median) | runs s | speed-up vs sequential "
        "| speed-up vs 1 worker | start-up s | torch threads per worker "
        "| CPU share used by others |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    medians = {(name, workers): statistics.median(w for w, _, _ in runs)
               for name, workers, _, _, runs in rows_out}
    seq, one = medians.get(("sequential", 1)), medians.get(("dask", 1))
    for name, workers, startup, threads, runs in rows_out:
        med = medians[(name, workers)]
        vs_seq = "" if seq is None or name == "sequential" else f"{seq / med:.2f}x"
        vs_one = "" if one is None or name == "sequential" else f"{one / med:.2f}x"
        lines.append(
            f"| {name} | {workers} | {med:.1f} | "
            + ", ".join(f"{w:.1f}" for w, _, _ in runs)
            + f" | {vs_seq} | {vs_one} | {'' if startup is None else f'{startup:.1f}'} | "
            f"{'' if threads is None else ', '.join(map(str, threads))} | "
            f"{_fmt_share([o for _, o, _ in runs])} |"
        )
    lines += [
        "",
        "The one-worker cluster has two threads and one `slot` resource that every "
        "fit asks for, so that the fits run on the worker one at a time: with a "
        "single thread in the whole cluster, joblib would run the search in the "
        "client process (effective `n_jobs` of 1) and the cluster would stay idle."
        + (" Ray's joblib backend starts a new pool of actor processes for each "
           "joblib call; that start is part of its search time." if any(
               r[0] == "ray" for r in rows_out) else ""),
    ]
    lines += [
        "",
        f"Machine: {meta['cpus']} CPUs ({platform.machine()}), Python {platform.python_version()}, "
        f"torch {meta['torch']}, scikit-learn {meta['sklearn']}, joblib {meta['joblib']}, "
        f"distributed {meta['distributed']}"
        + (f", ray {meta['ray']}" if meta.get("ray") else "")
        + f"; load average before the runs {meta['load']}; {meta['date']}.",
        "",
        f"Command: `{meta['command']}`",
        "",
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=4000, help="rows of data (default 4000)")
    parser.add_argument("--max-iter", type=int, default=8, help="epochs per fit (default 8)")
    parser.add_argument("--workers", default="1,2",
                        help="comma-separated worker counts (default 1,2)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per setting")
    parser.add_argument("--no-sequential", action="store_true",
                        help="skip the in-process n_jobs=1 run")
    parser.add_argument("--ray", action="store_true",
                        help="also time Ray's joblib backend (num_cpus = each worker count)")
    parser.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                        help="before each run, wait up to SECONDS for the CPUs to be idle")
    parser.add_argument("--out", default=str(DEFAULT_OUT),
                        help="Markdown report path ('' to write nothing)")
    args = parser.parse_args(argv)

    import joblib
    import sklearn
    import torch

    # The in-process run uses one torch thread, like each worker.
    torch.set_num_threads(1)
    import distributed

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    X, y = make_data(args.rows)
    meta = {
        "candidates": _n_candidates(), "cpus": os.cpu_count(), "torch": torch.__version__,
        "sklearn": sklearn.__version__, "joblib": joblib.__version__,
        "distributed": distributed.__version__,
        "load": ", ".join(f"{v:.2f}" for v in os.getloadavg()),
        "date": _dt.date.today().isoformat(),
        "command": "OMP_NUM_THREADS=1 python benchmarks/dask_search.py "
                   + " ".join(argv if argv is not None else sys.argv[1:]),
    }
    rows_out, reference = [], None

    def check(scores, label):
        nonlocal reference
        if reference is None:
            reference = scores
        elif not np.array_equal(reference, scores):
            raise SystemExit(f"{label}: test scores differ from the first run's")

    if not args.no_sequential:
        make_search(1, n_jobs=1).estimator.fit(X[:200], y[:200])  # warm up this process
        runs = []
        for r in range(args.repeats):
            wall, others, scores = timed_search(X, y, args)
            log(f"[sequential] run {r + 1}: {wall:.1f} s"
                + (f" (others used {others:.0%} of the CPUs)" if others is not None else ""))
            check(scores, "sequential")
            runs.append((wall, others, scores))
        rows_out.append(("sequential", 1, None, [torch.get_num_threads()], runs))

    counts = [int(w) for w in args.workers.split(",") if w.strip()]
    for n in counts:
        startup, threads, runs = run_dask(n, X, y, args, log)
        for _, _, scores in runs:
            check(scores, f"dask {n}")
        rows_out.append(("dask", n, startup, threads, runs))
    if args.ray:
        import ray

        meta["ray"] = ray.__version__
        for n in [c for c in counts if c > 1]:
            startup, threads, runs = run_ray(n, X, y, args, log)
            for _, _, scores in runs:
                check(scores, f"ray {n}")
            rows_out.append(("ray", n, startup, threads, runs))

    text = report(args, rows_out, meta)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
        log(f"wrote {args.out}")


if __name__ == "__main__":
    main()
