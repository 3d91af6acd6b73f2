"""Search on a cluster: GridSearchCV and cross_validate through joblib's Dask and Ray backends.

skmtl is deterministic given an int ``random_state``, so a search whose fits run
in other processes, on another scheduler, must score every candidate exactly as
the sequential (``n_jobs=1``) search does. Each backend is skipped where its
package is not installed (``pip install -e '.[distributed]'`` for Dask).
"""

import os

import joblib
import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.model_selection import GridSearchCV, KFold, cross_validate

from skmtl import MultiTaskClassifier, metrics

pytestmark = pytest.mark.slow  # skipped by the fast tier, pytest -m "not slow"

TASKS = ["click", "buy"]
GRID = [
    {"architecture": ["shared_bottom"]},
    {"architecture": ["moe", "mmoe"], "n_experts": [2, 3]},
]
# Per-task scorers skip the unknown labels of "buy"; refit on their mean.
SCORING = metrics.per_task_scorers(["roc_auc", "log_loss"], TASKS)
REFIT = "mean_roc_auc"
N_CANDIDATES, N_SPLITS = 5, 3
DISTRIBUTED_MISSING = "dask.distributed is not installed (pip install -e '.[distributed]')"


def make_problem(n=300, seed=0):
    """A string column and two numbers; two tasks, a fifth of "buy" unknown (NaN)."""
    rng = np.random.RandomState(seed)
    city = rng.choice([f"c{i}" for i in range(8)], size=n)
    X = pd.DataFrame(
        {
            "city": pd.array(city, dtype="str"),
            "age": rng.normal(40, 12, size=n),
            "x": rng.normal(size=n),
        }
    )
    score = (X["age"].to_numpy() - 40) / 12 + (city < "c4") + X["x"].to_numpy()
    y = pd.DataFrame(
        {
            "click": (score + rng.logistic(size=n) > 0.5).astype(float),
            "buy": np.where(rng.rand(n) < 0.2, np.nan, score + rng.logistic(size=n) > 1.5),
        }
    )
    return X, y


def make_estimator():
    # dropout and category dropout on: the fits draw random numbers beyond the init.
    return MultiTaskClassifier(
        max_iter=5, batch_size=32, expert_layer_sizes=(16,), tower_layer_sizes=(8,),
        dropout=0.1, category_dropout=0.05, random_state=0, device="cpu",
    )


def run_search(n_jobs):
    X, y = make_problem()
    search = GridSearchCV(
        make_estimator(), GRID, cv=KFold(N_SPLITS), scoring=SCORING, refit=REFIT, n_jobs=n_jobs
    )
    return search.fit(X, y)


def run_cross_validate(n_jobs):
    X, y = make_problem()
    return cross_validate(
        make_estimator().set_params(architecture="mmoe"), X, y, cv=KFold(N_SPLITS),
        scoring=SCORING, return_estimator=True, n_jobs=n_jobs,
    )


def _test_score_keys(cv_results):
    return sorted(k for k in cv_results if k.startswith(("split", "mean_test", "rank_test")))


def assert_same_search(expected, got):
    keys = _test_score_keys(expected.cv_results_)
    # 3 splits + mean + rank for each of the 6 scorers
    assert len(keys) == (N_SPLITS + 2) * len(SCORING) == 30
    assert keys == _test_score_keys(got.cv_results_)
    for key in keys:
        assert np.array_equal(expected.cv_results_[key], got.cv_results_[key]), key
    assert got.cv_results_["params"] == expected.cv_results_["params"]
    assert len(got.cv_results_["params"]) == N_CANDIDATES
    assert got.best_params_ == expected.best_params_
    assert got.best_index_ == expected.best_index_
    assert got.best_score_ == expected.best_score_
    X, _ = make_problem()
    assert np.array_equal(
        np.hstack(expected.predict_proba(X)), np.hstack(got.predict_proba(X))
    )


def assert_same_cross_validate(expected, got):
    keys = sorted(k for k in expected if k.startswith("test_"))
    assert len(keys) == len(SCORING)
    for key in keys:
        assert got[key].shape == (N_SPLITS,)
        assert np.array_equal(expected[key], got[key]), key
    # The fitted models came back from the workers (pickled): same weights, same output.
    X, _ = make_problem()
    for a, b in zip(expected["estimator"], got["estimator"], strict=True):
        sa, sb = a.module_.state_dict(), b.module_.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
        assert np.array_equal(np.hstack(a.predict_proba(X)), np.hstack(b.predict_proba(X)))


@pytest.fixture(scope="module")
def sequential():
    """The reference: every fit in this process, one after the other."""
    return run_search(n_jobs=1), run_cross_validate(n_jobs=1)


def test_reference_search_is_not_degenerate(sequential):
    search, cv = sequential
    results = search.cv_results_
    # Scores differ between candidates (the grid matters) and are real AUCs.
    assert len(np.unique(results["mean_test_mean_roc_auc"])) == N_CANDIDATES
    auc = results["mean_test_mean_roc_auc"]
    assert np.all((auc > 0.5) & (auc < 1))
    assert np.all(results["mean_test_neg_mean_log_loss"] < 0)
    assert search.best_index_ == int(np.argmax(auc))
    assert np.all(np.isfinite(cv["test_roc_auc_buy"]))


