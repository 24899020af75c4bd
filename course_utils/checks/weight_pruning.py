"""Self-checks of notebook 06's exercises: the magnitude mask, the masked retraining step, the
threshold of a sparsity, and the bytes of CSR with relative column indices."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from ..exercises import Case, check_cases
from ..pruning import Masks, apply_masks, magnitude_mask
from ..reference import pretrained
from ..storage import BITS_PER_BYTE, csr_bits
from ..training import train_step


def check_magnitude_mask(mask_fn: Callable[[torch.Tensor, float], torch.Tensor], seed: int = 0,
                         strict: bool | None = None) -> bool:
    """Hand-made tensors with known masks, ties, sparsity 0, 2-D and 4-D weights, a real layer."""
    generator = torch.Generator().manual_seed(seed)
    n = [7, 9, 12][seed % 3]  # 0.4 n = 2.8, 3.6 or 4.8: rounding and truncation differ
    inputs = {
        "[0.1, -0.5, 0.05, 2.0, -0.01, 0.3] at 0.5: |w| = 0.01, 0.05, 0.1 go":
            (torch.tensor([0.1, -0.5, 0.05, 2.0, -0.01, 0.3]), 0.5),
        "negative weights are large too: [-3, 1, -2, 0.5] at 0.5":
            (torch.tensor([-3.0, 1.0, -2.0, 0.5]), 0.5),
        "ties [0.2, -0.2, 0.2, 1.0] at 0.5: exactly 2 go, the first ones":
            (torch.tensor([0.2, -0.2, 0.2, 1.0]), 0.5),
        "sparsity 0 keeps everything": (torch.randn(3, 4, generator=generator), 0.0),
        f"{n} weights at 0.4: round({0.4 * n:.1f}) = {round(0.4 * n)} go":
            (torch.randn(n, generator=generator), 0.4),
        "a (3, 4) weight at 0.25: the mask has the weight's shape":
            (torch.randn(3, 4, generator=generator), 0.25),
        "a conv weight (4, 2, 3, 3) at 0.6": (torch.randn(4, 2, 3, 3, generator=generator), 0.6),
        "LeNet-300-100's trained fc1 (300, 784) at 0.925":
            (pretrained("lenet300").fc1.weight.detach(), 0.925),
    }
    return check_cases("magnitude_mask", [
        Case(label, magnitude_mask(w, s), lambda w=w, s=s: mask_fn(w.clone(), s))
        for label, (w, s) in inputs.items()], strict)


def reference_retrain_step(model: nn.Module, masks: Masks, x: torch.Tensor, y: torch.Tensor,
                           optimizer: torch.optim.Optimizer) -> float:
    """One step of masked retraining: the course's train_step, then the masks applied again."""
    loss = train_step(model, x, y, optimizer)
    apply_masks(model, masks)
    return loss


def retrained(step_fn: Callable, seed: int, steps: int, sparsity: float,
              weight_decay: float) -> tuple[torch.Tensor, list[float]]:
    """A pruned 6-5-3 network after ``steps`` calls of ``step_fn``: its weights ``(P,)``, losses."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
    masks = {str(i): magnitude_mask(model[i].weight, sparsity) for i in (0, 2)}  # module names
    apply_masks(model, masks)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=weight_decay)
    generator = torch.Generator().manual_seed(seed + 1)
    losses = []
    for _ in range(steps):
        x = torch.randn(8, 6, generator=generator)  # (8, 6)
        y = torch.randint(0, 3, (8,), generator=generator)  # (8,)
        losses.append(step_fn(model, copy.deepcopy(masks), x, y, optimizer))
    return torch.cat([p.detach().flatten() for p in model.parameters()]), losses


def check_retrain_step(retrain_step: Callable, seed: int = 0, strict: bool | None = None) -> bool:
    """Weights and losses of a pruned network after several masked steps, against the course's."""
    cases = []
    for label, steps, sparsity, decay in [("1 step, half pruned", 1, 0.5, 0.0),
                                          ("5 steps with momentum, 70% pruned", 5, 0.7, 0.0),
                                          ("5 steps with momentum and weight decay", 5, 0.5, 1e-2),
                                          ("nothing pruned (sparsity 0), 3 steps", 3, 0.0, 0.0)]:
        weights, losses = retrained(reference_retrain_step, seed, steps, sparsity, decay)
        cases.append(Case(f"{label}: all weights and biases", weights,
                          lambda a=(steps, sparsity, decay): retrained(retrain_step, seed, *a)[0]))
        if steps == 5 and decay == 0.0:
            cases.append(Case(f"{label}: the loss of each step, as floats", losses,
                              lambda a=(steps, sparsity, decay):
                                  retrained(retrain_step, seed, *a)[1]))
    return check_cases("retrain_step", cases, strict)


def check_threshold_for(threshold_for: Callable[[torch.Tensor, float], float], seed: int = 0,
                        strict: bool | None = None) -> bool:
    """Pruning ``|w| <= threshold_for(w, s)`` must remove exactly what magnitude_mask removes."""
    generator = torch.Generator().manual_seed(seed)
    cases = []
    for shape, sparsity in [((1000,), 0.9), ((20, 30), 0.5), ((7,), 0.3), ((4, 2, 3, 3), 0.75)]:
        w = torch.randn(shape, generator=generator)

        def pruned_by_threshold(w=w, sparsity=sparsity) -> torch.Tensor:
            return w.abs() > float(threshold_for(w.clone(), sparsity))

        cases.append(Case(f"{tuple(shape)} at {sparsity}: the weights kept",
                          magnitude_mask(w, sparsity), pruned_by_threshold))
    return check_cases("threshold_for", cases, strict)


def reference_csr_bytes_relative(weight: torch.Tensor) -> float:
    """CSR bytes with 5-bit relative column indices, 32-bit values and 32-bit row pointers."""
    matrix = weight.detach().reshape(weight.shape[0], -1)  # (rows, columns)
    nonzeros = int((matrix != 0).sum())
    return csr_bits(matrix.shape[0], nonzeros, index_bits=5, pointer_bits=32) / BITS_PER_BYTE


def check_csr_bytes_relative(csr_bytes_relative: Callable[[torch.Tensor], float], seed: int = 0,
                             strict: bool | None = None) -> bool:
    """Hand-made matrices (an empty row, no nonzero at all), a conv weight, a pruned layer."""
    generator = torch.Generator().manual_seed(seed)
    pruned = torch.randn(30, 40, generator=generator)
    pruned = pruned * magnitude_mask(pruned, 0.9)
    inputs = {
        "[[0, 2, 0], [1, 0, 3]]": torch.tensor([[0.0, 2.0, 0.0], [1.0, 0.0, 3.0]]),
        "a row of zeros: [[0, 0], [0, 5]]": torch.tensor([[0.0, 0.0], [0.0, 5.0]]),
        "all zeros (4, 3)": torch.zeros(4, 3),
        "a conv weight (2, 3, 2, 2), read as a (2, 12) matrix":
            torch.randn(2, 3, 2, 2, generator=generator),
        "a (30, 40) layer, 90% pruned": pruned,
    }
    return check_cases("csr_bytes_relative", [
        Case(label, reference_csr_bytes_relative(w), lambda w=w: float(csr_bytes_relative(w)))
        for label, w in inputs.items()], strict)

