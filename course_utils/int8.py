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

from .chain import forward_chain, is_layer, relu_before_pooling, run_step
from .quantization import uniform_qparams
from .storage import serialized_bytes


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
    """A float network run in int8 on the CPU, from a model on any device, calibrated on
    ``calibration`` inputs ``(B, 1, 28, 28)``.

    Its steps are the float model's own (``chain.forward_chain``): Linear and Conv2d layers, ReLU,
    2x2 max pooling and flatten, in a chain. A layer and the ReLU after it are one integer kernel
    (``conv2d_relu``, ``linear_relu``); a ReLU after a pooling is moved before it, which gives the
    same function. Each layer's output scale and zero point cover the range it gave on
    ``calibration``.
    """

    @torch.no_grad()
    def __init__(self, model: nn.Module, calibration: torch.Tensor):
        super().__init__()
        model = copy.deepcopy(model).cpu().eval()  # the caller's model stays where it is
        self.steps = relu_before_pooling(forward_chain(model))
        x = calibration.float().cpu()
        self.qparams: dict[str, tuple[float, int]] = {"input": activation_qparams(x)}
        self.int_weights: dict[str, torch.Tensor] = {}  # int8 weights (qint8 tensors)
        self.biases: dict[str, torch.Tensor] = {}  # fp32
        self.packed = {}  # the kernels' own form of each layer
        for i, step in enumerate(self.steps):
            if is_layer(step):
                layer = model.get_submodule(step)
                x = layer(x)
                if self.fused_relu(i):
                    x = F.relu(x)
                self.qparams[step] = activation_qparams(x)
                self.packed[step] = self.pack(step, layer)
            else:
                x = run_step(step, x)

    def fused_relu(self, i: int) -> bool:
        """Whether step ``i`` is a layer whose ReLU (the next step) runs in its kernel."""
        return (is_layer(self.steps[i]) and i + 1 < len(self.steps)
                and self.steps[i + 1] == "relu")

    def pack(self, name: str, layer: nn.Module):
        """Layer ``name``'s int8 weight and fp32 bias in the kernel's packed form."""
        q = quantize_weight(layer.weight)
        self.int_weights[name] = q
        bias = None if layer.bias is None else layer.bias.detach().float().cpu().clone()
        if bias is not None:
            self.biases[name] = bias
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if isinstance(layer, nn.Linear):
                return torch.ops.quantized.linear_prepack(q, bias)
            return torch.ops.quantized.conv2d_prepack(q, bias, list(layer.stride),
                                                      list(layer.padding), list(layer.dilation),
                                                      layer.groups)

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        scale, zero_point = self.qparams["input"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.quantize_per_tensor(x.float().cpu(), scale, zero_point, torch.quint8)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, 28, 28)`` inputs on any device to the float outputs, on the CPU."""
        ops = torch.ops.quantized
        kernels = {(True, True): ops.conv2d_relu, (True, False): ops.conv2d,  # (conv, relu)
                   (False, True): ops.linear_relu, (False, False): ops.linear}
        q = self.quantize_input(x)  # uint8
        for i, step in enumerate(self.steps):
            if not is_layer(step):
                if not (step == "relu" and self.fused_relu(i - 1)):  # else: done in the kernel
                    q = run_step(step, q)
                continue
            kernel = kernels[q.dim() == 4, self.fused_relu(i)]
            q = kernel(q, self.packed[step], *self.qparams[step])
        return q.dequantize()

    def stored_bytes(self) -> int:
        """Bytes ``torch.save`` writes for what this model needs: int8 weights, their per-channel
        scales, fp32 biases and the activation scales and zero points. Measured
        (``storage.serialized_bytes``), with torch's own headers, not modelled."""
        tensors = {}
        for name, q in self.int_weights.items():
            tensors[f"{name}.int8"] = q.int_repr()
            tensors[f"{name}.scales"] = q.q_per_channel_scales().float()
        tensors.update({f"{name}.bias": b for name, b in self.biases.items()})
        tensors["activations"] = torch.tensor([v for scale, zp in self.qparams.values()
                                               for v in (scale, zp)])
        return serialized_bytes(tensors)
