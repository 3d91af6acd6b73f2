"""Early stopping on a chosen score: ``scoring`` (issue 16, item 3)."""

import warnings

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import get_scorer as sklearn_scorer

from skmtl import MultiTaskClassifier, metrics
from skmtl.datasets import make_multitask_classification

PARAMS = dict(
    expert_layer_sizes=(8,), tower_layer_sizes=(4,), n_experts=2, batch_size=64,
    early_stopping=True, validation_fraction=0.2, n_iter_no_change=3, max_iter=40,
    learning_rate_init=0.01, random_state=0, device="cpu",
)


@pytest.fixture(scope="module")
def data():
    X, y = make_multitask_classification(n_samples=500, n_features=6, random_state=0)[:2]
    X = pd.DataFrame(X, columns=[f"x{j}" for j in range(X.shape[1])])
    return X, pd.DataFrame(y, columns=["click", "buy"])


def fit(X, y, sample_weight=None, **params):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return MultiTaskClassifier(**{**PARAMS, **params}).fit(X, y, sample_weight=sample_weight)


class Recorder:
    """A scorer that writes down what it was given, and scores with ``score``."""

    def __init__(self, score):
        self.score, self.calls = score, []

    def __call__(self, estimator, X, y, **kwargs):
        self.calls.append({"estimator": estimator, "X": X, "y": y, **kwargs})
        return self.score(estimator, X, y, len(self.calls))


# ------------------------------------------------------------ which epoch
def test_a_score_that_prefers_the_first_epoch_restores_it(data):
    """A scorer worse every epoch: the first epoch's weights come back, not the loss's choice."""
    X, y = data
    first = Recorder(lambda est, X, y, epoch: -float(epoch))
    clf = fit(X, y, scoring=first)
    assert clf.n_iter_ == 4 and clf.validation_scores_ == [-1.0, -2.0, -3.0, -4.0]
    assert clf.best_validation_score_ == -1.0
    one_epoch = fit(X, y, max_iter=1)
    by_loss = fit(X, y)
    assert by_loss.n_iter_ > 4 and np.argmax(by_loss.validation_scores_) > 0
    for kept, epoch_1, loss in zip(
        clf.predict_proba(X), one_epoch.predict_proba(X), by_loss.predict_proba(X)
    ):
        np.testing.assert_array_equal(kept, epoch_1)
        assert not np.array_equal(kept, loss)


def test_a_score_that_prefers_the_last_epoch_never_stops(data):
    X, y = data
    clf = fit(X, y, scoring=Recorder(lambda est, X, y, epoch: float(epoch)), max_iter=6)
    assert clf.n_iter_ == 6 and clf.best_validation_score_ == 6.0
    no_stop = fit(X, y, scoring=Recorder(lambda est, X, y, epoch: float(epoch)), max_iter=3)
    assert no_stop.validation_scores_ == [1.0, 2.0, 3.0]


def test_tol_is_in_the_scores_units(data):
    X, y = data
    clf = fit(X, y, scoring=Recorder(lambda est, X, y, epoch: 0.01 * epoch), tol=0.05)
    assert clf.n_iter_ == 4 and clf.best_validation_score_ == pytest.approx(0.04)


# ------------------------------------------------------- what is scored
@pytest.mark.parametrize(
    "scoring",
    ["mean_roc_auc", "neg_mean_log_loss", metrics.make_task_scorer("average_precision", "buy")],
    ids=["mean_roc_auc", "neg_mean_log_loss", "task-average-precision"],
)
def test_the_score_is_the_metric_of_the_epochs_model_on_the_validation_rows(data, scoring):
    X, y = data
    scorer = metrics.get_scorer(scoring) if isinstance(scoring, str) else scoring
    recorder = Recorder(lambda est, X, y, epoch: scorer(est, X, y))
    clf = fit(X, y, scoring=scoring)
    recorded = fit(X, y, scoring=recorder)
    assert clf.validation_scores_ == recorded.validation_scores_
    assert len(recorder.calls) == clf.n_iter_
    call = recorder.calls[0]
    rows = call["X"].index
    assert len(rows) == 100 and call["y"].index.equals(rows)
    pd.testing.assert_frame_equal(call["X"], X.loc[rows])
    pd.testing.assert_frame_equal(call["y"], y.loc[rows])
    # The fitted model is the best epoch's: its score on those rows is the best score.
    assert scorer(clf, X.loc[rows], y.loc[rows]) == pytest.approx(clf.best_validation_score_,
                                                                  rel=1e-12)
    assert clf.best_validation_score_ == max(clf.validation_scores_)


def test_the_scorer_sees_a_fitted_estimator_of_the_epoch_not_the_one_being_fitted(data):
    X, y = data
    clf = MultiTaskClassifier(**{**PARAMS, "max_iter": 2})
    seen = []

    def scorer(estimator, X_val, y_val):
        seen.append((estimator is not clf, hasattr(clf, "module_"), estimator.get_params()))
        proba = estimator.predict_proba(X_val)
        again = estimator.predict_proba(X_val.copy())  # another object: predicted anew
        # (the epoch's logits were turned into probabilities whole, not in padded batches:
        # an ulp may differ, as _EpochLogits says)
        assert all(np.allclose(p, q, rtol=0, atol=1e-15) for p, q in zip(proba, again))
        assert list(estimator.task_names_) == ["click", "buy"]
        return float(estimator.score(X_val, y_val))

    clf.set_params(scoring=scorer)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        clf.fit(X, y)
    assert [s[:2] for s in seen] == [(True, False), (True, False)]
    assert seen[0][2] == clf.get_params()


