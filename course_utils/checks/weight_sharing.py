"""Self-checks of notebook 09's exercises: one Lloyd iteration, the gradient of a shared centroid,
the compression rate of weight sharing, assignment to the nearest centroid, and the bits of product
quantization."""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ..exercises import Case, check_cases
from ..reference import pretrained
from ..sharing import kmeans_share, lloyd_step, product_quantize

CentroidGradient = Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]


def check_lloyd_step(lloyd_step_fn: Callable[[torch.Tensor, torch.Tensor], tuple],
                     seed: int = 0, strict: bool | None = None) -> bool:
    """Points and centroids by hand, an empty cluster, 2-D points, a real layer's weights."""
    generator = torch.Generator().manual_seed(seed)
    points2d = torch.randn(20, 2, generator=generator)  # (20, 2)
    fc3 = pretrained("lenet300").fc3.weight.detach().reshape(-1, 1)  # (1000, 1)
    inputs = {
        "[0, 1, 10, 11] with centroids [0, 10]":
            (torch.tensor([[0.0], [1.0], [10.0], [11.0]]), torch.tensor([[0.0], [10.0]])),
        "an empty cluster keeps its centroid (50)":
            (torch.tensor([[0.0], [1.0], [10.0], [11.0]]), torch.tensor([[0.0], [50.0], [10.0]])),
        "20 points in 2-D, 3 centroids":
            (points2d, points2d[torch.randperm(20, generator=generator)[:3]]),
        "LeNet-300-100's fc3 weights (1000, 1), 8 evenly spaced centroids":
            (fc3, torch.linspace(float(fc3.min()), float(fc3.max()), 8)[:, None]),
    }
    cases = []
    for label, (points, centroids) in inputs.items():
        moved, assign = lloyd_step(points, centroids)
        cases += [Case(f"{label}: the new centroids", moved,
                       lambda p=points, c=centroids: lloyd_step_fn(p.clone(), c.clone())[0]),
                  Case(f"{label}: the assignments", assign,
                       lambda p=points, c=centroids: lloyd_step_fn(p.clone(), c.clone())[1])]
    return check_cases("lloyd_step", cases, strict)


def autograd_centroid_gradient(weight_grad: torch.Tensor, indices: torch.Tensor,
                               k: int) -> torch.Tensor:
    """What autograd gives a codebook (k,) used as ``weight = codebook[indices]``, when the loss's
    gradient with respect to ``weight`` is ``weight_grad``."""
    codebook = torch.zeros(k, requires_grad=True)
    (codebook[indices] * weight_grad).sum().backward()
    return codebook.grad


def check_centroid_gradient(centroid_gradient: CentroidGradient, seed: int = 0,
                            strict: bool | None = None) -> bool:
    """Against autograd through ``codebook[indices]``: by hand, an unused centroid, a 2-D weight, a
    real layer shared with k-means and the gradient of a cross-entropy loss."""
    generator = torch.Generator().manual_seed(seed)
    layer = pretrained("lenet300").fc3
    codebook, indices = kmeans_share(layer.weight, 4)  # (4,), (10, 100)
    weight = codebook[indices].requires_grad_()  # (10, 100)
    x = torch.randn(32, 100, generator=generator)
    y = torch.randint(0, 10, (32,), generator=generator)
    F.cross_entropy(F.linear(x, weight, layer.bias.detach()), y).backward()
    inputs = {
        "grads [1, 2, 3, 4], indices [0, 1, 0, 1], k = 2":
            (torch.tensor([1.0, 2.0, 3.0, 4.0]), torch.tensor([0, 1, 0, 1]), 2),
        "centroid 2 of 3 is used by no weight: its gradient is 0":
            (torch.tensor([0.5, -1.0, 2.0]), torch.tensor([0, 1, 0]), 3),
        "a (3, 4) weight, k = 5": (torch.randn(3, 4, generator=generator),
                                   torch.randint(0, 5, (3, 4), generator=generator), 5),
        "LeNet-300-100's fc3 shared with k = 4, a cross-entropy gradient":
            (weight.grad, indices, 4),
    }
    return check_cases("centroid_gradient", [
        Case(label, autograd_centroid_gradient(g, i, k),
             lambda g=g, i=i, k=k: centroid_gradient(g.clone(), i.clone(), k), atol=1e-6, rtol=1e-4)
        for label, (g, i, k) in inputs.items()], strict)


def reference_sharing_rate(n: int, k: int, b: int = 32) -> float:
    """Deep Compression's rate ``n b / (n log2(k) + k b)``, the index bits not rounded."""
    return n * b / (n * math.log2(k) + k * b)


def check_sharing_rate(sharing_rate: Callable[..., float], seed: int = 0,
                       strict: bool | None = None) -> bool:
    """Several layers and codebooks, k not a power of two, 16-bit weights."""
    generator = torch.Generator().manual_seed(seed)
    n = int(torch.randint(500, 5000, (1,), generator=generator))
    inputs = [("n = 1000, k = 16", (1000, 16)), ("LeNet-300-100's fc1, k = 32", (235_200, 32)),
              (f"n = {n}, k = 2", (n, 2)), ("n = 100, k = 5 (log2 5 is not whole)", (100, 5)),
              ("n = 4096, k = 256, 16-bit weights", (4096, 256, 16))]
    return check_cases("sharing_rate", [
        Case(label, reference_sharing_rate(*args), lambda args=args: float(sharing_rate(*args)))
        for label, args in inputs], strict)


def reference_assign(w: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Index (n,) of the nearest codebook entry (k,) for every weight (n,)."""
    return (w[:, None] - codebook[None, :]).abs().argmin(dim=1)


def check_assign(assign: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], seed: int = 0,
                 strict: bool | None = None) -> bool:
    """By hand, weights beyond both ends of the codebook, an unsorted codebook, random weights."""
    generator = torch.Generator().manual_seed(seed)
    inputs = {
        "[0.1, -0.9, 0.6, 2.0] to [-1, 0, 1]":
            (torch.tensor([0.1, -0.9, 0.6, 2.0]), torch.tensor([-1.0, 0.0, 1.0])),
        "beyond both ends: [-5, 5] to [-1, 0, 1]":
            (torch.tensor([-5.0, 5.0]), torch.tensor([-1.0, 0.0, 1.0])),
        "an unsorted codebook [1, -1, 0.2]":
            (torch.tensor([0.9, -0.3, 0.25]), torch.tensor([1.0, -1.0, 0.2])),
        "100 random weights, 8 centroids":
            (torch.randn(100, generator=generator), torch.randn(8, generator=generator)),
    }
    return check_cases("assign", [
        Case(label, reference_assign(w, c), lambda w=w, c=c: assign(w.clone(), c.clone()))
        for label, (w, c) in inputs.items()], strict)


def check_pq_bits(pq_bits: Callable[[int, int, int, int], int], seed: int = 0,
                  strict: bool | None = None) -> bool:
    """Against the bits ``product_quantize`` counts for random weights of several shapes."""
    generator = torch.Generator().manual_seed(seed)
    inputs = [(300, 784, 4, 16), (10, 12, 3, 4), (8, 8, 8, 2), (20, 6, 2, 3)]
    return check_cases("pq_bits", [
        Case(f"m = {m}, n = {n}, d = {d}, k = {k}",
             product_quantize(torch.randn(m, n, generator=generator), d, k).bits,
             lambda args=(m, n, d, k): pq_bits(*args))
        for m, n, d, k in inputs], strict)
