"""How much a behaviour-history column lifts an ESMM funnel, at several strengths of its signal.

For each signal level ``s`` and seed, :func:`skmtl.datasets.make_ad_funnel`
draws impressions with ``history_length`` recently clicked items per
impression (``history_item_id``, ``history_category``) and
``history_signal=s``: the click logit gains ``s (a + r)`` and the conversion
logit ``0.5 s (a + r)``, with ``a`` the candidate category's log lift in the
history and ``r`` whether the history holds the candidate item. At ``s = 0``
the history is drawn independently of the labels given the other columns
(the labels are bit for bit those of a funnel without history), so a model
that reads it can only overfit.

Three ESMM funnels (``funnel=("click", "conversion")``, MMoE, the same
settings and seed) are fitted on the first ``n_train`` impressions and
scored on the rest:

- ``no history``: the user and item columns and the candidate's ``item_id``;
- ``mean``: the same plus the two history columns, mean-pooled, sharing the
  tables of ``item_id`` and ``item_category`` (``shared_embeddings``);
- ``attention``: the same with target attention (DIN's scores, with the
  estimators' default ``attention_weights="softmax"``; ``--extra-params
  '{"attention_weights": "din"}'`` for the paper's unnormalised weights) of
  ``item_id`` over ``history_item_id`` and of ``item_category`` over
  ``history_category``.

The report gives, per signal, mean +/- std over the seeds of the held-out
AUC of pCTR (clicks) and pCTCVR (conversions over all impressions), the same
AUCs of the generator's true probabilities (the ceiling), the paired
per-seed difference of each history model from ``no history``, epochs run
and fit times with their ratio to ``no history`` within the same seed (the
machine is shared: only the ratios mean anything, next to the load averages
recorded at start and end).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/history_signal.py                  # the full study
    python benchmarks/history_signal.py --signals 0 1 --seeds 1 --n-train 10000   # quick look
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import roc_auc_score

from skmtl import MultiTaskClassifier
from skmtl.datasets import make_ad_funnel

HERE = Path(__file__).resolve().parent
RESULTS_DIR = HERE / "results"
FUNNEL = ("click", "conversion")
BASE_COLUMNS = ["user_segment", "device", "user_activity", "user_age", "item_category",
                "item_price", "item_rating", "item_id"]
HISTORY_COLUMNS = ["history_item_id", "history_category"]
CATEGORICAL = ["user_segment", "device", "item_category", "item_id"]
MODELS = ("no history", "mean", "attention")
METRICS = (("auc_ctr", "AUC pCTR"), ("auc_ctcvr", "AUC pCTCVR"))


def model_settings(name: str, args) -> tuple[list[str], dict]:
    """The columns a model reads and its parameters (all but the shared ones)."""
    if name == "no history":
        return BASE_COLUMNS, {"categorical_features": CATEGORICAL}
    params = {
        "categorical_features": CATEGORICAL,
        "sequence_features": HISTORY_COLUMNS,
        "shared_embeddings": [["item_id", "history_item_id"],
                              ["item_category", "history_category"]],
        "max_sequence_length": args.history_length,
    }
    if name == "attention":
        params["attention_queries"] = {"history_item_id": "item_id",
                                       "history_category": "item_category"}
    return BASE_COLUMNS + HISTORY_COLUMNS, params


def shared_params(args, seed: int) -> dict:
    """The settings every model has (those of ``benchmarks/funnel_esmm.py``, smaller batches)."""
    params = {
        "architecture": "mmoe", "funnel": FUNNEL, "n_experts": 4, "expert_layer_sizes": (64, 32),
        "tower_layer_sizes": (32,), "embedding_dim": 8, "batch_size": args.batch_size,
        "learning_rate_init": args.learning_rate, "max_iter": args.max_iter,
        "early_stopping": True, "n_iter_no_change": args.n_iter_no_change, "device": "cpu",
        "random_state": seed,
    }
    return params


def run_one(signal: float, seed: int, args) -> dict:
    """Draw one funnel, fit the models on the first ``n_train`` rows, score the rest."""
    n = args.n_train + args.n_test
    data = make_ad_funnel(n, ctr=args.ctr, cvr=args.cvr, n_items=args.n_items,
                          history_length=args.history_length, history_signal=signal,
                          random_state=seed)
    X, y = data.data, data.target
    train, test = slice(0, args.n_train), slice(args.n_train, n)
    y_test = y.iloc[test]
    out = {"signal": signal, "seed": seed, "truth": {
        "auc_ctr": roc_auc_score(y_test["click"], data.p_click[test]),
        "auc_ctcvr": roc_auc_score(y_test["conversion"], data.p_conversion[test]),
    }}
    for name in args.models:
        columns, params = model_settings(name, args)
        model = MultiTaskClassifier(**{**shared_params(args, seed), **params,
                                       **json.loads(args.extra_params)})
        start = time.perf_counter()
        with warnings.catch_warnings(action="ignore", category=ConvergenceWarning):
            model.fit(X[columns].iloc[train], y.iloc[train])
        seconds = time.perf_counter() - start
        proba = model.predict_proba(X[columns].iloc[test])
        out[name] = {
            "auc_ctr": roc_auc_score(y_test["click"], proba[0][:, 1]),
            "auc_ctcvr": roc_auc_score(y_test["conversion"], proba[1][:, 1]),
            "fit_s": seconds, "epochs": int(model.n_iter_),
        }
        print(f"s={signal:g} seed={seed} {name:>10}: AUC pCTR {out[name]['auc_ctr']:.4f} "
              f"pCTCVR {out[name]['auc_ctcvr']:.4f} ({seconds:.1f} s, {model.n_iter_} epochs)",
              flush=True)
    return out


def _mean_std(values, digits: int = 4) -> str:
    values = np.asarray(values, dtype=float)
    std = values.std(ddof=1) if len(values) > 1 else float("nan")
    return f"{values.mean():.{digits}f} +- {std:.{digits}f}"


def report(runs: list[dict], args, loads: tuple[str, str], seconds: float) -> str:
    """The Markdown report of all runs."""
    signals = sorted({run["signal"] for run in runs})
    lines = [
        "# Behaviour history against signal strength (ESMM funnel, MMoE)",
        "",
        (f"Generated {_dt.date.today().isoformat()} by `benchmarks/history_signal.py` "
         f"(`{' '.join(sys.argv[1:]) or 'defaults'}`): python {platform.python_version()}, "
         f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
         f"{seconds / 60:.1f} min in all."),
        (f"`make_ad_funnel({args.n_train + args.n_test}, ctr={args.ctr}, cvr={args.cvr}, "
         f"n_items={args.n_items}, "
         f"history_length={args.history_length}, history_signal=s, random_state=seed)`, "
         f"first {args.n_train} impressions to train (10 % of them for early stopping), "
         f"{args.n_test} held out; seeds 0..{args.seeds - 1}; shared settings "
         f"`{shared_params(args, 0)}` (without `random_state`, which is the seed); "
         f"overridden for every model: `{args.extra_params}`."),
        (f"Load: `{loads[0]}` at the start, `{loads[1]}` at the end (a shared 2-core machine: "
         "compare fit times only as the ratios within a seed)."),
        "",
        ("AUCs are mean +- std over the seeds; diff is the paired per-seed difference from "
         "`no history` (mean +- std, and how many seeds it is below 0); time ratio is the "
         "median over seeds of fit time / `no history`'s fit time in the same seed."),
        "",
    ]
    for signal in signals:
        chosen = [run for run in runs if run["signal"] == signal]
        lines += [f"## history_signal = {signal:g}", "",
                  ("| model | AUC pCTR | diff pCTR | AUC pCTCVR | diff pCTCVR | epochs | fit s "
                   "| time ratio |"),
                  "|---|---|---|---|---|---|---|---|"]
        truth = [_mean_std([run["truth"][key] for run in chosen]) for key, _ in METRICS]
        lines.append(f"| truth (ceiling) | {truth[0]} | | {truth[1]} | | | | |")
        for name in args.models:
            cells = []
            for key, _ in METRICS:
                cells.append(_mean_std([run[name][key] for run in chosen]))
                if name == "no history" or "no history" not in args.models:
                    cells.append("")
                    continue
                diff = np.array([run[name][key] - run["no history"][key] for run in chosen])
                cells.append(f"{_mean_std(diff)} ({int((diff < 0).sum())}/{len(diff)} < 0)")
            epochs = np.median([run[name]["epochs"] for run in chosen])
            fit = np.median([run[name]["fit_s"] for run in chosen])
            ratio = (np.median([run[name]["fit_s"] / run["no history"]["fit_s"] for run in chosen])
                     if "no history" in args.models else float("nan"))
            lines.append(f"| {name} | {cells[0]} | {cells[1]} | {cells[2]} | {cells[3]} "
                         f"| {epochs:g} | {fit:.1f} | {ratio:.2f} |")
        lines.append("")
    return "\n".join(lines)


def _uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--signals", type=float, nargs="+", default=[0.0, 0.5, 1.0, 2.0])
    parser.add_argument("--seeds", type=int, default=3, help="number of seeds (0, 1, ...)")
    parser.add_argument("--n-train", type=int, default=40_000)
    parser.add_argument("--n-test", type=int, default=20_000)
    parser.add_argument("--ctr", type=float, default=0.1)
    parser.add_argument("--cvr", type=float, default=0.2)
    parser.add_argument("--n-items", type=int, default=500)
    parser.add_argument("--history-length", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--max-iter", type=int, default=20)
    parser.add_argument("--n-iter-no-change", type=int, default=3)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=MODELS)
    parser.add_argument("--extra-params", default="{}",
                        help="JSON of parameters that override the shared ones for every model")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--output", type=Path, default=RESULTS_DIR / "history_signal_latest.md")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start_load, start = _uptime(), time.perf_counter()
    runs = [run_one(signal, seed, args) for signal in args.signals for seed in range(args.seeds)]
    text = report(runs, args, (start_load, _uptime()), time.perf_counter() - start)
    print(text)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text + "\n")
    args.output.with_suffix(".json").write_text(json.dumps(runs, indent=1) + "\n")
    return runs


if __name__ == "__main__":
    main()
