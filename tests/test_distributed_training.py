"""Data-parallel training: two processes under torchrun (gloo) against one process.

The test writes a data set, launches ``tests/distributed_worker.py`` in two
processes with ``python -m torch.distributed.run`` and compares what they
learnt with a single-process fit on the same rows:

- same seed, same global batch (64 rows; 32 from each rank), no shuffling:
  the loss curve and the predicted probabilities must match the one-process
  fit to float32 round-off (the only difference is the order of the sums),
  and the vocabularies and continuous statistics must be the global ones;
- shuffled, early-stopped, class-balanced training on uneven shards and a
  distributed ``partial_fit`` must leave both ranks with bit-identical models;
- early stopping on a chosen ``scoring`` scores the validation rows of both
  ranks on each, so they keep the same epoch; a scorer failing on one rank
  stops both;
- bad input on one rank, or different parameters, must make every rank raise
  a ValueError instead of hanging.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import roc_auc_score

from skmtl import MultiTaskClassifier

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not (torch.distributed.is_available() and torch.distributed.is_gloo_available()),
        reason="torch.distributed with gloo is not available",
    ),
]

WORKER = Path(__file__).with_name("distributed_worker.py")
GLOBAL_BATCH = 64
PARAMS = {
    "architecture": "mmoe",
    "embedding_dim": 4,
    "expert_layer_sizes": [16],
    "n_experts": 2,
    "tower_layer_sizes": [8],
    "learning_rate_init": 0.01,
    "batch_size": GLOBAL_BATCH,
    "max_iter": 5,
    "shuffle": False,
    "early_stopping": False,
    "category_dropout": 0.0,
    "min_frequency": 5,
    "random_state": 0,
}
RECIPE = {"weight_decay": 0.01, "learning_rate_schedule": "plateau", "weight_init": "kaiming"}
# Loss curves and probabilities of the 2-process run vs the 1-process run.
TOLERANCE = 1e-5


def make_rows(rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    cities = np.array([f"city_{i}" for i in range(10)], dtype=object)
    city = cities[rng.integers(0, 10, n)]
    device = np.array(["phone", "tablet", "desktop"], dtype=object)[rng.integers(0, 3, n)]
    x0 = rng.normal(size=n)
    x1 = 1000.0 + 50.0 * rng.normal(size=n)  # far from standardised: the statistics matter
    score = 1.5 * x0 + 0.03 * (x1 - 1000.0) + (device == "phone") - 0.8 * (city == "city_3")
    click = (rng.random(n) < 1 / (1 + np.exp(-score))).astype(float)
    buy = click * (rng.random(n) < 1 / (1 + np.exp(-(x0 - 0.5)))).astype(float)
    buy[rng.random(n) < 0.1] = np.nan  # unknown labels, masked
    # Regression targets (MultiTaskRegressor), from the same draws: far from standardised,
    # a count for the poisson loss, and unknown where buy is.
    spend = 200.0 * x0 + (x1 - 1000.0) + 5000.0 + 300.0 * (device == "phone")
    count = np.round(3.0 * np.exp(0.5 * x0))
    spend[np.isnan(buy)] = np.nan
    return {"city": city, "device": device, "x0": x0, "x1": x1, "click": click, "buy": buy,
            "spend": spend, "count": count}


def frame(rows: dict) -> tuple[pd.DataFrame, pd.DataFrame]:
    X = pd.DataFrame({k: rows[k] for k in ("city", "device", "x0", "x1")})
    return X, pd.DataFrame({"click": rows["click"], "buy": rows["buy"]})


def _text(output) -> str:
    """What a timed-out subprocess had written (bytes, str or None)."""
    if isinstance(output, bytes):
        return output.decode(errors="replace")
    return output or ""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ddp")
    rng = np.random.default_rng(0)
    n = 10 * GLOBAL_BATCH
    rows = make_rows(rng, n)
    # "city_rare" occurs 3 times on each rank: rarer than min_frequency=5 on each
    # shard, frequent enough over both, so it must get an embedding row.
    rows["city"][[5, 100, 200, 40, 140, 230]] = "city_rare"
    # Global row i is in global batch i // 64; its first 32 rows are rank 0's part.
    shard = (np.arange(n) % GLOBAL_BATCH) // (GLOBAL_BATCH // 2)
    weight = rng.uniform(0.5, 2.0, n)
    big = make_rows(rng, 3000)
    big_shard = (rng.random(3000) < 0.42).astype(int)  # uneven: rank 1 has fewer rows
    test = make_rows(rng, 2000)
    arrays = {**rows, "shard": shard, "weight": weight, "params": json.dumps(PARAMS)}
    arrays.update({f"big_{k}": v for k, v in big.items()})
    arrays["big_shard"] = big_shard
    arrays.update({f"test_{k}": v for k, v in test.items()})
    data_path = tmp / "data.npz"
    np.savez(data_path, **arrays)

    out = tmp / "out"
    # The workers import the skmtl of this checkout, wherever the package is installed from.
    path = os.pathsep.join(p for p in (str(WORKER.parents[1]), os.environ.get("PYTHONPATH")) if p)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore", "PYTHONPATH": path}
    try:
        result = subprocess.run(
            [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
             str(WORKER), str(data_path), str(out)],
            capture_output=True, text=True, timeout=600, env=env,
        )
    except subprocess.TimeoutExpired as exc:  # the ranks' progress lines say where it hung
        pytest.fail(f"torchrun ran past {exc.timeout} s; its stderr:\n{_text(exc.stderr)[-6000:]}")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-8000:]
    ranks = [
        (dict(np.load(out / f"rank{r}.npz")), json.loads((out / f"rank{r}.json").read_text()))
        for r in range(2)
    ]
    return {
        "rows": rows, "weight": weight, "big": big, "big_shard": big_shard, "test": test,
        "ranks": ranks,
    }


def test_a_regressor_in_two_processes_matches_one_process(runs):
    """MultiTaskRegressor's data-parallel path: global target scaling, weights, NaN targets."""
    from skmtl import MultiTaskRegressor

    X, _ = frame(runs["rows"])
    y = pd.DataFrame({"spend": runs["rows"]["spend"], "count": runs["rows"]["count"]})
    single = MultiTaskRegressor(**PARAMS, loss={"count": "poisson"}).fit(
        X, y, sample_weight=runs["weight"])
    for arrays, _ in runs["ranks"]:
        np.testing.assert_allclose(arrays["regressor_offset"], single.target_offset_, rtol=1e-12)
        np.testing.assert_allclose(arrays["regressor_scale"], single.target_scale_, rtol=1e-12)
        np.testing.assert_allclose(arrays["regressor_loss_curve"], single.loss_curve_,
                                   rtol=TOLERANCE)
        np.testing.assert_allclose(arrays["regressor_predict"], single.predict(X),
                                   rtol=TOLERANCE)


