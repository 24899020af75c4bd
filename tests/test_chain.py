"""The steps of a float model's forward pass (course_utils.chain), read with torch.fx."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_utils.chain import (
    forward_chain,
    is_layer,
    layers_in_order,
    relu_before_pooling,
    run_step,
)
from course_utils.gap import DropoutLeNet5, GapLeNet5, GapNet
from course_utils.models import MLP, CaffeLeNet5, LeNet, LinearNet

LENET5 = ["conv1", "maxpool", "relu", "conv2", "maxpool", "relu", "flatten", "fc1", "relu", "fc2"]


@pytest.mark.parametrize("model, steps", [
    (CaffeLeNet5(), LENET5),
    (DropoutLeNet5(), LENET5),  # dropout does nothing at inference
    (MLP((30, 20)), ["flatten", "fc1", "relu", "fc2", "relu", "fc3"]),
    (LinearNet(), ["flatten", "fc"]),
    (LeNet(), ["conv1", "relu", "maxpool", "conv2", "relu", "maxpool", "flatten", "fc1", "relu",
               "fc2", "relu", "fc3"]),
    (nn.Sequential(nn.Flatten(), nn.Sequential(nn.Linear(784, 16), nn.ReLU()), nn.Linear(16, 10)),
     ["flatten", "1.0", "relu", "2"]),
    (nn.Sequential(nn.Conv2d(1, 4, 3), nn.MaxPool2d(2, 2), nn.Identity(), nn.ReLU(),
                   nn.Flatten(), nn.Linear(676, 10)),
     ["0", "maxpool", "relu", "flatten", "5"]),
])
def test_the_chain_is_the_models_own_forward_pass(model, steps):
    assert forward_chain(model) == steps
    for name in layers_in_order(steps):  # every layer step is a module name
        assert isinstance(model.get_submodule(name), nn.Linear | nn.Conv2d)


def test_running_the_steps_gives_the_models_output():
    torch.manual_seed(0)
    model, x = CaffeLeNet5().eval(), torch.randn(3, 1, 28, 28)
    for steps in (forward_chain(model), relu_before_pooling(forward_chain(model))):
        y = x
        for step in steps:
            y = model.get_submodule(step)(y) if is_layer(step) else run_step(step, y)
        assert torch.equal(y, model(x))


def test_relu_moves_before_each_pooling_and_nowhere_else():
    assert relu_before_pooling(LENET5) == ["conv1", "relu", "maxpool", "conv2", "relu", "maxpool",
                                           "flatten", "fc1", "relu", "fc2"]
    assert relu_before_pooling(["flatten", "fc1", "relu", "fc2"]) == ["flatten", "fc1", "relu",
                                                                      "fc2"]
    assert relu_before_pooling(["0", "relu", "maxpool", "maxpool", "relu"]) == [
        "0", "relu", "maxpool", "relu", "maxpool"]


class Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        return x + self.fc(x)


class AvgPool(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3)

    def forward(self, x):
        return F.avg_pool2d(self.conv(x), 2)


@pytest.mark.parametrize("model, named", [
    (GapNet(), "amin"),  # the black-image difference and the average are not steps
    (GapLeNet5(), "mean"),
    (Residual(), "not a chain"),
    (AvgPool(), "avg_pool2d"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.MaxPool2d(3)), "MaxPool2d"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)), "BatchNorm2d"),
    (nn.Sequential(nn.ReLU(), nn.Flatten()), "no Linear or Conv2d"),
])
def test_anything_else_is_refused_by_name(model, named):
    with pytest.raises(ValueError, match=named):
        forward_chain(model)
