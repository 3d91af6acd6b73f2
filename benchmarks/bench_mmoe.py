"""Benchmark one MMoE, several implementations, on the same data.

The driver (the default mode) generates one synthetic workload with a fixed
seed, saves it to a temporary ``.npz`` and then runs every implementation in a
subprocess of its own, ``--repeats`` times (interleaved, so that slow drifts of
the machine spread over all of them), each run as::

    python benchmarks/bench_mmoe.py --impl NAME --data PATH.npz --epochs E ...

The child prints one JSON line (prefixed with ``BENCH_RESULT``) that the driver
parses. Medians over the repeats go into a Markdown table, printed and written
with the raw JSON to ``benchmarks/results/mmoe_latest.{md,json}``.

Implementations (all: the same MMoE, 4 experts (64, 32), one softmax gate per
task, towers (32,), Adam lr 1e-3, batch 1024, shuffled every epoch, fixed
number of epochs, no early stopping, no dropout):

- ``floor``: a minimal hand-written PyTorch loop, as fast as we can make it;
  the lower bound on the cost of this model with eager PyTorch on this machine.
- ``skmtl``: ``skmtl.MultiTaskClassifier(architecture="mmoe", ...)``.
- ``torch_rechub``: torch-rechub's ``MMOE`` and ``MTLTrainer`` (peer venv).
- ``deepctr_torch``: DeepCTR-Torch's ``MMOE`` and its ``fit`` (peer venv).

Every implementation starts from the same raw input, one float array
(n, 18): 8 categorical codes (as floats) then 10 continuous values, so the
encoding is part of what each one pays for in its fit time.

Peers run from ``benchmarks/.venv-peers`` (built by ``setup_peers.sh``); when
that venv or a peer is missing, or a peer fails, the driver skips it with a
message and the report says so.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS_DIR = HERE / "results"
PEERS_PYTHON = HERE / ".venv-peers" / "bin" / "python"
RESULT_PREFIX = "BENCH_RESULT "

CARDINALITIES = [9, 17, 52, 47, 10, 38, 8, 24]
N_CONTINUOUS = 10
N_TASKS = 2
EMBEDDING_DIM = 8
N_EXPERTS = 4
EXPERT_LAYERS = (64, 32)
TOWER_LAYERS = (32,)
LEARNING_RATE = 1e-3
BATCH_SIZE = 1024
PREDICT_BATCH_SIZE = 65536
ALL_IMPLS = ("floor", "skmtl", "torch_rechub", "deepctr_torch")
PEER_IMPLS = ("torch_rechub", "deepctr_torch")

# What each implementation does differently from the reference model, as far
# as its public API allows. Shown under the table.
IMPL_NOTES = {
    "floor": (
        "hand-written loop: codes + offsets into one table, continuous standardised, "
        "expert layer 1 and both gates as ONE (144, 4*64+2*4) matmul, expert layer 2 "
        "and towers as baddbmm over stacked weights, gates mixed by broadcast multiply-sum, "
        "embedding gathered with index_select, data permuted once per epoch and batches "
        "are contiguous slices, Adam({adam})."
    ),
    "skmtl": "MultiTaskClassifier(architecture='mmoe', ...).fit(X, y) / predict_proba(X).",
    "torch_rechub": (
        "MMOE + MTLTrainer.fit (its API has no way around: BatchNorm1d after every "
        "expert, gate and tower layer; continuous columns enter raw (input width "
        "8*8+10=74, standardised by us, not projected); per-row Dataset + DataLoader "
        "collate; loss is the MEAN of the task BCEs; fit needs a validation loader, "
        "given 2048 training rows, and evaluates + saves the model every epoch)."
    ),
    "deepctr_torch": (
        "MMOE + BaseModel.fit(verbose=0) (continuous columns enter raw: input width 74, "
        "standardised by us, not projected; gates without hidden layer and without "
        "bias; sigmoid then BCE summed over the batch; TensorDataset + DataLoader; "
        "L2 penalties set to 0; its import-time PyPI version check is disabled)."
    ),
    "_all": "tqdm progress bars are off in every run (TQDM_DISABLE=1).",
}


# --------------------------------------------------------------------- data
def _sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def make_workload(n_train: int, n_test: int, seed: int = 0) -> dict:
    """Synthetic two-task data: raw X (n, 18) float64 and labels (n, 2) int64.

    Each categorical column has skewed category frequencies. The logit of each
    task is a sum of per-category effects (task-specific plus shared), an
    interaction through a small latent vector per category, and smooth
    nonlinear functions (tanh, products) of the continuous columns, some
    shared between the tasks; labels are Bernoulli draws. The intercepts are
    set so that the base rates are about 25% and 45%. The "oracle" AUC (from
    the true probabilities) is stored as well.
    """
    rng = np.random.default_rng(seed)
    n = n_train + n_test
    codes = np.empty((n, len(CARDINALITIES)), dtype=np.int64)
    for j, k in enumerate(CARDINALITIES):
        p = rng.dirichlet(np.full(k, 1.5))
        codes[:, j] = rng.choice(k, size=n, p=p)
    x = rng.standard_normal((n, N_CONTINUOUS))

    # Per-category effects: one shared, one per task; and a latent vector per
    # category (an "embedding") whose sum over columns interacts nonlinearly.
    latent_dim = 4
    shared = np.zeros(n)
    per_task = np.zeros((n, N_TASKS))
    latent = np.zeros((n, latent_dim))
    for j, k in enumerate(CARDINALITIES):
        shared += rng.normal(0.0, 0.30, k)[codes[:, j]]
        per_task += rng.normal(0.0, 0.25, (k, N_TASKS))[codes[:, j]]
        latent += rng.normal(0.0, 0.6, (k, latent_dim))[codes[:, j]]
    latent_signal = np.tanh(latent)

    continuous_shared = (
        np.tanh(1.5 * x[:, 0] * x[:, 1])
        + 0.6 * np.sin(1.5 * x[:, 2])
        + 0.4 * x[:, 3]
        - 0.3 * np.maximum(x[:, 4], 0.0)
    )
    task_specific = np.column_stack([
        0.5 * x[:, 5] * x[:, 6]
        + 0.4 * np.tanh(2.0 * x[:, 7])
        + 0.5 * latent_signal[:, 0] * x[:, 8],
        -0.5 * x[:, 5]
        + 0.5 * np.tanh(x[:, 8] * x[:, 9])
        + 0.6 * latent_signal[:, 1] * latent_signal[:, 2],
    ])
    w_latent = rng.normal(0.0, 0.5, (latent_dim, N_TASKS))
    raw_logits = (
        shared[:, None] * np.array([1.0, 0.7])
        + per_task
        + latent_signal @ w_latent
        + continuous_shared[:, None] * np.array([0.8, 1.0])
        + task_specific
    )
    targets = np.array([0.25, 0.45])
    logits = np.empty_like(raw_logits)
    for t in range(N_TASKS):
        lo, hi = -10.0, 10.0  # bisection on the intercept for the base rate
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            if _sigmoid(raw_logits[:, t] + mid).mean() < targets[t]:
                lo = mid
            else:
                hi = mid
        logits[:, t] = raw_logits[:, t] + 0.5 * (lo + hi)
    proba = _sigmoid(logits)
    y = (rng.random((n, N_TASKS)) < proba).astype(np.int64)
    X = np.column_stack([codes.astype(np.float64), x])
    return {
        "X_train": X[:n_train],
        "y_train": y[:n_train],
        "X_test": X[n_train:],
        "y_test": y[n_train:],
        "proba_test": proba[n_train:],
        "cardinalities": np.asarray(CARDINALITIES),
        "seed": np.asarray(seed),
    }


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """Binary ROC AUC (Mann-Whitney, ties averaged), without scikit-learn."""
    y_true = np.asarray(y_true).astype(bool)
    score = np.asarray(score, dtype=np.float64)
    n_pos = int(y_true.sum())
    n_neg = y_true.size - n_pos
    if n_pos == 0 or n_neg == 0 or not np.all(np.isfinite(score)):
        return float("nan")
    order = np.argsort(score, kind="mergesort")
    sorted_scores = score[order]
    ranks = np.empty(score.size, dtype=np.float64)
    # Average ranks over ties.
    boundaries = np.flatnonzero(np.diff(sorted_scores)) + 1
    starts = np.concatenate([[0], boundaries])
    stops = np.concatenate([boundaries, [score.size]])
    avg = (starts + stops + 1) / 2.0  # 1-based average rank of each tie group
    ranks[order] = np.repeat(avg, stops - starts)
    return float((ranks[y_true].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


# ---------------------------------------------------------- implementations
class FloorMMoE:
    """The reference MMoE, written as directly and as fast as we can.

    Parameters live in plain tensors. The first expert layer and all gates
    read the same 144-wide input, so they are one matmul with a (144, E*H1 +
    T*E) weight; expert layer 2 and the towers are ``baddbmm`` over stacked
    weights. The training data are permuted once per epoch (three large
    gathers) and each batch is a contiguous slice (a view, no copy); nothing is
    read back to the host inside the batch loop.
    """

    def __init__(self, epochs: int, seed: int = 0, adam: str = "fused"):
        self.epochs = epochs
        self.seed = seed
        self.adam = adam

    # encoding ------------------------------------------------------------
    def _encode(self, X):
        import torch

        n_cat = len(CARDINALITIES)
        codes = torch.from_numpy(X[:, :n_cat].astype(np.int64)) + self.offsets_
        cont = (X[:, n_cat:] - self.mean_) / self.scale_
        return codes, torch.from_numpy(cont.astype(np.float32))

    def _init_params(self, generator):
        import torch

        D, E, T = EMBEDDING_DIM, N_EXPERTS, N_TASKS
        H1, H2 = EXPERT_LAYERS
        (TW,) = TOWER_LAYERS
        width = (len(CARDINALITIES) + N_CONTINUOUS) * D

        def uniform(*shape, fan_in):
            bound = 1.0 / math.sqrt(fan_in)
            t = torch.empty(*shape).uniform_(-bound, bound, generator=generator)
            return t.requires_grad_()

        p = {}
        p["emb"] = uniform(sum(CARDINALITIES), D, fan_in=D)
        p["cont_w"] = uniform(N_CONTINUOUS, D, fan_in=D)
        p["cont_b"] = uniform(N_CONTINUOUS, D, fan_in=D)
        p["w1"] = uniform(width, E * H1 + T * E, fan_in=width)  # experts layer 1 | gates
        p["b1"] = uniform(E * H1 + T * E, fan_in=width)
        p["w2"] = uniform(E, H1, H2, fan_in=H1)
        p["b2"] = uniform(E, 1, H2, fan_in=H1)
        p["wt"] = uniform(T, H2, TW, fan_in=H2)
        p["bt"] = uniform(T, 1, TW, fan_in=H2)
        p["wo"] = uniform(T, TW, 1, fan_in=TW)
        p["bo"] = uniform(T, 1, 1, fan_in=TW)
        self.params_ = p

    def _forward(self, codes, cont):
        """(B, 8) int64 offset codes, (B, 10) float32 -> (T, B) logits."""
        import torch

        p = self.params_
        E, T = N_EXPERTS, N_TASKS
        H1 = EXPERT_LAYERS[0]
        B = codes.shape[0]
        # index_select: its backward (index_add_) is several times cheaper on CPU
        # than F.embedding's (embedding_dense_backward).
        h = torch.cat(
            [
                p["emb"].index_select(0, codes.view(-1)).view(B, -1),
                torch.addcmul(p["cont_b"], cont.unsqueeze(-1), p["cont_w"]).view(B, -1),
            ],
            dim=1,
        )
        z = torch.addmm(p["b1"], h, p["w1"])  # (B, E*H1 + T*E)
        # split, not slicing: its backward is one cat instead of zero-filled buffers.
        z_experts, z_gates = z.split([E * H1, T * E], dim=1)
        experts = torch.relu(z_experts).view(B, E, H1).transpose(0, 1)  # (E, B, H1)
        experts = torch.relu(torch.baddbmm(p["b2"], experts, p["w2"]))  # (E, B, H2)
        gates = torch.softmax(z_gates.reshape(B, T, E), dim=-1)  # (B, T, E)
        # Mix with a broadcast multiply + sum over experts: measured a little faster
        # here than a bmm over B tiny (T, E) @ (E, H2) products.
        mixed = (gates.permute(1, 0, 2).unsqueeze(-1) * experts.transpose(0, 1).unsqueeze(0)).sum(2)
        # mixed: (T, B, H2)
        towers = torch.relu(torch.baddbmm(p["bt"], mixed, p["wt"]))  # (T, B, TW)
        return torch.baddbmm(p["bo"], towers, p["wo"]).squeeze(-1)  # (T, B)

    def fit(self, X, y):
        import torch
        from torch.nn import functional as F

        offsets = np.concatenate([[0], np.cumsum(CARDINALITIES)[:-1]])
        self.offsets_ = torch.from_numpy(offsets.astype(np.int64))
        cont = X[:, len(CARDINALITIES) :]
        self.mean_ = cont.mean(axis=0)
        self.scale_ = cont.std(axis=0)
        codes, cont = self._encode(X)
        labels = torch.from_numpy(np.ascontiguousarray(y.T, dtype=np.float32))  # (T, n)

        generator = torch.Generator().manual_seed(self.seed)
        self._init_params(generator)
        params = list(self.params_.values())
        kwargs = {"fused": True} if self.adam == "fused" else {"foreach": True}
        optimizer = torch.optim.Adam(params, lr=LEARNING_RATE, **kwargs)
        n = codes.shape[0]
        for _ in range(self.epochs):
            order = torch.randperm(n, generator=generator)
            e_codes, e_cont, e_labels = codes[order], cont[order], labels[:, order]
            for start in range(0, n, BATCH_SIZE):
                stop = start + BATCH_SIZE
                logits = self._forward(e_codes[start:stop], e_cont[start:stop])
                # Sum over tasks of each task's mean BCE = T * mean over all.
                loss = F.binary_cross_entropy_with_logits(
                    logits, e_labels[:, start:stop]
                ) * N_TASKS
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        for t in params:
            t.requires_grad_(False)
        return self

    def predict_proba(self, X) -> np.ndarray:
        """(n, T) probabilities of the positive class."""
        import torch

        codes, cont = self._encode(X)
        with torch.inference_mode():
            out = [
                torch.sigmoid(self._forward(codes[s : s + PREDICT_BATCH_SIZE],
                                            cont[s : s + PREDICT_BATCH_SIZE]))
                for s in range(0, codes.shape[0], PREDICT_BATCH_SIZE)
            ]
        return torch.cat(out, dim=1).T.numpy()


def _skmtl_estimator(epochs: int):
    from skmtl import MultiTaskClassifier

    wanted = {
        "architecture": "mmoe",
        "categorical_features": list(range(len(CARDINALITIES))),
        "embedding_dim": EMBEDDING_DIM,
        "n_experts": N_EXPERTS,
        "expert_layer_sizes": EXPERT_LAYERS,
        "tower_layer_sizes": TOWER_LAYERS,
        "learning_rate_init": LEARNING_RATE,
        "batch_size": BATCH_SIZE,
        "max_iter": epochs,
        "early_stopping": False,
        "n_iter_no_change": epochs + 1,
        "tol": 0.0,
        "min_frequency": 1,
        "category_dropout": 0.0,
        "dropout": 0.0,
        "shuffle": True,
        "random_state": 0,
        "device": "cpu",
        "verbose": 0,
    }
    accepted = MultiTaskClassifier().get_params()
    dropped = sorted(k for k in wanted if k not in accepted)
    return MultiTaskClassifier(**{k: v for k, v in wanted.items() if k in accepted}), dropped


def _standardise(X_cont, mean, scale):
    return ((X_cont - mean) / scale).astype(np.float32)


def _peer_inputs(X, mean, scale) -> dict:
    """The peers' input dict: int codes ``c<j>`` and standardised continuous ``n<j>`` columns."""
    n_cat = len(CARDINALITIES)
    cont = _standardise(X[:, n_cat:], mean, scale)
    x = {f"c{j}": X[:, j].astype(np.int64) for j in range(n_cat)}
    x.update({f"n{j}": np.ascontiguousarray(cont[:, j]) for j in range(N_CONTINUOUS)})
    return x


