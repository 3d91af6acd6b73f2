"""Determinism and thread safety: one int seed, one model, wherever and however it is fitted."""

import os
import random
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold

from skmtl import MultiTaskClassifier, MultiTaskRegressor
from skmtl.nn import ARCHITECTURES

TESTS = Path(__file__).resolve().parent
# Every source of randomness on: init, shuffling, dropout, unknown-category dropout and
# the early-stopping split.
RANDOM_PARAMS = dict(
    max_iter=4, batch_size=32, dropout=0.2, category_dropout=0.1, early_stopping=True,
    validation_fraction=0.2, n_iter_no_change=10, expert_layer_sizes=(16,),
    tower_layer_sizes=(8,), device="cpu",
)


def make_problem(n=300, seed=0):
    """Strings, a category, a bool and numbers; two tasks, one with unknown labels."""
    rng = np.random.RandomState(seed)
    city = rng.choice([f"city-{i}" for i in range(15)], size=n)
    X = pd.DataFrame(
        {
            "city": pd.array(city, dtype="str"),
            "device": pd.Categorical(rng.choice(["ios", "android", "web"], size=n)),
            "member": rng.rand(n) < 0.4,
            "age": rng.normal(40, 12, size=n),
        }
    )
    score = (X["age"].to_numpy() - 40) / 12 + (city < "city-5") + X["member"].to_numpy()
    y = pd.DataFrame(
        {
            "click": (score + rng.logistic(size=n) > 0.5).astype(int),
            "buy": np.where(rng.rand(n) < 0.3, np.nan, (score + rng.logistic(size=n) > 1.5)),
        }
    )
    return X, y


def fit_predict(random_state=0, **params):
    """Fit on :func:`make_problem` and return the probabilities of both tasks, stacked."""
    X, y = make_problem()
    clf = MultiTaskClassifier(random_state=random_state, **{**RANDOM_PARAMS, **params}).fit(X, y)
    return np.hstack(clf.predict_proba(X))


def _state(clf):
    return {k: v.clone() for k, v in clf.module_.state_dict().items()}


# ------------------------------------------------------------------ repeat fits
def test_two_fits_with_one_int_seed_are_identical():
    X, y = make_problem()
    a = MultiTaskClassifier(random_state=7, **RANDOM_PARAMS).fit(X, y)
    b = MultiTaskClassifier(random_state=7, **RANDOM_PARAMS).fit(X, y)
    sa, sb = _state(a), _state(b)
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    assert a.loss_curve_ == b.loss_curve_ and a.validation_scores_ == b.validation_scores_
    assert np.array_equal(np.hstack(a.predict_proba(X)), np.hstack(b.predict_proba(X)))
    c = MultiTaskClassifier(random_state=8, **RANDOM_PARAMS).fit(X, y)
    assert not np.array_equal(np.hstack(a.predict_proba(X)), np.hstack(c.predict_proba(X)))


def test_int_seed_leaves_global_random_states_alone():
    X, y = make_problem()
    torch_state, np_state = torch.random.get_rng_state(), np.random.get_state()
    py_state = random.getstate()
    MultiTaskClassifier(random_state=0, **RANDOM_PARAMS).fit(X, y).predict_proba(X)
    assert torch.equal(torch.random.get_rng_state(), torch_state)
    after = np.random.get_state()
    assert np.array_equal(after[1], np_state[1]) and after[2:] == np_state[2:]
    assert random.getstate() == py_state


def test_random_state_none_draws_from_numpy_global_rng():
    np.random.seed(0)
    a = fit_predict(random_state=None)
    np.random.seed(0)
    b = fit_predict(random_state=None)
    assert np.array_equal(a, b)
    position = np.random.get_state()[2]
    c = fit_predict(random_state=None)  # draws one seed from the global RNG: a new model
    assert np.random.get_state()[2] == position + 1
    assert not np.array_equal(a, c)


