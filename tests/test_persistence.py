"""Safe model files: exact round trips, and damaged, altered or foreign files refused."""

import importlib
import io
import json
import pickle
import sys
import zipfile

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from skmtl import MultiTaskClassifier, _persistence, load_model, metrics, save_model

FAST = dict(
    max_iter=2, random_state=0, device="cpu", expert_layer_sizes=(8,), tower_layer_sizes=(4,)
)
ARCHITECTURE_NAMES = ["shared_bottom", "moe", "mmoe", "ple", "aitm", "single_task"]


def make_frame(n=120, seed=0):
    rng = np.random.RandomState(seed)
    city = rng.choice(["paris", "lyon", "nice", "brest"], size=n)
    X = pd.DataFrame(
        {
            "city": pd.array(city, dtype="str"),
            "device": pd.Categorical(rng.choice(["ios", "web"], size=n)),
            "plan": pd.Series(rng.choice(["free", "pro"], size=n), dtype=object),
            "member": rng.rand(n) < 0.5,
            "visits": rng.poisson(3, size=n),
            "age": rng.normal(40, 10, size=n),
        }
    )
    click = (X["age"] > 40) ^ (city == "paris")
    buy = np.where(click, rng.rand(n) < 0.7, False)
    y = pd.DataFrame({"click": click.astype(int), "buy": buy.astype(int)})
    return X, y


def _proba_list(clf, X):
    proba = clf.predict_proba(X)
    return proba if isinstance(proba, list) else [proba]


def assert_same_model(a, b, X):
    for pa, pb in zip(_proba_list(a, X), _proba_list(b, X)):
        assert pa.dtype == pb.dtype and np.array_equal(pa, pb)
    pred_a, pred_b = a.predict(X), b.predict(X)
    assert pred_a.dtype == pred_b.dtype and np.array_equal(pred_a, pred_b)
    assert repr(a.get_params()) == repr(b.get_params())


def _roundtrip(clf, tmp_path, **kwargs):
    path = tmp_path / "model.skmtl"
    save_model(clf, path, **kwargs)
    return load_model(path, **{k: v for k, v in kwargs.items() if k == "key"})


# ------------------------------------------------------------------ round trips
@pytest.mark.parametrize("architecture", ARCHITECTURE_NAMES)
def test_round_trip_is_exact_for_every_architecture(architecture, tmp_path):
    X, y = make_frame()
    clf = MultiTaskClassifier(architecture, dropout=0.1, **FAST).fit(X, y)
    restored = _roundtrip(clf, tmp_path)
    assert type(restored) is MultiTaskClassifier
    assert_same_model(clf, restored, X)
    assert restored.score(X, y) == clf.score(X, y)


@pytest.mark.parametrize(
    "case",
    ["one-dimensional", "string-labels", "nan-labels", "weights", "funnel", "feature-groups",
     "auto-dim"],
)
def test_round_trip_keeps_every_fitted_attribute(case, tmp_path):
    X, y = make_frame()
    params = dict(FAST)
    if case == "one-dimensional":
        y = y["click"].to_numpy()
    elif case == "string-labels":
        y = y.assign(buy=np.where(y["buy"] == 1, "yes", "no"), kind=np.array(["a", "b", "c"] * 40))
    elif case == "nan-labels":
        y = y.astype(float)
        y.loc[::3, "buy"] = np.nan
    elif case == "weights":
        params.update(class_weight="balanced", task_weights={"buy": 2.0})
        params.update(negative_sampling_rate={"click": 0.5})
    elif case == "funnel":
        params.update(funnel=["click", "buy"], funnel_mode="esmm")
    elif case == "feature-groups":
        params.update(architecture="mmoe", feature_groups={"user": ["age", "member"]})
    elif case == "auto-dim":
        params.update(embedding_dim="auto", min_frequency=1, max_categories=3)
    clf = MultiTaskClassifier(**params).fit(X, y)
    restored = _roundtrip(clf, tmp_path)
    assert_same_model(clf, restored, X)
    assert sorted(vars(restored)) == sorted(vars(clf))
    for name in ["n_features_in_", "n_outputs_", "n_iter_", "loss_curve_", "best_loss_",
                 "validation_scores_", "best_validation_score_", "funnel_"]:
        assert getattr(restored, name) == getattr(clf, name), name
    for name in ["feature_names_in_", "is_categorical_", "task_names_", "task_loss_curves_"]:
        a, b = getattr(clf, name), getattr(restored, name)
        assert a.dtype == b.dtype and np.array_equal(a, b), name
    classes_a = clf.classes_ if isinstance(clf.classes_, list) else [clf.classes_]
    classes_b = restored.classes_ if isinstance(restored.classes_, list) else [restored.classes_]
    assert type(clf.classes_) is type(restored.classes_)
    for a, b in zip(classes_a, classes_b):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    for a, b in zip(clf.encoder_.categorical.vocabularies_, restored.encoder_.categorical.vocabularies_):
        assert a.dtype == b.dtype and a.equals(b)
    assert np.array_equal(clf.encoder_.continuous.mean_, restored.encoder_.continuous.mean_)
    assert np.array_equal(clf.encoder_.continuous.scale_, restored.encoder_.continuous.scale_)
    assert restored.device_ == torch.device("cpu")


