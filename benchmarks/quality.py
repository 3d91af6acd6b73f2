"""Quality benchmark: skmtl's defaults against per-task gradient boosting and logistic regression.

The question a data scientist asks first: is a multi-task network better than
:class:`~sklearn.ensemble.HistGradientBoostingClassifier` fitted once per task?
Every *case* below is fitted by every *model*, for several seeds, and scored on
held-out rows by each task's ROC AUC and log loss.

Cases (``--cases``):

``census``
    The bundled census-income file (:func:`skmtl.datasets.load_census_income`),
    tasks ``income_50k`` and ``never_married``, with the split of
    ``examples/census_income.py`` (``train_test_split(test_size=0.2,
    random_state=0)``, the same for every seed: the seed changes the models only).
``synthetic_0.9``, ``synthetic_0.5``
    :func:`skmtl.datasets.make_multitask_classification` (100 features, 10 sine
    terms, two tasks whose weight vectors have cosine 0.9 or 0.5), 10,000
    training and 5,000 test rows drawn with ``random_state=seed``.
``small``
    Small data: :func:`sklearn.datasets.make_multilabel_classification` (100
    count columns drawn from a mixture of the labels' word distributions, 12
    labels, 3 labels per row on average), 3,000 training and 1,000 test rows,
    drawn and split with ``random_state=0`` for every seed: a network sized for millions of rows must
    not lose to one logistic regression per label here.
``wide``
    The wide-data case (1,000 columns x 100 tasks), if ``benchmarks/wide_data.py``
    defines ``quality_case(seed)`` returning ``(X_train, X_test, y_train,
    y_test, description)``; skipped with a message otherwise.

Models (``--models``): ``default`` (:class:`skmtl.MultiTaskClassifier` with
its defaults), ``default+periodic`` and ``default+piecewise_linear`` (the
numeric embeddings), ``shared_bottom`` and its two embeddings, ``hgb``
(``HistGradientBoostingClassifier(categorical_features="from_dtype",
random_state=seed)``, otherwise defaults, one per task) and ``logreg``
(one-hot encoded categorical and standardised continuous columns, then
``LogisticRegression(max_iter=1000)``, one Pipeline per task). ``--variant
NAME='{"param": value}'`` adds a MultiTaskClassifier with those parameters
(JSON), e.g. to measure a training-recipe lever.

Every fit runs in its own Python process (so no model's threads or memory
affect another's), one after the other, in the order seed, then model: models
compared with each other ran minutes apart at most. Fit times were taken on
whatever machine ran the benchmark; the report gives each model's fit time as
the median over seeds of its ratio to ``default``'s fit on the same case and
seed, with the 1-minute load average before and after the run.

Run: ``python benchmarks/quality.py [--cases census small] [--seeds 0 1 2]
[--models default hgb ...] [--variant NAME=JSON ...] [--output PATH]``.
Writes ``benchmarks/results/quality_latest.md`` and the raw rows to
``quality_latest.json`` (next to the Markdown file).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "results" / "quality_latest.md"

MODELS = {
    "default": {},
    "default+periodic": {"numeric_embedding": "periodic"},
    "default+piecewise_linear": {"numeric_embedding": "piecewise_linear"},
    "shared_bottom": {"architecture": "shared_bottom"},
    "shared_bottom+periodic": {"architecture": "shared_bottom", "numeric_embedding": "periodic"},
    "shared_bottom+piecewise_linear": {
        "architecture": "shared_bottom", "numeric_embedding": "piecewise_linear",
    },
}
"""skmtl models by name: keyword arguments of MultiTaskClassifier (besides random_state)."""

BASELINES = ("hgb", "logreg")
CASES = ("census", "synthetic_0.9", "synthetic_0.5", "small", "wide")
DEFAULT_CASES = ("census", "synthetic_0.9", "synthetic_0.5", "small")


@dataclass
class Split:
    """One case's data for one seed."""

    X_train: object
    X_test: object
    y_train: object  # DataFrame, one column per task
    y_test: object
    description: str


