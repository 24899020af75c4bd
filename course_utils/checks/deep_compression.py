"""Self-checks of notebook 10's exercises: relative indices with filler entries, gaps by hand,
the entropy of a list of symbols, and the share of a compressed model's bytes left in biases."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable

import torch

from ..deep_compression import EncodedLayer, sparse_entries
from ..exercises import Case, check_cases
from ..reference import pretrained


def as_int_lists(pair) -> tuple[list[int], list[int]]:
    """The student's (gaps, values), whatever the sequence type, as two lists of Python ints."""
    gaps, values = pair
    return [int(g) for g in gaps], [int(v) for v in values]


def check_sparse_entries(student: Callable, seed: int = 0, strict: bool | None = None) -> bool:
    """Hand-made masks with known fillers, edge gaps of exactly 2^p and 2^p + 1, a 2-D mask read
    row by row, nothing kept, and a real pruned layer."""
    generator = torch.Generator().manual_seed(seed)

    def mask_of(n: int, kept: list[int], shape: tuple[int, ...] | None = None) -> torch.Tensor:
        mask = torch.zeros(n, dtype=torch.bool)
        mask[kept] = True
        return mask.view(shape or (n,))

    real = pretrained("lenet300_pruned").fc1.weight.detach().cpu() != 0  # (300, 784)
    inputs = {
        "positions 1, 2, 11 of 12, p = 2: gaps 2, 1, 9 -> two fillers before the 9":
            (mask_of(12, [1, 2, 11]), 2),
        "position 0 first: a gap of 1 is stored as 0": (mask_of(5, [0, 4]), 2),
        "a gap of exactly 2^p = 4 needs no filler": (mask_of(8, [3, 7]), 2),
        "a gap of 2^p + 1 = 5 needs one": (mask_of(8, [4]), 2),
        "a (3, 4) mask, read row by row": (mask_of(12, [2, 5, 11], (3, 4)), 2),
        "nothing kept": (torch.zeros(6, dtype=torch.bool), 3),
        "everything kept, p = 1": (torch.ones(5, dtype=torch.bool), 1),
        "LeNet-300-100's pruned fc1 (300, 784), p = 5": (real, 5),
    }
    cases = []
    for label, (mask, bits) in inputs.items():
        value_index = torch.randint(1, 8, mask.shape, generator=generator)  # codebook indices 1..7
        expected = as_int_lists(sparse_entries(mask, value_index, bits))
        cases.append(Case(label + ": (stored gaps, value indices)", expected,
                          lambda m=mask, v=value_index, b=bits: as_int_lists(
                              student(m.clone(), v.clone(), b))))
    return check_cases("sparse_entries", cases, strict)


def reference_gaps(positions: list[int]) -> list[int]:
    return [p - q for p, q in zip(positions, [-1, *positions], strict=False)]


def check_gaps(student: Callable[[list[int]], list[int]], seed: int = 0,
               strict: bool | None = None) -> bool:
    """Hand-made positions, neighbours, one position, none, and random sorted positions."""
    generator = torch.Generator().manual_seed(seed)
    random_positions = sorted(torch.randperm(100, generator=generator)[:10].tolist())
    inputs = {"[0, 3, 4, 10]": [0, 3, 4, 10], "neighbours [2, 3, 4]": [2, 3, 4], "[5]": [5],
              "no positions": [], "10 random positions below 100": random_positions}
    return check_cases("gaps", [
        Case(label, reference_gaps(p), lambda p=p: [int(g) for g in student(list(p))])
        for label, p in inputs.items()], strict)


def reference_entropy_bits(symbols: list[int]) -> float:
    n = len(symbols)
    return -sum(c / n * math.log2(c / n) for c in Counter(symbols).values())


def check_entropy_bits(student: Callable[[list[int]], float], seed: int = 0,
                       strict: bool | None = None) -> bool:
    """Uniform and one-symbol lists, a skewed one, a long random one."""
    generator = torch.Generator().manual_seed(seed)
    skewed = torch.multinomial(torch.tensor([0.6, 0.2, 0.1, 0.05, 0.05]), 1000, True,
                               generator=generator).tolist()
    inputs = {"[0, 0, 1, 1]: 1 bit": [0, 0, 1, 1], "[5, 5, 5, 5]: 0 bits": [5, 5, 5, 5],
              "[0, 1, 2, 3]: 2 bits": [0, 1, 2, 3], "[0, 0, 0, 1]": [0, 0, 0, 1],
              "[7, 3, 3]: the symbols need not start at 0": [7, 3, 3],
              "1,000 symbols, probabilities 0.6, 0.2, 0.1, 0.05, 0.05": skewed}
    return check_cases("entropy_bits (bits per symbol)", [
        Case(label, reference_entropy_bits(s), lambda s=s: float(student(list(s))))
        for label, s in inputs.items()], strict)


def reference_bias_share(codes: dict[str, EncodedLayer]) -> float:
    layers = codes.values()
    return sum(c.nbytes()["bias"] for c in layers) / sum(c.total_bytes() for c in layers)


def check_bias_share(student: Callable[[dict[str, EncodedLayer]], float],
                     encoded: dict[tuple[str, bool], dict[str, EncodedLayer]],
                     strict: bool | None = None) -> bool:
    """Every encoded model of the notebook, Huffman-coded and at fixed width, and one layer."""
    inputs = {f"{name}, {'Huffman-coded' if huffman else 'fixed width'}": codes
              for (name, huffman), codes in encoded.items()}
    first_codes = next(iter(encoded.values()))
    first_layer = next(iter(first_codes))
    inputs[f"the layer {first_layer} alone"] = {first_layer: first_codes[first_layer]}
    return check_cases("bias_share", [
        Case(label, reference_bias_share(codes), lambda c=codes: float(student(dict(c))))
        for label, codes in inputs.items()], strict)