def test_loaded_model_is_a_real_estimator(tmp_path):
    X, y = make_frame()
    clf = MultiTaskClassifier(**FAST).fit(X, y)
    restored = _roundtrip(clf, tmp_path)
    assert clone(restored).get_params() == clone(clf).get_params()
    assert_same_model(pickle.loads(pickle.dumps(restored)), clf, X)
    # New and missing categories still map to the unknown row.
    new = X.head(3).assign(city=pd.array(["oslo", None, "paris"], dtype="str"))
    for a, b in zip(_proba_list(clf, new), _proba_list(restored, new)):
        assert np.array_equal(a, b)
    # It keeps training like the original (warm start continues from the same weights).
    clf.set_params(warm_start=True).fit(X, y)
    restored.set_params(warm_start=True).fit(X, y)
    assert_same_model(clf, restored, X)


def test_categorical_float_column_with_infinity(tmp_path):
    X = pd.DataFrame({"level": [1.0, 2.5, np.inf, -np.inf] * 10, "x": np.arange(40.0)})
    y = np.arange(40) % 2
    clf = MultiTaskClassifier(categorical_features=[0], min_frequency=1, **FAST).fit(X, y)
    assert np.isinf(clf.categories_[0]).sum() == 2
    restored = _roundtrip(clf, tmp_path)
    assert_same_model(clf, restored, X)
    assert "Infinity" not in (tmp_path / "model.skmtl").read_bytes().decode("latin-1")


def test_random_state_instance_round_trips(tmp_path):
    X, y = make_frame()
    clf = MultiTaskClassifier(**{**FAST, "random_state": np.random.RandomState(5)}).fit(X, y)
    restored = _roundtrip(clf, tmp_path)
    a, b = clf.random_state.get_state(), restored.random_state.get_state()
    assert np.array_equal(a[1], b[1]) and a[2:] == b[2:]


# ------------------------------------------------------------------ the file
@pytest.fixture
def saved(tmp_path):
    X, y = make_frame()
    clf = MultiTaskClassifier(**FAST).fit(X, y)
    path = tmp_path / "model.skmtl"
    save_model(clf, path, key=b"secret")
    return clf, path, X


def _members(path):
    with zipfile.ZipFile(path) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def _rewrite(path, document=None, weights=None, key=None):
    """Replace members and recompute the checksums, as a forger without the key would."""
    members = _members(path)
    model_json = members["model.json"] if document is None else json.dumps(document).encode()
    weights = members["weights.pt"] if weights is None else weights
    checksums = _persistence._checksums(model_json, weights, key)
    members = {"checksums.json": json.dumps(checksums).encode(), "model.json": model_json}
    _persistence._write_archive(path, {**members, "weights.pt": weights})


