"""Pruning and weight sharing together, every byte counted (notebook 10; Han et al. 2016).

A pruned, weight-shared layer is stored as a list of *entries*, one per kept weight, in row-major
order. Each entry holds

- a relative position: the gap to the previous entry minus 1, in ``position_bits`` bits. A gap
  larger than ``2**position_bits`` is bridged by *filler* entries of value 0;
- a value index into the codebook, in ``value_bits`` bits. Index 0 means 0.0 (used by fillers);
  indices 1..k-1 point at the layer's k-1 shared values.

Both streams are written either at fixed width or Huffman-coded. The bias stays fp32.
:meth:`EncodedLayer.fields` writes a layer as the record of the course's compact file
(:mod:`course_utils.compact`, notebook 13), and every byte count of an encoded layer comes from it.
"""

from __future__ import annotations

import copy
import struct
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from . import huffman
from .sharing import index_bits, kmeans_share, share_layer, shared_weight
from .zoo import build_model

HUFFMAN, HAS_BIAS = 1, 2  # the flags of a layer record
PARTS = ("values", "positions", "tables", "codebook", "bias", "header")  # of a layer record


def length_prefixed(text: str) -> bytes:
    """``text`` in UTF-8 after its length in bytes (u8): how the compact file stores a name."""
    data = text.encode()
    if len(data) > 255:
        raise ValueError(f"name {text!r} is longer than 255 bytes")
    return struct.pack("<B", len(data)) + data


def fp32_bytes(tensor: torch.Tensor) -> bytes:
    """A tensor's values as little-endian fp32, 4 bytes each."""
    return tensor.detach().cpu().numpy().astype("<f4").tobytes()


def lengths_table(lengths: dict[int, int], bits: int) -> bytes:
    """Huffman code lengths as one byte per possible symbol, ``2**bits`` of them (0: unused)."""
    table = np.zeros(2**bits, dtype=np.uint8)
    for symbol, length in lengths.items():
        table[symbol] = length
    return table.tobytes()


def pack_fixed(values: np.ndarray, bits: int) -> bytes:
    """Non-negative integers below ``2**bits``, each in exactly ``bits`` bits, packed MSB first."""
    values = np.asarray(values, dtype=np.int64)
    if values.size and (values.min() < 0 or values.max() >= 2**bits):
        raise ValueError(f"values must lie in 0..{2**bits - 1}")
    shifts = np.arange(bits - 1, -1, -1)
    return np.packbits(((values[:, None] >> shifts) & 1).astype(np.uint8).ravel()).tobytes()


def unpack_fixed(data: bytes, bits: int, count: int) -> np.ndarray:
    """Inverse of ``pack_fixed``: ``count`` integers of ``bits`` bits each."""
    flat = np.unpackbits(np.frombuffer(data, dtype=np.uint8))[: count * bits]
    if flat.size != count * bits:
        raise ValueError(f"{len(data)} bytes cannot hold {count} values of {bits} bits")
    return (flat.reshape(count, bits).astype(np.int64) << np.arange(bits - 1, -1, -1)).sum(axis=1)


