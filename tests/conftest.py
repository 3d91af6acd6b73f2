import numpy as np
import pandas as pd
import pytest
import torch

# The suite's models are tiny: one intra-op thread is as fast as two, and it keeps
# the run from collapsing when another process shares the 2-core machine (OpenMP
# threads spin-waiting against each other).
torch.set_num_threads(1)


# The README's command runs the suite on two pytest-xdist workers with --dist loadfile (a
# file's tests stay in one process: several files build an expensive module-scoped fixture
# once). xdist hands out the files with the most tests first, which left files of a few long
# tests (the benchmark smoke runs, the docs build) to start last, while the other worker ran
# out of work. These files start first, longest first (seconds of test time in a two-worker
# run on a loaded 2-core machine, 2026-12-01); the others follow in collection order.
LONGEST_FILES_FIRST = [
    "test_sklearn_checks.py",  # 1329 s
    "test_regressor.py",  # 760
    "test_benchmarks_smoke.py",  # 490
    "test_numeric_embeddings.py",  # 354
    "test_sequence_columns.py",  # 254
    "test_docs.py",  # 251
    "test_export.py",  # 178
    "test_threads.py",  # 170
    "test_distributed_search.py",  # 112
    "test_determinism.py",  # 100
    "test_classifier.py",  # 75
    "test_examples.py",  # 71
    "test_golden.py",  # 64
    "test_distributed_training.py",  # 59
]


def pytest_configure(config):
    if getattr(config.option, "dist", "no") == "loadfile":
        config.option.loadscopereorder = False  # keep the order of pytest_collection_modifyitems


def pytest_collection_modifyitems(config, items):
    if not hasattr(config, "workerinput"):  # a plain run keeps its order; the workers collect
        return  # for the scheduler, which reads the order of their collection
    rank = {name: i for i, name in enumerate(LONGEST_FILES_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable within a file


def assert_onnx_matches_predict_proba(model, X):
    """The exported ONNX model's probabilities are ``model.predict_proba(X)`` (skipped without onnx)."""
    pytest.importorskip("onnx")
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from skmtl.export import onnx_inputs, to_onnx

    outputs = ort.InferenceSession(to_onnx(model).SerializeToString()).run(
        None, onnx_inputs(model, X)
    )
    for got, want in zip(outputs, model.predict_proba(X)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def make_mixed_frame(n=1500, seed=0):
    """A DataFrame with string, category, bool and numeric columns and two known-signal tasks."""
    rng = np.random.RandomState(seed)
    city = rng.choice([f"c{i}" for i in range(12)], size=n)
    city_effect = {f"c{i}": e for i, e in enumerate(np.linspace(-2.0, 2.0, 12))}
    device = pd.Categorical(rng.choice(["ios", "android", "web"], size=n))
    member = rng.rand(n) < 0.4
    age = rng.normal(40, 12, size=n)
    income = rng.lognormal(10, 1, size=n)
    z1 = np.vectorize(city_effect.get)(city) + 0.05 * (age - 40) + 1.5 * member
    z2 = 0.7 * np.vectorize(city_effect.get)(city) - 1.0 * (np.asarray(device) == "web") + 0.03 * (age - 40)
    y = pd.DataFrame(
        {
            "click": (z1 + rng.logistic(size=n) * 0.5 > 0).astype(int),
            "buy": (z2 + rng.logistic(size=n) * 0.5 > 0).astype(int),
        }
    )
    X = pd.DataFrame(
        {
            "city": pd.array(city, dtype="string"),
            "device": device,
            "member": member,
            "age": age,
            "income": income,
        }
    )
    return X, y


@pytest.fixture
def mixed_data():
    return make_mixed_frame()


@pytest.fixture
def numeric_data():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(600, 5))
    y = np.column_stack(
        [X[:, 0] + 0.5 * X[:, 1] > 0, X[:, 0] * X[:, 2] + X[:, 3] > 0]
    ).astype(int)
    return X, y