def loaded_without_param(model, path, name):
    """``model`` saved to ``path`` as an skmtl without the parameter ``name`` wrote it, loaded."""
    save_model(model, path)
    document = json.loads(_members(path)["model.json"])
    del document["params"][name]
    _rewrite(path, document)
    return load_model(path)


def test_file_is_a_zip_of_plain_json_and_tensors(saved):
    clf, path, _ = saved
    members = _members(path)
    assert sorted(members) == ["checksums.json", "model.json", "weights.pt"]
    document = json.loads(members["model.json"])
    assert document["format"] == "skmtl-model" and document["format_version"] == 3
    assert set(document["versions"]) >= {"skmtl", "torch", "sklearn"}
    assert document["network"]["embeddings"][0]["cardinalities"] == clf.encoder_.cardinalities
    assert document["network"]["options"]["n_experts"] == clf.network_spec_["options"]["n_experts"]
    assert "network_spec_" not in document["fitted"]  # stored once, as the network
    assert document["params"]["architecture"] == "mmoe"
    state = torch.load(io.BytesIO(members["weights.pt"]), weights_only=True)
    assert state.keys() == clf.module_.state_dict().keys()
    checksums = json.loads(members["checksums.json"])
    assert len(checksums["hmac_sha256"]) == 64


def test_saving_again_replaces_the_file_and_leaves_no_temporary(saved, tmp_path):
    clf, path, X = saved
    save_model(clf, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.skmtl"]
    assert_same_model(clf, load_model(path), X)


@pytest.mark.parametrize("member", ["weights.pt", "model.json", "checksums.json"])
def test_flipped_byte_is_detected(saved, member):
    _, path, _ = saved
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    # The member's (possibly compressed) bytes follow its 30-byte local header and name.
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data = bytearray(path.read_bytes())
    data[start + info.compress_size // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match=r"not a readable skmtl model file .*(CRC|Bad|decompressing)"):
        load_model(path)


def test_truncated_file(saved):
    _, path, _ = saved
    path.write_bytes(path.read_bytes()[:-100])
    # Without its directory, the zip reader may even find the one nested in weights.pt.
    with pytest.raises(ValueError, match=r"is not (a readable|an) skmtl model file"):
        load_model(path)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_model(tmp_path / "absent.skmtl")


def test_not_a_model_file(tmp_path):
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(ValueError, match=r"is not an skmtl model file: it holds \['readme.txt'\]"):
        load_model(path)


def test_pickle_file_is_refused_without_being_unpickled(tmp_path):
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(ValueError, match=r"is not a readable skmtl model file \(File is not a zip"):
        load_model(path)


def test_member_changed_without_updating_its_hash(saved):
    _, path, _ = saved
    members = _members(path)
    document = json.loads(members["model.json"])
    document["fitted"]["n_iter_"] = 99
    members["model.json"] = json.dumps(document).encode()
    _persistence._write_archive(path, members)
    with pytest.raises(ValueError, match=r"model.json does not match its SHA-256 in checksums"):
        load_model(path)


def _tamper_mean(path):
    members = _members(path)
    document = json.loads(members["model.json"])
    kinds = document["fitted"]["encoder_"]["$object"]["state"]["kinds"]
    continuous = next(k["$object"]["state"] for k in kinds if k["$object"]["class"] == "ContinuousColumns")
    mean = continuous["mean_"]["$ndarray"]["data"]
    mean[0] += 5.0
    return document


def test_rehashed_forgery_needs_the_key_to_be_caught(saved):
    clf, path, X = saved
    _rewrite(path, _tamper_mean(path))
    forged = load_model(path)  # hashes alone only catch accidents...
    assert not np.array_equal(forged.predict_proba(X)[0], clf.predict_proba(X)[0])
    with pytest.raises(ValueError, match=r"carries no HMAC signature"):
        load_model(path, key=b"secret")  # ...the key catches the forgery


def test_forgery_signed_with_another_key(saved):
    _, path, _ = saved
    _rewrite(path, _tamper_mean(path), key=b"guess")
    with pytest.raises(ValueError, match=r"HMAC signature mismatch"):
        load_model(path, key=b"secret")


def test_wrong_key(saved):
    _, path, X = saved
    with pytest.raises(ValueError, match=r"HMAC signature mismatch"):
        load_model(path, key="not-the-secret")
    assert load_model(path, key="secret").predict(X).shape == (len(X), 2)  # str keys work too


def test_key_given_for_an_unsigned_file(tmp_path):
    X, y = make_frame()
    path = tmp_path / "m.skmtl"
    save_model(MultiTaskClassifier(**FAST).fit(X, y), path)
    with pytest.raises(ValueError, match=r"saved without a key"):
        load_model(path, key=b"secret")


def test_weights_that_do_not_fit_the_network(saved):
    _, path, _ = saved
    members = _members(path)
    state = torch.load(io.BytesIO(members["weights.pt"]), weights_only=True)
    name = "embedding.kinds.categorical.weight"
    state[name] = torch.cat([state[name], state[name][:1]])
    del state[next(k for k in state if k.startswith("body."))]
    buffer = io.BytesIO()
    torch.save(state, buffer)
    _rewrite(path, weights=buffer.getvalue(), key=b"secret")
    match = (r"weights.pt does not fit the network .*missing tensors \['body\..*"
             r"'embedding.kinds.categorical.weight' is \(\d+, 8\)")
    with pytest.raises(ValueError, match=match):
        load_model(path, key=b"secret")


def test_huge_network_description_is_refused_before_allocating(saved):
    _, path, _ = saved
    document = json.loads(_members(path)["model.json"])
    document["network"]["options"]["expert_layer_sizes"] = {"$tuple": [10**12]}
    _rewrite(path, document)
    # The experts' first layer (with the gates beside it) and the towers' first layer.
    match = (
        r"does not fit the network .*needs \(\d+, 4000000000008\)"
        r".*needs \(2, 1000000000000, 4\)"
    )
    with pytest.raises(ValueError, match=match):
        load_model(path)


def test_inconsistent_description(saved):
    _, path, _ = saved
    document = json.loads(_members(path)["model.json"])
    document["fitted"]["n_features_in_"] = 5
    _rewrite(path, document)
    with pytest.raises(ValueError, match=r"model.json is inconsistent"):
        load_model(path)


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda d: d["versions"].update(skmtl="1.0.0"),
         r"saved by skmtl 1.0.0 .* same major version only"),
        (lambda d: d.update(format_version=4), r"format version 4 is not supported"),
        (lambda d: d.update(format="other"), r"does not describe an skmtl model"),
        (lambda d: d["params"].update(colour="red"), r"unknown parameters \['colour'\]"),
        (lambda d: d["params"].update(max_iter=-1),
         r"The 'max_iter' parameter of MultiTaskClassifier"),
        (lambda d: d["fitted"].update(__class__="MultiTaskClassifier"),
         r"unexpected attribute '__class__'"),
        (lambda d: d["network"].update(architecture="transformer"),
         r"names architecture 'transformer'"),
        (lambda d: d["fitted"].update(n_iter_={"$pickle": "gASVAAAAAAAAAAB9lC4="}),
         r"unknown tagged value"),
        (lambda d: d["fitted"].update(
            n_iter_={"$ndarray": {"dtype": "V8", "shape": [1], "data": [0]}}),
         r"array dtype 'V8' is not allowed"),
    ],
    ids=["major-version", "format-version", "format", "unknown-param", "bad-param", "dunder",
         "architecture", "unknown-tag", "void-dtype"],
)
def test_foreign_or_malformed_description(saved, change, match):
    _, path, _ = saved
    document = json.loads(_members(path)["model.json"])
    change(document)
    _rewrite(path, document)
    with pytest.raises(ValueError, match=match):
        load_model(path)


