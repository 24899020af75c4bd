import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from course_utils import huffman
from course_utils.deep_compression import (
    decode_weight,
    encode_layer,
    encode_model,
    pack_fixed,
    share_pruned,
    sparse_entries,
    unpack_fixed,
)
from course_utils.gap import GapNet
from course_utils.pruning import apply_masks, layer_masks, prunable_weights, pruned_copy
from course_utils.sharing import kmeans_share, load_shared, share_layer, shared_weight


def test_huffman_lengths_and_canonical_codes_by_hand():
    symbols = [0] * 5 + [1] * 2 + [2] + [3]  # counts 5, 2, 1, 1
    lengths = huffman.code_lengths(symbols)
    assert lengths == {0: 1, 1: 2, 2: 3, 3: 3}
    assert huffman.canonical_codes(lengths) == {0: "0", 1: "10", 2: "110", 3: "111"}
    data = huffman.encode(symbols, lengths)
    assert len(data) == 2  # 5*1 + 2*2 + 3 + 3 = 15 bits
    assert huffman.decode(data, lengths, len(symbols)) == symbols


def test_huffman_with_one_distinct_symbol():
    lengths = huffman.code_lengths([7, 7, 7])
    assert lengths == {7: 1}
    assert huffman.decode(huffman.encode([7, 7, 7], lengths), lengths, 3) == [7, 7, 7]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.integers(0, 20), min_size=1, max_size=300))
def test_huffman_round_trip_and_kraft_equality(symbols):
    lengths = huffman.code_lengths(symbols)
    assert huffman.decode(huffman.encode(symbols, lengths), lengths, len(symbols)) == symbols
    if len(lengths) > 1:
        assert sum(2.0 ** -n for n in lengths.values()) == pytest.approx(1.0)  # a full binary tree


def test_huffman_refuses_truncated_data():
    lengths = huffman.code_lengths([0, 1, 2, 2])
    with pytest.raises(ValueError, match="complete codes"):
        huffman.decode(huffman.encode([0, 1, 2, 2], lengths)[:0], lengths, 4)


@settings(max_examples=50, deadline=None)
@given(st.integers(1, 12), st.lists(st.integers(0, 4095), max_size=100))
def test_fixed_width_round_trip(bits, values):
    values = [v % 2**bits for v in values]
    data = pack_fixed(np.array(values), bits)
    assert len(data) == (len(values) * bits + 7) // 8
    assert unpack_fixed(data, bits, len(values)).tolist() == values


def test_fixed_width_refuses_values_too_large():
    with pytest.raises(ValueError, match="0..7"):
        pack_fixed(np.array([8]), 3)


def test_sparse_entries_with_a_filler_by_hand():
    mask = torch.zeros(12, dtype=torch.bool)
    mask[[1, 2, 11]] = True
    index = torch.arange(12) % 3 + 1
    gaps, values = sparse_entries(mask, index, position_bits=2)  # gaps up to 4 fit
    # position 1: gap 2 -> stored 1; position 2: gap 1 -> 0; position 11: gap 9 = 4 + 4 + 1 -> two
    # fillers then 0
    assert gaps.tolist() == [1, 0, 3, 3, 0]
    assert values.tolist() == [2, 3, 0, 0, 3]


def shared_layer(seed: int, sparsity: float, k: int, size: tuple[int, int] = (40, 30)) -> nn.Linear:
    torch.manual_seed(seed)
    layer = nn.Linear(*size)
    w = layer.weight.detach()
    mask = w.abs() > w.abs().flatten().quantile(sparsity)
    codebook, indices = kmeans_share(w, k, mask)
    share_layer(layer, codebook, indices, mask)
    return layer


@pytest.mark.parametrize("use_huffman", [False, True])
@pytest.mark.parametrize("position_bits", [2, 5])
def test_encoded_layer_decodes_to_the_shared_weight(use_huffman, position_bits):
    layer = shared_layer(0, sparsity=0.9, k=15)
    encoded = encode_layer(layer, position_bits, use_huffman, "fc")
    assert encoded.value_bits == 4  # 15 shared values + the zero entry
    assert torch.equal(decode_weight(encoded), layer.weight.detach())


def test_byte_count_of_the_fixed_width_form():
    layer = shared_layer(1, sparsity=0.5, k=7)
    encoded = encode_layer(layer, position_bits=8, use_huffman=False, name="fc")
    n = int(shared_weight(layer).mask.sum())  # gaps never exceed 256 in a 40-wide row: no fillers
    assert encoded.count == n
    assert encoded.nbytes() == {"values": (3 * n + 7) // 8, "positions": n, "tables": 0,
                                "codebook": 7 * 4, "bias": 30 * 4,
                                # name "fc" (1 + 2); 2 dimensions (1 + 2 * 4); count, bit widths,
                                # flags, codebook size (4 + 1 + 1 + 1 + 2); 2 stream lengths (2 * 4)
                                "header": 3 + 9 + 9 + 8}
    huff = encode_layer(layer, position_bits=8, use_huffman=True, name="fc")
    assert huff.nbytes()["tables"] == 2**3 + 2**8


