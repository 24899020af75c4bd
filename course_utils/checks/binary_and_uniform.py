"""Self-checks of notebook 08's exercises: binarization with XNOR-Net's per-filter scale, uniform
quantization and its inverse, ternary weights, the bytes of packed low-bit weights, and the
XNOR-popcount dot product."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import torch

from ..exercises import Case, check_cases
from ..quantization import binarize, dequantize, quantize, uniform_qparams
from ..reference import pretrained
from ..storage import FP32_BITS, packed_bytes

Quantizer = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, int], torch.Tensor]
Dequantizer = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def pytorch_uint8(x: torch.Tensor, scale: float, zero_point: int) -> torch.Tensor:
    """PyTorch's own 8-bit quantization of ``x`` (``torch.quantize_per_tensor``), as int32."""
    with warnings.catch_warnings():  # quantized tensors are deprecated in recent PyTorch
        warnings.simplefilter("ignore")
        q = torch.quantize_per_tensor(x, scale, zero_point, torch.quint8)
    return q.int_repr().to(torch.int32)


def check_binarize_filters(student: Callable[[torch.Tensor], torch.Tensor], seed: int = 0,
                           strict: bool | None = None) -> bool:
    """Hand-made rows, zeros (sign +1), a filter of zeros, conv weights, a trained layer."""
    generator = torch.Generator().manual_seed(seed)
    inputs = {
        "[[0.5, -1.5], [0.1, -0.3]]: alpha 1.0 for row 0, 0.2 for row 1":
            torch.tensor([[0.5, -1.5], [0.1, -0.3]]),
        "a zero weight counts as +1: [[0.0, -2.0, 1.0]]": torch.tensor([[0.0, -2.0, 1.0]]),
        "a filter of zeros gets alpha 0": torch.tensor([[0.0, 0.0], [1.0, -3.0]]),
        "conv weights (4, 2, 3, 3): one alpha per output channel":
            torch.randn(4, 2, 3, 3, generator=generator),
        "rows of very different sizes (5, 7)":
            torch.randn(5, 7, generator=generator) * torch.logspace(-3, 0, 5)[:, None],
        "LeNet-300-100's trained fc2 (100, 300)": pretrained("lenet300").fc2.weight.detach().cpu(),
    }
    return check_cases("binarize_filters", [
        Case(label, binarize(w, scaled=True, per_filter=True), lambda w=w: student(w.clone()))
        for label, w in inputs.items()], strict)


def check_quantize(quantize_fn: Quantizer, dequantize_fn: Dequantizer, seed: int = 0,
                   strict: bool | None = None) -> bool:
    """Known integers by hand, saturation at both ends, PyTorch's 8-bit quantizer, per-channel
    parameters, and the way back within half a step."""
    generator = torch.Generator().manual_seed(seed)
    s2, z2 = uniform_qparams(torch.tensor(-1.0), torch.tensor(3.0), bits=2)  # 4/3, 1
    w = torch.randn(1000, generator=generator) * 0.1  # (1000,) weight-like values
    s8, z8 = uniform_qparams(w.min(), w.max(), bits=8)
    rows = torch.randn(3, 5, generator=generator) * torch.tensor([[0.01], [0.1], [1.0]])  # (3, 5)
    row_min, row_max = rows.amin(dim=1, keepdim=True), rows.amax(dim=1, keepdim=True)  # (3, 1)
    sc, zc = uniform_qparams(row_min, row_max, bits=4)  # (3, 1) each

    def half_step_error() -> float:
        back = dequantize_fn(quantize_fn(w, s8, z8, 8), s8, z8)
        return float(((back - w).abs() <= s8 / 2 + 1e-7).float().mean())

    q2 = torch.tensor([0, 1, 1, 3], dtype=torch.int32)
    return check_cases("quantize and dequantize", [
        Case("quantize [-1, 0, 0.6, 3] at 2 bits over [-1, 3] (s = 4/3, z = 1)",
             q2, lambda: quantize_fn(torch.tensor([-1.0, 0.0, 0.6, 3.0]), s2, z2, 2)),
        Case("values past the range saturate: [9, -5] at 2 bits",
             torch.tensor([3, 0], dtype=torch.int32),
             lambda: quantize_fn(torch.tensor([9.0, -5.0]), s2, z2, 2)),
        Case("1000 weights at 8 bits: the integers of torch.quantize_per_tensor",
             pytorch_uint8(w, float(s8), int(z8)), lambda: quantize_fn(w, s8, z8, 8)),
        Case("per-channel parameters (3, 1) for a (3, 5) weight at 4 bits",
             quantize(rows, sc, zc, 4), lambda: quantize_fn(rows, sc, zc, 4)),
        Case("dequantize the 2-bit integers [0, 1, 1, 3]", dequantize(q2, s2, z2),
             lambda: dequantize_fn(q2, s2, z2)),
        Case("dequantize per channel", dequantize(quantize(rows, sc, zc, 4), sc, zc),
             lambda: dequantize_fn(quantize(rows, sc, zc, 4), sc, zc)),
        Case("share of the 1000 weights back within half a step (s / 2)", 1.0, half_step_error),
    ], strict)


