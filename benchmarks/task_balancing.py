"""Task balancing methods side by side: test metric per task and fit time against "fixed".

Each data set is a function in :data:`DATASETS` returning a :class:`Study`
(estimator class, training and test rows, each task's metric and the fit's
settings); adding one (e.g. a mixed click + watch-time generator) is one
function and one entry. For every data set and seed, the methods of
``task_balancing`` are fitted one after the other on the same rows
(interleaved, so that the machine's load falls on all of them alike), and the
fit-time ratio of each method against ``"fixed"`` is taken within the seed;
the report gives its median over the seeds. The 1-minute load average is
recorded at the start and the end.

Studies:

- ``synthetic-p1.0``, ``synthetic-p0.9``, ``synthetic-p0.5``: the MMoE paper's
  generator (:func:`skmtl.datasets.make_multitask_classification`, two binary
  tasks at that task correlation), MMoE, test ROC AUC.
- ``census``: census-income split as ``examples/census_income.py`` does (80/20,
  ``random_state=0``), income above 50K and never married, MMoE with the
  estimator's defaults, test ROC AUC.
- ``mixed``: :func:`skmtl.datasets.make_click_watch_time` with
  ``watch_time_scale=10`` (the watch time's squared error about 100x the
  click's log loss in the user's units), a ``MultiTaskRegressor`` with
  ``loss={"click": "log_loss"}``; test ROC AUC of the click, R^2 of the
  watch time.

Run: ``nice -n 5 python benchmarks/task_balancing.py [--studies census]
[--seeds 0 1] [--methods fixed pcgrad]`` (report:
``benchmarks/results/task_balancing_latest.md`` and ``.json``); runs made in
parallel processes (``--output`` per run) combine into one report with
``--from-json a.json b.json --output report.md``. The wall time then given is
the longest run's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

METHODS = ("fixed", "uncertainty", "gradnorm", "pcgrad")
OUTPUT = Path(__file__).resolve().parent / "results" / "task_balancing_latest.md"


@dataclass
class Study:
    """One data set of the comparison, drawn for one seed."""

    estimator: type
    X_train: object
    y_train: object
    X_test: object
    y_test: object
    metric: str | tuple  # a skmtl.metrics.per_task_scores metric, or one sklearn metric per task
    params: dict = field(default_factory=dict)
    task_names: tuple = ("task 0", "task 1")


def synthetic(correlation: float):
    """The MMoE paper's two binary tasks at ``correlation`` (one data set per seed)."""

    def load(seed: int, args) -> Study:
        from skmtl import MultiTaskClassifier
        from skmtl.datasets import make_multitask_classification

        X, y = make_multitask_classification(
            args.synthetic_train + 5000, 100, task_correlation=correlation, random_state=seed
        )
        n = args.synthetic_train
        params = {"expert_layer_sizes": (16,), "n_experts": 8, "tower_layer_sizes": (8,),
                  "learning_rate_init": 3e-3, "max_iter": args.max_iter, "n_iter_no_change": 10,
                  "early_stopping": True}
        return Study(MultiTaskClassifier, X[:n], y[:n], X[n:], y[n:], "roc_auc", params)

    return load


def census(seed: int, args) -> Study:
    """Census-income, the split of examples/census_income.py (the same rows for every seed)."""
    from sklearn.model_selection import train_test_split

    from skmtl import MultiTaskClassifier
    from skmtl.datasets import load_census_income

    X, y = load_census_income(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)
    return Study(MultiTaskClassifier, X_train, y_train, X_test, y_test, "roc_auc",
                 {"max_iter": args.census_max_iter}, tuple(y.columns))


def mixed(seed: int, args) -> Study:
    """A click (log_loss) and a watch time (squared error) in one MultiTaskRegressor.

    ``watch_time_scale=10`` makes predicting the mean watch time cost about 100x
    the click's log loss in the user's units; the regressor standardises the
    watch time, so in the network's units the two losses are of one size.
    """
    from skmtl import MultiTaskRegressor
    from skmtl.datasets import make_click_watch_time

    n = args.mixed_train
    X, y = make_click_watch_time(n + 5000, watch_time_scale=10.0, return_X_y=True,
                                 random_state=seed)
    params = {"loss": {"click": "log_loss"}, "max_iter": args.max_iter, "early_stopping": True}
    return Study(MultiTaskRegressor, X[:n], y[:n], X[n:], y[n:], ("roc_auc", "r2"), params,
                 tuple(y.columns))


