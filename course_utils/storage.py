"""How many bytes each stored thing takes: the course's one storage model.

Modelled sizes: ``count`` values of ``bits`` bits each are packed end to end and rounded up to
whole bytes (:func:`packed_bytes`); every float is fp32 (:data:`FP32_BITS`: weights, biases,
codebook entries, scales); a sparse matrix in compressed sparse row (CSR) form is its nonzero
values, a column index per value and ``rows + 1`` row pointers (:func:`csr_bits`).

Measured sizes: what ``torch.save`` writes (:func:`serialized_bytes`), a real file's
``os.path.getsize``, and the compact file's own fields (``compact.part_bytes``).

It imports nothing from the rest of ``course_utils``, so that every module may use it.
"""

from __future__ import annotations

import io

import torch

BITS_PER_BYTE = 8
FP32_BITS = 32  # bits of one float32 value


def whole_bytes(bits: int) -> int:
    """Bytes that hold ``bits`` bits: rounded up to whole bytes."""
    if bits < 0:
        raise ValueError(f"bits must be at least 0, got {bits}")
    return -(-bits // BITS_PER_BYTE)


def packed_bytes(count: int, bits: int) -> int:
    """Bytes of ``count`` values of ``bits`` bits each, packed end to end and rounded up to whole
    bytes (10 values of 3 bits: 30 bits, 4 bytes)."""
    if count < 0 or bits < 0:
        raise ValueError(f"count and bits must be at least 0, got {count} and {bits}")
    return whole_bytes(count * bits)


def csr_bits(rows: int, nonzeros: int, index_bits: int = 32, value_bits: int = FP32_BITS,
             pointer_bits: int | None = None) -> int:
    """Bits of a ``rows``-row matrix in CSR form: ``nonzeros`` values of ``value_bits``, as many
    column indices of ``index_bits`` and ``rows + 1`` row pointers of ``pointer_bits`` (default
    ``index_bits``)."""
    pointer_bits = index_bits if pointer_bits is None else pointer_bits
    return nonzeros * (value_bits + index_bits) + (rows + 1) * pointer_bits


def serialized_bytes(tensors: dict) -> int:
    """Bytes that ``torch.save`` writes for ``tensors`` (a dict of tensors, or of such dicts): a
    measurement, the size the file on disk has, with torch's own headers."""
    buffer = io.BytesIO()
    torch.save(tensors, buffer)
    return buffer.getbuffer().nbytes
