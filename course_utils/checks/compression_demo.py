"""Self-checks of notebook 13's exercises: the CRC-32 check that refuses a damaged compact file,
reading its header, and the bits the file spends per kept weight."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable

import torch

from ..compact import MAGIC, CompactFileError, checked_body
from ..exercises import Case, check_cases
from ..storage import BITS_PER_BYTE


def reference_is_intact(data: bytes) -> bool:
    try:
        checked_body(data)
        return True
    except CompactFileError:
        return False


def with_trailer(body: bytes) -> bytes:
    """``body`` and its CRC-32 (u32, little-endian): an intact file of any content."""
    return body + struct.pack("<I", zlib.crc32(body))


def check_is_intact(student: Callable[[bytes], bool], data: bytes, seed: int = 0,
                    strict: bool | None = None) -> bool:
    """The file, bits flipped in the body and in the trailer, cut copies, too short to hold a
    trailer, another intact file."""
    generator = torch.Generator().manual_seed(seed)
    where = int(torch.randint(4, len(data) - 4, (1,), generator=generator))

    def flipped(position: int, bit: int = 0) -> bytes:
        damaged = bytearray(data)
        damaged[position] ^= 1 << bit
        return bytes(damaged)

    inputs = {
        "the file as written": data,
        "one bit flipped in the middle": flipped(len(data) // 2),
        f"one bit flipped at byte {where}": flipped(where, 5),
        "one bit flipped in the stored CRC itself": flipped(len(data) - 1, 7),
        "the last 100 bytes missing": data[:-100],
        "the last byte missing": data[:-1],
        "a byte too many at the end": data + b"\0",
        "only 3 bytes, shorter than a trailer": data[:3],
        "no bytes at all": b"",
        "another intact file: a made-up body with its CRC": with_trailer(MAGIC + b"\x01\x00\x00"),
    }
    return check_cases("is_intact", [
        Case(label, reference_is_intact(d), lambda d=d: student(bytes(d)))
        for label, d in inputs.items()], strict)


def reference_header(data: bytes) -> tuple[bytes, int, str]:
    (name_length,) = struct.unpack_from("<B", data, 5)
    return data[:4], data[4], data[6:6 + name_length].decode("utf-8")


def made_up_file(version: int, architecture: str) -> bytes:
    name = architecture.encode("utf-8")
    return with_trailer(MAGIC + bytes([version, len(name)]) + name + b"\x00")


def check_header(student: Callable[[bytes], tuple], data: bytes,
                 strict: bool | None = None) -> bool:
    """The notebook's file, other versions and names, a name whose UTF-8 takes more bytes than
    it has characters, an empty name."""
    inputs = {"the LeNet-5 file": data,
              "version 2, architecture 'lenet300'": made_up_file(2, "lenet300"),
              "architecture 'réseau': 6 characters, 7 bytes in UTF-8": made_up_file(1, "réseau"),
              "an empty architecture name": made_up_file(1, "")}
    return check_cases("header: (magic, version, architecture)", [
        Case(label, reference_header(d), lambda d=d: tuple(student(d)))
        for label, d in inputs.items()], strict)


def reference_bits_per_kept_weight(file_bytes: int, masks: dict[str, torch.Tensor]) -> float:
    return BITS_PER_BYTE * file_bytes / sum(int(mask.sum()) for mask in masks.values())


def check_bits_per_kept_weight(student: Callable[[int, dict], float], file_bytes: int,
                               masks: dict[str, torch.Tensor], strict: bool | None = None) -> bool:
    """The notebook's file and masks, and hand-made masks with known answers."""
    half = {"fc": torch.tensor([[True, False], [False, True]])}
    inputs = {"100 bytes, 2 of 4 weights kept: 400 bits each": (100, half),
              "masks of two layers, 3 kept in all": (9, {"a": torch.tensor([True, False, True]),
                                                         "b": torch.tensor([[False], [True]])}),
              "the notebook's compact file and masks": (file_bytes, masks)}
    return check_cases("bits_per_kept_weight", [
        Case(label, reference_bits_per_kept_weight(n, m),
             lambda n=n, m=m: float(student(n, dict(m))))
        for label, (n, m) in inputs.items()], strict)
