"""skmtl.plotting: the plotted numbers are the estimator's numbers."""

import copy
import subprocess
import sys
import warnings

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib", reason="skmtl.plotting needs the 'plot' extra")
matplotlib.use("Agg")
import matplotlib.pyplot as plt
from sklearn.exceptions import NotFittedError

from skmtl import MultiTaskClassifier
from skmtl.datasets import make_multitask_classification
from skmtl.plotting import plot_expert_usage, plot_learning_curves


@pytest.fixture(scope="module")
def data():
    return make_multitask_classification(400, 6, n_tasks=3, task_correlation=0.5, random_state=0)


@pytest.fixture(scope="module")
def fitted(data):
    X, y = data
    models = {}
    for architecture in ("shared_bottom", "moe", "mmoe"):
        models[architecture] = MultiTaskClassifier(
            architecture,
            n_experts=3,
            expert_layer_sizes=(8,),
            tower_layer_sizes=(4,),
            max_iter=6,
            early_stopping=True,
            n_iter_no_change=50,
            random_state=0,
        ).fit(X, y)
    return models


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.mark.parametrize("architecture", ["moe", "mmoe"])
def test_expert_usage_bar_heights_are_mean_gate_weights(fitted, data, architecture):
    clf, X = fitted[architecture], data[0]
    expected = clf.gate_weights(X).mean(axis=0)  # (n_tasks, n_experts)
    ax = plot_expert_usage(clf, X)
    assert len(ax.containers) == clf.n_outputs_ == 3
    heights = np.array([[bar.get_height() for bar in bars] for bars in ax.containers])
    np.testing.assert_allclose(heights, expected)
    np.testing.assert_allclose(heights.sum(axis=1), 1.0)
    legend = [text.get_text() for text in ax.get_legend().get_texts()]
    assert legend == [*clf.task_names_, "uniform gate (1/3)"]
    uniform = [line for line in ax.get_lines() if line.get_label() == "uniform gate (1/3)"]
    np.testing.assert_allclose(uniform[0].get_ydata(), [1 / 3, 1 / 3])


def test_moe_tasks_share_one_gate_and_mmoe_tasks_do_not(fitted, data):
    X = data[0]
    moe = np.array([[b.get_height() for b in bars]
                    for bars in plot_expert_usage(fitted["moe"], X).containers])
    mmoe = np.array([[b.get_height() for b in bars]
                     for bars in plot_expert_usage(fitted["mmoe"], X).containers])
    np.testing.assert_allclose(moe, np.broadcast_to(moe[0], moe.shape))
    assert np.ptp(mmoe, axis=0).max() > 1e-4


def test_expert_usage_heatmap_shows_the_same_matrix(fitted, data):
    clf, X = fitted["mmoe"], data[0]
    ax = plot_expert_usage(clf, X, kind="heatmap")
    np.testing.assert_allclose(ax.images[0].get_array(), clf.gate_weights(X).mean(axis=0))
    texts = [t.get_text() for t in ax.texts]
    assert len(texts) == 3 * 3
    assert texts[0] == f"{clf.gate_weights(X).mean(axis=0)[0, 0]:.2f}"


def test_expert_usage_draws_on_the_given_axes(fitted, data):
    figure, (left, right) = plt.subplots(1, 2)
    assert plot_expert_usage(fitted["mmoe"], data[0], ax=right) is right
    assert len(left.patches) == 0 and len(right.patches) == 3 * 3


def test_expert_usage_rejects_models_without_gates_and_bad_kind(fitted, data):
    with pytest.raises(ValueError, match="needs a model with gates"):
        plot_expert_usage(fitted["shared_bottom"], data[0])
    with pytest.raises(ValueError, match="kind must be"):
        plot_expert_usage(fitted["mmoe"], data[0], kind="pie")


