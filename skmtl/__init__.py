"""skmtl: multi-task deep learning (shared-bottom, MoE, MMoE, PLE, AITM) as scikit-learn estimators.

The public faces are :class:`MultiTaskClassifier` and :class:`MultiTaskRegressor`; :mod:`skmtl.metrics` holds
multi-task scorers, :mod:`skmtl.model_selection` a ``cross_val_predict`` that
keeps unknown labels unknown, :mod:`skmtl.datasets` the bundled data and
generators, and :mod:`skmtl.nn` the plain PyTorch modules.
"""

from . import datasets, metrics, model_selection
from ._classifier import MultiTaskClassifier
from ._config import config_context, get_config, set_config
from ._persistence import load_model, save_model
from ._regressor import MultiTaskRegressor
from ._warnings import UntrainableTaskWarning

__version__ = "0.1.0"

__all__ = [
    "MultiTaskClassifier",
    "MultiTaskRegressor",
    "UntrainableTaskWarning",
    "__version__",
    "config_context",
    "datasets",
    "get_config",
    "load_model",
    "metrics",
    "model_selection",
    "save_model",
    "set_config",
]
