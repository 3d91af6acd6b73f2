"""Write a model file in which ``pos_label`` reordered ``classes_`` (kept to be old).

Written ONCE, by skmtl at commit ``8aa754a``, the last skmtl whose public
``classes_`` put a declared positive class last (``[negative, positive]``, so
``["no_click", "click"]``) with ``predict_proba``'s columns in that order. Its
files store ``classes_`` in that, the training, order (as later skmtl still
do). ``tests/test_sorted_classes.py`` loads the file with the current code and
checks that the sorted ``classes_`` and their columns give the probabilities
and labels recorded here. Do not re-run this script to "refresh" the files:
their whole point is to be old. It is kept to show how they were made.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from skmtl import MultiTaskClassifier, save_model
from skmtl.datasets import make_ad_funnel

HERE = Path(__file__).resolve().parent / "model_files_pos_label"
PARAMS = {
    "expert_layer_sizes": (16,), "tower_layer_sizes": (8,), "batch_size": 128, "max_iter": 2,
    "early_stopping": False, "device": "cpu", "random_state": 0, "funnel": ("click", "conversion"),
    "pos_label": {"click": "click", "conversion": "conv", "rating": 1},
}


def data():
    """Ad-funnel features; string funnel steps whose positive sorts first, and {1, 2} ratings."""
    funnel = make_ad_funnel(600, ctr=0.3, cvr=0.4, n_users=50, n_items=20, random_state=0)
    y = funnel.target
    y = pd.DataFrame({
        "click": np.where(y["click"] == 1, "click", "no_click"),
        "conversion": np.where(y["conversion"] == 1, "conv", "no_conv"),
        "rating": np.where(funnel.data["item_price"] > funnel.data["item_price"].median(), 1, 2),
    })
    return funnel.data, y


def main() -> None:
    X, y = data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        clf = MultiTaskClassifier(**PARAMS).fit(X, y)
    save_model(clf, HERE / "string_funnel.skmtl")
    recorded = {"predict": clf.predict(X).astype(str)}
    for t, proba in enumerate(clf.predict_proba(X)):
        recorded[f"proba/{t}"] = proba
        recorded[f"classes/{t}"] = clf.classes_[t].astype(str)
    np.savez_compressed(HERE / "recorded.npz", **recorded)


if __name__ == "__main__":
    main()
