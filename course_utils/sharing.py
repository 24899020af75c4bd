"""Weight sharing (notebook 09): k-means, shared-weight training, the lecture's loop of training
and clustering again, product and residual quantization.

Every quantizer here returns the reconstructed weight and the bits its compressed form takes
(indices plus codebooks, codebook entries counted as 32-bit floats).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize

from .pruning import prunable_weights
from .storage import FP32_BITS, whole_bytes
from .training import evaluate, fit

CODEBOOK_BITS = FP32_BITS  # one codebook entry


def _kmeans_plus_plus(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding (Arthur and Vassilvitskii 2007) for a batch of point sets x (B, n, d) ->
    (B, k, d)."""
    batch, n, _ = x.shape
    rows = torch.arange(batch)
    first = torch.randint(n, (batch,), generator=generator)
    centroids = [x[rows, first]]  # each (B, d)
    # (B, n) squared distance to the nearest centroid
    nearest = (x - centroids[0][:, None]).pow(2).sum(-1)
    for _ in range(1, k):
        weights = nearest + 1e-30  # pick far points more often; never all zero
        pick = torch.multinomial(weights, 1, generator=generator).squeeze(1)  # (B,)
        centroids.append(x[rows, pick])
        nearest = torch.minimum(nearest, (x - centroids[-1][:, None]).pow(2).sum(-1))
    return torch.stack(centroids, dim=1)


