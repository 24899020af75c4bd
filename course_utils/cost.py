"""What a model costs: parameters, multiply-accumulates (MACs), bytes and an energy estimate."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

# Energy per operation in picojoules, 45 nm CMOS at 0.9 V (M. Horowitz, "Computing's energy
# problem (and what we can do about it)", ISSCC 2014), the table the lecture shows.
ENERGY_PJ = {
    "int8_add": 0.03,
    "int32_add": 0.1,
    "fp32_add": 0.9,
    "int8_mult": 0.2,
    "int32_mult": 3.1,
    "fp32_mult": 3.7,
    "sram_read_32bit": 5.0,  # 8 KB SRAM
    "dram_read_32bit": 640.0,
}


@dataclass(frozen=True)
class LayerCost:
    """One leaf module's cost for a single input: its parameters and multiply-accumulates."""

    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int
    macs: int


def _macs(module: nn.Module, output: torch.Tensor) -> int:
    if isinstance(module, nn.Linear):
        return output.numel() * module.in_features
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return output.numel() * (module.in_channels // module.groups) * kh * kw
    return 0  # pooling, activations, dropout, normalisation: no multiply-accumulates counted


def layer_costs(model: nn.Module, input_shape: tuple[int, ...] = (1, 1, 28, 28)) -> list[LayerCost]:
    """Cost of every leaf module that runs in one forward pass of a batch of one.

    Works on models built on the ``meta`` device too (no memory for weights is needed), e.g.
    ``with torch.device("meta"): model = torchvision.models.vgg16()``. Functional calls such
    as ``F.relu`` are not modules and do not appear.
    """
    if input_shape[0] != 1:
        raise ValueError(f"costs are per input: the batch size must be 1, got {input_shape}")
    costs: list[LayerCost] = []
    names = {module: name for name, module in model.named_modules()}

    def hook(module, _inputs, output):
        params = sum(p.numel() for p in module.parameters(recurse=False))
        costs.append(LayerCost(names[module], type(module).__name__, tuple(output.shape[1:]), params,
                               _macs(module, output)))

    leaves = [m for m in model.modules() if not list(m.children())]
    handles = [m.register_forward_hook(hook) for m in leaves]
    try:
        device = next(model.parameters()).device
        with torch.no_grad():
            model(torch.zeros(input_shape, device=device))
    finally:
        for handle in handles:
            handle.remove()
    return costs


def flop_counter_macs(model: nn.Module, input_shape: tuple[int, ...] = (1, 1, 28, 28)) -> int:
    """PyTorch's own count (``FlopCounterMode``), converted from FLOPs to MACs (1 MAC = 2 FLOPs)."""
    device = next(model.parameters()).device
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(torch.zeros(input_shape, device=device))
    return counter.get_total_flops() // 2


def size_bytes(model: nn.Module, bits: int = 32) -> int:
    """Bytes to store every parameter with ``bits`` bits each."""
    return sum(p.numel() for p in model.parameters()) * bits // 8


@dataclass(frozen=True)
class EnergyEstimate:
    """Energy of one inference in microjoules, split into arithmetic and weight reads."""

    compute_uj: float
    weights_uj: float

    @property
    def total_uj(self) -> float:
        return self.compute_uj + self.weights_uj


def energy_per_inference(params: int, macs: int, weights_in: str = "dram") -> EnergyEstimate:
    """Lower-bound energy of one fp32 inference from the ENERGY_PJ table.

    Assumptions: every MAC is one fp32 multiply and one fp32 add; every weight is read once
    per inference as a 32-bit word from ``weights_in`` ("sram" or "dram"); activations, control
    and data movement inside the chip are left out.
    """
    if weights_in not in ("sram", "dram"):
        raise ValueError(f"weights_in must be 'sram' or 'dram', got {weights_in!r}")
    compute_pj = macs * (ENERGY_PJ["fp32_mult"] + ENERGY_PJ["fp32_add"])
    weights_pj = params * ENERGY_PJ[f"{weights_in}_read_32bit"]
    return EnergyEstimate(compute_pj / 1e6, weights_pj / 1e6)
