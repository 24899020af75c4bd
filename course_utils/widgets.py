"""Interactive controls for live demos (ipywidgets)."""

from __future__ import annotations

from collections.abc import Callable

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
    fig, (ax_img, ax_bar) = plt.subplots(1, 2, figsize=(7, 2.8),
                                         gridspec_kw={"width_ratios": [1, 2]})
    ax_img.imshow(dataset.images[index].cpu().numpy(), cmap="gray_r")
    ax_img.set_title(f"test digit #{index}, label {int(y)}")
    ax_img.axis("off")
    colors = ["tab:green" if c == int(y) else "tab:blue" for c in range(len(probs))]
    ax_bar.bar(range(len(probs)), probs.cpu().numpy(), color=colors)
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


def compression_explorer(measure: Callable[[float, int], tuple[int, float]],
                         sparsity: tuple[float, float, float, float],
                         bits: tuple[int, int, int, int],
                         measured: dict[tuple[float, int], tuple[int, float]] | None = None
                         ) -> widgets.interactive:
    """Sliders for sparsity and bits; each setting is measured by ``measure(sparsity, bits)``, which
    returns (file bytes, accuracy), and plotted among every setting measured so far.

    ``sparsity`` and ``bits`` are (initial, min, max, step). Measurements are kept in ``measured``
    (keyed by sparsity rounded to 4 places, and bits; pass one to start from earlier results), so
    returning to a setting is instant.
    """
    measured = {} if measured is None else measured

    def show(sparsity: float, bits: int) -> None:
        key = (round(sparsity, 4), bits)
        if key not in measured:
            measured[key] = measure(*key)
        size, acc = measured[key]
        fig, ax = plt.subplots(figsize=(6, 3.2))
        others = [v for k, v in measured.items() if k != key]
        ax.scatter([s / 1024 for s, _ in others], [a for _, a in others], color="tab:gray",
                   label="measured before")
        ax.scatter([size / 1024], [acc], color="tab:red", s=80,
                   label=f"sparsity {key[0]:.2f}, {bits} bits")
        ax.set_xscale("log")
        ax.set_xlabel("file size (KiB, log scale)")
        ax.set_ylabel("accuracy")
        ax.set_title(f"{size:,} bytes, accuracy {acc:.4f}")
        ax.legend(loc="lower right")
        plt.show()

    initial, low, high, step = sparsity
    sparsity_slider = widgets.FloatSlider(value=initial, min=low, max=high, step=step,
                                          description="sparsity", continuous_update=False,
                                          readout_format=".2f")
    initial, low, high, step = bits
    bits_slider = widgets.IntSlider(value=initial, min=low, max=high, step=step, description="bits",
                                    continuous_update=False)
    return widgets.interactive(show, sparsity=sparsity_slider, bits=bits_slider)
