import numpy as np
import pandas as pd
import pytest
import torch

# The suite's models are tiny: one intra-op thread is as fast as two, and it keeps
# the run from collapsing when another process shares the 2-core machine (OpenMP
# threads spin-waiting against each other).
torch.set_num_threads(1)


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
