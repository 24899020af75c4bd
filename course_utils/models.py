"""The course's networks for 1x28x28 MNIST digits.

Part I: ``LinearNet``, the lecture's ``MLP`` (784-120-80-10) and the lecture's ``LeNet``.
Part II: the two reference networks of Han et al. 2015 (arXiv 1506.02626),
``LeNet300`` (784-300-100-10) and ``CaffeLeNet5`` (conv 20, conv 50, fc 500, fc 10).
Every network by name, Part II's own ones included, is in ``zoo``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class LinearNet(nn.Module):
    """One fully connected layer: 784 pixels -> 10 class scores (multinomial logistic
    regression)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(28 * 28, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)  # (B, 784)
        return self.fc(x)  # (B, 10)


class MLP(nn.Module):
    """A multilayer perceptron 784-h1-h2-10 with ReLU; by default the lecture's 784-120-80-10."""

    def __init__(self, hidden: tuple[int, int] = (120, 80)):
        super().__init__()
        self.fc1 = nn.Linear(28 * 28, hidden[0])
        self.fc2 = nn.Linear(hidden[0], hidden[1])
        self.fc3 = nn.Linear(hidden[1], 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)  # (B, 784)
        x = F.relu(self.fc1(x))  # (B, h1)
        x = F.relu(self.fc2(x))  # (B, h2)
        return self.fc3(x)  # (B, 10)


class LeNet(nn.Module):
    """The lecture's LeNet, adapted from 3x32x32 to 1x28x28 input.

    The lecture's first layer is ``Conv2d(3, 6, 5)`` on 32x32 colour images. Here it is
    ``Conv2d(1, 6, 5, padding=2)``: one input channel, and two pixels of zero padding so the
    28x28 digit yields 28x28 feature maps, exactly as a 32x32 image does without padding.
    Every later layer, ``fc1``'s 16*5*5 = 400 inputs included, is then the lecture's.
    """

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 6, kernel_size=5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, kernel_size=5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)  # (B, 6, 28, 28) -> (B, 6, 14, 14)
        return F.max_pool2d(F.relu(self.conv2(x)), 2)  # (B, 16, 10, 10) -> (B, 16, 5, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x).flatten(1)  # (B, 400)
        x = F.relu(self.fc1(x))  # (B, 120)
        x = F.relu(self.fc2(x))  # (B, 84)
        return self.fc3(x)  # (B, 10)


class LeNet300(MLP):
    """LeNet-300-100 (LeCun et al. 1998; Han et al. 2015's first MNIST model): the MLP
    784-300-100-10, 266,610 parameters."""

    def __init__(self):
        super().__init__(hidden=(300, 100))


class CaffeLeNet5(nn.Module):
    """Caffe's LeNet-5 (Han et al. 2015's second MNIST model): 431,080 parameters.

    conv 20@5x5 -> max pool 2 -> conv 50@5x5 -> max pool 2 -> fc 500 -> ReLU -> fc 10.
    Caffe's ``lenet.prototxt`` has no non-linearity after the convolutions; like most
    PyTorch ports we add a ReLU after each pooling, which leaves the parameter count unchanged.
    """

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 20, kernel_size=5)
        self.conv2 = nn.Conv2d(20, 50, kernel_size=5)
        self.fc1 = nn.Linear(50 * 4 * 4, 500)
        self.fc2 = nn.Linear(500, 10)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(F.max_pool2d(self.conv1(x), 2))  # (B, 20, 24, 24) -> (B, 20, 12, 12)
        return F.relu(F.max_pool2d(self.conv2(x), 2))  # (B, 50, 8, 8) -> (B, 50, 4, 4)

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """fc1 and its ReLU: (B, 800) -> (B, 500), the input of the last layer."""
        return F.relu(self.fc1(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x).flatten(1)  # (B, 800)
        x = self.hidden(x)  # (B, 500)
        return self.fc2(x)  # (B, 10)


def count_parameters(model: nn.Module) -> int:
    """Number of trainable scalars (weights and biases)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
