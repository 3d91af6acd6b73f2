"""Main demo: shared-bottom, MoE and MMoE on the bundled census-income data.

The two tasks are those of the MMoE paper's first census task group (Ma et al.,
KDD 2018, section 6.3): income above 50K and never married; education and
marital status are not among the inputs. The rows are split once, 80/20
(``random_state=0``); each architecture is fitted on the training part with the
estimator's defaults (early stopping on 10 % of it) and a progress bar.

Prints a Markdown table of each task's test ROC AUC, the epochs run and the fit
time (``--table`` also writes it to a file, headed by the run's conditions:
command, versions, threads, load average and date), and saves a figure (``census_income.png``, see ``--output``) with each
model's learning curves, the average gate weight that each task gives each
expert (MoE and MMoE), and the test AUCs. The figure needs matplotlib
(``pip install "skmtl[plot]"``); without it the table is still printed.

Run: ``python examples/census_income.py`` (measured on a 2-core CPU by
``benchmarks/readme_command.py``, medians of 3 runs: on 2026-12-01 192.6 s with
the machine otherwise idle and 312.6 s next to another process training with two
torch threads, 1.62x, on a day when pip's install steps ran 2.5-2.7x slower than on
2026-11-30, when the demo took 46.7 s and 97.2 s).
``--n-rows 5000 --max-iter 5`` gives a quick look.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from skmtl import MultiTaskClassifier, metrics
from skmtl.datasets import load_census_income

ARCHITECTURES = ("shared_bottom", "moe", "mmoe")


def load_split(n_rows=None, *, random_state=0):
    """The census data split 80/20 into training and test rows.

    Parameters
    ----------
    n_rows : int or None, default=None
        Use a random subset of this many rows (all 99,762 when None).
    random_state : int, default=0
        Seed of the subset and of the split.

    Returns
    -------
    X_train, X_test : pandas.DataFrame
        Features.
    y_train, y_test : pandas.DataFrame
        The two binary targets ``income_50k`` and ``never_married``.
    """
    X, y = load_census_income(return_X_y=True)
    if n_rows is not None and n_rows < len(X):
        rows = np.random.RandomState(random_state).choice(len(X), n_rows, replace=False)
        X, y = X.iloc[np.sort(rows)], y.iloc[np.sort(rows)]
    return train_test_split(X, y, test_size=0.2, random_state=random_state)


def fit_architectures(
    X_train, y_train, X_test, y_test, architectures=ARCHITECTURES, *,
    max_iter=200, verbose=1, random_state=0,
):
    """Fit one model per architecture and score it on the test rows.

    Parameters
    ----------
    X_train, y_train, X_test, y_test : pandas.DataFrame
        Output of :func:`load_split`.
    architectures : sequence of str, default=ARCHITECTURES
        Architectures to fit, in order.
    max_iter : int, default=200
        Maximum number of epochs per model (the estimator's default).
    verbose : int, default=1
        1 shows each fit's progress bar.
    random_state : int, default=0
        Seed of every model.

    Returns
    -------
    rows : list of dict
        One row per architecture: ``architecture``, ``auc_<task>`` for every
        task, ``mean_auc``, ``epochs`` and ``fit_seconds``.
    models : dict of str to MultiTaskClassifier
        The fitted models by architecture.
    """
    rows, models = [], {}
    for architecture in architectures:
        clf = MultiTaskClassifier(
            architecture, max_iter=max_iter, random_state=random_state, verbose=verbose
        )
        start = time.perf_counter()
        clf.fit(X_train, y_train)
        fit_seconds = time.perf_counter() - start
        aucs = metrics.per_task_scores(
            "roc_auc", y_test, clf.predict_proba(X_test), classes=clf.classes_
        )
        rows.append(
            {
                "architecture": architecture,
                **{f"auc_{name}": float(auc) for name, auc in zip(clf.task_names_, aucs)},
                "mean_auc": float(np.mean(aucs)),
                "epochs": clf.n_iter_,
                "fit_seconds": fit_seconds,
            }
        )
        models[architecture] = clf
    return rows, models


def format_table(rows) -> str:
    """A Markdown table of the rows of :func:`fit_architectures`.

    Parameters
    ----------
    rows : list of dict
        Rows with the same keys.

    Returns
    -------
    table : str
    """
    header = list(rows[0])
    lines = ["| " + " | ".join(header) + " |",
             "|---|" + "---:|" * (len(header) - 1)]
    for row in rows:
        cells = []
        for key, value in row.items():
            if isinstance(value, float):
                value = f"{value:.4f}" if "auc" in key else f"{value:.1f}"
            cells.append(str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _load_average() -> str:
    return f"{os.getloadavg()[0]:.2f}" if hasattr(os, "getloadavg") else "not available"


def _git_commit() -> str:
    """The checkout's commit (with "+ changes" when the tree differs from it), if any."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root,
                                capture_output=True, text=True, timeout=10, check=True)
        status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                cwd=root, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return "not a git checkout"
    return commit.stdout.strip() + (" + changes" if status.stdout.strip() else "")