# ------------------------------------------------------------------ the cases
def load_case(case: str, seed: int) -> Split:
    """The training and test rows of ``case`` for ``seed``."""
    import pandas as pd
    from sklearn.model_selection import train_test_split

    from skmtl.datasets import load_census_income, make_multitask_classification

    if case == "census":
        X, y = load_census_income(return_X_y=True)
        X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.2, random_state=0)
        return Split(
            X_train, X_test, y_train, y_test,
            f"bundled census-income file, {len(X):,} rows, {X.shape[1]} features, tasks "
            f"{', '.join(y.columns)}; the 80/20 split of examples/census_income.py "
            f"(random_state=0 for every seed): {len(X_train):,} training, {len(X_test):,} test "
            "rows",
        )
    if case.startswith("synthetic_"):
        n_train, n_test, correlation = 10_000, 5_000, float(case.split("_")[1])
        X, y = make_multitask_classification(
            n_train + n_test, 100, task_correlation=correlation, random_state=seed
        )
        description = (f"make_multitask_classification(n_features=100, n_tasks=2, "
                       f"task_correlation={correlation}, random_state=seed)")
    elif case == "small":
        from sklearn.datasets import make_multilabel_classification

        n_train, n_test = 3_000, 1_000
        # One data set for every seed (as census): with random_state=1 a label has no
        # positive row at all.
        X, y = make_multilabel_classification(
            n_train + n_test, 100, n_classes=12, n_labels=3, random_state=0
        )
        seed = 0
        description = ("sklearn.datasets.make_multilabel_classification(n_features=100, "
                       "n_classes=12, n_labels=3, random_state=0) for every seed (the seed "
                       "changes the models only): 100 count columns, 12 labels")
    if case.startswith("synthetic_") or case == "small":
        X = pd.DataFrame(X.astype(np.float64), columns=[f"x{j}" for j in range(X.shape[1])])
        y = pd.DataFrame(y, columns=[f"task_{t}" for t in range(y.shape[1])])
        X_train, X_test, y_train, y_test = train_test_split(
            X, y, test_size=n_test, random_state=seed
        )
        return Split(X_train, X_test, y_train, y_test,
                     f"{description}; {n_train:,} training and {n_test:,} test rows")
    if case == "wide":
        sys.path.insert(0, str(HERE))
        try:
            from wide_data import quality_case  # the wide-data benchmark's hook
        except ImportError as exc:
            raise CaseUnavailable(f"benchmarks/wide_data.py has no quality_case ({exc})") from None
        return Split(*quality_case(seed))
    raise ValueError(f"unknown case {case!r}; expected one of {CASES}")


class CaseUnavailable(RuntimeError):
    """A case whose data or generator is not there (reported, not an error)."""


