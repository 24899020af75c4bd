"""Trained reference models, shipped in ``data/checkpoints`` and verified by SHA-256.

``pretrained("lenet300")`` loads the shipped checkpoint at once. If the file is absent the
model is trained with its recipe below and cached in ``data/checkpoints/cache``, so the next
call is instant. Reproduce the shipped files (and their ``SHA256SUMS``) with

    python -m course_utils.reference lenet lenet300 lenet5
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import torch
from torch import nn

from .checkpoints import load_state, save_state, sha256_file
from .data import PROJECT_ROOT, DataError, load_mnist, make_loaders, read_checksums
from .models import build_model
from .training import History, evaluate, fit, seed_everything

CHECKPOINT_DIR = PROJECT_ROOT / "data" / "checkpoints"
CACHE_DIR = CHECKPOINT_DIR / "cache"
SUMS_PATH = CHECKPOINT_DIR / "SHA256SUMS"


@dataclass(frozen=True)
class Recipe:
    """SGD with momentum and weight decay; the learning rate follows a cosine from ``lr`` to 0."""

    epochs: int
    lr: float
    batch_size: int = 128
    momentum: float = 0.9
    weight_decay: float = 5e-4
    seed: int = 0


RECIPES = {
    "lenet": Recipe(epochs=8, lr=0.05),
    "lenet300": Recipe(epochs=30, lr=0.05),
    "lenet5": Recipe(epochs=20, lr=0.05),
}


def train_reference(name: str, progress: bool = True) -> tuple[nn.Module, History]:
    """Train reference model ``name`` from scratch on the 50,000-image training split."""
    recipe = RECIPES[name]
    seed_everything(recipe.seed)
    loaders = make_loaders(load_mnist(), recipe.batch_size, seed=recipe.seed)
    model = build_model(name)
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.lr, momentum=recipe.momentum,
                                weight_decay=recipe.weight_decay)
    steps = recipe.epochs * len(loaders.train)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
    history = fit(model, loaders.train, optimizer, recipe.epochs, val_loader=loaders.val,
                  scheduler=scheduler, live_plot=False, progress=progress)
    return model.cpu(), history


def pretrained(name: str, device: torch.device | str | None = None) -> nn.Module:
    """Reference model ``name`` with trained weights, in eval mode.

    Uses the shipped checkpoint (refusing one whose SHA-256 does not match ``SHA256SUMS``),
    else a cached one, else trains and caches it (about a minute or several, see RECIPES).
    """
    if name not in RECIPES:
        raise ValueError(f"no pretrained model {name!r}; choose one of {sorted(RECIPES)}")
    shipped = CHECKPOINT_DIR / f"{name}.pt"
    if shipped.exists():
        expected = read_checksums(SUMS_PATH).get(shipped.name)
        actual = sha256_file(shipped)
        if actual != expected:
            raise DataError(
                f"{shipped} does not match its SHA-256 in {SUMS_PATH} ({actual} != {expected}). "
                f"Restore it with `git checkout -- data/checkpoints/{shipped.name}`, "
                "or delete it and pretrained() will train a replacement."
            )
        path = shipped
    else:
        path = CACHE_DIR / f"{name}.pt"
        if not path.exists():
            print(f"{shipped.name} is not shipped here: training {name} with its recipe, once ...")
            model, _ = train_reference(name)
            save_state(model, path)
    return load_state(build_model(name), path, device).eval()


def main(names: list[str]) -> None:
    """Retrain the named reference models, ship them and rewrite ``SHA256SUMS``."""
    sums = read_checksums(SUMS_PATH) if SUMS_PATH.exists() else {}
    test_loader = make_loaders(load_mnist()).test
    for name in names or sorted(RECIPES):
        model, history = train_reference(name)
        path = save_state(model, CHECKPOINT_DIR / f"{name}.pt")
        sums[path.name] = sha256_file(path)
        print(f"{name}: test accuracy {evaluate(model, test_loader):.4f}, "
              f"{history.train_seconds:.0f} s of training, {path.stat().st_size:,} bytes")
    SUMS_PATH.write_text("".join(f"{digest}  {file}\n" for file, digest in sorted(sums.items())))


if __name__ == "__main__":
    main(sys.argv[1:])
