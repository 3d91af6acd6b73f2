"""What a behaviour-history column costs: fit and predict throughput, and memory.

The MMoE benchmark workload (``bench_mmoe.make_workload``: 8 categorical and 10
continuous columns, two tasks, the same network and training settings as
``bench_mmoe.py``) gets a candidate ``item`` column (1,000 items, Zipf-like
popularity) and a ``history`` column: each row's last 50 item ids (a Python
list per cell, drawn from the same popularity). Three models, fitted in turn
and repeated (interleaved), medians reported:

- ``no history``: the 18 columns and ``item``;
- ``history, mean``: plus ``history``, mean-pooled, sharing ``item``'s table;
- ``history, attention``: the same with DIN-style attention of ``item`` over
  ``history`` (``attention_queries``).

Throughput is training rows x epochs per second of ``fit`` (encoding
included), and test rows per second of ``predict_proba``; the ratios to the
model without the history are what to read (the machine may be shared: the
load average is recorded). Memory: the encoded history (``int32`` codes,
``n x 50``) against the pandas column of lists it comes from, and the time
the encoding takes. Run::

    python benchmarks/sequence_cost.py [--rows 200000] [--repeats 3]

and the report goes to ``benchmarks/results/sequence_cost_latest.md``.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import bench_mmoe

N_ITEMS = 1_000
HISTORY_LENGTH = 50
EPOCHS = 3


def make_frames(n_train: int, n_test: int, seed: int = 0):
    """The MMoE workload as DataFrames, with a candidate item and a history of 50 items."""
    workload = bench_mmoe.make_workload(n_train, n_test, seed=seed)
    rng = np.random.default_rng(seed + 1)
    popularity = 1.0 / np.arange(1, N_ITEMS + 1) ** 0.8
    popularity /= popularity.sum()
    frames = []
    for part in ("train", "test"):
        X = workload[f"X_{part}"]
        n = X.shape[0]
        frame = pd.DataFrame(X[:, len(bench_mmoe.CARDINALITIES):],
                             columns=[f"x{j}" for j in range(bench_mmoe.N_CONTINUOUS)])
        for j in range(len(bench_mmoe.CARDINALITIES)):
            frame.insert(j, f"c{j}", X[:, j].astype(np.int64))
        frame["item"] = rng.choice(N_ITEMS, size=n, p=popularity)
        histories = rng.choice(N_ITEMS, size=(n, HISTORY_LENGTH), p=popularity)
        frame["history"] = pd.Series(list(map(list, histories.tolist())), dtype=object)
        frames.append((frame, workload[f"y_{part}"]))
    return frames


def estimator(model: str):
    clf, _ = bench_mmoe._skmtl_estimator(EPOCHS)
    categorical = [f"c{j}" for j in range(len(bench_mmoe.CARDINALITIES))] + ["item"]
    params = {"categorical_features": categorical}
    if model != "no history":
        params.update(sequence_features=["history"], shared_embeddings=[["item", "history"]],
                      max_sequence_length=HISTORY_LENGTH)
    if model == "history, attention":
        params["attention_queries"] = {"history": "item"}
    return clf.set_params(**params)


MODELS = ("no history", "history, mean", "history, attention")


def columns(model: str, frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns="history") if model == "no history" else frame


def measure(model: str, train, test) -> dict:
    (X, y), (X_test, _) = train, test
    X, X_test = columns(model, X), columns(model, X_test)
    clf = estimator(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        start = time.perf_counter()
        clf.fit(X, y)
        fit_seconds = time.perf_counter() - start
    clf.predict_proba(X_test.iloc[:1000])  # warm
    start = time.perf_counter()
    clf.predict_proba(X_test)
    predict_seconds = time.perf_counter() - start
    return {
        "fit_rows_per_s": len(X) * EPOCHS / fit_seconds,
        "predict_rows_per_s": len(X_test) / predict_seconds,
        "fit_s": fit_seconds,
        "predict_s": predict_seconds,
        "estimator": clf,
    }


def encoding_cost(clf, frame: pd.DataFrame) -> dict:
    """Seconds to encode ``frame``, and bytes of its history codes against its list column."""
    X = clf._validate_X(frame, reset=False)
    start = time.perf_counter()
    encoded = clf.encoder_.transform(X)
    seconds = time.perf_counter() - start
    codes = encoded[2]  # (categorical, continuous, sequence/shared codes)
    return {
        "encode_s": seconds,
        "codes_bytes": codes.nbytes,
        "codes_shape": codes.shape,
        "codes_dtype": str(codes.dtype),
        "list_column_bytes": int(frame["history"].memory_usage(deep=True)),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="training rows")
    parser.add_argument("--test-rows", type=int, default=50_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path, default=HERE / "results" / "sequence_cost_latest.md")
    args = parser.parse_args(argv)

    loads = [os.getloadavg()[0]]
    train, test = make_frames(args.rows, args.test_rows)
    runs: dict[str, list[dict]] = {m: [] for m in MODELS}
    warm = [(frame.iloc[:2000], y[:2000]) for frame, y in (train, test)]
    for model in MODELS:  # imports, first allocations: not in the timed runs
        measure(model, *warm)
    for repeat in range(args.repeats):
        for model in MODELS:
            result = measure(model, train, test)
            runs[model].append(result)
            loads.append(os.getloadavg()[0])
            print(f"repeat {repeat} {model}: fit {result['fit_rows_per_s']:,.0f} rows/s, "
                  f"predict {result['predict_rows_per_s']:,.0f} rows/s, load {loads[-1]:.2f}",
                  flush=True)
    memory = encoding_cost(runs["history, mean"][-1]["estimator"], train[0])

    def median(model, key):
        return statistics.median(r[key] for r in runs[model])

    base_fit, base_predict = median("no history", "fit_rows_per_s"), median("no history", "predict_rows_per_s")
    lines = [
        "# What a history column of 50 items costs (MMoE benchmark workload)",
        "",
        f"- command: `python benchmarks/sequence_cost.py --rows {args.rows} --test-rows "
        f"{args.test_rows} --repeats {args.repeats}`",
        f"- data: `bench_mmoe.make_workload` ({args.rows:,} training, {args.test_rows:,} test rows; "
        f"8 categorical, 10 continuous columns, 2 tasks) plus `item` ({N_ITEMS:,} items) and "
        f"`history` (the last {HISTORY_LENGTH} item ids of every row, a list per cell)",
        f"- model: bench_mmoe's MMoE ({bench_mmoe.N_EXPERTS} experts {bench_mmoe.EXPERT_LAYERS}, "
        f"towers {bench_mmoe.TOWER_LAYERS}, embedding {bench_mmoe.EMBEDDING_DIM}, batch "
        f"{bench_mmoe.BATCH_SIZE}, {EPOCHS} epochs, no early stopping); the history shares "
        "`item`'s table",
        f"- repeats: {args.repeats}, the three models interleaved; medians",
        f"- 1-minute load average: {min(loads):.2f} to {max(loads):.2f} "
        f"({os.cpu_count()} CPUs, {platform.machine()}); read the ratios, not the absolute rates",
        "",
        "| model | fit rows x epochs / s | ratio | predict rows / s | ratio |",
        "|---|---:|---:|---:|---:|",
    ]
    for model in MODELS:
        fit, predict = median(model, "fit_rows_per_s"), median(model, "predict_rows_per_s")
        lines.append(f"| {model} | {fit:,.0f} | {fit / base_fit:.2f}x | {predict:,.0f} | "
                     f"{predict / base_predict:.2f}x |")
    lines += [
        "",
        f"Encoded shared-table columns of the {args.rows:,} training rows (`item` and the "
        f"{HISTORY_LENGTH} history slots): {memory['codes_dtype']} codes of shape "
        f"{memory['codes_shape']}, {memory['codes_bytes'] / 2**20:.1f} MiB, against "
        f"{memory['list_column_bytes'] / 2**20:.1f} MiB for the pandas column of lists alone; "
        f"encoding all the columns (the fitted encoder's `transform`) took "
        f"{memory['encode_s']:.2f} s.",
        "",
    ]
    text = "\n".join(lines)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