def test_a_binary_log_loss_task_next_to_a_regression_task_matches_one_process(runs):
    """Mixed task types (issue 18): a click with loss="log_loss" and a spend, two processes."""
    from skmtl import MultiTaskRegressor

    X, _ = frame(runs["rows"])
    y = pd.DataFrame({"click": runs["rows"]["click"], "spend": runs["rows"]["spend"]})
    single = MultiTaskRegressor(**PARAMS, loss={"click": "log_loss"}).fit(
        X, y, sample_weight=runs["weight"])
    assert single.target_offset_[0] == 0.0 and single.target_scale_[0] == 1.0
    for arrays, _ in runs["ranks"]:
        np.testing.assert_allclose(arrays["mixed_loss_curve"], single.loss_curve_,
                                   rtol=TOLERANCE)
        np.testing.assert_allclose(arrays["mixed_predict"], single.predict(X), rtol=TOLERANCE)


def test_uncertainty_weighting_in_two_processes_matches_one_process(runs):
    """task_balancing="uncertainty" learns its log-variances from the global batch's losses."""
    from skmtl import MultiTaskRegressor

    X, _ = frame(runs["rows"])
    y = pd.DataFrame({"spend": runs["rows"]["spend"], "count": runs["rows"]["count"]})
    single = MultiTaskRegressor(**PARAMS, loss={"count": "poisson"},
                                task_balancing="uncertainty").fit(X, y, sample_weight=runs["weight"])
    assert not np.allclose(single.task_balance_weights_[-1], 1.0, atol=1e-3)
    for arrays, _ in runs["ranks"]:
        np.testing.assert_allclose(arrays["uncertainty_weights"], single.task_balance_weights_,
                                   rtol=TOLERANCE)
        np.testing.assert_allclose(arrays["uncertainty_loss_curve"], single.loss_curve_,
                                   rtol=TOLERANCE)
        np.testing.assert_allclose(arrays["uncertainty_predict"], single.predict(X),
                                   rtol=TOLERANCE)