def test_unfitted_estimator_raises(data):
    with pytest.raises(NotFittedError):
        plot_learning_curves(MultiTaskClassifier())
    with pytest.raises(NotFittedError):
        plot_expert_usage(MultiTaskClassifier(), data[0])


@pytest.mark.parametrize("architecture", ["shared_bottom", "mmoe"])
def test_learning_curves_plot_the_recorded_losses(fitted, architecture):
    clf = fitted[architecture]
    ax = plot_learning_curves(clf)
    lines = ax.get_lines()
    # total, 3 tasks, validation loss, best-epoch marker
    assert len(lines) == 1 + clf.n_outputs_ + 2
    epochs = np.arange(1, clf.n_iter_ + 1)
    np.testing.assert_allclose(lines[0].get_xdata(), epochs)
    np.testing.assert_allclose(lines[0].get_ydata(), clf.loss_curve_)
    for t in range(clf.n_outputs_):
        np.testing.assert_allclose(lines[1 + t].get_ydata(), clf.task_loss_curves_[:, t])
    np.testing.assert_allclose(lines[4].get_ydata(), -np.asarray(clf.validation_scores_))
    best = int(np.argmax(clf.validation_scores_)) + 1
    np.testing.assert_allclose(lines[5].get_xdata(), [best, best])


def test_learning_curves_draw_another_score_on_its_own_axis(data):
    X, y = data
    clf = MultiTaskClassifier(
        max_iter=4, early_stopping=True, scoring="mean_roc_auc", n_iter_no_change=10,
        random_state=0,
    ).fit(X, y)
    ax = plot_learning_curves(clf)
    assert len(ax.get_lines()) == 1 + clf.n_outputs_ + 1  # losses, then the best epoch
    score_ax = ax.figure.axes[-1]
    assert score_ax is not ax and score_ax.get_ylabel() == "validation mean_roc_auc"
    np.testing.assert_allclose(score_ax.get_lines()[0].get_ydata(), clf.validation_scores_)
    best = int(np.argmax(clf.validation_scores_)) + 1
    np.testing.assert_allclose(ax.get_lines()[-1].get_xdata(), [best, best])
    assert "validation mean_roc_auc" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_learning_curves_options_and_no_validation(data):
    X, y = data
    clf = MultiTaskClassifier(max_iter=3, early_stopping=False, random_state=0).fit(X, y)
    assert clf.validation_scores_ is None
    assert len(plot_learning_curves(clf).get_lines()) == 1 + 3
    assert len(plot_learning_curves(clf, tasks=False).get_lines()) == 1
    figure, ax = plt.subplots()
    assert plot_learning_curves(clf, ax=ax) is ax


def test_learning_curves_y_range_leaves_out_a_high_first_epoch(fitted):
    # The census demo's shape: the first epoch's losses several times the later ones.
    clf = copy.deepcopy(fitted["mmoe"])
    n = clf.n_iter_
    clf.loss_curve_ = [0.6] + list(np.linspace(0.25, 0.20, n - 1))
    clf.task_loss_curves_ = np.column_stack([clf.loss_curve_] * 3) / 3
    clf.validation_scores_ = [-0.3] + list(-np.linspace(0.24, 0.22, n - 1))
    ax = plot_learning_curves(clf)
    bottom, top = ax.get_ylim()
    assert bottom < 0.20 / 3 and 0.25 < top < 0.3  # every later epoch inside, epoch 1 above
    assert ax.get_xlabel() == "epoch (epoch 1 lies above the y range)"
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), clf.loss_curve_)  # all drawn
    # None: matplotlib's range, every point visible and no note.
    ax = plot_learning_curves(clf, ylim=None)
    assert ax.get_ylim()[1] >= 0.6 and ax.get_xlabel() == "epoch"
    assert plot_learning_curves(clf, ylim=(0.0, 5.0)).get_ylim() == (0.0, 5.0)
    # A first epoch inside the later range changes nothing.
    assert plot_learning_curves(fitted["shared_bottom"]).get_xlabel() == "epoch"
    with pytest.raises(ValueError, match="ylim must be"):
        plot_learning_curves(clf, ylim="tight")


