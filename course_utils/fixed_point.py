"""Fixed-point numbers (notebook 11): conversion, integer-only inference, stochastic rounding.

A fixed-point format ``<W, F>`` stores a real ``x`` as a ``W``-bit two's complement integer ``q``
with ``F`` fractional bits::

    x ~ q * 2**-F,    q in [-2**(W-1), 2**(W-1) - 1]    (values beyond the range saturate)

One scale ``2**-F`` is shared by a whole tensor; *dynamic* fixed point gives every layer and every
kind of tensor (weights, activations) its own ``F``, chosen from the observed range.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from .chain import forward_chain, layers_in_order

MIN_FRAC_BITS, MAX_FRAC_BITS = -32, 64
ROUNDINGS = ("nearest", "stochastic")


def check_format(bits: int, frac_bits: int) -> None:
    """Raise ``ValueError`` unless ``bits`` is an integer in 2..32 and ``frac_bits`` one in
    -32..64."""
    if isinstance(bits, bool) or not isinstance(bits, int) or not 2 <= bits <= 32:
        raise ValueError(f"bits must be an integer in 2..32, got {bits!r}")
    if (isinstance(frac_bits, bool) or not isinstance(frac_bits, int)
        or not MIN_FRAC_BITS <= frac_bits <= MAX_FRAC_BITS):
        raise ValueError(f"frac_bits must be an integer in {MIN_FRAC_BITS}..{MAX_FRAC_BITS}, got "
                         f"{frac_bits!r}")


def int_range(bits: int) -> tuple[int, int]:
    """The smallest and largest ``bits``-bit two's complement integers."""
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def real_range(bits: int, frac_bits: int) -> tuple[float, float]:
    """The smallest and largest reals of ``<bits, frac_bits>``; the step between neighbours is
    ``2**-frac_bits``."""
    check_format(bits, frac_bits)
    lo, hi = int_range(bits)
    return lo * 2.0**-frac_bits, hi * 2.0**-frac_bits


def saturate(q: torch.Tensor, bits: int) -> torch.Tensor:
    """Clamp integers to the ``bits``-bit two's complement range."""
    return q.clamp(*int_range(bits))


def rounded_steps(x: torch.Tensor, bits: int, frac_bits: int, rounding: str = "nearest",
                  generator: torch.Generator | None = None) -> torch.Tensor:
    """``x`` in units of the step ``2**-frac_bits``, rounded to an integer and saturated (a float
    tensor).

    With ``s = x 2^F`` split into ``floor(s)`` and a fraction in [0, 1): ``"nearest"`` rounds up
    when the fraction is at least 1/2 (half up, as adding half a step and truncating does in
    hardware); ``"stochastic"`` rounds up with probability equal to the fraction (Gupta et al.
    2015), so that ``E[q 2^-F] = x``. float32 holds every integer of up to 24 bits; float64 is used
    beyond.
    """
    check_format(bits, frac_bits)
    if rounding not in ROUNDINGS:
        raise ValueError(f"rounding must be one of {ROUNDINGS}, got {rounding!r}")
    dtype = torch.float64 if bits > 24 or x.dtype == torch.float64 else torch.float32
    scaled = x.detach().to(dtype) * 2.0**frac_bits  # multiplying by a power of two is exact
    below = torch.floor(scaled)
    fraction = scaled.sub_(below)  # in [0, 1)
    if rounding == "nearest":
        up = fraction >= 0.5
    else:
        up = fraction > torch.rand(x.shape, generator=generator, dtype=dtype, device=x.device)
    return below.add_(up).clamp_(*int_range(bits))


def to_fixed(x: torch.Tensor, bits: int, frac_bits: int, rounding: str = "nearest",
             generator: torch.Generator | None = None) -> torch.Tensor:
    """The integers ``q`` (int64, shaped like ``x``) of ``x`` in ``<bits, frac_bits>``, saturating;
    ``rounding`` is ``"nearest"`` (half up) or ``"stochastic"``, as in :func:`rounded_steps`."""
    return rounded_steps(x, bits, frac_bits, rounding, generator).long()


def from_fixed(q: torch.Tensor, frac_bits: int) -> torch.Tensor:
    """Back to reals: ``q * 2**-frac_bits`` (float32)."""
    return (q.double() * 2.0**-frac_bits).float()


def round_to_fixed(x: torch.Tensor, bits: int, frac_bits: int, rounding: str = "nearest",
                   generator: torch.Generator | None = None) -> torch.Tensor:
    """``x`` moved to the nearest (or a stochastically chosen neighbouring) value of
    ``<bits, frac_bits>``, in ``x``'s dtype and device."""
    return rounded_steps(x, bits, frac_bits, rounding, generator).mul_(2.0**-frac_bits).to(x.dtype)