def test_numeric_only_columns_train_data_parallel(runs):
    """Found in review: with no categorical column, DDP raised on the second step (the
    empty embedding table is a parameter no step uses)."""
    X, y = frame(runs["rows"])
    single = MultiTaskClassifier(**PARAMS).fit(
        X[["x0", "x1"]], y, sample_weight=runs["weight"])
    for arrays, _ in runs["ranks"]:
        np.testing.assert_allclose(arrays["numeric_only_loss_curve"], single.loss_curve_,
                                   rtol=TOLERANCE)


def test_joint_projection_trains_data_parallel(runs):
    """continuous_projection="joint" in two processes: the one-process model."""
    X, y = frame(runs["rows"])
    single = MultiTaskClassifier(**PARAMS, continuous_projection="joint").fit(
        X, y, sample_weight=runs["weight"])
    assert single.network_spec_["embeddings"][1]["projection"] == "joint"
    for arrays, _ in runs["ranks"]:
        np.testing.assert_allclose(arrays["joint_loss_curve"], single.loss_curve_, rtol=TOLERANCE)
        np.testing.assert_allclose(arrays["joint_proba_0"], single.predict_proba(X)[0],
                                   atol=TOLERANCE)


def test_a_sparse_X_trains_data_parallel(runs):
    """A scipy sparse X in two processes (moments combined, rows sparse): the one-process model."""
    from distributed_worker import sparse_design

    X, y = frame(runs["rows"])
    single = MultiTaskClassifier(**PARAMS, continuous_projection="joint").fit(
        sparse_design(X), y, sample_weight=runs["weight"])
    for arrays, _ in runs["ranks"]:
        np.testing.assert_allclose(arrays["sparse_loss_curve"], single.loss_curve_, rtol=TOLERANCE)
        np.testing.assert_allclose(arrays["sparse_proba_0"], single.predict_proba(sparse_design(X))[0],
                                   atol=TOLERANCE)


def test_two_processes_match_one_process_on_the_same_global_batches(runs):
    X, y = frame(runs["rows"])
    single = MultiTaskClassifier(**PARAMS).fit(X, y, sample_weight=runs["weight"])
    for arrays, report in runs["ranks"]:
        np.testing.assert_allclose(
            arrays["equivalence_loss_curve"], single.loss_curve_, rtol=TOLERANCE
        )
        np.testing.assert_allclose(
            arrays["equivalence_task_loss_curves"], single.task_loss_curves_, rtol=TOLERANCE
        )
        for t, proba in enumerate(single.predict_proba(X)):
            np.testing.assert_allclose(arrays[f"equivalence_proba_{t}"], proba, atol=TOLERANCE)
        # Global statistics: the same vocabularies and scaling as on all rows at once.
        np.testing.assert_allclose(arrays["equivalence_mean"], single.encoder_.continuous.mean_, rtol=1e-12)
        np.testing.assert_allclose(arrays["equivalence_scale"], single.encoder_.continuous.scale_, rtol=1e-12)
        expected = [None if c is None else [str(v) for v in c] for c in single.categories_]
        assert report["equivalence_categories"] == expected
        assert "city_rare" in report["equivalence_categories"][0]


def test_piecewise_linear_bins_are_global(runs):
    """numeric_embedding="piecewise_linear" in two processes: the one-process bins and model."""
    X, y = frame(runs["rows"])
    single = MultiTaskClassifier(**PARAMS, numeric_embedding="piecewise_linear").fit(
        X, y, sample_weight=runs["weight"])
    for arrays, _ in runs["ranks"]:
        for k, edges in enumerate(single.encoder_.continuous.bins_):
            np.testing.assert_array_equal(arrays[f"ple_bins_{k}"], edges)
        np.testing.assert_allclose(arrays["ple_loss_curve"], single.loss_curve_, rtol=TOLERANCE)
        np.testing.assert_allclose(arrays["ple_proba_0"], single.predict_proba(X)[0], atol=TOLERANCE)


