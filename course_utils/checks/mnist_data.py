"""Self-checks of notebook 01's exercises."""

from __future__ import annotations

from collections.abc import Callable
from types import SimpleNamespace

import torch

from ..data import DigitDataset, one_hot
from ..exercises import Case, check_cases


def check_one_hot(one_hot_by_comparison: Callable[..., torch.Tensor], seed: int = 0,
                  strict: bool | None = None) -> bool:
    """Against ``course_utils.one_hot``: repeated labels, one label, no label, 3 classes."""
    generator = torch.Generator().manual_seed(seed)
    random_labels = torch.randint(0, 10, (6,), generator=generator)
    inputs = [
        (f"labels {random_labels.tolist()}", (random_labels,)),
        ("labels [3, 0, 9, 9]", (torch.tensor([3, 0, 9, 9]),)),
        ("a single label [7]", (torch.tensor([7]),)),
        ("no labels at all", (torch.tensor([], dtype=torch.long),)),
        ("3 classes: labels [2, 0]", (torch.tensor([2, 0]), 3)),
    ]
    return check_cases("one_hot_by_comparison", [
        Case(label, one_hot(*args), lambda args=args: one_hot_by_comparison(*args))
        for label, args in inputs
    ], strict)


def reference_rarest_digit(dataset) -> int:
    """The digit with the fewest labels; a digit with none at all is the rarest; ties: smallest."""
    return int(torch.bincount(dataset.labels.long(), minlength=10).argmin())


def check_rarest_digit(rarest_digit: Callable[..., int], dataset: DigitDataset | None = None,
                       seed: int = 0, strict: bool | None = None) -> bool:
    """Hand-made label sets (a missing digit, a tie, the last digit rarest) and, if given, a
    split."""
    generator = torch.Generator().manual_seed(seed)
    missing = int(torch.randint(1, 9, (1,), generator=generator))
    every_digit_but_one = [d for d in range(10) for _ in range(3) if d != missing]
    label_sets = {
        "digit 9 appears once, every other digit three times":
            [d for d in range(10) for _ in range(1 if d == 9 else 3)],
        f"digit {missing} never appears": every_digit_but_one,
        "digit 9 never appears": [d for d in range(9) for _ in range(2)],
        "digits 4 and 7 tie for fewest: the smaller, 4": [d for d in range(10)
                                                         for _ in range(1 if d in (4, 7) else 2)],
    }
    datasets = {label: SimpleNamespace(labels=torch.tensor(labels))
                for label, labels in label_sets.items()}
    if dataset is not None:
        datasets["the split you passed"] = dataset
    return check_cases("rarest_digit", [
        Case(label, reference_rarest_digit(d), lambda d=d: rarest_digit(d))
        for label, d in datasets.items()
    ], strict)


def reference_to_pixels(x: torch.Tensor, mean: float, std: float) -> torch.Tensor:
    """Undo ``(p / 255 - mean) / std``: ``(B, 1, H, W)`` floats to ``(B, 1, H, W)`` uint8."""
    return ((x * std + mean) * 255).round().clamp(0, 255).to(torch.uint8)


def check_to_pixels(to_pixels: Callable[..., torch.Tensor], dataset: DigitDataset | None = None,
                    seed: int = 0, strict: bool | None = None) -> bool:
    """Hand-made images with known statistics, rounding at the edges, and a real minibatch."""
    generator = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (2, 1, 4, 4), generator=generator, dtype=torch.uint8)
    cases = []
    for mean, std in [(0.5, 0.5), (0.1307, 0.3081)]:
        x = (pixels.float() / 255 - mean) / std
        cases.append(Case(f"random pixels, mean {mean}, std {std}", pixels,
                          lambda x=x, mean=mean, std=std: to_pixels(x, mean, std)))
    extremes = torch.tensor([0, 1, 254, 255], dtype=torch.uint8).reshape(1, 1, 2, 2)
    x = (extremes.float() / 255 - 0.2) / 0.3
    cases.append(Case("pixels 0, 1, 254 and 255 come back exactly", extremes,
                      lambda: to_pixels(x, 0.2, 0.3)))
    if dataset is not None:
        batch, _ = dataset[list(range(8))]  # (8, 1, 28, 28)
        cases.append(Case("8 digits of the split you passed", dataset.images[:8].unsqueeze(1),
                          lambda: to_pixels(batch, dataset.mean, dataset.std)))
    return check_cases("to_pixels", cases, strict)
