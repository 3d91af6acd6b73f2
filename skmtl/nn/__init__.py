"""Plain PyTorch modules behind :class:`skmtl.MultiTaskClassifier`.

Nothing here knows about scikit-learn or pandas: the modules take one tensor per
column kind (categorical codes, standardised continuous values, ...) and return logits.
"""

from .architectures import (
    ARCHITECTURES,
    AdaptiveInformationTransfer,
    ExtractionLevel,
    MixtureOfExperts,
    MMoE,
    MoE,
    MultiTaskNetwork,
    ProgressiveLayeredExtraction,
    SharedBottom,
    SingleTask,
    architecture_options,
    build_network,
    embedding_copies,
)
from .blocks import (
    AttentionTransfer,
    CategoricalEmbedding,
    ContinuousEmbedding,
    Dropout,
    FeatureEmbedding,
    Gate,
    GatedExperts,
    PeriodicEmbedding,
    PiecewiseLinearEmbedding,
    StackedLinear,
    StackedMLP,
    TaskTowers,
    attach_generator,
    init_parameters,
)

__all__ = [
    "ARCHITECTURES",
    "AdaptiveInformationTransfer",
    "AttentionTransfer",
    "CategoricalEmbedding",
    "ContinuousEmbedding",
    "Dropout",
    "ExtractionLevel",
    "FeatureEmbedding",
    "Gate",
    "GatedExperts",
    "MMoE",
    "MixtureOfExperts",
    "MoE",
    "MultiTaskNetwork",
    "PeriodicEmbedding",
    "PiecewiseLinearEmbedding",
    "ProgressiveLayeredExtraction",
    "SharedBottom",
    "SingleTask",
    "StackedLinear",
    "StackedMLP",
    "TaskTowers",
    "architecture_options",
    "attach_generator",
    "build_network",
    "embedding_copies",
    "init_parameters",
]