def sparse_entries(mask: torch.Tensor, value_index: torch.Tensor,
                   position_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """Stored gaps and value indices of the kept weights (``mask``), fillers included.

    ``value_index`` (shaped like ``mask``) holds each weight's codebook index, 1..k-1.
    """
    positions = mask.flatten().nonzero().flatten().cpu().numpy()
    gaps = np.diff(positions, prepend=-1)  # >= 1
    values = value_index.flatten().cpu().numpy()[positions]
    max_gap = 2**position_bits
    fillers = (gaps - 1) // max_gap  # zero entries needed before each kept weight
    stored_gaps, stored_values = [], []
    for gap, value, n_fill in zip(gaps, values, fillers, strict=True):
        stored_gaps += [max_gap - 1] * int(n_fill) + [int(gap - 1 - n_fill * max_gap)]
        stored_values += [0] * int(n_fill) + [int(value)]
    return np.array(stored_gaps, dtype=np.int64), np.array(stored_values, dtype=np.int64)


@dataclass
class EncodedLayer:
    """One layer in the compressed format: its record in the compact file, and its bytes per
    part."""

    name: str  # the layer's module name (model.get_submodule(name))
    shape: tuple[int, ...]
    count: int  # entries, fillers included
    value_bits: int
    position_bits: int
    codebook: torch.Tensor  # (k - 1,) fp32 shared values
    values: bytes
    positions: bytes
    value_lengths: dict[int, int] | None  # Huffman code lengths, or None for fixed width
    position_lengths: dict[int, int] | None
    bias: torch.Tensor | None

    def fields(self) -> list[tuple[str, bytes]]:
        """The layer's record in the compact file, field by field in file order, each with the part
        of :data:`PARTS` it belongs to (the layout is in :mod:`course_utils.compact`)."""
        huffman_coded = self.value_lengths is not None
        flags = (HUFFMAN if huffman_coded else 0) | (HAS_BIAS if self.bias is not None else 0)
        ndim = len(self.shape)
        fields = [("header", length_prefixed(self.name)),
                  ("header", struct.pack(f"<B{ndim}I", ndim, *self.shape)),
                  ("header", struct.pack("<IBBBH", self.count, self.value_bits, self.position_bits,
                                         flags, self.codebook.numel())),
                  ("codebook", fp32_bytes(self.codebook))]
        if huffman_coded:
            fields += [("tables", lengths_table(self.value_lengths, self.value_bits)),
                       ("tables", lengths_table(self.position_lengths, self.position_bits))]
        fields += [("header", struct.pack("<I", len(self.values))), ("values", self.values),
                   ("header", struct.pack("<I", len(self.positions))),
                   ("positions", self.positions)]
        if self.bias is not None:
            fields.append(("bias", fp32_bytes(self.bias)))
        return fields

    def to_bytes(self) -> bytes:
        """The layer's record, as the compact file stores it."""
        return b"".join(data for _, data in self.fields())

    def nbytes(self) -> dict[str, int]:
        """Bytes of each part of :data:`PARTS` in the record: value indices, positions, Huffman
        tables (one length byte per possible symbol), codebook, bias and header (the name, shape,
        entry count, bit widths, flags, codebook size and the streams' lengths)."""
        sizes = dict.fromkeys(PARTS, 0)
        for part, data in self.fields():
            sizes[part] += len(data)
        return sizes

    def total_bytes(self) -> int:
        """Bytes of the whole record."""
        return sum(self.nbytes().values())


def _stream(symbols: np.ndarray, bits: int,
            use_huffman: bool) -> tuple[bytes, dict[int, int] | None]:
    if use_huffman:
        lengths = huffman.code_lengths(symbols.tolist())
        return huffman.encode(symbols.tolist(), lengths), lengths
    return pack_fixed(symbols, bits), None


def encode_layer(layer: nn.Module, position_bits: int, use_huffman: bool,
                 name: str) -> EncodedLayer:
    """Encode a layer made weight-shared by ``sharing.share_layer`` (its ``codebook``,
    ``indices`` and ``mask`` are ``sharing.shared_weight(layer)``'s), under its module ``name``;
    ``value_bits`` follows from the codebook size plus the zero entry."""
    shared = shared_weight(layer)
    codebook = shared.codebook.detach().cpu().float()
    value_bits = index_bits(codebook.numel() + 1)
    gaps, values = sparse_entries(shared.mask.cpu(), shared.indices.cpu() + 1, position_bits)
    value_bytes, value_lengths = _stream(values, value_bits, use_huffman)
    position_bytes, position_lengths = _stream(gaps, position_bits, use_huffman)
    bias = None if layer.bias is None else layer.bias.detach().cpu().float().clone()
    return EncodedLayer(name, tuple(shared.mask.shape), len(values), value_bits, position_bits,
                        codebook, value_bytes, position_bytes, value_lengths, position_lengths,
                        bias)


def entry_streams(encoded: EncodedLayer) -> tuple[np.ndarray, np.ndarray]:
    """The stored value indices and gaps (gap - 1) of an encoded layer, ``count`` of each."""
    if encoded.value_lengths is None:
        values = unpack_fixed(encoded.values, encoded.value_bits, encoded.count)
        gaps = unpack_fixed(encoded.positions, encoded.position_bits, encoded.count)
    else:
        values = np.array(huffman.decode(encoded.values, encoded.value_lengths, encoded.count),
                          dtype=np.int64)
        gaps = np.array(huffman.decode(encoded.positions, encoded.position_lengths, encoded.count),
                        dtype=np.int64)
    return values, gaps


def decode_weight(encoded: EncodedLayer) -> torch.Tensor:
    """The dense weight tensor back from its encoded form."""
    values, gaps = entry_streams(encoded)
    positions = np.cumsum(gaps + 1) - 1
    table = torch.cat([torch.zeros(1), encoded.codebook])  # index 0 is 0.0
    weight = torch.zeros(int(np.prod(encoded.shape)))
    weight[torch.from_numpy(positions)] = table[torch.from_numpy(values)]
    return weight.view(encoded.shape)


def share_pruned(model: nn.Module, bits: dict[str, int]) -> nn.Module:
    """A copy of the pruned ``model`` whose layers ``{name: b}`` share 2**b - 1 values among their
    surviving (non-zero) weights: k-means over the survivors, then ``sharing.share_layer``."""
    model = copy.deepcopy(model)
    for name, b in bits.items():
        layer = model.get_submodule(name)
        mask = layer.weight.detach() != 0
        codebook, indices = kmeans_share(layer.weight, 2**b - 1, mask)
        share_layer(layer, codebook, indices, mask)
    return model


def encode_model(model: nn.Module, layers: list[str], position_bits: int,
                 use_huffman: bool) -> dict[str, EncodedLayer]:
    """``encode_layer`` of each named layer (module names) of a ``share_pruned`` model."""
    return {name: encode_layer(model.get_submodule(name), position_bits, use_huffman, name)
            for name in layers}


def decode_model(architecture: str, layers: dict[str, EncodedLayer],
                 device: torch.device | str = "cpu") -> nn.Module:
    """A fresh ``zoo.build_model(architecture)`` with the decoded weights and biases, in eval mode.

    Every parameter of the model must come from ``layers``: nothing is left at its random initial
    value.
    """
    model = build_model(architecture)
    expected = {name for name, _ in model.named_parameters()}
    given = {f"{name}.{part}" for name, code in layers.items() for part in ("weight", "bias")
             if part == "weight" or code.bias is not None}
    if expected != given:
        raise ValueError(f"{architecture} has parameters {sorted(expected)}, the encoding gives "
                         f"{sorted(given)}")
    with torch.no_grad():
        for name, code in layers.items():
            layer = model.get_submodule(name)
            layer.weight.copy_(decode_weight(code))
            if code.bias is not None:
                layer.bias.copy_(code.bias)
    return model.to(device).eval()
