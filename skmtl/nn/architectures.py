"""Multi-task architectures, each a short composition of :mod:`skmtl.nn.blocks`.

An architecture maps the flat embedded input ``(B, in_features)`` to one logit
tensor per task (``(B,)`` for binary tasks, ``(B, K)`` for ``K`` classes). It is
registered in :data:`ARCHITECTURES` under the name the estimator's
``architecture`` parameter accepts; its ``from_params`` picks the
hyperparameters it uses from the estimator's flat parameter dict.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from .blocks import FeatureEmbedding, Gate, StackedMLP, TaskTowers


class SharedBottom(nn.Module):
    """One shared MLP encoder feeding one tower per task.

    Parameters
    ----------
    in_features : int
        Width of the embedded input.
    n_outputs : sequence of int
        Logits per task (1 for binary tasks).
    expert_layer_sizes : sequence of int
        Layers of the shared encoder.
    tower_layer_sizes : sequence of int
        Hidden layers of every tower.
    activation : str
        Activation of every hidden layer.
    dropout : float
        Dropout after every hidden layer.
    """

    def __init__(
        self,
        in_features: int,
        n_outputs: Sequence[int],
        *,
        expert_layer_sizes: Sequence[int],
        tower_layer_sizes: Sequence[int],
        activation: str = "relu",
        dropout: float = 0.0,
    ):
        super().__init__()
        self.encoder = StackedMLP(1, in_features, expert_layer_sizes, activation, dropout)
        self.towers = TaskTowers(
            self.encoder.out_features, n_outputs, tower_layer_sizes, activation, dropout
        )

    @classmethod
    def from_params(cls, in_features, n_outputs, params: Mapping) -> SharedBottom:
        return cls(
            in_features,
            n_outputs,
            expert_layer_sizes=params["expert_layer_sizes"],
            tower_layer_sizes=params["tower_layer_sizes"],
            activation=params["activation"],
            dropout=params["dropout"],
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.towers(self.encoder(x)[0])  # (B, H) shared by all towers


class MixtureOfExperts(nn.Module):
    """Expert MLPs mixed by softmax gates, then one tower per task.

    With ``n_gates=1`` every task reads the same mixture (MoE, one gate); with
    one gate per task each task mixes the experts its own way (MMoE, Ma et al.,
    KDD 2018). The experts are one :class:`~skmtl.nn.blocks.StackedMLP`: all of
    them are computed by batched matmuls over stacked weights.

    Parameters
    ----------
    in_features : int
        Width of the embedded input.
    n_outputs : sequence of int
        Logits per task (1 for binary tasks).
    n_experts : int
        Number of experts.
    per_task_gates : bool
        False for MoE (one gate), True for MMoE (one gate per task).
    expert_layer_sizes, tower_layer_sizes, activation, dropout
        As in :class:`SharedBottom`.
    gate_temperature : float
        Softmax temperature of the gates.
    expert_input_mask : Tensor of shape (n_experts, in_features), optional
        0/1 mask of the inputs each expert reads: experts dedicated to a
        feature group (e.g. user or item columns, as in two-tower models)
        see only that group's embeddings; shared experts see everything. The
        gates read the whole input and mix all experts.
    """

    def __init__(
        self,
        in_features: int,
        n_outputs: Sequence[int],
        *,
        n_experts: int,
        per_task_gates: bool,
        expert_layer_sizes: Sequence[int],
        tower_layer_sizes: Sequence[int],
        activation: str = "relu",
        dropout: float = 0.0,
        gate_temperature: float = 1.0,
        expert_input_mask: torch.Tensor | None = None,
    ):
        super().__init__()
        n_gates = len(n_outputs) if per_task_gates else 1
        self.experts = StackedMLP(
            n_experts, in_features, expert_layer_sizes, activation, dropout, expert_input_mask
        )
        self.gate = Gate(in_features, n_experts, n_gates, gate_temperature)
        self.towers = TaskTowers(
            self.experts.out_features, n_outputs, tower_layer_sizes, activation, dropout
        )

    @classmethod
    def moe_from_params(cls, in_features, n_outputs, params: Mapping) -> MixtureOfExperts:
        return cls._from_params(in_features, n_outputs, params, per_task_gates=False)

    @classmethod
    def mmoe_from_params(cls, in_features, n_outputs, params: Mapping) -> MixtureOfExperts:
        return cls._from_params(in_features, n_outputs, params, per_task_gates=True)

    @classmethod
    def _from_params(cls, in_features, n_outputs, params, *, per_task_gates):
        mask = params.get("expert_input_mask")
        return cls(
            in_features,
            n_outputs,
            n_experts=params["n_experts"] if mask is None else len(mask),
            per_task_gates=per_task_gates,
            expert_layer_sizes=params["expert_layer_sizes"],
            tower_layer_sizes=params["tower_layer_sizes"],
            activation=params["activation"],
            dropout=params["dropout"],
            gate_temperature=params["gate_temperature"],
            expert_input_mask=mask,
        )

    def gate_weights(self, x: torch.Tensor) -> torch.Tensor:
        """Gate weights ``(B, n_gates, n_experts)`` for the embedded input ``x``."""
        return self.gate(x)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        experts = self.experts(x)  # (E, B, H)
        gates = self.gate(x)  # (B, G, E)
        mixed = torch.bmm(gates, experts.transpose(0, 1)).transpose(0, 1)  # (G, B, H)
        return self.towers(mixed[0] if mixed.shape[0] == 1 else mixed)


ARCHITECTURES: dict[str, Callable[[int, Sequence[int], Mapping], nn.Module]] = {
    "shared_bottom": SharedBottom.from_params,
    "moe": MixtureOfExperts.moe_from_params,
    "mmoe": MixtureOfExperts.mmoe_from_params,
}
"""Registry: architecture name -> builder ``(in_features, n_outputs, params)``."""


class MultiTaskNetwork(nn.Module):
    """Feature embedding followed by a multi-task architecture.

    Parameters
    ----------
    embedding : FeatureEmbedding
        Turns categorical codes and continuous values into one flat vector.
    body : nn.Module
        Maps ``(B, embedding.out_features)`` to a list of per-task logits.

    Shapes
    ------
    ``x_cat`` (B, F_cat) int64, ``x_cont`` (B, F_cont) float32 -> list of
    per-task logits.
    """

    def __init__(self, embedding: FeatureEmbedding, body: nn.Module):
        super().__init__()
        self.embedding = embedding
        self.body = body

    def forward(self, x_cat: torch.Tensor, x_cont: torch.Tensor) -> list[torch.Tensor]:
        return self.body(self.embedding(x_cat, x_cont))


def build_network(
    architecture: str,
    *,
    cardinalities: Sequence[int],
    n_continuous: int,
    n_outputs: Sequence[int],
    params: Mapping,
) -> MultiTaskNetwork:
    """Build the embedding and the registered ``architecture`` (parameters uninitialised)."""
    embedding = FeatureEmbedding(
        cardinalities, n_continuous, params["embedding_dim"], params["category_dropout"]
    )
    body = ARCHITECTURES[architecture](embedding.out_features, n_outputs, params)
    return MultiTaskNetwork(embedding, body)