class RechubMMoE:
    """torch-rechub's MMOE trained by its MTLTrainer."""

    def __init__(self, epochs: int, workdir: str):
        self.epochs = epochs
        self.workdir = workdir

    def _inputs(self, X):
        return _peer_inputs(X, self.mean_, self.scale_)

    def fit(self, X, y):
        import torch
        from torch.utils.data import DataLoader
        from torch_rechub.basic.features import DenseFeature, SparseFeature
        from torch_rechub.models.multi_task import MMOE
        from torch_rechub.trainers import MTLTrainer
        from torch_rechub.utils.data import TorchDataset

        torch.manual_seed(0)
        n_cat = len(CARDINALITIES)
        self.mean_ = X[:, n_cat:].mean(axis=0)
        self.scale_ = X[:, n_cat:].std(axis=0)
        x = self._inputs(X)
        y = y.astype(np.float32)
        features = [SparseFeature(f"c{j}", vocab_size=k, embed_dim=EMBEDDING_DIM)
                    for j, k in enumerate(CARDINALITIES)]
        features += [DenseFeature(f"n{j}") for j in range(N_CONTINUOUS)]
        task_types = ["classification"] * N_TASKS
        self.model_ = MMOE(
            features,
            task_types,
            n_expert=N_EXPERTS,
            expert_params={"dims": list(EXPERT_LAYERS)},
            tower_params_list=[{"dims": list(TOWER_LAYERS)} for _ in range(N_TASKS)],
        )
        self.trainer_ = MTLTrainer(
            self.model_,
            task_types=task_types,
            optimizer_params={"lr": LEARNING_RATE, "weight_decay": 0.0},
            n_epoch=self.epochs,
            earlystop_patience=self.epochs + 1,
            device="cpu",
            model_path=self.workdir,
        )
        train = DataLoader(TorchDataset(x, y), batch_size=BATCH_SIZE, shuffle=True)
        n_val = min(2048, len(y))
        val_x = {k: v[:n_val] for k, v in x.items()}
        val = DataLoader(TorchDataset(val_x, y[:n_val]), batch_size=BATCH_SIZE, shuffle=False)
        self.trainer_.fit(train, val)
        return self

    def predict_proba(self, X) -> np.ndarray:
        from torch.utils.data import DataLoader
        from torch_rechub.utils.data import PredictDataset

        loader = DataLoader(PredictDataset(self._inputs(X)), batch_size=PREDICT_BATCH_SIZE,
                            shuffle=False)
        return np.asarray(self.trainer_.predict(self.model_, loader), dtype=np.float64)


