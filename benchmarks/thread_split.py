"""A candidate for the busy-machine problem, measured: two Python threads on half batches.

torch's OpenMP threads spin at every barrier, so a step on two threads
collapses next to another busy process (``bench_extras.py``'s contention
study); one thread never waits for a partner but runs at a third of a core's
share next to a 2-thread process, and at 0.6x of two threads on an idle
machine. Python threads that block (not spin) when they wait could get a full
core's share between them and still use both cores when the machine is idle:
this script measures that idea on the census MMoE before anyone builds it.

Three ways to run one training step of the same module, on the same batches:

- ``T1``: the whole batch on one torch thread;
- ``T2``: the whole batch on torch's two OpenMP threads (skmtl's thread
  policy turned off);
- ``P2``: two Python threads, each with one torch thread, each computing the
  forward pass, the loss and ``torch.autograd.grad`` of half the batch (the
  loss scaled so that the two halves sum to the batch's); the gradients are
  added in a fixed order and Adam steps once.

The module is what ``MultiTaskClassifier("mmoe", random_state=0)`` builds for
the census example's training split (batches of 512 rows), or the MMoE of
``bench_mmoe.py``'s workload and settings (batches of 1,024 rows), fitted for
one epoch first so that the encoder and the network exist; the steps are
timed for ``--steps`` batches after 20 warm-up steps. Each (condition, mode) runs ``--repeats``
times in a fresh process, interleaved: quiet, then next to the 2-thread torch
trainer of ``bench_extras.py`` (started a second before the run, killed
after), with the 1-minute load average recorded before each run. Throughputs
are medians, reported as ratios within the run.

Run: ``python benchmarks/thread_split.py [--repeats 3] [--steps 300]
[--workloads census mmoe]`` (about 8 minutes on 2 cores). Writes ``benchmarks/results/thread_split_latest.md``
and ``.json``.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
MODES = ("T1", "T2", "P2")
BATCH = {"census": 512, "mmoe": 1024}
"""Rows per batch: the census estimator's default, bench_mmoe.py's setting."""


def child(mode: str, steps: int, workload: str = "census") -> dict:
    """Time ``steps`` training steps of the workload's MMoE in ``mode``; this process only."""
    import warnings
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np
    import torch
    from sklearn.model_selection import train_test_split

    import skmtl
    from skmtl import MultiTaskClassifier
    from skmtl.datasets import load_census_income

    warnings.filterwarnings("ignore")
    skmtl.set_config(thread_policy="off")
    torch.set_num_threads(1)
    batch = BATCH[workload]
    if workload == "census":
        X, y = load_census_income(return_X_y=True)
        X, _, y, _ = train_test_split(X, y, test_size=0.2, random_state=0)
        clf = MultiTaskClassifier("mmoe", random_state=0, max_iter=1, early_stopping=False)
    else:  # bench_mmoe.py's workload and estimator settings
        sys.path.insert(0, str(HERE))
        import bench_mmoe

        data = bench_mmoe.make_workload(200_000, 2_000, seed=0)
        X, y = data["X_train"], data["y_train"]
        clf = bench_mmoe._skmtl_estimator(1)[0]
    clf.fit(X, y)
    net = clf.module_.train()
    inputs = clf._encode(X)
    labels = torch.as_tensor(np.asarray(y, dtype=np.float32))
    params = [p for p in net.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=1e-3)

    def loss(rows: slice) -> torch.Tensor:
        logits = net(*[t[rows] for t in inputs])
        return sum(
            torch.nn.functional.binary_cross_entropy_with_logits(
                z.reshape(-1), labels[rows, t], reduction="sum"
            )
            for t, z in enumerate(logits)
        ) / batch

    if mode in ("T1", "T2"):
        torch.set_num_threads(int(mode[1]))

        def step(start: int) -> None:
            optimizer.zero_grad(set_to_none=True)
            loss(slice(start, start + batch)).backward()
            optimizer.step()
    else:
        pool = ThreadPoolExecutor(2, initializer=torch.set_num_threads, initargs=(1,))
        half = batch // 2

        def part(rows: slice):
            return torch.autograd.grad(loss(rows), params)

        def step(start: int) -> None:
            first, second = (
                pool.submit(part, slice(start + k * half, start + (k + 1) * half)) for k in (0, 1)
            )
            for p, a, b in zip(params, first.result(), second.result()):
                p.grad = a + b
            optimizer.step()

    n = len(labels) - batch
    for s in range(20):
        step((s * batch) % n)
    start = time.perf_counter()
    for s in range(steps):
        step((s * batch) % n)
    seconds = time.perf_counter() - start
    return {"mode": mode, "samples_per_second": steps * batch / seconds, "seconds": seconds}