def test_training_recipe_options_match_one_process(runs):
    """weight_decay, learning_rate_schedule="plateau", weight_init="kaiming": one process's model."""
    X, y = frame(runs["rows"])
    single = MultiTaskClassifier(**PARAMS, **RECIPE).fit(X, y, sample_weight=runs["weight"])
    for arrays, _ in runs["ranks"]:
        np.testing.assert_allclose(arrays["recipe_loss_curve"], single.loss_curve_, rtol=TOLERANCE)
        np.testing.assert_allclose(arrays["recipe_proba_0"], single.predict_proba(X)[0],
                                   atol=TOLERANCE)


def test_alpha_is_divided_by_the_global_batch_as_in_one_process(runs):
    """Every rank penalises by alpha / the global batch's rows: one process's model and rate."""
    X, y = frame(runs["rows"])
    single = MultiTaskClassifier(**PARAMS, alpha=5.0).fit(X, y, sample_weight=runs["weight"])
    rates = np.sort([g["weight_decay"] for g in single.optimizer_.param_groups])
    for arrays, _ in runs["ranks"]:
        np.testing.assert_allclose(arrays["alpha_rates"], rates, rtol=1e-12)
        np.testing.assert_allclose(arrays["alpha_loss_curve"], single.loss_curve_, rtol=TOLERANCE)
        np.testing.assert_allclose(arrays["alpha_proba_0"], single.predict_proba(X)[0],
                                   atol=TOLERANCE)


def test_embedding_dropout_trains_one_model_on_every_rank(runs):
    """Each rank drops its own embedded values; the averaged gradients keep one model."""
    first, _ = runs["ranks"][0]
    assert any(k.startswith("edrop_state_") for k in first)  # equal: test_ranks_end_with_...
    # The masks changed training (the same fit without them: equivalence_loss_curve).
    assert not np.allclose(first["edrop_loss_curve"], first["equivalence_loss_curve"])


def test_ranks_end_with_the_same_model(runs):
    (first, first_report), (second, second_report) = runs["ranks"]
    for prefix in ("early_state_", "early_state_ple_", "partial_state_", "user_state_",
                   "edrop_state_"):
        names = [k for k in first if k.startswith(prefix)]
        assert names
        for name in names:
            np.testing.assert_array_equal(first[name], second[name], err_msg=name)
    np.testing.assert_array_equal(
        first["early_validation_scores"], second["early_validation_scores"]
    )
    assert first_report["early_n_iter"] == second_report["early_n_iter"]
    assert first_report["early_n_iter"] < 40  # early stopping did stop
    assert first_report["partial_n_iter"] == second_report["partial_n_iter"] == 2
    assert any("running_mean" in name for name in first)  # a buffer training changed


def test_early_stopping_on_a_chosen_score_agrees_across_ranks(runs):
    """Every rank scores the validation rows of both (gathered) and keeps the same epoch."""
    (first, first_report), (second, second_report) = runs["ranks"]
    names = [k for k in first if k.startswith("scored_state_")]
    assert names
    for name in names:
        np.testing.assert_array_equal(first[name], second[name], err_msg=name)
    np.testing.assert_array_equal(
        first["scored_validation_scores"], second["scored_validation_scores"]
    )
    assert first_report["scored_n_iter"] == second_report["scored_n_iter"] < 40
    shard = runs["big_shard"]
    for report in (first_report, second_report):
        rows = np.asarray(report["scored_rows"])
        assert report["scored_rows"] == first_report["scored_rows"]
        assert len(set(rows.tolist())) == len(rows)
        for rank in (0, 1):  # each rank's validation_fraction=0.1 of its own shard
            assert np.sum(shard[rows] == rank) == int(round(0.1 * np.sum(shard == rank)))
        assert report["scored_calls"] == report["scored_n_iter"]
        assert report["scored_rescored"] == pytest.approx(report["scored_best"], abs=1e-4)


def test_a_scorer_failing_on_one_rank_stops_every_rank(runs):
    (_, first), (_, second) = runs["ranks"]
    assert second["scorer_error"] == "RuntimeError: scorer failed on rank 1"
    assert first["scorer_error"].startswith("ValueError: fit failed on rank 1 of 2")
    assert "scorer failed on rank 1" in first["scorer_error"]


