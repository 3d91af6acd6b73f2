"""Plain PyTorch modules behind :class:`skmtl.MultiTaskClassifier`.

Nothing here knows about scikit-learn or pandas: the modules take tensors of
categorical codes and standardised continuous values and return logits.
"""

from .architectures import ARCHITECTURES, MixtureOfExperts, MultiTaskNetwork, SharedBottom, build_network
from .blocks import (
    Dropout,
    FeatureEmbedding,
    Gate,
    StackedLinear,
    StackedMLP,
    TaskTowers,
    attach_generator,
    init_parameters,
)

__all__ = [
    "ARCHITECTURES",
    "Dropout",
    "FeatureEmbedding",
    "Gate",
    "MixtureOfExperts",
    "MultiTaskNetwork",
    "SharedBottom",
    "StackedLinear",
    "StackedMLP",
    "TaskTowers",
    "attach_generator",
    "build_network",
    "init_parameters",
]
