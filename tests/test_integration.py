"""MultiTaskClassifier inside scikit-learn's tools: Pipeline, ColumnTransformer, searches."""

import numpy as np
import pytest
import sklearn
from sklearn.compose import ColumnTransformer
from sklearn.model_selection import GridSearchCV, KFold, cross_validate
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

from skmtl import MultiTaskClassifier, metrics

FAST = dict(max_iter=15, random_state=0, device="cpu")


def test_pipeline_with_column_transformer(mixed_data):
    X, y = mixed_data
    pre = ColumnTransformer(
        [("num", StandardScaler(), ["age", "income"]), ("cat", "passthrough", ["city", "device", "member"])],
        verbose_feature_names_out=False,
    ).set_output(transform="pandas")
    pipe = Pipeline([("pre", pre), ("clf", MultiTaskClassifier(**{**FAST, "max_iter": 60}))])
    pipe.fit(X.iloc[:1000], y.iloc[:1000])
    clf = pipe.named_steps["clf"]
    assert clf.is_categorical_.tolist() == [False, False, True, True, True]
    proba = pipe.predict_proba(X.iloc[1000:])
    auc = metrics.mean_roc_auc_score(y.iloc[1000:], proba)
    assert auc > 0.8
    assert pipe.predict(X.iloc[1000:]).shape == (500, 2)


def test_pipeline_with_numpy_output_and_indices(mixed_data):
    X, y = mixed_data
    pre = ColumnTransformer(
        [("num", StandardScaler(), ["age", "income"]), ("cat", "passthrough", ["city", "device"])]
    )
    pipe = Pipeline([("pre", pre), ("clf", MultiTaskClassifier(categorical_features=[2, 3], **FAST))])
    pipe.fit(X, y)
    assert pipe.named_steps["clf"].is_categorical_.tolist() == [False, False, True, True]


def test_grid_search_over_architectures_with_list_of_dicts(mixed_data):
    X, y = mixed_data
    grid = [
        {"architecture": ["shared_bottom"]},
        {"architecture": ["moe", "mmoe"], "n_experts": [2, 3]},
    ]
    search = GridSearchCV(MultiTaskClassifier(**FAST), grid, cv=2, scoring="roc_auc")
    search.fit(X, y)
    assert len(search.cv_results_["params"]) == 5
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    assert search.best_estimator_.architecture in {"shared_bottom", "moe", "mmoe"}


def test_grid_search_with_per_task_scorers_and_refit(mixed_data):
    X, y = mixed_data
    scoring = metrics.per_task_scorers(["roc_auc", "log_loss"], ["click", "buy"])
    search = GridSearchCV(
        MultiTaskClassifier(**FAST), {"architecture": ["shared_bottom", "mmoe"]},
        cv=2, scoring=scoring, refit="roc_auc_buy",
    ).fit(X, y)
    results = search.cv_results_
    for key in ("mean_test_roc_auc_click", "mean_test_roc_auc_buy", "mean_test_neg_mean_log_loss"):
        assert np.all(np.isfinite(results[key]))
    assert np.all(results["mean_test_neg_log_loss_click"] < 0)
    best = np.argmax(results["mean_test_roc_auc_buy"])
    assert search.best_params_ == results["params"][best]


def test_cross_validate_with_roc_auc(numeric_data):
    X, y = numeric_data
    result = cross_validate(MultiTaskClassifier(**FAST), X, y, cv=KFold(3), scoring="roc_auc")
    assert result["test_score"].shape == (3,)
    assert np.all(result["test_score"] > 0.8)


def test_skmtl_scorers_skip_unknown_labels_where_sklearn_raises(numeric_data):
    X, y = numeric_data
    y_nan = y.astype(float)
    y_nan[::5, 0] = np.nan
    # scikit-learn's type_of_target(y) casts y to int before it rejects NaN, and numpy
    # warns about that cast; the errors are what this test is about.
    with np.errstate(invalid="ignore"):
        # An integer cv runs type_of_target(y), which rejects NaN: pass a splitter.
        with pytest.raises(ValueError, match="Input y contains NaN"):
            cross_validate(MultiTaskClassifier(**FAST), X, y_nan, cv=2)
        with pytest.raises(ValueError, match="Input y_true contains NaN"):
            cross_validate(
                MultiTaskClassifier(**FAST), X, y_nan, cv=KFold(2), scoring="roc_auc",
                error_score="raise",
            )
    result = cross_validate(
        MultiTaskClassifier(**FAST), X, y_nan, cv=KFold(2),
        scoring=metrics.get_scorer("mean_roc_auc"),
    )
    assert np.all(result["test_score"] > 0.8)


def test_metadata_routing_of_sample_weight(numeric_data):
    X, y = numeric_data
    w = np.ones(len(X))
    with sklearn.config_context(enable_metadata_routing=True):
        clf = (
            MultiTaskClassifier(**FAST)
            .set_fit_request(sample_weight=True)
            .set_score_request(sample_weight=False)
        )
        pipe = Pipeline([("scale", StandardScaler().set_fit_request(sample_weight=False)), ("clf", clf)])
        pipe.fit(X, y, sample_weight=w)
        search = GridSearchCV(clf, {"architecture": ["moe"]}, cv=2).fit(X, y, sample_weight=w)
    assert search.best_estimator_.n_outputs_ == 2