def test_shuffled_distributed_training_reaches_single_process_quality(runs):
    X, y = frame(runs["big"])
    X_test, y_test = frame(runs["test"])
    single = MultiTaskClassifier(
        **{**PARAMS, "shuffle": True, "early_stopping": True, "max_iter": 40,
           "n_iter_no_change": 3, "class_weight": "balanced", "category_dropout": 0.05}
    ).fit(X, y)
    expected = roc_auc_score(y_test["click"], single.predict_proba(X_test)[0][:, 1])
    arrays, _ = runs["ranks"][0]
    got = roc_auc_score(y_test["click"], arrays["early_test_proba_0"][:, 1])
    assert expected > 0.75
    assert got > expected - 0.03, (got, expected)


def test_an_error_on_one_rank_stops_every_rank(runs):
    (_, first), (_, second) = runs["ranks"]
    assert "NaN" in second["error"]
    assert "rank 1" in first["error"] and "NaN" in first["error"]
    for report in (first, second):
        assert "same parameters" in report["params_error"]
        assert "max_iter" in report["params_error"]
        assert "at least the number of processes" in report["batch_error"]
        assert "funnel" in report["funnel_error"].lower()
        assert "y's tasks in the fitted order" in report["order_error"]
    assert "rank 1" in first["funnel_error"] and "rank 1" in first["order_error"]


def test_what_differs_between_ranks_in_the_call_is_a_clear_error(runs):
    for _, report in runs["ranks"]:
        assert "same partial_fit classes" in report["classes_error"]
        assert "same partial_fit categories" in report["categories_error"]
        assert "city_new" in report["categories_error"]
        assert report["categories_in_another_order"] is None
        assert "same kind of fit call" in report["continuation_error"]
        assert "continues a fitted model" in report["continuation_error"]
        assert "same parameters" in report["array_params_error"]
        assert "task_weights" in report["array_params_error"]
        assert report["dict_in_another_order"] is None
        assert "feature_groups" in report["feature_groups_order_error"]
        assert "feature_groups" in report["feature_group_sets_error"]
        assert report["classes_written_otherwise"] is None
        assert report["categories_written_otherwise"] is None
        assert "first partial_fit call only" in report["later_categories_error"]
    # the message shows the values as the user wrote them
    assert "array([1., 1.])" in runs["ranks"][0][1]["array_params_error"]


def test_a_failure_inside_training_on_one_rank_stops_the_others_at_once(runs):
    (_, first), (_, second) = runs["ranks"]
    assert "simulated failure on rank 1" in second["crash"]
    assert first["crash"] is not None  # rank 0's collective fails once rank 1 is gone
    assert first["crash_seconds"] < 60, first["crash_seconds"]


def test_destroying_the_process_group_stops_gloos_threads(runs):
    # DistributedDataParallel imports torch.distributed.nn, whose functions keep the
    # default group as a default argument; imported first inside a fit, it kept the
    # group (and gloo's threads) alive until the interpreter's teardown.
    for _, report in runs["ranks"]:
        threads = report["gloo_threads_after_teardown"]
        if threads is None:
            pytest.skip("/proc/self/task can't list this process's threads")
        assert threads == [], threads


def test_the_wrappers_reducer_is_not_the_last_to_hold_the_process_group():
    # Released last by the reducer (C++, GIL held), gloo's group joined its worker
    # thread while that thread waited for the GIL to free a finished collective: the
    # rank that survived another's error hung (1 run in 6-10 of the worker above on
    # a busy machine; 4 of 6 short crash loops). The wrapper keeps the group's Python
    # object, set after the reducer, so that object lets go last (GIL released).
    import torch.distributed as dist

    from skmtl._distributed import ProcessGroup

    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
    try:
        wrapper = ProcessGroup().wrap(torch.nn.Linear(2, 1), torch.device("cpu"), False)
        names = list(vars(wrapper))
        assert wrapper._skmtl_process_group is wrapper.process_group
        assert names.index("_skmtl_process_group") > names.index("reducer")
        wrapper(torch.ones(3, 2)).sum().backward()
    finally:
        dist.destroy_process_group()
    del wrapper  # the group's last reference: returns (a hang here is the deadlock)


