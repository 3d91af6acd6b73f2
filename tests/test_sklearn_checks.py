"""scikit-learn's own estimator checks, for every architecture."""

import pytest
import torch
from sklearn.utils.estimator_checks import (
    check_dataframe_column_names_consistency,
    check_param_validation,
    parametrize_with_checks,
)

from skmtl import MultiTaskClassifier
from skmtl.nn import ARCHITECTURES


class LinearHeads(torch.nn.Module):
    """A user-defined architecture: one linear head per task on the embeddings."""

    def __init__(self, in_features, n_outputs):
        super().__init__()
        self.heads = torch.nn.ModuleList(torch.nn.Linear(in_features, k) for k in n_outputs)

    def forward(self, x):
        return [h(x)[:, 0] if h.out_features == 1 else h(x) for h in self.heads]


ESTIMATORS = [
    MultiTaskClassifier(architecture=name, random_state=0) for name in sorted(ARCHITECTURES)
] + [MultiTaskClassifier(architecture=LinearHeads, random_state=0)]


SAMPLE_WEIGHT_EQUIVALENCE = (
    "Mini-batch training in float32: weighting a row by 2 is not bit-for-bit the same "
    "optimisation path as repeating it (batches differ), so the fitted models differ."
)


def expected_failed_checks(estimator):
    return {
        "check_sample_weight_equivalence_on_dense_data": SAMPLE_WEIGHT_EQUIVALENCE,
        # The same check on a sparse X (input_tags.sparse), for the same reason.
        "check_sample_weight_equivalence_on_sparse_data": SAMPLE_WEIGHT_EQUIVALENCE,
    }


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: str(e.architecture))
def test_param_validation(estimator):
    check_param_validation(type(estimator).__name__, estimator)


@pytest.mark.parametrize("estimator", ESTIMATORS, ids=lambda e: str(e.architecture))
def test_dataframe_column_names_consistency(estimator):
    check_dataframe_column_names_consistency(type(estimator).__name__, estimator)
