"""ONNX export (skmtl.export): raw columns in, the probabilities of predict_proba out.

Every comparison runs the exported graph in onnxruntime on RAW held-out
inputs (unseen categories, missing values) and checks it against
``predict_proba`` to 1e-5; the largest difference seen is printed (``-s``).
"""

import json
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.exceptions import NotFittedError

from skmtl import MultiTaskClassifier
from skmtl.export import onnx_inputs, to_onnx
from skmtl.nn import ARCHITECTURES

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

TOL = 1e-5
SMALL = dict(
    expert_layer_sizes=(16,), tower_layer_sizes=(8,), n_experts=2, n_shared_experts=1,
    n_levels=2, batch_size=128, max_iter=2, early_stopping=False, device="cpu", random_state=0,
)
CATEGORICAL = ["city", "device", "member", "zip", "rating", "rare"]
MAX_DIFF = {}  # test -> largest |onnx - predict_proba|, printed at the end of the module


def make_frame(n, seed):
    """String, category, bool, integer- and float-coded categorical, and continuous columns."""
    rng = np.random.RandomState(seed)
    city = rng.choice([f"c{i}" for i in range(8)], size=n).astype(object)
    city[rng.rand(n) < 0.05] = None
    device = pd.Categorical(rng.choice(["ios", "android", "web"], size=n))
    member = rng.rand(n) < 0.4
    zip_code = rng.choice([75001, 75002, 10115, 1], size=n)
    rating = rng.choice([1.0, 2.5, 4.0, np.nan], size=n)
    age = rng.randint(18, 80, size=n)
    income = rng.lognormal(10, 1, size=n)
    rare = np.array([f"id{i}" for i in rng.randint(0, 10**6, size=n)], dtype=object)
    X = pd.DataFrame({
        "city": pd.array(city, dtype="string"), "device": device, "member": member,
        "zip": zip_code, "rating": rating, "age": age, "income": income, "rare": rare,
    })
    score = (np.asarray(device) == "web") + 0.03 * (age - 50) + member - (zip_code == 1)
    click = (score + rng.logistic(size=n) > 0).astype(int)
    buy = click * (rng.rand(n) < 0.5 + 0.1 * np.nan_to_num(rating)).astype(int)
    segment = np.array(["a", "b", "c"])[(income > 20000).astype(int) + (age > 50)]
    return X, pd.DataFrame({"click": click, "buy": buy, "segment": segment})


@pytest.fixture(scope="module")
def data():
    X, y = make_frame(600, 0)
    X_new, _ = make_frame(40, 1)
    # Unseen values and missing values in every categorical column.
    X_new.loc[0, "city"] = "never-seen"
    X_new.loc[1, "city"] = pd.NA
    X_new["device"] = X_new["device"].cat.add_categories(["fax"])
    X_new.loc[2, "device"] = "fax"
    X_new.loc[3, "device"] = np.nan
    X_new.loc[4, "zip"] = 99999
    X_new.loc[5, "rating"] = np.nan
    X_new.loc[6, "rating"] = 3.0
    return X, y, X_new


