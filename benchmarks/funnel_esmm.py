"""ESMM funnel training against a naive click-only CVR model, on synthetic ad funnels.

For each seed, :func:`skmtl.datasets.make_ad_funnel` draws impressions with
clicks and post-click conversions of known probability (CTR about 4 %,
post-click CVR about 10 %), split into training and held-out impressions.
Two models with the same architecture and settings (MMoE, early stopping on)
are fitted on the training impressions:

- ``esmm``: ``MultiTaskClassifier(funnel=("click", "conversion"),
  funnel_mode="esmm")``. The click head and the conditional conversion head
  are trained through pCTR and pCTCVR = pCTR x pCVR on ALL impressions.
- ``naive``: the same estimator without a funnel, with the conversion label
  NaN on non-clicked impressions: the click task is trained on all
  impressions, the conversion task (pCVR) on clicked impressions only (NaN
  labels are masked out of its loss). Its conversion score over all
  impressions is pCTR x pCVR.

On the held-out impressions the script reports, as mean +/- standard
deviation over the seeds:

- ROC AUC of the conversion score (pCTCVR) over all impressions, of pCVR on
  the clicked impressions, and of pCTR; the same AUCs of the generator's true
  probabilities (the oracle ceiling); and the paired ESMM - naive
  differences;
- calibration: mean predicted against mean true probability for pCTR (all
  impressions), pCVR (clicked impressions, and all impressions, where the
  naive model has never been trained) and pCTCVR (all impressions).

The table is printed and written to ``benchmarks/results/funnel_latest.md``.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/funnel_esmm.py            # 5 seeds, ~10 min on 2 CPU cores
    python benchmarks/funnel_esmm.py --seeds 2 --n-train 50000   # quick look
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import platform
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

# (key, label) of the reported quantities, in table order.
AUC_ROWS = [
    ("auc_ctcvr", "AUC conversion over all impressions (pCTCVR)"),
    ("auc_cvr", "AUC post-click pCVR on clicked impressions"),
    ("auc_ctr", "AUC pCTR over all impressions"),
]
CALIBRATION_ROWS = [
    ("mean_ctr", "mean pCTR, all impressions"),
    ("mean_cvr_clicked", "mean pCVR, clicked impressions"),
    ("mean_cvr_all", "mean pCVR, all impressions"),
    ("mean_ctcvr", "mean pCTCVR, all impressions"),
]


def model_params(args) -> dict:
    """The settings shared by both models."""
    return dict(
        architecture="mmoe",
        n_experts=4,
        expert_layer_sizes=(64, 32),
        tower_layer_sizes=(32,),
        embedding_dim=8,
        batch_size=args.batch_size,
        learning_rate_init=args.learning_rate,
        max_iter=args.max_iter,
        early_stopping="auto",
        n_iter_no_change=args.n_iter_no_change,
        device="cpu",
    )


def _logit(p):
    p = np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1 - 1e-7)
    return np.log(p) - np.log1p(-p)


def truth_scores(p_ctr, p_cvr, p_ctcvr, data, rows) -> dict:
    """Pearson correlation, in logit space, of each probability with the generator's truth.

    Over ALL held-out impressions (``rows``), labels play no part: for pCVR
    this is the quantity ESMM is meant to improve, a post-click conversion
    rate that is right for the impressions that were not clicked too.
    """
    truth = {
        "r_ctr": data.p_click[rows],
        "r_cvr": data.p_conversion_given_click[rows],
        "r_ctcvr": data.p_conversion[rows],
    }
    predicted = {"r_ctr": p_ctr, "r_cvr": np.minimum(p_cvr, 1.0), "r_ctcvr": p_ctcvr}
    return {
        key: float(np.corrcoef(_logit(predicted[key]), _logit(truth[key]))[0, 1])
        for key in truth
    }


def scores(p_ctr, p_cvr, p_ctcvr, y, clicked) -> dict:
    """AUCs and means of one set of probabilities on the held-out impressions.

    Parameters
    ----------
    p_ctr, p_cvr, p_ctcvr : ndarray of shape (n_test,)
        P(click), P(conversion | click) and P(click and conversion).
    y : DataFrame
        Held-out labels (conversion 0 where not clicked).
    clicked : ndarray of bool of shape (n_test,)
        Clicked held-out impressions.

    Returns
    -------
    scores : dict of str to float
    """
    return {
        "auc_ctcvr": roc_auc_score(y["conversion"], p_ctcvr),
        "auc_cvr": roc_auc_score(y["conversion"][clicked], p_cvr[clicked]),
        "auc_ctr": roc_auc_score(y["click"], p_ctr),
        "mean_ctr": p_ctr.mean(),
        "mean_cvr_clicked": p_cvr[clicked].mean(),
        "mean_cvr_all": p_cvr.mean(),
        "mean_ctcvr": p_ctcvr.mean(),
    }


def run_seed(
    seed: int, args, selection_bias: float = 0.0, impression_model: bool = False,
    models: tuple = ("esmm", "naive"), esmm_variants: dict | None = None,
) -> dict:
    """Generate one funnel, fit the models, score them and the oracle.

    ``impression_model`` adds a third model, ``impression``: no funnel, the
    conversion label 0 where not clicked, so its conversion task learns
    pCTCVR directly over all impressions (pCVR = pCTCVR / pCTR). ``models``
    leaves out ``"esmm"`` or ``"naive"``; ``esmm_variants`` maps a name to
    parameters that override the shared ones for one more ESMM model each.
    """
    n = args.n_train + args.n_test
    data = make_ad_funnel(
        n, conversion_when_not_clicked="nan", selection_bias=selection_bias, random_state=seed
    )
    X, y_nan = data.data, data.target
    y = y_nan.fillna(0).astype("int64")  # impression-space labels, for scoring
    train, test = np.arange(args.n_train), np.arange(args.n_train, n)
    X_train, X_test, y_test = X.iloc[train], X.iloc[test], y.iloc[test]
    clicked = y_test["click"].to_numpy() == 1

    out = {
        "seed": seed,
        "n_train_clicks": int(y["click"].iloc[train].sum()),
        "n_train_conversions": int(y["conversion"].iloc[train].sum()),
        "n_test_clicks": int(clicked.sum()),
        "n_test_conversions": int(y_test["conversion"].sum()),
        "observed_ctr": float(y_test["click"].mean()),
        "observed_cvr_clicked": float(y_test["conversion"][clicked].mean()),
        "observed_ctcvr": float(y_test["conversion"].mean()),
    }
    out["oracle"] = scores(
        data.p_click[test],
        data.p_conversion_given_click[test],
        data.p_conversion[test],
        y_test,
        clicked,
    )

    params = model_params(args)
    out["oracle"].update(truth_scores(
        data.p_click[test], data.p_conversion_given_click[test], data.p_conversion[test],
        data, test,
    ))
    esmm_models = {"esmm": {}} if "esmm" in models else {}
    esmm_models.update(esmm_variants or {})
    for name, overrides in esmm_models.items():
        start = time.perf_counter()
        esmm = MultiTaskClassifier(
            funnel=FUNNEL, funnel_mode="esmm", random_state=seed, **{**params, **overrides}
        )
        esmm.fit(X_train, y_nan.iloc[train])
        fit_esmm = time.perf_counter() - start
        proba = esmm.predict_proba(X_test)
        conditional = esmm.predict_conditional_proba(X_test)
        probabilities = (conditional["click"], conditional["conversion"], proba[1][:, 1])
        out[name] = scores(*probabilities, y_test, clicked)
        out[name].update(truth_scores(*probabilities, data, test))
        out[name].update(fit_s=fit_esmm, n_iter=esmm.n_iter_)

    if "naive" in models:
        start = time.perf_counter()
        naive = MultiTaskClassifier(random_state=seed, **params)
        naive.fit(X_train, y_nan.iloc[train])  # conversion NaN where not clicked: CVR on clicks
        fit_naive = time.perf_counter() - start
        p_ctr, p_cvr = (p[:, 1] for p in naive.predict_proba(X_test))
        out["naive"] = scores(p_ctr, p_cvr, p_ctr * p_cvr, y_test, clicked)
        out["naive"].update(truth_scores(p_ctr, p_cvr, p_ctr * p_cvr, data, test))
        out["naive"].update(fit_s=fit_naive, n_iter=naive.n_iter_)
    if impression_model:
        start = time.perf_counter()
        direct = MultiTaskClassifier(random_state=seed, **params)
        direct.fit(X_train, y.iloc[train])  # conversion 0 where not clicked: pCTCVR directly
        fit_direct = time.perf_counter() - start
        d_ctr, d_ctcvr = (p[:, 1] for p in direct.predict_proba(X_test))
        d_cvr = d_ctcvr / d_ctr
        out["impression"] = scores(d_ctr, np.minimum(d_cvr, 1.0), d_ctcvr, y_test, clicked)
        out["impression"].update(truth_scores(d_ctr, d_cvr, d_ctcvr, data, test))
        out["impression"].update(fit_s=fit_direct, n_iter=direct.n_iter_)
    return out


def mean_std(values, digits: int) -> str:
    values = np.asarray(values, dtype=float)
    std = values.std(ddof=1) if len(values) > 1 else 0.0
    return f"{values.mean():.{digits}f} ± {std:.{digits}f}"


def _provenance(command: str, runtime_s: float) -> str:
    return (
        f"Generated by `{command}` on {_dt.date.today().isoformat()} "
        f"({platform.machine()}, {platform.python_version()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} torch thread(s)); total runtime {runtime_s / 60:.1f} min."
    )


def report(results: list[dict], args, command: str, runtime_s: float) -> str:
    """The Markdown report of all seeds."""
    col = lambda model, key: [r[model][key] for r in results]
    lines = [
        "# ESMM funnel training vs a naive click-only CVR model",
        "",
        _provenance(command, runtime_s),
        "",
        f"Data: `make_ad_funnel(n_samples={args.n_train + args.n_test}, ctr=0.04, cvr=0.10, "
        "conversion_when_not_clicked='nan', random_state=seed)`, the first "
        f"{args.n_train:,} impressions for training, the last {args.n_test:,} held out; "
        f"seeds {', '.join(str(r['seed']) for r in results)} (the seed also seeds the models).",
        f"Per seed: {mean_std([r['n_train_clicks'] for r in results], 0)} training clicks and "
        f"{mean_std([r['n_train_conversions'] for r in results], 0)} training conversions; "
        f"{mean_std([r['n_test_clicks'] for r in results], 0)} held-out clicks and "
        f"{mean_std([r['n_test_conversions'] for r in results], 0)} held-out conversions.",
        "",
        "Both models: `MultiTaskClassifier(architecture='mmoe', n_experts=4, "
        "expert_layer_sizes=(64, 32), tower_layer_sizes=(32,), embedding_dim=8, "
        f"batch_size={args.batch_size}, learning_rate_init={args.learning_rate}, "
        f"max_iter={args.max_iter}, early_stopping='auto' (on: 10 % validation), "
        f"n_iter_no_change={args.n_iter_no_change})`.",
        "",
        "- **ESMM**: `funnel=('click', 'conversion'), funnel_mode='esmm'`; pCVR is "
        "`predict_conditional_proba(X)['conversion']`, pCTCVR `predict_proba(X)[1][:, 1]`.",
        "- **naive**: no funnel, conversion NaN where not clicked, so its CVR head is "
        "trained on clicked impressions only; pCTCVR = pCTR x pCVR.",
        "- **oracle**: the generator's true P(click | x), P(conversion | click, x) and "
        "their product.",
        "",
        "Held-out scores, mean ± standard deviation over seeds:",
        "",
        "| quantity | ESMM | naive | oracle | ESMM − naive (paired) |",
        "|---|---|---|---|---|",
    ]
    for key, label in AUC_ROWS:
        diff = np.subtract(col("esmm", key), col("naive", key))
        lines.append(
            f"| {label} | {mean_std(col('esmm', key), 4)} | {mean_std(col('naive', key), 4)} "
            f"| {mean_std(col('oracle', key), 4)} | {mean_std(diff, 4)} |"
        )
    lines += [
        "",
        "Calibration: mean predicted probability against the mean true probability "
        "(oracle column) on the same impressions:",
        "",
        "| quantity | ESMM | naive | true (oracle) | ESMM / true | naive / true |",
        "|---|---|---|---|---|---|",
    ]
    for key, label in CALIBRATION_ROWS:
        truth = np.asarray(col("oracle", key))
        lines.append(
            f"| {label} | {mean_std(col('esmm', key), 5)} | {mean_std(col('naive', key), 5)} "
            f"| {mean_std(truth, 5)} | {mean_std(np.divide(col('esmm', key), truth), 3)} "
            f"| {mean_std(np.divide(col('naive', key), truth), 3)} |"
        )
    lines += [
        "",
        f"Observed held-out rates: CTR {mean_std([r['observed_ctr'] for r in results], 5)}, "
        f"post-click CVR {mean_std([r['observed_cvr_clicked'] for r in results], 5)}, "
        f"CTCVR {mean_std([r['observed_ctcvr'] for r in results], 5)}.",
        "",
        f"Fit time per model: ESMM {mean_std(col('esmm', 'fit_s'), 1)} s "
        f"({mean_std(col('esmm', 'n_iter'), 1)} epochs), naive "
        f"{mean_std(col('naive', 'fit_s'), 1)} s ({mean_std(col('naive', 'n_iter'), 1)} epochs).",
        "",
        "Per seed (AUC conversion all impressions / AUC pCVR clicked): "
        + "; ".join(
            f"seed {r['seed']}: ESMM {r['esmm']['auc_ctcvr']:.4f} / {r['esmm']['auc_cvr']:.4f}, "
            f"naive {r['naive']['auc_ctcvr']:.4f} / {r['naive']['auc_cvr']:.4f}, "
            f"oracle {r['oracle']['auc_ctcvr']:.4f} / {r['oracle']['auc_cvr']:.4f}"
            for r in results
        )
        + ".",
    ]
    return "\n".join(lines) + "\n"


BIAS_ROWS = [
    ("r_cvr", "r pCVR (true post-click CVR, all impressions)"),
    ("r_ctcvr", "r pCTCVR (true click-and-convert probability)"),
    ("r_ctr", "r pCTR (true click probability)"),
    ("auc_cvr", "AUC post-click pCVR on clicked impressions"),
    ("auc_ctcvr", "AUC conversion over all impressions (pCTCVR)"),
]
BIAS_MODELS = ("esmm", "naive", "impression")
"""The models of the study, in table order; ESMM variants follow them."""


def bias_report(results: dict, args, command: str, runtime_s: float) -> str:
    """The Markdown report of the selection-bias study: ``results[bias]`` is a list of seeds."""
    first = next(iter(results.values()))
    models = [m for m in first[0] if isinstance(first[0][m], dict) and m != "oracle"]
    lines = [
        "# ESMM against two single-step models, by strength of selection bias",
        "",
        _provenance(command, runtime_s),
        "",
        f"Data: `make_ad_funnel(n_samples={args.n_train + args.n_test}, ctr=0.04, cvr=0.10, "
        "conversion_when_not_clicked='nan', selection_bias=b, random_state=seed)`: a hidden "
        "intent h ~ N(0, 1) per impression adds b h to both the click and the conversion "
        "logit, so clicked impressions over-represent high intent. The first "
        f"{args.n_train:,} impressions train, the last {args.n_test:,} are held out; seeds "
        f"{', '.join(str(r['seed']) for r in first)}.",
        "",
        "Models (all MultiTaskClassifier with the same settings as the main funnel table):",
        "",
        "- **esmm**: `funnel=('click', 'conversion'), funnel_mode='esmm'`;",
        "- **naive**: conversion NaN where not clicked, so its CVR head trains on clicked "
        "impressions only; pCTCVR = pCTR x pCVR;",
        "- **impression**: conversion 0 where not clicked, no funnel, so its conversion "
        "head learns pCTCVR over all impressions; pCVR = pCTCVR / pCTR.",
        "",
        "Scores on the held-out impressions against the generator's true probabilities "
        "(given the observed features, averaged over the hidden intent; no label noise): "
        "r is the Pearson correlation of logits over ALL impressions. AUCs are against the labels. "
        "Mean ± standard deviation over seeds; paired differences by seed.",
        "",
    ]
    reference = "esmm" if "esmm" in models else models[0]
    others = [m for m in models if m != reference]
    lines += [
        "| b | quantity | " + " | ".join(models) + " | oracle | "
        + " | ".join(f"{reference} − {m}" for m in others) + " |",
        "|---|---|" + "---|" * (len(models) + 1 + len(others)),
    ]
    for bias, runs in results.items():
        for key, label in BIAS_ROWS:
            column = {m: [r[m][key] for r in runs] for m in models + ["oracle"]}
            cells = [mean_std(column[m], 4) for m in models + ["oracle"]]
            cells += [
                mean_std(np.subtract(column[reference], column[m]), 4) for m in others
            ]
            lines.append(f"| {bias:g} | {label} | " + " | ".join(cells) + " |")
    lines += ["", "Fit time (s) and epochs per model:", ""]
    for bias, runs in results.items():
        parts = [
            f"{m} {mean_std([r[m]['fit_s'] for r in runs], 1)} s "
            f"({mean_std([r[m]['n_iter'] for r in runs], 1)} epochs)"
            for m in models
        ]
        lines.append(f"- b = {bias:g}: " + "; ".join(parts) + ".")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5, help="number of seeds (0, 1, ...)")
    parser.add_argument("--n-train", type=int, default=200_000)
    parser.add_argument("--n-test", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--max-iter", type=int, default=20)
    parser.add_argument("--n-iter-no-change", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument(
        "--selection-bias", type=float, nargs="+", default=None, metavar="B",
        help="run the selection-bias study at these strengths (adds the impression-space "
        "model; report funnel_selection_bias_latest.md)",
    )
    parser.add_argument(
        "--models", nargs="+", default=list(BIAS_MODELS), choices=BIAS_MODELS,
        help="with --selection-bias: which of the three models to fit",
    )
    parser.add_argument(
        "--esmm-variant", action="append", default=[], metavar="NAME=JSON",
        help="with --selection-bias: one more ESMM model whose parameters JSON overrides "
        "(e.g. 'heavy={\"task_weights\": {\"conversion\": 5}}'); repeatable",
    )
    parser.add_argument("--output", type=Path, default=None, help="Markdown report")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    command = "python benchmarks/funnel_esmm.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    if args.selection_bias is not None:
        return _bias_study(args, command.strip())
    args.output = args.output or RESULTS_DIR / "funnel_latest.md"

    start = time.perf_counter()
    results = []
    for seed in range(args.seeds):
        result = run_seed(seed, args)
        results.append(result)
        print(
            f"seed {seed}: AUC pCTCVR esmm {result['esmm']['auc_ctcvr']:.4f} naive "
            f"{result['naive']['auc_ctcvr']:.4f} oracle {result['oracle']['auc_ctcvr']:.4f}; "
            f"AUC pCVR esmm {result['esmm']['auc_cvr']:.4f} naive "
            f"{result['naive']['auc_cvr']:.4f} oracle {result['oracle']['auc_cvr']:.4f} "
            f"({time.perf_counter() - start:.0f} s)",
            flush=True,
        )
    text = report(results, args, command.strip(), time.perf_counter() - start)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)
    return 0


def _bias_study(args, command: str) -> int:
    variants = {}
    for spec in args.esmm_variant:
        name, _, overrides = spec.partition("=")
        variants[name] = json.loads(overrides)
    start = time.perf_counter()
    results = {}
    for bias in args.selection_bias:
        results[bias] = []
        for seed in range(args.seeds):
            result = run_seed(
                seed, args, selection_bias=bias, impression_model="impression" in args.models,
                models=tuple(args.models), esmm_variants=variants,
            )
            results[bias].append(result)
            names = [m for m in result if isinstance(result[m], dict) and m != "oracle"]
            print(
                f"b={bias:g} seed {seed}: r(pCVR) " + ", ".join(
                    f"{m} {result[m]['r_cvr']:.4f}" for m in names
                ) + "; r(pCTCVR) " + ", ".join(
                    f"{m} {result[m]['r_ctcvr']:.4f}" for m in names
                ) + f" ({time.perf_counter() - start:.0f} s)",
                flush=True,
            )
    text = bias_report(results, args, command, time.perf_counter() - start)
    output = args.output or RESULTS_DIR / "funnel_selection_bias_latest.md"
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
