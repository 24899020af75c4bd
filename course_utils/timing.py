"""Honest timing: warm-up first, many repeats, the median, and CUDA synchronised."""

from __future__ import annotations

from collections.abc import Callable
from statistics import median
from time import perf_counter

import torch
from torch import nn


def median_seconds(fn: Callable[[], object], repeats: int = 20, warmup: int = 3) -> float:
    """Median wall-clock seconds of ``fn()`` over ``repeats`` calls, after ``warmup`` untimed
    calls."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeats):
        start = perf_counter()
        fn()
        sync()
        times.append(perf_counter() - start)
    return median(times)


@torch.inference_mode()
def inference_seconds(model: nn.Module, input_shape: tuple[int, ...], repeats: int = 20,
                      warmup: int = 3) -> float:
    """Median seconds of one forward pass of ``model`` (eval mode) on a zero batch of
    ``input_shape``."""
    model.eval()
    x = torch.zeros(input_shape, device=next(model.parameters()).device)
    return median_seconds(lambda: model(x), repeats, warmup)