def test_random_state_instance_is_consumed_fit_after_fit():
    a = fit_predict(random_state=np.random.RandomState(3))
    b = fit_predict(random_state=np.random.RandomState(3))
    assert np.array_equal(a, b)
    shared = np.random.RandomState(3)
    first, second = fit_predict(random_state=shared), fit_predict(random_state=shared)
    assert np.array_equal(first, a) and not np.array_equal(first, second)


# ------------------------------------------------------------------ processes
_CHILD = (
    "import sys, numpy as np, torch; sys.path.insert(0, sys.argv[1]); "
    "torch.set_num_threads(int(sys.argv[3])); "
    "from test_determinism import fit_predict; np.save(sys.argv[2], fit_predict(random_state=0))"
)


@pytest.mark.slow
def test_same_model_in_another_process(tmp_path):
    # Another hash seed changes the iteration order of string sets and dicts: the
    # vocabularies must not depend on it.
    hash_seed = "1" if os.environ.get("PYTHONHASHSEED") != "1" else "2"
    out = tmp_path / "proba.npy"
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(TESTS), str(out), str(torch.get_num_threads())],
        env={**os.environ, "PYTHONHASHSEED": hash_seed},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    reference = fit_predict(random_state=0)  # meanwhile, here
    _, err = child.communicate(timeout=120)
    assert child.returncode == 0, err.decode()
    assert np.array_equal(np.load(out), reference)