# ----------------------------------------------------------------- the models
def _baseline(name: str, X, seed: int):
    """An unfitted per-task baseline for the columns of ``X``."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    if name == "hgb":
        return HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=seed)
    from pandas.api.types import is_numeric_dtype

    categorical = [c for c in X.columns if not is_numeric_dtype(X[c].dtype)]
    continuous = [c for c in X.columns if c not in categorical]
    encode = ColumnTransformer([
        ("categorical", OneHotEncoder(handle_unknown="ignore"), categorical),
        ("continuous", StandardScaler(), continuous),
    ])
    return make_pipeline(encode, LogisticRegression(max_iter=1000))


def _scores(y_true, proba, classes) -> tuple[float, float]:
    """ROC AUC and log loss of one task from its class probabilities."""
    from sklearn.metrics import log_loss, roc_auc_score

    y_true = np.asarray(y_true)
    known = ~np.asarray(pd_isna(y_true))
    y_true, proba = y_true[known], np.asarray(proba)[known]
    positive = proba[:, -1]
    auc = roc_auc_score(y_true == classes[-1], positive)
    return float(auc), float(log_loss(y_true, proba, labels=classes))


def pd_isna(values):
    import pandas as pd

    return pd.isna(values)


def fit_and_score(
    case: str, model: str, seed: int, params: dict | None, proba_dir: str | None = None
) -> dict:
    """Fit ``model`` on ``case`` for ``seed``; its per-task test scores and fit time.

    With ``proba_dir``, the test rows' probabilities of each task's positive
    class are saved there as ``<case>_<model>_<seed>.npy`` (tasks as columns),
    e.g. to score an ensemble of seeds afterwards.
    """
    split = load_case(case, seed)
    tasks = list(split.y_train.columns)
    load_before = os.getloadavg()[0]
    if model in BASELINES:
        seconds, aucs, losses, positives = 0.0, [], [], []
        for task in tasks:
            known = ~split.y_train[task].isna().to_numpy()
            estimator = _baseline(model, split.X_train, seed)
            start = time.perf_counter()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                estimator.fit(split.X_train[known], split.y_train[task][known])
            seconds += time.perf_counter() - start
            proba = estimator.predict_proba(split.X_test)
            auc, loss = _scores(split.y_test[task], proba, estimator.classes_)
            positives.append(proba[:, -1])
            aucs.append(auc)
            losses.append(loss)
        epochs = None
    else:
        from skmtl import MultiTaskClassifier

        estimator = MultiTaskClassifier(**{**MODELS.get(model, {}), **(params or {})},
                                        random_state=seed)
        start = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            estimator.fit(split.X_train, split.y_train)
        seconds = time.perf_counter() - start
        probas = estimator.predict_proba(split.X_test)
        aucs, losses, positives = [], [], [p[:, -1] for p in probas]
        for t, task in enumerate(tasks):
            auc, loss = _scores(split.y_test[task], probas[t], estimator.classes_[t])
            aucs.append(auc)
            losses.append(loss)
        epochs = int(estimator.n_iter_)
    if proba_dir is not None:
        Path(proba_dir).mkdir(parents=True, exist_ok=True)
        np.save(Path(proba_dir) / f"{case}_{model}_{seed}.npy", np.column_stack(positives))
    return {
        "case": case, "model": model, "seed": seed, "params": params, "tasks": tasks,
        "auc": aucs, "log_loss": losses, "fit_seconds": seconds, "epochs": epochs,
        "load": [load_before, os.getloadavg()[0]], "description": split.description,
    }


def run_in_subprocess(
    case: str, model: str, seed: int, params: dict | None, proba_dir: str | None = None
) -> dict:
    """:func:`fit_and_score` in a fresh Python process (its result, or the error)."""
    job = json.dumps({"case": case, "model": model, "seed": seed, "params": params,
                      "proba_dir": proba_dir})
    env = dict(os.environ)
    if model in BASELINES:  # on a shared machine, OpenMP's spinning threads stall HGB
        env.setdefault("OMP_NUM_THREADS", "1")
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--worker", job],
        capture_output=True, text=True, check=False, env=env,
    )
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT "):])
    message = (proc.stderr.strip().splitlines() or ["no output"])[-1]
    return {"case": case, "model": model, "seed": seed, "params": params, "error": message}


# ---------------------------------------------------------------- the report
def row_summary(row: dict) -> str:
    """One fit's scores, time, epochs and load (or its error) on one line."""
    return row.get("error") or (
        f"AUC {np.round(row['auc'], 4).tolist()} log loss "
        f"{np.round(row['log_loss'], 4).tolist()} {row['fit_seconds']:.1f}s "
        f"epochs {row['epochs']} load {row['load'][0]:.1f}-{row['load'][1]:.1f}"
    )


def _mean_std(values) -> str:
    values = np.asarray(values, dtype=float)
    return f"{values.mean():.4f} ± {values.std():.4f}"


