"""Global average pooling (Network in Network, Lin et al. 2013, arXiv 1312.4400), class activation maps
(Zhou et al. 2016, arXiv 1512.04150), and digits placed on larger canvases.

``GapNet`` has no fully connected layer: its last layer, a 1x1 convolution, draws one map per class,
and a class's score is the average of its map. So it accepts inputs of any size, and the map before
averaging shows where the evidence for each class lies.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .data import DigitDataset
from .models import CaffeLeNet5


def conv_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    """3x3 convolution (padding 1, so H and W are kept; no bias, BatchNorm's shift replaces it), BatchNorm, ReLU."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


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


class GapNet(nn.Module):
    """An all-convolutional network for digits of any size, with a global-average-pooling head.

    Four 3x3 conv-BatchNorm-ReLU blocks of ``widths`` channels, 2x2 max pooling after the first
    two, then a 1x1 convolution (no bias) to one map per class, averaged over space. With the default
    widths (16, 32, 48, 64): 47,184 parameters.

    Two choices make the score independent of how much black surrounds the digit:

    - the maps are the *difference* between the image's features and those of an all-black image
      of the same size (computed in the same batch), so a position that sees only black gives every
      class exactly zero;
    - the input gets a black frame of ``margin`` pixels, so positions just outside a 28x28 digit,
      which see part of its strokes, are present (and trained) as they are on a larger canvas.
    """

    def __init__(self, widths: tuple[int, int, int, int] = (16, 32, 48, 64), margin: int = 4, num_classes: int = 10):
        super().__init__()
        c1, c2, c3, c4 = widths
        self.margin = margin
        self.block1 = conv_bn_relu(1, c1)
        self.block2 = conv_bn_relu(c1, c2)
        self.block3 = conv_bn_relu(c2, c3)
        self.block4 = conv_bn_relu(c3, c4)
        self.classifier = nn.Conv2d(c4, num_classes, kernel_size=1, bias=False)  # one map per class
        self.to(memory_format=torch.channels_last)  # channels-last convolutions run faster on CPUs

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, 1, H, W)`` images (black = 0) to ``(B, c4, H/4, W/4)`` feature maps."""
        x = F.max_pool2d(self.block1(x), 2)  # (B, c1, H, W) -> (B, c1, H/2, W/2)
        x = F.max_pool2d(self.block2(x), 2)  # (B, c2, H/2, W/2) -> (B, c2, H/4, W/4)
        x = self.block3(x)  # (B, c3, H/4, W/4)
        return self.block4(x)  # (B, c4, H/4, W/4)

    def class_maps(self, x: torch.Tensor) -> torch.Tensor:
        """The class activation maps, ``(B, 1, H, W)`` to ``(B, num_classes, (H + 2m)/4, (W + 2m)/4)``, m = margin."""
        x = x - x.amin(dim=(1, 2, 3), keepdim=True)  # (B, 1, H, W): each image's darkest pixel is 0
        x = torch.cat([x, torch.zeros_like(x[:1])])  # (B + 1, 1, H, W): the images and one black image
        x = F.pad(x, [self.margin] * 4)  # (B + 1, 1, H + 2m, W + 2m): a black frame
        f = self.features(x)  # (B + 1, c4, (H + 2m)/4, (W + 2m)/4)
        return self.classifier(f[:-1] - f[-1:])  # (B, num_classes, ...): evidence relative to black

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.class_maps(x).mean(dim=(2, 3))  # (B, num_classes, H', W') -> (B, num_classes)


@torch.no_grad()
def class_activation_map(model: GapNet, x: torch.Tensor, classes: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The map of one class per image, and the classes: ``classes`` ``(B,)`` if given, else the predicted ones.

    ``x`` is ``(B, 1, H, W)``; the maps are ``(B, H', W')`` in logit units: each one's mean is that
    class's logit. ``x`` and ``classes`` are moved to the model's device, where both results are.
    """
    maps = model.class_maps(x.to(next(model.parameters()).device))  # (B, 10, H', W')
    if classes is None:
        classes = maps.mean(dim=(2, 3)).argmax(dim=1)  # (B,)
    classes = classes.to(maps.device)
    return maps[torch.arange(len(x), device=maps.device), classes], classes  # (B, H', W'), (B,)


def map_on_input(maps: torch.Tensor, margin: int, stride: int = 4) -> torch.Tensor:
    """Class maps ``(B, H', W')`` upsampled ``stride`` times (bilinear) and the ``margin`` frame cut off:
    ``(B, stride * H' - 2 margin, stride * W' - 2 margin)``, one value per input pixel, to overlay on the digit."""
    up = F.interpolate(maps[:, None], scale_factor=stride, mode="bilinear", align_corners=False)[:, 0]  # (B, 4H', 4W')
    return up[:, margin : up.shape[1] - margin, margin : up.shape[2] - margin]


def place_on_canvas(images: torch.Tensor, size: int, top: int | torch.Tensor, left: int | torch.Tensor) -> torch.Tensor:
    """Paste uint8 digits ``(N, h, w)`` onto black ``(N, size, size)`` canvases, corner at ``(top, left)``.

    ``top`` and ``left`` are one position for all, or one per image ``(N,)``, in pixels.
    """
    n, h, w = images.shape
    top = torch.as_tensor(top).expand(n)
    left = torch.as_tensor(left).expand(n)
    if (top < 0).any() or (left < 0).any() or (top + h > size).any() or (left + w > size).any():
        raise ValueError(f"a {h}x{w} digit does not fit a {size}x{size} canvas at every given position")
    canvas = images.new_zeros(n, size, size)
    rows = (top[:, None] + torch.arange(h))[:, :, None]  # (N, h, 1)
    cols = (left[:, None] + torch.arange(w))[:, None, :]  # (N, 1, w)
    canvas[torch.arange(n)[:, None, None], rows, cols] = images
    return canvas


def canvas_dataset(dataset: DigitDataset, size: int, top: int | torch.Tensor, left: int | torch.Tensor) -> DigitDataset:
    """``dataset``'s digits on ``size`` x ``size`` canvases (see :func:`place_on_canvas`), same labels and normalisation."""
    return DigitDataset(place_on_canvas(dataset.images, size, top, left), dataset.labels, dataset.mean, dataset.std)
