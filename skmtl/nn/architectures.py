"""Multi-task architectures, each a short composition of :mod:`skmtl.nn.blocks`.

An architecture maps the flat embedded input ``(B, in_features)`` to one logit
tensor per task (``(B,)`` for binary tasks, ``(B, K)`` for ``K`` classes). It is
registered in :data:`ARCHITECTURES` under the name the estimator's
``architecture`` parameter accepts. Its constructor is called as
``cls(in_features, n_outputs, **options)``, where ``options`` are the
estimator's values for the class's keyword-only arguments, matched by name
(:func:`architecture_options`): an argument named like an estimator parameter
(``n_experts``, ``gate_temperature``, ``expert_layer_sizes``...) receives it.
Adding an architecture is a class plus one registry entry: the estimator, the
model files and the training loop do not change.

An architecture that sets ``per_task_embeddings = True`` receives one copy of
the embedded input per task, ``(T, B, in_features)``, from independent tables.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping, Sequence

import torch
from torch import nn

from .blocks import (
    AttentionTransfer,
    Dropout,
    FeatureEmbedding,
    Gate,
    GatedExperts,
    StackedLinear,
    StackedMLP,
    task_towers,
)


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
    tower_layer_sizes : sequence of int, or sequence of sequences of int
        Hidden layers of every tower, or one sequence per task (see
        :func:`~skmtl.nn.blocks.task_towers`).
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
        self.towers = task_towers(
            self.encoder.out_features, n_outputs, tower_layer_sizes, activation, dropout
        )


    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.towers(self.encoder(x)[0])  # (B, H) shared by all towers


class MixtureOfExperts(nn.Module):
    """Expert MLPs mixed by softmax gates, then one tower per task.

    With ``n_gates=1`` every task reads the same mixture (MoE, one gate); with
    one gate per task each task mixes the experts its own way (MMoE, Ma et al.,
    KDD 2018). Experts and gates are one :class:`~skmtl.nn.blocks.GatedExperts`:
    the gates and the experts' first layer are one matmul, the experts' further
    layers batched matmuls over stacked weights.

    Parameters
    ----------
    in_features : int
        Width of the embedded input.
    n_outputs : sequence of int
        Logits per task (1 for binary tasks).
    n_experts : int
        Number of experts.
    per_task_gates : bool, optional
        False for MoE (one gate), True for MMoE (one gate per task); by
        default the class's own ``per_task_gates`` (:class:`MoE`: False,
        :class:`MMoE`: True).
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
        per_task_gates: bool | None = None,
        expert_layer_sizes: Sequence[int],
        tower_layer_sizes: Sequence[int],
        activation: str = "relu",
        dropout: float = 0.0,
        gate_temperature: float = 1.0,
        expert_input_mask: torch.Tensor | None = None,
    ):
        super().__init__()
        if per_task_gates is None:
            per_task_gates = type(self).per_task_gates
        n_gates = len(n_outputs) if per_task_gates else 1
        self.experts = GatedExperts(
            in_features, n_experts, expert_layer_sizes, n_gates, activation, dropout,
            gate_temperature, expert_input_mask,
        )
        self.towers = task_towers(
            self.experts.out_features, n_outputs, tower_layer_sizes, activation, dropout
        )

    per_task_gates = True

    def gate_weights(self, x: torch.Tensor) -> torch.Tensor:
        """Gate weights ``(B, n_gates, n_experts)`` for the embedded input ``x``."""
        return self.experts.gate_weights(x)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        experts, gates = self.experts(x)  # (E, B, H), (B, G, E)
        # Broadcast multiply and sum over experts: (G, B, E, 1) * (1, B, E, H) -> (G, B, H);
        # faster here than a bmm over B tiny (G, E) @ (E, H) products. With E next to H
        # the sum reads contiguous blocks (summing over a leading E axis is slower).
        mixed = (gates.transpose(0, 1).unsqueeze(-1) * experts.transpose(0, 1).unsqueeze(0)).sum(2)
        return self.towers(mixed[0] if mixed.shape[0] == 1 else mixed)


