"""Self-checks of notebook 15's exercises: gradients averaged by hand, then across processes."""

from __future__ import annotations

import copy
import inspect
import tempfile
import textwrap
from collections.abc import Callable, Sequence
from itertools import islice
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ..ddp_train import starting_point
from ..distributed import run_nodes, training_set
from ..exercises import Case, check_cases
from ..training import train_epoch

LR = 0.1


def tiny_model(seed: int, frozen_first_layer: bool = False) -> nn.Sequential:
    """A 5-4-3 network small enough to check every weight; optionally its first layer frozen."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(5, 4), nn.ReLU(), nn.Linear(4, 3))
    if frozen_first_layer:
        model[0].requires_grad_(False)
    return model


def flat_weights(model: nn.Module) -> torch.Tensor:
    """Every parameter of ``model`` in one vector ``(P,)``."""
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def step_on_whole_batch(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Weights ``(P,)`` after one SGD step on the mean loss of the whole batch (on a copy)."""
    model = copy.deepcopy(model)
    F.cross_entropy(model(x), y).backward()
    torch.optim.SGD(model.parameters(), lr=LR).step()
    return flat_weights(model)


def step_on_shards(average_gradients: Callable, model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                   replicas: int) -> torch.Tensor:
    """Each of ``replicas`` copies takes an equal share of the batch; gradients averaged by
    ``average_gradients``; one SGD step each. Returns the weights of every copy, ``(R, P)``."""
    copies = [copy.deepcopy(model) for _ in range(replicas)]
    for replica, xs, ys in zip(copies, x.chunk(replicas), y.chunk(replicas), strict=True):
        F.cross_entropy(replica(xs), ys).backward()  # each copy's loss: the mean over its share
    average_gradients(copies)
    for replica in copies:
        torch.optim.SGD(replica.parameters(), lr=LR).step()
    return torch.stack([flat_weights(replica) for replica in copies])


def check_average_gradients(average_gradients: Callable[[Sequence[nn.Module]], None], seed: int = 0,
                            strict: bool | None = None) -> bool:
    """One step of R copies on equal shares, gradients averaged, against one whole-batch step.

    Expected: every copy (a row) ends with the weights of the whole-batch step.
    """
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(12, 5, generator=generator)  # (12, 5)
    y = torch.randint(0, 3, (12,), generator=generator)  # (12,)
    cases = []
    for label, replicas, frozen in [("2 copies, 6 examples each", 2, False),
                                    ("3 copies, 4 examples each", 3, False),
                                    ("12 copies, 1 example each", 12, False),
                                    ("1 copy: nothing to average", 1, False),
                                    ("2 copies, first layer frozen (its .grad is None)", 2, True)]:
        model = tiny_model(seed, frozen)
        expected = step_on_whole_batch(model, x, y).expand(replicas, -1)  # (R, P)
        cases.append(Case(f"{label}: weights of every copy (R, P)", expected,
                          lambda m=model, r=replicas:
                              step_on_shards(average_gradients, m, x, y, r)))
    return check_cases("average_gradients", cases, strict)


def single_process_weights(seed: int, steps: int, global_batch: int, lr: float,
                           dataset) -> dict[str, torch.Tensor]:
    """The lecture's MLP after ``steps`` SGD steps on ``global_batch`` examples, in this process,
    from ``ddp_train``'s starting point: the same data order, initial weights and optimiser."""
    model, optimizer, loader = starting_point(dataset, global_batch, rank=0, world_size=1,
                                              seed=seed, lr=lr)
    train_epoch(model, islice(loader, steps), F.cross_entropy, optimizer)
    return model.state_dict()


def launched_weights(source: str, world_size: int, seed: int, steps: int, global_batch: int,
                     lr: float) -> torch.Tensor:
    """Rank 0's weights ``(P,)`` after ``ddp_train --sync hand`` with the function in ``source``."""
    folder = Path(tempfile.mkdtemp(prefix="allreduce-"))
    (folder / "student.py").write_text(source)
    run = run_nodes(["--sync", "hand", "--sync-source", str(folder / "student.py"),
                     "--steps", str(steps), "--global-batch", str(global_batch), "--lr", str(lr),
                     "--seed", str(seed), "--train-size", str(steps * global_batch)],
                    nproc=world_size, timeout_s=120, progress=False, echo=False)
    if "NotImplementedError" in run.output():
        raise NotImplementedError
    if not run.ok:
        errors = [line.strip() for line in run.root_cause().splitlines() if "Error" in line]
        raise RuntimeError(errors[-1] if errors else f"the workers failed:\n{run.output()[-2000:]}")
    return torch.cat([w.flatten() for w in run.result["state_dict"].values()])


def check_allreduce_gradients(allreduce_gradients: Callable[[nn.Module], None], seed: int = 0,
                              world_sizes: Sequence[int] = (3,), steps: int = 20,
                              strict: bool | None = None) -> bool:
    """Your ``allreduce_gradients`` in real worker processes (``ddp_train --sync hand``), against
    one process on the whole global batch: rank 0's weights after ``steps`` steps. Three workers by
    default, so that a world size written in as 2 shows (each run starts processes: seconds)."""
    try:
        source = textwrap.dedent(inspect.getsource(allreduce_gradients))
    except (OSError, TypeError) as err:
        raise ValueError("allreduce_gradients must be a function defined in a cell") from err
    global_batch, lr = 96, 0.05  # 96 divides over 2 and 3 processes
    dataset = training_set(steps * global_batch)
    expected = torch.cat([w.flatten() for w in single_process_weights(
        seed, steps, global_batch, lr, dataset).values()])
    return check_cases("allreduce_gradients", [
        Case(f"{n} processes, {global_batch // n} examples each, {steps} steps: rank 0's weights",
             expected, lambda n=n: launched_weights(source, n, seed, steps, global_batch, lr),
             atol=1e-5, rtol=0)
        for n in world_sizes], strict)