# ------------------------------------------------------------------ Dask
def _thread_probe():
    """What a worker's fits run with. A nested function is pickled by value: the
    workers need not import this test module."""

    def probe():
        import os

        import threadpoolctl
        import torch

        return {
            "pid": os.getpid(),
            "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
            "torch": torch.get_num_threads(),
            "pools": sorted({p["num_threads"] for p in threadpoolctl.threadpool_info()}),
        }

    return probe


@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed", reason=DISTRIBUTED_MISSING)
    # Worker processes (not threads of this one), started by nannies. The scheduler's
    # HTTP server (the dashboard, where bokeh is installed) takes any free port: the
    # default 8787 may be held by another cluster.
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
    ) as cluster, distributed.Client(cluster) as client:
        client.wait_for_workers(2, timeout=60)
        yield client


def test_dask_workers_are_processes_with_one_torch_thread(dask_client):
    info = dask_client.run(_thread_probe())
    assert len(info) == 2
    pids = {w["pid"] for w in info.values()}
    assert len(pids) == 2 and os.getpid() not in pids
    # The nanny starts each worker with OMP_NUM_THREADS=1 (and MKL/OpenBLAS too):
    # two workers on two cores do not oversubscribe them.
    for w in info.values():
        assert w["OMP_NUM_THREADS"] == "1"
        assert w["torch"] == 1
        assert w["pools"] == [1]


def test_grid_search_on_dask_scores_like_sequential(dask_client, sequential):
    from distributed import get_task_stream

    with get_task_stream(dask_client) as stream, joblib.parallel_config(backend="dask"):
        search = run_search(n_jobs=-1)
    assert_same_search(sequential[0], search)
    # The 15 fits did run on the cluster, on both workers.
    workers = {task["worker"] for task in stream.data}
    assert workers == set(dask_client.scheduler_info()["workers"])


def test_cross_validate_on_dask_scores_like_sequential(dask_client, sequential):
    with joblib.parallel_config(backend="dask"):
        result = run_cross_validate(n_jobs=-1)
    assert_same_cross_validate(sequential[1], result)


def test_dask_backend_with_data_scattered_up_front(dask_client, sequential):
    # scatter= sends X and y to every worker once, before any fit is submitted.
    X, y = make_problem()
    search = GridSearchCV(make_estimator(), GRID, cv=KFold(N_SPLITS), scoring=SCORING,
                          refit=REFIT, n_jobs=-1)
    with joblib.parallel_config(backend="dask", scatter=[X, y]):
        search.fit(X, y)
    assert_same_search(sequential[0], search)


# ------------------------------------------------------------------ Ray
@pytest.fixture(scope="module")
def ray_backend():
    ray = pytest.importorskip("ray", reason="ray is not installed (pip install -e '.[ray]')")
    from joblib.pool import PicklingPool
    from ray.util.joblib import register_ray

    # Ray's backend re-bases joblib's PicklingPool on Ray's Pool, for the whole
    # process: put it back afterwards, for the "multiprocessing" backend's sake.
    bases = PicklingPool.__bases__
    register_ray()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             configure_logging=False)
    try:
        yield ray
    finally:
        ray.shutdown()
        PicklingPool.__bases__ = bases


def test_grid_search_on_ray_scores_like_sequential(ray_backend, sequential):
    # Each joblib call on Ray starts a new pool of actor processes (seconds each),
    # so only the search runs here; cross_validate takes the same route.
    with joblib.parallel_config(backend="ray"):
        search = run_search(n_jobs=-1)
    assert_same_search(sequential[0], search)
    # Ray starts its workers with OMP_NUM_THREADS set to the task's CPUs (1).
    probe = ray_backend.remote(num_cpus=1)(_thread_probe())
    threads = ray_backend.get([probe.remote() for _ in range(2)])
    assert all(t["torch"] == 1 and t["OMP_NUM_THREADS"] == "1" for t in threads)
    assert os.getpid() not in {t["pid"] for t in threads}


# ------------------------------------------------------------------ the benchmark's driver
def test_benchmark_script_tiny_run(tmp_path):
    """benchmarks/dask_search.py on tiny data: it runs, checks the scores and writes its table."""
    pytest.importorskip("distributed", reason=DISTRIBUTED_MISSING)
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "dask_search.py"
    if not script.exists():
        pytest.skip("benchmarks/dask_search.py not present")
    spec = importlib.util.spec_from_file_location("dask_search_bench", script)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "dask_search.md"
    bench.main(["--rows", "300", "--max-iter", "1", "--repeats", "1", "--workers", "1",
                "--out", str(out)])
    rows = {}
    for line in out.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[0] in ("sequential", "dask"):
            rows[cells[0]] = cells
    assert set(rows) == {"sequential", "dask"}
    # run, workers, median s, runs s, vs sequential, vs 1 worker, start-up s, threads, others
    assert len(rows["dask"]) == 9
    assert rows["dask"][1] == "1" and rows["dask"][5] == "1.00x"
    assert float(rows["dask"][2]) > 0 and float(rows["dask"][6]) > 0
    assert rows["dask"][7] == "1" and rows["sequential"][7] == "1"
    assert float(rows["dask"][4].rstrip("x")) > 0  # speed-up vs sequential
