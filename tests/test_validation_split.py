"""The early-stopping validation split must leave both sides something to work with.

Validation rows without a known label of positive weight gave a validation
score of 0 at every epoch: early stopping then stopped after
``n_iter_no_change`` epochs and restored the FIRST epoch's weights, silently.
A class whose rows all went to validation was never trained on, silently too.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from skmtl import MultiTaskClassifier, MultiTaskRegressor, UntrainableTaskWarning
from skmtl._base import FitSeeds
from skmtl._distributed import SingleProcess


def _validation_rows(random_state, n, fraction=0.1):
    order = FitSeeds.draw(random_state, SingleProcess()).split_rng().permutation(n)
    return order[: round(fraction * n)]


def _data(n=300, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 3))
    return X, (X[:, 0] > 0).astype(float)


@pytest.mark.parametrize("estimator", [MultiTaskClassifier, MultiTaskRegressor])
def test_validation_rows_without_a_known_label_are_refused(estimator):
    X, y = _data()
    Y = np.column_stack([y, 1 - y])  # two tasks: a plain random split (no stratification)
    Y[_validation_rows(12, len(y))] = np.nan  # every validation label unknown
    params = {"early_stopping": True, "random_state": 12, "max_iter": 3}
    if estimator is MultiTaskRegressor:
        params["loss"] = "log_loss"
    with pytest.raises(ValueError, match="no validation row with a known label"):
        estimator(**params).fit(X, Y)


def test_validation_rows_of_weight_zero_are_refused():
    X, y = _data()
    weights = np.ones(len(y))
    weights[_validation_rows(0, len(y))] = 0.0
    with pytest.raises(ValueError, match="of positive weight"):
        MultiTaskClassifier(early_stopping=True, random_state=0, max_iter=3).fit(
            X, np.column_stack([y, 1 - y]), sample_weight=weights
        )


def test_a_task_without_validation_labels_is_named():
    X, y = _data()
    Y = np.column_stack([y, 1 - y])
    Y[_validation_rows(0, len(y)), 1] = np.nan
    with pytest.warns(UserWarning, match=r"task\(s\) \['task_1'\]: early stopping watches"):
        MultiTaskClassifier(early_stopping=True, random_state=0, max_iter=2).fit(X, Y)


def test_a_class_only_in_the_validation_rows_is_named():
    X, _ = _data(200)
    y = np.where(X[:, 0] > 0, "a", "b").astype(object)
    y[_validation_rows(0, len(y), 0.2)[:2]] = "c"
    Y = np.column_stack([y, np.where(X[:, 1] > 0, "p", "q")])  # two tasks: not stratified
    with pytest.warns(UntrainableTaskWarning, match=r"'task_0' \('c'\) without any training row"):
        MultiTaskClassifier(early_stopping=True, validation_fraction=0.2, random_state=0,
                            max_iter=2).fit(X, Y)


def test_one_task_is_split_stratified_by_its_classes_as_mlpclassifier_does():
    X, _ = _data(200)
    y = np.where(X[:, 0] > 0, "a", "b").astype(object)
    y[_validation_rows(0, len(y), 0.2)[:2]] = "c"  # where a plain split would put both
    y[5:25] = None  # unknown labels: a stratum of their own
    seen = {}

    class Recording(MultiTaskClassifier):
        def _check_training_rows(self, targets, train_rows, group):
            seen["train"] = train_rows
            return super()._check_training_rows(targets, train_rows, group)

    with warnings.catch_warnings():
        warnings.simplefilter("error", UntrainableTaskWarning)
        warnings.filterwarnings("ignore", message="Stopped at max_iter")
        Recording(early_stopping=True, validation_fraction=0.2, random_state=0,
                  max_iter=2).fit(X, y)
    train = np.zeros(len(y), dtype=bool)
    train[seen["train"]] = True
    assert train[y == "c"].sum() >= 1  # a plain split put both in validation
    labels = np.where(pd.isna(y), "?", y)
    for label in ("a", "b", "?"):  # each class's share of the validation rows is its share
        assert abs((~train & (labels == label)).sum() - 0.2 * (labels == label).sum()) <= 1


def test_a_split_that_leaves_labels_on_both_sides_says_nothing():
    X, y = _data()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        warnings.filterwarnings("ignore", message="Stopped at max_iter")
        MultiTaskClassifier(early_stopping=True, random_state=0, max_iter=2).fit(X, y)


def test_a_class_no_row_holds_is_not_blamed_on_the_split():
    """A funnel step with no conversion in this fold gets its positive class, in no row."""
    X, y = _data(300)
    click = y
    conversion = np.where(click == 1, 0.0, np.nan)  # known on clicked rows only, never 1
    Y = np.column_stack([click, conversion])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        MultiTaskClassifier(funnel=[0, 1], early_stopping=True, random_state=0,
                            max_iter=2).fit(X, Y)
    assert not [w for w in caught if "validation split" in str(w.message)]


def test_a_stratum_of_one_row_trains_and_the_others_stay_stratified():
    X, _ = _data(100)
    y = np.where(X[:, 0] > 0, "a", "b").astype(object)
    y[[3, 7]] = "c"
    y[11] = None  # a stratum of one row: it cannot be split, so it trains
    for seed in range(12):
        model = MultiTaskClassifier(early_stopping=True, validation_fraction=0.5,
                                    random_state=seed, max_iter=1)
        with warnings.catch_warnings():
            warnings.simplefilter("error", UntrainableTaskWarning)
            warnings.filterwarnings("ignore", message="Stopped at max_iter")
            model.fit(X, y)