# ------------------------------------------------------------------ threads
def _in_threads(functions):
    """Run the callables at the same moment, one thread each; return their results."""
    barrier = threading.Barrier(len(functions))
    results, errors = [None] * len(functions), []

    def run(i):
        try:
            barrier.wait()
            results[i] = functions[i]()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(functions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    if errors:
        raise errors[0]
    return results


def test_two_fits_in_two_threads_at_once_match_a_sequential_fit():
    reference = fit_predict(random_state=0)
    other = fit_predict(random_state=1)
    for _ in range(2):
        a, b = _in_threads([lambda: fit_predict(random_state=0),
                            lambda: fit_predict(random_state=1)])
        assert np.array_equal(a, reference) and np.array_equal(b, other)


def test_predict_proba_from_many_threads_matches_sequential_calls():
    X, y = make_problem()
    clf = MultiTaskClassifier(random_state=0, **RANDOM_PARAMS).fit(X, y)
    chunks = [X.iloc[i::8] for i in range(8)]
    expected = [np.hstack(clf.predict_proba(chunk)) for chunk in chunks]
    calls = [
        lambda i=i: [np.hstack(clf.predict_proba(chunks[i])) for _ in range(5)] for i in range(8)
    ]
    for i, repeated in enumerate(_in_threads(calls)):
        for proba in repeated:
            assert np.array_equal(proba, expected[i])
    assert not clf.module_.training


# ------------------------------------------------------------------ model selection
@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.slow
def test_grid_search_in_two_processes_scores_like_one():
    X, y = make_problem(n=200)
    y = y.fillna(0).astype(int)  # sklearn's default scorer refuses NaN labels
    grid = {"learning_rate_init": [1e-3, 1e-2]}
    cv = KFold(3, shuffle=True, random_state=0)
    estimator = MultiTaskClassifier(random_state=0, **{**RANDOM_PARAMS, "max_iter": 2})
    serial = GridSearchCV(clone(estimator), grid, cv=cv, n_jobs=1).fit(X, y)
    parallel = GridSearchCV(clone(estimator), grid, cv=cv, n_jobs=2).fit(X, y)
    for key in ["mean_test_score", *(f"split{i}_test_score" for i in range(3))]:
        assert np.array_equal(serial.cv_results_[key], parallel.cv_results_[key]), key
    assert np.array_equal(
        np.hstack(serial.predict_proba(X)), np.hstack(parallel.predict_proba(X))
    )


# --------------------------------------------------- a row's prediction ignores its batch
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_a_row_predicts_the_same_alone_or_in_a_batch(architecture, threads):
    """float32 products of 1-3 rows sum in another order than inside a batch.

    Unpadded, single rows' logits differed from the batch's by many ulps
    (sklearn's check_methods_subset_invariance failed for PLE); padded, by at
    most 2 ulps (PLE's gates: for some product widths MKL's kernels still
    depend on a row's place in the batch), and the default architecture's with
    binary tasks not at all, wherever the row sits.
    """
    rng = np.random.RandomState(0)
    X = 3 * rng.uniform(size=(37, 3))
    y = np.column_stack([X[:, 0] > 1.5, X[:, 1] > 1.5]).astype(int)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        classifier = MultiTaskClassifier(
            architecture=architecture, max_iter=2, random_state=0, device="cpu"
        ).fit(X, y)
        regressor = MultiTaskRegressor(
            architecture=architecture, max_iter=2, random_state=0, device="cpu",
            tower_layer_sizes=(4,),  # a narrow tower: its output layer needs 112 rows
        ).fit(X, y.astype(float))
        for model in (classifier, regressor):
            whole = torch.stack(model._logits(X)).numpy()
            alone = np.concatenate(
                [torch.stack(model._logits(X[i : i + 1])).numpy() for i in range(len(X))], axis=1
            )
            np.testing.assert_array_max_ulp(alone, whole, maxulp=4)
            within = torch.stack(model._logits(X[5:16])).numpy()
            np.testing.assert_array_max_ulp(within, whole[:, 5:16], maxulp=4)
        if architecture == MultiTaskClassifier().architecture:
            whole = np.asarray(classifier.predict_proba(X))
            alone = [np.asarray(classifier.predict_proba(X[i : i + 1])) for i in range(len(X))]
            np.testing.assert_array_equal(np.concatenate(alone, axis=1), whole)
            shifted = np.asarray(classifier.predict_proba(X[1:]))  # every row one place up
            np.testing.assert_array_equal(shifted, whole[:, 1:])
            alone = [regressor.predict(X[i : i + 1]) for i in range(len(X))]
            np.testing.assert_array_equal(np.concatenate(alone), regressor.predict(X))
    finally:
        torch.set_num_threads(before)


def test_a_five_class_task_moves_by_a_few_ulps_with_its_place_in_the_batch():
    """What padding cannot fix: a 5-wide product depends on a row's even or odd position."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(256, 6))
    y = np.c_[rng.integers(0, 5, 256), rng.integers(0, 2, 256)]
    classifier = MultiTaskClassifier(max_iter=1, random_state=0, device="cpu").fit(X, y)
    whole = torch.stack([z[:, 0] for z in classifier._logits(X)[:1]]).numpy()
    shifted = torch.stack([z[:, 0] for z in classifier._logits(X[1:])[:1]]).numpy()
    np.testing.assert_array_max_ulp(shifted, whole[:, 1:], maxulp=64)
    difference = np.abs(np.asarray(classifier.predict_proba(X[1:])[0])
                        - np.asarray(classifier.predict_proba(X)[0])[1:])
    assert difference.max() < 1e-8  # far inside sklearn's 1e-7 of subset invariance


def test_the_row_floor_pads_narrow_stacked_layers_past_the_naive_bmm_loop():
    from skmtl._training import inference_row_floor
    from skmtl.nn.blocks import StackedLinear

    wide = torch.nn.Sequential(StackedLinear(2, 32, 16), StackedLinear(2, 16, 1))
    narrow = torch.nn.Sequential(StackedLinear(2, 32, 4), StackedLinear(2, 4, 1))
    assert inference_row_floor(wide) == 32  # 400 / 16 = 25 rows, rounded up to 16s
    assert inference_row_floor(narrow) == 112  # 400 / 4 = 100 rows
    assert inference_row_floor(torch.nn.Linear(3, 1)) == 16