def test_class_named_in_the_file_is_never_imported(saved):
    _, path, _ = saved
    document = json.loads(_members(path)["model.json"])
    evil = {"$callable": "skmtl_evil_module_for_tests.Payload"}
    document["params"]["architecture"] = document["network"]["architecture"] = evil
    document["fitted"]["encoder_"]["$object"]["class"] = "os.system"
    _rewrite(path, document)
    with pytest.raises(ValueError):
        load_model(path)
    document["fitted"]["encoder_"] = json.loads(_members(path)["model.json"])["fitted"]["encoder_"]
    _rewrite(path, document)
    with pytest.raises(ValueError, match=r"never imports names read from a file: pass that class"):
        load_model(path)
    assert "skmtl_evil_module_for_tests" not in sys.modules


# ------------------------------------------------------------------ user-defined modules
class LinearHeads(torch.nn.Module):
    """A user-defined architecture: one linear head per task on the embedded input."""

    def __init__(self, in_features, n_outputs):
        super().__init__()
        self.n_outputs = list(n_outputs)
        self.heads = torch.nn.ModuleList(torch.nn.Linear(in_features, k) for k in self.n_outputs)

    def forward(self, x):
        return [h(x)[:, 0] if k == 1 else h(x) for h, k in zip(self.heads, self.n_outputs)]


