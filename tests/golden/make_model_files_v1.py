"""Write the format-version-1 model files that every later skmtl must still load.

These files were written ONCE, by skmtl at commit ``d8b89b1`` (model file format
version 1, before ``network_spec_`` existed), and are committed under
``tests/golden/model_files_v1/`` with the probabilities they predicted.
``tests/test_persistence.py`` loads them with the current code and checks the
probabilities bit for bit (1e-6 on another torch or CPU). Do not re-run this
script to "refresh" them: their whole point is to be old. It is kept to show
how they were made.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from skmtl import MultiTaskClassifier, save_model
from skmtl.datasets import make_ad_funnel

HERE = Path(__file__).resolve().parent / "model_files_v1"
SMALL = dict(
    expert_layer_sizes=(16,), tower_layer_sizes=(8,), batch_size=128, max_iter=2,
    early_stopping=False, device="cpu", random_state=0,
)
MODELS = {
    # PLE with one level and a non-default temperature (the temperature is not in the repr).
    "ple_cgc": dict(architecture="ple", n_levels=1, gate_temperature=0.5),
    # MMoE with dedicated experts per feature group (an expert input mask), an ESMM
    # funnel and a negative-sampling offset.
    "mmoe_groups_funnel": dict(
        architecture="mmoe", n_experts=2, funnel=("click", "conversion"),
        feature_groups={"user": ["user_segment", "user_activity", "user_age"], "item": ["item_category", "item_price"]},
        negative_sampling_rate=0.5, gate_temperature=2.0,
    ),
    # AITM along a funnel (its chain comes from the funnel), independent mode.
    "aitm_funnel": dict(
        architecture="aitm", funnel=("click", "conversion"), funnel_mode="independent",
        funnel_penalty=0.5,
    ),
    "single_task": dict(architecture="single_task", embedding_dim="auto"),
}


def data():
    funnel = make_ad_funnel(600, ctr=0.3, cvr=0.4, n_users=50, n_items=20, random_state=0)
    return funnel.data, funnel.target


def main() -> None:
    X, y = data()
    expected = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, params in MODELS.items():
            clf = MultiTaskClassifier(**SMALL, **params).fit(X, y)
            save_model(clf, HERE / f"{name}.skmtl")
            for t, proba in enumerate(clf.predict_proba(X)):
                expected[f"{name}/{t}"] = proba
    np.savez(HERE / "expected_proba.npz", **expected)


if __name__ == "__main__":
    main()
