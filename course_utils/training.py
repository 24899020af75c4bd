"""The training loop of notebook 02, packaged: seeding, device choice, fit, evaluate, predict."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from time import perf_counter

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from .plots import LossPlot

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def seed_everything(seed: int = 0) -> None:
    """Seed Python's, NumPy's and PyTorch's (CPU and CUDA) random generators."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def default_device() -> torch.device:
    """CUDA when a GPU is present, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class History:
    """What :func:`fit` saw: the loss of every minibatch and the validation accuracy after each
    epoch."""

    steps_per_epoch: int
    step_loss: list[float] = field(default_factory=list)
    val_acc: list[float] = field(default_factory=list)
    # wall-clock time in training steps and validation, plotting excluded
    train_seconds: float = 0.0

    def epoch_loss(self) -> list[float]:
        """Mean training loss of each epoch."""
        n = self.steps_per_epoch
        return [float(np.mean(self.step_loss[i : i + n])) for i in range(0, len(self.step_loss), n)]


def train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor, optimizer: torch.optim.Optimizer,
               loss_fn: LossFn = F.cross_entropy) -> float:
    """One minibatch: forward, loss, backward, update. Returns the loss before the update."""
    optimizer.zero_grad()  # gradients accumulate in .grad: clear the last minibatch's
    loss = loss_fn(model(x), y)  # forward pass and mean loss over the minibatch
    loss.backward()  # gradients of the loss w.r.t. every parameter
    optimizer.step()  # parameter update
    return loss.item()  # a float: keeping the tensor would keep its whole graph alive


def train_epoch(model: nn.Module, loader: Batches, criterion: LossFn,
                optimizer: torch.optim.Optimizer,
                on_step: Callable[[float], None] | None = None) -> list[float]:
    """One pass over ``loader`` with :func:`train_step`; returns the loss of every minibatch.

    Minibatches are moved to the model's device; ``on_step(loss)`` (if any) is called after each.
    """
    device = next(model.parameters()).device
    model.train()
    losses = []
    for x, y in loader:
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)  # (B, ...), (B,)
        losses.append(train_step(model, x, y, optimizer, criterion))
        if on_step is not None:
            on_step(losses[-1])
    return losses


def fit(
    model: nn.Module,
    train_loader: Batches,
    optimizer: torch.optim.Optimizer,
    epochs: int,
    *,
    val_loader: Batches | None = None,
    loss_fn: LossFn = F.cross_entropy,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    device: torch.device | None = None,
    live_plot: bool = True,
    progress: bool = True,
) -> History:
    """Train ``model`` for ``epochs`` passes over ``train_loader``.

    ``scheduler`` (if any) is stepped after every minibatch. With ``live_plot`` the loss
    curve is redrawn after each epoch; with ``progress`` a tqdm bar counts minibatches.
    """
    device = device or default_device()
    model.to(device)
    history = History(steps_per_epoch=len(train_loader))
    plot = LossPlot() if live_plot else None
    bar = tqdm(total=epochs * history.steps_per_epoch, disable=not progress, unit="batch")

    def on_step(loss: float) -> None:
        if scheduler is not None:
            scheduler.step()
        bar.update()

    for epoch in range(epochs):
        start = perf_counter()
        history.step_loss += train_epoch(model, train_loader, loss_fn, optimizer, on_step)
        if val_loader is not None:
            history.val_acc.append(evaluate(model, val_loader, device))
        history.train_seconds += perf_counter() - start
        postfix = {"epoch": epoch + 1, "loss": f"{history.epoch_loss()[-1]:.4f}"}
        if history.val_acc:
            postfix["val_acc"] = f"{history.val_acc[-1]:.4f}"
        bar.set_postfix(postfix)
        if plot is not None:
            plot.update(history.step_loss, history.steps_per_epoch, history.val_acc)
    bar.close()
    return history


@torch.inference_mode()
def predict(model: nn.Module, loader: Batches,
            device: torch.device | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Predicted classes and true labels over a whole loader, both ``(N,)`` on the CPU."""
    device = device or next(model.parameters()).device
    model.eval()
    preds, labels = [], []
    for x, y in loader:
        preds.append(model(x.to(device)).argmax(dim=1).cpu())
        labels.append(y)
    return torch.cat(preds), torch.cat(labels)


def evaluate(model: nn.Module, loader: Batches, device: torch.device | None = None) -> float:
    """Fraction of correctly classified examples."""
    preds, labels = predict(model, loader, device)
    return (preds == labels).float().mean().item()


def confusion_matrix(preds: torch.Tensor, labels: torch.Tensor,
                     num_classes: int = 10) -> torch.Tensor:
    """``(num_classes, num_classes)`` counts; row = true class, column = predicted class."""
    if preds.shape != labels.shape:
        raise ValueError(f"preds {tuple(preds.shape)} and labels {tuple(labels.shape)} differ in "
                         "shape")
    flat = labels.long() * num_classes + preds.long()
    return torch.bincount(flat, minlength=num_classes**2).reshape(num_classes, num_classes)
