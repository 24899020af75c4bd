"""Self-checks of notebook 04's exercises: LeNet, output sides, max pooling, fc1's inputs."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..exercises import Case, check_cases
from ..models import LeNet
from .modules import check_module


def check_lenet(lenet_class: Callable[[], nn.Module], seed: int = 0,
                strict: bool | None = None) -> bool:
    """The student's ``Net`` against ``course_utils.models.LeNet`` (1x28x28 input, padding 2)."""
    torch.manual_seed(seed)
    return check_module("Net (LeNet)", lenet_class, LeNet(), (1, 28, 28), seed, strict)


def reference_output_side(h: int, k: int, p: int = 0, s: int = 1) -> int:
    """Side of a convolution's or pooling's output: floor((h + 2p - k) / s) + 1."""
    return (h + 2 * p - k) // s + 1


def measured_side(h: int, k: int, p: int, s: int) -> int:
    """The side PyTorch's ``Conv2d`` produces, measured on a zero image."""
    return nn.Conv2d(1, 1, k, stride=s, padding=p)(torch.zeros(1, 1, h, h)).shape[-1]


def check_output_side(conv_output_side: Callable[..., int], seed: int = 0,
                      strict: bool | None = None) -> bool:
    """Padding, stride, a stride that does not divide evenly, and a kernel as large as the image."""
    generator = torch.Generator().manual_seed(seed)
    h = int(torch.randint(20, 40, (1,), generator=generator))
    shapes = [(28, 5, 2, 1), (14, 5, 0, 1), (28, 2, 0, 2), (7, 3, 1, 2), (5, 5, 0, 1), (h, 3, 1, 3)]
    return check_cases("conv_output_side", [
        Case(f"h={a}, k={k}, p={p}, s={s}", measured_side(a, k, p, s),
             lambda a=a, k=k, p=p, s=s: conv_output_side(a, k, p, s))
        for a, k, p, s in shapes
    ], strict)


def check_max_pool(max_pool_2x2: Callable[[torch.Tensor], torch.Tensor], seed: int = 0,
                   strict: bool | None = None) -> bool:
    """Against ``F.max_pool2d(x, 2)``: random maps, all-negative maps, non-square maps, 2x2."""
    generator = torch.Generator().manual_seed(seed)
    inputs = {
        "random (2, 3, 8, 8)": torch.randn(2, 3, 8, 8, generator=generator),
        "all negative (1, 2, 4, 4)": -torch.rand(1, 2, 4, 4, generator=generator) - 1,
        "not square (1, 1, 4, 6)": torch.randn(1, 1, 4, 6, generator=generator),
        "a single 2x2 window": torch.tensor([[[[1.0, 3.0], [-2.0, 0.5]]]]),
    }
    return check_cases("max_pool_2x2", [
        Case(label, F.max_pool2d(x, 2), lambda x=x: max_pool_2x2(x.clone()))
        for label, x in inputs.items()
    ], strict)


def measured_fc1_inputs(side: int, padding: int) -> int:
    """LeNet's feature count after conv1 (padded), pool, conv2, pool, measured on a zero image."""
    features = nn.Sequential(nn.Conv2d(1, 6, 5, padding=padding), nn.MaxPool2d(2),
                             nn.Conv2d(6, 16, 5), nn.MaxPool2d(2), nn.Flatten())
    return features(torch.zeros(1, 1, side, side)).shape[1]


def check_fc1_inputs(fc1_inputs: Callable[[int, int], int], strict: bool | None = None) -> bool:
    """``fc1_inputs(side, padding)`` for the lecture's 32x32, our padded 28x28, and others."""
    settings = [(32, 0), (28, 2), (28, 0), (36, 0), (30, 1)]
    return check_cases("fc1_inputs", [
        Case(f"{side}x{side} input, padding {p}", measured_fc1_inputs(side, p),
             lambda side=side, p=p: fc1_inputs(side, p))
        for side, p in settings
    ], strict)
