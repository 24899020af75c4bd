"""Self-checks of notebook 11's exercises: conversion to fixed point (rounding half up,
saturation), the integer rescaling shift, the range of Qm.n, a fixed-point multiply, and the
share of gradients that underflow."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..exercises import Case, check_cases, is_the_course_version
from ..fixed_point import int_range, saturate, shift_round, to_fixed
from ..reference import pretrained


def check_to_fixed(student: Callable[[torch.Tensor, int, int], torch.Tensor], seed: int = 0,
                   strict: bool | None = None) -> bool:
    """Ties, saturation at both ends, a negative F, 2 and 16 bits, float64 input, real weights."""
    if is_the_course_version("to_fixed", student, to_fixed, strict):
        return False
    generator = torch.Generator().manual_seed(seed)
    weight = pretrained("lenet300").fc1.weight.detach().cpu()
    inputs = {
        "<8, 4>: [1.03125, -1.03125, 0.03, 100, -100], ties round half up":
            (torch.tensor([1.03125, -1.03125, 0.03, 100.0, -100.0]), 8, 4),
        "<8, 4>: 7.96875 is 127.5 steps, rounds to 128, saturates to 127":
            (torch.tensor([7.96875, -8.0, -8.03125, 7.9375]), 8, 4),
        "<8, -2>: steps of 4, [6, -6, 510, -520]":
            (torch.tensor([6.0, -6.0, 510.0, -520.0]), 8, -2),
        "<2, 0>: only -2, -1, 0, 1": (torch.tensor([-3.0, -1.5, -0.5, 0.5, 1.5, 3.0]), 2, 0),
        "<16, 12>, a (3, 4) tensor in float64": (torch.randn(3, 4, generator=generator,
                                                             dtype=torch.float64) * 4, 16, 12),
        "LeNet-300-100's fc1 weight (300, 784) in <8, 8>": (weight, 8, 8),
    }
    return check_cases("to_fixed: the integers q (int64)", [
        Case(label, to_fixed(x, bits, frac), lambda x=x, b=bits, f=frac: student(x.clone(), b, f))
        for label, (x, bits, frac) in inputs.items()], strict)


def check_shift_round(student: Callable[[torch.Tensor, int], torch.Tensor], seed: int = 0,
                      strict: bool | None = None) -> bool:
    """Halves of both signs, shift 0 and negative shifts, words too wide for float32."""
    if is_the_course_version("shift_round", student, shift_round, strict):
        return False
    generator = torch.Generator().manual_seed(seed)
    wide = torch.randint(-2**40, 2**40, (6,), generator=generator) * 2 + 2**30  # (6,) int64
    inputs = {
        "[5, -5, 7, -7, 6] >> 1: 2.5 -> 3, -2.5 -> -2": (torch.tensor([5, -5, 7, -7, 6]), 1),
        "[7, -7, 6, -6, 1] >> 2: 1.75 -> 2, -1.5 -> -1, 0.25 -> 0":
            (torch.tensor([7, -7, 6, -6, 1]), 2),
        "shift 0 changes nothing": (torch.tensor([3, -4, 0]), 0),
        "a negative shift multiplies: [3, -4] by 2^3": (torch.tensor([3, -4]), -3),
        "wide int64 words (about 2^41) >> 9, where float32 would round": (wide, 9),
    }
    return check_cases("shift_round: acc * 2^-shift rounded half up", [
        Case(label, shift_round(acc, shift), lambda acc=acc, s=shift: student(acc.clone(), s))
        for label, (acc, shift) in inputs.items()], strict)


def reference_qmn_range(m: int, n: int) -> tuple[float, float, float]:
    """Smallest value, largest value and step of Qm.n (a sign bit, m integer bits, n fractional)."""
    step = 2.0**-n
    return -(2.0**m), 2.0**m - step, step


def check_qmn_range(student: Callable[[int, int], tuple], seed: int = 0,
                    strict: bool | None = None) -> bool:
    """Q3.4 (the lecture's <8, 4>), all-fraction and all-integer words, 16 and 32 bits."""
    m = [5, 9, 12][seed % 3]
    inputs = {"Q3.4, which is <8, 4>": (3, 4), "Q0.7: all fraction": (0, 7),
              "Q7.0: all integer": (7, 0), f"Q{m}.{15 - m}: a 16-bit word": (m, 15 - m),
              "Q15.16: a 32-bit word": (15, 16)}
    return check_cases("qmn_range: (smallest, largest, step)", [
        Case(label, reference_qmn_range(*args), lambda args=args: tuple(student(*args)),
             atol=0.0, rtol=0.0)
        for label, args in inputs.items()], strict)


def reference_fixed_multiply(a_q: torch.Tensor, b_q: torch.Tensor, frac_bits: int,
                             bits: int) -> torch.Tensor:
    """The product of two <bits, frac_bits> tensors in the same format: int64."""
    return saturate(shift_round(a_q.long() * b_q.long(), frac_bits), bits)


def check_fixed_multiply(student: Callable, seed: int = 0, strict: bool | None = None) -> bool:
    """Exact products, a tie of each sign, saturation at both ends, 8 and 16 bits, a random pair."""
    generator = torch.Generator().manual_seed(seed)
    lo, hi = int_range(16)
    inputs = {
        "<16, 8>: 1.5 * 2.25 = 3.375, and 100 * 100 saturates":
            (torch.tensor([384, 25600]), torch.tensor([576, 25600]), 8, 16),
        "<8, 4>: +/-0.5 * 0.0625 is half a step: rounds half up to 1 and to 0":
            (torch.tensor([8, -8]), torch.tensor([1, 1]), 4, 8),
        "<8, 4>: -100 * 100 saturates at -128":
            (torch.tensor([-100, 100]), torch.tensor([100, 1]), 4, 8),
        "<16, 12>: random words": (torch.randint(lo, hi, (20,), generator=generator),
                                   torch.randint(lo, hi, (20,), generator=generator), 12, 16),
        "<16, 0>: integers, 300 * -200 saturates":
            (torch.tensor([300, 3]), torch.tensor([-200, -7]), 0, 16),
    }
    return check_cases("fixed_multiply: the product in <W, F>", [
        Case(label, reference_fixed_multiply(a, b, f, w),
             lambda a=a, b=b, f=f, w=w: student(a.clone(), b.clone(), f, w))
        for label, (a, b, f, w) in inputs.items()], strict)


def reference_underflow_fraction(g: torch.Tensor, frac_bits: int) -> float:
    """The share of ``g`` that rounds (half up) to zero in <16, frac_bits>."""
    return float((to_fixed(g, 16, frac_bits) == 0).double().mean())


def check_underflow_fraction(student: Callable[[torch.Tensor, int], float], seed: int = 0,
                             strict: bool | None = None) -> bool:
    """Hand-made gradients, exact half steps of both signs, all zero, a random batch."""
    generator = torch.Generator().manual_seed(seed)
    half = 2.0**-13  # half a step at F = 12
    inputs = {
        "[1e-5, -3e-4, 0.01, -1e-6] at F = 12: two of four vanish":
            (torch.tensor([1e-5, -3e-4, 0.01, -1e-6]), 12),
        "exactly half a step, +/-: half up keeps +1/2 step, rounds -1/2 step to zero":
            (torch.tensor([half, -half, 3 * half, -3 * half]), 12),
        "all zero: everything underflows": (torch.zeros(5), 4),
        "F = 0: |g| below 1/2 vanishes": (torch.tensor([0.4, -0.6, 2.0, -0.2]), 0),
        "1,000 gradients of size about 1e-3 at F = 10":
            (torch.randn(1000, generator=generator) * 1e-3, 10),
    }
    return check_cases("underflow_fraction", [
        Case(label, reference_underflow_fraction(g, f),
             lambda g=g, f=f: float(student(g.clone(), f)))
        for label, (g, f) in inputs.items()], strict)
