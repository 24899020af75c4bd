"""Global average pooling and mlpconv layers (Network in Network, Lin et al. 2013, arXiv
1312.4400), class activation maps (Zhou et al. 2016, arXiv 1512.04150), and digits placed on
larger canvases.

``GapNet`` has no fully connected layer: its last layer, a 1x1 convolution, draws one map per
class, and a class's score is the average of its map. So it accepts inputs of any size, and the map
before averaging shows where the evidence for each class lies.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .data import DigitDataset
from .models import CaffeLeNet5


def conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    """3x3 convolution (padding 1, so H and W are kept; no bias, BatchNorm's shift replaces it),
    BatchNorm, ReLU."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out),
                         nn.ReLU(inplace=True))


class GapHead(nn.Module):
    """A global-average-pooling head: a 1x1 convolution (no bias) from ``channels`` feature maps to
    one map per class, each averaged over space into the class score. ``channels * num_classes``
    parameters, whatever the size of the maps."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.classifier = nn.Conv2d(channels, num_classes, kernel_size=1, bias=False)

    def maps(self, features: torch.Tensor) -> torch.Tensor:
        """``(B, C, H, W)`` features to ``(B, num_classes, H, W)`` class maps."""
        return self.classifier(features)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.maps(features).mean(dim=(2, 3))  # (B, num_classes, H, W) -> (B, num_classes)


class GapLeNet5(nn.Module):
    """Caffe's LeNet-5 with its fully connected layers (fc1, fc2: 405,510 parameters) replaced by a
    :class:`GapHead` on the same convolutions: 500 parameters in the head instead."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, kernel_size=5)
        self.conv2 = nn.Conv2d(20, 50, kernel_size=5)
        self.head = GapHead(50, num_classes)

    # the same backbone, one forward pass for both: (B, 1, 28, 28) -> (B, 50, 4, 4)
    features = CaffeLeNet5.features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (B, num_classes)


class DropoutLeNet5(CaffeLeNet5):
    """Caffe's LeNet-5 with dropout on fc1's 500 hidden units, the input of the last linear layer
    (as in AlexNet's fully connected layers): the same 431,080 parameters. In training, each
    hidden unit is zeroed with probability ``p`` and the others are scaled by 1 / (1 - p); in
    evaluation (``model.eval()``) nothing is dropped."""

    def __init__(self, p: float = 0.5):
        super().__init__()
        self.dropout = nn.Dropout(p)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """fc1 and its ReLU, then dropout: (B, 800) -> (B, 500); the rest is CaffeLeNet5's."""
        return self.dropout(super().hidden(x))


def mlpconv(c_in: int, c_out: int, kernel_size: int, depth: int,
            batch_norm: bool = True) -> nn.Sequential:
    """Network in Network's mlpconv layer: a ``kernel_size`` convolution (no padding) from ``c_in``
    to ``c_out`` channels, then ``depth`` 1x1 convolutions from ``c_out`` to ``c_out``: a small
    MLP applied to the channels at every position. Each convolution is followed by BatchNorm (if
    ``batch_norm``; then without bias, BatchNorm's shift replaces it) and ReLU. ``depth=0`` is a
    plain convolution."""
    layers: list[nn.Module] = []
    for i, k in enumerate([kernel_size] + [1] * depth):
        layers.append(nn.Conv2d(c_in if i == 0 else c_out, c_out, k, bias=not batch_norm))
        layers += [nn.BatchNorm2d(c_out), nn.ReLU()] if batch_norm else [nn.ReLU()]
    return nn.Sequential(*layers)


