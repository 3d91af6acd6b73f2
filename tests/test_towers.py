"""Per-task tower shapes: ``tower_layer_sizes={task: sizes}`` (issue 16, item 2)."""

import copy
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV, KFold

from skmtl import MultiTaskClassifier, load_model, save_model
from skmtl._network_spec import DEFAULT_TOWER_LAYER_SIZES, resolve_tower_layer_sizes
from skmtl.nn import (
    ARCHITECTURES,
    TaskTowerGroups,
    TaskTowers,
    init_parameters,
    task_towers,
    tower_shapes,
)

FAST = dict(
    max_iter=2, random_state=0, device="cpu", expert_layer_sizes=(8,), n_experts=2,
    early_stopping=False,
)
TASKS = ["click", "buy", "segment"]


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    X = pd.DataFrame(rng.normal(size=(150, 4)), columns=["a", "b", "c", "d"])
    y = pd.DataFrame({
        "click": (X["a"] > 0).astype(int),
        "buy": (X["b"] + X["a"] > 0).astype(int),
        "segment": np.array(["x", "y", "z"])[rng.randint(0, 3, 150)],
    })
    return X, y


def fit(X, y, architecture="mmoe", **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ConvergenceWarning after 2 epochs
        return MultiTaskClassifier(architecture, **{**FAST, **params}).fit(X, y)


# ------------------------------------------------------------- the blocks
def test_tower_shapes_reads_one_shape_or_one_per_task():
    assert tower_shapes((8, 4), 3) == [(8, 4)] * 3
    assert tower_shapes((), 2) == [(), ()]
    assert tower_shapes([(8,), [4, 2]], 2) == [(8,), (4, 2)]
    with pytest.raises(ValueError, match="not a mix"):
        tower_shapes([8, (4,)], 2)
    with pytest.raises(ValueError, match="1 tower shapes were given for 2 task"):
        tower_shapes([(8,)], 2)


def test_equal_shapes_build_the_shared_shape_module():
    uniform, per_task = task_towers(6, [1, 3], (4,)), task_towers(6, [1, 3], [(4,), (4,)])
    assert type(uniform) is type(per_task) is TaskTowers
    assert repr(uniform) == repr(per_task)


@pytest.mark.parametrize("shared_input", [True, False], ids=["shared-input", "per-task-input"])
def test_towers_of_different_shapes(shared_input):
    """Tasks 0 and 2 share a shape (one group, not adjacent), task 1 has its own."""
    towers = task_towers(5, [1, 3, 1], [(4,), (6, 2), (4,)])
    assert isinstance(towers, TaskTowerGroups) and towers.tasks == [[0, 2], [1]]
    assert [g.hidden.out_features for g in towers.groups] == [4, 2]
    init_parameters(towers, torch.Generator().manual_seed(0))
    x = torch.randn(7, 5) if shared_input else torch.randn(3, 7, 5)
    logits = towers(x)
    assert [tuple(t.shape) for t in logits] == [(7,), (7, 3), (7,)]
    # Each task's logits are its own tower's output on its own input.
    group, slot = towers.groups[0], 1  # task 2 is the second task of group 0
    task_input = x if shared_input else x[2]
    hidden = torch.relu(task_input @ group.hidden.layers[0].weight[slot] + group.hidden.layers[0].bias[slot])
    expected = hidden @ group.head.weight[slot] + group.head.bias[slot]
    torch.testing.assert_close(logits[2], expected[:, 0])
    sum(t.sum() for t in logits).backward()
    assert all(p.grad is not None for p in towers.parameters())


# ------------------------------------------------------ the parameter
def test_resolution_by_name_or_index_with_a_default():
    resolve = lambda value: resolve_tower_layer_sizes(value, TASKS)
    default = DEFAULT_TOWER_LAYER_SIZES
    assert resolve((16, 8)) == (16, 8)
    assert resolve({"buy": (64, 32)}) == [default, (64, 32), default]
    assert resolve({1: [64, 32], "segment": 4}) == [default, (64, 32), (4,)]
    assert resolve({"click": (), "buy": (), "segment": ()}) == ()  # all equal: one shape
    assert resolve({}) == default
    assert MultiTaskClassifier().tower_layer_sizes == DEFAULT_TOWER_LAYER_SIZES


@pytest.mark.parametrize(
    "value, match",
    [
        ({"view": (8,)}, r"tower_layer_sizes names task 'view', which is not one of the tasks"),
        ({3: (8,)}, r"tower_layer_sizes names task 3"),
        ({"buy": (8,), 1: (4,)}, r"tower_layer_sizes names task 'buy' twice"),
        ({"buy": (8, 0)}, r"tower_layer_sizes\['buy'\] must contain positive integers"),
        ({"buy": (2.5,)}, r"tower_layer_sizes\['buy'\] must contain positive integers"),
        ([(8,), (4,), (4,)], r"for a shape per task pass a dict"),
    ],
    ids=["unknown-name", "index-out-of-range", "named-twice", "zero", "float", "nested-list"],
)
def test_bad_per_task_values_are_clear_errors(data, value, match):
    X, y = data
    clf = MultiTaskClassifier(tower_layer_sizes=value, **FAST)
    with pytest.raises(ValueError, match=match):
        clf.fit(X, y)
    assert not hasattr(clf, "module_")


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_every_architecture_builds_the_towers_it_is_given(architecture, data):
    X, y = data
    clf = fit(X, y, architecture, tower_layer_sizes={"buy": (6, 3), "segment": ()})
    towers = clf.module_.body.towers
    assert clf.network_spec_["options"]["tower_layer_sizes"] == [(32,), (6, 3), ()]
    assert isinstance(towers, TaskTowerGroups) and towers.tasks == [[0], [1], [2]]
    assert [g.hidden.out_features for g in towers.groups] == [32, 3, towers.groups[2].hidden.in_features]
    assert [p.shape for p in clf.predict_proba(X.iloc[:4])] == [(4, 2), (4, 2), (4, 3)]


def test_a_dict_that_says_the_shared_shape_is_the_shared_shape_model(data):
    """Keys by name or by index, or all tasks named alike: the very model of the plain value."""
    X, y = data
    plain = fit(X, y, tower_layer_sizes=(32,))
    for value in ({}, {"buy": (32,)}, {0: [32], "buy": (32,), 2: 32}):
        same = fit(X, y, tower_layer_sizes=value)
        assert same.network_spec_ == plain.network_spec_
        for a, b in zip(plain.predict_proba(X), same.predict_proba(X)):
            np.testing.assert_array_equal(a, b)


def test_named_and_indexed_keys_give_the_same_model(data):
    X, y = data
    by_name = fit(X, y, tower_layer_sizes={"buy": (8,)})
    by_index = fit(X, y, tower_layer_sizes={1: (8,)})
    for a, b in zip(by_name.predict_proba(X), by_index.predict_proba(X)):
        np.testing.assert_array_equal(a, b)


def test_the_parameter_is_never_changed_and_clones(data):
    X, y = data
    value = {"buy": [8, 4], 2: (4,)}
    before = copy.deepcopy(value)
    clf = MultiTaskClassifier(tower_layer_sizes=value, **FAST)
    fit_value = clf.get_params()["tower_layer_sizes"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
    assert clf.tower_layer_sizes is value and value == before and value["buy"] == [8, 4]
    assert fit_value is value
    cloned = clone(clf)
    assert cloned.tower_layer_sizes == value and cloned.tower_layer_sizes is not value


def test_grid_search_over_tower_shapes(data):
    X, y = data
    grid = {"tower_layer_sizes": [(4,), {"buy": (8, 4)}, {"click": (), "segment": (8,)}]}
    before = copy.deepcopy(grid)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        search = GridSearchCV(MultiTaskClassifier(**FAST), grid, cv=KFold(2)).fit(X, y)
    assert grid == before
    assert len(search.cv_results_["params"]) == 3
    assert search.best_estimator_.tower_layer_sizes in grid["tower_layer_sizes"]


def test_warm_start_refuses_other_towers_and_accepts_the_same_said_otherwise(data):
    X, y = data
    clf = fit(X, y, tower_layer_sizes={"buy": (8,)}, warm_start=True)
    clf.set_params(tower_layer_sizes={1: [8]})  # the same towers, keyed by index
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
    assert clf.n_iter_ == 4
    clf.set_params(tower_layer_sizes={"buy": (16,)})
    with pytest.raises(ValueError, match=r"tower_layer_sizes: \[\(32,\), \(8,\), \(32,\)\] -> "
                                         r"\[\(32,\), \(16,\), \(32,\)\]"):
        clf.fit(X, y)
    clf.set_params(tower_layer_sizes=(32,))
    with pytest.raises(ValueError, match=r"tower_layer_sizes: .* -> \(32,\)"):
        clf.fit(X, y)


@pytest.mark.parametrize("architecture", ["single_task", "mmoe"])
def test_model_file_round_trip(architecture, data, tmp_path):
    X, y = data
    clf = fit(X, y, architecture, tower_layer_sizes={"click": (4,), "segment": (4,)})
    assert clf.module_.body.towers.tasks == [[0, 2], [1]]
    save_model(clf, tmp_path / "model.skmtl")
    restored = load_model(tmp_path / "model.skmtl")
    assert restored.network_spec_ == clf.network_spec_
    assert restored.tower_layer_sizes == clf.tower_layer_sizes
    for a, b in zip(clf.predict_proba(X), restored.predict_proba(X)):
        np.testing.assert_array_equal(a, b)