def frac_bits_for(x: torch.Tensor, bits: int) -> int:
    """Fractional bits that fit the range of ``x``: ``F = W - 1 - ceil(log2 max|x|)``, within
    -32..64."""
    check_format(bits, 0)
    largest = x.detach().abs().max().item()
    if largest == 0:
        return MAX_FRAC_BITS
    frac_bits = bits - 1 - math.ceil(math.log2(largest))
    return min(max(frac_bits, MIN_FRAC_BITS), MAX_FRAC_BITS)


def saturated_count(x: torch.Tensor, bits: int, frac_bits: int) -> int:
    """How many entries of ``x`` lie beyond the range of ``<bits, frac_bits>``: :func:`to_fixed`
    would saturate them."""
    steps = x.detach().double() * 2.0**frac_bits
    lo, hi = int_range(bits)
    return int(((steps < lo - 0.5) | (steps >= hi + 0.5)).sum())


def range_and_precision(x: torch.Tensor, bits: int, frac_bits: int) -> tuple[float, float]:
    """Fraction of ``x`` outside the range of ``<bits, frac_bits>`` (saturated), and the mean
    absolute rounding error of the values inside it (at most half a step, ``2**-frac_bits / 2``)."""
    lo, hi = real_range(bits, frac_bits)
    x = x.detach().flatten().double()
    # rounds to a level in range
    inside = (x >= lo - 2.0 ** -(frac_bits + 1)) & (x < hi + 2.0 ** -(frac_bits + 1))
    error = (round_to_fixed(x[inside], bits, frac_bits) - x[inside]).abs()
    return 1 - inside.double().mean().item(), error.mean().item() if len(error) else 0.0


def bit_string(q: int, bits: int) -> str:
    """The ``bits``-bit two's complement pattern of the integer ``q``, most significant bit
    first."""
    lo, hi = int_range(bits)
    if not lo <= q <= hi:
        raise ValueError(f"{q} does not fit in {bits} bits")
    return format(q % 2**bits, f"0{bits}b")


def shift_round(acc: torch.Tensor, shift: int) -> torch.Tensor:
    """``acc * 2**-shift`` rounded half up, with integer operations only:
    ``(acc + 2^(shift-1)) >> shift`` (an arithmetic right shift) for ``shift > 0``, a left shift for
    ``shift < 0``."""
    if shift > 0:
        return (acc + (1 << (shift - 1))) >> shift
    return acc << -shift


def limbs(q: torch.Tensor, n: int) -> list[torch.Tensor]:
    """Split integers into ``n`` 8-bit limbs, ``q = sum_i limb_i 2^(8 i)``: the lower limbs in
    0..255, the top one signed (int32 tensors)."""
    return [(q >> 8 * i if i == n - 1 else (q >> 8 * i) & 255).int() for i in range(n)]


