"""Self-checks of notebook 03's exercises: the MLP class, its parameter count, choosing a
setting."""

from __future__ import annotations

import statistics
from collections.abc import Callable

import torch
from torch import nn

from ..exercises import Case, check_cases
from ..models import MLP, count_parameters
from .modules import check_module


def check_mlp(mlp_class: Callable[[], nn.Module], seed: int = 0,
              strict: bool | None = None) -> bool:
    """The student's ``Net`` against ``course_utils.models.MLP()``, the lecture's 784-120-80-10."""
    torch.manual_seed(seed)
    return check_module("Net (the MLP 784-120-80-10)", mlp_class, MLP(), (1, 28, 28), seed, strict)


def check_parameter_count(mlp_parameter_count: Callable[[list[int]], int], seed: int = 0,
                          strict: bool | None = None) -> bool:
    """Counts for several layer sizes, against the parameters of a built network."""
    generator = torch.Generator().manual_seed(seed)
    h1, h2 = (int(v) for v in torch.randint(5, 500, (2,), generator=generator))
    cases = [Case(f"784-{a}-{b}-10", count_parameters(MLP((a, b))),
                  lambda a=a, b=b: mlp_parameter_count([784, a, b, 10]))
             for a, b in [(120, 80), (300, 100), (h1, h2)]]
    cases += [
        Case("784-10: no hidden layer, the linear model", 784 * 10 + 10,
             lambda: mlp_parameter_count([784, 10])),
        Case("4-3-2 (two layers)",
             count_parameters(nn.Sequential(nn.Linear(4, 3), nn.Linear(3, 2))),
             lambda: mlp_parameter_count([4, 3, 2])),
    ]
    return check_cases("mlp_parameter_count", cases, strict)


def reference_best_setting(results: dict[str, list[float]]) -> str:
    """The setting with the highest mean validation accuracy over its seeds (first if tied)."""
    return max(results, key=lambda name: statistics.fmean(results[name]))


def check_best_setting(best_setting: Callable[[dict[str, list[float]]], str], seed: int = 0,
                       strict: bool | None = None) -> bool:
    """Hand-made sweeps where the best single run, the last seed or the first seed mislead."""
    generator = torch.Generator().manual_seed(seed)
    noise = [float(v) for v in torch.rand(3, generator=generator) * 0.001]
    sweeps = {
        "one lucky seed is not the best mean":
            {"lr 0.01": [0.950, 0.990], "lr 0.1": [0.975, 0.976]},
        "the last seed misleads": {"a": [0.97, 0.96, 0.90], "b": [0.93, 0.94, 0.95]},
        "the first seed misleads": {"a": [0.99, 0.90], "b": [0.96, 0.97]},
        "a single setting": {"only": [0.5 + noise[0]]},
        "three settings with 3 seeds each": {
            "small": [0.961 + noise[0], 0.962, 0.960],
            "medium": [0.970, 0.969 + noise[1], 0.971],
            "large": [0.968, 0.972, 0.967 + noise[2]],
        },
    }
    return check_cases("best_setting", [
        Case(label, reference_best_setting(results), lambda results=results: best_setting(results))
        for label, results in sweeps.items()
    ], strict)
