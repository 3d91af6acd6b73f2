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
    StackedLinear,
    StackedMLP,
    TaskTowerGroups,
    TaskTowers,
    attach_generator,
    init_parameters,
    task_towers,
    tower_shapes,
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
    "ProgressiveLayeredExtraction",
    "SharedBottom",
    "SingleTask",
    "StackedLinear",
    "StackedMLP",
    "TaskTowerGroups",
    "TaskTowers",
    "architecture_options",
    "attach_generator",
    "build_network",
    "embedding_copies",
    "init_parameters",
    "task_towers",
    "tower_shapes",
]
