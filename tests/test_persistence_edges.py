"""Edges of model files, export and continued fits that the persistence hunt found.

A user module's ``persistent=False`` buffer was silently redrawn by
``load_model`` (the loaded model predicted 0.32 where the saved one gave
0.50); ``save_model`` wrote files readable by their owner only; an empty
feature name reached ONNX's checker; a plain function as ``scoring`` was
recorded with its memory address, so a model reopened in another process
forgot its best validation score.
"""

from __future__ import annotations

import functools
import os
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from skmtl import MultiTaskClassifier, load_model, save_model
from skmtl._base import scoring_label


class RandomFeatures(nn.Module):
    """A fixed random projection kept out of ``state_dict()``."""

    def __init__(self, in_features, n_outputs):
        super().__init__()
        self.register_buffer("projection", torch.randn(in_features, 4), persistent=False)
        self.heads = nn.ModuleList([nn.Linear(4, k) for k in n_outputs])
        self.n_outputs = list(n_outputs)

    def forward(self, x):
        hidden = torch.cos(x @ self.projection)
        return [head(hidden).squeeze(-1) if k == 1 else head(hidden)
                for head, k in zip(self.heads, self.n_outputs)]


def first_task_auc(estimator, X, y):
    """A plain function as ``scoring`` (its repr holds a memory address)."""
    from sklearn.metrics import roc_auc_score

    return roc_auc_score(np.asarray(y)[:, 0], estimator.predict_proba(X)[0][:, 1])


def _data(n=200):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(n, 3))
    return X, np.column_stack([X[:, 0] > 0, X[:, 1] > 0]).astype(int)


def _fit(model, X, y):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(X, y)


def test_a_non_persistent_buffer_is_refused_by_save_model(tmp_path):
    X, y = _data()
    model = _fit(MultiTaskClassifier(RandomFeatures, max_iter=2, random_state=0), X, y)
    with pytest.raises(TypeError, match=r"persistent=False \(\['projection'\]\)"):
        save_model(model, tmp_path / "model.skmtl")
    assert not list(tmp_path.iterdir())  # nothing written
    # pickle keeps the buffer, so it predicts the same
    restored = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(restored.predict_proba(X)[0], model.predict_proba(X)[0])


def test_model_files_get_the_mode_an_ordinary_file_would(tmp_path):
    X, y = _data()
    model = _fit(MultiTaskClassifier(max_iter=2, random_state=0), X, y)
    umask = os.umask(0o022)
    try:
        save_model(model, tmp_path / "new.skmtl")
        assert (tmp_path / "new.skmtl").stat().st_mode & 0o777 == 0o644
        existing = tmp_path / "existing.skmtl"
        existing.write_bytes(b"")
        existing.chmod(0o640)
        save_model(model, existing)  # a replaced file keeps its mode
        assert existing.stat().st_mode & 0o777 == 0o640
        assert load_model(existing).n_iter_ == model.n_iter_
    finally:
        os.umask(umask)


def test_an_empty_feature_name_is_refused_by_to_onnx():
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    from skmtl.export import to_onnx

    X, y = _data()
    frame = pd.DataFrame({"": X[:, 0], "b": X[:, 1]})
    model = _fit(MultiTaskClassifier(max_iter=2, random_state=0), frame, y)
    with pytest.raises(ValueError, match="feature or task is named ''"):
        to_onnx(model)


def test_scoring_labels_hold_no_memory_address():
    assert scoring_label(first_task_auc) == f"{__name__}.first_task_auc"
    assert "0x" not in scoring_label(functools.partial(first_task_auc))
    assert "0x" not in scoring_label(object())
    assert scoring_label("roc_auc") == "'roc_auc'"


