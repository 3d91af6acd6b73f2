"""Wide data: 1,000 continuous columns, 100 tasks, 40 % of the labels missing.

The acceptance measurement of skmtl's wide-data path (``continuous_projection``).
For every seed, :func:`skmtl.datasets.make_wide_multitask_classification` draws
a data set (default: 50,000 rows, 1,000 columns of fingerprint-like bits and
counts, 100 tasks sharing 16 latent factors, about 40 % of the labels NaN);
20 % of the rows are held out for testing, and on the rest are fitted:

- ``logistic_regression``: one sklearn ``LogisticRegression`` per task (default
  ``C=1``, ``max_iter=2000``) on that task's known labels, the columns
  standardised with the training rows' mean and standard deviation (as skmtl
  standardises them);
- ``skmtl_per_column``: ``MultiTaskClassifier(continuous_projection="per_column")``,
  skmtl's behaviour before the wide-data path (one token per column: the
  experts and gates read 8,000 inputs), capped at ``--per-column-epochs`` epochs
  because a full fit takes far longer than the others (its AUC is therefore a
  lower bound of what it reaches);
- ``skmtl_default``: ``MultiTaskClassifier()`` with every default, which picks
  the joint projection (``continuous_projection="auto"``, more than 256
  continuous columns);
- optional variants to compare candidates: the named ones of ``VARIANTS``
  (``--methods``: the number of joint tokens, smaller MMoE sizes) and any
  ``--variant NAME='{"param": value}'`` (estimator parameters as JSON).

Each model is scored by the mean over tasks of the test ROC AUC on the task's
known test labels; ``oracle`` is the AUC of the true probabilities (the best
any model can reach). Fit times are wall-clock seconds on the machine as it
is, with the 1-minute load average printed next to them: on a shared machine
compare the ratio to the logistic regressions of the same run, not the
seconds. Fits run one after another, with torch's default number of threads.

Run: ``python benchmarks/wide_data.py [--seeds 0 1 2] [--rows 50000]``; the
report goes to ``benchmarks/results/wide_data_latest.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

OUTPUT = Path(__file__).resolve().parent / "results" / "wide_data_latest.md"

VARIANTS = {
    # name: (estimator parameters, joint tokens or None for the default)
    "skmtl_default": ({}, None),
    "skmtl_per_column": ({"continuous_projection": "per_column"}, None),
    "joint_k8": ({"continuous_projection": "joint"}, 8),
    "joint_k32": ({"continuous_projection": "joint"}, 32),
    "joint_2_experts": ({"n_experts": 2}, None),
    "joint_experts_32": ({"expert_layer_sizes": (32,)}, None),
    "joint_tower_16": ({"tower_layer_sizes": (16,)}, None),
}


def load_average() -> float:
    return os.getloadavg()[0]


def split(n_rows: int, seed: int, test_fraction: float):
    order = np.random.RandomState(seed).permutation(n_rows)
    n_test = round(test_fraction * n_rows)
    return np.sort(order[n_test:]), np.sort(order[:n_test])


def mean_auc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Mean over tasks of the ROC AUC on each task's known labels."""
    from sklearn.metrics import roc_auc_score

    aucs = []
    for t in range(y_true.shape[1]):
        known = ~np.isnan(y_true[:, t])
        if len(np.unique(y_true[known, t])) == 2:
            aucs.append(roc_auc_score(y_true[known, t], scores[known, t]))
    return float(np.mean(aucs))


def fit_logistic_regressions(X_train, y_train, X_test):
    """One LogisticRegression per task on its known labels; returns test scores and seconds."""
    from sklearn.linear_model import LogisticRegression

    start = time.perf_counter()
    mean, scale = X_train.mean(axis=0), X_train.std(axis=0)
    scale[scale == 0] = 1.0
    Z_train, Z_test = (X_train - mean) / scale, (X_test - mean) / scale
    scores = np.empty((X_test.shape[0], y_train.shape[1]))
    for t in range(y_train.shape[1]):
        known = ~np.isnan(y_train[:, t])
        model = LogisticRegression(max_iter=2000).fit(Z_train[known], y_train[known, t])
        scores[:, t] = model.decision_function(Z_test)
    return scores, time.perf_counter() - start


def fit_skmtl(params: dict, tokens, seed: int, X_train, y_train, X_test, max_iter=None):
    """One MultiTaskClassifier fit; returns test scores, seconds, epochs and parameters."""
    import skmtl._column_kinds as kinds
    from skmtl import MultiTaskClassifier

    saved = kinds.JOINT_PROJECTION_TOKENS
    if tokens is not None:  # a candidate: another number of joint tokens
        kinds.JOINT_PROJECTION_TOKENS = tokens
    try:
        extra = {} if max_iter is None else {"max_iter": max_iter}
        model = MultiTaskClassifier(random_state=seed, **params, **extra)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the capped fit's ConvergenceWarning
            model.fit(X_train, y_train)
        seconds = time.perf_counter() - start
    finally:
        kinds.JOINT_PROJECTION_TOKENS = saved
    proba = model.predict_proba(X_test)
    scores = np.column_stack([p[:, 1] for p in proba])
    n_parameters = sum(p.numel() for p in model.module_.parameters())
    return scores, seconds, model.n_iter_, n_parameters, model.network_spec_["embeddings"][1]


