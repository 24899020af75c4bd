"""Trained reference models, shipped in ``data/checkpoints`` and verified by SHA-256.

``pretrained("lenet300")`` loads the shipped checkpoint at once. If the file is absent the
model is trained with its recipe below and cached in ``checkpoints/cache``, so the next call is
instant (``checkpoints/`` of the course's data folder: ``$COURSE_DATA_DIR``, else ``data/``).
The shipped checkpoints were trained on the shipped MNIST and are used only on it: on another
dataset (``$COURSE_MNIST_DIR``) each model is trained on that dataset on first use and cached
apart.
Reproduce the shipped files (and their ``SHA256SUMS``) with

    python -m course_utils.reference lenet lenet300 lenet5 binaryconnect gap lenet300_pruned lenet5_pruned

(the pruned models start from the shipped ``lenet300`` and ``lenet5``).
"""  # noqa: E501 (a shell command, kept whole to be copied)

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter

import torch
from torch import nn

from .checkpoints import load_state, save_state, sha256_file
from .data import (
    DataError,
    is_shipped_mnist,
    load_mnist,
    make_loaders,
    mnist_dir,
    read_checksums,
    torchvision_mnist,
)
from .paths import data_dir
from .pruning import COURSE_SPARSITY, iterative_prune
from .quantization import clip_weights
from .training import History, evaluate, fit, seed_everything
from .zoo import build_model


@dataclass(frozen=True)
class Recipe:
    """SGD with momentum and weight decay (or Adam, for BinaryConnect); the learning rate follows
    a cosine from ``lr`` to 0."""

    epochs: int
    lr: float
    batch_size: int = 128
    momentum: float = 0.9
    weight_decay: float = 5e-4
    seed: int = 0
    optimizer: str = "sgd"


RECIPES = {
    "lenet": Recipe(epochs=8, lr=0.05),
    "lenet300": Recipe(epochs=30, lr=0.05),
    "lenet5": Recipe(epochs=20, lr=0.05),
    "binaryconnect": Recipe(epochs=10, lr=0.01, weight_decay=0.0, optimizer="adam"),
    "gap": Recipe(epochs=10, lr=0.05),
}


@dataclass(frozen=True)
class PruneRecipe:
    """Han et al.'s iterative prune-and-retrain (notebook 06) of the trained model ``base``, to the
    course's per-layer sparsities ``pruning.COURSE_SPARSITY[base]`` (one step past Han's on fc1)."""

    base: str
    rounds: int
    epochs_per_round: int
    lr: float = 0.03
    seed: int = 0


PRUNE_RECIPES = {
    "lenet300_pruned": PruneRecipe("lenet300", rounds=4, epochs_per_round=4),
    "lenet5_pruned": PruneRecipe("lenet5", rounds=3, epochs_per_round=3),
}


def checkpoint_dir() -> Path:
    """Where the reference models are shipped: ``checkpoints/`` in the course's data folder."""
    return data_dir() / "checkpoints"


def cache_path(name: str, root: str | Path | None = None) -> Path:
    """Where ``pretrained`` keeps model ``name`` once it trained it on the dataset in ``root``
    (else the active one, see ``data.mnist_dir``). On the shipped MNIST that is
    ``checkpoints/cache/<name>.pt``; on any other dataset a folder of that dataset's own, named by
    the SHA-256 of its ``MD5SUMS``, so that models of two datasets never mix."""
    cache = checkpoint_dir() / "cache"
    if is_shipped_mnist(root):
        return cache / f"{name}.pt"
    dataset = hashlib.sha256((mnist_dir(root) / "MD5SUMS").read_bytes()).hexdigest()[:12]
    return cache / dataset / f"{name}.pt"


def prune_reference(name: str, root: str | Path | None = None) -> nn.Module:
    """Prune the trained model behind ``name`` with its recipe; pruned weights are zeros.
    ``root``: the dataset to retrain on (see ``data.mnist_dir``)."""
    recipe = PRUNE_RECIPES[name]
    seed_everything(recipe.seed)
    loaders = make_loaders(load_mnist(root), seed=recipe.seed)
    model = pretrained(recipe.base, root=root)
    iterative_prune(model, COURSE_SPARSITY[recipe.base], loaders.train, loaders.val,
                    rounds=recipe.rounds, epochs_per_round=recipe.epochs_per_round, lr=recipe.lr)
    return model.cpu()


