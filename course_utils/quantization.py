"""Binary and uniform quantization (notebook 08).

Uniform (affine) quantization maps a real ``x`` to an integer ``q`` in ``[0, 2**bits - 1]``::

    q = clamp(round(x / scale) + zero_point, 0, 2**bits - 1),    x ~ scale * (q - zero_point)

Binary quantization keeps only the sign of each weight, optionally times one scale per layer;
``BinaryConnectMLP`` is BinaryConnect's network of such layers.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def check_bits(bits: int) -> None:
    if not isinstance(bits, int) or not 1 <= bits <= 16:
        raise ValueError(f"bits must be an integer in 1..16, got {bits!r}")


def uniform_qparams(x_min: torch.Tensor, x_max: torch.Tensor,
                    bits: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Scale and integer zero point that split ``[x_min, x_max]`` into ``2**bits`` levels.

    The range is widened to include 0, so that 0 is represented exactly (zero padding and pruned
    weights stay exactly zero). Works elementwise, so per-channel ranges give per-channel
    parameters.
    """
    check_bits(bits)
    x_min = torch.clamp(torch.as_tensor(x_min, dtype=torch.float32), max=0.0)
    x_max = torch.clamp(torch.as_tensor(x_max, dtype=torch.float32), min=0.0)
    levels = 2**bits - 1
    scale = torch.clamp((x_max - x_min) / levels, min=torch.finfo(torch.float32).tiny)
    zero_point = torch.clamp(torch.round(-x_min / scale), 0, levels)
    return scale, zero_point


def quantize(x: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor,
             bits: int) -> torch.Tensor:
    """Integers ``q = clamp(round(x / scale) + zero_point, 0, 2**bits - 1)`` (int32, shaped like
    ``x``)."""
    check_bits(bits)
    return torch.clamp(torch.round(x / scale) + zero_point, 0, 2**bits - 1).to(torch.int32)


def dequantize(q: torch.Tensor, scale: torch.Tensor, zero_point: torch.Tensor) -> torch.Tensor:
    """Back to reals: ``scale * (q - zero_point)``."""
    return scale * (q.float() - zero_point)