def summarise(rows: list[dict], reference: str = "default", baselines=BASELINES) -> str:
    """The Markdown tables of one case's rows (every model, every seed)."""
    ok = [r for r in rows if "error" not in r]
    if not ok:
        return "\n".join(f"- {r['model']} seed {r['seed']}: {r['error']}" for r in rows) + "\n"
    tasks = ok[0]["tasks"]
    models = list(dict.fromkeys(r["model"] for r in ok))
    by = {(r["model"], r["seed"]): r for r in ok}
    seeds = sorted({r["seed"] for r in ok})
    references = {(r.get("run"), r["seed"]): r for r in rows if r["model"] == reference
                  and "error" not in r}
    header = (
        "| model | " + " | ".join(f"AUC {t}" for t in tasks) + " | mean AUC | "
        + " | ".join(f"log loss {t}" for t in tasks)
        + f" | fit time / {reference}'s | epochs | load |"
    )
    many = len(tasks) > 3  # e.g. the small-data case's 12 tasks: means over tasks only
    if many:
        header = (f"| model | mean AUC | min task AUC | mean log loss | fit time / {reference}'s "
                  "| epochs | load |")
    lines = [header, "|---|" + "---:|" * (header.count("|") - 2)]
    for model in models:
        runs = [by[(model, s)] for s in seeds if (model, s) in by]
        auc = np.array([r["auc"] for r in runs])  # (seeds, tasks)
        loss = np.array([r["log_loss"] for r in runs])
        ratios = [  # to the reference's fit of the same seed in the same run
            r["fit_seconds"] / references[(r.get("run"), r["seed"])]["fit_seconds"]
            for r in runs if (r.get("run"), r["seed"]) in references
        ]
        ratio = f"{np.median(ratios):.2f}" if ratios else "n/a"
        epochs = [r["epochs"] for r in runs if r["epochs"] is not None]
        epoch_cell = f"{np.mean(epochs):.0f}" if epochs else "n/a"
        if many:
            cells = [_mean_std(auc.mean(1)), _mean_std(auc.min(1)), _mean_std(loss.mean(1))]
        else:
            cells = [_mean_std(auc[:, t]) for t in range(len(tasks))]
            cells.append(_mean_std(auc.mean(1)))
            cells += [_mean_std(loss[:, t]) for t in range(len(tasks))]
        load = np.median([r["load"][0] for r in runs])
        lines.append(f"| {model} | " + " | ".join(cells) + f" | {ratio} | {epoch_cell} "
                     f"| {load:.1f} |")
    lines += ["", "(load: the median 1-minute load average when the model's fits started.)", ""]
    for baseline in [b for b in baselines if b in models]:
        lines.append(f"Difference from {baseline}, paired by seed (AUC, then log loss; "
                     "AUC: + is better, log loss: - is better), per seed:")
        lines.append("")
        lines.append("| model | " + " | ".join(
            f"ΔAUC {t}" for t in (tasks if not many else ["mean"])) + " | " + " | ".join(
            f"Δlog loss {t}" for t in (tasks if not many else ["mean"])) + " |")
        width = 2 * (1 if many else len(tasks))
        lines.append("|---|" + "---:|" * width)
        for model in models:
            if model == baseline:
                continue
            pairs = [(by[(model, s)], by[(baseline, s)]) for s in seeds
                     if (model, s) in by and (baseline, s) in by]
            if not pairs:
                continue
            d_auc = np.array([np.subtract(a["auc"], b["auc"]) for a, b in pairs])
            d_loss = np.array([np.subtract(a["log_loss"], b["log_loss"]) for a, b in pairs])
            if many:
                d_auc, d_loss = d_auc.mean(1, keepdims=True), d_loss.mean(1, keepdims=True)
            cells = [
                f"{d[:, t].mean():+.4f} ({', '.join(f'{v:+.4f}' for v in d[:, t])})"
                for d in (d_auc, d_loss) for t in range(d.shape[1])
            ]
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
        lines.append("")
    errors = [r for r in rows if "error" in r]
    lines += [f"- failed: {r['model']} seed {r['seed']}: {r['error']}" for r in errors]
    return "\n".join(lines) + "\n"


def report(rows: list[dict], conditions: dict) -> str:
    """The whole Markdown report: the run's conditions, then one section per case."""
    lines = ["# Quality: skmtl against per-task gradient boosting and logistic regression", ""]
    lines += [f"- {key}: {value}" for key, value in conditions.items()]
    variants = {r["model"]: r["params"] for r in rows if r.get("params")}
    lines += [f"- variant `{name}`: `{json.dumps(params)}`" for name, params in variants.items()]
    for case in dict.fromkeys(r["case"] for r in rows):
        case_rows = [r for r in rows if r["case"] == case]
        described = next((r["description"] for r in case_rows if "description" in r), "")
        lines += ["", f"## {case}", "", described + ".", "", summarise(case_rows)]
    return "\n".join(lines)