class OtherHeads(LinearHeads):
    """The same shapes under another name."""


def test_user_defined_module_must_be_passed_by_the_caller(tmp_path):
    X, y = make_frame()
    torch.manual_seed(0)  # torch.nn.Linear initialises from the global generator
    clf = MultiTaskClassifier(LinearHeads, **FAST).fit(X, y)
    path = tmp_path / "custom.skmtl"
    save_model(clf, path)
    match = r"user-defined architecture '.*LinearHeads'.*module_class"
    with pytest.raises(ValueError, match=match):
        load_model(path)
    match = r"module_class is '.*OtherHeads' but the model was fitted with '.*LinearHeads'"
    with pytest.raises(ValueError, match=match):
        load_model(path, module_class=OtherHeads)
    restored = load_model(path, module_class=LinearHeads)
    assert_same_model(clf, restored, X)


def test_module_class_for_a_built_in_architecture(saved):
    _, path, _ = saved
    match = r"uses the built-in architecture 'mmoe'; leave module_class=None"
    with pytest.raises(ValueError, match=match):
        load_model(path, key=b"secret", module_class=LinearHeads)


# ------------------------------------------------------------------ what cannot be saved
def test_unfitted_estimator():
    with pytest.raises(NotFittedError):
        save_model(MultiTaskClassifier(), "never-written.skmtl")


def test_not_a_multitask_classifier(tmp_path):
    from sklearn.linear_model import LogisticRegression

    match = (
        r"save_model expects a MultiTaskClassifier or MultiTaskRegressor; got LogisticRegression"
    )
    with pytest.raises(TypeError, match=match):
        save_model(LogisticRegression(), tmp_path / "m.skmtl")


def test_parameters_changed_after_fit_do_not_change_the_saved_model(tmp_path):
    """The file holds the network fitted, whatever set_params did since (PLE's temperature is
    not in the module's repr: a guard comparing reprs let this through with other predictions)."""
    X, y = make_frame()
    clf = MultiTaskClassifier("ple", n_levels=1, gate_temperature=0.5, **FAST).fit(X, y)
    expected = _proba_list(clf, X)
    clf.set_params(gate_temperature=0.01, n_experts=7, embedding_dim=3)
    restored = _roundtrip(clf, tmp_path)
    for a, b in zip(expected, _proba_list(restored, X)):
        assert np.array_equal(a, b)
    assert restored.get_params() == clf.get_params()
    assert restored.network_spec_["options"]["gate_temperature"] == 0.5


def test_replaced_module_is_refused(tmp_path):
    X, y = make_frame()
    clf = MultiTaskClassifier(**FAST).fit(X, y)
    clf.module_ = MultiTaskClassifier(**{**FAST, "n_experts": 7}).fit(X, y).module_
    with pytest.raises(ValueError, match=r"module_ is not the network its network_spec_"):
        save_model(clf, tmp_path / "m.skmtl")
    assert not any(tmp_path.iterdir())


