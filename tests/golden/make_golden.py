"""Record (or check) the golden outputs that a behaviour-preserving refactor must reproduce.

``predict_proba`` of every built-in architecture under each training variant
(funnel modes, class weights, unknown labels, sample weights, partial_fit,
warm_start) on a small ad-funnel data set, and of the census MMoE after 5
epochs. Run ``python tests/golden/make_golden.py`` to rewrite
``tests/golden/golden_outputs.npz`` (only when a change is MEANT to alter the
fitted models); ``tests/test_golden.py`` compares against it.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from skmtl import MultiTaskClassifier
from skmtl.datasets import load_census_income, make_ad_funnel
from skmtl.nn import ARCHITECTURES

HERE = Path(__file__).resolve().parent
GOLDEN = HERE / "golden_outputs.npz"
N_PREDICT = 200
FUNNEL = ("click", "conversion")
SMALL = dict(
    expert_layer_sizes=(16,), tower_layer_sizes=(8,), n_experts=2, batch_size=128,
    learning_rate_init=5e-3, max_iter=3, device="cpu", random_state=0,
)
VARIANTS = (
    "early_stopping", "esmm", "independent_penalty", "class_weight", "nan_labels",
    "sample_weight", "partial_fit", "warm_start",
)


def _funnel_data():
    zero = make_ad_funnel(1_500, ctr=0.3, cvr=0.4, n_users=200, n_items=80, random_state=0)
    nan = make_ad_funnel(
        1_500, ctr=0.3, cvr=0.4, n_users=200, n_items=80, conversion_when_not_clicked="nan",
        random_state=0,
    )
    return zero.data, zero.target, nan.target


def _proba(clf, X) -> np.ndarray:
    return np.concatenate([p.ravel() for p in clf.predict_proba(X)])


def fit_variant(architecture: str, variant: str, X, y, y_nan) -> np.ndarray:
    """predict_proba (flattened) of one architecture trained one way."""
    params = dict(SMALL, early_stopping=False)
    fit_kwargs = {}
    if variant == "early_stopping":
        params.update(early_stopping=True, validation_fraction=0.2, n_iter_no_change=50)
    elif variant == "esmm":
        params.update(funnel=FUNNEL, funnel_mode="esmm")
    elif variant == "independent_penalty":
        params.update(funnel=FUNNEL, funnel_mode="independent", funnel_penalty=1.0)
    elif variant == "class_weight":
        params.update(class_weight="balanced")
    elif variant == "nan_labels":
        y = y_nan
    elif variant == "sample_weight":
        fit_kwargs["sample_weight"] = np.random.RandomState(1).uniform(0.2, 3.0, len(X))
    clf = MultiTaskClassifier(architecture, **params)
    if variant == "partial_fit":
        half = len(X) // 2
        clf.partial_fit(X.iloc[:half], y.iloc[:half])
        clf.partial_fit(X.iloc[half:], y.iloc[half:])
    elif variant == "warm_start":
        clf.set_params(warm_start=True, max_iter=2)
        clf.fit(X, y)
        clf.fit(X, y)
    else:
        clf.fit(X, y, **fit_kwargs)
    return _proba(clf, X.iloc[:N_PREDICT])


def census_mmoe() -> np.ndarray:
    from sklearn.model_selection import train_test_split

    X, y = load_census_income(return_X_y=True)
    X_train, X_test, y_train, _ = train_test_split(X, y, test_size=0.2, random_state=0)
    clf = MultiTaskClassifier("mmoe", random_state=0, max_iter=5, device="cpu")
    clf.fit(X_train, y_train)
    return _proba(clf, X_test.iloc[:2_000])


def all_outputs(include_census: bool = True) -> dict[str, np.ndarray]:
    """Every golden output, keyed ``architecture/variant`` (and ``census/mmoe``)."""
    X, y, y_nan = _funnel_data()
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for architecture in ARCHITECTURES:
            for variant in VARIANTS:
                out[f"{architecture}/{variant}"] = fit_variant(architecture, variant, X, y, y_nan)
        if include_census:
            out["census/mmoe"] = census_mmoe()
    return out


def machine() -> dict[str, str]:
    """What decides whether outputs can be compared bit for bit."""
    return {
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "numpy": np.__version__,
    }


if __name__ == "__main__":
    torch.set_num_threads(1)  # as tests/conftest.py does for the suite
    outputs = all_outputs()
    np.savez_compressed(GOLDEN, **outputs, **{f"machine/{k}": v for k, v in machine().items()})
    print(f"wrote {len(outputs)} outputs to {GOLDEN}", file=sys.stderr)