def train_reference(name: str, progress: bool = True,
                    root: str | Path | None = None) -> tuple[nn.Module, History]:
    """Train reference model ``name`` from scratch on the training split (50,000 images of MNIST),
    of the dataset in ``root`` if given (see ``data.mnist_dir``)."""
    recipe = RECIPES[name]
    seed_everything(recipe.seed)
    loaders = make_loaders(load_mnist(root), recipe.batch_size, seed=recipe.seed)
    model = build_model(name)
    if recipe.optimizer == "adam":
        optimizer = torch.optim.Adam(model.parameters(), lr=recipe.lr,
                                     weight_decay=recipe.weight_decay)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                    weight_decay=recipe.weight_decay)
    # BinaryConnect's clip; no-op elsewhere
    optimizer.register_step_post_hook(lambda *_: clip_weights(model))
    steps = recipe.epochs * len(loaders.train)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    history = fit(model, loaders.train, optimizer, recipe.epochs, val_loader=loaders.val,
                  scheduler=scheduler, live_plot=False, progress=progress)
    return model.cpu(), history


# Seconds of one epoch over 10,000 training images on a 2-core CPU (a GPU is faster): for the
# estimate printed before a reference model is trained on another dataset.
EPOCH_SECONDS_PER_10K = {"lenet": 3, "lenet300": 0.3, "lenet5": 4.5, "binaryconnect": 0.5, "gap": 6}


def training_estimate(name: str, train_images: int) -> str:
    """Roughly how long training ``name`` with its recipe takes on ``train_images`` images."""
    if name in PRUNE_RECIPES:
        recipe = PRUNE_RECIPES[name]
        epochs, architecture = recipe.rounds * recipe.epochs_per_round, recipe.base
    else:
        epochs, architecture = RECIPES[name].epochs, name
    seconds = epochs * train_images / 10_000 * EPOCH_SECONDS_PER_10K[architecture]
    rough = f"{seconds / 60:.0f} min" if seconds >= 90 else f"{max(seconds, 10):.0f} s"
    return f"{epochs} epochs over {train_images:,} images, about {rough} on a 2-core CPU"


def pretrained(name: str, device: torch.device | str | None = None,
               root: str | Path | None = None) -> nn.Module:
    """Reference model ``name`` with trained weights, in eval mode, for the dataset in ``root``
    (else the active one: ``$COURSE_MNIST_DIR``, else the shipped MNIST; see ``data.mnist_dir``).

    On the shipped MNIST it uses the shipped checkpoint (refusing one whose SHA-256 does not match
    ``SHA256SUMS``). On any other dataset, or when the checkpoint is not shipped, it uses the model
    cached for that dataset (``cache_path``), else trains it with its recipe (about a minute or
    several, see RECIPES; the pruned ones from that dataset's base model) and caches it.
    """
    if name not in RECIPES and name not in PRUNE_RECIPES:
        raise ValueError(f"no pretrained model {name!r}; choose one of "
                         f"{sorted(RECIPES) + sorted(PRUNE_RECIPES)}")
    shipped = checkpoint_dir() / f"{name}.pt"
    sums_path = shipped.with_name("SHA256SUMS")
    on_mnist = is_shipped_mnist(root)
    if on_mnist and shipped.exists():
        expected = read_checksums(sums_path).get(shipped.name)
        actual = sha256_file(shipped)
        if actual != expected:
            raise DataError(
                f"{shipped} does not match its SHA-256 in {sums_path} ({actual} != {expected}). "
                f"Restore it with `git checkout -- data/checkpoints/{shipped.name}`, "
                "or delete it and pretrained() will train a replacement."
            )
        path = shipped
    else:
        path = cache_path(name, root)
        if not path.exists():
            if on_mnist:
                print(f"{shipped.name} is not shipped here: training {name} with its recipe, "
                      "once ...")
            else:
                images = len(torchvision_mnist(train=True, root=root))
                train_images = images - images // 6  # load_mnist's training split
                print(f"{name} is trained on the dataset in {mnist_dir(root)} once, then cached in "
                      f"{path.parent}: {training_estimate(name, train_images)} ...")
            if name in PRUNE_RECIPES:
                model = prune_reference(name, root)
            else:
                model = train_reference(name, root=root)[0]
            save_state(model, path)
    architecture = PRUNE_RECIPES[name].base if name in PRUNE_RECIPES else name
    return load_state(build_model(architecture), path, device).eval()


def main(names: list[str]) -> None:
    """Retrain the named reference models, ship them and rewrite ``SHA256SUMS``."""
    sums_path = checkpoint_dir() / "SHA256SUMS"
    sums = read_checksums(sums_path) if sums_path.exists() else {}
    test_loader = make_loaders(load_mnist()).test
    for name in names or sorted(RECIPES) + sorted(PRUNE_RECIPES):
        start = perf_counter()
        model = prune_reference(name) if name in PRUNE_RECIPES else train_reference(name)[0]
        seconds = perf_counter() - start
        path = save_state(model, checkpoint_dir() / f"{name}.pt")
        sums[path.name] = sha256_file(path)
        print(f"{name}: test accuracy {evaluate(model, test_loader):.4f}, "
              f"{seconds:.0f} s of training, {path.stat().st_size:,} bytes")
    sums_path.write_text("".join(f"{digest}  {file}\n" for file, digest in sorted(sums.items())))


if __name__ == "__main__":
    main(sys.argv[1:])