def trainer_code() -> str:
    """bench_extras.py's competitor: a small torch model trained in a loop."""
    sys.path.insert(0, str(HERE))
    import bench_extras

    return bench_extras.TORCH_TRAINER


def run(repeats: int, steps: int, workloads: list[str]) -> list[dict]:
    records = []
    for workload in workloads:
        for condition in ("quiet", "busy"):
            for repeat in range(repeats):
                for mode in MODES:
                    busy = None
                    if condition == "busy":
                        env = {**os.environ, "OMP_NUM_THREADS": "2"}
                        busy = subprocess.Popen([sys.executable, "-c", trainer_code()], env=env)
                        time.sleep(1.0)
                    load = os.getloadavg()[0]
                    command = [sys.executable, __file__, "--child", mode, "--steps", str(steps),
                               "--workloads", workload]
                    try:
                        out = subprocess.run(
                            command, capture_output=True, text=True, check=True, timeout=600
                        ).stdout
                    finally:
                        if busy is not None:
                            busy.kill()
                            busy.wait()
                    record = json.loads(out.strip().splitlines()[-1])
                    record.update(workload=workload, condition=condition, repeat=repeat, load=load)
                    records.append(record)
                    print(f"{workload} {condition} {mode} #{repeat}: "
                          f"{record['samples_per_second']:,.0f} samples/s (load {load:.2f})",
                          flush=True)
    return records


def table(records: list[dict]) -> list[str]:
    """One row per (workload, condition, mode): medians, as ratios within the run."""
    lines = [
        ("| workload | condition | mode | samples/s (median) | vs T2 quiet | vs same mode quiet "
         "| load (median) | runs |"),
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    runs = {}  # (workload, condition, mode) -> its records
    for r in records:
        runs.setdefault((r["workload"], r["condition"], r["mode"]), []).append(r)
    for workload in dict.fromkeys(r["workload"] for r in records):
        median = {(c, m): statistics.median(r["samples_per_second"] for r in runs[workload, c, m])
                  for c in ("quiet", "busy") for m in MODES}
        for (condition, mode), value in median.items():
            load = statistics.median(r["load"] for r in runs[workload, condition, mode])
            lines.append(
                f"| {workload} | {condition} | {mode} | {value:,.0f} | "
                f"{value / median[('quiet', 'T2')]:.2f}x | {value / median[('quiet', mode)]:.2f}x "
                f"| {load:.2f} | {len(runs[workload, condition, mode])} |"
            )
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--workloads", nargs="+", choices=sorted(BATCH), default=["census", "mmoe"])
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--output", type=Path, default=RESULTS / "thread_split_latest.md")
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(child(args.child, args.steps, args.workloads[0])))
        return 0
    import torch

    records = run(args.repeats, args.steps, args.workloads)
    lines = [
        "# Two Python threads on half batches, against torch's threads",
        "",
        (f"- command: `python benchmarks/thread_split.py --repeats {args.repeats} "
         f"--steps {args.steps} --workloads {' '.join(args.workloads)}`; "
         f"{_dt.datetime.now(_dt.UTC):%Y-%m-%d %H:%M} UTC"),
        (f"- software: torch {torch.__version__}, Python {platform.python_version()}; "
         f"{os.cpu_count()} CPUs ({platform.machine()})"),
        ("- workloads: census = the MMoE of MultiTaskClassifier('mmoe', random_state=0) on the "
         "census example's training split, batches of 512 rows; mmoe = bench_mmoe.py's "
         "workload and estimator (200,000 rows), batches of 1,024 rows; "
         f"{args.steps} timed steps per run; busy = next to bench_extras.py's 2-thread torch "
         "trainer; the runs interleaved (quiet repeats, then busy repeats, the modes in turn)"),
        ("- modes: T1 one torch thread; T2 torch's two threads; P2 two Python threads on "
         "half batches, one torch thread each"),
        "",
        *table(records),
        "",
    ]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines))
    args.output.with_suffix(".json").write_text(json.dumps(records, indent=1))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
