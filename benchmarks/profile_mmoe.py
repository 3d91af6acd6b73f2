"""Profile one implementation of bench_mmoe.py's MMoE (floor or skmtl).

Fits on the benchmark's workload under torch.profiler (op level) or cProfile
(Python level) and prints the top entries, e.g.::

    python benchmarks/profile_mmoe.py --impl skmtl --rows 50000 --epochs 1
    python benchmarks/profile_mmoe.py --impl floor --mode cprofile

Timings under a profiler are inflated; compare the shares and the number of
calls per batch between ``floor`` and ``skmtl`` rather than absolute times.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_mmoe as bench


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--impl", choices=("floor", "skmtl"), default="skmtl")
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--mode", choices=("torch", "cprofile"), default="torch")
    parser.add_argument("--predict", action="store_true", help="profile predict instead of fit")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args(argv)

    warnings.filterwarnings("ignore")
    import torch
    import torch._dynamo

    if args.threads:
        torch.set_num_threads(args.threads)
    data = bench.make_workload(args.rows, 20_000, seed=0)
    X, y, X_test = data["X_train"], data["y_train"], data["X_test"]

    def make():
        if args.impl == "floor":
            return bench.FloorMMoE(args.epochs)
        return bench._skmtl_estimator(args.epochs)[0]

    # Warm up once on a little data (lazy initialisations, allocator).
    make().fit(X[:2048], y[:2048])
    model = make()
    if args.predict:
        model.fit(X, y)
        work = lambda: model.predict_proba(X_test)
        n = X_test.shape[0]
    else:
        work = lambda: model.fit(X, y)
        n = X.shape[0] * args.epochs

    if args.mode == "cprofile":
        profiler = cProfile.Profile()
        start = time.perf_counter()
        profiler.runcall(work)
        elapsed = time.perf_counter() - start
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("tottime").print_stats(args.top)
        stats.sort_stats("cumulative").print_stats(args.top)
        print(out.getvalue())
    else:
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            start = time.perf_counter()
            work()
            elapsed = time.perf_counter() - start
        events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
        total = sum(e.self_cpu_time_total for e in events) or 1.0
        n_batches = -(-X.shape[0] // bench.BATCH_SIZE) * args.epochs
        print(f"{'op':<58} {'self %':>7} {'self ms':>9} {'calls':>7} {'per batch':>9}")
        for e in events[: args.top]:
            print(f"{e.key[:58]:<58} {100 * e.self_cpu_time_total / total:7.2f} "
                  f"{e.self_cpu_time_total / 1e3:9.1f} {e.count:7d} "
                  f"{e.count / n_batches:9.2f}")
    print(f"{args.impl} {'predict' if args.predict else 'fit'}: {n / elapsed:,.0f} samples/s "
          f"under the profiler ({elapsed:.2f} s, {torch.get_num_threads()} thread(s))")
    return 0


if __name__ == "__main__":
    sys.exit(main())
