"""Weight pruning (notebook 06): magnitude masks, masks that survive training, sparse storage.

A *mask* is a boolean tensor shaped like a weight: True keeps the weight, False prunes it.
Masks, and per-layer sparsities, are keyed by the layer's module name, e.g. ``{"fc1": mask}``, or
``{"block1.0": mask}`` in a nested network: the weight is ``model.get_submodule(name).weight``,
the same names that weight sharing and encoding (``deep_compression``) use.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize

from .cost import layer_costs
from .storage import FP32_BITS, csr_bits, whole_bytes
from .training import evaluate, fit

Masks = dict[str, torch.Tensor]  # module name: mask
PRUNABLE = (nn.Linear, nn.Conv2d)

# Per-layer final sparsities of Han et al. 2015, exactly as their Tables 2 (LeNet-300-100) and
# 3 (LeNet-5) print the weights kept (fc1 keeps 8% in both). Whole models: see notebook 06.
HAN_SPARSITY = {
    "lenet300": {"fc1": 0.92, "fc2": 0.91, "fc3": 0.74},
    "lenet5": {"conv1": 0.34, "conv2": 0.88, "fc1": 0.92, "fc2": 0.81},
}

# The course's own schedule for the shipped pruned checkpoints (``reference.PRUNE_RECIPES``): Han's,
# except that fc1 keeps 7.5% (LeNet-300-100) and 7% (LeNet-5), so that each whole model keeps at
# most 8% of its weights.
COURSE_SPARSITY = {
    "lenet300": {**HAN_SPARSITY["lenet300"], "fc1": 0.925},
    "lenet5": {**HAN_SPARSITY["lenet5"], "fc1": 0.93},
}

# Han et al. 2015, Tables 4 (AlexNet) and 5 (VGG-16), as printed: per layer, the fraction of its
# weights kept after pruning ("Weights%") and of its FLOPs still needed ("FLOP%", with both zero
# weights and zero activations skipped). Their weights and FLOPs: ``cost.HAN_ALEXNET_TABLE4`` and
# ``cost.HAN_VGG16_TABLE5``.
HAN_IMAGENET_KEPT = {  # network: {layer: (weights kept, FLOPs kept)}
    "alexnet": {
        "conv1": (0.84, 0.84), "conv2": (0.38, 0.33), "conv3": (0.35, 0.18), "conv4": (0.37, 0.14),
        "conv5": (0.37, 0.14), "fc1": (0.09, 0.03), "fc2": (0.09, 0.03), "fc3": (0.25, 0.10),
    },
    "vgg16": {
        "conv1_1": (0.58, 0.58), "conv1_2": (0.22, 0.12), "conv2_1": (0.34, 0.30),
        "conv2_2": (0.36, 0.29), "conv3_1": (0.53, 0.43), "conv3_2": (0.24, 0.16),
        "conv3_3": (0.42, 0.29), "conv4_1": (0.32, 0.21), "conv4_2": (0.27, 0.14),
        "conv4_3": (0.34, 0.15), "conv5_1": (0.35, 0.12), "conv5_2": (0.29, 0.09),
        "conv5_3": (0.36, 0.11), "fc6": (0.04, 0.01), "fc7": (0.04, 0.02), "fc8": (0.23, 0.09),
    },
}
# The totals those tables print: weights kept and FLOPs kept of the whole network.
HAN_IMAGENET_TOTAL_KEPT = {"alexnet": (0.11, 0.30), "vgg16": (0.075, 0.21)}


@dataclass(frozen=True)
class KeptCount:
    """One row of a pruning table: a layer's dense weights and MACs as the course counts them,
    and the fractions a table reports kept."""

    layer: str  # the table's name for it
    module: str  # its module name in the model (``model.get_submodule``)
    weights: int  # the weight tensor's entries (biases excluded)
    macs: int  # multiply-accumulates of one input, dense
    weights_kept: float
    flops_kept: float


def kept_counts(model: nn.Module, input_shape: tuple[int, ...],
                kept: dict[str, tuple[float, float]]) -> list[KeptCount]:
    """A table's per-layer kept fractions ``{layer: (weights kept, FLOPs kept)}``, e.g.
    ``HAN_IMAGENET_KEPT["vgg16"]``, beside the course's count of ``model``'s Linear and Conv2d
    layers, matched in the order they run. A ``meta``-device model will do."""
    layers = [c for c in layer_costs(model, input_shape) if c.kind in ("Linear", "Conv2d")]
    if len(layers) != len(kept):
        raise ValueError(f"the model runs {len(layers)} Linear/Conv2d layers, the table has "
                         f"{len(kept)}")
    return [KeptCount(name, cost.name, model.get_submodule(cost.name).weight.numel(), cost.macs,
                      w, f)
            for cost, (name, (w, f)) in zip(layers, kept.items(), strict=True)]


def prunable_layers(model: nn.Module) -> dict[str, nn.Module]:
    """Every Linear and Conv2d layer of ``model``, by module name (``model.get_submodule``)."""
    return {name: m for name, m in model.named_modules() if isinstance(m, PRUNABLE)}


def _own_weight(name: str, layer: nn.Module) -> nn.Parameter:
    """The weight parameter of ``layer`` (module ``name``), refusing a weight that is computed
    (a parametrization, such as a weight-shared layer's ``codebook[indices] * mask``): writing
    into it would change nothing that lasts."""
    if parametrize.is_parametrized(layer, "weight") or not isinstance(layer.weight, nn.Parameter):
        raise ValueError(f"layer {name!r} has a computed weight (weight-shared or otherwise "
                         "parametrized), not a parameter of its own: prune or transform a layer "
                         "before sharing it")
    return layer.weight


def prunable_weights(model: nn.Module) -> dict[str, nn.Parameter]:
    """The weight of every Linear and Conv2d layer, by module name, e.g. ``{"fc1": fc1.weight}``
    (biases are never pruned). A layer whose weight is computed (weight-shared) is refused."""
    return {name: _own_weight(name, m) for name, m in prunable_layers(model).items()}


def _layers(model: nn.Module, names) -> dict[str, nn.Module]:
    """The prunable layers ``names`` of ``model``; a ValueError lists the valid module names."""
    layers = {}
    for name in names:
        try:
            layer = model.get_submodule(name)
        except AttributeError:
            layer = None
        if isinstance(layer, PRUNABLE):
            layers[name] = layer
    unknown = [name for name in names if name not in layers]
    if unknown:
        raise ValueError(f"cannot prune {unknown}: layers are named by module name "
                         f"(model.get_submodule), and the prunable ones (Linear, Conv2d) are "
                         f"{sorted(prunable_layers(model))}")
    return layers


def with_weights(model: nn.Module,
                 transform: Callable[[str, torch.Tensor], torch.Tensor]) -> nn.Module:
    """A copy of ``model`` whose Linear and Conv2d weights ``W`` are replaced by
    ``transform(name, W)``, ``name`` being the layer's module name (``"fc1"``)."""
    model = copy.deepcopy(model)
    with torch.no_grad():
        for name, w in prunable_weights(model).items():
            w.copy_(transform(name, w))
    return model


def check_sparsity(sparsity: float) -> None:
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must lie in [0, 1), got {sparsity}")


def magnitude_mask(weight: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Keep the largest-magnitude weights, prune exactly ``round(sparsity * n)`` of the smallest.

    Ties are broken by position, so the sparsity is exact whatever the values.
    """
    check_sparsity(sparsity)
    n_pruned = round(sparsity * weight.numel())
    smallest_first = weight.detach().abs().flatten().argsort(stable=True)  # (n,)
    keep = torch.ones(weight.numel(), dtype=torch.bool, device=weight.device)
    keep[smallest_first[:n_pruned]] = False
    return keep.view_as(weight)


def layer_masks(model: nn.Module, sparsity: dict[str, float]) -> Masks:
    """A magnitude mask for the weight of each layer named in ``sparsity`` (module names, e.g.
    ``{"fc1": 0.9}``), each at its own sparsity."""
    layers = _layers(model, sparsity)
    return {name: magnitude_mask(_own_weight(name, layers[name]), s)
            for name, s in sparsity.items()}


@torch.no_grad()
def apply_masks(model: nn.Module, masks: Masks) -> None:
    """Set every pruned weight to zero, in place: the mask of layer ``name`` (a module name)
    multiplies ``model.get_submodule(name).weight``. Each mask is moved to its weight's device, so
    masks made before ``fit`` moved the model to a GPU still apply."""
    weights = {name: _own_weight(name, layer) for name, layer in _layers(model, masks).items()}
    for name, mask in masks.items():  # all looked up first: a refusal changes nothing
        weights[name].mul_(mask.to(weights[name].device))


def pruned_copy(model: nn.Module, sparsity: dict[str, float]) -> nn.Module:
    """A copy of ``model`` with the weight of each layer named in ``sparsity`` (module names)
    magnitude-pruned to its sparsity (no retraining)."""
    model = copy.deepcopy(model)
    apply_masks(model, layer_masks(model, sparsity))
    return model


def scale_profile(profile: dict[str, float], sizes: dict[str, int],
                  sparsity: float) -> dict[str, float]:
    """Per-layer sparsities with the shape of ``profile`` and the overall ``sparsity``.

    Every layer keeps ``c`` times the fraction that ``profile`` keeps, capped at all of it, with
    ``c`` found by bisection so that the kept weights make up ``1 - sparsity`` of all ``sizes``
    (weights per layer). Both are keyed by layer, e.g. by module name as ``HAN_SPARSITY`` is.
    """
    check_sparsity(sparsity)
    total = sum(sizes.values())

    def kept(c: float) -> float:
        return sum(min(1.0, c * (1 - profile[name])) * n for name, n in sizes.items()) / total

    low, high = 0.0, 1.0 / min(1 - s for s in profile.values())  # kept(high) == 1
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if kept(mid) < 1 - sparsity else (low, mid)
    return {name: 1 - min(1.0, high * (1 - profile[name])) for name in sizes}


def keep_pruned(optimizer: torch.optim.Optimizer, model: nn.Module, masks: Masks):
    """Re-apply ``masks`` after every ``optimizer.step()``, so pruned weights stay zero while
    the rest retrain: a pruned weight's loss gradient is not zero in general, so every update
    would move it away from zero again.

    Returns the hook handle; ``handle.remove()`` stops it.
    """
    apply_masks(model, masks)
    return optimizer.register_step_post_hook(lambda *_: apply_masks(model, masks))


def kept_fraction(masks: Masks) -> float:
    """Fraction of the masked weights that are kept."""
    kept = sum(int(m.sum()) for m in masks.values())
    return kept / sum(m.numel() for m in masks.values())


def model_kept_fraction(model: nn.Module) -> float:
    """Fraction of nonzero weights over all prunable layers of ``model`` (weight-shared ones
    too: this only reads the weights)."""
    weights = [layer.weight for layer in prunable_layers(model).values()]
    return sum(int((w != 0).sum()) for w in weights) / sum(w.numel() for w in weights)


def csr_bytes(weight: torch.Tensor, index_bits: int = 32, value_bits: int = FP32_BITS) -> int:
    """Bytes of ``weight`` (as a matrix ``(rows, -1)``) in compressed sparse row form:
    nonzero values, their column indices and ``rows + 1`` row pointers (``storage.csr_bits``,
    row pointers as wide as the indices), rounded up to whole bytes."""
    matrix = weight.detach().reshape(weight.shape[0], -1)
    nnz = int((matrix != 0).sum())
    return whole_bytes(csr_bits(matrix.shape[0], nnz, index_bits, value_bits))


def sparse_csr(weight: torch.Tensor) -> torch.Tensor:
    """``weight`` as a matrix ``(rows, -1)`` in PyTorch's compressed sparse row layout."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
        return weight.detach().reshape(weight.shape[0], -1).to_sparse_csr()


def to_csr_int32(weight: torch.Tensor) -> dict[str, torch.Tensor]:
    """The CSR parts of ``weight`` as a matrix ``(rows, -1)``: fp32 values, int32 indices."""
    csr = sparse_csr(weight)
    return {"values": csr.values(), "col_indices": csr.col_indices().int(),
            "crow_indices": csr.crow_indices().int()}


def structured_mask(weight: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Coarse-grained pruning: drop whole rows (output neurons, or conv filters) with the smallest
    L2 norm, ``round(sparsity * rows)`` of them; the mask is shaped like ``weight``."""
    check_sparsity(sparsity)
    rows = weight.shape[0]
    norms = weight.detach().reshape(rows, -1).norm(dim=1)
    keep_rows = torch.ones(rows, dtype=torch.bool, device=weight.device)
    keep_rows[norms.argsort(stable=True)[: round(sparsity * rows)]] = False
    return keep_rows.view(-1, *[1] * (weight.dim() - 1)).expand_as(weight).clone()


def sparsity_ramp(final: float, step: int, steps: int) -> float:
    """Sparsity after ``step`` of ``steps`` rounds: a cubic ramp from 0 to ``final`` that prunes
    much early and little at the end (Zhu and Gupta 2017, arXiv 1710.01878)."""
    if not 0 <= step <= steps:
        raise ValueError(f"step must lie in [0, {steps}], got {step}")
    return final * (1 - (1 - step / steps) ** 3)


@dataclass(frozen=True)
class PruneRound:
    """One round of prune-and-retrain: weights kept, and validation accuracy before and after
    retraining."""

    kept: float
    acc_pruned: float
    acc_retrained: float


def iterative_prune(model: nn.Module, final_sparsity: dict[str, float], train_loader, val_loader,
                    rounds: int = 4, epochs_per_round: int = 1, lr: float = 0.01,
                    progress: bool = False) -> tuple[Masks, list[PruneRound]]:
    """Han et al. 2015's loop: prune the smallest weights, retrain the rest with the pruned ones
    held at zero, and repeat with a higher sparsity, ``rounds`` times up to ``final_sparsity``
    (``{module name: sparsity}``, e.g. ``COURSE_SPARSITY["lenet300"]``). Returns the last round's
    masks, by module name, and every round's accuracies.

    Started from a trained model this is *static* pruning with retraining; started from a fresh
    model, with the rounds spread over the whole training, it is *dynamic* pruning. With
    ``progress``, each round's retraining shows a bar of its minibatches.
    """
    history = []
    for step in range(1, rounds + 1):
        masks = layer_masks(model, {name: sparsity_ramp(s, step, rounds)
                                    for name, s in final_sparsity.items()})
        apply_masks(model, masks)
        acc_pruned = evaluate(model, val_loader)
        optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer,
                                                               epochs_per_round * len(train_loader))
        handle = keep_pruned(optimizer, model, masks)
        fit(model, train_loader, optimizer, epochs_per_round, scheduler=scheduler, live_plot=False,
            progress=progress)
        handle.remove()
        history.append(PruneRound(kept_fraction(masks), acc_pruned, evaluate(model, val_loader)))
    return masks, history
