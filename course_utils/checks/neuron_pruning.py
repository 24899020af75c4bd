"""Self-checks of notebook 07's exercises: the group norms li and lo, the removal of one hidden
neuron from a pair of layers, the neurons to keep, and the compression of a smaller head."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from ..exercises import Case, check_cases
from ..neurons import group_penalty, shrink_pair


def hand_made_pair() -> tuple[nn.Linear, nn.Linear]:
    """3 inputs, 2 hidden neurons, 1 output: li = 5 + 1, lo = 6 + 8."""
    fc_in, fc_out = nn.Linear(3, 2), nn.Linear(2, 1)
    with torch.no_grad():
        fc_in.weight.copy_(torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 1.0]]))
        fc_out.weight.copy_(torch.tensor([[6.0, -8.0]]))
    return fc_in, fc_out


def random_pair(n_in: int, hidden: int, n_out: int, seed: int) -> tuple[nn.Linear, nn.Linear]:
    torch.manual_seed(seed)
    return nn.Linear(n_in, hidden), nn.Linear(hidden, n_out)


def check_group_norms(student: Callable, seed: int = 0, strict: bool | None = None) -> bool:
    """The hand-made pair, a pair with a dead neuron, square and non-square random pairs, and the
    gradient of li + lo (the penalty must stay differentiable)."""
    dead_in, dead_out = random_pair(4, 3, 2, seed)
    with torch.no_grad():
        dead_in.weight[1] = 0
        dead_out.weight[:, 1] = 0
    pairs = {"hand-made: li = 5 + 1, lo = |6| + |-8|": hand_made_pair(),
             "4 -> 3 -> 2 with neuron 1 dead (its row and column zero)": (dead_in, dead_out),
             "784 -> 300 -> 100, random": random_pair(784, 300, 100, seed + 1),
             "5 -> 5 -> 5, random: rows and columns must not be swapped":
                 random_pair(5, 5, 5, seed + 2)}
    cases = []
    for label, (fc_in, fc_out) in pairs.items():
        expected = [float(v.detach()) for v in group_penalty(fc_in, fc_out)]
        cases.append(Case(f"{label}: (li, lo)", expected,
                          lambda a=fc_in, b=fc_out: [float(v.detach()) for v in student(a, b)]))
    fc_in, fc_out = random_pair(6, 4, 3, seed + 3)

    def gradient(norms: Callable) -> torch.Tensor:
        fc_in.zero_grad()
        fc_out.zero_grad()
        li, lo = norms(fc_in, fc_out)
        (li + lo).backward()
        return torch.cat([fc_in.weight.grad.flatten(), fc_out.weight.grad.flatten()])

    cases.append(Case("6 -> 4 -> 3: the gradient of li + lo, for training", gradient(group_penalty),
                      lambda: gradient(student)))
    return check_cases("group_norms", cases, strict)


def check_remove_neuron(student: Callable, seed: int = 0, strict: bool | None = None) -> bool:
    """Weights and biases of the new layers for the first, a middle and the last neuron, and the
    function of the pair unchanged when the removed neuron had no outgoing weights."""
    cases = []
    for label, (n_in, hidden, n_out), neuron in [("5 -> 4 -> 3, neuron 0", (5, 4, 3), 0),
                                                 ("5 -> 4 -> 3, neuron 2", (5, 4, 3), 2),
                                                 ("800 -> 500 -> 10, neuron 499", (800, 500, 10),
                                                  499),
                                                 ("3 -> 2 -> 1, neuron 1", (3, 2, 1), 1)]:
        fc_in, fc_out = random_pair(n_in, hidden, n_out, seed)
        keep = torch.ones(hidden, dtype=torch.bool)
        keep[neuron] = False
        new_in, new_out = shrink_pair(fc_in, fc_out, keep)

        def parameters(a=fc_in, b=fc_out, i=neuron) -> list[torch.Tensor]:
            small_in, small_out = student(a, b, i)
            return [small_in.weight, small_in.bias, small_out.weight, small_out.bias]

        cases.append(Case(f"{label}: new weights and biases (in, then out)",
                          [new_in.weight, new_in.bias, new_out.weight, new_out.bias], parameters))
    fc_in, fc_out = random_pair(6, 5, 4, seed + 1)
    with torch.no_grad():
        fc_out.weight[:, 3] = 0  # neuron 3 is read by nobody
    x = torch.randn(7, 6, generator=torch.Generator().manual_seed(seed))  # (7, 6)
    with torch.no_grad():
        before = fc_out(torch.relu(fc_in(x)))  # (7, 4)

    def after() -> torch.Tensor:
        small_in, small_out = student(fc_in, fc_out, 3)
        with torch.no_grad():
            return small_out(torch.relu(small_in(x)))

    cases.append(Case("6 -> 5 -> 4 without neuron 3, which nobody reads: the same outputs", before,
                      after))
    return check_cases("remove_neuron", cases, strict)


def reference_neurons_to_keep(fc_in: nn.Linear, fc_out: nn.Linear, tau: float) -> torch.Tensor:
    incoming = fc_in.weight.detach().norm(dim=1)  # (hidden,)
    outgoing = fc_out.weight.detach().norm(dim=0)  # (hidden,)
    return (incoming > tau) & (outgoing > tau)


def check_neurons_to_keep(student: Callable, seed: int = 0, strict: bool | None = None) -> bool:
    """The hand-made pair, a norm exactly at tau, dead rows and dead columns, a random pair."""
    small_in, small_out = hand_made_pair()
    with torch.no_grad():
        small_in.weight[1, 2] = 0.1
    mixed_in, mixed_out = random_pair(6, 5, 3, seed)
    with torch.no_grad():
        mixed_in.weight[0] = 0  # neuron 0: no inputs
        mixed_out.weight[:, 4] = 0  # neuron 4: no outputs
        mixed_in.weight[2] = torch.tensor([0.3, 0.4, 0, 0, 0, 0])  # neuron 2: norm exactly 0.5
    inputs = {"hand-made, tau 0.5: [True, False]": (small_in, small_out, 0.5),
              "dead rows and columns, a norm of exactly tau = 0.5 (not kept)":
                  (mixed_in, mixed_out, 0.5),
              "tau 0 keeps every neuron with some weight": (mixed_in, mixed_out, 0.0),
              "784 -> 300 -> 100 random, tau 0.33": (*random_pair(784, 300, 100, seed + 1), 0.33)}
    return check_cases("neurons_to_keep", [
        Case(label, reference_neurons_to_keep(a, b, t), lambda a=a, b=b, t=t: student(a, b, t))
        for label, (a, b, t) in inputs.items()], strict)


def reference_parameter_compression(dense: nn.Module, small: nn.Module) -> float:
    return sum(p.numel() for p in dense.parameters()) / sum(p.numel() for p in small.parameters())


def check_parameter_compression(student: Callable, dense: nn.Module, small: nn.Module,
                                strict: bool | None = None) -> bool:
    """Hand-made layer pairs with known counts, and the notebook's heads."""
    inputs = {"Linear(10, 10) against Linear(10, 1): 110 / 11":
                  (nn.Linear(10, 10), nn.Linear(10, 1)),
              "a model against itself: 1": (nn.Linear(4, 3),) * 2,
              "biases count too: Linear(2, 2) against Linear(2, 1, bias=False)":
                  (nn.Linear(2, 2), nn.Linear(2, 1, bias=False)),
              "the notebook's dense head against the chosen smaller one": (dense, small)}
    return check_cases("parameter_compression", [
        Case(label, reference_parameter_compression(d, s), lambda d=d, s=s: float(student(d, s)))
        for label, (d, s) in inputs.items()], strict)
