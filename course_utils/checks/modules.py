"""Compare a student's ``nn.Module`` class with the course's: parameters, shapes and outputs."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from ..exercises import Case, check_cases


def copy_weights_by_position(source: nn.Module, target: nn.Module) -> nn.Module:
    """``target`` with ``source``'s parameters copied in, matched by order of definition.

    The student may name layers as they like; the order and the shapes must be the lecture's.
    """
    src, dst = list(source.parameters()), list(target.parameters())
    if [p.shape for p in src] != [p.shape for p in dst]:
        raise ValueError("the parameters differ in number or shape from the lecture's network, "
                         "so their outputs cannot be compared")
    with torch.no_grad():
        for s, d in zip(src, dst, strict=True):
            d.copy_(s)
    return target


def shapes(model: nn.Module) -> list[tuple[int, ...]]:
    """Shapes of the parameters in order of definition."""
    return [tuple(p.shape) for p in model.parameters()]


def count(model: nn.Module) -> int:
    """Number of scalars in the parameters."""
    return sum(p.numel() for p in model.parameters())


def check_module(what: str, student_class: Callable[[], nn.Module], reference: nn.Module,
                 input_shape: tuple[int, ...], seed: int = 0, strict: bool | None = None) -> bool:
    """Check a student's network class against ``reference`` (an instance of the course's class).

    Cases: parameter count, parameter shapes in order, and the outputs for the same weights on a
    batch of 3 random inputs and on a batch of 1 (a forward pass must not assume a batch size).
    """
    generator = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    reference = copy.deepcopy(reference).eval()
    batch = torch.randn(3, *input_shape, generator=generator)  # (3, *input_shape)
    built: dict[str, nn.Module] = {}

    def student() -> nn.Module:
        if "model" not in built:
            built["model"] = student_class()
        return built["model"]

    def output(x: torch.Tensor) -> torch.Tensor:
        model = copy_weights_by_position(reference, copy.deepcopy(student())).eval()
        with torch.no_grad():
            return model(x)

    with torch.no_grad():
        expected_3, expected_1 = reference(batch), reference(batch[:1])
    return check_cases(what, [
        Case("number of parameters", count(reference), lambda: count(student())),
        Case("parameter shapes, in order of definition", shapes(reference),
             lambda: shapes(student())),
        Case("output for a batch of 3, with the lecture network's weights", expected_3,
             lambda: output(batch), atol=1e-5),
        Case("output for a batch of 1", expected_1, lambda: output(batch[:1]), atol=1e-5),
    ], strict)
