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
    pack_fixed,
    sparse_entries,
    unpack_fixed,
)
from course_utils.sharing import kmeans_share, share_layer


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
    n = int(layer.mask.sum())  # gaps never exceed 256 in a 40-wide row, so no fillers
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
    last = int(layer.mask.flatten().nonzero().max())
    assert (encoded.count, encoded.nbytes()["positions"]) == (last + 1, 0)
    assert torch.equal(decode_weight(encoded), layer.weight.detach())