def fit(X, y, architecture="mmoe", **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "rare" keeps no category
        return MultiTaskClassifier(
            architecture, categorical_features=CATEGORICAL, **{**SMALL, **params}
        ).fit(X, y)


@pytest.fixture(scope="module")
def esmm(data):
    X, y, _ = data
    clf = fit(X, y, funnel=("click", "buy"), negative_sampling_rate=0.5)
    return clf, to_onnx(clf)


def session(model):
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def check_matches(clf, model, X, feed=None, key=None):
    """ONNX outputs on ``X`` equal predict_proba (to TOL); returns the outputs."""
    outputs = session(model).run(None, onnx_inputs(clf, X) if feed is None else feed)
    expected = clf.predict_proba(X)
    expected = expected if isinstance(expected, list) else [expected]
    assert len(outputs) == len(expected)
    diff = 0.0
    for out, ref in zip(outputs, expected):
        assert out.dtype == np.float32 and out.shape == ref.shape
        diff = max(diff, float(np.abs(out - ref).max()))
    assert diff < TOL
    MAX_DIFF[key or clf.architecture] = max(diff, MAX_DIFF.get(key or clf.architecture, 0.0))
    return outputs


def raw_feed(X):
    """The graph inputs built by hand from raw columns, without onnx_inputs."""
    def strings(s):
        return s.astype(object).where(s.notna(), "").to_numpy(dtype=object).reshape(-1, 1)

    return {
        "city": strings(X["city"]),
        "device": strings(X["device"]),
        "member": X["member"].to_numpy(dtype=np.int64, copy=True).reshape(-1, 1),
        "zip": X["zip"].to_numpy(dtype=np.int64, copy=True).reshape(-1, 1),
        "rating": X["rating"].to_numpy(dtype=np.float64, copy=True).reshape(-1, 1),
        "age": X["age"].to_numpy(dtype=np.float64, copy=True).reshape(-1, 1),
        "income": X["income"].to_numpy(dtype=np.float64, copy=True).reshape(-1, 1),
        "rare": strings(X["rare"]),
    }


# ------------------------------------------------------------- the contract
def test_inputs_and_outputs_are_the_raw_columns_and_the_tasks(esmm):
    clf, model = esmm
    types = {i.name: (i.type, i.shape) for i in session(model).get_inputs()}
    assert list(types) == list(clf.feature_names_in_)
    assert {k: t for k, (t, _) in types.items()} == {
        "city": "tensor(string)", "device": "tensor(string)", "member": "tensor(int64)",
        "zip": "tensor(int64)", "rating": "tensor(double)", "age": "tensor(double)",
        "income": "tensor(double)", "rare": "tensor(string)",
    }
    assert all(shape == ["N", 1] for _, shape in types.values())
    outputs = {o.name: o.shape for o in session(model).get_outputs()}
    assert outputs == {"click": ["N", 2], "buy": ["N", 2], "segment": ["N", 3]}
    meta = {p.key: json.loads(p.value) for p in model.metadata_props}
    assert meta["skmtl.classes"] == {"click": [0, 1], "buy": [0, 1], "segment": ["a", "b", "c"]}
    assert meta["skmtl.funnel"] == ["click", "buy"]
    assert [c["kind"] for c in meta["skmtl.inputs"]] == [
        "string", "string", "bool", "int", "float", "continuous", "continuous", "string"]
    onnx.checker.check_model(model, full_check=True)


def test_raw_held_out_inputs_match_predict_proba(esmm, data):
    clf, model = esmm
    _, _, X_new = data
    feed = raw_feed(X_new)
    by_hand = check_matches(clf, model, X_new, feed=feed, key="raw")
    # onnx_inputs builds the same inputs (up to the value standing for "unknown").
    helper = session(model).run(None, onnx_inputs(clf, X_new))
    for a, b in zip(by_hand, helper):
        np.testing.assert_array_equal(a, b)
    # Unseen and missing categories really are unknown (code 0) in the estimator.
    codes, _ = clf.encoder_.transform(X_new)
    assert codes[0, 0] == codes[1, 0] == 0 and codes[2, 1] == codes[3, 1] == 0
    assert codes[4, 3] == 0 and codes[5, 4] == codes[6, 4] == 0
    assert (codes[:, 5] == 0).all()  # "rare" kept no category


def test_a_missing_bool_is_unknown(esmm, data):
    clf, model = esmm
    X_new = data[2].iloc[:3].copy()
    feed = raw_feed(X_new)
    feed["member"] = np.array([[-1], [7], [1]], dtype=np.int64)
    X_new["member"] = pd.array([None, None, True], dtype="boolean")
    check_matches(clf, model, X_new, feed=feed, key="raw")


def test_funnel_probabilities_are_pctr_and_pctcvr(esmm, data):
    clf, model = esmm
    _, _, X_new = data
    click, buy, segment = check_matches(clf, model, X_new, key="esmm")
    conditional = clf.predict_conditional_proba(X_new)
    np.testing.assert_allclose(buy[:, 1], click[:, 1] * conditional["buy"], atol=TOL)
    assert (buy[:, 1] <= click[:, 1] + 1e-7).all()
    np.testing.assert_allclose(segment.sum(axis=1), 1.0, atol=1e-6)


def test_independent_funnel_with_offsets(data):
    X, y, X_new = data
    clf = fit(X, y, "shared_bottom", funnel=("click", "buy"), funnel_mode="independent",
              negative_sampling_rate={"click": 0.25})
    check_matches(clf, to_onnx(clf), X_new, key="independent funnel")


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_every_architecture_exports(architecture, data, esmm):
    """Three tasks: a click -> buy ESMM funnel and a 3-class task, on every architecture."""
    X, y, X_new = data
    if architecture == "mmoe":
        clf, model = esmm
    else:
        clf = fit(X, y, architecture, funnel=("click", "buy"))
        model = to_onnx(clf)
    check_matches(clf, model, X_new)


@pytest.mark.parametrize("architecture", ["single_task", "mmoe"])
def test_towers_of_different_shapes_export(architecture, data):
    """click and segment share a shape (a group of two tasks that are not adjacent)."""
    X, y, X_new = data
    clf = fit(X, y, architecture, tower_layer_sizes={"buy": (4, 4)})
    assert clf.module_.body.towers.tasks == [[0, 2], [1]]
    check_matches(clf, to_onnx(clf), X_new, key=f"{architecture}-towers")


def test_dynamic_batch_axis(esmm, data):
    clf, model = esmm
    _, _, X_new = data
    sess = session(model)
    one = sess.run(None, onnx_inputs(clf, X_new.iloc[[6]]))
    assert [o.shape for o in one] == [(1, 2), (1, 2), (1, 3)]
    big = pd.concat([X_new] * 25, ignore_index=True)  # 1,000 rows
    many = check_matches(clf, model, big, key="batch 1000")
    assert many[0].shape == (1000, 2)
    np.testing.assert_allclose(many[0][6], one[0][0], atol=1e-7)


def test_non_finite_continuous_values_give_nan_rows(esmm, data):
    clf, model = esmm
    X_new = data[2].iloc[:6].copy()
    feed = raw_feed(X_new)
    feed["age"][[1, 3]] = np.nan
    feed["income"][4] = np.inf
    feed["income"][5] = -np.inf
    outputs = session(model).run(None, feed)
    bad = np.array([False, True, False, True, True, True])
    for out, ref in zip(outputs, clf.predict_proba(X_new)):
        assert np.isnan(out[bad]).all()
        np.testing.assert_allclose(out[~bad], ref[~bad], atol=TOL)
    X_new["age"] = X_new["age"].astype(float)
    X_new.loc[1, "age"] = np.nan
    with pytest.raises(ValueError, match="NaN or infinity"):
        clf.predict_proba(X_new)


# ------------------------------------------------------ other input layouts
def test_numpy_input_without_categorical_columns(tmp_path):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(300, 3))
    y = (X[:, 0] + rng.normal(size=300) > 0).astype(int)  # 1-D y: one task, task_0
    clf = MultiTaskClassifier("shared_bottom", **SMALL).fit(X, y)
    model = to_onnx(clf, tmp_path / "model.onnx", opset=18)
    assert [i.name for i in model.graph.input] == ["x0", "x1", "x2"]
    assert [o.name for o in model.graph.output] == ["task_0"]
    assert {o.domain: o.version for o in model.opset_import}[""] == 18
    assert "ai.onnx.ml" not in {o.domain for o in model.opset_import}
    loaded = onnx.load(tmp_path / "model.onnx")
    assert loaded.SerializeToString() == model.SerializeToString()
    check_matches(clf, loaded, rng.normal(size=(50, 3)), key="numpy, continuous only")


