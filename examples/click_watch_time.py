"""A click and a watch time in one network: a binary and a real-valued task.

Feed impressions from :func:`skmtl.datasets.make_click_watch_time` carry a
click (0/1) and a watch time (seconds). One
:class:`~skmtl.MultiTaskRegressor` learns both: the click task gets
``loss="log_loss"`` (binary cross-entropy on a logit), the watch time the
default squared error. ``predict`` returns one column per task: P(click) for
the click, seconds for the watch time. The held-out click ROC AUC and
watch-time R^2 are printed next to:

- the same regressor fitted on one task at a time;
- :class:`~sklearn.ensemble.HistGradientBoostingClassifier` on the click and
  :class:`~sklearn.ensemble.HistGradientBoostingRegressor` on the watch time;
- the generator's true P(click | x) and E[watch time | x], the best any model
  can do.

Run: ``python examples/click_watch_time.py`` (one seed, 20,000 rows; measured
on 2026-11-30 on a 2-core CPU shared with other jobs: 54 s wall at a load
average of 7.5, 18 s of CPU time). ``--seeds 0 1 2 --table PATH`` repeats it
over seeds (each draws the data and the models) and writes the Markdown
report that ``docs/mixed_tasks.rst`` shows
(``benchmarks/results/click_watch_time.md``); ``--n-samples 4000`` is the
small-data run (``click_watch_time_small.md``).
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import r2_score, roc_auc_score

from skmtl import MultiTaskRegressor
from skmtl.datasets import make_click_watch_time

warnings.filterwarnings("ignore", category=ConvergenceWarning)

NETWORK = {
    "architecture": "mmoe",
    "learning_rate_init": 3e-3,
    "batch_size": 512,
    "max_iter": 40,
    "early_stopping": True,
    "n_iter_no_change": 5,
}
MODELS = [
    "MMoE, click + watch time in one model",
    "MMoE, click only",
    "MMoE, watch time only",
    "HistGradientBoosting, one per task",
    "true P(click) and E[watch time] of the generator",
]


def load_split(n_samples, *, task_correlation, random_state):
    """Impressions split 75/25 into training and test rows, with the true test expectations.

    Returns
    -------
    X_train, X_test : ndarray
    y_train, y_test : pandas.DataFrame
        Columns ``click`` (0/1) and ``watch_time``.
    truth : dict
        The test rows' true ``p_click`` and ``expected_watch_time``.
    """
    data = make_click_watch_time(n_samples, task_correlation=task_correlation,
                                 random_state=random_state)
    n_train = int(0.75 * n_samples)
    X, y = data.data, data.target
    truth = {"click": data.p_click[n_train:],
             "watch_time": data.expected_watch_time[n_train:]}
    return X[:n_train], X[n_train:], y[:n_train], y[n_train:], truth


def _scores(y_test, click=None, watch=None) -> dict:
    return {
        "click": np.nan if click is None else roc_auc_score(y_test["click"], click),
        "watch_time": np.nan if watch is None else r2_score(y_test["watch_time"], watch),
    }


def fit_models(X_train, X_test, y_train, y_test, truth, *, random_state, max_iter=None):
    """Each model's held-out click ROC AUC, watch-time R^2 and fit seconds, by model name.

    Returns
    -------
    results : dict of str to dict
        Model name -> ``{"click": AUC, "watch_time": R^2, "fit s": seconds}``
        (NaN where a model has no such task).
    model : MultiTaskRegressor
        The model of both tasks.
    """
    params = {**NETWORK, "random_state": random_state}
    if max_iter is not None:
        params["max_iter"] = max_iter
    results = {}

    start = time.perf_counter()
    both = MultiTaskRegressor(**params, loss={"click": "log_loss"}).fit(X_train, y_train)
    seconds = time.perf_counter() - start
    predicted = both.predict(X_test)  # column 0: P(click), column 1: seconds
    results[MODELS[0]] = {**_scores(y_test, predicted[:, 0], predicted[:, 1]), "fit s": seconds}

    start = time.perf_counter()
    click = MultiTaskRegressor(**params, loss="log_loss").fit(X_train, y_train["click"])
    results[MODELS[1]] = {**_scores(y_test, click=click.predict(X_test)),
                          "fit s": time.perf_counter() - start}
    start = time.perf_counter()
    watch = MultiTaskRegressor(**params).fit(X_train, y_train["watch_time"])
    results[MODELS[2]] = {**_scores(y_test, watch=watch.predict(X_test)),
                          "fit s": time.perf_counter() - start}

    start = time.perf_counter()
    hgb_click = HistGradientBoostingClassifier(random_state=random_state)
    hgb_watch = HistGradientBoostingRegressor(random_state=random_state)
    hgb_click.fit(X_train, y_train["click"])
    hgb_watch.fit(X_train, y_train["watch_time"])
    results[MODELS[3]] = {**_scores(y_test, hgb_click.predict_proba(X_test)[:, 1],
                                    hgb_watch.predict(X_test)),
                          "fit s": time.perf_counter() - start}

    results[MODELS[4]] = {**_scores(y_test, truth["click"], truth["watch_time"]),
                          "fit s": np.nan}
    return results, both


def _cell(values, digits) -> str:
    values = np.asarray(values, dtype=float)
    if np.isnan(values).all():
        return "-"
    if len(values) == 1:
        return f"{values[0]:.{digits}f}"
    return f"{values.mean():.{digits}f} ± {values.std(ddof=1):.{digits}f}"


def format_table(runs) -> str:
    """A Markdown table of the runs (one dict per seed): mean ± sd over seeds.

    Next to each score, how far it is below the true values' score of the same
    seed (paired over seeds: the seeds' data differ in how much can be learnt).
    """
    truth = MODELS[-1]
    header = "| model | click ROC AUC | below the truth | watch-time R^2 | below the truth | fit s |"
    lines = [header, "|---|---|---|---|---|---|"]
    for model in MODELS:
        cells = []
        for key in ("click", "watch_time"):
            scores = [run[model][key] for run in runs]
            gaps = [run[truth][key] - run[model][key] for run in runs]
            cells += [_cell(scores, 4), "-" if model == truth else _cell(gaps, 4)]
        cells.append(_cell([run[model]["fit s"] for run in runs], 1))
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_report(argv, args, runs, seconds) -> str:
    """The table headed by the run's conditions."""
    import sklearn
    import torch

    command = "python examples/click_watch_time.py" + "".join(" " + shlex.quote(a) for a in argv)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    used = {**NETWORK, **({"max_iter": args.max_iter} if args.max_iter is not None else {})}
    network = ", ".join(f"{k}={v!r}" for k, v in used.items())
    conditions = [
        f"- command: `{command}`",
        (f"- data: `make_click_watch_time({args.n_samples}, task_correlation="
         f"{args.task_correlation}, random_state=seed)`, the first 75 % of rows for "
         "training, the rest held out"),
        f"- seeds: {', '.join(map(str, args.seeds))} (data and models)",
        (f"- models: `MultiTaskRegressor({network})` with `loss={{'click': 'log_loss'}}` for "
         "both tasks, `loss='log_loss'` for the click alone; HistGradientBoosting with its "
         "defaults"),
        (f"- software: Python {platform.python_version()}, torch {torch.__version__}, "
         f"scikit-learn {sklearn.__version__}"),
        (f"- machine: {platform.machine()}, {os.cpu_count()} CPUs, 1-minute load average "
         f"{load:.2f} after the fits (a shared machine: fit times are not quiet-machine "
         "figures)"),
        f"- total time: {seconds:.0f} s",
        f"- date: {datetime.now(UTC):%Y-%m-%d}",
    ]
    title = "# A click and a watch time in one MultiTaskRegressor"
    return "\n".join([title, "", *conditions, "", format_table(runs), ""])


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-samples", type=int, default=20_000)
    parser.add_argument("--task-correlation", type=float, default=0.5)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--max-iter", type=int, default=None)
    parser.add_argument("--table", type=Path, default=None,
                        help="also write the Markdown report here")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    runs = []
    for seed in args.seeds:
        split = load_split(args.n_samples, task_correlation=args.task_correlation,
                           random_state=seed)
        results, model = fit_models(*split, random_state=seed, max_iter=args.max_iter)
        runs.append(results)
        if seed == args.seeds[0]:
            X_test, y_test = split[1], split[3]
            shown = y_test.head(3).assign(
                predicted_p_click=model.predict(X_test[:3])[:, 0],
                predicted_watch_time=model.predict(X_test[:3])[:, 1],
            )
            print(f"First test rows (seed {seed}): predict gives P(click) and seconds\n"
                  f"{shown.round(3).to_string()}\n")
    table = format_table(runs)
    print(table)
    if args.table is not None:
        args.table.write_text(format_report(argv, args, runs, time.perf_counter() - start))
        print(f"report written to {args.table}")
    return runs


if __name__ == "__main__":
    main()
