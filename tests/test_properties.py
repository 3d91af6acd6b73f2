"""Property-based tests: random tables and targets either fit cleanly or fail with a clear error.

Every example either fits and returns finite probabilities that sum to 1 per
task (also for categories never seen in fit, and after a save/load round
trip), or raises ValueError/TypeError with a message. A torch internal error
(RuntimeError, IndexError, KeyError, ...) fails the test.

The settings are fixed and derandomized (no example database), so CI runs the
same examples every time (set SKMTL_HYPOTHESIS_EXAMPLES for a longer
search); ``pytest --hypothesis-show-statistics`` shows how
many examples fitted and which errors the others raised.
"""

import copy
import os
import tempfile
import warnings

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from skmtl import MultiTaskClassifier, load_model, save_model
from skmtl.nn import ARCHITECTURES

# A deeper local search: SKMTL_HYPOTHESIS_EXAMPLES=1000 pytest tests/test_properties.py
MAX_EXAMPLES = int(os.environ.get("SKMTL_HYPOTHESIS_EXAMPLES", "40"))
PROPERTY_SETTINGS = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
UNSEEN = "zz-never-seen"


@st.composite
def columns(draw, n):
    """One column of length ``n``: float, int, bool, string, object or category."""
    kind = draw(st.sampled_from(["float", "int", "bool", "string", "object", "category"]))
    if kind == "float":  # now and then a NaN or inf, which fit must refuse
        finite = st.floats(-1e6, 1e6, width=32)
        bad = st.sampled_from([np.nan, np.inf])
        elements = st.one_of(finite, bad) if draw(st.integers(0, 9)) == 0 else finite
        return kind, draw(hnp.arrays(np.float64, n, elements=elements))
    if kind == "int":
        return kind, draw(hnp.arrays(np.int64, n, elements=st.integers(-(2**31), 2**31)))
    if kind == "bool":
        return kind, draw(hnp.arrays(np.bool_, n))
    levels = draw(st.lists(st.text(max_size=3), min_size=1, max_size=4, unique=True))
    values = draw(st.lists(st.sampled_from(levels), min_size=n, max_size=n))
    missing = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    values = [None if m else v for v, m in zip(values, missing)]
    if kind == "string":
        return kind, pd.array(values, dtype="string")
    if kind == "object":
        return kind, pd.Series(values, dtype=object)
    extra = draw(st.lists(st.text(max_size=3), max_size=2))
    categories = list(dict.fromkeys(levels + extra))
    return kind, pd.Categorical(values, categories=categories)


@st.composite
def labels(draw, n):
    """One task's labels: 2-3 int, bool or string classes, some of them unknown."""
    kind = draw(st.sampled_from(["int", "bool", "str", "Int64", "category"]))
    pool = {"bool": [False, True], "str": ["no", "yes", "maybe"], "category": ["a", "b", "c"]}
    values = draw(st.lists(st.sampled_from(pool.get(kind, [0, 1, 7])), min_size=n, max_size=n))
    unknown = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    if kind == "Int64":  # pandas nullable integers, unknown as pd.NA
        return pd.array([pd.NA if u else v for v, u in zip(values, unknown)], dtype="Int64")
    if kind == "category":
        return pd.Categorical([None if u else v for v, u in zip(values, unknown)])
    if draw(st.booleans()):  # about half the other tasks have unknown labels
        if kind == "int":
            return np.array([np.nan if u else v for v, u in zip(values, unknown)], dtype=float)
        return np.array([None if u else v for v, u in zip(values, unknown)], dtype=object)
    return np.array(values)


