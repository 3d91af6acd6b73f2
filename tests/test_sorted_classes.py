"""``classes_`` stay sorted whatever ``pos_label`` declares, as in every scikit-learn classifier.

Before, ``pos_label`` put a declared task's classes as ``[negative, positive]``:
with a positive class that sorts first (``"clicked"`` before ``"not_clicked"``,
1 before 2) scikit-learn's scorers, which take ``predict_proba[:, -1]`` as the
greater label's probability, read P(clicked) as P(not_clicked): ROC AUC 0.066
for a model whose AUC is 0.934, and a grid search that picks the worst model.
Training still runs in the order where the declared positive is class 1, so the
model is, bit for bit, the one fitted on the 0/1 labels.
"""

from __future__ import annotations

import pickle
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import assert_onnx_matches_predict_proba
from sklearn.metrics import average_precision_score, get_scorer, log_loss, roc_auc_score
from sklearn.model_selection import KFold, cross_val_score

from skmtl import MultiTaskClassifier, load_model, metrics, save_model
from skmtl.datasets import make_ad_funnel

SMALL = {"expert_layer_sizes": (16,), "tower_layer_sizes": (8,), "n_experts": 2, "max_iter": 5,
         "batch_size": 64, "learning_rate_init": 1e-2, "early_stopping": False, "random_state": 0}
FIXTURES = Path(__file__).resolve().parent / "golden" / "model_files_pos_label"


@pytest.fixture(scope="module")
def clicks():
    """1,000 rows with a strong click signal; labels 0/1, strings and {1, 2} (positive first)."""
    rng = np.random.RandomState(0)
    X = pd.DataFrame({"a": rng.randn(1000), "b": rng.randn(1000), "x": rng.rand(1000) < 0.3})
    clicked = (2 * X["a"] + X["x"] + rng.randn(1000) > 0).astype(int)
    bought = (X["a"] - 2 * X["b"] + rng.randn(1000) > 0).astype(int)
    y01 = pd.DataFrame({"click": clicked, "buy": bought})
    strings = pd.DataFrame({"click": np.where(clicked == 1, "clicked", "not_clicked"),
                            "buy": np.where(bought == 1, 1, 2)})
    return X, y01, strings


def test_sklearn_scorers_read_the_sorted_columns(clicks):
    X, y01, strings = clicks
    y = strings["click"]
    clf = MultiTaskClassifier(**SMALL, pos_label="clicked").fit(X, y)
    assert clf.classes_.tolist() == ["clicked", "not_clicked"]
    proba = clf.predict_proba(X)
    # Training is the 0/1 model's, bit for bit: P(clicked) is its P(1).
    reference = MultiTaskClassifier(**SMALL).fit(X, y01["click"])
    np.testing.assert_array_equal(proba, reference.predict_proba(X)[:, ::-1])
    auc = roc_auc_score(y == "clicked", proba[:, 0])
    assert auc > 0.85  # before the fix, the scorer gave 1 - auc
    assert get_scorer("roc_auc")(clf, X, y) == pytest.approx(auc)
    assert get_scorer("neg_log_loss")(clf, X, y) == pytest.approx(
        -log_loss(y, proba, labels=["clicked", "not_clicked"]))
    assert -get_scorer("neg_log_loss")(clf, X, y) < 0.5  # ln 2 for a coin
    # (sklearn's "average_precision" scorer refuses string labels, for any classifier.)
    folds = KFold(2, shuffle=True, random_state=0)
    by_hand = []
    for train, test in folds.split(X):
        fold = MultiTaskClassifier(**SMALL, pos_label="clicked").fit(X.iloc[train], y.iloc[train])
        p = fold.predict_proba(X.iloc[test])[:, list(fold.classes_).index("clicked")]
        by_hand.append(roc_auc_score(y.iloc[test] == "clicked", p))
    np.testing.assert_allclose(
        cross_val_score(MultiTaskClassifier(**SMALL, pos_label="clicked"), X, y,
                        scoring="roc_auc", cv=folds), by_hand)
    assert min(by_hand) > 0.85