class MoE(MixtureOfExperts):
    """Experts mixed by ONE softmax gate shared by all tasks (see :class:`MixtureOfExperts`)."""

    per_task_gates = False


class MMoE(MixtureOfExperts):
    """Experts mixed by one softmax gate PER task (see :class:`MixtureOfExperts`)."""

    per_task_gates = True


class SingleTask(nn.Module):
    """No sharing: one independent network per task (the baseline to beat).

    Each task has its own embedding tables (``per_task_embeddings``), its own
    MLP encoder (``expert_layer_sizes``) and its own tower; all tasks are still
    computed together by batched matmuls.

    Parameters
    ----------
    in_features : int
        Width of each task's embedded input.
    n_outputs : sequence of int
        Logits per task (1 for binary tasks).
    expert_layer_sizes, tower_layer_sizes, activation, dropout
        As in :class:`SharedBottom`.
    """

    per_task_embeddings = True

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
        self.encoders = StackedMLP(len(n_outputs), in_features, expert_layer_sizes, activation, dropout)
        self.towers = task_towers(
            self.encoders.out_features, n_outputs, tower_layer_sizes, activation, dropout
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.towers(self.encoders(x))  # x: (T, B, in), one embedding per task


class ExtractionLevel(nn.Module):
    """One level of PLE (a CGC layer): task-specific and shared experts, gated.

    Each task's gate mixes that task's own experts and the shared experts; a
    shared gate (all levels but the last) mixes every expert to feed the next
    level's shared experts.

    Parameters
    ----------
    in_features : int
        Width of the level's inputs.
    n_tasks : int
        ``T``.
    n_task_experts, n_shared_experts : int
        Experts per task, and shared experts.
    layer_sizes : sequence of int
        Layers of every expert.
    activation, dropout
        As in :class:`~skmtl.nn.blocks.StackedMLP`.
    temperature : float
        Softmax temperature of the gates.
    shared_gate : bool
        Whether to compute the shared output for a next level.

    Notes
    -----
    Shapes: task input (B, in) or (T, B, in), shared input (B, in) -> task output
    (T, B, H), shared output (B, H) or None, task gates (T, B, n_task + n_shared).
    """

    def __init__(
        self,
        in_features: int,
        n_tasks: int,
        n_task_experts: int,
        n_shared_experts: int,
        layer_sizes: Sequence[int],
        activation: str,
        dropout: float,
        temperature: float,
        shared_gate: bool,
    ):
        super().__init__()
        self.n_tasks = n_tasks
        self.n_task_experts = n_task_experts
        self.temperature = temperature
        self.task_experts = StackedMLP(
            n_tasks * n_task_experts, in_features, layer_sizes, activation, dropout
        )
        self.shared_experts = StackedMLP(n_shared_experts, in_features, layer_sizes, activation, dropout)
        self.task_gates = StackedLinear(n_tasks, in_features, n_task_experts + n_shared_experts)
        n_all = n_tasks * n_task_experts + n_shared_experts
        self.shared_gate = Gate(in_features, n_all, 1, temperature) if shared_gate else None
        self.out_features = self.shared_experts.out_features

    def forward(self, task_in: torch.Tensor, shared_in: torch.Tensor):
        T, E = self.n_tasks, self.n_task_experts
        if task_in.dim() == 3:  # each task's experts read that task's input
            task_in_per_expert = task_in.repeat_interleave(E, dim=0)
        else:
            task_in_per_expert = task_in
        task_out = self.task_experts(task_in_per_expert)  # (T*E, B, H)
        batch, width = task_out.shape[1], task_out.shape[2]
        shared_out = self.shared_experts(shared_in)  # (S, B, H)
        gates = torch.softmax(self.task_gates(task_in) / self.temperature, dim=-1)  # (T, B, E+S)
        candidates = torch.cat(
            [task_out.view(T, E, batch, width), shared_out.expand(T, -1, -1, -1)], dim=1
        )  # (T, E+S, B, H)
        task_next = torch.einsum("tebh,tbe->tbh", candidates, gates)
        shared_next = None
        if self.shared_gate is not None:
            everything = torch.cat([task_out, shared_out])  # (T*E+S, B, H)
            weights = self.shared_gate(shared_in)[:, 0]  # (B, T*E+S)
            shared_next = torch.einsum("ebh,be->bh", everything, weights)
        return task_next, shared_next, gates


class ProgressiveLayeredExtraction(nn.Module):
    """PLE (Tang et al., RecSys 2020): stacked extraction levels, then towers.

    One level is CGC (Customized Gate Control).

    Parameters
    ----------
    in_features : int
        Width of the embedded input.
    n_outputs : sequence of int
        Logits per task (1 for binary tasks).
    n_levels : int
        Number of extraction levels.
    n_task_experts, n_shared_experts : int
        Experts per task and shared experts, at every level.
    expert_layer_sizes, tower_layer_sizes, activation, dropout, gate_temperature
        As in :class:`MixtureOfExperts`.
    """

    def __init__(
        self,
        in_features: int,
        n_outputs: Sequence[int],
        *,
        n_levels: int,
        n_task_experts: int,
        n_shared_experts: int,
        expert_layer_sizes: Sequence[int],
        tower_layer_sizes: Sequence[int],
        activation: str = "relu",
        dropout: float = 0.0,
        gate_temperature: float = 1.0,
    ):
        super().__init__()
        levels = []
        width = in_features
        for level in range(n_levels):
            levels.append(
                ExtractionLevel(
                    width, len(n_outputs), n_task_experts, n_shared_experts, expert_layer_sizes,
                    activation, dropout, gate_temperature, shared_gate=level < n_levels - 1,
                )
            )
            width = levels[-1].out_features
        self.levels = nn.ModuleList(levels)
        self.towers = task_towers(width, n_outputs, tower_layer_sizes, activation, dropout)


    def _levels(self, x: torch.Tensor):
        task_in, shared_in, gates = x, x, None
        for level in self.levels:
            task_in, shared_in, gates = level(task_in, shared_in)
        return task_in, gates

    def gate_weights(self, x: torch.Tensor) -> torch.Tensor:
        """Last level's task gates ``(B, T, n_task_experts + n_shared_experts)``.

        For task ``t`` the expert axis lists its own experts, then the shared ones.
        """
        return self._levels(x)[1].permute(1, 0, 2)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.towers(self._levels(x)[0])


class AdaptiveInformationTransfer(nn.Module):
    """AITM (Xi et al., KDD 2021) for ordered tasks such as click -> conversion.

    Every task has its own encoder ``q_t`` (an MLP of ``expert_layer_sizes``
    on the shared embeddings). Along the chain, task ``t`` receives what task
    ``t-1`` passes on through an :class:`~skmtl.nn.blocks.AttentionTransfer`
    unit, which decides by attention how much of it to use; tasks outside the
    chain use their own encoding. Each task then has its tower. The paper's
    behavioural expectation calibrator (a penalty when a later step's
    probability exceeds the earlier one's) is the estimator's
    ``funnel_penalty`` with ``funnel_mode="independent"``.

    Parameters
    ----------
    in_features : int
        Width of the embedded input.
    n_outputs : sequence of int
        Logits per task (1 for binary tasks).
    chain : sequence of int
        Task indices in order; all tasks in their order when empty.
    expert_layer_sizes, tower_layer_sizes, activation, dropout
        As in :class:`SharedBottom`.
    """

    def __init__(
        self,
        in_features: int,
        n_outputs: Sequence[int],
        *,
        chain: Sequence[int] = (),
        expert_layer_sizes: Sequence[int],
        tower_layer_sizes: Sequence[int],
        activation: str = "relu",
        dropout: float = 0.0,
    ):
        super().__init__()
        self.chain = [int(t) for t in chain] or list(range(len(n_outputs)))
        self.encoders = StackedMLP(len(n_outputs), in_features, expert_layer_sizes, activation, dropout)
        width = self.encoders.out_features
        self.transfers = nn.ModuleList(AttentionTransfer(width) for _ in self.chain[1:])
        self.towers = task_towers(width, n_outputs, tower_layer_sizes, activation, dropout)


    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        encoded = self.encoders(x)  # (T, B, H)
        outputs = list(encoded.unbind(0))
        for previous, task, transfer in zip(self.chain[:-1], self.chain[1:], self.transfers):
            outputs[task] = transfer(outputs[previous], encoded[task])
        return self.towers(torch.stack(outputs))


ARCHITECTURES: dict[str, type[nn.Module]] = {
    "shared_bottom": SharedBottom,
    "moe": MoE,
    "mmoe": MMoE,
    "ple": ProgressiveLayeredExtraction,
    "aitm": AdaptiveInformationTransfer,
    "single_task": SingleTask,
}
"""Registry: architecture name -> class called as ``cls(in_features, n_outputs, **options)``."""


def architecture_options(cls, values: Mapping) -> dict:
    """The keyword-only arguments of ``cls``'s constructor that ``values`` holds.

    Parameters
    ----------
    cls : type
        An architecture class (its constructor takes ``in_features``,
        ``n_outputs`` and keyword-only hyperparameters).
    values : mapping
        Candidate values by name (e.g. the estimator's resolved parameters);
        names the class does not take are left out.

    Returns
    -------
    options : dict
        ``{name: values[name]}`` for every keyword-only argument of ``cls``
        found in ``values``; the others keep their defaults.
    """
    accepted = inspect.signature(cls).parameters.values()
    return {p.name: values[p.name] for p in accepted if p.kind is p.KEYWORD_ONLY and p.name in values}


class MultiTaskNetwork(nn.Module):
    """Feature embedding followed by a multi-task architecture.

    Parameters
    ----------
    embedding : FeatureEmbedding
        Turns the encoded columns (one tensor per column kind) into one flat vector.
    body : nn.Module
        Maps ``(B, embedding.out_features)`` to a list of per-task logits.
    embedding_dropout : float, default=0.0
        While training, dropout on the embedded input (every value of the
        flat vector zeroed with this probability, the others scaled by
        ``1 / (1 - p)``) before the body reads it. With 0 the network has no
        dropout module there at all (its structure is the same as without
        the argument).

    Notes
    -----
    Shapes: one tensor per column kind (e.g. ``x_cat`` (B, F_cat) int64, ``x_cont``
    (B, F_cont) float32) -> list of per-task logits.
    """

    def __init__(self, embedding: FeatureEmbedding, body: nn.Module, embedding_dropout: float = 0.0):
        super().__init__()
        self.embedding = embedding
        if embedding_dropout > 0:
            self.embedding_dropout = Dropout(embedding_dropout)
        self.body = body

    def forward(self, *inputs: torch.Tensor) -> list[torch.Tensor]:
        x = self.embedding(*inputs)
        dropout = self._modules.get("embedding_dropout")  # absent when p = 0
        return self.body(x if dropout is None else dropout(x))


def embedding_copies(architecture, n_tasks: int) -> int:
    """Copies of the embedding ``architecture`` reads: one per task if it shares nothing."""
    cls = ARCHITECTURES.get(architecture) if isinstance(architecture, str) else None
    return n_tasks if getattr(cls, "per_task_embeddings", False) else 1


def build_network(
    architecture,
    *,
    cardinalities: Sequence[int] = (),
    n_continuous: int = 0,
    embedding_dim: int,
    category_dropout: float = 0.0,
    n_outputs: Sequence[int],
    options: Mapping | None = None,
    token_embeddings: Mapping[str, nn.Module] | None = None,
    embedding_dropout: float = 0.0,
) -> MultiTaskNetwork:
    """Build the embedding and the architecture (parameters uninitialised).

    Parameters
    ----------
    architecture : str or callable
        A name from :data:`ARCHITECTURES`, or a user-defined ``nn.Module``
        class or factory called as ``architecture(in_features, n_outputs)``
        whose module maps the embedded input ``(B, in_features)`` to a list of
        per-task logits.
    cardinalities, n_continuous, embedding_dim, category_dropout
        The categorical tables and continuous columns of
        :meth:`FeatureEmbedding.tabular <skmtl.nn.blocks.FeatureEmbedding.tabular>`,
        used when ``token_embeddings`` is None.
    n_outputs : sequence of int
        Logits per task (1 for binary tasks).
    options : mapping, default=None
        Keyword arguments of a built-in architecture's class (see
        :func:`architecture_options`); must be empty for a user-defined one.
    token_embeddings : mapping of str to callable, default=None
        The column kinds' token embeddings, each a factory called with the
        number of copies (:func:`embedding_copies`) and returning the module
        (see :class:`~skmtl.nn.blocks.FeatureEmbedding`).
    embedding_dropout : float, default=0.0
        Dropout on the embedded input while training (see
        :class:`MultiTaskNetwork`).
    """
    options = dict(options or {})
    copies = embedding_copies(architecture, len(n_outputs))
    if token_embeddings is None:
        embedding = FeatureEmbedding.tabular(
            cardinalities, n_continuous, embedding_dim, category_dropout, copies
        )
    else:
        kinds = {name: make(copies) for name, make in token_embeddings.items()}
        embedding = FeatureEmbedding(kinds, embedding_dim, copies)
    if isinstance(architecture, str):
        body = ARCHITECTURES[architecture](embedding.out_features, list(n_outputs), **options)
    else:
        if options:
            raise TypeError(
                f"A user-defined architecture is called as architecture(in_features, "
                f"n_outputs); got options {sorted(options)}."
            )
        body = architecture(embedding.out_features, list(n_outputs))
        if not isinstance(body, nn.Module):
            raise TypeError(
                f"architecture={architecture!r} returned {type(body).__name__}, not a "
                "torch.nn.Module."
            )
    return MultiTaskNetwork(embedding, body, embedding_dropout)


def check_module_outputs(
    network: nn.Module, inputs: Sequence, n_outputs: Sequence[int], task_names: Sequence[str]
) -> None:
    """Refuse a user architecture whose outputs do not match the tasks, on a probe batch.

    The network (in eval mode, without gradients, then back in its mode) must
    return a list or tuple of one tensor per task: ``(batch,)`` where the task
    has one logit (binary classes, a regression target), ``(batch, K)`` for K
    classes. Without this check a wrong shape trained silently or failed in
    the loss with an error that did not name the module.
    """
    batch = int(inputs[0].shape[0])
    was_training = network.training
    network.eval()
    try:
        with torch.no_grad():
            outputs = network(*inputs)
    finally:
        network.train(was_training)
    expected = [(batch,) if k == 1 else (batch, int(k)) for k in n_outputs]
    contract = (
        f"a list of {len(expected)} tensors, one per task in y's column order: (batch,) for a "
        "task with one logit (binary classes or a regression target), (batch, K) for K classes"
    )
    if not isinstance(outputs, (list, tuple)) or len(outputs) != len(expected):
        got = (f"{type(outputs).__name__} of {len(outputs)}" if isinstance(outputs, (list, tuple))
               else type(outputs).__name__)
        raise ValueError(f"The architecture's module returned {got}; it must return {contract}.")
    for name, output, shape in zip(task_names, outputs, expected):
        if not isinstance(output, torch.Tensor) or tuple(output.shape) != shape:
            got = tuple(output.shape) if isinstance(output, torch.Tensor) else type(output)
            raise ValueError(
                f"The architecture's module returned {got} for task {name!r} on a batch of "
                f"{batch} rows, where {shape} was expected; it must return {contract}."
            )
