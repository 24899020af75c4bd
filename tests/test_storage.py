import ast
import os

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from course_utils import storage
from course_utils.storage import (
    BITS_PER_BYTE,
    FP32_BITS,
    csr_bits,
    packed_bytes,
    serialized_bytes,
    whole_bytes,
)


def test_packed_bytes_round_up_to_whole_bytes():
    assert packed_bytes(10, 3) == 4  # 30 bits
    assert packed_bytes(7, 1) == 1 and packed_bytes(9, 1) == 2
    assert packed_bytes(0, 8) == 0 and packed_bytes(5, 0) == 0
    assert packed_bytes(110, FP32_BITS) == 440 and packed_bytes(110, 8) == 110
    assert whole_bytes(0) == 0 and whole_bytes(1) == 1 and whole_bytes(16) == 2
    assert FP32_BITS == 32 and BITS_PER_BYTE == 8


def test_negative_counts_and_widths_are_refused():
    for count, bits in [(-1, 8), (4, -1)]:
        with pytest.raises(ValueError):
            packed_bytes(count, bits)
    with pytest.raises(ValueError):
        whole_bytes(-8)


@given(st.integers(0, 10**9), st.integers(0, 64))
def test_packed_bytes_are_the_fewest_bytes_that_hold_the_bits(count, bits):
    n = packed_bytes(count, bits)
    if count * bits == 0:
        assert n == 0
    else:
        assert n * 8 >= count * bits > (n - 1) * 8


def test_csr_bits_count_values_indices_and_row_pointers():
    # [[0, 2, 0], [1, 0, 3]]: 3 values, 3 column indices, 2 + 1 row pointers
    assert csr_bits(2, 3) == 3 * 32 + 3 * 32 + 3 * 32
    assert csr_bits(2, 3, index_bits=16, value_bits=8) == 3 * 8 + 3 * 16 + 3 * 16
    assert csr_bits(2, 3, index_bits=5, pointer_bits=32) == 3 * 32 + 3 * 5 + 3 * 32
    assert csr_bits(4, 0) == 5 * 32  # no nonzero: the row pointers only


def test_serialized_bytes_is_the_size_of_the_file_torch_save_writes(tmp_path):
    tensors = {"w": torch.arange(1000, dtype=torch.float32), "i": torch.arange(10).int()}
    path = tmp_path / "tensors.pt"
    torch.save(tensors, path)
    assert serialized_bytes(tensors) == os.path.getsize(path)
    payload = packed_bytes(1000, FP32_BITS) + packed_bytes(10, 32)
    assert serialized_bytes(tensors) > payload  # the raw bytes, and torch's own headers


def test_the_storage_model_imports_nothing_of_the_course():
    tree = ast.parse(open(storage.__file__).read())
    imported = [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                and (node.level or (node.module or "").startswith("course_utils"))]
    imported += [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for alias in node.names if alias.name.startswith("course_utils")]
    assert imported == []
