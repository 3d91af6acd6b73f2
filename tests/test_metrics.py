"""skmtl.metrics against scikit-learn's per-task metrics."""

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import accuracy_score, average_precision_score, log_loss, roc_auc_score

from skmtl import MultiTaskClassifier, metrics


@pytest.fixture
def scored():
    rng = np.random.RandomState(0)
    y = np.column_stack([rng.randint(0, 2, 50), rng.randint(0, 3, 50)]).astype(float)
    p0 = rng.rand(50)
    p1 = rng.dirichlet([1, 1, 1], size=50)
    proba = [np.column_stack([1 - p0, p0]), p1]
    return y, proba


def test_means_equal_per_task_sklearn_metrics(scored):
    y, proba = scored
    auc = [roc_auc_score(y[:, 0], proba[0][:, 1]), roc_auc_score(y[:, 1], proba[1], multi_class="ovr")]
    assert metrics.mean_roc_auc_score(y, proba) == pytest.approx(np.mean(auc))
    ll = [log_loss(y[:, 0], proba[0]), log_loss(y[:, 1], proba[1])]
    assert metrics.mean_log_loss(y, proba) == pytest.approx(np.mean(ll))
    ap0 = average_precision_score(y[:, 0], proba[0][:, 1])
    assert metrics.per_task_scores("average_precision", y, proba)[0] == pytest.approx(ap0)


def test_unknown_labels_are_skipped_per_task(scored):
    y, proba = scored
    y_nan = y.copy()
    y_nan[:10, 0] = np.nan
    expected = roc_auc_score(y[10:, 0], proba[0][10:, 1])
    assert metrics.per_task_scores("roc_auc", y_nan, proba)[0] == pytest.approx(expected)
    # Task 1 keeps all its rows.
    assert metrics.per_task_scores("roc_auc", y_nan, proba)[1] == pytest.approx(
        roc_auc_score(y[:, 1], proba[1], multi_class="ovr")
    )


def test_subset_accuracy_skips_unknown_labels():
    y_true = pd.DataFrame({"a": [1, 0, 1, None], "b": ["x", None, "y", None]})
    y_pred = np.array([[1, "x"], [1, "y"], [1, "x"], [0, "y"]], dtype=object)
    # row 0 right, row 1 wrong on a, row 2 wrong on b, row 3 has no known label
    assert metrics.subset_accuracy_score(y_true, y_pred) == pytest.approx(1 / 3)
    full = np.array([[1, 0], [0, 1]])
    assert metrics.subset_accuracy_score(full, full[[0, 0]]) == accuracy_score(full, full[[0, 0]])


def test_task_scorer_by_name(mixed_data):
    X, y = mixed_data
    clf = MultiTaskClassifier(max_iter=10, random_state=0).fit(X, y)
    proba = clf.predict_proba(X)
    assert metrics.make_task_scorer("roc_auc", "buy")(clf, X, y) == pytest.approx(
        roc_auc_score(y["buy"], proba[1][:, 1])
    )
    assert metrics.get_scorer("neg_mean_log_loss")(clf, X, y) == pytest.approx(
        -np.mean([log_loss(y["click"], proba[0]), log_loss(y["buy"], proba[1])])
    )
    with pytest.raises(ValueError, match="Unknown task 'nope'"):
        metrics.make_task_scorer("roc_auc", "nope")(clf, X, y)


def test_score_is_subset_accuracy(numeric_data):
    X, y = numeric_data
    clf = MultiTaskClassifier(max_iter=10, random_state=0).fit(X, y)
    assert clf.score(X, y) == accuracy_score(y, clf.predict(X))
