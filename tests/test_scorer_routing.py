"""skmtl.metrics scorers under scikit-learn's metadata routing."""

import pickle
import warnings

import numpy as np
import pytest
import sklearn
from sklearn.base import clone
from sklearn.exceptions import UnsetMetadataPassedError
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, KFold, cross_validate

from skmtl import MultiTaskClassifier, metrics

TINY = {"max_iter": 3, "expert_layer_sizes": (4,), "tower_layer_sizes": (4,), "random_state": 0}
CV = KFold(2)


@pytest.fixture
def data():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(60, 3))
    y = np.column_stack([X[:, 0] + rng.normal(size=60) > 0, X[:, 1] + rng.normal(size=60) > 0])
    return X, y.astype(int), rng.uniform(0.1, 3.0, size=60)


def _weighted_mean_auc(estimator, X, y, w):
    proba = estimator.predict_proba(X)
    return np.mean([roc_auc_score(y[:, t], proba[t][:, 1], sample_weight=w) for t in range(2)])


def _hand_scores(X, y, w, fit_weight=None):
    """Weighted mean ROC AUC of each CV fold, from the folds' own models."""
    with sklearn.config_context(enable_metadata_routing=False):
        folds = cross_validate(
            MultiTaskClassifier(**TINY), X, y, cv=CV, scoring=metrics.get_scorer("mean_roc_auc"),
            return_estimator=True, return_indices=True,
            params=None if fit_weight is None else {"sample_weight": fit_weight},
        )
    tests = folds["indices"]["test"]
    weighted = [_weighted_mean_auc(e, X[i], y[i], w[i]) for e, i in zip(folds["estimator"], tests)]
    return np.array(weighted), folds["test_score"]


def test_requested_weight_reaches_the_metric(data):
    X, y, w = data
    expected, unweighted = _hand_scores(X, y, w)
    assert not np.allclose(expected, unweighted)  # the weights change the score
    with sklearn.config_context(enable_metadata_routing=True):
        scorer = metrics.get_scorer("mean_roc_auc").set_score_request(sample_weight=True)
        clf = MultiTaskClassifier(**TINY).set_fit_request(sample_weight=False)
        result = cross_validate(clf, X, y, cv=CV, scoring=scorer, params={"sample_weight": w})
    np.testing.assert_allclose(result["test_score"], expected)


def test_unrequested_weight_raises(data):
    X, y, w = data
    with sklearn.config_context(enable_metadata_routing=True):
        clf = MultiTaskClassifier(**TINY).set_fit_request(sample_weight=True)
        unset = r"\[sample_weight\].*skmtl.metrics.make_task_scorer\('roc_auc'\).score"
        with pytest.raises(UnsetMetadataPassedError, match=unset):
            cross_validate(
                clf, X, y, cv=CV, scoring=metrics.get_scorer("mean_roc_auc"),
                params={"sample_weight": w},
            )
        search = GridSearchCV(
            clf, {"architecture": ["moe"]}, cv=CV,
            scoring=metrics.per_task_scorers(["roc_auc"], ["task_0", "task_1"]),
            refit="mean_roc_auc",
        )
        with pytest.raises(UnsetMetadataPassedError, match="sample_weight"):
            search.fit(X, y, sample_weight=w)


def test_grid_search_routes_weights_to_a_scoring_dict(data):
    X, y, w = data
    expected, _ = _hand_scores(X, y, w)
    with sklearn.config_context(enable_metadata_routing=True):
        scoring = {
            name: scorer.set_score_request(sample_weight=True)
            for name, scorer in metrics.per_task_scorers(["roc_auc"], ["task_0", "task_1"]).items()
        }
        clf = MultiTaskClassifier(**TINY).set_fit_request(sample_weight=False)
        search = GridSearchCV(clf, {"max_iter": [3]}, cv=CV, scoring=scoring, refit=False)
        search.fit(X, y, sample_weight=w)
    results = search.cv_results_
    for split, score in enumerate(expected):
        assert results[f"split{split}_test_mean_roc_auc"][0] == pytest.approx(score)
        per_task = [results[f"split{split}_test_roc_auc_task_{t}"][0] for t in range(2)]
        assert np.mean(per_task) == pytest.approx(score)


def test_grid_search_without_routing_passes_weights_to_a_scoring_dict(data):
    # Without routing, GridSearchCV hands sample_weight to fit and to every scorer
    # that accepts it; with a dict of these scorers it raised AttributeError.
    X, y, w = data
    expected, unweighted = _hand_scores(X, y, w, fit_weight=w)
    assert not np.allclose(expected, unweighted)
    search = GridSearchCV(
        MultiTaskClassifier(**TINY), {"max_iter": [3]}, cv=CV, refit=False,
        scoring=metrics.per_task_scorers(["roc_auc"], ["task_0", "task_1"]),
    )
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*does not support sample_weight")
        search.fit(X, y, sample_weight=w)
    scores = [search.cv_results_[f"split{s}_test_mean_roc_auc"][0] for s in range(2)]
    np.testing.assert_allclose(scores, expected)


def test_request_needs_routing_and_survives_copies():
    scorer = metrics.make_task_scorer("roc_auc", "buy")
    with pytest.raises(RuntimeError, match="enable_metadata_routing"):
        scorer.set_score_request(sample_weight=True)
    with sklearn.config_context(enable_metadata_routing=True):
        assert scorer.set_score_request(sample_weight=True) is scorer
        with pytest.raises(TypeError):
            scorer.set_score_request(groups=True)
        search = GridSearchCV(MultiTaskClassifier(), {"max_iter": [3]}, scoring={"a": scorer}, refit="a")
        for copy in (pickle.loads(pickle.dumps(scorer)), clone(search).scoring["a"]):
            assert copy.get_metadata_routing().score.requests == {"sample_weight": True}
            assert repr(copy) == repr(scorer)
        assert metrics.get_scorer("mean_roc_auc").get_metadata_routing().score.requests == {
            "sample_weight": None
        }