def channel_range(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-output-channel min and max of ``weight`` (rows, ...), shaped to broadcast against it."""
    rows = weight.detach().reshape(weight.shape[0], -1)
    shape = (-1,) + (1,) * (weight.dim() - 1)
    return rows.amin(dim=1).view(shape), rows.amax(dim=1).view(shape)


def fake_quantize(weight: torch.Tensor, bits: int, per_channel: bool = False) -> torch.Tensor:
    """``weight`` quantized to ``bits`` and dequantized again: the values an integer kernel would
    see."""
    w = weight.detach()
    x_min, x_max = channel_range(w) if per_channel else (w.min(), w.max())
    scale, zero_point = uniform_qparams(x_min, x_max, bits)
    return dequantize(quantize(w, scale, zero_point, bits), scale, zero_point)


def binarize(weight: torch.Tensor, scaled: bool = False, per_filter: bool = False) -> torch.Tensor:
    """``sign(W)`` (0 counts as +1); with ``scaled``, times ``alpha = mean |W|``, the scale that
    minimises ``||W - alpha * sign(W)||^2``. With ``per_filter`` too, one ``alpha_j`` per output
    filter (row of a Linear weight, output channel of a convolution), as XNOR-Net scales its
    weights (Rastegari et al. 2016, Section 3.1); otherwise one for the whole tensor."""
    if per_filter and not scaled:
        raise ValueError("per_filter chooses how the scale is computed: it needs scaled=True")
    signs = torch.where(weight >= 0, 1.0, -1.0).to(weight.dtype)
    if not scaled:
        return signs
    if per_filter:
        filter_dims = tuple(range(1, weight.dim()))  # everything but the output dimension
        return signs * weight.abs().mean(dim=filter_dims, keepdim=True)  # (out, 1, ...) scales
    return signs * weight.abs().mean()


def slide_regulariser(u: torch.Tensor) -> torch.Tensor:
    """The slide's binary regulariser ``sum u^2 (1 - u^2)``: zero at ``u`` = -1, 0 and +1, and
    falling without bound (as ``-u^4``) beyond ``|u| = 1``: a penalty that rewards large weights."""
    return (u**2 * (1 - u**2)).sum()


def binary_regulariser(u: torch.Tensor) -> torch.Tensor:
    """``sum (1 - u^2)^2``: zero only at ``u = +-1``, so it pulls every weight to one of the two."""
    return ((1 - u**2) ** 2).sum()


class BinaryLinear(nn.Linear):
    """A linear layer whose forward pass uses ``sign(W)``; gradients reach the real-valued ``W``
    unchanged (the straight-through estimator), as BinaryConnect trains (Courbariaux et al. 2015).
    Keep ``W`` in [-1, 1] with ``clip_weights`` after every step."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight
        w_binary = w + (binarize(w) - w).detach()  # value sign(W), gradient of W
        return nn.functional.linear(x, w_binary, self.bias)


@torch.no_grad()
def clip_weights(model: nn.Module) -> None:
    """Clamp the real-valued weight of every ``BinaryLinear`` in ``model`` to [-1, 1], in place."""
    for m in model.modules():
        if isinstance(m, BinaryLinear):
            m.weight.clamp_(-1, 1)


class BinaryConnectMLP(nn.Sequential):
    """BinaryConnect's MLP (Courbariaux et al. 2015): 784-h-h-10, every linear layer followed by
    batch normalisation, ReLU between. With ``binary`` the linear layers use ``sign(W)`` in the
    forward pass (``BinaryLinear``); without, it is the same network in floating point."""

    def __init__(self, hidden: int = 1024, binary: bool = True):
        linear = BinaryLinear if binary else nn.Linear
        super().__init__(
            nn.Flatten(),  # (B, 784)
            linear(28 * 28, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(),  # (B, h)
            linear(hidden, hidden, bias=False), nn.BatchNorm1d(hidden), nn.ReLU(),  # (B, h)
            linear(hidden, 10, bias=False), nn.BatchNorm1d(10),  # (B, 10)
        )
        if binary:
            for m in self.modules():
                if isinstance(m, BinaryLinear):
                    nn.init.uniform_(m.weight, -1, 1)


@torch.no_grad()
def recalibrate_batchnorm(model: nn.Module, loader, batches: int = 50) -> nn.Module:
    """Recompute the running mean and variance of every BatchNorm layer of ``model`` from
    ``batches`` minibatches of ``loader`` (a plain average over them), with the weights the model
    has now: after the weights change (binarized, quantized), the statistics measured with the old
    ones are stale. Returns the model in eval mode."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [bn.momentum for bn in norms]
    for bn in norms:
        bn.reset_running_stats()
        bn.momentum = None  # a cumulative average over the batches seen
    model.train()
    device = next(model.parameters()).device
    for _, (x, _) in zip(range(batches), loader, strict=False):
        model(x.to(device))
    for bn, momentum in zip(norms, momenta, strict=True):
        bn.momentum = momentum
    return model.eval()


def pack_signs(x: torch.Tensor) -> np.ndarray:
    """Pack the signs of ``x`` (rows, k) into bits, 1 for +1 and 0 for -1: ``(rows, ceil(k/64))``
    uint64.

    The last word is padded with zero bits in every row, so the padding never differs between rows.
    """
    bits = (x.detach().cpu().numpy() >= 0).astype(np.uint8)  # (rows, k)
    packed = np.packbits(bits, axis=1)  # (rows, ceil(k/8)) bytes
    pad = (-packed.shape[1]) % 8
    packed = np.pad(packed, ((0, 0), (0, pad)))
    return np.ascontiguousarray(packed).view(np.uint64)  # (rows, words)


def binary_matmul(a_packed: np.ndarray, b_packed: np.ndarray, k: int) -> np.ndarray:
    """``A @ B.T`` for ±1 matrices given packed by ``pack_signs``: (m, words), (n, words) -> (m, n)
    int64.

    Two ±1 vectors of length k agree where their bits are equal, so their dot product is
    ``agreements - disagreements = k - 2 * popcount(a XOR b)``.
    """
    disagreements = np.zeros((a_packed.shape[0], b_packed.shape[0]), dtype=np.int64)
    for word in range(a_packed.shape[1]):  # one 64-bit word of every row at a time: (m, n) XORs
        disagreements += np.bitwise_count(a_packed[:, word, None] ^ b_packed[None, :, word])
    return k - 2 * disagreements