def test_numbers_whose_declared_positive_sorts_first(clicks):
    X, y01, strings = clicks
    y = strings["buy"]  # 1 bought, 2 not
    clf = MultiTaskClassifier(**SMALL, pos_label=1).fit(X, y)
    reference = MultiTaskClassifier(**SMALL).fit(X, y01["buy"])
    assert clf.classes_.tolist() == [1, 2]
    proba = clf.predict_proba(X)
    np.testing.assert_array_equal(proba, reference.predict_proba(X)[:, ::-1])
    np.testing.assert_array_equal(np.log(proba), clf.predict_log_proba(X))
    np.testing.assert_array_equal(clf.predict(X), np.where(reference.predict(X) == 1, 1, 2))
    assert clf.score(X, y) == reference.score(X, y01["buy"])
    auc = roc_auc_score(y == 1, proba[:, 0])
    assert auc > 0.85 and get_scorer("roc_auc")(clf, X, y) == pytest.approx(auc)
    # sklearn's average precision is of pos_label=1 (its default), found by column lookup.
    assert get_scorer("average_precision")(clf, X, y) == pytest.approx(
        average_precision_score(y == 1, proba[:, 0]))


def test_multi_output_with_a_pos_label_dict_is_the_0_1_model(clicks):
    """Per task: sorted classes_, the 0/1 model's columns swapped, its labels and its scores."""
    X, y01, strings = clicks
    y = strings.assign(other=y01["click"])
    clf = MultiTaskClassifier(**SMALL, pos_label={"click": "clicked", "buy": 1}).fit(X, y)
    reference = MultiTaskClassifier(**SMALL).fit(X, y01.assign(other=y01["click"]))
    assert [c.tolist() for c in clf.classes_] == [["clicked", "not_clicked"], [1, 2], [0, 1]]
    assert [c.tolist() for c in clf._label_order_] == [["not_clicked", "clicked"], [2, 1], [0, 1]]
    for t, (got, expected) in enumerate(zip(clf.predict_proba(X), reference.predict_proba(X))):
        np.testing.assert_array_equal(got, expected if t == 2 else expected[:, ::-1])
    predicted, expected = clf.predict(X), reference.predict(X)
    np.testing.assert_array_equal(predicted[:, 0] == "clicked", expected[:, 0] == 1)
    np.testing.assert_array_equal(predicted[:, 1] == 1, expected[:, 1] == 1)
    assert clf.score(X, y) == reference.score(X, y01.assign(other=y01["click"]))
    # skmtl's scorers score the declared positive class, as before: the 0/1 model's scores.
    for name in ("mean_roc_auc", "mean_average_precision", "neg_mean_log_loss"):
        assert metrics.get_scorer(name)(clf, X, y) == pytest.approx(
            metrics.get_scorer(name)(reference, X, y01.assign(other=y01["click"])), abs=1e-12)
    # The functions: pos_label says which class average precision is about.
    declared = metrics.per_task_scores("average_precision", y, clf.predict_proba(X),
                                       classes=clf.classes_, pos_label={"click": "clicked", "buy": 1})
    np.testing.assert_allclose(
        declared, metrics.per_task_scores("average_precision", y01.assign(other=y01["click"]),
                                          reference.predict_proba(X)), rtol=1e-12)
    greater = metrics.per_task_scores("average_precision", y, clf.predict_proba(X),
                                      classes=clf.classes_)
    assert greater[0] == pytest.approx(
        average_precision_score(y["click"] == "not_clicked", clf.predict_proba(X)[0][:, 1]))


def _string_funnel(target):
    return pd.DataFrame({
        "click": np.where(target["click"] == 1, "click", "no_click"),
        # unknown after a non-click (None), as a funnel allows
        "conversion": np.where(target["click"] == 0, None,
                               np.where(target["conversion"] == 1, "conv", "no_conv")),
    })