def run_conditions(argv, seeds) -> dict:
    import sklearn
    import torch

    import skmtl

    return {
        "command": "`python benchmarks/quality.py " + " ".join(argv) + "`",
        "seeds": ", ".join(map(str, seeds)) + " (every model's random_state; the synthetic "
                 "cases also draw their data with it)",
        "software": f"skmtl {skmtl.__version__}, torch {torch.__version__}, scikit-learn "
                    f"{sklearn.__version__}, Python {platform.python_version()}",
        "machine": f"{os.cpu_count()} CPUs ({platform.machine()}), shared with other work: "
                   "fit times are ratios within a run, not absolute figures",
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }


def merge(paths, output: Path) -> list[dict]:
    """One report of the rows of several runs.

    The first row of a case, model and seed is reported; every run's rows of
    ``default`` are kept, so that each run's fit times are compared with its own.
    """
    rows, seen, loads = [], set(), []
    for path in paths:
        for row in json.loads(Path(path).read_text()):
            key = (row["case"], row["model"], row["seed"])
            if (key not in seen or row["model"] == "default") and "error" not in row:
                seen.add(key)
                rows.append({**row, "run": row.get("run", str(path))})  # a merged report's rows keep their runs
                loads += row.get("load", [])
    order = {case: i for i, case in enumerate(CASES)}
    rows.sort(key=lambda r: order.get(r["case"], len(order)))
    conditions = {
        "command": "`python benchmarks/quality.py --merge "
                   + " ".join(Path(p).name for p in paths) + "`: the rows of "
                   f"{len(paths)} runs, fitted one process per fit",
        "load": f"1-minute load average between {min(loads):.1f} and {max(loads):.1f} at the "
                "fits' starts and ends" if loads else "not recorded",
        **{k: v for k, v in run_conditions([], []).items() if k in ("software", "machine")},
        "seeds": ", ".join(map(str, sorted({r["seed"] for r in rows}))) + " (every model's "
                 "random_state; the synthetic cases also draw their data with it)",
    }
    text = report(rows, conditions)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    output.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    print(text)
    return rows


def parse_variant(text: str) -> tuple[str, dict]:
    name, _, params = text.partition("=")
    if not name or not params:
        raise argparse.ArgumentTypeError(f"--variant NAME=JSON, got {text!r}")
    try:
        parsed = json.loads(params)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(f"--variant {name}: {exc}") from None
    return name, parsed


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=list(DEFAULT_CASES), choices=CASES)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--models", nargs="+", default=[*MODELS, *BASELINES],
                        choices=[*MODELS, *BASELINES])
    parser.add_argument("--variant", action="append", type=parse_variant, default=[],
                        metavar="NAME=JSON",
                        help="an extra MultiTaskClassifier, e.g. adamw='{\"weight_decay\": 1e-4}'")
    parser.add_argument("--output", type=Path, default=OUTPUT)
    parser.add_argument("--proba-dir", default=None,
                        help="save each fit's test probabilities there (.npy)")
    parser.add_argument("--merge", nargs="+", type=Path, default=None, metavar="JSON",
                        help="write the report of the rows of earlier runs (their .json files) "
                             "instead of fitting; a model's fit times are compared with the "
                             "reference's in its own run")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.merge:
        return merge(args.merge, args.output)
    if args.worker:
        job = json.loads(args.worker)
        print("RESULT " + json.dumps(fit_and_score(**job)), flush=True)
        return []
    argv = sys.argv[1:] if argv is None else list(argv)
    conditions = run_conditions(argv, args.seeds)
    load_start = os.getloadavg()[0]
    jobs = [(m, MODELS.get(m)) for m in args.models] + [(n, p) for n, p in args.variant]
    rows = []
    for case in args.cases:
        for seed in args.seeds:
            for model, params in jobs:
                extra = params if model not in MODELS else None
                row = run_in_subprocess(case, model, seed, extra, args.proba_dir)
                rows.append(row)
                print(f"{case} seed {seed} {model}: {row_summary(row)}", flush=True)
                args.output.parent.mkdir(parents=True, exist_ok=True)
                args.output.with_suffix(".json").write_text(json.dumps(rows, indent=1))
                if "error" in row and "CaseUnavailable" in row["error"]:
                    break
    conditions["load"] = (f"1-minute load average {load_start:.2f} at the start, "
                          f"{os.getloadavg()[0]:.2f} at the end")
    text = report(rows, conditions)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    args.output.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    print(text)
    return rows


if __name__ == "__main__":
    main()