def test_distributed_without_a_process_group_is_a_clear_error():
    X, y = frame(make_rows(np.random.default_rng(1), 50))
    with pytest.raises(ValueError, match="torchrun"):
        MultiTaskClassifier(distributed=True, max_iter=1).fit(X, y)


# ---------------------------------------------------------------- in one process
# The global statistics, with the other "processes" simulated: their shards'
# local statistics are computed the same way and handed in by a fake group.


class FakeGroup:
    """Rank 0 of a group whose other ranks sent ``others`` (or a recorder of what rank 0 sends)."""

    active = True
    rank = 0

    def __init__(self, others=None):
        self.others = others
        self.sent = []
        self.world_size = 1 + len(others or ())

    def share(self, compute):
        value = compute()
        self.sent.append(value)
        return [value, *(self.others.pop(0) if self.others else [])]

    def run(self, compute):
        return compute()


def _sent(fit, shard):
    """What ``fit(shard, group)`` sends to the other processes, in order."""
    recorder = FakeGroup()
    fit(shard, recorder)
    return recorder.sent


def test_encoder_statistics_of_shards_combine_to_those_of_all_rows():
    from skmtl._encoding import TabularEncoder

    rows = make_rows(np.random.default_rng(2), 900)
    rows["city"][[3, 400, 800]] = "city_rare"  # once per shard, 3 times in all
    X, _ = frame(rows)
    shards = [X.iloc[:300], X.iloc[300:700], X.iloc[700:]]
    mask = np.array([True, True, False, False])

    for max_categories in (None, 5):
        def fit(data, group=None, max_categories=max_categories):
            encoder = TabularEncoder.from_mask(mask, min_frequency=3, max_categories=max_categories)
            return encoder.fit(data, group=group)

        sent = [_sent(fit, shard) for shard in shards[1:]]
        # One collective per kind (categorical counts, continuous moments), in that order.
        combined = fit(shards[0], FakeGroup([list(values) for values in zip(*sent)]))
        whole = fit(X)
        for got, expected in zip(combined.categorical.vocabularies_, whole.categorical.vocabularies_):
            assert got.tolist() == expected.tolist()
        np.testing.assert_allclose(combined.continuous.mean_, whole.continuous.mean_, rtol=1e-13)
        np.testing.assert_allclose(combined.continuous.scale_, whole.continuous.scale_, rtol=1e-12)
        if max_categories is None:
            # min_frequency applies to the summed counts, not to each shard's.
            assert "city_rare" in combined.categorical.vocabularies_[0]
            assert "city_rare" not in fit(shards[0]).categorical.vocabularies_[0]
        else:
            assert len(combined.categorical.vocabularies_[0]) == max_categories


def _fit_targets(y, group=None):
    from skmtl._targets import fit_targets

    return fit_targets(y, group=group)


def test_target_classes_are_the_union_over_shards():
    shard_a = pd.DataFrame({"click": [0, 0, np.nan], "kind": ["a", "b", "a"]})
    shard_b = pd.DataFrame({"click": [1, 1, 0], "kind": ["c", None, "a"]})
    targets = _fit_targets(shard_a, FakeGroup([_sent(_fit_targets, shard_b)]))
    assert [c.tolist() for c in targets.classes] == [[0.0, 1.0], ["a", "b", "c"]]
    np.testing.assert_array_equal(targets.codes, [[0, 0], [0, 1], [-1, 0]])
    # Alone, shard_a's click task has a single class and could not be trained.
    with pytest.raises(ValueError, match="only one class"):
        _fit_targets(shard_a)
    # bool labels on one process, floats (with NaN) on another: one task, no label lost.
    bools = pd.DataFrame({"click": [True, False, True], "kind": ["a", "b", "a"]})
    targets = _fit_targets(bools, FakeGroup([_sent(_fit_targets, shard_b)]))
    assert targets.classes[0].tolist() == [0.0, 1.0]
    np.testing.assert_array_equal(targets.codes[:, 0], [1, 0, 1])
    mixed = pd.DataFrame({"click": [0, 1, 0], "kind": [1, 2, 3]})
    with pytest.raises(ValueError, match="different types on different processes"):
        _fit_targets(shard_a, FakeGroup([_sent(_fit_targets, mixed)]))