@st.composite
def problems(draw):
    n = draw(st.integers(2, 30))
    n_features = draw(st.integers(1, 4))
    X = pd.DataFrame({f"f{j}": draw(columns(n))[1] for j in range(n_features)})
    n_tasks = draw(st.integers(1, 3))
    y = pd.DataFrame({f"t{t}": draw(labels(n)) for t in range(n_tasks)})
    if n_tasks == 1 and draw(st.booleans()):
        y = y["t0"].to_numpy()  # 1-D y
    elif all(X[c].dtype.kind in "fib" for c in X) and draw(st.booleans()):
        X = X.to_numpy()  # a plain numeric array
    params = dict(
        architecture=draw(st.sampled_from(sorted(ARCHITECTURES))),
        min_frequency=draw(st.integers(1, 3)),
        max_categories=draw(st.sampled_from([None, 1, 3])),
        embedding_dim=draw(st.sampled_from([2, "auto"])),
        expert_layer_sizes=(4,),
        tower_layer_sizes=draw(st.sampled_from([(), (3,)])),
        n_experts=2,
        dropout=draw(st.sampled_from([0.0, 0.3])),
        batch_size=draw(st.sampled_from(["auto", 1, 7])),
        class_weight=draw(st.sampled_from([None, "balanced"])),
        max_iter=draw(st.integers(1, 2)),
        early_stopping=False,
        random_state=0,
        device="cpu",
    )
    return X, y, params


def _with_unseen_categories(X):
    """``X`` with every string/object/category value replaced by one never seen in fit."""
    if not isinstance(X, pd.DataFrame):
        return X
    X = X.copy()
    for name in X.columns:
        column = X[name]
        if isinstance(column.dtype, pd.CategoricalDtype):
            categories = [*column.cat.categories, UNSEEN]
            X[name] = pd.Categorical([UNSEEN] * len(column), categories=categories)
        elif column.dtype.kind == "O" or isinstance(column.dtype, pd.StringDtype):
            X[name] = pd.Series([UNSEEN] * len(column), dtype=column.dtype, index=column.index)
    return X


def _check_probabilities(clf, proba, n):
    proba = proba if isinstance(proba, list) else [proba]
    classes = clf.classes_ if isinstance(clf.classes_, list) else [clf.classes_]
    assert len(proba) == len(classes)
    for p, task_classes in zip(proba, classes):
        assert p.shape == (n, len(task_classes))
        if len(task_classes) < 2:  # set aside in fit: its one observed class, or no column
            assert np.array_equal(p, np.ones((n, len(task_classes))))
            continue
        assert np.all(np.isfinite(p)) and np.all(p >= 0)
        np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=0, atol=1e-9)


def _same(before, after):
    if isinstance(before, pd.DataFrame):
        pd.testing.assert_frame_equal(after, before, check_exact=True)
    else:  # object arrays may hold NaN, which == does not match with itself
        assert after.dtype == before.dtype and after.shape == before.shape
        missing = pd.isna(before)
        assert np.array_equal(pd.isna(after), missing)
        assert np.array_equal(after[~missing], before[~missing])


@PROPERTY_SETTINGS
@given(problems())
def test_fit_gives_valid_probabilities_or_a_clear_error(problem):
    X, y, params = problem
    X_before, y_before = copy.deepcopy(X), copy.deepcopy(y)
    clf = MultiTaskClassifier(**params)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            clf.fit(X, y)
    except (ValueError, TypeError) as exc:
        assert str(exc).strip(), f"{type(exc).__name__} without a message"
        event(f"refused: {type(exc).__name__}: {str(exc)[:40]}")
        return
    finally:
        _same(X_before, X)
        _same(y_before, y)
    event("fitted")
    n = X.shape[0]
    proba = clf.predict_proba(X)
    _check_probabilities(clf, proba, n)
    _check_probabilities(clf, clf.predict_proba(_with_unseen_categories(X)), n)

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.skmtl")
        save_model(clf, path)
        restored = load_model(path)
    again = restored.predict_proba(X)
    for a, b in zip(*(p if isinstance(p, list) else [p] for p in (proba, again))):
        assert np.array_equal(a, b)
    assert np.array_equal(clf.predict(X), restored.predict(X))
