"""Every network of the course by name, Part I's and Part II's: ``build_model("lenet5")``.

It sits above both parts, so that Part I's ``models`` imports nothing of Part II.
"""

from __future__ import annotations

from torch import nn

from .gap import GapNet
from .models import MLP, CaffeLeNet5, LeNet, LeNet300, LinearNet
from .quantization import BinaryConnectMLP

MODELS: dict[str, type[nn.Module]] = {
    "linear": LinearNet,
    "mlp": MLP,
    "lenet": LeNet,
    "lenet300": LeNet300,
    "lenet5": CaffeLeNet5,
    "binaryconnect": BinaryConnectMLP,
    "gap": GapNet,
}


def build_model(name: str) -> nn.Module:
    """A freshly initialised model by name (one of ``MODELS``)."""
    if name not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(MODELS)}")
    return MODELS[name]()