def run(args) -> list[dict]:
    from skmtl.datasets import make_wide_multitask_classification

    rows = []
    for seed in args.seeds:
        data = make_wide_multitask_classification(
            n_samples=args.rows, n_features=args.features, n_tasks=args.tasks,
            random_state=seed, return_X_y=False,
        )
        train, test = split(args.rows, seed, args.test_fraction)
        X_train, X_test = data.data[train], data.data[test]
        y_train, y_test = data.target[train], data.target[test]
        del data["data"]
        oracle = mean_auc(y_test, data.probabilities[test])
        print(f"seed {seed}: oracle AUC {oracle:.4f}", flush=True)
        rows.append({"seed": seed, "method": "oracle", "auc": oracle})
        for method in args.methods:
            load = load_average()
            if method == "logistic_regression":
                scores, seconds = fit_logistic_regressions(X_train, y_train, X_test)
                extra = {"epochs": "", "parameters": args.tasks * (args.features + 1), "tokens": ""}
            else:
                params, tokens = args.variants[method]
                cap = args.per_column_epochs if method == "skmtl_per_column" else None
                cap = cap or None  # 0: no cap
                scores, seconds, epochs, n_parameters, entry = fit_skmtl(
                    params, tokens, seed, X_train, y_train, X_test, max_iter=cap
                )
                n_tokens = entry.get("n_tokens", entry["n_columns"])
                extra = {"epochs": f"{epochs}" + (" (capped)" if cap else ""),
                         "parameters": n_parameters, "tokens": n_tokens}
            auc = mean_auc(y_test, scores)
            row = {"seed": seed, "method": method, "auc": auc, "seconds": seconds,
                   "load": load, "load_after": load_average(), **extra}
            print(f"  {method}: AUC {auc:.4f}, {seconds:.1f} s (load {load:.2f}), {extra}", flush=True)
            rows.append(row)
    return rows


def report(rows: list[dict], args) -> str:
    import torch

    methods = ["oracle", *args.methods]
    lines = [
        "# Wide data: 1,000 continuous columns, 100 tasks, missing labels",
        "",
        f"Generated by `benchmarks/wide_data.py` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
        "",
        (f"- data: `make_wide_multitask_classification(n_samples={args.rows}, "
         f"n_features={args.features}, n_tasks={args.tasks})`"),
        f"- test rows: {args.test_fraction:.0%} of the rows; seeds: {', '.join(map(str, args.seeds))}",
        (f"- skmtl_per_column capped at {args.per_column_epochs} epochs" if args.per_column_epochs
         else "- skmtl_per_column not capped"),
        (f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__} "
         f"with {torch.get_num_threads()} threads, Python {sys.version.split()[0]}"),
        *(f"- variant `{text}`" for text in args.variant),
        "",
        "Mean test ROC AUC over the tasks (per seed, then the mean over seeds):",
        "",
        "| method | " + " | ".join(f"seed {s}" for s in args.seeds) + " | mean |",
        "|---|" + "---|" * (len(args.seeds) + 1),
    ]
    for method in methods:
        aucs = [r["auc"] for s in args.seeds for r in rows if r["seed"] == s and r["method"] == method]
        lines.append(f"| {method} | " + " | ".join(f"{a:.4f}" for a in aucs) + f" | {np.mean(aucs):.4f} |")
    lines += [
        "",
        "Fit times (wall clock, on a shared machine: compare the ratios within one seed) and sizes:",
        "",
        ("| seed | method | fit s | x logistic regression | load (1 min) before, after | epochs "
         "| continuous tokens | parameters |"),
        "|---|---|---|---|---|---|---|---|",
    ]
    for seed in args.seeds:
        timed = [r for r in rows if r["seed"] == seed and "seconds" in r]
        base = next((r["seconds"] for r in timed if r["method"] == "logistic_regression"), None)
        for r in timed:
            ratio = f"{r['seconds'] / base:.2f}" if base else ""
            lines.append(
                f"| {seed} | {r['method']} | {r['seconds']:.1f} | {ratio} | {r['load']:.2f}, "
                f"{r['load_after']:.2f} | {r['epochs']} | {r['tokens']} | {r['parameters']:,} |"
            )
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--rows", type=int, default=50_000)
    parser.add_argument("--features", type=int, default=1000)
    parser.add_argument("--tasks", type=int, default=100)
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--per-column-epochs", type=int, default=3)
    parser.add_argument(
        "--methods", nargs="+",
        default=["logistic_regression", "skmtl_per_column", "skmtl_default"],
        choices=["logistic_regression", *VARIANTS],
    )
    parser.add_argument(
        "--variant", action="append", default=[], metavar="NAME=JSON",
        help="one more MultiTaskClassifier with these parameters (JSON), e.g. "
        "'flat={\"gate_temperature\": 30}'; repeatable",
    )
    parser.add_argument("--out", type=Path, default=OUTPUT)
    args = parser.parse_args(argv)
    args.variants = dict(VARIANTS)  # this run's: --variant adds to a copy, never to VARIANTS
    for text in args.variant:
        name, _, params = text.partition("=")
        if name in args.variants or name == "logistic_regression":
            parser.error(f"--variant {name!r}: that name is taken; choose another")
        try:
            args.variants[name] = (json.loads(params), None)
        except json.JSONDecodeError as exc:
            parser.error(f"--variant {text!r}: {exc}")
        args.methods = [*args.methods, name]  # not .append: the default list is argparse's
    rows = run(args)
    text = report(rows, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