class DeepCTRMMoE:
    """DeepCTR-Torch's MMOE trained by its Keras-like fit."""

    def __init__(self, epochs: int):
        self.epochs = epochs

    def _inputs(self, X):
        return _peer_inputs(X, self.mean_, self.scale_)

    def fit(self, X, y):
        # deepctr_torch starts a PyPI version check (an HTTP request) on import;
        # this benchmark makes no network calls.
        import requests
        import torch

        def _no_network(*args, **kwargs):
            raise RuntimeError("network disabled in the benchmark")

        requests.get = _no_network
        from deepctr_torch.inputs import DenseFeat, SparseFeat
        from deepctr_torch.models import MMOE

        torch.manual_seed(0)
        n_cat = len(CARDINALITIES)
        self.mean_ = X[:, n_cat:].mean(axis=0)
        self.scale_ = X[:, n_cat:].std(axis=0)
        x = self._inputs(X)
        columns = [SparseFeat(f"c{j}", vocabulary_size=k, embedding_dim=EMBEDDING_DIM)
                   for j, k in enumerate(CARDINALITIES)]
        columns += [DenseFeat(f"n{j}", 1) for j in range(N_CONTINUOUS)]
        self.model_ = MMOE(
            columns,
            num_experts=N_EXPERTS,
            expert_dnn_hidden_units=EXPERT_LAYERS,
            gate_dnn_hidden_units=(),
            tower_dnn_hidden_units=TOWER_LAYERS,
            l2_reg_linear=0.0,
            l2_reg_embedding=0.0,
            l2_reg_dnn=0.0,
            task_types=["binary"] * N_TASKS,
            task_names=[f"task_{t}" for t in range(N_TASKS)],
            device="cpu",
            seed=0,
        )
        self.model_.compile(
            torch.optim.Adam(self.model_.parameters(), lr=LEARNING_RATE),
            loss=["binary_crossentropy"] * N_TASKS,
        )
        self.model_.fit(x, y.astype(np.float32), batch_size=BATCH_SIZE, epochs=self.epochs,
                        verbose=0, shuffle=True)
        return self

    def predict_proba(self, X) -> np.ndarray:
        return self.model_.predict(self._inputs(X), batch_size=PREDICT_BATCH_SIZE)


