"""Self-checks of notebook 02's exercises: the linear ``Net``, the training loop, ``evaluate``,
softmax and cross-entropy."""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..exercises import Case, check_cases
from ..models import LinearNet
from ..training import evaluate, train_epoch
from .modules import check_module

Batch = tuple[torch.Tensor, torch.Tensor]


def check_linear_net(net_class: Callable[[], nn.Module], seed: int = 0,
                     strict: bool | None = None) -> bool:
    """The student's ``Net`` against ``course_utils.models.LinearNet`` on 1x28x28 digits."""
    torch.manual_seed(seed)
    return check_module("Net (the linear model)", net_class, LinearNet(), (1, 28, 28), seed, strict)


def toy_batches(sizes: list[int], features: int, classes: int, seed: int) -> list[Batch]:
    """Random minibatches ``(B, features)`` with labels ``(B,)``, of the given sizes."""
    generator = torch.Generator().manual_seed(seed)
    return [(torch.randn(b, features, generator=generator),
             torch.randint(0, classes, (b,), generator=generator)) for b in sizes]


def check_train_epoch(student_train_epoch: Callable, seed: int = 0,
                      strict: bool | None = None) -> bool:
    """One epoch of the student's loop against ``course_utils.train_epoch``, from the same weights.

    A linear layer 6 -> 3 and SGD with momentum 0.9 over minibatches of 4, 4 and 2 examples: the
    losses returned and the weights after the epoch must both agree. Momentum makes a forgotten
    ``zero_grad`` visible; a last smaller minibatch makes a summed loss visible.
    """
    torch.manual_seed(seed)
    start = nn.Linear(6, 3)
    batches = toy_batches([4, 4, 2], 6, 3, seed)

    def run(loop: Callable, loader: list[Batch]) -> tuple[list, torch.Tensor]:
        model = copy.deepcopy(start)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
        losses = loop(model, loader, nn.CrossEntropyLoss(), optimizer)
        return losses, model.weight.detach().clone()

    expected_losses, expected_weight = run(train_epoch, batches)
    results: dict[str, tuple[list, torch.Tensor]] = {}

    def student(key: str, loader: list[Batch]) -> tuple[list, torch.Tensor]:
        if key not in results:
            results[key] = run(student_train_epoch, loader)
        return results[key]

    return check_cases("train_epoch", [
        Case("the loss of each of the 3 minibatches, as Python floats", expected_losses,
             lambda: list(student("toy", batches)[0]), atol=1e-5),
        Case("the weights after the epoch", expected_weight,
             lambda: student("toy", batches)[1], atol=1e-5),
        Case("an empty loader: no loss, no update", ([], start.weight.detach()),
             lambda: (list(student("empty", [])[0]), student("empty", [])[1])),
    ], strict)


def check_evaluate(student_evaluate: Callable, seed: int = 0, strict: bool | None = None) -> bool:
    """Accuracy over a whole loader against ``course_utils.evaluate``.

    Minibatches of unequal size (the mean of per-batch accuracies is wrong there), a model with
    dropout (evaluation must switch it off with ``model.eval()``), and a perfect classifier.
    """
    torch.manual_seed(seed)
    linear = nn.Linear(6, 3)
    batches = toy_batches([64, 64, 8], 6, 3, seed)
    with_dropout = nn.Sequential(nn.Dropout(0.5), copy.deepcopy(linear))
    perfect = [(x, linear(x).argmax(dim=1)) for x, _ in batches]
    models = {
        "a linear layer on minibatches of 64, 64 and 8": (linear, batches),
        "the same layer behind Dropout(0.5)": (with_dropout, batches),
        "labels equal to the predictions: accuracy 1.0": (linear, perfect),
    }

    def accuracy(model: nn.Module, loader: list[Batch]) -> float:
        model = copy.deepcopy(model).train()  # as a model comes out of training
        with torch.no_grad():
            return student_evaluate(model, loader)

    return check_cases("evaluate", [
        Case(label, evaluate(copy.deepcopy(model).train(), loader),
             lambda model=model, loader=loader: accuracy(model, loader))
        for label, (model, loader) in models.items()
    ], strict)


def check_softmax(my_softmax: Callable[[torch.Tensor], torch.Tensor], seed: int = 0,
                  strict: bool | None = None) -> bool:
    """Against ``torch.softmax(z, dim=1)``: random logits, logits near 1000, one class, equal."""
    generator = torch.Generator().manual_seed(seed)
    inputs = {
        "random logits (4, 10)": torch.randn(4, 10, generator=generator) * 3,
        "logits near 1000 (exp overflows unless you subtract the max)":
            torch.tensor([[1000.0, 1001.0, 1002.0], [-1000.0, -1001.0, -1002.0]]),
        "a single class (2, 1): probability 1": torch.tensor([[5.0], [-3.0]]),
        "equal logits: uniform": torch.zeros(1, 4),
    }
    return check_cases("my_softmax", [
        Case(label, torch.softmax(z, dim=1), lambda z=z: my_softmax(z))
        for label, z in inputs.items()
    ], strict)


def check_cross_entropy(my_cross_entropy: Callable, seed: int = 0,
                        strict: bool | None = None) -> bool:
    """Against ``F.cross_entropy`` (the mean over the batch), large logits and one example too."""
    generator = torch.Generator().manual_seed(seed)
    inputs = {
        "random logits (5, 10)": (torch.randn(5, 10, generator=generator) * 3,
                                  torch.randint(0, 10, (5,), generator=generator)),
        "two examples, 3 classes": (torch.tensor([[2.0, 0.5, -1.0], [0.1, 0.2, 3.0]]),
                                    torch.tensor([0, 2])),
        "logits near 1000":
            (torch.tensor([[1000.0, 990.0], [990.0, 1000.0]]), torch.tensor([0, 0])),
        "a batch of one": (torch.tensor([[0.0, 1.0, 2.0]]), torch.tensor([1])),
    }
    return check_cases("my_cross_entropy", [
        Case(label, F.cross_entropy(z, y), lambda z=z, y=y: my_cross_entropy(z, y), atol=1e-5)
        for label, (z, y) in inputs.items()
    ], strict)
