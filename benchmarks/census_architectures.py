"""Census-income: every built-in architecture, several seeds, per-task test AUC and fit time.

The MMoE paper's real-data setting (Ma et al., KDD 2018, section 6.3): tasks
income > 50K and never married, education and marital status removed from
the inputs; the bundled 99,762-row file with a fixed 80/20 split
(``train_test_split(random_state=0)``); default estimator parameters, only
``architecture`` and ``random_state`` change. The fits run seed by seed, every
architecture in turn, and the report gives each architecture's fit time as a
ratio to MMoE's (the default) with the load average during the run.

Run: ``python benchmarks/census_architectures.py [--seeds 3] [--architectures ...]``.
Writes ``benchmarks/results/census_architectures.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch
from sklearn.model_selection import train_test_split

from skmtl import MultiTaskClassifier, metrics
from skmtl.datasets import load_census_income
from skmtl.nn import ARCHITECTURES

ORDER = ["single_task", "shared_bottom", "moe", "mmoe", "ple", "aitm"]


def measure(architectures, seeds):
    """Fit every architecture once per seed, interleaved (seed by seed), so that the
    fit-time ratios compare fits made under the same load."""
    X, y = load_census_income(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)
    results = {a: {"aucs": [], "seconds": [], "epochs": []} for a in architectures}
    loads = []
    for seed in range(seeds):
        for architecture in architectures:
            clf = MultiTaskClassifier(architecture, random_state=seed)
            loads.append(os.getloadavg()[0])
            start = time.perf_counter()
            clf.fit(X_train, y_train)
            seconds = time.perf_counter() - start
            loads.append(os.getloadavg()[0])
            result = results[architecture]
            result["seconds"].append(seconds)
            result["epochs"].append(clf.n_iter_)
            result["aucs"].append(metrics.per_task_scores("roc_auc", y_test, clf.predict_proba(X_test)))
            print(architecture, seed, np.round(result["aucs"][-1], 4), f"{seconds:.1f}s", flush=True)
    reference = results.get("mmoe")
    rows = []
    for architecture in architectures:
        result = results[architecture]
        aucs = np.asarray(result["aucs"])
        ratio = (float(np.median(np.divide(result["seconds"], reference["seconds"])))
                 if reference is not None else float("nan"))
        rows.append((architecture, aucs.mean(0), aucs.std(0), np.mean(result["seconds"]),
                     ratio, np.mean(result["epochs"])))
    return list(y.columns), rows, (min(loads), max(loads))


def to_markdown(task_names, rows, seeds, loads) -> str:
    lines = [
        (f"Census-income (bundled 99,762 rows, 80/20 split), {seeds} seeds (random_state "
         f"0..{seeds - 1}), default parameters; torch {torch.__version__}, "
         f"{torch.get_num_threads()} threads, {platform.processor() or platform.machine()}, "
         f"{date.today()}; fits interleaved seed by seed, 1-minute load average {loads[0]:.1f} "
         f"to {loads[1]:.1f} at their starts and ends."),
        "",
        "| architecture | " + " | ".join(f"AUC {t} (mean ± std)" for t in task_names)
        + " | fit time (s) | fit time / mmoe's (median over seeds) | epochs |",
        "|---|" + "---|" * len(task_names) + "---|---|---|",
    ]
    for name, mean, std, seconds, ratio, epochs in rows:
        cells = [f"{m:.4f} ± {s:.4f}" for m, s in zip(mean, std)]
        lines.append(f"| {name} | " + " | ".join(cells)
                     + f" | {seconds:.1f} | {ratio:.2f} | {epochs:.0f} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--architectures", nargs="+", default=[a for a in ORDER if a in ARCHITECTURES])
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "census_architectures.md"))
    args = parser.parse_args()
    task_names, rows, loads = measure(args.architectures, args.seeds)
    table = to_markdown(task_names, rows, args.seeds, loads)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(table)
    print(table)


if __name__ == "__main__":
    main()