# ----------------------------------------------------------------- child
def _maxrss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # KiB on Linux


def _cpu_seconds() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def run_child(args) -> dict:
    """Fit one implementation on the workload, time it, predict, score."""
    import warnings

    warnings.filterwarnings("ignore")
    import torch

    torch.set_num_threads(args.threads)
    # The first torch.optim optimizer of a process imports torch._dynamo (about
    # a second, the same for every implementation): done here, outside the
    # timed fit, and reported on its own.
    t0 = time.perf_counter()
    import torch._dynamo

    dynamo_import_s = time.perf_counter() - t0
    data = np.load(args.data)
    X_train, y_train = data["X_train"], data["y_train"]
    X_test, y_test = data["X_test"], data["y_test"]
    result = {
        "impl": args.impl,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "n_train": int(X_train.shape[0]),
        "n_test": int(X_test.shape[0]),
        "epochs": args.epochs,
        "python": sys.executable,
        "torch_dynamo_import_s": dynamo_import_s,
    }
    extra = {}
    with tempfile.TemporaryDirectory() as workdir:
        if args.impl == "floor":
            model = FloorMMoE(args.epochs, adam=args.floor_adam)
            extra["adam"] = args.floor_adam
        elif args.impl == "skmtl":
            model, dropped = _skmtl_estimator(args.epochs)
            extra["dropped_params"] = dropped
        elif args.impl == "torch_rechub":
            model = RechubMMoE(args.epochs, workdir)
        elif args.impl == "deepctr_torch":
            model = DeepCTRMMoE(args.epochs)
        else:
            raise ValueError(f"unknown implementation {args.impl!r}")

        rss_before = _maxrss_mb()
        cpu0 = _cpu_seconds()
        t0 = time.perf_counter()
        model.fit(X_train, y_train)
        fit_s = time.perf_counter() - t0
        fit_cpu_s = _cpu_seconds() - cpu0

        def predict():
            out = model.predict_proba(X_test)
            if isinstance(out, list):  # skmtl: one (n, 2) array per task
                out = np.column_stack([p[:, 1] for p in out])
            return np.asarray(out, dtype=np.float64)

        times = []
        for _ in range(args.predict_repeats):
            t0 = time.perf_counter()
            proba = predict()
            times.append(time.perf_counter() - t0)
    predict_s = statistics.median(times)
    result.update(
        fit_s=fit_s,
        fit_cpu_s=fit_cpu_s,
        train_samples_per_s=X_train.shape[0] * args.epochs / fit_s,
        predict_s=predict_s,
        predict_s_all=times,
        predict_samples_per_s=X_test.shape[0] / predict_s,
        auc=[roc_auc(y_test[:, t], proba[:, t]) for t in range(y_test.shape[1])],
        maxrss_mb_before_fit=rss_before,
        maxrss_mb=_maxrss_mb(),
        **extra,
    )
    return result