def test_string_funnel_scores_are_the_0_1_models():
    funnel = make_ad_funnel(1500, ctr=0.3, cvr=0.4, n_users=100, n_items=50, random_state=0)
    X, y01 = funnel.data, funnel.target
    y = _string_funnel(y01)
    positive = {"click": "click", "conversion": "conv"}
    params = dict(SMALL, funnel=("click", "conversion"), max_iter=3)
    clf = MultiTaskClassifier(**params, pos_label=positive).fit(X, y)
    reference = MultiTaskClassifier(**params).fit(X, y01)
    assert [c.tolist() for c in clf.classes_] == [["click", "no_click"], ["conv", "no_conv"]]
    for name in ("mean_roc_auc", "mean_average_precision", "neg_mean_log_loss"):
        assert metrics.get_scorer(name)(clf, X, y) == pytest.approx(
            metrics.get_scorer(name)(reference, X, y01), abs=1e-12)
    for metric in ("roc_auc", "average_precision", "log_loss"):
        expected = metrics.per_task_scores(metric, y01, reference.predict_proba(X),
                                           funnel=reference.funnel_)
        got = metrics.per_task_scores(metric, y, clf.predict_proba(X), classes=clf.classes_,
                                      funnel=clf.funnel_, pos_label=positive)
        np.testing.assert_allclose(got, expected, rtol=1e-12)
    # Without pos_label a string funnel's negative class is unknown: refused, not guessed.
    with pytest.raises(ValueError, match=r"positive class of task 'click'.*pos_label"):
        metrics.per_task_scores("log_loss", y, clf.predict_proba(X), classes=clf.classes_,
                                funnel=clf.funnel_)


def test_pickle_model_file_and_onnx_agree_with_predict_proba(clicks, tmp_path):
    X, _, strings = clicks
    clf = MultiTaskClassifier(**SMALL, pos_label={"click": "clicked", "buy": 1}).fit(X, strings)
    expected = clf.predict_proba(X)
    state = clf.__getstate__()  # as every skmtl pickled it: classes_ in the training order
    assert "_label_order_" not in state
    assert [c.tolist() for c in state["classes_"]] == [["not_clicked", "clicked"], [2, 1]]
    save_model(clf, tmp_path / "m.skmtl")
    for copy in (pickle.loads(pickle.dumps(clf)), load_model(tmp_path / "m.skmtl")):
        assert [c.tolist() for c in copy.classes_] == [["clicked", "not_clicked"], [1, 2]]
        for got, want in zip(copy.predict_proba(X), expected):
            np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(copy.predict(X), clf.predict(X))
    # A continued fit keeps the training order (class 1 the declared positive).
    loaded = load_model(tmp_path / "m.skmtl")
    loaded.partial_fit(X, strings)
    assert [c.tolist() for c in loaded._label_order_] == [["not_clicked", "clicked"], [2, 1]]
    assert_onnx_matches_predict_proba(clf, X)


def test_a_file_written_before_classes_were_sorted_loads_sorted():
    """tests/golden/make_model_files_pos_label.py, run by skmtl at 8aa754a."""
    import importlib
    import sys

    sys.path.insert(0, str(FIXTURES.parent))
    try:
        script = importlib.import_module("make_model_files_pos_label")
    finally:
        sys.path.pop(0)
    X, y = script.data()
    recorded = np.load(FIXTURES / "recorded.npz")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = load_model(FIXTURES / "string_funnel.skmtl")
    assert [c.astype(str).tolist() for c in clf.classes_] == [
        ["click", "no_click"], ["conv", "no_conv"], ["1", "2"]]
    for t, proba in enumerate(clf.predict_proba(X)):
        old_classes = recorded[f"classes/{t}"].tolist()
        assert old_classes[1] in ("click", "conv", "1")  # written [negative, positive]
        columns = [old_classes.index(str(c)) for c in clf.classes_[t]]
        np.testing.assert_allclose(proba, recorded[f"proba/{t}"][:, columns], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(clf.predict(X).astype(str), recorded["predict"])
    assert metrics.get_scorer("mean_roc_auc")(clf, X, y) > 0.5


def test_predict_breaks_exact_ties_as_the_argmax_of_predict_proba():
    """With every logit 0, predict gave the training order's first class ('not_clicked')."""
    rng = np.random.RandomState(0)
    X = pd.DataFrame({"a": rng.randn(200), "b": rng.randn(200)})
    y = pd.Series(np.where(X["a"] > 0, "clicked", "not_clicked"))
    clf = MultiTaskClassifier(max_iter=2, random_state=0, pos_label="clicked").fit(X, y)
    with torch.no_grad():
        for parameter in clf.module_.parameters():
            parameter.zero_()
    proba = clf.predict_proba(X)
    assert np.all(proba == 0.5)
    np.testing.assert_array_equal(clf.predict(X), clf.classes_[proba.argmax(axis=1)])