def run_conditions(argv, X_train, X_test, y_train, *, max_iter, random_state) -> dict:
    """What a published table needs to say about the run that made it.

    Parameters
    ----------
    argv : list of str
        The command-line arguments of the run.
    X_train, X_test, y_train : pandas.DataFrame
        The split, for its sizes and task names.
    max_iter, random_state : int
        The settings of every model.

    Returns
    -------
    conditions : dict of str to str
        ``command``, ``data``, ``models``, ``software``, ``threads`` and
        ``machine``; :func:`format_report` adds the load average after the
        fits and the date.
    """
    import sklearn
    import torch

    import skmtl

    settings = {name: os.environ[name] for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS",
                                                    "SKMTL_THREAD_POLICY") if name in os.environ}
    prefix = "".join(f"{name}={value} " for name, value in settings.items())
    command = prefix + "python examples/census_income.py" + "".join(
        " " + shlex.quote(arg) for arg in argv
    )
    user_threads = ", ".join(f"{name}={value}" for name, value in settings.items()
                             if name != "SKMTL_THREAD_POLICY")
    return {
        "command": f"`{command}`",
        "data": f"bundled census-income file, {len(X_train) + len(X_test):,} rows, "
                f"{X_train.shape[1]} features, tasks {', '.join(map(str, y_train.columns))}; "
                f"80/20 split (random_state={random_state}): {len(X_train):,} training and "
                f"{len(X_test):,} test rows",
        "models": f"estimator defaults (early stopping on 10 % of the training rows), "
                  f"max_iter={max_iter}, random_state={random_state}; fit_seconds is the wall "
                  "time of fit",
        "software": f"skmtl {skmtl.__version__} (git {_git_commit()}), torch {torch.__version__}, "
                    f"scikit-learn {sklearn.__version__}, Python {platform.python_version()}",
        "threads": f"torch's {torch.get_num_threads()} thread(s), "
                   f"thread policy {skmtl.get_config()['thread_policy']}"
                   + (f", {user_threads}" if user_threads else ", no thread count set"),
        "machine": f"{os.cpu_count()} CPUs ({platform.machine()}), 1-minute load average "
                   f"{_load_average()} before the fits",
    }


def format_report(conditions, rows) -> str:
    """The Markdown file written by ``--table``: the run's conditions, then the table.

    Parameters
    ----------
    conditions : dict of str to str
        As returned by :func:`run_conditions`, taken before the fits.
    rows : list of dict
        As returned by :func:`fit_architectures`.

    Returns
    -------
    report : str
    """
    conditions = {**conditions}
    conditions["machine"] += f" and {_load_average()} after them"
    conditions["date"] = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    lines = [f"- {key}: {value}" for key, value in conditions.items()]
    return "\n".join(lines) + "\n\n" + format_table(rows) + "\n"