def _scores(metric, y_true, predicted):
    """Each task's test score: ``metric`` for all tasks, or one sklearn metric per task."""
    from sklearn.metrics import r2_score, roc_auc_score

    from skmtl import metrics

    if isinstance(metric, str):
        return metrics.per_task_scores(metric, y_true, predicted)
    functions = {"roc_auc": roc_auc_score, "r2": r2_score}
    y_true = np.asarray(y_true, dtype=np.float64)
    return [functions[m](y_true[:, t], predicted[:, t]) for t, m in enumerate(metric)]


DATASETS = {
    "synthetic-p1.0": synthetic(1.0),
    "synthetic-p0.9": synthetic(0.9),
    "synthetic-p0.5": synthetic(0.5),
    "census": census,
    "mixed": mixed,
}


def run_study(name: str, seed: int, args) -> list[dict]:
    """Fit every method on study ``name`` drawn for ``seed``; one row per method."""
    study = DATASETS[name](seed, args)
    rows = []
    for method in args.methods:
        estimator = study.estimator(
            "mmoe", task_balancing=method, device="cpu", random_state=seed, **study.params
        )
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # ConvergenceWarning at max_iter
            estimator.fit(study.X_train, study.y_train)
        seconds = time.perf_counter() - start
        predicted = (estimator.predict_proba(study.X_test) if hasattr(estimator, "predict_proba")
                     else estimator.predict(study.X_test))
        scores = _scores(study.metric, study.y_test, predicted)
        metric = study.metric if isinstance(study.metric, str) else " / ".join(study.metric)
        rows.append({
            "study": name, "seed": seed, "method": method, "metric": metric,
            "tasks": list(study.task_names), "scores": [float(s) for s in scores],
            "seconds": seconds, "epochs": int(estimator.n_iter_),
            "final_weights": estimator.task_balance_weights_[-1].tolist(),
            "final_task_losses": [float(v) for v in estimator.task_loss_curves_[-1]],
        })
        print(f"{name} seed {seed} {method:12s} " + " ".join(f"{s:.4f}" for s in scores)
              + f"  {seconds:6.1f} s  {estimator.n_iter_} epochs", flush=True)
    return rows


def warm_up() -> None:
    """One tiny untimed fit per method, so that no timed fit pays for first-call costs."""
    from skmtl import MultiTaskClassifier

    rng = np.random.RandomState(0)
    X = rng.normal(size=(200, 5))
    y = np.column_stack([X[:, 0] > 0, X[:, 1] > 0]).astype(int)
    for method in METHODS:
        MultiTaskClassifier(task_balancing=method, max_iter=2, random_state=0).fit(X, y)


def _mean_std(values) -> str:
    values = np.asarray(values, dtype=float)
    return f"{values.mean():.4f} ± {values.std(ddof=1) if len(values) > 1 else 0.0:.4f}"


