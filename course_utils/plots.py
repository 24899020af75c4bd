"""Plots the notebooks share: digit grids, loss curves, confusion matrices, weight histograms."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import nn


def show_digits(images: torch.Tensor, labels: Sequence[int] | torch.Tensor | None = None,
                preds: Sequence[int] | torch.Tensor | None = None, ncols: int = 10,
                scale: float = 1.0) -> plt.Figure:
    """A grid of digits ``(N, H, W)`` or ``(N, 1, H, W)``, titled with labels (and predictions in
    red when wrong)."""
    images = images.detach().cpu().reshape(len(images), *images.shape[-2:]).numpy()
    nrows = -(-len(images) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(scale * ncols, scale * 1.15 * nrows),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= len(images):
            continue
        ax.imshow(images[i], cmap="gray_r")
        if labels is not None:
            title, color = f"{int(labels[i])}", "black"
            if preds is not None:
                title += f" → {int(preds[i])}"
                color = "black" if int(preds[i]) == int(labels[i]) else "red"
            ax.set_title(title, fontsize=9, color=color)
    fig.tight_layout()
    return fig


def _draw_losses(ax: plt.Axes, step_loss: Sequence[float], steps_per_epoch: int,
                 val_acc: Sequence[float]) -> None:
    steps = np.arange(1, len(step_loss) + 1)
    ax.plot(steps, step_loss, lw=0.6, alpha=0.4, label="minibatch loss")
    window = max(1, steps_per_epoch // 10)
    if len(step_loss) >= window:
        smooth = np.convolve(step_loss, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1 :], smooth, lw=1.5, label=f"mean of {window} batches")
    ax.set_xlabel("minibatch")
    ax.set_ylabel("cross-entropy loss")
    ax.set_yscale("log")
    if val_acc:
        twin = ax.twinx()
        epochs_end = steps_per_epoch * np.arange(1, len(val_acc) + 1)
        twin.plot(epochs_end, val_acc, "o-", color="tab:green", label="validation accuracy")
        twin.set_ylabel("validation accuracy", color="tab:green")
    ax.legend(loc="upper right")


def plot_losses(step_loss: Sequence[float], steps_per_epoch: int,
                val_acc: Sequence[float] = ()) -> plt.Figure:
    """The training loss of every minibatch (log scale) and, if given, validation accuracy per
    epoch."""
    fig, ax = plt.subplots(figsize=(7, 3.5))
    _draw_losses(ax, step_loss, steps_per_epoch, val_acc)
    fig.tight_layout()
    return fig


class LossPlot:
    """A loss plot that redraws in place in a notebook; does nothing outside IPython."""

    def __init__(self):
        from IPython import get_ipython

        self.active = get_ipython() is not None
        self.handle = None

    def update(self, step_loss: Sequence[float], steps_per_epoch: int,
               val_acc: Sequence[float] = ()) -> None:
        if not self.active:
            return
        from IPython.display import display

        fig = plot_losses(step_loss, steps_per_epoch, val_acc)
        plt.close(fig)  # shown through the display handle only, not again at the end of the cell
        if self.handle is None:
            self.handle = display(fig, display_id=True)
        else:
            self.handle.update(fig)


def plot_confusion(matrix: torch.Tensor, title: str = "") -> plt.Figure:
    """A confusion matrix (rows: true class, columns: predicted class) with counts written in."""
    matrix = matrix.cpu().numpy()
    fig, ax = plt.subplots(figsize=(5.5, 5))
    ax.imshow(np.log1p(matrix), cmap="Blues")
    for (i, j), count in np.ndenumerate(matrix):
        if count:
            ax.text(j, i, str(count), ha="center", va="center", fontsize=7,
                    color="white" if i == j else "black")
    ax.set_xticks(range(len(matrix)))
    ax.set_yticks(range(len(matrix)))
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_weight_histograms(model: nn.Module, bins: int = 80) -> plt.Figure:
    """One histogram per weight tensor (biases left out), titled with its name and size."""
    weights = [(name, p.detach().flatten()) for name, p in model.named_parameters() if p.dim() > 1]
    fig, axes = plt.subplots(1, len(weights), figsize=(3.2 * len(weights), 2.6), squeeze=False)
    for ax, (name, w) in zip(axes.flat, weights, strict=True):
        ax.hist(w.cpu().numpy(), bins=bins, color="tab:blue")
        ax.set_title(f"{name} ({w.numel():,})", fontsize=9)
        ax.set_yscale("log")
    fig.tight_layout()
    return fig
