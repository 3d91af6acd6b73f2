"""Shared-bottom, MoE and MMoE as task relatedness drops (MMoE paper, section 3).

Ma et al. ("Modeling Task Relationships in Multi-task Learning with Multi-gate
Mixture-of-Experts", KDD 2018) generate two regression tasks whose weight
vectors have a chosen cosine ``p`` and train the three architectures at
``p = 1.0, 0.9, 0.5``; in their Figure 4 shared-bottom degrades most as ``p``
drops and MMoE least. This script repeats the comparison on
:func:`skmtl.datasets.make_multitask_classification`, which is the same
generator with each target thresholded at its median (so: binary tasks, scored
by test ROC AUC rather than regression loss).

For every correlation and seed one data set is drawn (``random_state=seed``),
split into a training and a test part, and each architecture is fitted on it
with ``random_state=seed``. The three models have the same total hidden width:
shared-bottom one shared layer of ``8 * expert_units`` units, MoE and MMoE
``8`` experts of ``expert_units`` units (one gate, or one gate per task), all
with towers of 8 units. Early stopping holds out 10 % of the training rows and
restores the best epoch.

The defaults (d = 100 features and m = 10 sine terms as in the paper, 10,000
training rows and 5,000 test rows, at most 60 epochs, 5 seeds: 45 fits in two
processes of one torch thread each) take about 4 to 5 minutes on an otherwise
idle 2-core CPU. The report goes to ``benchmarks/results/synthetic_latest.md``.

Run: ``python benchmarks/synthetic_experiment.py [--seeds 0 1 2] [--n-jobs 1]``
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
import warnings
from datetime import date
from pathlib import Path

import numpy as np

ARCHITECTURES = ("shared_bottom", "moe", "mmoe")
N_EXPERTS = 8
OUTPUT = Path(__file__).resolve().parent / "results" / "synthetic_latest.md"


def model_params(architecture: str, expert_units: int) -> dict:
    """Hyperparameters giving every architecture the same total hidden width.

    Parameters
    ----------
    architecture : {"shared_bottom", "moe", "mmoe"}
        The architecture.
    expert_units : int
        Units of each expert's single hidden layer.

    Returns
    -------
    params : dict
        Keyword arguments for :class:`skmtl.MultiTaskClassifier`.
    """
    if architecture == "shared_bottom":
        return {"expert_layer_sizes": (N_EXPERTS * expert_units,)}
    return {"expert_layer_sizes": (expert_units,), "n_experts": N_EXPERTS}


def fit_timed(estimator_class, architecture: str, seed: int, args, X, y):
    """One architecture of the comparison, fitted on ``X, y``; returns it and the fit seconds.

    Parameters
    ----------
    estimator_class : type
        :class:`skmtl.MultiTaskClassifier` or :class:`skmtl.MultiTaskRegressor`.
    architecture : str
        The architecture.
    seed : int
        ``random_state`` of the fit.
    args : argparse.Namespace
        Sizes and training settings (``expert_units``, ``learning_rate``,
        ``max_iter``, ``n_iter_no_change``).
    X, y : array-like
        Training rows.

    Returns
    -------
    estimator, seconds : fitted estimator, float
    """
    estimator = estimator_class(
        architecture,
        **model_params(architecture, args.expert_units),
        tower_layer_sizes=(8,),
        learning_rate_init=args.learning_rate,
        max_iter=args.max_iter,
        early_stopping=True,
        n_iter_no_change=args.n_iter_no_change,
        gate_temperature=args.gate_temperature,
        device="cpu",
        random_state=seed,
    )
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning at max_iter is expected
        estimator.fit(X, y)
    return estimator, time.perf_counter() - start


def run_one(correlation: float, seed: int, args) -> list[dict]:
    """Fit the three architectures on one drawn data set.

    Parameters
    ----------
    correlation : float
        Cosine between the two tasks' weight vectors.
    seed : int
        Seed of the data and of every fit.
    args : argparse.Namespace
        Sizes and training settings.

    Returns
    -------
    rows : list of dict
        One row per architecture: correlation, seed, architecture, per-task
        test AUC, epochs run and fit time in seconds.
    """
    import torch

    from skmtl import MultiTaskClassifier, metrics
    from skmtl.datasets import make_multitask_classification

    torch.set_num_threads(1)
    X, y = make_multitask_classification(
        args.n_train + args.n_test,
        args.n_features,
        task_correlation=correlation,
        random_state=seed,
    )
    X_train, X_test = X[: args.n_train], X[args.n_train :]
    y_train, y_test = y[: args.n_train], y[args.n_train :]
    rows = []
    for architecture in args.architectures:
        clf, seconds = fit_timed(MultiTaskClassifier, architecture, seed, args, X_train, y_train)
        aucs = metrics.per_task_scores("roc_auc", y_test, clf.predict_proba(X_test))
        rows.append(
            {
                "correlation": correlation,
                "seed": seed,
                "architecture": architecture,
                "auc": aucs,
                "epochs": clf.n_iter_,
                "seconds": seconds,
            }
        )
    return rows


def _mean_std(values) -> str:
    values = np.asarray(values, dtype=float)
    return f"{values.mean():.4f} ± {values.std(ddof=1) if len(values) > 1 else 0.0:.4f}"


def format_report(rows: list[dict], args, total_seconds: float, command: str = "") -> str:
    """Markdown report: setup, summary table, drop with correlation, per-seed AUCs.

    Parameters
    ----------
    rows : list of dict
        Output of :func:`run_one` for every correlation and seed.
    args : argparse.Namespace
        The settings used.
    total_seconds : float
        Wall time of the whole run.
    command : str, default=""
        The command-line arguments, quoted in the report.

    Returns
    -------
    report : str
    """
    correlations = sorted({r["correlation"] for r in rows}, reverse=True)
    seeds = sorted({r["seed"] for r in rows})
    lines = [
        "# Synthetic experiment: architectures vs task correlation",
        "",
        f"Generated by `python benchmarks/synthetic_experiment.py{command}` on "
        f"{date.today().isoformat()} ({platform.machine()}, {os.cpu_count()} CPU cores, "
        f"{args.n_jobs} process(es) of one torch thread; {total_seconds / 60:.1f} min in all).",
        "",
        f"Data: `make_multitask_classification(n_features={args.n_features}, n_sin=10, "
        f"noise=0.01)`, two binary tasks, {args.n_train:,} training and {args.n_test:,} test "
        f"rows, one data set per (correlation, seed); seeds {seeds}.",
        f"Models: shared-bottom with one shared layer of {N_EXPERTS * args.expert_units} "
        f"units; MoE / MMoE with {N_EXPERTS} experts of {args.expert_units} units, gates "
        f"softmax(logits / {args.gate_temperature:g}); towers "
        f"(8,); Adam lr={args.learning_rate:g}, at most {args.max_iter} epochs, early stopping "
        f"on 10 % of the training rows (patience {args.n_iter_no_change}, best epoch restored).",
        "",
        f"Test ROC AUC, mean ± standard deviation over {len(seeds)} seeds:",
        "",
        "| correlation | architecture | AUC task 0 | AUC task 1 | mean AUC | epochs | fit s |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    summary = {}
    for p in correlations:
        for architecture in args.architectures:
            group = [r for r in rows if r["correlation"] == p and r["architecture"] == architecture]
            aucs = np.array([r["auc"] for r in group])  # (n_seeds, n_tasks)
            mean_auc = aucs.mean(axis=1)
            summary[p, architecture] = mean_auc.mean()
            lines.append(
                f"| {p:.1f} | {architecture} | {_mean_std(aucs[:, 0])} | {_mean_std(aucs[:, 1])} "
                f"| {_mean_std(mean_auc)} | {np.mean([r['epochs'] for r in group]):.0f} "
                f"| {np.mean([r['seconds'] for r in group]):.1f} |"
            )
    lines += [
        "",
        "Mean AUC (over tasks and seeds) by correlation, and its drop from the highest to the "
        "lowest correlation:",
        "",
        "| architecture | " + " | ".join(f"p={p:.1f}" for p in correlations) + " | drop |",
        "|---|" + "---:|" * (len(correlations) + 1),
    ]
    for architecture in args.architectures:
        values = [summary[p, architecture] for p in correlations]
        cells = " | ".join(f"{v:.4f}" for v in values)
        lines.append(f"| {architecture} | {cells} | {values[0] - values[-1]:+.4f} |")
    lines += [
        "",
        "Per-seed test AUC (task 0 / task 1):",
        "",
        "| correlation | seed | " + " | ".join(args.architectures) + " |",
        "|---:|---:|" + "---|" * len(args.architectures),
    ]
    for p in correlations:
        for seed in seeds:
            cells = []
            for architecture in args.architectures:
                (row,) = [
                    r for r in rows
                    if r["correlation"] == p and r["seed"] == seed
                    and r["architecture"] == architecture
                ]
                cells.append(f"{row['auc'][0]:.3f} / {row['auc'][1]:.3f}")
            lines.append(f"| {p:.1f} | {seed} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--correlations", type=float, nargs="+", default=[1.0, 0.9, 0.5])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--architectures", nargs="+", default=list(ARCHITECTURES))
    parser.add_argument("--n-train", type=int, default=10_000)
    parser.add_argument("--n-test", type=int, default=5_000)
    parser.add_argument("--n-features", type=int, default=100)
    parser.add_argument("--expert-units", type=int, default=16)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--max-iter", type=int, default=60)
    parser.add_argument("--n-iter-no-change", type=int, default=15)
    parser.add_argument("--gate-temperature", type=float, default=1.0,
                        help="the gates' softmax temperature (1: the paper's plain softmax)")
    parser.add_argument("--n-jobs", type=int, default=2,
                        help="processes, one torch thread each (default 2: both cores)")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    return parser.parse_args(argv)


def main(argv=None) -> str:
    args = parse_args(argv)
    jobs = [(p, seed) for p in args.correlations for seed in args.seeds]
    start = time.perf_counter()
    if args.n_jobs == 1:
        results = []
        for p, seed in jobs:
            results.append(run_one(p, seed, args))
            print(f"correlation {p:.1f}, seed {seed}: "
                  + ", ".join(f"{r['architecture']} {np.mean(r['auc']):.4f}" for r in results[-1]),
                  flush=True)
    else:
        from joblib import Parallel, delayed

        results = Parallel(n_jobs=args.n_jobs)(delayed(run_one)(p, s, args) for p, s in jobs)
    rows = [row for group in results for row in group]
    arguments = sys.argv[1:] if argv is None else list(argv)
    command = "".join(f" {a}" for a in arguments)
    report = format_report(rows, args, time.perf_counter() - start, command)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)
    print(report)
    print(f"written to {args.output}")
    return report


if __name__ == "__main__":
    main()
