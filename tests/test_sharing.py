import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn.utils import parametrize

from course_utils import evaluate
from course_utils.cost import layer_costs, size_bytes
from course_utils.sharing import (
    cluster_weights,
    fine_tune_shared,
    index_bits,
    kmeans,
    kmeans_quantize,
    kmeans_share,
    lloyd_step,
    load_shared,
    product_quantize,
    residual_quantize,
    share_layer,
    shared_weight,
    train_and_cluster,
)
from course_utils.zoo import build_model


def optimal_1d_inertia(values: list[float], k: int) -> float:
    """Reference: in 1-D the best clusters are contiguous runs of the sorted values; try every
    split."""
    xs = sorted(values)
    best = float("inf")
    for cuts in itertools.combinations(range(1, len(xs)), k - 1):
        groups = [xs[a:b] for a, b in zip((0, *cuts), (*cuts, len(xs)), strict=True)]
        best = min(best, sum(sum((v - sum(g) / len(g)) ** 2 for v in g) for g in groups))
    return best


def inertia(x: torch.Tensor, centroids: torch.Tensor, assign: torch.Tensor) -> float:
    return (x - centroids[assign]).pow(2).sum().item()


def test_kmeans_finds_three_obvious_clusters():
    x = torch.tensor([0.0, 0.1, 0.2, 5.0, 5.1, 9.0, 9.2, 9.4])[:, None]
    centroids, assign = kmeans(x, 3)
    assert sorted(round(c, 4) for c in centroids.flatten().tolist()) == [0.1, 5.05, 9.2]
    assert assign[0] == assign[2] != assign[3] == assign[4] != assign[5] == assign[7]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(-50, 50), min_size=4, max_size=12), st.integers(2, 4))
def test_kmeans_ends_at_a_fixed_point_of_lloyd(values, k):
    x = torch.tensor(values, dtype=torch.float32)[:, None] / 10
    if len(set(values)) < k:
        return
    centroids, assign = kmeans(x, k)
    # every point at its nearest centroid
    assert torch.equal(torch.cdist(x, centroids).argmin(1), assign)
    for c in assign.unique():
        # every centroid a mean
        assert centroids[c].item() == pytest.approx(x[assign == c].mean().item(), abs=1e-5)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.lists(st.integers(0, 9), min_size=1, max_size=3), min_size=2, max_size=3))
def test_kmeans_matches_the_brute_force_optimum_on_separated_groups(groups):
    # groups 100 apart, spread < 1
    values = [100 * g + v / 10 for g, members in enumerate(groups) for v in members]
    x = torch.tensor(values)[:, None]
    centroids, assign = kmeans(x, len(groups))
    assert inertia(x, centroids, assign) == pytest.approx(optimal_1d_inertia(values, len(groups)),
                                                          abs=1e-3)


def test_kmeans_is_repeatable_and_batched_sets_are_independent():
    torch.manual_seed(0)
    x = torch.randn(3, 40, 2)
    c1, a1 = kmeans(x, 4, seed=7)
    c2, a2 = kmeans(x, 4, seed=7)
    assert torch.equal(c1, c2) and torch.equal(a1, a2)
    assert c1.shape == (3, 4, 2) and a1.shape == (3, 40)
    single, _ = kmeans(x[1], 4, iters=0, init="linear")
    assert torch.allclose(single[0], x[1].amin(0)) and torch.allclose(single[-1], x[1].amax(0))


def test_k_larger_than_the_number_of_weights_is_refused():
    with pytest.raises(ValueError, match="k must lie in 1..5"):
        kmeans(torch.zeros(5, 1), 6)
    with pytest.raises(ValueError, match="init"):
        kmeans(torch.zeros(5, 1), 2, init="random")


def test_kmeans_share_codebook_size_assignment_and_bits():
    w = torch.tensor([[0.0, 0.11, -1.0], [0.9, 1.0, -0.9]])
    codebook, indices = kmeans_share(w, 3)
    assert codebook.shape == (3,)
    assert codebook.tolist() == pytest.approx([-0.95, 0.055, 0.95])
    assert indices.tolist() == [[1, 1, 0], [2, 2, 0]]
    q = kmeans_quantize(w, 3)
    assert q.bits == 6 * 2 + 3 * 32 and index_bits(3) == 2
    assert q.nbytes == 14  # 108 bits, rounded up to whole bytes
    assert torch.equal(q.weight, codebook[indices])