def test_value_a_model_file_cannot_store(tmp_path):
    days = pd.to_datetime(["2024-01-01", "2024-01-02"] * 20)
    X = pd.DataFrame({"day": days, "x": np.arange(40.0)})
    clf = MultiTaskClassifier(categorical_features=["day"], min_frequency=1, **FAST)
    clf.fit(X, np.arange(40) % 2)
    with pytest.raises(TypeError, match=r"cannot store a pandas Index of dtype datetime64"):
        save_model(clf, tmp_path / "m.skmtl")
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "scoring", ["mean_roc_auc", metrics.make_task_scorer("roc_auc", "buy", single_class="nan")],
    ids=["name", "skmtl-scorer"],
)
def test_scoring_is_stored(scoring, tmp_path):
    X, y = make_frame()
    clf = MultiTaskClassifier(scoring=scoring, early_stopping=True, **FAST).fit(X, y)
    restored = _roundtrip(clf, tmp_path)
    assert repr(restored.scoring) == repr(scoring)
    assert restored.validation_scores_ == clf.validation_scores_
    if not isinstance(scoring, str):
        assert vars(restored.scoring) == vars(scoring)


def test_a_scoring_function_cannot_be_stored(tmp_path):
    X, y = make_frame()
    clf = MultiTaskClassifier(scoring=lambda est, X, y: 0.0, early_stopping=False, **FAST)
    clf.fit(X, y)
    with pytest.raises(TypeError, match=r"scoring=<function .*> is a callable that a model "
                                        r"file cannot store"):
        save_model(clf, tmp_path / "m.skmtl")
    assert not any(tmp_path.iterdir())
    save_model(clf.set_params(scoring="loss"), tmp_path / "m.skmtl")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_gpu_trained_model_loads_on_cpu(tmp_path):
    X, y = make_frame()
    clf = MultiTaskClassifier(**{**FAST, "device": "cuda"}).fit(X, y)
    restored = _roundtrip(clf, tmp_path)
    assert next(restored.module_.parameters()).device.type == "cpu"
    for a, b in zip(_proba_list(clf, X), _proba_list(restored, X)):
        np.testing.assert_allclose(a, b, atol=1e-6)


# ------------------------------------------------------------------ older files
V1_DIR = __import__("pathlib").Path(__file__).resolve().parent / "golden" / "model_files_v1"


def _fixture_script(name):
    """The script that wrote a directory of old model files (kept beside them)."""
    sys.path.insert(0, str(V1_DIR.parent))
    try:
        return importlib.import_module(name)
    finally:
        sys.path.pop(0)


def _assert_predicts_as_recorded(folder, name, X):
    expected = np.load(folder / "expected_proba.npz")
    restored = load_model(folder / f"{name}.skmtl")
    for t, proba in enumerate(_proba_list(restored, X)):
        np.testing.assert_allclose(proba, expected[f"{name}/{t}"], rtol=0, atol=1e-6)
    return restored


@pytest.mark.parametrize("name", ["ple_cgc", "mmoe_groups_funnel", "aitm_funnel", "single_task"])
def test_format_version_1_files_still_load(name):
    """Files written by skmtl at d8b89b1 (tests/golden/make_model_files_v1.py) load and predict."""
    X, _ = _fixture_script("make_model_files_v1").data()
    _assert_predicts_as_recorded(V1_DIR, name, X)


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda o: o.update(gate_temperature=-1.0), r"gate_temperature"),
        (lambda o: o.update(gate_temperature=True), r"gate_temperature=True"),
        (lambda o: o.update(dropout=-1.0), r"dropout"),
        (lambda o: o.update(expert_layer_sizes={"$tuple": [8, 0]}), r"positive integers"),
        (lambda o: o.update(n_experts=2.5), r"n_experts"),
        (lambda o: o.update(tower_layer_sizes=[{"$tuple": [4]}]),
         r"1 tower shapes were given for 2 task"),
        (lambda o: o.update(tower_layer_sizes=[{"$tuple": [4]}, {"$tuple": [0]}]),
         r"positive integers"),
        (lambda o: o.update(tower_layer_sizes=[4, {"$tuple": [4]}]), r"not a mix"),
        (lambda o: o.update(tower_layer_sizes={"$tuple": [{"$tuple": [4]}, {"$tuple": [4]}]}),
         r"per-task tower_layer_sizes must be a list"),
    ],
    ids=["negative-temperature", "bool-temperature", "negative-dropout", "zero-layer",
         "float-experts", "towers-too-few", "towers-zero-layer", "towers-mixed",
         "towers-tuple"],
)
def test_invalid_network_options_are_refused(saved, change, match):
    """The options decide the rebuilt network: they obey the parameters' rules."""
    _, path, _ = saved
    document = json.loads(_members(path)["model.json"])
    change(document["network"]["options"])
    _rewrite(path, document)
    with pytest.raises(ValueError, match=r"malformed network.*" + match):
        load_model(path)