def test_a_reopened_model_keeps_its_best_validation_score_for_a_function_scoring(tmp_path):
    """In a new process, a warm start must still have to beat the earlier best epoch."""
    X, y = _data(300)
    model = _fit(MultiTaskClassifier(
        max_iter=4, random_state=0, warm_start=True, early_stopping=True, n_iter_no_change=2,
        scoring=first_task_auc), X, y)
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps(model))
    here = os.path.dirname(os.path.abspath(__file__))
    script = (
        "import pickle, sys, warnings; warnings.simplefilter('ignore')\n"
        f"sys.path.insert(0, {here!r})\n"
        f"model = pickle.loads(open({str(path)!r}, 'rb').read())\n"
        "from skmtl._base import scoring_label\n"
        "print(scoring_label(model.scoring))\n"  # what a warm start there compares with
        "print(model._same_monitor(model._validation_monitor_))\n"
    )
    code = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          check=True, env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    label, same = code.stdout.split()
    assert model._validation_monitor_.endswith(": " + label) and same == "True"
    assert "0x" not in model._validation_monitor_


def test_built_in_towers_of_different_shapes_still_save(tmp_path):
    """Their task-index buffers are rebuilt from the description: no refusal for them."""
    X, y = _data()
    model = _fit(MultiTaskClassifier("mmoe", tower_layer_sizes={"task_0": (8,), "task_1": (16, 8)},
                                     max_iter=2, random_state=0), X, y)
    save_model(model, tmp_path / "towers.skmtl")
    loaded = load_model(tmp_path / "towers.skmtl")
    for got, want in zip(loaded.predict_proba(X), model.predict_proba(X)):
        np.testing.assert_array_equal(got, want)


class _Cyclic:
    """A scorer holding one of its own bound methods (a naive walk of its state never ends)."""

    def __init__(self):
        self._impl = self.accuracy

    def accuracy(self, estimator, X, y):
        return float(np.mean(estimator.predict(X) == y))

    def __call__(self, estimator, X, y):
        return self._impl(estimator, X, y)


class _BadRepr:
    def __repr__(self):
        raise AttributeError("no repr")

    def __call__(self, estimator, X, y):
        return 0.0


def test_scoring_label_never_raises():
    for scoring in (_Cyclic(), _BadRepr(), functools.partial(_BadRepr()), lambda e, X, y: 0.0):
        assert isinstance(scoring_label(scoring), str)


class LoggingAccuracy:
    """A scorer whose state changes as it scores (it keeps what it returned)."""

    def __init__(self):
        self.seen = []

    def __call__(self, estimator, X, y):
        score = float(np.mean(np.asarray(estimator.predict(X)) == np.asarray(y)))
        self.seen.append(score)
        return score


def _continued_scores(model, X, y):
    model.set_params(warm_start=True, max_iter=2)
    return np.asarray(_fit(model, X, y).validation_scores_)


def test_the_same_scoring_object_continues_whatever_its_state_and_after_pickling():
    X, y = _data(300)
    settings = {"early_stopping": True, "max_iter": 3, "random_state": 0}
    model = _fit(MultiTaskClassifier(scoring=LoggingAccuracy(), **settings), X, y[:, 0])
    copy = pickle.loads(pickle.dumps(model))
    for continued in (model, copy):
        scores = _continued_scores(continued, X, y[:, 0])
        assert not np.isnan(scores[:3]).any()  # the earlier scores measured the same thing


def test_another_scoring_object_starts_afresh_even_with_the_same_name():
    X, y = _data(300)
    settings = {"early_stopping": True, "max_iter": 3, "random_state": 0}
    model = _fit(MultiTaskClassifier(scoring=lambda e, X, y: 0.5, **settings), X, y[:, 0])
    model.set_params(scoring=lambda e, X, y: -1.0)
    scores = _continued_scores(model, X, y[:, 0])
    assert np.isnan(scores[:3]).all() and (scores[3:] == -1.0).all()


class _Errors:
    def score(self, estimator, X, y):
        return -float(np.mean(estimator.predict(X) != y))


def _error(estimator, X, y, task=None):
    return -float(np.mean(estimator.predict(X) != y))


@pytest.mark.parametrize("rebuild", ["bound method", "partial"])
def test_a_rebuilt_bound_method_or_partial_is_the_same_scoring(rebuild):
    """obj.score and partial(f, task=0) are new objects each time they are written."""
    X, y = _data(300)
    owner = _Errors()
    make = (lambda: owner.score) if rebuild == "bound method" else (
        lambda: functools.partial(_error, task=0))
    model = _fit(MultiTaskClassifier(scoring=make(), early_stopping=True, max_iter=4,
                                     random_state=0), X, y[:, 0])
    model.set_params(scoring=make())
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        warnings.filterwarnings("ignore", message="Stopped at max_iter")
        scores = _continued_scores(model, X, y[:, 0])
    assert not np.isnan(scores[:4]).any()