def test_importing_skmtl_plotting_does_not_import_matplotlib():
    code = "import sys, skmtl.plotting; assert 'matplotlib' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_matplotlib_gives_an_install_hint(fitted, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)  # import now raises
    with pytest.raises(ImportError, match=r"skmtl\[plot\]"):
        plot_learning_curves(fitted["mmoe"])


def test_expert_usage_of_ple_labels_each_tasks_own_experts_apart():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(200, 4))
    y = np.column_stack([X[:, 0] > 0, X[:, 1] > 0]).astype(int)
    clf = MultiTaskClassifier("ple", n_task_experts=1, n_shared_experts=2, max_iter=2,
                              random_state=0).fit(X, y)
    clf.set_params(n_task_experts=2)  # the fitted network's experts are labelled, not these
    ax = plot_expert_usage(clf, X)
    assert [t.get_text() for t in ax.get_xticklabels()] == [
        "own expert 0", "shared expert 0", "shared expert 1"
    ]


# ------------------------------------------------ what the plots say after refits
def _two_data_sets():
    rng = np.random.RandomState(0)

    def data(n, noise):
        X = rng.rand(n, 4)
        return X, np.column_stack([X[:, 0] + noise * rng.randn(n) > 0.5,
                                   X[:, 1] + noise * rng.randn(n) > 0.5]).astype(int)

    return data(400, 0.0), data(400, 0.4)


def test_the_best_epoch_line_marks_the_kept_epoch_after_a_warm_start():
    """The line sat on the maximum over every fit, an earlier fit's epoch whose weights were gone."""
    (XA, yA), (XB, yB) = _two_data_sets()
    clf = MultiTaskClassifier(max_iter=15, random_state=0, early_stopping=True, warm_start=True,
                              learning_rate_init=0.01)
    with np.errstate(all="ignore"), pytest.warns(Warning):
        clf.fit(XA, yA).fit(XB, yB)
    scores = np.asarray(clf.validation_scores_)
    kept = int(np.flatnonzero(scores == clf.best_validation_score_)[-1]) + 1
    assert kept != int(np.nanargmax(scores)) + 1  # the case that was drawn wrong
    ax = plot_learning_curves(clf)
    assert ax.lines[-1].get_label() == f"best epoch ({kept})"
    plt.close("all")


def test_the_validation_curve_is_named_by_what_was_recorded_not_by_a_later_scoring():
    (XA, yA), _ = _two_data_sets()
    clf = MultiTaskClassifier(max_iter=4, random_state=0, early_stopping=True,
                              scoring="mean_roc_auc")
    with pytest.warns(Warning):
        clf.fit(XA, yA)
    ax = plot_learning_curves(clf.set_params(scoring="loss"))
    assert [line.get_label() for line in ax.figure.axes[-1].lines] == ["validation mean_roc_auc"]
    plt.close("all")


def test_plots_accept_a_fitted_pipeline_and_title_the_fitted_architecture():
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    (XA, yA), _ = _two_data_sets()
    pipe = make_pipeline(StandardScaler(), MultiTaskClassifier("ple", max_iter=2, random_state=0))
    with pytest.warns(Warning):
        pipe.fit(XA, yA)
    assert plot_learning_curves(pipe).lines[0].get_label() == "training loss (total)"
    model = pipe[-1]
    expected = model.gate_weights(pipe[:-1].transform(XA)).mean(axis=0)
    model.set_params(architecture="mmoe")  # not the fitted network
    ax = plot_expert_usage(pipe, XA)
    assert ax.get_title() == "ple: mean gate weight per expert"
    heights = [bar.get_height() for bar in ax.containers[0]]
    np.testing.assert_allclose(heights, expected[0], rtol=1e-6)
    plt.close("all")


