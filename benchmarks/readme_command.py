"""Wall time of README's first command, on a quiet machine and next to a busy process.

README's first command makes a fresh virtual environment, installs torch and
skmtl into it, then runs the demo ``examples/census_income.py`` (shared-bottom,
MoE and MMoE with their defaults on the bundled census-income data). This
script times the two parts separately:

- the demo, with the figure drawn, as README runs it: ``--repeats`` times on a
  quiet machine and as often next to another process training a small torch
  model on two threads (the competitor of ``bench_extras.py``'s contention
  study), interleaved (quiet then busy, busy then quiet, ...), each run in a
  fresh interpreter; the 1-minute load average before each run is recorded, and
  the busy/quiet ratio is the ratio of the medians, taken within this run;
- with ``--install``, the set-up part once, on the quiet machine: a fresh
  virtual environment in a temporary folder, ``pip install torch==2.13.0`` and
  ``pip install -e ".[plot]"`` (what pip can take from its cache it does: this
  is the time on a machine that installed the same wheels before, not a
  download's).

The demo's fits run with skmtl's thread policy (the default); README's user sets
no thread count, and neither does this script (``OMP_NUM_THREADS`` and
``MKL_NUM_THREADS`` are removed from the demo's environment).

Run: ``python benchmarks/readme_command.py`` (about 10 minutes on 2 cores with
the default 2 repeats; ``--install`` adds the install). Writes
``benchmarks/results/readme_command_latest.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

# The contention study's competitors: "quiet" (none) and BUSY, started and left 1 s to start.
from bench_extras import COMPETITORS, _start_competitor

BUSY = "next to a 2-thread torch training process"
CONDITIONS = ("quiet", BUSY)
assert set(CONDITIONS) <= set(COMPETITORS)
USER_THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "SKMTL_THREAD_POLICY")


def _load() -> float:
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")


def _demo_environment() -> dict:
    return {k: v for k, v in os.environ.items() if k not in USER_THREAD_VARIABLES}


def _fit_seconds(table: str) -> dict:
    """Each architecture's fit time from the demo's Markdown table."""
    lines = [line for line in table.splitlines() if line.startswith("|")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    seconds = {}
    for line in lines[2:]:
        cells = dict(zip(header, (cell.strip() for cell in line.strip("|").split("|"))))
        seconds[cells["architecture"]] = float(cells["fit_seconds"])
    return seconds


def run_demo(
    condition: str, python: str, workdir: Path, timeout: float, demo_args: tuple = ()
) -> dict:
    """One run of the demo (with ``demo_args``), in a fresh interpreter, under ``condition``."""
    table, figure = workdir / "table.md", workdir / "census_income.png"
    busy = _start_competitor(condition)
    load_before = _load()
    try:
        start = time.perf_counter()
        result = subprocess.run(
            [python, str(ROOT / "examples" / "census_income.py"), "--quiet",
             "--table", str(table), "--output", str(figure), *demo_args],
            env=_demo_environment(), capture_output=True, text=True, timeout=timeout,
            cwd=workdir, check=False,
        )
        wall = time.perf_counter() - start
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
    if result.returncode != 0:
        raise RuntimeError(f"the demo failed under {condition!r}:\n{result.stderr[-2000:]}")
    report = table.read_text()
    aucs = re.findall(r"\| (\w+) \| ([0-9.]+) \| ([0-9.]+) \|", report)
    return {
        "condition": condition,
        "wall_seconds": wall,
        "fit_seconds": _fit_seconds(report),
        "aucs": {name: [float(a), float(b)] for name, a, b in aucs},
        "load_before": load_before,
        "load_after": _load(),
    }


def time_install(timeout: float) -> dict:
    """README's set-up part in a fresh virtual environment (pip's cache allowed)."""
    with tempfile.TemporaryDirectory() as folder:
        venv = Path(folder) / "venv"
        steps = {
            "python3 -m venv": [sys.executable, "-m", "venv", str(venv)],
            "pip install torch==2.13.0": [str(venv / "bin" / "pip"), "install", "-q",
                                          "torch==2.13.0"],
            'pip install -e ".[plot]"': [str(venv / "bin" / "pip"), "install", "-q", "-e",
                                         f"{ROOT}[plot]"],
        }
        seconds = {}
        for name, command in steps.items():
            start = time.perf_counter()
            subprocess.run(command, check=True, timeout=timeout, capture_output=True)
            seconds[name] = time.perf_counter() - start
    return {"step_seconds": seconds, "load_after": _load()}


def _median(values):
    return statistics.median(values) if values else float("nan")


def report(runs: list[dict], install: dict | None, args) -> str:
    by = {c: [r for r in runs if r["condition"] == c] for c in CONDITIONS}
    quiet = _median([r["wall_seconds"] for r in by["quiet"]])
    lines = [
        "# README's first command: quiet and next to a busy process",
        "",
        f"- command: `python benchmarks/readme_command.py{''.join(' ' + a for a in args.argv)}`",
        f"- date: {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {os.cpu_count()} CPUs ({platform.machine()}), Python "
        f"{platform.python_version()}; the demo runs with skmtl's thread policy and no thread "
        "count set",
        f"- repeats: {args.repeats} per condition, interleaved; medians; busy = {BUSY} "
        "(`bench_extras.py`'s competitor, OMP_NUM_THREADS=2)",
        "",
        "| condition | demo wall time (median) | runs (s) | shared_bottom fit | moe fit | "
        "mmoe fit | load before each run | demo time / quiet's |",
        "|---|---:|---|---:|---:|---:|---|---:|",
    ]
    for condition in CONDITIONS:
        rows = by[condition]
        if not rows:
            continue
        wall = _median([r["wall_seconds"] for r in rows])
        fits = {a: _median([r["fit_seconds"][a] for r in rows])
                for a in ("shared_bottom", "moe", "mmoe")}
        walls = ", ".join(f"{r['wall_seconds']:.1f}" for r in rows)
        loads = ", ".join(f"{r['load_before']:.2f}" for r in rows)
        lines.append(
            f"| {condition} | {wall:.1f} s | {walls} | {fits['shared_bottom']:.1f} s | "
            f"{fits['moe']:.1f} s | {fits['mmoe']:.1f} s | {loads} | {wall / quiet:.2f} |"
        )
    aucs = {json.dumps(r["aucs"], sort_keys=True) for r in runs}
    lines += ["", "The same test AUCs in every run: " + ("yes" if len(aucs) == 1 else
                                                         f"no ({len(aucs)} distinct)") + "."]
    if install is not None:
        steps = install["step_seconds"]
        lines += ["", "Set-up on the quiet machine (fresh virtual environment, pip's cache "
                  "allowed):", ""]
        lines += [f"- `{name}`: {seconds:.1f} s" for name, seconds in steps.items()]
        total = sum(steps.values())
        lines += [f"- whole first command, set-up plus the median demo: {total + quiet:.0f} s "
                  f"quiet, {total + _median([r['wall_seconds'] for r in by[BUSY]]):.0f} s "
                  "with the demo next to the busy process"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--install", action="store_true", help="also time the set-up part")
    parser.add_argument("--timeout", type=float, default=1800.0, help="per run, in seconds")
    parser.add_argument("--demo-args", default="",
                        help='extra arguments of the demo, e.g. "--n-rows 5000 --max-iter 5" '
                             "(a quick look; README runs it without)")
    parser.add_argument("--output", type=Path,
                        default=HERE / "results" / "readme_command_latest.md")
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)
    print(f"load average before: {_load():.2f}", flush=True)
    install = time_install(args.timeout) if args.install else None
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        for repeat in range(args.repeats):
            order = CONDITIONS if repeat % 2 == 0 else CONDITIONS[::-1]
            for condition in order:
                run = run_demo(condition, sys.executable, Path(folder), args.timeout,
                               tuple(shlex.split(args.demo_args)))
                print(f"repeat {repeat} {condition}: {run['wall_seconds']:.1f} s, fits "
                      f"{run['fit_seconds']}, load {run['load_before']:.2f}", flush=True)
                runs.append(run)
    text = report(runs, install, args)
    args.output.write_text(text)
    args.output.with_suffix(".json").write_text(
        json.dumps({"runs": runs, "install": install}, indent=1)
    )
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