def test_invalid_network_sizes_are_refused(saved):
    _, path, _ = saved
    document = json.loads(_members(path)["model.json"])
    document["network"]["embedding_dim"] = 8.7  # was read as 8
    _rewrite(path, document)
    with pytest.raises(ValueError, match=r"embedding_dim must be an integer >= 1; got 8.7"):
        load_model(path)


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda n: n.update(params=[1, 2]), r"malformed network.*params must be a dict"),
        (lambda n: n.update(architecture="transformer"), r"names architecture 'transformer'"),
        (lambda n: n["params"].update(embedding_dim=8.7), r"embedding_dim must be an integer"),
    ],
    ids=["params-list", "architecture", "float-embedding-dim"],
)
def test_malformed_format_1_network(change, match, tmp_path):
    path = tmp_path / "old.skmtl"
    path.write_bytes((V1_DIR / "ple_cgc.skmtl").read_bytes())
    document = json.loads(_members(path)["model.json"])
    change(document["network"])
    _rewrite(path, document)
    with pytest.raises(ValueError, match=match):
        load_model(path)


def test_architecture_set_to_a_user_module_after_fit(tmp_path):
    """The parameter names a user class, the network is built in: both load with module_class."""
    X, y = make_frame()
    clf = MultiTaskClassifier(**FAST).fit(X, y).set_params(architecture=LinearHeads)
    path = tmp_path / "m.skmtl"
    save_model(clf, path)
    restored = load_model(path, module_class=LinearHeads)
    assert restored.architecture is LinearHeads and restored.network_spec_["architecture"] == "mmoe"
    assert_same_model(clf, restored, X)


def test_estimator_without_network_spec_cannot_be_saved_or_trained(tmp_path):
    """As pickled by an skmtl from before network_spec_ (pickles are same-version only)."""
    X, y = make_frame()
    clf = MultiTaskClassifier(**FAST).fit(X, y)
    del clf.network_spec_
    with pytest.raises(ValueError, match=r"no network_spec_: it was pickled by an older skmtl"):
        clf.partial_fit(X, y)
    with pytest.raises(ValueError, match=r"has no network_spec_"):
        save_model(clf, tmp_path / "m.skmtl")


V2_DIR = V1_DIR.parent / "model_files_v2"


@pytest.mark.parametrize("name", ["mmoe_groups_funnel", "single_task_dropout", "moe_continuous_only"])
def test_format_version_2_files_still_load(name):
    """Files written by skmtl at 7832ca4 (tests/golden/make_model_files_v2.py) load and predict."""
    script = _fixture_script("make_model_files_v2")
    X, y = script.data()
    X = script.inputs(name, X)
    restored = _assert_predicts_as_recorded(V2_DIR, name, X)
    # Written before ema_epochs existed, by an skmtl that kept the weights themselves: a
    # warm_start continuation trains as that skmtl did.
    assert restored.get_params()["ema_epochs"] is None
    # A loaded old model goes on training (the encoder and the network are usable as they are).
    n_iter = restored.n_iter_
    restored.set_params(max_iter=1).partial_fit(X.iloc[:50], y.iloc[:50])
    assert restored.n_iter_ == n_iter + 1 and np.isfinite(restored.loss_curve_[-1])