class MlpConvLeNet5(nn.Module):
    """LeNet-5's two convolutions (20@5x5 and 50@5x5, each followed by 2x2 max pooling) as
    mlpconv layers of ``depth`` 1x1 convolutions each (Network in Network uses two), and a
    :class:`GapHead`. ``depth=0, batch_norm=False`` computes the same function as
    :class:`GapLeNet5` (a ReLU before max pooling gives what it gives after)."""

    def __init__(self, depth: int = 2, batch_norm: bool = True, num_classes: int = 10):
        super().__init__()
        self.block1 = mlpconv(1, 20, 5, depth, batch_norm)
        self.block2 = mlpconv(20, 50, 5, depth, batch_norm)
        self.head = GapHead(50, num_classes)
        self.to(memory_format=torch.channels_last)  # channels-last convolutions: faster on CPUs

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, 28, 28)`` digits to ``(B, 50, 4, 4)`` feature maps."""
        x = F.max_pool2d(self.block1(x), 2)  # (B, 20, 24, 24) -> (B, 20, 12, 12)
        return F.max_pool2d(self.block2(x), 2)  # (B, 50, 8, 8) -> (B, 50, 4, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))  # (B, num_classes)


def _rename_old_classifier_key(module: nn.Module, state_dict: dict, prefix: str,
                               *args: object) -> None:
    """A load_state_dict pre-hook of :class:`GapNet`: a state dict saved before the head was a
    :class:`GapHead` has its weight at ``classifier.weight``, now ``head.classifier.weight``; an
    old file (a cached or an older shipped checkpoint) still loads."""
    old, new = f"{prefix}classifier.weight", f"{prefix}head.classifier.weight"
    if old in state_dict and new not in state_dict:
        state_dict[new] = state_dict.pop(old)


class GapNet(nn.Module):
    """An all-convolutional network for digits of any size, with a global-average-pooling head.

    Four 3x3 conv-BatchNorm-ReLU blocks of ``widths`` channels, 2x2 max pooling after the first
    two, then a :class:`GapHead`: a 1x1 convolution (no bias) to one map per class, averaged over
    space. With the default widths (16, 32, 48, 64): 47,184 parameters.

    Two choices make the score independent of how much black surrounds the digit:

    - the maps are the *difference* between the image's features and those of an all-black image
      of the same size (computed in the same batch), so a position that sees only black gives every
      class exactly zero;
    - the input gets a black frame of ``margin`` pixels, so positions just outside a 28x28 digit,
      which see part of its strokes, are present (and trained) as they are on a larger canvas.
    """

    def __init__(self, widths: tuple[int, int, int, int] = (16, 32, 48, 64), margin: int = 4,
                 num_classes: int = 10):
        super().__init__()
        c1, c2, c3, c4 = widths
        self.margin = margin
        self.block1 = conv_bn_relu(1, c1)
        self.block2 = conv_bn_relu(c1, c2)
        self.block3 = conv_bn_relu(c2, c3)
        self.block4 = conv_bn_relu(c3, c4)
        self.head = GapHead(c4, num_classes)  # a 1x1 convolution to one map per class, averaged
        self.to(memory_format=torch.channels_last)  # channels-last convolutions: faster on CPUs
        self.register_load_state_dict_pre_hook(_rename_old_classifier_key)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` images (black = 0) to ``(B, c4, H/4, W/4)`` feature maps."""
        x = F.max_pool2d(self.block1(x), 2)  # (B, c1, H, W) -> (B, c1, H/2, W/2)
        x = F.max_pool2d(self.block2(x), 2)  # (B, c2, H/2, W/2) -> (B, c2, H/4, W/4)
        x = self.block3(x)  # (B, c3, H/4, W/4)
        return self.block4(x)  # (B, c4, H/4, W/4)

    def relative_features(self, x: torch.Tensor) -> torch.Tensor:
        """The features relative to black: ``(B, 1, H, W)`` to ``(B, c4, (H + 2m)/4, (W + 2m)/4)``,
        m = margin, each image's features minus those of an all-black image of its size."""
        x = x - x.amin(dim=(1, 2, 3), keepdim=True)  # (B, 1, H, W): each image's darkest pixel: 0
        x = torch.cat([x, torch.zeros_like(x[:1])])  # (B + 1, 1, H, W): and one black image
        x = F.pad(x, [self.margin] * 4)  # (B + 1, 1, H + 2m, W + 2m): a black frame
        f = self.features(x)  # (B + 1, c4, (H + 2m)/4, (W + 2m)/4)
        return f[:-1] - f[-1:]  # (B, c4, ...): relative to black

    def class_maps(self, x: torch.Tensor) -> torch.Tensor:
        """The class activation maps: ``(B, 1, H, W)`` to ``(B, num_classes, (H + 2m)/4,
        (W + 2m)/4)``, m = margin."""
        return self.head.maps(self.relative_features(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.relative_features(x))  # (B, num_classes): the maps' averages


@torch.no_grad()
def class_activation_map(model: GapNet, x: torch.Tensor,
                         classes: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The map of one class per image, and the classes: ``classes`` ``(B,)`` if given, else the
    predicted ones.

    ``x`` is ``(B, 1, H, W)``; the maps are ``(B, H', W')`` in logit units: each one's mean is that
    class's logit. ``x`` and ``classes`` are moved to the model's device, where both results are.
    """
    maps = model.class_maps(x.to(next(model.parameters()).device))  # (B, 10, H', W')
    if classes is None:
        classes = maps.mean(dim=(2, 3)).argmax(dim=1)  # (B,)
    classes = classes.to(maps.device)
    return maps[torch.arange(len(x), device=maps.device), classes], classes  # (B, H', W'), (B,)


def map_on_input(maps: torch.Tensor, margin: int, stride: int = 4) -> torch.Tensor:
    """Class maps ``(B, H', W')`` upsampled ``stride`` times (bilinear) and the ``margin`` frame
    cut off: ``(B, stride * H' - 2 margin, stride * W' - 2 margin)``, one value per input pixel, to
    overlay on the digit."""
    up = F.interpolate(maps[:, None], scale_factor=stride, mode="bilinear",
                       align_corners=False)[:, 0]  # (B, stride H', stride W')
    return up[:, margin : up.shape[1] - margin, margin : up.shape[2] - margin]


def peak_positions(maps: torch.Tensor, margin: int, stride: int = 4) -> torch.Tensor:
    """Where each map peaks: the centre of its largest cell, as (row, column) in input pixels,
    ``(B, H', W')`` to ``(B, 2)``. Cell (i, j) covers the framed input's pixels ``stride * i`` to
    ``stride * i + stride - 1`` (rows), and the frame of ``margin`` pixels is taken off."""
    cell = maps.flatten(1).argmax(dim=1)  # (B,): the peak's index in the flattened map
    cells = torch.stack([cell // maps.shape[2], cell % maps.shape[2]], dim=1)  # (B, 2): (i, j)
    return cells * stride + (stride - 1) / 2 - margin  # (B, 2): float


@torch.no_grad()
def own_digit_share(model: GapNet, left: DigitDataset, right: DigitDataset,
                    batch_size: int = 250) -> float:
    """The share of class maps that peak on their own digit, with two different digits on one
    canvas: pair i puts ``left``'s i-th digit beside ``right``'s (``(H, 2W)`` canvases; pairs with
    the same label are left out). The map of the left digit's label must peak on the left half,
    that of the right digit's label on the right half: two maps per pair."""
    keep = left.labels != right.labels  # (N,)
    pairs = DigitDataset(torch.cat([left.images[keep], right.images[keep]], dim=2),
                         left.labels[keep], left.mean, left.std)  # (n, H, 2W)
    width = left.images.shape[2]
    hits = []
    for start in range(0, len(pairs), batch_size):
        x, left_labels = pairs[list(range(start, min(start + batch_size, len(pairs))))]
        right_labels = right.labels[keep][start : start + batch_size]
        left_maps, _ = class_activation_map(model, x, left_labels)  # (b, H', W')
        right_maps, _ = class_activation_map(model, x, right_labels)
        hits.append(peak_positions(left_maps, model.margin)[:, 1] < width)
        hits.append(peak_positions(right_maps, model.margin)[:, 1] >= width)
    return torch.cat(hits).float().mean().item()


def place_on_canvas(images: torch.Tensor, size: int, top: int | torch.Tensor,
                    left: int | torch.Tensor) -> torch.Tensor:
    """Paste uint8 digits ``(N, h, w)`` onto black ``(N, size, size)`` canvases, corner at
    ``(top, left)``.

    ``top`` and ``left`` are one position for all, or one per image ``(N,)``, in pixels.
    """
    n, h, w = images.shape
    top = torch.as_tensor(top).expand(n)
    left = torch.as_tensor(left).expand(n)
    if (top < 0).any() or (left < 0).any() or (top + h > size).any() or (left + w > size).any():
        raise ValueError(f"a {h}x{w} digit does not fit a {size}x{size} canvas at every given "
                         "position")
    canvas = images.new_zeros(n, size, size)
    rows = (top[:, None] + torch.arange(h))[:, :, None]  # (N, h, 1)
    cols = (left[:, None] + torch.arange(w))[:, None, :]  # (N, 1, w)
    canvas[torch.arange(n)[:, None, None], rows, cols] = images
    return canvas


def canvas_dataset(dataset: DigitDataset, size: int, top: int | torch.Tensor,
                   left: int | torch.Tensor) -> DigitDataset:
    """``dataset``'s digits on ``size`` x ``size`` canvases (see :func:`place_on_canvas`), same
    labels and normalisation."""
    return DigitDataset(place_on_canvas(dataset.images, size, top, left), dataset.labels,
                        dataset.mean, dataset.std)
