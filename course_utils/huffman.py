"""Huffman coding of integer symbols (notebook 10): frequent symbols get short codes.

Codes are *canonical*: they follow from the code lengths alone, so a file stores one length per
symbol, not the code tree.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Sequence


def code_lengths(symbols: Sequence[int]) -> dict[int, int]:
    """Huffman code length in bits of each distinct symbol (a single distinct symbol gets 1 bit).

    Merges the two least frequent subtrees until one is left; ties are broken by symbol, so the
    lengths are the same on every run.
    """
    counts = Counter(int(s) for s in symbols)
    if not counts:
        return {}
    if len(counts) == 1:
        return {next(iter(counts)): 1}
    heap = [(count, symbol, [symbol]) for symbol, count in sorted(counts.items())]
    heapq.heapify(heap)
    lengths = dict.fromkeys(counts, 0)
    while len(heap) > 1:
        count_a, key_a, members_a = heapq.heappop(heap)
        count_b, key_b, members_b = heapq.heappop(heap)
        for symbol in members_a + members_b:  # every symbol below the new node is one bit deeper
            lengths[symbol] += 1
        heapq.heappush(heap, (count_a + count_b, min(key_a, key_b), members_a + members_b))
    return lengths


def canonical_codes(lengths: dict[int, int]) -> dict[int, str]:
    """The canonical code of each symbol, as a string of '0' and '1', from the code lengths."""
    codes, code, previous_length = {}, 0, 0
    for symbol, length in sorted(lengths.items(), key=lambda item: (item[1], item[0])):
        code <<= length - previous_length
        codes[symbol] = format(code, f"0{length}b")
        code, previous_length = code + 1, length
    return codes


def bits_to_bytes(bits: str) -> bytes:
    """Pack a string of '0'/'1' into bytes, most significant bit first, zero-padded at the end."""
    padded = bits + "0" * (-len(bits) % 8)
    return int(padded, 2).to_bytes(len(padded) // 8, "big") if padded else b""


def encode(symbols: Sequence[int], lengths: dict[int, int]) -> bytes:
    """The symbols' canonical codes, concatenated and packed into bytes."""
    codes = canonical_codes(lengths)
    return bits_to_bytes("".join(codes[int(s)] for s in symbols))


def decode(data: bytes, lengths: dict[int, int], count: int) -> list[int]:
    """The first ``count`` symbols of ``data`` encoded with the canonical code of ``lengths``."""
    by_code = {code: symbol for symbol, code in canonical_codes(lengths).items()}
    bits = format(int.from_bytes(data, "big"), f"0{8 * len(data)}b") if data else ""
    symbols, start = [], 0
    for end in range(1, len(bits) + 1):
        if len(symbols) == count:
            break
        symbol = by_code.get(bits[start:end])
        if symbol is not None:
            symbols.append(symbol)
            start = end
    if len(symbols) != count:
        raise ValueError(f"the data holds {len(symbols)} complete codes, not {count}")
    return symbols