def plot_results(models, rows, X_test, path):
    """Save the figure: learning curves, expert usage and test AUCs.

    Parameters
    ----------
    models : dict of str to MultiTaskClassifier
        Fitted models, as returned by :func:`fit_architectures`.
    rows : list of dict
        Their scores, as returned by :func:`fit_architectures`.
    X_test : pandas.DataFrame
        Rows on which the gate weights are averaged.
    path : str or pathlib.Path
        Where to write the PNG.

    Returns
    -------
    figure : matplotlib.figure.Figure
    """
    import matplotlib

    matplotlib.use("Agg")  # write files only, also without a display
    import matplotlib.pyplot as plt

    from skmtl.plotting import plot_expert_usage, plot_learning_curves

    n = len(models)
    figure, axes = plt.subplots(2, max(n, 3), figsize=(5 * max(n, 3), 8.5), squeeze=False)
    for ax, (architecture, clf) in zip(axes[0], models.items()):
        plot_learning_curves(clf, ax=ax)
        ax.set_title(f"{architecture}: loss per epoch")
    for ax in axes[0, n:]:
        ax.set_visible(False)
    gated = [(name, clf) for name, clf in models.items() if name in ("moe", "mmoe")]
    bottom = list(axes[1])
    for ax, (architecture, clf) in zip(bottom, gated):
        plot_expert_usage(clf, X_test, ax=ax)
    auc_ax = bottom[len(gated)]
    tasks = [key[len("auc_"):] for key in rows[0] if key.startswith("auc_")]
    width = 0.8 / len(rows)
    for i, row in enumerate(rows):
        heights = [row[f"auc_{task}"] for task in tasks]
        bars = auc_ax.bar(np.arange(len(tasks)) + (i - (len(rows) - 1) / 2) * width, heights,
                          width=width, label=row["architecture"])
        auc_ax.bar_label(bars, fmt="%.3f", fontsize="small", rotation=90, label_type="center",
                         color="white")
    low = min(row[f"auc_{task}"] for row in rows for task in tasks)
    auc_ax.set_ylim(max(0.0, low - 0.05), 1.0)
    auc_ax.set_xticks(np.arange(len(tasks)), tasks)
    auc_ax.set_ylabel("test ROC AUC")
    auc_ax.set_title("test ROC AUC per task")
    auc_ax.legend(fontsize="small", loc="upper center", bbox_to_anchor=(0.5, -0.08),
                  ncol=len(rows))
    for ax in bottom[len(gated) + 1:]:
        ax.set_visible(False)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return figure


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--architectures", nargs="+", default=list(ARCHITECTURES),
                        choices=ARCHITECTURES)
    parser.add_argument("--n-rows", type=int, default=None,
                        help="use a random subset of the rows (default: all)")
    parser.add_argument("--max-iter", type=int, default=200, help="maximum epochs per model")
    parser.add_argument("--random-state", type=int, default=0)
    parser.add_argument("--output", type=Path, default=Path("census_income.png"),
                        help="where to save the figure (default: census_income.png)")
    parser.add_argument("--table", type=Path, default=None,
                        help="also write the Markdown table to this file")
    parser.add_argument("--no-plot", action="store_true", help="do not draw the figure")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    argv = sys.argv[1:] if argv is None else list(argv)

    X_train, X_test, y_train, y_test = load_split(args.n_rows, random_state=args.random_state)
    print(f"census-income: {len(X_train):,} training rows, {len(X_test):,} test rows, "
          f"{X_train.shape[1]} features, tasks {list(y_train.columns)}")
    conditions = run_conditions(argv, X_train, X_test, y_train, max_iter=args.max_iter,
                                random_state=args.random_state)
    rows, models = fit_architectures(
        X_train, y_train, X_test, y_test, args.architectures,
        max_iter=args.max_iter, verbose=0 if args.quiet else 1, random_state=args.random_state,
    )
    table = format_table(rows)
    print(table)
    if args.table is not None:
        args.table.write_text(format_report(conditions, rows))
    if not args.no_plot:
        try:
            plot_results(models, rows, X_test, args.output)
        except ImportError:
            print('The figure needs matplotlib: pip install "skmtl[plot]".')
        else:
            print(f"figure saved to {args.output.resolve()}")
    return rows


if __name__ == "__main__":
    main()