def test_sample_weight_reaches_the_scorer_only_when_fit_has_it(data):
    X, y = data
    weights = np.linspace(0.5, 2.0, len(X))
    recorder = Recorder(lambda est, X, y, epoch: 0.0)
    fit(X, y, sample_weight=weights, scoring=recorder, max_iter=1)
    call = recorder.calls[0]
    np.testing.assert_array_equal(call["sample_weight"], weights[call["X"].index])
    plain = Recorder(lambda est, X, y, epoch: 0.0)  # takes no sample_weight
    fit(X, y, scoring=plain, max_iter=1)
    assert "sample_weight" not in plain.calls[0]


def test_a_scikit_learn_scorer_on_one_task(data):
    X, y = data
    clf = fit(X, y["click"], scoring=sklearn_scorer("roc_auc"))
    same = fit(X, y["click"], scoring=metrics.make_task_scorer("roc_auc", 0))
    assert clf.validation_scores_ == same.validation_scores_


def test_numpy_input_and_labels(data):
    X, y = data
    recorder = Recorder(lambda est, X, y, epoch: metrics.get_scorer("mean_roc_auc")(est, X, y))
    clf = fit(X.to_numpy(), y.to_numpy(), scoring=recorder, max_iter=2)
    assert isinstance(recorder.calls[0]["X"], np.ndarray)
    assert recorder.calls[0]["y"].shape == (100, 2)
    assert clf.validation_scores_ == fit(X, y, scoring="mean_roc_auc", max_iter=2).validation_scores_


# ---------------------------------------------------------- unused, bad
def test_scoring_is_unused_without_early_stopping(data):
    X, y = data

    def never(*args, **kwargs):
        raise AssertionError("scored without early stopping")

    clf = fit(X, y, scoring=never, early_stopping=False, max_iter=2)
    assert clf.validation_scores_ is None
    clf.partial_fit(X, y)
    plain = fit(X, y, early_stopping=False, max_iter=2)
    for a, b in zip(plain.predict_proba(X), fit(X, y, early_stopping=False, max_iter=2,
                                                 scoring="mean_roc_auc").predict_proba(X)):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize(
    "scoring, match",
    [
        ("roc_auc", r"scoring='roc_auc' is not a score early stopping knows\. Unknown scorer "
                    r"'roc_auc'; expected one of \['mean_average_precision'"),
        (lambda est, X, y: float("nan"), r"The validation score \(score\) was nan at epoch 1"),
        (lambda est, X, y: None, r"The validation score \(score\) was None at epoch 1"),
        (lambda est, X, y: "high", r"was 'high' at epoch 1"),
        (metrics.make_task_scorer("roc_auc", "view"), r"Unknown task 'view'"),
    ],
    ids=["unknown-name", "nan", "none", "string", "unknown-task"],
)
def test_bad_scoring_is_a_clear_error_and_leaves_the_estimator_alone(data, scoring, match):
    X, y = data
    clf = MultiTaskClassifier(**{**PARAMS, "scoring": scoring})
    with pytest.raises(ValueError, match=match):
        clf.fit(X, y)
    assert not hasattr(clf, "module_")


def test_an_unknown_name_is_refused_even_without_early_stopping(data):
    X, y = data
    with pytest.raises(ValueError, match="scoring='auc' is not a score"):
        fit(X, y, scoring="auc", early_stopping=False)


# ---------------------------------------------------------- around it
def test_the_progress_bar_names_the_score(data, capsys):
    X, y = data
    clf = fit(X, y, scoring="mean_roc_auc", verbose=1)
    err = capsys.readouterr().err
    best = int(np.argmax(clf.validation_scores_)) + 1
    assert "fit (early stopping: validation mean_roc_auc, patience 3)" in err
    assert "val_loss=" in err and "val_mean_roc_auc=" in err
    assert err.rstrip().endswith(
        f"(validation mean_roc_auc did not improve by more than tol=0.0001 for 3 epochs; "
        f"best epoch {best} restored)"
    )


def test_the_max_iter_warning_names_the_score(data):
    X, y = data
    with pytest.warns(ConvergenceWarning, match="before the validation score stopped improving"):
        MultiTaskClassifier(
            **{**PARAMS, "max_iter": 2, "scoring": Recorder(lambda est, X, y, epoch: epoch)}
        ).fit(X, y)


def test_warm_start_continues_the_score_curve(data):
    X, y = data
    clf = fit(X, y, scoring="mean_roc_auc", warm_start=True, max_iter=2)
    first = list(clf.validation_scores_)
    fit_again = clf.set_params(max_iter=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        fit_again.fit(X, y)
    assert clf.validation_scores_[:2] == first and len(clf.validation_scores_) == 5