def lloyd_step(points: torch.Tensor,
               centroids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """One iteration of Lloyd's k-means: assign every point to its nearest centroid, then move each
    centroid to the mean of its points (an empty cluster keeps its centroid).

    ``points`` (n, d) and ``centroids`` (k, d), or batches (B, n, d) and (B, k, d). Returns the new
    centroids, shaped like ``centroids``, and the assignments (n,) or (B, n) made before the move.
    """
    batched = points.dim() == 3
    x, c = (points, centroids) if batched else (points[None], centroids[None])  # (B,n,d), (B,k,d)
    assign = torch.cdist(x, c).argmin(dim=2)  # (B, n) index of the nearest centroid
    sums = torch.zeros_like(c).scatter_add_(1, assign[..., None].expand_as(x), x)  # (B, k, d)
    counts = torch.zeros(c.shape[:2], device=c.device).scatter_add_(
        1, assign, torch.ones(assign.shape, device=c.device))  # (B, k)
    moved = torch.where((counts > 0)[..., None], sums / counts.clamp(min=1)[..., None], c)
    return (moved, assign) if batched else (moved[0], assign[0])


def kmeans(x: torch.Tensor, k: int, iters: int = 50, init: str = "kmeans++",
           seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means on points ``x`` (n, d), or on a batch of independent point sets (B, n, d).

    ``init`` is ``"kmeans++"`` or ``"linear"`` (centroids evenly spaced between the smallest and
    largest value; for d = 1, as Deep Compression initialises weight sharing). Seeded, so
    repeatable. Returns centroids (k, d) and assignments (n,) (with the batch dimension first if
    given), on the CPU.
    """
    batched = x.dim() == 3
    # (B, n, d); clustering runs on the CPU
    points = (x if batched else x[None]).detach().float().cpu()
    if not 1 <= k <= points.shape[1]:
        raise ValueError(f"k must lie in 1..{points.shape[1]} (the number of points), got {k}")
    if init == "linear":
        low, high = points.amin(dim=1), points.amax(dim=1)  # (B, d)
        steps = torch.linspace(0, 1, k)[None, :, None]  # (1, k, 1)
        centroids = low[:, None] + steps * (high - low)[:, None]  # (B, k, d)
    elif init == "kmeans++":
        centroids = _kmeans_plus_plus(points, k, torch.Generator().manual_seed(seed))
    else:
        raise ValueError(f"init must be 'kmeans++' or 'linear', got {init!r}")
    for _ in range(iters):
        moved, _ = lloyd_step(points, centroids)
        if torch.equal(moved, centroids):
            break
        centroids = moved
    assign = torch.cdist(points, centroids).argmin(dim=2)
    return (centroids, assign) if batched else (centroids[0], assign[0])


@dataclass(frozen=True)
class Quantized:
    """A weight as its compressed form reconstructs it, and the bits that form takes."""

    weight: torch.Tensor
    bits: int

    @property
    def nbytes(self) -> int:
        """Bytes of the compressed form: its bits rounded up to whole bytes."""
        return whole_bytes(self.bits)


def index_bits(k: int) -> int:
    """Bits of one index into a codebook of ``k`` entries."""
    return max(1, math.ceil(math.log2(k)))


def kmeans_share(weight: torch.Tensor, k: int,
                 mask: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Scalar weight sharing: k centroids (linear init) over the kept weights (``mask``, default
    all).

    Returns the codebook (k,) and an index per weight (shaped like ``weight``; pruned ones point
    at the nearest centroid too but are zeroed by the mask when reconstructed).
    """
    w = weight.detach().cpu().float()
    mask = torch.ones_like(w, dtype=torch.bool) if mask is None else mask.cpu()
    codebook, _ = kmeans(w[mask][:, None], k, init="linear")  # (k, 1)
    indices = torch.cdist(w.reshape(-1, 1), codebook).argmin(dim=1).view_as(w)
    return codebook.flatten(), indices


def kmeans_quantize(weight: torch.Tensor, k: int) -> Quantized:
    """Weight sharing with ``k`` shared values: log2(k)-bit indices plus the codebook."""
    codebook, indices = kmeans_share(weight, k)
    return Quantized(codebook[indices].to(weight),
                     weight.numel() * index_bits(k) + k * CODEBOOK_BITS)


def _subvectors(weight: torch.Tensor, d: int) -> torch.Tensor:
    """Rows of ``weight`` (m, n) cut into n/d pieces of length d: (n/d, m, d), one point set per
    column block."""
    m, n = weight.shape
    if n % d:
        raise ValueError(f"sub-vector length {d} does not divide the {n} columns")
    return weight.detach().float().cpu().reshape(m, n // d, d).transpose(0, 1)


def product_quantize(weight: torch.Tensor, d: int, k: int, seed: int = 0) -> Quantized:
    """Product quantization (Jegou et al. 2011; Gong et al. 2014): split the columns of ``weight``
    (m, n) into n/d blocks and run k-means, with a codebook of its own, on the m sub-vectors of
    each."""
    blocks = _subvectors(weight, d)  # (n/d, m, d)
    centroids, assign = kmeans(blocks, k, seed=seed)  # (n/d, k, d), (n/d, m)
    rebuilt = torch.gather(centroids, 1, assign[..., None].expand(-1, -1, d))  # (n/d, m, d)
    bits = assign.numel() * index_bits(k) + centroids.numel() * CODEBOOK_BITS
    return Quantized(rebuilt.transpose(0, 1).reshape(weight.shape).to(weight), bits)


def residual_quantize(weight: torch.Tensor, d: int, k: int, stages: int,
                      seed: int = 0) -> Quantized:
    """Residual quantization (Gong et al. 2014): k-means on the length-d sub-vectors of ``weight``,
    then k-means again on what is left over, ``stages`` times; the reconstruction is the sum of
    the stages' centroids. One codebook (k, d) per stage."""
    residual = _subvectors(weight, d).reshape(-1, d)  # (m * n / d, d)
    rebuilt = torch.zeros_like(residual)
    bits = 0
    for stage in range(stages):
        centroids, assign = kmeans(residual, k, seed=seed + stage)
        rebuilt += centroids[assign]
        residual = residual - centroids[assign]
        bits += assign.numel() * index_bits(k) + centroids.numel() * CODEBOOK_BITS
    m, n = weight.shape
    return Quantized(rebuilt.reshape(n // d, m, d).transpose(0, 1).reshape(m, n).to(weight), bits)


class SharedWeight(nn.Module):
    """What a weight-shared layer's ``weight`` is: ``codebook[indices] * mask``.

    A parametrization (``torch.nn.utils.parametrize``): ``share_layer`` registers it on the layer's
    ``weight``, and from then on every read of ``layer.weight`` calls :meth:`forward`. It holds the
    k shared values (``codebook``, a Parameter: the layer's only trainable weight) and, as buffers,
    each weight's index into the codebook and the mask of the kept weights (pruned ones stay 0).
    """

    def __init__(self, codebook: torch.Tensor, indices: torch.Tensor, mask: torch.Tensor) -> None:
        super().__init__()
        self.codebook = nn.Parameter(codebook)
        self.register_buffer("indices", indices)
        self.register_buffer("mask", mask)
        self.registered = False

    def forward(self) -> torch.Tensor:
        return self.codebook[self.indices] * self.mask

    def extra_repr(self) -> str:
        return f"k={self.codebook.numel()}, shape={tuple(self.indices.shape)}"

    def right_inverse(self, weight: torch.Tensor) -> tuple[()]:
        """Keep nothing of the weight it replaces (PyTorch would store what this returns); once
        registered, refuse an assignment ``layer.weight = ...``, which could not change the
        codebook."""
        if self.registered:
            raise RuntimeError("a weight-shared layer's weight is codebook[indices] * mask and "
                               "cannot be assigned: change shared_weight(layer).codebook instead")
        self.registered = True
        return ()


def shared_weight(layer: nn.Module) -> SharedWeight:
    """The :class:`SharedWeight` of a layer made weight-shared by ``share_layer``: its
    ``codebook``, ``indices`` and ``mask``."""
    if not is_shared(layer):
        raise ValueError(f"{type(layer).__name__}'s weight is not shared (share_layer)")
    return layer.parametrizations.weight[0]


def is_shared(layer: nn.Module) -> bool:
    """Whether ``share_layer`` made ``layer``'s weight shared."""
    return (parametrize.is_parametrized(layer, "weight")
            and isinstance(layer.parametrizations.weight[0], SharedWeight))


def share_layer(layer: nn.Module, codebook: torch.Tensor, indices: torch.Tensor,
                mask: torch.Tensor | None = None) -> None:
    """Make ``layer.weight`` equal ``codebook[indices] * mask`` for good, in place.

    The codebook becomes the layer's only trainable weight. Autograd takes the gradient of an
    indexing as a scatter-add, so each centroid receives the sum of the gradients of every weight
    that shares it (Han et al. 2016, Fig. 3) and shared weights stay shared while training.

    The layer's own weight is dropped; a :class:`SharedWeight` parametrization computes
    ``layer.weight`` from the codebook at every read (the class becomes e.g.
    ``ParametrizedLinear``). ``shared_weight(layer)`` gives its ``codebook``, ``indices`` and
    ``mask``; they are saved in ``state_dict`` under ``parametrizations.weight.0`` (see
    ``load_shared``).
    """
    if parametrize.is_parametrized(layer, "weight"):
        raise ValueError(f"{type(layer).__name__}'s weight is already parametrized (shared?)")
    if indices.shape != layer.weight.shape:
        raise ValueError(f"indices have shape {tuple(indices.shape)}, the weight "
                         f"{tuple(layer.weight.shape)}")
    device = layer.weight.device
    mask = torch.ones_like(indices, dtype=torch.bool) if mask is None else mask
    parametrize.register_parametrization(
        layer, "weight",
        SharedWeight(codebook.to(device).clone(), indices.to(device), mask.to(device)))


def load_shared(model: nn.Module, state: dict[str, torch.Tensor]) -> nn.Module:
    """Load the ``state_dict`` of a weight-shared model into ``model``, the same architecture
    fresh (or already shared the same way): every layer the state shares is first shared with a
    placeholder codebook, then ``load_state_dict`` (strict) fills in the saved values. Returns
    ``model``."""
    suffix = "parametrizations.weight.0.codebook"
    for key, codebook in state.items():
        if key == suffix or key.endswith("." + suffix):
            prefix = key[:-len(suffix)]
            layer = model.get_submodule(prefix.rstrip("."))
            if not is_shared(layer):
                share_layer(layer, torch.zeros_like(codebook),
                            torch.zeros_like(state[prefix + "parametrizations.weight.0.indices"]),
                            state[prefix + "parametrizations.weight.0.mask"])
    model.load_state_dict(state)
    return model


def fine_tune_shared(model: nn.Module, train_loader, epochs: int = 1, lr: float = 1e-3,
                     progress: bool = True) -> None:
    """Train a weight-shared model's codebooks (and biases) with Adam and a cosine schedule.

    Adam gives every centroid its own step size: a centroid sums the gradients of all the weights
    that share it, tens of thousands in a large layer and a few hundred in a small one, so a single
    SGD learning rate is either too large for the first or too small for the second.
    """
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs * len(train_loader))
    fit(model, train_loader, optimizer, epochs, scheduler=scheduler, live_plot=False,
        progress=progress)


@torch.no_grad()
def cluster_weights(model: nn.Module, k: int) -> None:
    """Set every weight matrix of ``model`` to its k-means reconstruction with ``k`` shared values
    (``kmeans_share``), in place. The weights stay ordinary parameters: training moves each one on
    its own, and they stay shared only until the next step."""
    for w in prunable_weights(model).values():
        codebook, indices = kmeans_share(w, k)
        w.copy_(codebook.to(w.device)[indices.to(w.device)])


@dataclass(frozen=True)
class ShareRound:
    """One round of the train-and-cluster loop: validation accuracy of the trained weights, and
    after they were clustered and set to their centroids."""

    acc_trained: float
    acc_clustered: float


def train_and_cluster(
    model: nn.Module,
    train_loaders: Sequence,
    val_loader,
    k: int,
    make_optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer] | None = None,
    progress: bool = True,
) -> list[ShareRound]:
    """The lecture's loop, one round per loader of ``train_loaders``: train the ordinary weights
    (and biases) for one pass over it with a cosine schedule, then cluster every weight matrix into
    ``k`` values and set each weight to its centroid (``cluster_weights``).

    ``make_optimizer(parameters)`` builds a fresh optimiser each round; by default Adam with the
    learning rate of ``fine_tune_shared``, 1e-3. Start from a clustered model (``cluster_weights``)
    for it to hold ``k`` values per layer from the first round on.
    """
    make_optimizer = make_optimizer or (lambda params: torch.optim.Adam(params, lr=1e-3))
    rounds = []
    for loader in train_loaders:
        optimizer = make_optimizer(model.parameters())
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, len(loader))
        fit(model, loader, optimizer, 1, scheduler=scheduler, live_plot=False, progress=progress)
        acc_trained = evaluate(model, val_loader)
        cluster_weights(model, k)
        rounds.append(ShareRound(acc_trained, evaluate(model, val_loader)))
    return rounds
