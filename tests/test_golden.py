"""The fitted models reproduce the recorded golden outputs (tests/golden/make_golden.py).

A refactor that should not change behaviour must keep these bit for bit. On a
machine whose torch version or CPU kernels differ from the recording's, floating
point may round differently, so there the comparison allows 1e-5.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "golden"))
import make_golden

sys.path.pop(0)

GOLDEN = np.load(make_golden.GOLDEN)
RECORDED_ON = {k.split("/", 1)[1]: str(GOLDEN[k]) for k in GOLDEN.files if k.startswith("machine/")}
SAME_MACHINE = RECORDED_ON == make_golden.machine()


def _compare(actual, expected):
    if SAME_MACHINE:
        np.testing.assert_array_equal(actual, expected)
    else:
        np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def funnel_data():
    return make_golden._funnel_data()


@pytest.mark.parametrize("variant", make_golden.VARIANTS)
@pytest.mark.parametrize("architecture", list(make_golden.ARCHITECTURES))
def test_golden_outputs(architecture, variant, funnel_data):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        actual = make_golden.fit_variant(architecture, variant, *funnel_data)
    _compare(actual, GOLDEN[f"{architecture}/{variant}"])


@pytest.mark.slow
def test_golden_census_mmoe():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        actual = make_golden.census_mmoe()
    _compare(actual, GOLDEN["census/mmoe"])
