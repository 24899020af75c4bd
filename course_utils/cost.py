"""What a model costs: parameters, multiply-accumulates (MACs), bytes and an energy estimate."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize
from torch.utils.flop_counter import FlopCounterMode

from .storage import FP32_BITS, packed_bytes

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


# AlexNet as Han, Pool, Tran and Dally count it ("Learning both weights and connections for
# efficient neural networks", NIPS 2015, Table 4): weights and FLOPs per layer, one MAC counted
# as two FLOPs (a multiply and an add). The lecture's AlexNet table counts MACs (conv1: 105M).
HAN_ALEXNET_TABLE4 = {  # layer: (weights, FLOPs), as printed (rounded)
    "conv1": (35e3, 211e6), "conv2": (307e3, 448e6), "conv3": (885e3, 299e6),
    "conv4": (663e3, 224e6), "conv5": (442e3, 150e6), "fc1": (38e6, 75e6),
    "fc2": (17e6, 34e6), "fc3": (4e6, 8e6),
}

# VGG-16 as the same paper counts it (Table 5): weights and FLOPs per layer, as printed.
HAN_VGG16_TABLE5 = {  # layer: (weights, FLOPs)
    "conv1_1": (2e3, 0.2e9), "conv1_2": (37e3, 3.7e9), "conv2_1": (74e3, 1.8e9),
    "conv2_2": (148e3, 3.7e9), "conv3_1": (295e3, 1.8e9), "conv3_2": (590e3, 3.7e9),
    "conv3_3": (590e3, 3.7e9), "conv4_1": (1e6, 1.8e9), "conv4_2": (2e6, 3.7e9),
    "conv4_3": (2e6, 3.7e9), "conv5_1": (2e6, 925e6), "conv5_2": (2e6, 925e6),
    "conv5_3": (2e6, 925e6), "fc6": (103e6, 206e6), "fc7": (17e6, 34e6), "fc8": (4e6, 8e6),
}


def alexnet_2012(num_classes: int = 1000) -> nn.Sequential:
    """AlexNet as Krizhevsky, Sutskever and Hinton trained it on two GPUs (NIPS 2012).

    conv2, conv4 and conv5 see only the half of their input channels that lives on their GPU:
    ``groups=2``. Input ``(B, 3, 227, 227)``: 227 is what makes conv1's output 55 x 55. Local
    response normalisation has no parameters and no MACs and is left out. Layer names follow the
    lecture's table (fc1-fc3 for the paper's fc6-fc8).
    """
    def conv(c_in: int, c_out: int, k: int, stride: int = 1, padding: int = 0, groups: int = 1):
        return nn.Conv2d(c_in, c_out, k, stride=stride, padding=padding, groups=groups)

    return nn.Sequential(OrderedDict([
        ("conv1", conv(3, 96, 11, stride=4)), ("relu1", nn.ReLU()),  # (B, 96, 55, 55)
        ("pool1", nn.MaxPool2d(3, 2)),  # (B, 96, 27, 27)
        ("conv2", conv(96, 256, 5, padding=2, groups=2)), ("relu2", nn.ReLU()),
        ("pool2", nn.MaxPool2d(3, 2)),  # (B, 256, 13, 13)
        ("conv3", conv(256, 384, 3, padding=1)), ("relu3", nn.ReLU()),
        ("conv4", conv(384, 384, 3, padding=1, groups=2)), ("relu4", nn.ReLU()),
        ("conv5", conv(384, 256, 3, padding=1, groups=2)), ("relu5", nn.ReLU()),
        ("pool5", nn.MaxPool2d(3, 2)),  # (B, 256, 6, 6)
        ("flatten", nn.Flatten()),  # (B, 9216)
        ("fc1", nn.Linear(9216, 4096)), ("relu6", nn.ReLU()), ("drop6", nn.Dropout()),
        ("fc2", nn.Linear(4096, 4096)), ("relu7", nn.ReLU()), ("drop7", nn.Dropout()),
        ("fc3", nn.Linear(4096, num_classes)),
    ]))


@dataclass(frozen=True)
class LayerCost:
    """One leaf module's cost for a single input: its parameters and multiply-accumulates."""

    name: str
    kind: str
    output_shape: tuple[int, ...]
    params: int
    macs: int


def linear_cost(n_in: int, n_out: int, bias: bool = True) -> tuple[int, int]:
    """Parameters and MACs of ``Linear(n_in, n_out)`` for one input vector: each weight is used
    once."""
    return n_in * n_out + (n_out if bias else 0), n_in * n_out


def conv_cost(c_in: int, c_out: int, k: int | tuple[int, int], h_out: int, w_out: int,
              groups: int = 1, bias: bool = True) -> tuple[int, int]:
    """Parameters and MACs of ``Conv2d(c_in, c_out, k, groups=groups)`` with an ``h_out x w_out``
    output: each output channel sees ``c_in / groups`` input channels, at every output position."""
    if c_in % groups or c_out % groups:
        raise ValueError(f"groups={groups} must divide c_in={c_in} and c_out={c_out}")
    kh, kw = (k, k) if isinstance(k, int) else k
    weights_per_output = (c_in // groups) * kh * kw  # one output value needs this many MACs
    params = c_out * weights_per_output + (c_out if bias else 0)
    return params, c_out * h_out * w_out * weights_per_output


def _macs(module: nn.Module, output: torch.Tensor) -> int:
    if isinstance(module, nn.Linear):
        vectors = output.numel() // module.out_features  # 1, or more for (1, T, n_out) outputs
        return vectors * linear_cost(module.in_features, module.out_features)[1]
    if isinstance(module, nn.Conv2d):
        h_out, w_out = output.shape[-2:]
        return conv_cost(module.in_channels, module.out_channels, module.kernel_size, h_out, w_out,
                         module.groups)[1]
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
        params = sum(p.numel() for p in module.parameters())  # a leaf's, or its parametrizations'
        # a weight-shared Linear is a Linear here, not a ParametrizedLinear
        kind = parametrize.type_before_parametrizations(module).__name__
        costs.append(LayerCost(names[module], kind, tuple(output.shape[1:]), params,
                               _macs(module, output)))

    # a parametrized layer (e.g. weight-shared) is a leaf; the modules of its parametrizations
    # are not layers
    parts = {id(m) for layer in model.modules() if parametrize.is_parametrized(layer)
             for m in layer.parametrizations.modules()}
    leaves = [m for m in model.modules() if id(m) not in parts
              and all(id(child) in parts for child in m.children())]
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


def size_bytes(model: nn.Module, bits: int = FP32_BITS) -> int:
    """Bytes to store every parameter with ``bits`` bits each, packed (``storage.packed_bytes``).

    Refuses a model with parametrized tensors (``torch.nn.utils.parametrize``), such as the
    layers ``sharing.share_layer`` makes weight-shared: their parameters are not what they store
    (a shared layer's weight is a codebook and an index per weight, in buffers).
    """
    parametrized = [name for name, module in model.named_modules()
                    if parametrize.is_parametrized(module)]
    if parametrized:
        raise ValueError(f"size_bytes counts plain parameters, and {', '.join(parametrized)} "
                         "have parametrized tensors (weight sharing?). Count a shared layer's "
                         "bytes with deep_compression.encode_layer(...).total_bytes()")
    return packed_bytes(sum(p.numel() for p in model.parameters()), bits)


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
