"""One process of the data-parallel tests (tests/test_distributed_training.py).

Started by ``torchrun`` (``python -m torch.distributed.run``) with gloo on this
machine; each rank reads the data file the test wrote, takes its shard, runs
the scenarios and writes what it saw to ``OUT/rank<r>.npz``::

    python -m torch.distributed.run --standalone --nproc_per_node=2 \\
        tests/distributed_worker.py DATA.npz OUT
"""

from __future__ import annotations

import faulthandler
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch
import torch.distributed as dist

from skmtl import MultiTaskClassifier, MultiTaskRegressor, metrics

RECIPE = {"weight_decay": 0.01, "learning_rate_schedule": "plateau", "weight_init": "kaiming"}
"""The training-recipe options of step 1d (tests/test_distributed_training.py's RECIPE)."""


def frame(data, prefix: str) -> pd.DataFrame:
    """The test's DataFrame, rebuilt from the arrays in the npz file."""
    return pd.DataFrame({
        "city": data[f"{prefix}city"].astype(object),
        "device": data[f"{prefix}device"].astype(object),
        "x0": data[f"{prefix}x0"],
        "x1": data[f"{prefix}x1"],
    })


def sparse_design(X: pd.DataFrame) -> sp.csr_matrix:
    """One-hot city and device (fixed vocabularies, the same on every rank), then x0 and x1."""
    cities = [f"city_{i}" for i in range(10)] + ["city_rare"]
    one_hot = [(X[name].to_numpy()[:, None] == np.array(values)[None, :])
               for name, values in (("city", cities), ("device", ["phone", "tablet", "desktop"]))]
    return sp.csr_matrix(np.hstack([*one_hot, X[["x0", "x1"]].to_numpy()]).astype(float))


def labels(data, prefix: str) -> pd.DataFrame:
    return pd.DataFrame({"click": data[f"{prefix}click"], "buy": data[f"{prefix}buy"]})


class NormalisedHeads(torch.nn.Module):
    """A user architecture with BatchNorm, whose running statistics change in training."""

    def __init__(self, in_features, n_outputs):
        super().__init__()
        self.norm = torch.nn.BatchNorm1d(in_features)
        self.heads = torch.nn.Linear(in_features, len(n_outputs))

    def forward(self, x):
        return list(self.heads(self.norm(x)).T)


class FailingOnRank1(NormalisedHeads):
    """Raises on rank 1 in its third training step, as an out-of-memory error would."""

    calls = 0

    def forward(self, x):
        FailingOnRank1.calls += 1
        if dist.get_rank() == 1 and FailingOnRank1.calls == 3:
            raise RuntimeError("simulated failure on rank 1")
        return super().forward(x)


def state(clf) -> dict:
    return {k: v.detach().cpu().numpy() for k, v in clf.module_.state_dict().items()}


HANG_SECONDS = 420
"""A rank still running after this long prints every thread's stack and exits (the
test's own limit is 600 s): a hang in CI then says where each rank waited."""


