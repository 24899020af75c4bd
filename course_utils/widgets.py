"""Interactive controls for live demos (ipywidgets)."""

from __future__ import annotations

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch
from torch import nn

from .data import DigitDataset


@torch.inference_mode()
def class_probabilities(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Softmax probabilities ``(10,)`` of one normalised digit ``x`` of shape ``(1, H, W)``."""
    model.eval()
    device = next(model.parameters()).device
    return model(x.unsqueeze(0).to(device)).softmax(dim=1).squeeze(0).cpu()


def draw_prediction(model: nn.Module, dataset: DigitDataset, index: int) -> plt.Figure:
    """The digit at ``index`` beside a bar chart of the model's class probabilities."""
    x, y = dataset[index]
    probs = class_probabilities(model, x)
    fig, (ax_img, ax_bar) = plt.subplots(1, 2, figsize=(7, 2.8), gridspec_kw={"width_ratios": [1, 2]})
    ax_img.imshow(dataset.images[index].numpy(), cmap="gray_r")
    ax_img.set_title(f"test digit #{index}, label {int(y)}")
    ax_img.axis("off")
    colors = ["tab:green" if c == int(y) else "tab:blue" for c in range(len(probs))]
    ax_bar.bar(range(len(probs)), probs.numpy(), color=colors)
    ax_bar.set_xticks(range(len(probs)))
    ax_bar.set_ylim(0, 1)
    ax_bar.set_xlabel("class")
    ax_bar.set_ylabel("probability")
    ax_bar.set_title(f"prediction {int(probs.argmax())} ({probs.max():.1%})")
    fig.tight_layout()
    return fig


def digit_explorer(model: nn.Module, dataset: DigitDataset) -> widgets.interactive:
    """A slider that picks a digit of ``dataset`` and shows what ``model`` believes it is."""

    def show(index: int) -> None:
        draw_prediction(model, dataset, index)
        plt.show()

    slider = widgets.IntSlider(value=0, min=0, max=len(dataset) - 1, description="digit #",
                               continuous_update=False)
    return widgets.interactive(show, index=slider)
