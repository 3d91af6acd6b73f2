"""Census-income: every built-in architecture, several seeds, per-task test AUC and fit time.

The MMoE paper's real-data setting (Ma et al., KDD 2018, section 6.3): tasks
income > 50K and never married, education and marital status removed from
the inputs; the bundled 99,762-row file with a fixed 80/20 split
(``train_test_split(random_state=0)``); default estimator parameters, only
``architecture`` and ``random_state`` change.

Run: ``python benchmarks/census_architectures.py [--seeds 3] [--architectures ...]``.
Writes ``benchmarks/results/census_architectures.md``.
"""

from __future__ import annotations

import argparse
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
    X, y = load_census_income(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)
    rows = []
    for architecture in architectures:
        aucs, seconds, epochs = [], [], []
        for seed in range(seeds):
            clf = MultiTaskClassifier(architecture, random_state=seed)
            start = time.perf_counter()
            clf.fit(X_train, y_train)
            seconds.append(time.perf_counter() - start)
            epochs.append(clf.n_iter_)
            aucs.append(metrics.per_task_scores("roc_auc", y_test, clf.predict_proba(X_test)))
            print(architecture, seed, np.round(aucs[-1], 4), f"{seconds[-1]:.1f}s", flush=True)
        aucs = np.asarray(aucs)
        rows.append((architecture, aucs.mean(0), aucs.std(0), np.mean(seconds), np.mean(epochs)))
    return list(y.columns), rows


def to_markdown(task_names, rows, seeds) -> str:
    lines = [
        f"Census-income (bundled 99,762 rows, 80/20 split), {seeds} seeds (random_state 0..{seeds - 1}), "
        f"default parameters; torch {torch.__version__}, {torch.get_num_threads()} threads, "
        f"{platform.processor() or platform.machine()}, {date.today()}.",
        "",
        "| architecture | " + " | ".join(f"AUC {t} (mean ± std)" for t in task_names)
        + " | fit time (s) | epochs |",
        "|---|" + "---|" * len(task_names) + "---|---|",
    ]
    for name, mean, std, seconds, epochs in rows:
        cells = [f"{m:.4f} ± {s:.4f}" for m, s in zip(mean, std)]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {seconds:.1f} | {epochs:.0f} |")
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--architectures", nargs="+", default=[a for a in ORDER if a in ARCHITECTURES])
    parser.add_argument("--output", default=str(Path(__file__).parent / "results" / "census_architectures.md"))
    args = parser.parse_args()
    task_names, rows = measure(args.architectures, args.seeds)
    table = to_markdown(task_names, rows, args.seeds)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(table)
    print(table)


if __name__ == "__main__":
    main()
