"""The plain PyTorch modules: shapes, gates, gradients, seeded initialisation."""

import numpy as np
import pytest
import torch

from skmtl.losses import multitask_loss
from skmtl.nn import (
    ARCHITECTURES,
    FeatureEmbedding,
    Gate,
    GatedExperts,
    StackedLinear,
    StackedMLP,
    architecture_options,
    attach_generator,
    build_network,
    init_parameters,
)

PARAMS = {
    "embedding_dim": 4,
    "category_dropout": 0.0,
    "expert_layer_sizes": (16, 8),
    "tower_layer_sizes": (6,),
    "n_experts": 3,
    "gate_temperature": 1.0,
    "activation": "relu",
    "dropout": 0.0,
    "n_levels": 2,
    "n_task_experts": 2,
    "n_shared_experts": 1,
    "chain": [0, 1],
}


def _network(architecture, n_outputs=(1, 3), seed=0):
    net = build_network(
        architecture, cardinalities=[4, 6], n_continuous=3, embedding_dim=PARAMS["embedding_dim"],
        n_outputs=list(n_outputs), options=architecture_options(ARCHITECTURES[architecture], PARAMS),
    )
    init_parameters(net, torch.Generator().manual_seed(seed))
    return net


def _batch(n=10, seed=0):
    g = torch.Generator().manual_seed(seed)
    x_cat = torch.stack([torch.randint(0, 4, (n,), generator=g), torch.randint(0, 6, (n,), generator=g)], 1)
    return x_cat, torch.randn(n, 3, generator=g)


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_output_shapes(architecture):
    logits = _network(architecture)(*_batch(10))
    assert [tuple(t.shape) for t in logits] == [(10,), (10, 3)]


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_every_parameter_receives_gradient(architecture):
    net = _network(architecture)
    x_cat, x_cont = _batch(64)
    total, _ = multitask_loss(net(x_cat, x_cont), torch.stack([torch.randint(0, 2, (64,)), torch.randint(0, 3, (64,))], 1))
    total.backward()
    for name, param in net.named_parameters():
        assert param.grad is not None and torch.any(param.grad != 0), name


@pytest.mark.parametrize("architecture", sorted(ARCHITECTURES))
def test_zero_task_weight_gives_its_tower_zero_gradient(architecture):
    net = _network(architecture, n_outputs=(1, 1))
    x_cat, x_cont = _batch(64)
    y = torch.randint(0, 2, (64, 2))
    total, _ = multitask_loss(net(x_cat, x_cont), y, task_weights=torch.tensor([1.0, 0.0]))
    total.backward()
    towers = net.body.towers
    for layer in (towers.head, towers.hidden.layers[0]):
        assert torch.all(layer.weight.grad[1] == 0) and torch.all(layer.bias.grad[1] == 0)
        assert torch.any(layer.weight.grad[0] != 0)
    # The shared parameters get exactly the gradient of task 0 alone.
    shared = {n: p.grad.clone() for n, p in net.named_parameters() if "towers" not in n}
    net.zero_grad()
    total0, _ = multitask_loss([net(x_cat, x_cont)[0], torch.zeros(64)], torch.stack([y[:, 0], torch.full((64,), -1)], 1))
    total0.backward()
    for name, grad in shared.items():
        torch.testing.assert_close(grad, dict(net.named_parameters())[name].grad, rtol=0, atol=0)


def test_mmoe_gates_sum_to_one_and_are_per_task():
    net = _network("mmoe", n_outputs=(1, 1))
    x = net.embedding(*_batch(20))
    gates = net.body.gate_weights(x)
    assert gates.shape == (20, 2, 3)
    torch.testing.assert_close(gates.sum(-1), torch.ones(20, 2))
    assert not torch.allclose(gates[:, 0], gates[:, 1])
    moe = _network("moe", n_outputs=(1, 1))
    assert moe.body.gate_weights(moe.embedding(*_batch(20))).shape == (20, 1, 3)


def test_gate_temperature_flattens_the_mixture():
    gate = Gate(5, 4, 1, temperature=1.0)
    gate.reset_parameters(torch.Generator().manual_seed(0))
    x = torch.randn(50, 5, generator=torch.Generator().manual_seed(1)) * 5
    sharp = gate(x)
    gate.temperature = 100.0
    flat = gate(x)
    assert (flat.max(-1).values < sharp.max(-1).values).all()
    torch.testing.assert_close(flat, torch.full_like(flat, 0.25), atol=0.05, rtol=0)