def test_kmeans_share_clusters_only_the_kept_weights():
    w = torch.tensor([0.0, 0.0, 0.0, 1.0, 2.0])
    codebook, _ = kmeans_share(w, 2, mask=w != 0)
    assert sorted(codebook.tolist()) == [1.0, 2.0]


def test_shared_weights_train_as_one_and_gather_their_gradients():
    layer = nn.Linear(3, 2, bias=False)
    indices = torch.tensor([[0, 1, 0], [1, 1, 0]])
    share_layer(layer, torch.tensor([0.5, -1.0]), indices)
    assert layer.weight.tolist() == [[0.5, -1.0, 0.5], [-1.0, -1.0, 0.5]]
    x = torch.tensor([[1.0, 2.0, 3.0]])
    layer(x).sum().backward()
    # dL/dW[i, j] = x[j]; centroid 0 is shared by (0,0), (0,2), (1,2): 1 + 3 + 3; centroid 1:
    # 2 + 1 + 2
    assert shared_weight(layer).codebook.grad.tolist() == [7.0, 5.0]
    torch.optim.SGD(layer.parameters(), lr=0.1).step()
    w = layer.weight.detach()  # rebuilt from the updated codebook at every read
    assert w[0, 0] == w[0, 2] == w[1, 2] == pytest.approx(0.5 - 0.7)
    assert [n for n, _ in layer.named_parameters()] == ["parametrizations.weight.0.codebook"]


def test_share_layer_keeps_pruned_weights_at_zero():
    layer = nn.Linear(2, 2, bias=False)
    share_layer(layer, torch.tensor([1.0]), torch.zeros(2, 2, dtype=torch.long),
                mask=torch.tensor([[True, False], [False, True]]))
    assert layer.weight.tolist() == [[1.0, 0.0], [0.0, 1.0]]


def shared_lenet300(k: int = 3, seed: int = 0) -> nn.Module:
    """A random LeNet-300-100 with every layer's weights shared among k values (half pruned)."""
    torch.manual_seed(seed)
    model = build_model("lenet300")
    for layer in model.children():
        w = layer.weight.detach()
        mask = w.abs() > w.abs().median()
        share_layer(layer, *kmeans_share(w, k, mask), mask)
    return model


def test_a_shared_layer_shows_its_sharing():
    layer = shared_lenet300().fc2
    assert type(layer).__name__ == "ParametrizedLinear" and isinstance(layer, nn.Linear)
    assert parametrize.is_parametrized(layer, "weight")
    parts = shared_weight(layer)
    assert torch.equal(layer.weight, parts.codebook[parts.indices] * parts.mask)
    assert sorted(n for n, _ in layer.named_parameters()) == [
        "bias", "parametrizations.weight.0.codebook"]  # the old weight is gone
    assert sorted(n for n, _ in layer.named_buffers()) == [
        "parametrizations.weight.0.indices", "parametrizations.weight.0.mask"]
    with pytest.raises(RuntimeError, match="cannot be assigned"):
        layer.weight = torch.zeros(100, 300)
    with pytest.raises(ValueError, match="already parametrized"):
        share_layer(layer, torch.tensor([1.0]), torch.zeros(100, 300, dtype=torch.long))
    with pytest.raises(ValueError, match="not shared"):
        shared_weight(nn.Linear(2, 2))
    with pytest.raises(ValueError, match=r"shape \(2, 3\)"):
        share_layer(nn.Linear(2, 2), torch.tensor([1.0]), torch.zeros(2, 3, dtype=torch.long))


def test_state_dict_of_a_shared_model_round_trips():
    model = shared_lenet300().eval()
    x = torch.randn(5, 1, 28, 28)
    state = model.state_dict()
    assert "fc1.weight" not in state and "fc1.parametrizations.weight.0.codebook" in state
    fresh = load_shared(build_model("lenet300"), state).eval()  # shares, then loads
    assert torch.equal(fresh(x), model(x))
    again = shared_lenet300(seed=1).eval()  # shared the same way, other values
    again.load_state_dict(state)
    assert torch.equal(again(x), model(x))
    with pytest.raises(RuntimeError, match="Unexpected key.*parametrizations.weight.0.codebook"):
        build_model("lenet300").load_state_dict(state)  # a plain model refuses, loudly
    with pytest.raises(RuntimeError, match="size mismatch"):
        shared_lenet300(k=4).load_state_dict(state)