@pytest.mark.parametrize("use_huffman, best", [(False, 5), (True, 7)])
def test_position_width_sweep_brackets_its_optimum(use_huffman, best):
    # notebook 10 sweeps 0..12 bits and asserts each best width lies strictly inside: the bytes fall
    # while a wider field saves fillers, then rise as every entry (fixed width) or the code-length
    # table of 2**p bytes (Huffman) grows
    layer = shared_layer(2, sparsity=0.925, k=31, size=(400, 100))  # 3,000 of 40,000 kept
    sizes = [encode_layer(layer, p, use_huffman, "fc").total_bytes() for p in range(13)]
    assert sizes.index(min(sizes)) == best
    assert all(a > b for a, b in zip(sizes[:best], sizes[1:best + 1], strict=True))
    assert all(a < b for a, b in zip(sizes[best:-1], sizes[best + 1:], strict=True))


def test_zero_position_bits_store_every_position_up_to_the_last_kept():
    layer = shared_layer(3, sparsity=0.9, k=7)
    encoded = encode_layer(layer, position_bits=0, use_huffman=False, name="fc")
    last = int(shared_weight(layer).mask.flatten().nonzero().max())
    assert (encoded.count, encoded.nbytes()["positions"]) == (last + 1, 0)
    assert torch.equal(decode_weight(encoded), layer.weight.detach())


def nested_mlp() -> nn.Sequential:
    return nn.Sequential(nn.Flatten(), nn.Sequential(nn.Linear(784, 16), nn.ReLU()),
                         nn.Linear(16, 10))


# (model, sparsities and bits of its layers by module name, the zeros the sparsities make)
NESTED = {
    "sequential": (nested_mlp, {"1.0": 0.9, "2": 0.5}, {"1.0": 3, "2": 2},
                   {"1.0": 11_290, "2": 80}),  # round(0.9 * 12,544) and 0.5 * 160
    "gapnet": (GapNet, {"block1.0": 0.5, "block3.0": 0.8, "head.classifier": 0.9},
               {"block1.0": 4, "block3.0": 5, "head.classifier": 3},
               {"block1.0": 72, "block3.0": 11_059, "head.classifier": 576}),
}


@pytest.mark.parametrize("use_huffman", [False, True])
@pytest.mark.parametrize("network", NESTED)
def test_nested_layers_share_encode_and_decode_by_module_name(network, use_huffman):
    make, sparsity, bits, zeros = NESTED[network]
    torch.manual_seed(0)
    pruned = pruned_copy(make(), sparsity)
    shared = share_pruned(pruned, bits)
    encoded = encode_model(shared, list(bits), position_bits=5, use_huffman=use_huffman)
    assert list(encoded) == [code.name for code in encoded.values()] == list(bits)
    for name, b in bits.items():
        before = pruned.get_submodule(name).weight.detach()
        after = shared.get_submodule(name).weight.detach()
        assert int((before == 0).sum()) == int((after == 0).sum()) == zeros[name]
        assert torch.equal(after == 0, before == 0)
        assert 1 < after[after != 0].unique().numel() <= 2**b - 1
        code = encoded[name]
        assert code.value_bits == b and code.shape == tuple(before.shape)
        decoded = decode_weight(code)
        assert torch.equal(decoded, after)
        assert int((decoded == 0).sum()) == zeros[name]
    for name in set(prunable_weights(pruned)) - set(bits):  # the other layers are left alone
        assert torch.equal(shared.get_submodule(name).weight, pruned.get_submodule(name).weight)

    restored = pruned_copy(pruned, {})  # the pruned model, with the decoded weights put back
    with torch.no_grad():
        for name, code in encoded.items():
            restored.get_submodule(name).weight.copy_(decode_weight(code))
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        assert torch.allclose(restored.eval()(x), shared.eval()(x), atol=1e-5)


def test_a_shared_layer_refuses_masks_and_others_take_them():
    torch.manual_seed(0)
    shared = share_pruned(pruned_copy(nested_mlp(), {"1.0": 0.5}), {"1.0": 2})
    with pytest.raises(ValueError, match="layer '1.0' has a computed weight"):
        apply_masks(shared, {"1.0": torch.zeros(16, 784, dtype=torch.bool)})
    with pytest.raises(ValueError, match="layer '1.0' has a computed weight"):
        prunable_weights(shared)
    apply_masks(shared, layer_masks(shared, {"2": 0.5}))  # "2" is not shared: pruned as before
    assert int((shared.get_submodule("2").weight == 0).sum()) == 80
    assert int((shared.get_submodule("1.0").weight == 0).sum()) == 6_272  # 0.5 * 12,544


def test_a_shared_model_saved_and_loaded_encodes_to_the_same_bytes():
    torch.manual_seed(0)
    pruned = pruned_copy(nested_mlp(), {"1.0": 0.5, "2": 0.5})
    bits = {"1.0": 3, "2": 2}
    shared = share_pruned(pruned, bits)
    loaded = load_shared(nested_mlp(), shared.state_dict())  # a fresh model, shared as saved
    for use_huffman in (False, True):
        encoded = encode_model(shared, list(bits), position_bits=4, use_huffman=use_huffman)
        again = encode_model(loaded, list(bits), position_bits=4, use_huffman=use_huffman)
        for name, code in encoded.items():
            assert code.to_bytes() == again[name].to_bytes()
            assert torch.equal(decode_weight(code), loaded.get_submodule(name).weight.detach())
    x = torch.randn(3, 1, 28, 28)
    assert torch.equal(loaded.eval()(x), shared.eval()(x))
    with pytest.raises(RuntimeError, match="Unexpected key"):
        nested_mlp().load_state_dict(shared.state_dict())