def int_matmul(a: torch.Tensor, b: torch.Tensor, bits: int) -> torch.Tensor:
    """Exact ``a @ b.T`` of integer matrices ``(M, K)`` and ``(N, K)`` of at most ``bits`` bits:
    ``(M, N)`` int64.

    PyTorch's int64 matrix product has no fast kernel; its int32 one does, on the CPU. When every
    product and the whole sum fit in int32 (``2 (bits - 1) + bit_length(K) <= 31``) one int32
    product does; otherwise, as wide multipliers are built in hardware, the values are split into
    8-bit limbs whose products (below 2^16, summed over K < 2^15 terms) are exact in int32, and
    combined, shifted, in an int64 accumulator.
    """
    k = a.shape[1]
    if k >= 2**15:
        raise ValueError(f"K = {k} terms could overflow the int32 partial sums; at most 2**15 - 1")
    if 2 * (bits - 1) + k.bit_length() <= 31:
        return (a.int() @ b.int().T).long()
    n = -(-bits // 8)  # limbs per value
    acc = torch.zeros(a.shape[0], b.shape[0], dtype=torch.int64, device=a.device)
    for i, a_limb in enumerate(limbs(a, n)):
        for j, b_limb in enumerate(limbs(b, n)):
            acc += (a_limb @ b_limb.T).long() << 8 * (i + j)  # (M, N)
    return acc


def mlp_layers(model: nn.Module) -> list[str]:
    """The module names of ``model``'s Linear layers, in the order its forward pass runs them, when
    that pass is ``flatten``, then Linear layers with a ReLU after every one but the last
    (``chain.forward_chain``); else ``ValueError``."""
    steps = forward_chain(model)
    names = layers_in_order(steps)
    expected = ["flatten"] + [step for name in names for step in (name, "relu")][:-1]
    if steps != expected or not all(isinstance(model.get_submodule(n), nn.Linear) for n in names):
        raise ValueError(f"{type(model).__name__} runs {steps}: not flatten, then Linear layers "
                         "with a ReLU between them")
    return names


class FixedPointMLP(nn.Module):
    """A trained MLP (Linear layers with ReLU between, see :func:`mlp_layers`) run with integers
    only, on the CPU.

    Weights and activations are ``bits``-bit words, each tensor with its own ``F`` (``dynamic``,
    from its range) or all with one ``F`` from the largest range. Biases are ``2 * bits``-bit words
    in the accumulator's format; a bias beyond their range saturates, and the constructor warns
    (``saturated_biases`` counts them per layer). Per layer: integer products summed in int64,
    plus the bias, ReLU, then an arithmetic right shift with rounding to the next layer's format,
    saturating.
    ``forward`` returns the integer logits ``(B, classes)``; their value is
    ``q * 2**-frac["<last>.out"]``. The integers are in ``int_weights`` and ``int_biases``, by
    module name.
    """

    @torch.no_grad()
    def __init__(self, model: nn.Module, bits: int, calibration: torch.Tensor,
                 dynamic: bool = True):
        super().__init__()
        if not isinstance(bits, int) or not 2 <= bits <= 16:
            raise ValueError("bits must be an integer in 2..16 (biases take 2 * bits), got "
                             f"{bits!r}")
        self.bits = bits
        self.names = mlp_layers(model)
        layers = {}
        for name in self.names:
            layer = model.get_submodule(name)
            bias = torch.zeros(layer.out_features) if layer.bias is None else layer.bias
            layers[name] = (layer.weight.detach().cpu(), bias.detach().cpu())
        tensors = {"input": calibration.detach().cpu().flatten(1)}  # (B, 784)
        x = tensors["input"]
        for i, (name, (weight, bias)) in enumerate(layers.items()):
            x = F.linear(x, weight, bias)  # (B, out)
            x = x if i == len(layers) - 1 else x.relu()
            tensors[f"{name}.weight"], tensors[f"{name}.out"] = weight, x
        shared = frac_bits_for(torch.stack([t.abs().max() for t in tensors.values()]), bits)
        self.frac = {key: frac_bits_for(t, bits) if dynamic else shared
                     for key, t in tensors.items()}
        self.int_weights: dict[str, torch.Tensor] = {}  # (out, in) int64, in <bits, F_w>
        self.int_biases: dict[str, torch.Tensor] = {}  # (out,) int64, in the accumulator's format
        self.saturated_biases: dict[str, int] = {}  # per layer; a warning says when any is not 0
        frac_in = self.frac["input"]
        for name, (weight, bias) in layers.items():
            frac_w = self.frac[f"{name}.weight"]
            self.int_weights[name] = to_fixed(weight, bits, frac_w)
            frac_b = frac_in + frac_w  # the accumulator's format
            self.int_biases[name] = to_fixed(bias, 2 * bits, frac_b)
            self.saturated_biases[name] = saturated_count(bias, 2 * bits, frac_b)
            frac_in = self.frac[f"{name}.out"]
        if any(self.saturated_biases.values()):
            warnings.warn(f"biases saturated in their {2 * bits}-bit words (count per layer): "
                          f"{self.saturated_biases}; choose more bits or fewer fractional bits",
                          stacklevel=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, 784) the one float-to-integer step
        q = to_fixed(x.cpu().flatten(1), self.bits, self.frac["input"])
        frac_in = self.frac["input"]
        for i, name in enumerate(self.names):
            frac_w, frac_out = self.frac[f"{name}.weight"], self.frac[f"{name}.out"]
            # (B, out) int64
            acc = int_matmul(q, self.int_weights[name], self.bits) + self.int_biases[name]
            if i < len(self.names) - 1:
                acc = acc.clamp(min=0)  # ReLU on integers
            # (B, out) in <bits, frac_out>
            q = saturate(shift_round(acc, frac_in + frac_w - frac_out), self.bits)
            frac_in = frac_out
        return q


@torch.no_grad()
def round_parameters(model: nn.Module, bits: int, frac_bits: int, rounding: str = "nearest",
                     generator: torch.Generator | None = None) -> None:
    """Move every parameter of ``model`` onto the grid of ``<bits, frac_bits>``, in place: weights
    stored in fixed point. Call it after every optimizer step."""
    for p in model.parameters():
        p.copy_(round_to_fixed(p, bits, frac_bits, rounding, generator))