def format_report(rows: list[dict], args, seconds: float, loads, command: str) -> str:
    """Markdown: one table per study (metric per task, fit-time ratio, epochs, weights)."""
    processes, highest = "one process", ""
    if args.from_json:
        processes = ("one run" if len(args.from_json) == 1 else
                     f"{len(args.from_json)} runs in parallel processes, one per file, combined")
        highest = ", the highest of the runs"
    lines = [
        "# Task balancing: fixed, uncertainty, GradNorm, PCGrad",
        "",
        (f"Generated by `python benchmarks/task_balancing.py{command}` on "
         f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC ({platform.machine()}, "
         f"{os.cpu_count()} CPU cores shared with other work, {processes}, torch threads: "
         f"{args.threads}; {seconds / 60:.1f} min in all; 1-minute load average "
         f"{loads[0]:.2f} at the start, {loads[1]:.2f} at the end{highest})."),
        "",
        ("Methods are fitted one after the other on the same rows for each seed; the time "
         "ratio is each method's fit time over the `fixed` fit's of the same seed, median "
         "over seeds (a busy machine's ratios, not quiet-machine figures). Weights: the last "
         "epoch's `task_balance_weights_`, mean over seeds."),
    ]
    for study in dict.fromkeys(r["study"] for r in rows):
        group = [r for r in rows if r["study"] == study]
        seeds = sorted({r["seed"] for r in group})
        tasks = group[0]["tasks"]
        lines += [
            "",
            f"## {study} ({len(seeds)} seed(s): {seeds}; test {group[0]['metric']})",
            "",
            "| method | " + " | ".join(tasks) + " | mean | time vs fixed | epochs | weights |",
            "|---|" + "---:|" * (len(tasks) + 3) + "---|",
        ]
        fixed = {r["seed"]: r["seconds"] for r in group if r["method"] == "fixed"}
        for method in args.methods:
            runs = [r for r in group if r["method"] == method]
            scores = np.array([r["scores"] for r in runs])
            ratios = [r["seconds"] / fixed[r["seed"]] for r in runs if r["seed"] in fixed]
            ratio = f"{np.median(ratios):.2f}x" if ratios else "-"
            weights = np.mean([r["final_weights"] for r in runs], axis=0)  # (n_tasks,)
            lines.append(
                f"| {method} | " + " | ".join(_mean_std(scores[:, t]) for t in range(len(tasks)))
                + f" | {_mean_std(scores.mean(axis=1))} | {ratio} "
                f"| {np.mean([r['epochs'] for r in runs]):.0f} | "
                + " / ".join(f"{w:.2f}" for w in weights) + " |"
            )
        losses = [r["final_task_losses"] for r in group
                  if r["method"] == "fixed" and "final_task_losses" in r]
        if losses:
            lines += ["", "Training loss of each task at the last epoch, `fixed`, in the "
                      "network's units (mean over seeds): "
                      + " / ".join(f"{v:.4f}" for v in np.mean(losses, axis=0)) + "."]
        if len(seeds) > 1:
            lines += ["", f"Per seed, mean {group[0]['metric']} over the tasks:", "",
                      "| method | " + " | ".join(f"seed {seed}" for seed in seeds) + " |",
                      "|---|" + "---:|" * len(seeds)]
            for method in args.methods:
                means = {r["seed"]: np.mean(r["scores"]) for r in group if r["method"] == method}
                lines.append(f"| {method} | "
                             + " | ".join(f"{means[seed]:.4f}" for seed in seeds) + " |")
    return "\n".join(lines) + "\n"


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--studies", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--census-seeds", type=int, nargs="+", default=None,
                        help="seeds of the census study (default: --seeds)")
    parser.add_argument("--synthetic-train", type=int, default=5000)
    parser.add_argument("--mixed-train", type=int, default=20000)
    parser.add_argument("--max-iter", type=int, default=60, help="epochs at most (synthetic)")
    parser.add_argument("--census-max-iter", type=int, default=30)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--from-json", type=Path, nargs="+", default=None,
                        help="write one report from the .json files of earlier runs")
    return parser.parse_args(argv)


def save_rows(args, rows, loads, seconds) -> None:
    """The rows and the run's conditions, as JSON next to the report (``--from-json`` reads it)."""
    record = {"rows": rows, "loads": loads, "seconds": seconds, "threads": args.threads}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.with_suffix(".json").write_text(json.dumps(record, indent=1))


def main(argv=None) -> str:
    import torch

    args = parse_args(argv)
    if args.from_json:  # one report from earlier runs (e.g. seeds run in parallel processes)
        runs = [json.loads(path.read_text()) for path in args.from_json]
        rows = [row for run in runs for row in run["rows"]]
        loads = [max(run["loads"][0] for run in runs), max(run["loads"][1] for run in runs)]
        seconds = max(run["seconds"] for run in runs)
        args.methods = list(dict.fromkeys(row["method"] for row in rows))
        args.threads = runs[0].get("threads", args.threads)
    else:
        torch.set_num_threads(args.threads)
        warm_up()
        loads = [os.getloadavg()[0]]
        start = time.perf_counter()
        rows = []
        for study in args.studies:
            seeds = args.census_seeds if study == "census" and args.census_seeds else args.seeds
            for seed in seeds:
                rows += run_study(study, seed, args)
                # What is done so far, should the run be stopped early.
                save_rows(args, rows, [loads[0], os.getloadavg()[0]], time.perf_counter() - start)
        loads.append(os.getloadavg()[0])
        seconds = time.perf_counter() - start
    arguments = sys.argv[1:] if argv is None else list(argv)
    command = "".join(f" {a}" for a in arguments)
    report = format_report(rows, args, seconds, loads, command)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(report)
    save_rows(args, rows, loads, seconds)
    print(report)
    return report


if __name__ == "__main__":
    main()