def reference_ternarize(w: torch.Tensor, t: float) -> torch.Tensor:
    """0 where ``|w| <= t``, else ``alpha * sign(w)`` with alpha the mean ``|w|`` of those kept."""
    keep = w.abs() > t
    if not keep.any():
        return torch.zeros_like(w)
    alpha = w.abs()[keep].mean()
    return torch.where(keep, alpha * w.sign(), torch.zeros_like(w))


def check_ternarize(ternarize: Callable[[torch.Tensor, float], torch.Tensor], seed: int = 0,
                    strict: bool | None = None) -> bool:
    """By hand, a weight exactly at t, nothing kept, t = 0, and a random (4, 6) weight."""
    generator = torch.Generator().manual_seed(seed)
    inputs = {
        "[0.1, -0.4, 0.8, -0.05] at t = 0.2: alpha = 0.6":
            (torch.tensor([0.1, -0.4, 0.8, -0.05]), 0.2),
        "|w| = t is pruned: [0.5, -0.5, 1.5] at t = 0.5": (torch.tensor([0.5, -0.5, 1.5]), 0.5),
        "nothing above t: all zeros": (torch.tensor([0.1, -0.2, 0.05]), 0.3),
        "t = 0 keeps every nonzero weight": (torch.tensor([0.0, 2.0, -1.0]), 0.0),
        "a random (4, 6) weight at t = 0.7": (torch.randn(4, 6, generator=generator), 0.7),
    }
    return check_cases("ternarize", [
        Case(label, reference_ternarize(w, t), lambda w=w, t=t: ternarize(w.clone(), t))
        for label, (w, t) in inputs.items()], strict)


def reference_uniform_bytes(n_weights: int, bits: int, channels: int) -> int:
    """Packed weights rounded up to whole bytes, plus a 4-byte scale and zero point per channel."""
    return packed_bytes(n_weights, bits) + packed_bytes(2 * channels, FP32_BITS)


def check_uniform_bytes(uniform_bytes: Callable[[int, int, int], int], seed: int = 0,
                        strict: bool | None = None) -> bool:
    """Byte counts that round up and that do not, per tensor and per channel."""
    generator = torch.Generator().manual_seed(seed)
    n = int(torch.randint(50, 500, (1,), generator=generator)) * 8 + 3  # 5 n bits: not whole bytes
    inputs = [("fc1 of LeNet-300-100 at 4 bits, per channel", (235_200, 4, 300)),
              ("10 weights at 3 bits, per tensor: 30 bits", (10, 3, 1)),
              ("7 weights at 1 bit: one byte", (7, 1, 1)),
              (f"{n} weights at 5 bits, 2 channels", (n, 5, 2)),
              ("16 weights at 8 bits, per tensor", (16, 8, 1))]
    return check_cases("uniform_bytes", [
        Case(label, reference_uniform_bytes(*args), lambda args=args: uniform_bytes(*args))
        for label, args in inputs], strict)


def signs_dot(a_bits: int, b_bits: int, k: int) -> int:
    """The dot product of the two +-1 vectors that ``k`` bits each stand for (bit 1 = +1)."""
    a = [1 if a_bits >> i & 1 else -1 for i in range(k)]
    b = [1 if b_bits >> i & 1 else -1 for i in range(k)]
    return sum(x * y for x, y in zip(a, b, strict=True))


def check_xnor_dot(xnor_dot: Callable[[int, int, int], int], seed: int = 0,
                   strict: bool | None = None) -> bool:
    """Against the +-1 dot product written out, for 1, 3 and 64 bits, equal and opposite vectors."""
    generator = torch.Generator().manual_seed(seed)
    a64, b64 = (int(torch.randint(0, 2**62, (1,), generator=generator)) * 4 + 3 for _ in range(2))
    inputs = [("(+1, -1, +1) . (+1, +1, -1)", (0b101, 0b110, 3)),
              ("one bit, the same", (1, 1, 1)), ("one bit, opposite", (0, 1, 1)),
              ("8 bits equal: 8", (0b10110010, 0b10110010, 8)),
              ("8 bits all opposite: -8", (0b10110010, 0b01001101, 8)),
              ("64 random bits", (a64, b64, 64))]
    return check_cases("xnor_dot", [
        Case(label, signs_dot(*args), lambda args=args: xnor_dot(*args)) for label, args in inputs],
        strict)