def test_removing_the_sharing_leaves_the_shared_weight():
    model = shared_lenet300()
    x = torch.randn(2, 1, 28, 28)
    before, weight = model(x), model.fc1.weight.detach().clone()
    parametrize.remove_parametrizations(model.fc1, "weight")
    assert type(model.fc1) is nn.Linear and isinstance(model.fc1.weight, nn.Parameter)
    assert torch.equal(model.fc1.weight, weight) and torch.equal(model(x), before)


def test_fine_tuning_trains_codebooks_and_biases_as_a_recomputed_weight_would(monkeypatch):
    # reference: the weight as a plain attribute that a forward pre-hook recomputes from the
    # codebook, no parametrization (how share_layer worked before it became one)
    def hooked(layer: nn.Module, codebook, indices, mask) -> None:
        del layer.weight
        layer.codebook = nn.Parameter(codebook.clone())
        layer.register_forward_pre_hook(
            lambda m, _: setattr(m, "weight", m.codebook[indices] * mask))

    model, reference = shared_lenet300(), build_model("lenet300")
    reference.load_state_dict({k: v for k, v in model.state_dict().items() if k.endswith("bias")},
                              strict=False)
    for name, layer in model.named_children():
        parts = shared_weight(layer)
        hooked(reference.get_submodule(name), parts.codebook.detach(), parts.indices, parts.mask)
    generator = torch.Generator().manual_seed(0)
    batches = [(torch.randn(16, 1, 28, 28, generator=generator),
                torch.randint(0, 10, (16,), generator=generator)) for _ in range(4)]
    # on the CPU: a GPU adds a centroid's gradients in no fixed order, not bit-reproducible
    monkeypatch.setattr("course_utils.training.default_device", lambda: torch.device("cpu"))
    for m in (model, reference):
        fine_tune_shared(m, batches, epochs=2, lr=1e-2, progress=False)
    trained = [p.detach() for p in model.parameters()]
    assert [n.rsplit(".", 1)[-1] for n, _ in model.named_parameters()] == ["bias", "codebook"] * 3
    # equal up to the order in which threads add a centroid's gradients (bit for bit on 1 thread)
    for a, b in zip(trained, reference.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert not torch.equal(trained[1], shared_weight(shared_lenet300().fc1).codebook)  # moved


def test_layer_costs_of_a_shared_model_count_codebooks_and_every_mac():
    plain, shared = layer_costs(build_model("lenet300")), layer_costs(shared_lenet300(k=3))
    assert [(c.name, c.kind, c.macs) for c in shared] == [(c.name, c.kind, c.macs) for c in plain]
    assert [c.params for c in shared if c.kind == "Linear"] == [303, 103, 13]  # biases + k = 3


def test_size_bytes_refuses_a_shared_model():
    with pytest.raises(ValueError, match="fc1, fc2, fc3.*encode_layer"):
        size_bytes(shared_lenet300())


def test_product_quantization_with_as_many_centroids_as_rows_is_exact():
    torch.manual_seed(0)
    w = torch.randn(4, 6)
    q = product_quantize(w, d=2, k=4)
    assert torch.allclose(q.weight, w)
    # 3 blocks x 4 rows x 2-bit index + 3 codebooks of 4 x 2 floats
    assert q.bits == 3 * 4 * 2 + 3 * 4 * 2 * 32


def test_product_quantization_rebuilds_each_block_from_its_own_codebook():
    w = torch.tensor([[1.0, 1.0, 5.0, 5.0], [1.0, 1.0, 5.0, 5.0], [3.0, 3.0, 7.0, 7.0]])
    q = product_quantize(w, d=2, k=2)
    assert torch.equal(q.weight, w)
    with pytest.raises(ValueError, match="divide"):
        product_quantize(w, d=3, k=2)


def test_residual_quantization_error_shrinks_stage_after_stage():
    torch.manual_seed(0)
    w = torch.randn(32, 16)
    errors = [(residual_quantize(w, d=4, k=8, stages=s).weight - w).norm().item()
              for s in (1, 2, 3)]
    assert errors[0] > errors[1] > errors[2]
    assert residual_quantize(w, d=4, k=8, stages=2).bits == 2 * (128 * 3 + 8 * 4 * 32)


def test_shared_layer_lives_on_the_layers_device(other_device, one_device):
    layer = nn.Linear(3, 2, bias=False).to(other_device)
    indices = torch.tensor([[0, 1, 0], [1, 1, 0]])  # fresh, on the CPU, like kmeans_share's
    mask = torch.tensor([[True, True, False], [True, True, True]])
    with one_device():
        share_layer(layer, torch.tensor([0.5, -1.0]), indices, mask)
        y = layer(torch.ones(1, 3, device=other_device))  # (1, 2)
    parts = shared_weight(layer)
    assert ({t.device for t in (parts.codebook, parts.indices, parts.mask, layer.weight, y)}
            == {other_device})
    if other_device.type != "meta":  # values exist
        assert y.tolist() == [[-0.5, -1.5]]


def test_lloyd_step_assigns_then_moves_and_keeps_an_empty_cluster():
    points = torch.tensor([[0.0], [1.0], [10.0], [11.0]])
    moved, assign = lloyd_step(points, torch.tensor([[0.0], [50.0], [10.0]]))
    assert assign.tolist() == [0, 0, 2, 2]
    assert moved.flatten().tolist() == [0.5, 50.0, 10.5]
    batched, batch_assign = lloyd_step(points[None].repeat(2, 1, 1),
                                       torch.tensor([[[0.0], [10.0]]] * 2))
    assert batched.flatten().tolist() == [0.5, 10.5, 0.5, 10.5]
    assert batch_assign.tolist() == [[0, 0, 1, 1]] * 2


def test_cluster_weights_sets_every_weight_to_its_centroid_and_leaves_biases():
    layer = nn.Linear(3, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.0, 0.11, -1.0], [0.9, 1.0, -0.9]]))
        layer.bias.copy_(torch.tensor([0.3, -0.2]))
    cluster_weights(nn.Sequential(layer), 3)
    assert layer.weight.tolist() == [
        [pytest.approx(0.055), pytest.approx(0.055), pytest.approx(-0.95)],
        [pytest.approx(0.95), pytest.approx(0.95), pytest.approx(-0.95)]]
    assert layer.bias.tolist() == [pytest.approx(0.3), pytest.approx(-0.2)]
    assert isinstance(layer.weight, nn.Parameter)  # still an ordinary, trainable weight


