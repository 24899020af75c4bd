"""Self-checks of notebook 05's exercises: the parameters and MACs of a Linear and of a Conv2d
layer (groups included), a whole network's MACs from those two formulas against PyTorch's
``FlopCounterMode``, and the energy of an 8-bit inference."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..cost import ENERGY_PJ, alexnet_2012, conv_cost, flop_counter_macs, layer_costs, linear_cost
from ..exercises import Case, check_cases
from ..models import CaffeLeNet5

LinearCost = Callable[[int, int], tuple[int, int]]
ConvCost = Callable[..., tuple[int, int]]


def random_sizes(seed: int, count: int, low: int, high: int) -> list[int]:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(low, high, (count,), generator=generator).tolist()


def check_linear_cost(student: LinearCost, seed: int = 0, strict: bool | None = None) -> bool:
    """Hand-made layers (one input, one output, a square layer), LeNet's and a random layer."""
    n_in, n_out = random_sizes(seed, 2, 2, 500)
    inputs = {"Linear(784, 10), the linear model": (784, 10),
              "Linear(1, 1): one weight and one bias": (1, 1),
              "Linear(300, 100): n_in and n_out must not be swapped in the bias": (300, 100),
              "Linear(5, 5)": (5, 5),
              f"Linear({n_in}, {n_out})": (n_in, n_out)}
    return check_cases("linear_cost: (parameters, MACs)", [
        Case(label, linear_cost(*args), lambda args=args: tuple(student(*args)))
        for label, args in inputs.items()], strict)


def check_conv_cost(student: ConvCost, seed: int = 0, strict: bool | None = None) -> bool:
    """Hand-made convolutions, 1x1 and depthwise ones, AlexNet's grouped conv2, a random one."""
    c_in, c_out, k, side = random_sizes(seed, 4, 1, 9)
    inputs = {
        "3x3 from 2 to 4 channels, 6x6 out": (2, 4, 3, 6, 6),
        "LeNet-5's conv1: 1 -> 20 channels, 5x5, 24x24 out": (1, 20, 5, 24, 24),
        "1x1 from 64 to 32 channels, 7x7 out": (64, 32, 1, 7, 7),
        "a non-square output, 3x3 from 3 to 8 channels, 10x4 out": (3, 8, 3, 10, 4),
        "AlexNet's conv2 on two GPUs: 96 -> 256, 5x5, 27x27, groups=2": (96, 256, 5, 27, 27, 2),
        "depthwise 3x3 on 32 channels, 14x14 out, groups=32": (32, 32, 3, 14, 14, 32),
        f"{2 * c_in} -> {2 * c_out} channels, {k}x{k}, {side}x{side} out, groups=2":
            (2 * c_in, 2 * c_out, k, side, side, 2),
    }
    return check_cases("conv_cost: (parameters, MACs)", [
        Case(label, conv_cost(*args), lambda args=args: tuple(student(*args)))
        for label, args in inputs.items()], strict)


def macs_from_formulas(model: nn.Module, input_shape: tuple[int, ...], linear: LinearCost,
                       conv: ConvCost) -> int:
    """The MACs of every Linear and Conv2d layer of ``model``, each from ``linear`` or ``conv``."""
    total = 0
    for cost in layer_costs(model, input_shape):
        layer = model.get_submodule(cost.name)
        if isinstance(layer, nn.Linear):
            total += linear(layer.in_features, layer.out_features)[1]
        elif isinstance(layer, nn.Conv2d):
            total += conv(layer.in_channels, layer.out_channels, layer.kernel_size[0],
                          *cost.output_shape[-2:], layer.groups)[1]
    return total


def check_model_macs(linear: LinearCost, conv: ConvCost, seed: int = 0,
                     strict: bool | None = None) -> bool:
    """Your two formulas summed over whole networks, against PyTorch's FlopCounterMode."""
    with torch.device("meta"):
        networks = {"Caffe's LeNet-5": (CaffeLeNet5(), (1, 1, 28, 28)),
                    "AlexNet (2012, two GPUs, groups=2)": (alexnet_2012(), (1, 3, 227, 227))}
    side = [28, 32, 40][seed % 3]
    with torch.device("meta"):
        small = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                              nn.Conv2d(16, 16, 3, padding=1, groups=4), nn.ReLU(),
                              nn.Flatten(), nn.Linear(16 * (side // 2) ** 2, 10))
    networks[f"a small grouped CNN on {side}x{side} images"] = (small, (1, 3, side, side))
    return check_cases("MACs of whole networks from your formulas", [
        Case(f"{label}: total MACs (FlopCounterMode / 2)", flop_counter_macs(model, shape),
             lambda model=model, shape=shape: macs_from_formulas(model, shape, linear, conv))
        for label, (model, shape) in networks.items()], strict)


def reference_int8_energy_uj(params: int, macs: int) -> float:
    """8-bit weights in DRAM: an 8-bit multiply and a 32-bit add per MAC, a quarter word per
    weight (µJ)."""
    picojoules = (macs * (ENERGY_PJ["int8_mult"] + ENERGY_PJ["int32_add"])
                  + params * ENERGY_PJ["dram_read_32bit"] / 4)
    return picojoules / 1e6


def check_int8_energy(student: Callable[[int, int], float], seed: int = 0,
                      strict: bool | None = None) -> bool:
    """Arithmetic alone, weights alone, both, and AlexNet's totals."""
    params, macs = random_sizes(seed, 2, 1_000, 100_000)
    with torch.device("meta"):
        alexnet = layer_costs(alexnet_2012(), (1, 3, 227, 227))
    inputs = {"1 MAC, no weights: the arithmetic alone": (0, 1),
              "1,000 weights, no MACs: the reads alone": (1_000, 0),
              f"{params:,} weights, {macs:,} MACs": (params, macs),
              "AlexNet (2012)": (sum(c.params for c in alexnet), sum(c.macs for c in alexnet))}
    return check_cases("int8_energy_uj (µJ)", [
        Case(label, reference_int8_energy_uj(*args), lambda args=args: float(student(*args)),
             rtol=1e-9, atol=1e-12)
        for label, args in inputs.items()], strict)