# ---------------------------------------------------------------- driver
def _child_command(python: str, impl: str, data_path: str, args) -> list[str]:
    return [
        python, str(Path(__file__).resolve()),
        "--impl", impl,
        "--data", data_path,
        "--epochs", str(args.epochs),
        "--threads", str(args.threads),
        "--predict-repeats", str(args.predict_repeats),
        "--floor-adam", args.floor_adam,
    ]


def _python_for(impl: str, args) -> tuple[str | None, str | None]:
    """(interpreter, reason it is unavailable)."""
    if impl not in PEER_IMPLS:
        return sys.executable, None
    python = args.peers_python
    if not Path(python).exists():
        return None, (f"peer venv not found ({python}); build it with "
                      "`bash benchmarks/setup_peers.sh`")
    module = {"torch_rechub": "torch_rechub", "deepctr_torch": "deepctr_torch"}[impl]
    check = subprocess.run(
        [python, "-c", f"import importlib.util, sys; "
                       f"sys.exit(importlib.util.find_spec('{module}') is None)"],
        capture_output=True, text=True,
    )
    if check.returncode != 0:
        return None, f"{module} is not installed in {python}"
    return python, None


def _cpu_jiffies() -> tuple[int, int] | None:
    """(busy, total) CPU jiffies of the whole machine, from /proc/stat (Linux)."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


def _busy_fraction(interval: float = 1.0) -> float | None:
    """Share of all CPUs busy over ``interval`` seconds (None where unknown)."""
    first = _cpu_jiffies()
    time.sleep(interval)
    second = _cpu_jiffies()
    if first is None or second is None or second[1] == first[1]:
        return None
    return (second[0] - first[0]) / (second[1] - first[1])


def _wait_until_idle(max_wait: float, threshold: float = 0.15) -> float | None:
    """Wait (at most ``max_wait`` s) until under ``threshold`` of the CPUs are busy."""
    deadline = time.monotonic() + max_wait
    busy = _busy_fraction()
    while busy is not None and busy > threshold and time.monotonic() < deadline:
        busy = _busy_fraction()
    return busy


def _children_cpu_seconds() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _run_one(cmd: list[str], threads: int, timeout: float) -> tuple[dict | None, str]:
    env = dict(os.environ)
    env.update({
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "PYTHONWARNINGS": "ignore",
        "TQDM_DISABLE": "1",
    })
    jiffies0, child_cpu0, wall0 = _cpu_jiffies(), _children_cpu_seconds(), time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env,
                              cwd=str(REPO))
    except subprocess.TimeoutExpired:
        return None, f"timed out after {timeout:.0f} s"
    jiffies1, child_cpu1, wall1 = _cpu_jiffies(), _children_cpu_seconds(), time.perf_counter()
    for line in proc.stdout.splitlines()[::-1]:
        if line.startswith(RESULT_PREFIX):
            result = json.loads(line[len(RESULT_PREFIX):])
            # CPU used by OTHER processes while this run went on, as a share of
            # all CPUs: a run that shared the machine is slower than it should be.
            if jiffies0 is not None and jiffies1 is not None and jiffies1[1] > jiffies0[1]:
                hz = os.sysconf("SC_CLK_TCK")
                cpus = os.cpu_count() or 1
                busy_s = (jiffies1[0] - jiffies0[0]) / hz
                others = busy_s - (child_cpu1 - child_cpu0)
                result["others_cpu_share"] = max(0.0, others / ((wall1 - wall0) * cpus))
            return result, ""
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-6:]
    return None, f"exit code {proc.returncode}: " + " | ".join(tail)


def _median(values):
    values = [v for v in values if v is not None and np.isfinite(v)]
    return statistics.median(values) if values else float("nan")


def _fmt(value, digits=0, suffix=""):
    if value is None or not np.isfinite(value):
        return "n/a"
    return f"{value:,.{digits}f}{suffix}"


def summarise(runs: dict, skipped: dict, impls, meta: dict) -> tuple[str, dict]:
    rows = {}
    for impl in impls:
        ok = runs.get(impl, [])
        if not ok:
            continue
        # Runs that shared the machine (other processes over 10% of the CPUs)
        # are left out of the medians when there are undisturbed ones.
        clean = [r for r in ok if (r.get("others_cpu_share") or 0.0) <= 0.10]
        n_shared = len(ok) - len(clean)
        if clean:
            ok = clean
        rows[impl] = {
            "repeats": len(ok),
            "shared_runs_left_out": n_shared if clean else 0,
            "train_samples_per_s": _median([r["train_samples_per_s"] for r in ok]),
            "predict_samples_per_s": _median([r["predict_samples_per_s"] for r in ok]),
            "fit_s": _median([r["fit_s"] for r in ok]),
            "fit_cpu_s": _median([r["fit_cpu_s"] for r in ok]),
            "maxrss_mb": _median([r["maxrss_mb"] for r in ok]),
            "auc": [_median([r["auc"][t] for r in ok]) for t in range(N_TASKS)],
            "others_cpu_share_max": max(
                (r["others_cpu_share"] for r in ok if r.get("others_cpu_share") is not None),
                default=float("nan"),
            ),
        }
    floor = rows.get("floor")
    floor_by_round = {r.get("round"): r for r in runs.get("floor", [])}
    for impl, row in rows.items():
        for key, ratio in (("train_samples_per_s", "train_vs_floor"),
                           ("predict_samples_per_s", "predict_vs_floor")):
            row[ratio] = row[key] / floor[key] if floor else float("nan")
            # Paired: each run against the floor run of the same round (they ran
            # back to back), so slow drifts of the machine's speed cancel out.
            paired = [
                r[key] / floor_by_round[r["round"]][key]
                for r in runs[impl]
                if r.get("round") in floor_by_round
            ]
            row[ratio + "_paired"] = paired

    lines = [
        f"## MMoE benchmark ({meta['date']})",
        "",
        f"- command: `{meta['command']}`",
        f"- torch {meta['torch']}, {meta['cpu_count']} CPU(s), {meta['threads']} torch thread(s), "
        f"Python {meta['python_version']}, {meta['platform']}",
        f"- workload: {meta['n_train']:,} training rows, {meta['n_test']:,} test rows, "
        f"8 categorical (cardinalities {CARDINALITIES}) + 10 continuous columns, 2 binary tasks "
        f"(base rates {meta['base_rates'][0]:.2f}, {meta['base_rates'][1]:.2f}; "
        f"oracle test AUC {meta['oracle_auc'][0]:.3f}, {meta['oracle_auc'][1]:.3f}), "
        f"seed {meta['seed']}",
        f"- model: MMoE, {N_EXPERTS} experts {EXPERT_LAYERS}, towers {TOWER_LAYERS}, "
        f"embedding dim {EMBEDDING_DIM}, Adam lr {LEARNING_RATE:g}, batch {BATCH_SIZE}, "
        f"{meta['epochs']} epoch(s); medians over the repeats, each run in its own process",
        f"- load average (1 min) before / after: {meta['load_before']:.2f} / "
        f"{meta['load_after']:.2f}; "
        "CPU share used by other processes during the runs in the table, worst run: "
        + ", ".join(f"{impl} {_fmt(100 * row['others_cpu_share_max'], 0, '%')}"
                    for impl, row in rows.items())
        + ("  **(the machine was shared: those timings are pessimistic)**"
           if any(row["others_cpu_share_max"] > 0.10 for row in rows.values()) else ""),
        "",
        "| implementation | runs | train samples/s | train vs floor | predict samples/s "
        "| predict vs floor | fit s | peak RSS MB | AUC task 0 | AUC task 1 |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for impl, row in rows.items():
        lines.append(
            f"| {impl} | {row['repeats']} | {_fmt(row['train_samples_per_s'])} "
            f"| {_fmt(row['train_vs_floor'], 2, 'x')} | {_fmt(row['predict_samples_per_s'])} "
            f"| {_fmt(row['predict_vs_floor'], 2, 'x')} | {_fmt(row['fit_s'], 2)} "
            f"| {_fmt(row['maxrss_mb'])} | {_fmt(row['auc'][0], 3)} | {_fmt(row['auc'][1], 3)} |"
        )
    for impl, reason in skipped.items():
        lines.append(f"| {impl} | 0 | skipped: {reason} | | | | | | | |")
    if floor and len(rows) > 1:
        lines += [
            "",
            "Paired ratios (each run divided by the floor run of the same round; the "
            "implementations run one after the other in each round, in alternating order; "
            "median and range over the rounds):",
            "",
            "| implementation | train vs floor, paired | predict vs floor, paired |",
            "|---|---:|---:|",
        ]
        for impl, row in rows.items():
            if impl == "floor":
                continue
            cells = []
            for ratio in ("train_vs_floor_paired", "predict_vs_floor_paired"):
                values = row[ratio]
                cells.append(
                    f"{_fmt(_median(values), 2, 'x')} ({_fmt(min(values), 2)}-{_fmt(max(values), 2)})"
                    if values else "n/a"
                )
            lines.append(f"| {impl} | {cells[0]} | {cells[1]} |")
    lines += ["", "Notes:"]
    left_out = [f"{impl} {row['shared_runs_left_out']}" for impl, row in rows.items()
                if row["shared_runs_left_out"]]
    if left_out:
        lines.append("- runs left out of the medians because other processes used over 10% "
                     "of the CPUs meanwhile (see the JSON): " + ", ".join(left_out))
    lines.append(f"- {IMPL_NOTES['_all']}")
    for impl in impls:
        note = IMPL_NOTES.get(impl, "")
        if impl == "floor":
            note = note.format(adam=f"{meta['floor_adam']}=True")
        lines.append(f"- `{impl}`: {note}")
    lines += [
        "- train samples/s = training rows x epochs / fit wall time; the fit time includes "
        "encoding the raw (n, 18) float array (and, for the peers, building their inputs and "
        "data loaders). predict samples/s = test rows / median wall time of "
        f"{meta['predict_repeats']} predict calls on the raw test array. Peak RSS is the "
        "process's ru_maxrss (data loading included). Not in the fit time: the one-off "
        "`import torch._dynamo` that the first torch.optim optimizer of a process triggers "
        f"(median {meta.get('dynamo_import_s', float('nan')):.2f} s here, the same for every "
        "implementation; done before the timed fit).",
    ]
    return "\n".join(lines) + "\n", rows


def run_driver(args) -> int:
    impls = [s.strip() for s in args.impls.split(",") if s.strip()]
    unknown = [i for i in impls if i not in ALL_IMPLS]
    if unknown:
        print(f"unknown implementation(s) {unknown}; choose from {list(ALL_IMPLS)}",
              file=sys.stderr)
        return 2
    import torch

    command = " ".join(shlex.quote(a) for a in ["python", *sys.argv])
    data = make_workload(args.rows, args.test_rows, args.seed)
    meta = {
        "date": _dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": command,
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "threads": args.threads,
        "python_version": platform.python_version(),
        "platform": platform.platform(),
        "n_train": args.rows,
        "n_test": args.test_rows,
        "epochs": args.epochs,
        "repeats": args.repeats,
        "peer_repeats": args.peer_repeats,
        "seed": args.seed,
        "predict_repeats": args.predict_repeats,
        "floor_adam": args.floor_adam,
        "base_rates": data["y_train"].mean(axis=0).tolist(),
        "oracle_auc": [roc_auc(data["y_test"][:, t], data["proba_test"][:, t])
                       for t in range(N_TASKS)],
        "load_before": os.getloadavg()[0],
    }
    runs: dict[str, list] = {impl: [] for impl in impls}
    skipped: dict[str, str] = {}
    pythons = {}
    for impl in impls:
        python, reason = _python_for(impl, args)
        if python is None:
            skipped[impl] = reason
            print(f"[bench] skipping {impl}: {reason}", flush=True)
        else:
            pythons[impl] = python

    with tempfile.TemporaryDirectory(prefix="bench_mmoe_") as tmp:
        data_path = str(Path(tmp) / "workload.npz")
        np.savez(data_path, **data)
        for r in range(args.repeats):
            # Alternate the order (A B, B A, ...) so that no implementation always runs
            # first after the idle wait or right after another one.
            for impl in (impls if r % 2 == 0 else impls[::-1]):
                if impl not in pythons:
                    continue
                if impl in PEER_IMPLS and r >= args.peer_repeats:
                    continue
                cmd = _child_command(pythons[impl], impl, data_path, args)
                # With --wait-idle, a run that shared the machine with other
                # processes (over 10% of the CPUs) is run again, twice at most.
                for attempt in range(3 if args.wait_idle > 0 else 1):
                    if args.wait_idle > 0:
                        busy = _wait_until_idle(args.wait_idle)
                        if busy is not None and busy > 0.15:
                            print(f"[bench] machine still {busy:.0%} busy after waiting "
                                  f"{args.wait_idle:.0f} s; running anyway", flush=True)
                    print(f"[bench] {impl} run {r + 1}"
                          + (f" (again, try {attempt + 1})" if attempt else "") + " ...",
                          end=" ", flush=True)
                    result, error = _run_one(cmd, args.threads, args.timeout)
                    shared = result is not None and (result.get("others_cpu_share") or 0) > 0.10
                    if shared and attempt < 2 and args.wait_idle > 0:
                        print(f"shared with other processes "
                              f"({result['others_cpu_share']:.0%} of CPU): discarded", flush=True)
                        continue
                    break
                if result is None:
                    print(f"FAILED ({error})", flush=True)
                    if not runs[impl]:
                        skipped[impl] = f"failed: {error[:300]}"
                        del pythons[impl]
                    continue
                result["round"] = r
                runs[impl].append(result)
                others = result.get("others_cpu_share")
                print(f"train {result['train_samples_per_s']:,.0f}/s, predict "
                      f"{result['predict_samples_per_s']:,.0f}/s, AUC "
                      f"{result['auc'][0]:.3f}/{result['auc'][1]:.3f}"
                      + ("" if others is None else f", other processes {others:.0%} of CPU"),
                      flush=True)
    meta["load_after"] = os.getloadavg()[0]
    meta["dynamo_import_s"] = _median(
        [r["torch_dynamo_import_s"] for rs in runs.values() for r in rs])
    ran = [i for i in impls if runs.get(i)]
    skipped = {i: skipped[i] for i in impls if i in skipped and not runs.get(i)}
    table, rows = summarise(runs, skipped, impls, meta)
    print()
    print(table)
    if args.out_dir:
        out = Path(args.out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "mmoe_latest.md").write_text(table)
        payload = {"meta": meta, "summary": rows, "skipped": skipped, "runs": runs,
                   "implementations": ran}
        (out / "mmoe_latest.json").write_text(json.dumps(payload, indent=2, default=float) + "\n")
        print(f"[bench] wrote {out / 'mmoe_latest.md'} and {out / 'mmoe_latest.json'}")
    return 0 if ran else 1


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=200_000, help="training rows (default 200000)")
    parser.add_argument("--test-rows", type=int, default=50_000,
                        help="held-out rows (default 50000)")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs (default 3)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="runs of each implementation, medians reported (default 3)")
    parser.add_argument("--peer-repeats", type=int, default=None,
                        help="runs of each peer library (default: --repeats)")
    parser.add_argument("--impls", default=",".join(ALL_IMPLS),
                        help=f"comma-separated subset of {','.join(ALL_IMPLS)}")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="torch intra-op threads in every run (default: all CPUs)")
    parser.add_argument("--predict-repeats", type=int, default=5,
                        help="predict calls per run, median reported (default 5)")
    parser.add_argument("--seed", type=int, default=0, help="workload seed (default 0)")
    parser.add_argument("--floor-adam", choices=("foreach", "fused"), default="fused",
                        help="Adam implementation of the floor (default fused: measured "
                             "slightly faster than foreach on CPU)")
    parser.add_argument("--peers-python", default=str(PEERS_PYTHON),
                        help="interpreter of the peer venv (default benchmarks/.venv-peers)")
    parser.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                        help="before each run, wait up to SECONDS for the machine to be idle "
                             "(under 15%% of the CPUs busy) and run again, twice at most, "
                             "a run during which other processes used over 10%% of the CPUs; "
                             "default 0: no waiting, no reruns")
    parser.add_argument("--timeout", type=float, default=900.0,
                        help="seconds before one run is abandoned (default 900)")
    parser.add_argument("--out-dir", default=str(RESULTS_DIR),
                        help="where mmoe_latest.{md,json} go ('' to write nothing)")
    parser.add_argument("--impl", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.peer_repeats is None:
        args.peer_repeats = args.repeats
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.impl:
        print(RESULT_PREFIX + json.dumps(run_child(args)), flush=True)
        return 0
    return run_driver(args)


if __name__ == "__main__":
    sys.exit(main())