def _blobs(n: int, seed: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Two Gaussian blobs in 4-D, centred at -1 and +1 in every coordinate, as 16-example
    batches."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(2, (n,), generator=g)
    x = (2.0 * y[:, None] - 1) + 0.5 * torch.randn(n, 4, generator=g)  # (n, 4)
    return list(zip(x.split(16), y.split(16), strict=True))


def test_train_and_cluster_trains_then_shares_every_round():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).to("cpu")
    cluster_weights(model, 2)
    before = [w.detach().clone() for w in (model[0].weight, model[2].weight)]
    val = _blobs(64, seed=1)
    rounds = train_and_cluster(model, [_blobs(64, seed=2), _blobs(64, seed=3)], val, k=2,
                               make_optimizer=lambda p: torch.optim.Adam(p, lr=0.05),
                               progress=False)
    assert len(rounds) == 2
    for w, old in zip((model[0].weight, model[2].weight), before, strict=True):
        assert w.unique().numel() <= 2  # shared again after the last round
        assert not torch.equal(w, old)  # ... but trained in between
    assert rounds[-1].acc_clustered == evaluate(model, val)
    assert rounds[-1].acc_clustered == 1.0  # the blobs are 4 standard deviations apart


def test_train_and_cluster_without_a_step_is_clustering_again_which_changes_nothing():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)).to("cpu")
    cluster_weights(model, 3)
    state = {name: t.clone() for name, t in model.state_dict().items()}
    rounds = train_and_cluster(model, [_blobs(32, seed=2)], _blobs(32, seed=1), k=3,
                               make_optimizer=lambda p: torch.optim.SGD(p, lr=0.0), progress=False)
    for name, t in model.state_dict().items():
        assert torch.allclose(t.cpu(), state[name].cpu(), atol=1e-6), name  # a mean of equal values
    assert rounds[0].acc_trained == rounds[0].acc_clustered
