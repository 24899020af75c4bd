"""Self-checks of notebook 00's exercises."""

from __future__ import annotations

from collections.abc import Callable

import torch

from ..data import load_mnist
from ..exercises import Case, check_cases


def check_split_sizes(split_sizes: Callable[[], tuple[int, int, int]],
                      strict: bool | None = None) -> bool:
    """``split_sizes()`` must give the lengths of ``load_mnist()``'s three splits, in order."""
    splits = load_mnist()
    expected = (len(splits.train), len(splits.val), len(splits.test))
    return check_cases("split_sizes", [
        Case("(train, validation, test) of load_mnist()", expected, lambda: tuple(split_sizes())),
    ], strict)


def reference_tensor_bytes(t: torch.Tensor) -> int:
    """Bytes of a tensor's elements: one element's size times the number of elements."""
    return t.numel() * t.element_size()


def check_tensor_bytes(tensor_bytes: Callable[[torch.Tensor], int], seed: int = 0,
                       strict: bool | None = None) -> bool:
    """Bytes for tensors of several dtypes and shapes, an empty one included."""
    generator = torch.Generator().manual_seed(seed)
    n = int(torch.randint(2, 9, (1,), generator=generator))
    tensors = {
        f"float32 ({n}, 784)": torch.zeros(n, 784),
        f"uint8 ({n}, 28, 28), one byte a pixel": torch.zeros(n, 28, 28, dtype=torch.uint8),
        "int64 labels (10,)": torch.zeros(10, dtype=torch.long),
        "float16 (3, 5)": torch.zeros(3, 5, dtype=torch.float16),
        "an empty tensor": torch.zeros(0, 10),
    }
    return check_cases("tensor_bytes", [
        Case(label, reference_tensor_bytes(t), lambda t=t: tensor_bytes(t))
        for label, t in tensors.items()
    ], strict)