def test_another_object_with_the_same_name_is_named_in_a_warning():
    from sklearn.metrics import get_scorer

    X, y = _data(300)
    model = _fit(MultiTaskClassifier(scoring=get_scorer("accuracy"), early_stopping=True,
                                     max_iter=3, random_state=0), X, y[:, 0])
    model.set_params(scoring=get_scorer("accuracy"), warm_start=True, max_iter=1)
    with pytest.warns(UserWarning, match="another object than the one validation_scores_"):
        model.fit(X, y[:, 0])


def test_a_replaced_scoring_is_not_pickled_with_the_model():
    X, y = _data(300)
    model = _fit(MultiTaskClassifier(scoring=lambda e, X, y: 0.0, early_stopping=True,
                                     max_iter=2, random_state=0), X, y[:, 0])
    model.set_params(scoring="mean_roc_auc")
    restored = pickle.loads(pickle.dumps(model))  # the lambda would not pickle
    assert restored._monitored_scoring_ is None


def test_a_model_fitted_before_the_kept_epoch_was_recorded_keeps_its_marker():
    X, y = _data(300)
    model = _fit(MultiTaskClassifier(early_stopping=True, max_iter=6, random_state=0,
                                     warm_start=True), X, y)
    kept = model._kept_epoch_
    del model._kept_epoch_  # as a model pickled by an older skmtl
    model.set_params(learning_rate_init=5.0, max_iter=2)  # a continuation that cannot improve
    _fit(model, X, y)
    assert model._kept_epoch_ == kept


def _task_error(estimator, X, y, task=None):
    return -float(np.mean(estimator.predict(X) != y))


def test_numpy_scalar_arguments_and_a_pickle_taken_meanwhile_keep_the_scoring():
    X, y = _data(300)
    task = np.arange(2)[1]  # an np.int64, as from np.arange(n_tasks)
    model = _fit(MultiTaskClassifier(scoring=functools.partial(_task_error, task=task),
                                     early_stopping=True, max_iter=3, random_state=0), X, y[:, 0])
    model.set_params(scoring="mean_roc_auc")
    model = pickle.loads(pickle.dumps(model))  # the module-level function pickles by name
    model.set_params(scoring=functools.partial(_task_error, task=np.arange(2)[1]))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scores = _continued_scores(model, X, y[:, 0])
    assert not np.isnan(scores[:3]).any()
    assert not [w for w in caught if "another object" in str(w.message)]


def test_the_other_object_warning_comes_once_per_fit():
    from sklearn.metrics import get_scorer

    X, y = _data(300)
    model = _fit(MultiTaskClassifier(scoring=get_scorer("accuracy"), early_stopping=True,
                                     max_iter=2, random_state=0), X, y[:, 0])
    model.set_params(scoring=get_scorer("accuracy"), warm_start=True, max_iter=1)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(X, y[:, 0])
    assert len([w for w in caught if "another object" in str(w.message)]) == 1


def test_only_scorings_importable_elsewhere_are_kept_for_a_pickle():
    """A script's function (__main__) or a local int subclass would make the pickle unloadable."""
    from skmtl._base import _pickled_by_reference

    assert _pickled_by_reference(_task_error)
    assert _pickled_by_reference(functools.partial(_task_error, task=np.int64(1)))
    script_function = type(_task_error)(_task_error.__code__, {}, "in_a_script")
    script_function.__module__ = "__main__"
    assert not _pickled_by_reference(script_function)

    class Task(int):
        pass

    assert not _pickled_by_reference(functools.partial(_task_error, task=Task(0)))

    class OddModule:
        __module__ = ["x"]  # noqa: RUF012 - unhashable: must not raise inside pickle.dumps

    assert not _pickled_by_reference(OddModule())