def main(data_path: str, out_dir: str) -> int:
    warnings.filterwarnings("ignore")
    faulthandler.dump_traceback_later(HANG_SECONDS, exit=True)
    torch.set_num_threads(1)
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    began = time.perf_counter()

    def mark(scenario: str) -> None:
        """One stderr line per scenario started: with the stacks, where a hang began."""
        print(f"[rank{rank}] {time.perf_counter() - began:7.1f} s: {scenario}",
              file=sys.stderr, flush=True)
    data = np.load(data_path, allow_pickle=True)
    params = json.loads(str(data["params"]))
    out: dict[str, np.ndarray] = {}
    report: dict = {"rank": rank, "world_size": dist.get_world_size()}

    mark("1 Equivalence: this rank's rows are its halves")
    # 1. Equivalence: this rank's rows are its halves of the global batches.
    mine = data["shard"] == rank
    X, y = frame(data, "")[mine], labels(data, "")[mine]
    weights = data["weight"][mine]
    clf = MultiTaskClassifier(**params, distributed=True).fit(X, y, sample_weight=weights)
    X_all = frame(data, "")
    for t, p in enumerate(clf.predict_proba(X_all)):
        out[f"equivalence_proba_{t}"] = p
    out["equivalence_loss_curve"] = np.asarray(clf.loss_curve_)
    out["equivalence_task_loss_curves"] = clf.task_loss_curves_
    out["equivalence_mean"] = clf.encoder_.continuous.mean_
    out["equivalence_scale"] = clf.encoder_.continuous.scale_
    report["equivalence_categories"] = [
        None if c is None else [str(v) for v in c] for c in clf.categories_
    ]

    mark("1b The same rows as regression targets: the")
    # 1b. The same rows as regression targets: the global target scaling, weights and
    #     unknown targets must give the one-process model.
    y_reg = pd.DataFrame({"spend": data["spend"], "count": data["count"]})[mine]
    reg = MultiTaskRegressor(**params, loss={"count": "poisson"}, distributed=True).fit(
        X, y_reg, sample_weight=weights)
    out["regressor_offset"] = reg.target_offset_
    out["regressor_scale"] = reg.target_scale_
    out["regressor_loss_curve"] = np.asarray(reg.loss_curve_)
    out["regressor_predict"] = reg.predict(X_all)
    mark("1b' A binary task (loss='log_loss', unscaled 0/1")
    # 1b'. A binary task (loss="log_loss", unscaled 0/1 targets) next to a real-valued one.
    y_mixed = pd.DataFrame({"click": data["click"], "spend": data["spend"]})[mine]
    mixed = MultiTaskRegressor(**params, loss={"click": "log_loss"}, distributed=True).fit(
        X, y_mixed, sample_weight=weights)
    out["mixed_loss_curve"] = np.asarray(mixed.loss_curve_)
    out["mixed_predict"] = mixed.predict(X_all)

    mark("1b' task_balancing='uncertainty': the")
    # 1b'. task_balancing="uncertainty": the log-variances learn from the global batch's losses.
    balanced = MultiTaskRegressor(**params, loss={"count": "poisson"}, distributed=True,
                                  task_balancing="uncertainty").fit(X, y_reg, sample_weight=weights)
    out["uncertainty_loss_curve"] = np.asarray(balanced.loss_curve_)
    out["uncertainty_weights"] = balanced.task_balance_weights_
    out["uncertainty_predict"] = balanced.predict(X_all)

    mark("1c numeric_embedding='piecewise_linear': the")
    # 1c. numeric_embedding="piecewise_linear": the bins are those of all ranks' rows.
    ple = MultiTaskClassifier(**params, numeric_embedding="piecewise_linear", distributed=True)
    ple.fit(X, y, sample_weight=weights)
    for k, edges in enumerate(ple.encoder_.continuous.bins_):
        out[f"ple_bins_{k}"] = edges
    out["ple_loss_curve"] = np.asarray(ple.loss_curve_)
    out["ple_proba_0"] = ple.predict_proba(X_all)[0]

    mark("1c Numeric columns only: the empty categorical")
    # 1c. Numeric columns only: the empty categorical table gets no gradient, which
    #     DistributedDataParallel must be told about (it raised on the second step).
    numeric = MultiTaskClassifier(**params, distributed=True).fit(
        X[["x0", "x1"]], y, sample_weight=weights)
    out["numeric_only_loss_curve"] = np.asarray(numeric.loss_curve_)

    mark("1d continuous_projection='joint': one matmul of")
    # 1d. continuous_projection="joint": one matmul of all continuous columns, every rank.
    joint = MultiTaskClassifier(**params, continuous_projection="joint", distributed=True)
    joint.fit(X, y, sample_weight=weights)
    out["joint_loss_curve"] = np.asarray(joint.loss_curve_)
    out["joint_proba_0"] = joint.predict_proba(X_all)[0]

    mark("1f A scipy sparse X (one-hot columns and the")
    # 1f. A scipy sparse X (one-hot columns and the numbers), projected jointly: the
    #     one-process model of the same sparse rows.
    sparse = MultiTaskClassifier(**params, continuous_projection="joint", distributed=True)
    sparse.fit(sparse_design(X), y, sample_weight=weights)
    out["sparse_loss_curve"] = np.asarray(sparse.loss_curve_)
    out["sparse_proba_0"] = sparse.predict_proba(sparse_design(X_all))[0]

    mark("1e The training-recipe options (decoupled decay")
    # 1e. The training-recipe options (decoupled decay, plateau schedule, Kaiming init).
    recipe = MultiTaskClassifier(**params, **RECIPE, distributed=True)
    recipe.fit(X, y, sample_weight=weights)
    out["recipe_loss_curve"] = np.asarray(recipe.loss_curve_)
    out["recipe_proba_0"] = recipe.predict_proba(X_all)[0]

    mark("1e' alpha (coupled L2), divided by the global")
    # 1e'. alpha (coupled L2), divided by the global batch's rows on every rank.
    penalised = MultiTaskClassifier(**params, alpha=5.0, distributed=True)
    penalised.fit(X, y, sample_weight=weights)
    out["alpha_loss_curve"] = np.asarray(penalised.loss_curve_)
    out["alpha_proba_0"] = penalised.predict_proba(X_all)[0]
    out["alpha_rates"] = np.sort([g["weight_decay"] for g in penalised.optimizer_.param_groups])

    mark("1f Embedding dropout: every rank draws its own")
    # 1f. Embedding dropout: every rank draws its own masks, and all end with one model.
    dropped = MultiTaskClassifier(**params, embedding_dropout=0.2, distributed=True)
    dropped.fit(X, y, sample_weight=weights)
    out["edrop_loss_curve"] = np.asarray(dropped.loss_curve_)
    for name, value in state(dropped).items():
        out[f"edrop_state_{name}"] = value

    mark("2 Shuffled, early-stopped, class-balanced")
    # 2. Shuffled, early-stopped, class-balanced training on uneven shards: the
    #    ranks must end with the same model (and rank 1 runs out of rows first).
    big = frame(data, "big_")
    big_y = labels(data, "big_")
    rows = np.flatnonzero(data["big_shard"] == rank)
    early = {**params, "shuffle": True, "early_stopping": True, "max_iter": 40,
             "n_iter_no_change": 3}
    clf = MultiTaskClassifier(
        **{**early, "class_weight": "balanced", "category_dropout": 0.05}, distributed=True
    ).fit(big.iloc[rows], big_y.iloc[rows])
    for name, value in state(clf).items():
        out[f"early_state_{name}"] = value
    mark("2b The same, piecewise-linear: the bins of every")
    # 2b. The same, piecewise-linear: the bins of every rank's training rows, on every rank.
    early_ple = MultiTaskClassifier(
        **{**params, "early_stopping": True, "max_iter": 3}, numeric_embedding="piecewise_linear",
        distributed=True,
    ).fit(big.iloc[rows], big_y.iloc[rows])
    for name, value in state(early_ple).items():
        out[f"early_state_ple_{name}"] = value
    out["early_validation_scores"] = np.asarray(clf.validation_scores_)
    report["early_n_iter"] = clf.n_iter_
    test = frame(data, "test_")
    for t, p in enumerate(clf.predict_proba(test)):
        out[f"early_test_proba_{t}"] = p

    mark("2b Early stopping on a chosen score: every rank")
    # 2b. Early stopping on a chosen score: every rank scores the validation rows of
    #     both, and they take the same decisions.
    scored = []

    def mean_auc(estimator, X_val, y_val):
        scored.append(X_val)
        return metrics.get_scorer("mean_roc_auc")(estimator, X_val, y_val)

    clf = MultiTaskClassifier(**early, scoring=mean_auc, distributed=True).fit(
        big.iloc[rows], big_y.iloc[rows]
    )
    for name, value in state(clf).items():
        out[f"scored_state_{name}"] = value
    out["scored_validation_scores"] = np.asarray(clf.validation_scores_)
    report["scored_n_iter"] = clf.n_iter_
    report["scored_rows"] = [int(i) for i in scored[0].index]
    report["scored_calls"] = len(scored)
    # The kept model is the best epoch's: its score on the scored rows is the best score.
    report["scored_best"] = clf.best_validation_score_
    report["scored_rescored"] = metrics.get_scorer("mean_roc_auc")(
        clf, scored[0], big_y.loc[scored[0].index]
    )

    mark("2c A scorer failing on rank 1 only: every rank")
    # 2c. A scorer failing on rank 1 only: every rank raises, none hangs.
    def failing(estimator, X_val, y_val):
        if rank == 1:
            raise RuntimeError("scorer failed on rank 1")
        return 0.0

    try:
        MultiTaskClassifier(
            **{**params, "early_stopping": True, "scoring": failing}, distributed=True
        ).fit(big.iloc[rows], big_y.iloc[rows])
        report["scorer_error"] = None
    except Exception as exc:  # noqa: BLE001 (rank 1 sees its own error)
        report["scorer_error"] = f"{type(exc).__name__}: {exc}"

    mark("3 partial_fit over two chunks per rank, classes")
    # 3. partial_fit over two chunks per rank, classes and categories declared.
    chunks = np.array_split(rows, 2)
    clf = MultiTaskClassifier(**params, distributed=True)
    for chunk in chunks:
        clf.partial_fit(
            big.iloc[chunk], big_y.iloc[chunk],
            **({} if hasattr(clf, "module_") else {
                "classes": [[0, 1], [0, 1]],
                "categories": {"device": ["phone", "tablet", "desktop"]},
            }),
        )
    for name, value in state(clf).items():
        out[f"partial_state_{name}"] = value
    report["partial_n_iter"] = clf.n_iter_

    mark("4 Bad input on one rank only: every rank must")
    # 4. Bad input on one rank only: every rank must raise (none may hang).
    X_bad = X.copy()
    if rank == 1:
        X_bad.loc[X_bad.index[0], "x0"] = np.nan
    try:
        MultiTaskClassifier(**params, distributed=True).fit(X_bad, y)
        report["error"] = None
    except ValueError as exc:
        report["error"] = str(exc)

    mark("4b A continued fit whose y has its tasks in")
    # 4b. A continued fit whose y has its tasks in another order on one rank only.
    try:
        clf.partial_fit(big.iloc[rows], big_y.iloc[rows][["buy", "click"]] if rank == 1
                        else big_y.iloc[rows])
        report["order_error"] = None
    except ValueError as exc:
        report["order_error"] = str(exc)

    mark("5 Different parameters on different ranks: a")
    # 5. Different parameters on different ranks: a clear error, not a hang.
    try:
        MultiTaskClassifier(**{**params, "max_iter": 2 + rank}, distributed=True).fit(X, y)
        report["params_error"] = None
    except ValueError as exc:
        report["params_error"] = str(exc)

    mark("6 A funnel violation (a purchase without a")
    # 6. A funnel violation (a purchase without a click) on one rank only.
    y_funnel = y.copy()
    if rank == 1:
        y_funnel.loc[y_funnel.index[0], ["click", "buy"]] = [0.0, 1.0]
    try:
        MultiTaskClassifier(**params, funnel=["click", "buy"], distributed=True).fit(X, y_funnel)
        report["funnel_error"] = None
    except ValueError as exc:
        report["funnel_error"] = str(exc)

    mark("7 A global batch smaller than the number of")
    # 7. A global batch smaller than the number of processes.
    try:
        MultiTaskClassifier(**{**params, "batch_size": 1}, distributed=True).fit(X, y)
        report["batch_error"] = None
    except ValueError as exc:
        report["batch_error"] = str(exc)

    mark("7b What differs between ranks in the call itself")
    # 7b. What differs between ranks in the call itself must be a clear ValueError on
    #     every rank, not obscurely paired collectives or two different models.
    def error_of(fit):
        try:
            fit()
        except ValueError as exc:
            return str(exc)
        return None

    one_epoch = {**params, "max_iter": 1}
    labels_of_rank = y["click"].map({0.0: "no", 1.0: "yes" if rank == 0 else "si"})
    report["classes_error"] = error_of(lambda: MultiTaskClassifier(
        **one_epoch, distributed=True).partial_fit(X, labels_of_rank,
                                                   classes=[np.unique(labels_of_rank)]))
    cities = sorted(set(X["city"]) | ({"city_0"} if rank == 0 else {"city_new"}))
    report["categories_error"] = error_of(lambda: MultiTaskClassifier(
        **one_epoch, distributed=True).partial_fit(X, y, categories={"city": cities}))
    # the same categories in another order (a set's order differs between processes)
    same = sorted(set(X["city"]) | {"city_0", "city_new"}, reverse=rank == 1)
    report["categories_in_another_order"] = error_of(lambda: MultiTaskClassifier(
        **one_epoch, distributed=True).partial_fit(X, y, categories={"city": same}))
    continued = MultiTaskClassifier(**one_epoch, warm_start=True, distributed=True)
    if rank == 0:  # e.g. a model loaded from a file on rank 0 only
        continued.set_params(distributed=False).fit(X, y).set_params(distributed=True)
    report["continuation_error"] = error_of(lambda: continued.fit(X, y))
    weights_array = np.array([1.0, 1.0 if rank == 0 else 50.0])
    report["array_params_error"] = error_of(lambda: MultiTaskClassifier(
        **one_epoch, task_weights=weights_array, distributed=True).fit(X, y))
    weights_dict = {"click": 1.0, "buy": 2.0} if rank == 0 else {"buy": 2.0, "click": 1.0}
    report["dict_in_another_order"] = error_of(lambda: MultiTaskClassifier(
        **one_epoch, task_weights=weights_dict, distributed=True).fit(X, y))
    # feature_groups' order orders the groups' experts: another order is another network
    groups = {"user": ["city"], "device": ["device", "x0"]}
    groups = groups if rank == 0 else dict(reversed(list(groups.items())))
    report["feature_groups_order_error"] = error_of(lambda: MultiTaskClassifier(
        **{**one_epoch, "architecture": "mmoe"}, feature_groups=groups, distributed=True).fit(X, y))
    sets = {"user": {"city", "x0"}, "device": {"device", "x1"}} if rank == 0 else {
        "user": {"city", "x1"}, "device": {"device", "x0"}}
    report["feature_group_sets_error"] = error_of(lambda: MultiTaskClassifier(
        **{**one_epoch, "architecture": "mmoe"}, feature_groups=sets, distributed=True).fit(X, y))
    # the same classes and categories written otherwise are the same sets
    classes = [[0, 1], [0, 1]] if rank == 0 else [[0.0, 1.0], [1.0, 0.0, np.nan]]
    report["classes_written_otherwise"] = error_of(lambda: MultiTaskClassifier(
        **one_epoch, distributed=True).partial_fit(X, y, classes=classes))
    cities = sorted(set(X["city"]) | {"city_0", "city_new"})
    written = cities if rank == 0 else [*cities, cities[0], None]
    report["categories_written_otherwise"] = error_of(lambda: MultiTaskClassifier(
        **one_epoch, distributed=True).partial_fit(X, y, categories={"city": written}))
    # a later partial_fit call given categories: refused on every process, not on one
    later = MultiTaskClassifier(**one_epoch, distributed=True).partial_fit(X, y)
    report["later_categories_error"] = error_of(
        lambda: later.partial_fit(X, y, categories={"city": cities} if rank == 1 else None))

    mark("8 A user module with buffers that training")
    # 8. A user module with buffers that training changes: the ranks must agree.
    clf = MultiTaskClassifier(
        **{**params, "architecture": NormalisedHeads, "shuffle": True}, distributed=True
    ).fit(big.iloc[rows], big_y.iloc[rows])
    for name, value in state(clf).items():
        out[f"user_state_{name}"] = value

    Path(out_dir).mkdir(parents=True, exist_ok=True)
    np.savez(Path(out_dir) / f"rank{rank}.npz", **out)

    mark("9 Last (it tears the process group down): an")
    # 9. Last (it tears the process group down): an error inside training on rank 1
    #    must stop rank 0 at once, not after the 30-minute collective timeout.
    start = time.perf_counter()
    try:
        MultiTaskClassifier(**{**params, "architecture": FailingOnRank1}, distributed=True).fit(X, y)
        report["crash"] = None
    except Exception as exc:  # noqa: BLE001 (rank 0 sees a communication error)
        report["crash"] = f"{type(exc).__name__}: {exc}"[:300]
    report["crash_seconds"] = time.perf_counter() - start
    if dist.is_initialized():
        dist.destroy_process_group()
    mark("10 Torn down, the group leaves no gloo thread")
    # 10. Torn down, the group leaves no gloo thread behind (one left running until
    #     the interpreter's teardown can abort the process after a successful run).
    report["gloo_threads_after_teardown"] = gloo_threads()
    (Path(out_dir) / f"rank{rank}.json").write_text(json.dumps(report))
    return 0


def gloo_threads() -> list[str] | None:
    """The names of this process's gloo threads (None where /proc can't list them)."""
    tasks = Path("/proc/self/task")
    if not tasks.is_dir():
        return None
    names = []
    for task in tasks.iterdir():
        try:
            names.append((task / "comm").read_text().strip())
        except OSError:  # the thread ended while we looked
            continue
    return sorted(name for name in names if "gloo" in name)


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
