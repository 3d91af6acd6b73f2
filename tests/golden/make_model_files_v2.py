"""Write the format-version-2 model files that every later skmtl must still load.

These files were written ONCE, by skmtl at commit ``7832ca4`` (model file format
version 2: ``network_spec_`` with ``cardinalities`` and ``n_continuous``, the
column encoder stored as ``is_categorical``, ``vocabularies_``, ``mean_`` and
``scale_``, the embedding's tensors named ``embedding.categorical_weight``...),
and are committed under ``tests/golden/model_files_v2/`` with the probabilities
they predicted. ``tests/test_persistence.py`` loads them with the current code
and checks the probabilities. Do not re-run this script to "refresh" them: their
whole point is to be old. It is kept to show how they were made.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from skmtl import MultiTaskClassifier, save_model
from skmtl.datasets import make_ad_funnel

HERE = Path(__file__).resolve().parent / "model_files_v2"
SMALL = dict(
    expert_layer_sizes=(16,), tower_layer_sizes=(8,), batch_size=128, max_iter=2,
    early_stopping=False, device="cpu", random_state=0,
)
MODELS = {
    # MMoE with dedicated experts per feature group, an ESMM funnel, negative sampling.
    "mmoe_groups_funnel": dict(
        architecture="mmoe", n_experts=2, funnel=("click", "conversion"),
        feature_groups={"user": ["user_segment", "user_activity", "user_age"], "item": ["item_category", "item_price"]},
        negative_sampling_rate=0.5, gate_temperature=2.0,
    ),
    # Per-task embedding copies, category dropout, capped vocabularies.
    "single_task_dropout": dict(
        architecture="single_task", embedding_dim="auto", category_dropout=0.2, max_categories=3,
    ),
    # Continuous columns only (no categorical table).
    "moe_continuous_only": dict(architecture="moe", n_experts=2, categorical_features=None),
}


def data():
    funnel = make_ad_funnel(600, ctr=0.3, cvr=0.4, n_users=50, n_items=20, random_state=0)
    return funnel.data, funnel.target


def inputs(name, X):
    """The columns model ``name`` was fitted on."""
    if name == "moe_continuous_only":
        return X.select_dtypes("number")
    return X


def main() -> None:
    X, y = data()
    expected = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, params in MODELS.items():
            clf = MultiTaskClassifier(**SMALL, **params).fit(inputs(name, X), y)
            save_model(clf, HERE / f"{name}.skmtl")
            for t, proba in enumerate(clf.predict_proba(inputs(name, X))):
                expected[f"{name}/{t}"] = proba
    np.savez(HERE / "expected_proba.npz", **expected)


if __name__ == "__main__":
    main()
