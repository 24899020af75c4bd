"""Real int8 inference on the CPU with PyTorch's quantized kernels (notebook 08).

Weights are quantized per output channel to int8 (symmetric, zero point 0); activations per
tensor to uint8 with a scale and zero point calibrated on sample inputs. The integer products
are accumulated in int32 by the kernel (FBGEMM or oneDNN, ``torch.backends.quantized.engine``)
and requantized to uint8 for the next layer.

These kernels are CPU-only, and their Python entry points (``torch.quantize_per_tensor`` and
``torch.ops.quantized``) are deprecated in favour of the separate ``torchao`` package. Check
``int8_kernels_available()`` first; the notebook falls back to simulated (fake) quantization.
"""

from __future__ import annotations

import copy
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from .models import MLP, CaffeLeNet5
from .pruning import serialized_bytes
from .quantization import uniform_qparams


def int8_kernels_available() -> bool:
    """Whether this torch still ships the quantized conv and linear kernels used here."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            q = torch.quantize_per_tensor(torch.zeros(1, 4), 0.1, 0, torch.quint8)
            packed = torch.ops.quantized.linear_prepack(
                torch.quantize_per_tensor(torch.zeros(2, 4), 0.1, 0, torch.qint8), None)
            torch.ops.quantized.linear(q, packed, 0.1, 0)
        return hasattr(torch.ops.quantized, "conv2d_relu")
    except (AttributeError, RuntimeError, NotImplementedError):
        return False


def quantize_weight(weight: torch.Tensor) -> torch.Tensor:
    """Symmetric per-output-channel int8: ``scale_c = max |W_c| / 127``, zero point 0 (a qint8
    tensor)."""
    w = weight.detach().float().cpu()
    scale = (w.reshape(w.shape[0], -1).abs().amax(dim=1) / 127).clamp(min=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.quantize_per_channel(w, scale.double(),
                                          torch.zeros(w.shape[0], dtype=torch.long), 0, torch.qint8)


def activation_qparams(x: torch.Tensor) -> tuple[float, int]:
    """uint8 scale and zero point covering the observed range of activations ``x``."""
    scale, zero_point = uniform_qparams(x.min(), x.max(), 8)
    return scale.item(), int(zero_point.item())


class Int8Model(nn.Module):
    """Common parts: the stored integer weights and the input quantizer."""

    def __init__(self):
        super().__init__()
        self.int_weights: dict[str, torch.Tensor] = {}
        self.qparams: dict[str, tuple[float, int]] = {}

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        scale, zero_point = self.qparams["input"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.quantize_per_tensor(x.float().cpu(), scale, zero_point, torch.quint8)

    def pack_linear(self, name: str, layer: nn.Linear):
        q = quantize_weight(layer.weight)
        self.int_weights[name] = q
        return torch.ops.quantized.linear_prepack(q, layer.bias.detach().float().cpu())

    def pack_conv(self, name: str, layer: nn.Conv2d):
        q = quantize_weight(layer.weight)
        self.int_weights[name] = q
        return torch.ops.quantized.conv2d_prepack(q, layer.bias.detach().float().cpu(),
                                                  list(layer.stride), list(layer.padding),
                                                  list(layer.dilation), layer.groups)

    def stored_bytes(self) -> int:
        """Bytes ``torch.save`` writes for what this model needs: int8 weights, their per-channel
        scales, fp32 biases and the activation scales and zero points."""
        tensors = {}
        for name, q in self.int_weights.items():
            tensors[f"{name}.int8"] = q.int_repr()
            tensors[f"{name}.scales"] = q.q_per_channel_scales().float()
        tensors.update({f"{name}.bias": b for name, b in self.biases.items()})
        tensors["activations"] = torch.tensor([v for scale, zp in self.qparams.values()
                                               for v in (scale, zp)])
        return serialized_bytes(tensors)


class Int8LeNet5(Int8Model):
    """Caffe's LeNet-5 in int8, calibrated on ``calibration`` inputs (B, 1, 28, 28). Runs on the
    CPU, from a model on any device."""

    @torch.no_grad()
    def __init__(self, model: CaffeLeNet5, calibration: torch.Tensor):
        super().__init__()
        model = copy.deepcopy(model).cpu().eval()  # the caller's model stays where it is
        x = calibration.cpu()
        a1 = F.relu(model.conv1(x))  # (B, 20, 24, 24); max pooling keeps the range
        a2 = F.relu(model.conv2(F.max_pool2d(a1, 2)))  # (B, 50, 8, 8)
        a3 = F.relu(model.fc1(F.max_pool2d(a2, 2).flatten(1)))  # (B, 500)
        logits = model.fc2(a3)  # (B, 10)
        self.qparams = {name: activation_qparams(t) for name, t in
                        [("input", x), ("conv1", a1), ("conv2", a2), ("fc1", a3), ("fc2", logits)]}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.packed = {"conv1": self.pack_conv("conv1", model.conv1),
                           "conv2": self.pack_conv("conv2", model.conv2),
                           "fc1": self.pack_linear("fc1", model.fc1),
                           "fc2": self.pack_linear("fc2", model.fc2)}
        self.biases = {name: model.get_submodule(name).bias.detach().clone()
                       for name in self.packed}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ops, p, qp = torch.ops.quantized, self.packed, self.qparams
        q = self.quantize_input(x)  # (B, 1, 28, 28) uint8
        q = F.max_pool2d(ops.conv2d_relu(q, p["conv1"], *qp["conv1"]), 2)  # (B, 20, 12, 12)
        q = F.max_pool2d(ops.conv2d_relu(q, p["conv2"], *qp["conv2"]), 2)  # (B, 50, 4, 4)
        q = ops.linear_relu(q.flatten(1), p["fc1"], *qp["fc1"])  # (B, 500)
        return ops.linear(q, p["fc2"], *qp["fc2"]).dequantize()  # (B, 10) float logits


class Int8MLP(Int8Model):
    """An ``MLP`` (e.g. LeNet-300-100) in int8, calibrated on ``calibration`` inputs (B, 1, 28, 28).
    CPU only."""

    @torch.no_grad()
    def __init__(self, model: MLP, calibration: torch.Tensor):
        super().__init__()
        model = copy.deepcopy(model).cpu().eval()  # the caller's model stays where it is
        x = calibration.cpu().flatten(1)  # (B, 784)
        a1 = F.relu(model.fc1(x))
        a2 = F.relu(model.fc2(a1))
        self.qparams = {name: activation_qparams(t) for name, t in
                        [("input", x), ("fc1", a1), ("fc2", a2), ("fc3", model.fc3(a2))]}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.packed = {name: self.pack_linear(name, model.get_submodule(name))
                           for name in ["fc1", "fc2", "fc3"]}
        self.biases = {name: model.get_submodule(name).bias.detach().clone()
                       for name in self.packed}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ops, p, qp = torch.ops.quantized, self.packed, self.qparams
        q = self.quantize_input(x.flatten(1))  # (B, 784) uint8
        q = ops.linear_relu(q, p["fc1"], *qp["fc1"])  # (B, 300)
        q = ops.linear_relu(q, p["fc2"], *qp["fc2"])  # (B, 100)
        return ops.linear(q, p["fc3"], *qp["fc3"]).dequantize()  # (B, 10)