def test_categorical_columns_only():
    X, y = make_frame(400, 2)
    X = X[["city", "device", "zip"]].astype({"zip": "category"})  # integer categories
    clf = MultiTaskClassifier("moe", categorical_features=["city", "device", "zip"], **SMALL)
    clf.fit(X, y)
    model = to_onnx(clf)
    X_new, _ = make_frame(30, 3)
    X_new = X_new[["city", "device", "zip"]].astype({"zip": "category"})
    assert [i.type for i in session(model).get_inputs()] == [
        "tensor(string)", "tensor(string)", "tensor(int64)"]
    assert not [i for i in model.graph.node if i.op_type == "Cast" and "x_cont" in i.output[0]]
    check_matches(clf, model, X_new, key="categorical only")


def test_onnx_inputs_when_the_empty_string_is_a_category():
    X = pd.DataFrame({"k": ["", "a"] * 30 + ["b"], "v": np.arange(61.0)})
    y = pd.DataFrame({"t": [0, 1] * 30 + [1], "u": [1, 0] * 30 + [0]})
    clf = MultiTaskClassifier(**SMALL).fit(X, y)
    feed = onnx_inputs(clf, pd.DataFrame({"k": ["", "a", "b", None], "v": [1.0, 2, 3, 4]}))
    # "" was learnt, so unknown values ("b" is too rare, None is missing) get another string.
    assert feed["k"].ravel().tolist() == ["", "a", "<missing 0>", "<missing 0>"]
    np.testing.assert_array_equal(clf.encoder_.transform(X.iloc[[0, 1, 60]])[0].ravel(), [1, 2, 0])


# ------------------------------------------------------------------ refusals
def test_refusals(esmm, data):
    X, y, _ = data
    with pytest.raises(NotFittedError):
        to_onnx(MultiTaskClassifier())
    with pytest.raises(TypeError, match="MultiTaskClassifier"):
        to_onnx(object())
    with pytest.raises(ValueError, match="opset"):
        to_onnx(esmm[0], opset=17)
    clash = X.rename(columns={"age": "click"})
    clf = fit(clash, y)
    with pytest.raises(ValueError, match=r"\['click'\] appear"):
        to_onnx(clf)


class _DataDependent(torch.nn.Module):
    """A user-defined architecture that torch.export cannot trace (branch on values)."""

    def __init__(self, in_features, n_outputs):
        super().__init__()
        self.linear = torch.nn.Linear(in_features, len(n_outputs))

    def forward(self, x):
        z = self.linear(x)
        if z.sum() > 0:  # data-dependent Python control flow
            z = -z
        return list(z.unbind(1))


def test_untraceable_user_module_is_reported(data):
    X, y, _ = data
    clf = fit(X, y[["click", "buy"]], _DataDependent)
    with pytest.raises(RuntimeError, match="torch.export"):
        to_onnx(clf)


def test_report_largest_difference():
    """Not a check: prints the largest |ONNX - predict_proba| per case (run with -s)."""
    for key, diff in sorted(MAX_DIFF.items()):
        print(f"max |onnx - predict_proba| {key}: {diff:.2e}")
    assert all(d < TOL for d in MAX_DIFF.values())
