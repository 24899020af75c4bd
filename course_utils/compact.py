"""The course's compact model file (notebook 13): a pruned, weight-shared model on disk.

Everything is little-endian; ``u8``/``u16``/``u32`` are unsigned integers of 1, 2 and 4 bytes.

    magic b"DLCZ", format version (u8)
    architecture: name length (u8), UTF-8 name (a key of ``zoo.MODELS``)
    number of layers (u8), then for each layer:
        name length (u8), UTF-8 name
        number of dimensions (u8), each dimension (u32); entry count (u32)
        value bits, position bits (u8 each); flags (u8: 1 = Huffman-coded, 2 = has a bias)
        codebook size (u16), the shared values (fp32 each)
        if Huffman-coded: one code length (u8, 0 = unused) per possible value index, then per
            possible gap
        value stream, then position stream: byte length (u32) and the bytes
        if it has a bias: shape[0] values (fp32 each)
    CRC-32 of every byte before it (u32)

A layer's record is ``deep_compression.EncodedLayer.fields``; this module adds the file's own
fields (:func:`file_fields`), and :func:`part_bytes` counts every byte of a file by part. The CRC-32
catches a truncated or altered file.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .deep_compression import HAS_BIAS, HUFFMAN, PARTS, EncodedLayer, decode_model, length_prefixed

MAGIC = b"DLCZ"
VERSION = 1
RESTORE_HINT = (
    "Write it again with compact.write_compact (notebook 13 does), or copy an intact one."
)


class CompactFileError(ValueError):
    """The file is not an intact compact model file."""


def file_fields(architecture: str, layers: dict[str, EncodedLayer]) -> list[tuple[str, bytes]]:
    """The whole file, field by field in file order, each with its part: ``"file"`` for the file's
    own fields (magic, version, architecture, layer count, CRC-32), the layers' records after
    ``EncodedLayer.fields``. ``layers`` maps each layer's name to its encoding."""
    for name, code in layers.items():
        if code.name != name:
            raise ValueError(f"the layer encoded as {code.name!r} is stored under {name!r}")
    if len(layers) > 255:
        raise ValueError(f"{len(layers)} layers: the file holds at most 255")
    fields = [("file", MAGIC + struct.pack("<B", VERSION)), ("file", length_prefixed(architecture)),
              ("file", struct.pack("<B", len(layers)))]
    fields += [field for code in layers.values() for field in code.fields()]
    return fields + [("file", struct.pack("<I", zlib.crc32(b"".join(data for _, data in fields))))]


def compact_bytes(architecture: str, layers: dict[str, EncodedLayer]) -> bytes:
    """The whole file: header, layer records and the CRC-32 trailer."""
    return b"".join(data for _, data in file_fields(architecture, layers))


def part_bytes(architecture: str, layers: dict[str, EncodedLayer]) -> dict[str, int]:
    """Bytes of the file per part: the layers' ``PARTS`` summed over layers, then ``"file"``.
    They add up to the file's size."""
    sizes = dict.fromkeys((*PARTS, "file"), 0)
    for part, data in file_fields(architecture, layers):
        sizes[part] += len(data)
    return sizes


def write_compact(path: str | Path, architecture: str, layers: dict[str, EncodedLayer]) -> int:
    """Write the compact file of an encoded model (``deep_compression.encode_model``); returns its
    bytes."""
    data = compact_bytes(architecture, layers)
    Path(path).write_bytes(data)
    return len(data)


class _Reader:
    """Reads fields in order from the file's bytes; running past the end is a CompactFileError."""

    def __init__(self, data: bytes):
        self.data, self.offset = data, 0

    def take(self, n: int) -> bytes:
        if self.offset + n > len(self.data):
            raise CompactFileError(f"the file ends at byte {len(self.data)}, a field needs "
                                   f"{self.offset + n}. {RESTORE_HINT}")
        chunk = self.data[self.offset:self.offset + n]
        self.offset += n
        return chunk

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack("<" + fmt, self.take(struct.calcsize("<" + fmt)))

    def name(self) -> str:
        return self.take(self.unpack("B")[0]).decode()

    def fp32(self, n: int) -> torch.Tensor:
        return torch.from_numpy(np.frombuffer(self.take(4 * n), dtype="<f4").astype(np.float32))

    def lengths(self, bits: int) -> dict[int, int]:
        table = np.frombuffer(self.take(2**bits), dtype=np.uint8)
        return {int(symbol): int(table[symbol]) for symbol in np.flatnonzero(table)}


def _read_layer(reader: _Reader) -> tuple[str, EncodedLayer]:
    name = reader.name()
    ndim = reader.unpack("B")[0]
    shape = reader.unpack(f"{ndim}I")
    count, value_bits, position_bits, flags, k = reader.unpack("IBBBH")
    codebook = reader.fp32(k)
    value_lengths = position_lengths = None
    if flags & HUFFMAN:
        value_lengths, position_lengths = reader.lengths(value_bits), reader.lengths(position_bits)
    values = reader.take(reader.unpack("I")[0])
    positions = reader.take(reader.unpack("I")[0])
    bias = reader.fp32(shape[0]) if flags & HAS_BIAS else None
    return name, EncodedLayer(name, tuple(shape), count, value_bits, position_bits, codebook,
                              values, positions, value_lengths, position_lengths, bias)


def checked_body(data: bytes) -> bytes:
    """A compact file's bytes without the CRC-32 trailer, once its magic and its CRC-32 are
    checked; ``CompactFileError`` (a ``ValueError``) says what is wrong otherwise."""
    if data[:4] != MAGIC:
        raise CompactFileError(f"not a compact model file: it starts with {data[:4]!r}, "
                               f"not {MAGIC!r}. {RESTORE_HINT}")
    if len(data) < len(MAGIC) + 1 + 4:
        raise CompactFileError(f"the file is only {len(data)} bytes long: it was cut short. "
                               f"{RESTORE_HINT}")
    body, (stored_crc,) = data[:-4], struct.unpack("<I", data[-4:])
    if zlib.crc32(body) != stored_crc:
        raise CompactFileError("the file's CRC-32 does not match its contents: it was cut short "
                               "or altered. " + RESTORE_HINT)
    return body


def parse_compact(data: bytes) -> tuple[str, dict[str, EncodedLayer]]:
    """The architecture name and encoded layers of a compact file's bytes, checked first by
    magic and CRC-32 (:func:`checked_body`)."""
    body = checked_body(data)
    reader = _Reader(body)
    reader.take(len(MAGIC))
    version = reader.unpack("B")[0]
    if version != VERSION:
        raise CompactFileError(f"format version {version}; this course_utils reads version "
                               f"{VERSION}")
    architecture = reader.name()
    layers = dict(_read_layer(reader) for _ in range(reader.unpack("B")[0]))
    if reader.offset != len(body):
        raise CompactFileError(f"{len(body) - reader.offset} unexpected bytes after the last "
                               f"layer. {RESTORE_HINT}")
    return architecture, layers


def read_compact(path: str | Path) -> tuple[str, dict[str, EncodedLayer]]:
    """``parse_compact`` of the file at ``path``."""
    return parse_compact(Path(path).read_bytes())


def load_compact(path: str | Path, device: torch.device | str = "cpu") -> nn.Module:
    """A fresh model, built from the architecture named in the file, with the file's weights; in
    eval mode."""
    architecture, layers = read_compact(path)
    return decode_model(architecture, layers, device)