def test_stacked_mlp_equals_a_loop_over_experts():
    mlp = StackedMLP(3, 5, (7, 4))
    init_parameters(mlp, torch.Generator().manual_seed(0))
    x = torch.randn(11, 5)
    out = mlp(x)
    first, second = mlp.layers[0], mlp.layers[2]
    for e in range(3):
        h = torch.relu(x @ first.weight[e] + first.bias[e])
        expected = torch.relu(h @ second.weight[e] + second.bias[e])
        torch.testing.assert_close(out[e], expected)
    # A (G, B, in) input gives each group its own input.
    xs = torch.randn(3, 11, 5)
    for e in range(3):
        torch.testing.assert_close(mlp(xs)[e], mlp(xs[e])[e])


def test_gated_experts_equal_separate_experts_and_gates():
    """One matmul for the gates and the experts' first layer, checked against a loop."""
    block = GatedExperts(5, n_experts=3, layer_sizes=(7, 4), n_gates=2, temperature=2.0)
    init_parameters(block, torch.Generator().manual_seed(0))
    x = torch.randn(11, 5, generator=torch.Generator().manual_seed(1))
    experts, gates = block(x)
    assert experts.shape == (3, 11, 4) and gates.shape == (11, 2, 3)
    w1, w_gates = block.weight[:, :21], block.weight[:, 21:]
    b1, b_gates = block.bias[:21], block.bias[21:]
    second = block.rest.layers[0]
    for e in range(3):
        h = torch.relu(x @ w1[:, 7 * e:7 * (e + 1)] + b1[7 * e:7 * (e + 1)])
        expected = torch.relu(h @ second.weight[e] + second.bias[e])
        torch.testing.assert_close(experts[e], expected)
    expected_gates = torch.softmax(((x @ w_gates + b_gates) / 2.0).view(11, 2, 3), dim=-1)
    torch.testing.assert_close(gates, expected_gates)
    torch.testing.assert_close(block.gate_weights(x), expected_gates)


def test_gated_experts_read_only_their_masked_inputs():
    mask = torch.tensor([[1.0, 1.0, 0.0, 0.0], [0.0, 0.0, 1.0, 1.0]])
    for layer_sizes in ((6,), ()):
        block = GatedExperts(4, 2, layer_sizes, n_gates=1, input_mask=mask)
        init_parameters(block, torch.Generator().manual_seed(0))
        x = torch.randn(9, 4)
        changed = x.clone()
        changed[:, 2:] += 1.0  # inputs of expert 1 only
        before, gates_before = block(x)
        after, gates_after = block(changed)
        torch.testing.assert_close(after[0], before[0])
        assert not torch.allclose(after[1], before[1])
        assert not torch.allclose(gates_after, gates_before)  # gates read every input


def test_stacked_linear_shapes():
    layer = StackedLinear(2, 3, 4)
    init_parameters(layer, None)
    assert layer(torch.randn(5, 3)).shape == (2, 5, 4)
    assert layer(torch.randn(2, 5, 3)).shape == (2, 5, 4)


def test_embedding_unknown_row_and_continuous_projection():
    emb = FeatureEmbedding.tabular([3, 2], 1, 2)
    init_parameters(emb, torch.Generator().manual_seed(0))
    out = emb(torch.tensor([[0, 1], [2, 0]]), torch.tensor([[0.0], [2.0]]))
    assert out.shape == (2, 6)
    table = emb.kinds["categorical"].weight
    continuous = emb.kinds["continuous"]
    torch.testing.assert_close(out[0, :2], table[0])  # column 0, unknown row
    torch.testing.assert_close(out[1, 2:4], table[3])  # column 1 starts at offset 3, row 0
    torch.testing.assert_close(out[1, 4:], 2.0 * continuous.weight[0] + continuous.bias[0])


def test_unknown_dropout_uses_the_given_generator_only():
    emb = FeatureEmbedding.tabular([5], 0, 2, unknown_rate=0.5)
    init_parameters(emb, torch.Generator().manual_seed(0))
    emb.train()
    codes = torch.full((1000, 1), 3)
    attach_generator(emb, torch.Generator().manual_seed(0))
    state = torch.random.get_rng_state()
    out = emb(codes, torch.empty(1000, 0))
    assert torch.equal(state, torch.random.get_rng_state())
    unknown = (out == emb.kinds["categorical"].weight[0]).all(1).float().mean().item()
    assert 0.4 < unknown < 0.6


def test_seeded_initialisation_is_reproducible_and_leaves_global_rng_alone():
    state = torch.random.get_rng_state()
    a, b = _network("mmoe", seed=3), _network("mmoe", seed=3)
    c = _network("mmoe", seed=4)
    assert torch.equal(state, torch.random.get_rng_state())
    for (name, pa), pb, pc in zip(a.named_parameters(), b.parameters(), c.parameters()):
        assert torch.equal(pa, pb), name
        assert not torch.equal(pa, pc), name


def test_ple_gates_mix_own_and_shared_experts():
    net = _network("ple", n_outputs=(1, 1))
    gates = net.body.gate_weights(net.embedding(*_batch(20)))
    assert gates.shape == (20, 2, 3)  # 2 own experts + 1 shared, per task
    torch.testing.assert_close(gates.sum(-1), torch.ones(20, 2))
    assert len(net.body.levels) == 2
    assert net.body.levels[0].shared_gate is not None and net.body.levels[1].shared_gate is None