def test_expert_usage_through_a_search_over_a_pipeline_transforms_x():
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.RandomState(0)
    X = rng.normal(loc=50, scale=10, size=(200, 4))
    Y = np.column_stack([X[:, 0] > 50, X[:, 1] > 50]).astype(int)
    pipe = make_pipeline(StandardScaler(), MultiTaskClassifier("mmoe", max_iter=2, random_state=0))
    with pytest.warns(Warning):
        search = GridSearchCV(pipe, {"multitaskclassifier__max_iter": [2]}, cv=2).fit(X, Y)
    best = search.best_estimator_
    expected = best[-1].gate_weights(best[:-1].transform(X)).mean(axis=0)[0]
    ax = plot_expert_usage(search, X)
    np.testing.assert_allclose([bar.get_height() for bar in ax.containers[0]], expected, rtol=1e-6)
    plt.close("all")


def test_of_tied_epochs_the_line_marks_the_first_which_training_keeps():
    """Training keeps an epoch only when it scores strictly higher: of tied epochs, the first."""
    from sklearn.metrics import accuracy_score, make_scorer

    rng = np.random.RandomState(0)
    X = rng.normal(size=(300, 4))
    y = (X[:, 0] + 0.3 * rng.normal(size=300) > 0).astype(int)
    settings = {"early_stopping": True, "random_state": 2, "learning_rate_init": 0.01,
                    "scoring": make_scorer(accuracy_score), "n_iter_no_change": 50}
    with pytest.warns(Warning):
        model = MultiTaskClassifier("shared_bottom", max_iter=20, **settings).fit(X, y)
    scores = np.asarray(model.validation_scores_)
    tied = np.flatnonzero(scores == model.best_validation_score_) + 1
    assert len(tied) > 1  # the case: several epochs reach the best score
    stopped = MultiTaskClassifier("shared_bottom", max_iter=int(tied[0]), **settings)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        stopped.fit(X, y)
    np.testing.assert_array_equal(stopped.predict_proba(X), model.predict_proba(X))
    ax = plot_learning_curves(model)
    assert ax.lines[-1].get_label() == f"best epoch ({tied[0]})"
    plt.close("all")


def test_the_kept_epoch_is_recorded_by_the_fit_not_guessed_from_equal_scores():
    """A continuation on new rows can reach an earlier fit's score: the plot marked that epoch."""
    rng = np.random.RandomState(0)
    X, X_new = rng.randn(200, 4), rng.randn(200, 4)
    y = np.c_[(X[:, 0] > 0), (X[:, 1] > 0)].astype(int)
    y_new = np.c_[(X_new[:, 0] > 0), (X_new[:, 1] > 0)].astype(int)
    scripted = iter([0.70, 0.80, 0.90,  # fit 1 keeps epoch 3
                     0.75,  # the continuation re-scores epoch 3's weights on the new rows
                     0.78, 0.80, 0.79])  # epoch 5 beats 0.75 and is kept

    def scorer(estimator, X, y):
        return next(scripted)

    clf = MultiTaskClassifier("shared_bottom", expert_layer_sizes=(8,), tower_layer_sizes=(4,),
                              max_iter=3, early_stopping=True, n_iter_no_change=10,
                              scoring=scorer, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf.fit(X, y)
        assert clf._kept_epoch_ == 3
        clf.set_params(warm_start=True).fit(X_new, y_new)
    assert clf.validation_scores_ == [0.70, 0.80, 0.90, 0.78, 0.80, 0.79]
    assert clf._kept_epoch_ == 5
    ax = plot_learning_curves(clf)
    assert ax.lines[-1].get_label() == "best epoch (5)"
    clf.partial_fit(X_new, y_new)  # the weights move on: no epoch's weights are kept
    assert clf._kept_epoch_ is None
    assert not [line for line in plot_learning_curves(clf).lines
                if line.get_label().startswith("best epoch")]
    plt.close("all")