def test_ple_task_experts_read_their_own_task_input():
    level = _network("ple", n_outputs=(1, 1)).body.levels[1]
    x = torch.randn(2, 7, level.task_experts.in_features)
    shared = torch.randn(7, level.task_experts.in_features)
    out, _, _ = level(x, shared)
    changed = x.clone()
    changed[1] += 1.0  # only task 1's input changes
    out2, _, _ = level(changed, shared)
    torch.testing.assert_close(out[0], out2[0])
    assert not torch.allclose(out[1], out2[1])


def test_single_task_shares_nothing_between_tasks():
    net = _network("single_task", n_outputs=(1, 1))
    x_cat, x_cont = _batch(32)
    y = torch.randint(0, 2, (32, 2))
    total, _ = multitask_loss(net(x_cat, x_cont), y, task_weights=torch.tensor([1.0, 0.0]))
    total.backward()
    d = PARAMS["embedding_dim"]
    # Task 1's copy of every embedding table and its encoder get no gradient.
    assert torch.all(net.embedding.kinds["categorical"].weight.grad[:, d:] == 0)
    assert torch.any(net.embedding.kinds["categorical"].weight.grad[:, :d] != 0)
    assert torch.all(net.body.encoders.layers[0].weight.grad[1] == 0)


def test_aitm_transfers_information_along_the_chain_only():
    net = _network("aitm", n_outputs=(1, 1))
    x = net.embedding(*_batch(16))
    encoded = net.body.encoders(x)
    # Perturbing task 0's encoder changes task 1's output (transfer), not vice versa.
    out = net.body(x)
    with torch.no_grad():
        net.body.encoders.layers[-2].bias[0] += 1.0
    out_shift = net.body(x)
    assert not torch.allclose(out[1], out_shift[1])
    with torch.no_grad():
        net.body.encoders.layers[-2].bias[0] -= 1.0
        net.body.encoders.layers[-2].bias[1] += 1.0
    out_shift = net.body(x)
    torch.testing.assert_close(out[0], out_shift[0])
    assert encoded.shape[0] == 2


class _TinyCustom(torch.nn.Module):
    def __init__(self, in_features, n_outputs):
        super().__init__()
        self.hidden = torch.nn.Linear(in_features, 8)
        self.norm = torch.nn.LayerNorm(8)
        self.heads = torch.nn.ModuleList(torch.nn.Linear(8, k) for k in n_outputs)

    def forward(self, x):
        h = torch.relu(self.norm(self.hidden(x)))
        return [head(h).squeeze(-1) if head.out_features == 1 else head(h) for head in self.heads]


def test_custom_module_is_initialised_from_the_generator():
    a = build_network(_TinyCustom, cardinalities=[4, 6], n_continuous=3, embedding_dim=4, n_outputs=[1, 3])
    b = build_network(_TinyCustom, cardinalities=[4, 6], n_continuous=3, embedding_dim=4, n_outputs=[1, 3])
    init_parameters(a, torch.Generator().manual_seed(5))
    state = torch.random.get_rng_state()
    init_parameters(b, torch.Generator().manual_seed(5))
    assert torch.equal(state, torch.random.get_rng_state())
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)
    assert torch.all(a.body.norm.weight == 1) and torch.all(a.body.norm.bias == 0)
    bound = 1 / np.sqrt(a.body.hidden.in_features)
    assert a.body.hidden.weight.abs().max() <= bound
    assert [tuple(t.shape) for t in a(*_batch(5))] == [(5,), (5, 3)]


def test_architecture_options_are_the_keyword_arguments_matched_by_name():
    values = {**PARAMS, "unrelated": 1}
    assert architecture_options(ARCHITECTURES["ple"], values) == {
        k: PARAMS[k] for k in (
            "n_levels", "n_task_experts", "n_shared_experts", "expert_layer_sizes",
            "tower_layer_sizes", "activation", "dropout", "gate_temperature",
        )
    }
    assert architecture_options(ARCHITECTURES["aitm"], values)["chain"] == [0, 1]
    assert "per_task_gates" not in architecture_options(ARCHITECTURES["moe"], values)
    moe, mmoe = _network("moe"), _network("mmoe")
    assert moe.body.experts.n_gates == 1 and mmoe.body.experts.n_gates == 2


def test_options_are_refused_for_a_user_defined_architecture():
    with pytest.raises(TypeError, match=r"called as architecture\(in_features, n_outputs\)"):
        build_network(
            _TinyCustom, cardinalities=[4], n_continuous=1, embedding_dim=4, n_outputs=[1],
            options={"n_experts": 2},
        )
