"""A float network's forward pass as a chain of steps, read from the model itself (notebooks 08,
11, 13, 14).

The int8 model, the ONNX export and the fixed-point network run a trained float model again with
other arithmetic. They take the order of its layers from the float model, by tracing its forward
pass with ``torch.fx``, so each architecture's forward pass is written once, in its ``nn.Module``.

A step is one of

- the module name of a ``Linear`` or ``Conv2d`` layer (``"fc1"``, ``"features.0"``), as
  ``model.get_submodule`` takes it;
- ``"relu"``; ``"maxpool"`` (2x2 windows, stride 2); ``"flatten"`` (from dimension 1).

Dropout and identity modules are left out: they change nothing at inference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import fx, nn

LAYERS = (nn.Linear, nn.Conv2d)
STEPS = ("relu", "maxpool", "flatten")  # the steps that are not layers
SKIPPED = (nn.Dropout, nn.Identity)  # modules that do nothing in eval mode


def is_layer(step: str) -> bool:
    """Whether ``step`` names a layer (a module name) rather than one of :data:`STEPS`."""
    return step not in STEPS


def _module_step(module: nn.Module, name: str) -> str | None:
    if isinstance(module, LAYERS):
        return name
    if isinstance(module, nn.ReLU):
        return "relu"
    if isinstance(module, nn.Flatten) and module.start_dim == 1 and module.end_dim == -1:
        return "flatten"
    if (isinstance(module, nn.MaxPool2d) and module.kernel_size in (2, (2, 2))
            and module.stride in (2, (2, 2), None) and module.padding in (0, (0, 0))):
        return "maxpool"
    if isinstance(module, SKIPPED):
        return None
    raise ValueError(f"module {name!r} ({type(module).__name__}) is not a step the course can run "
                     f"in another arithmetic: Linear, Conv2d, ReLU, MaxPool2d(2), Flatten")


def _call_step(node: fx.Node) -> str:
    """The step of a function or method call in a traced forward pass."""
    target, args, kwargs = node.target, node.args, node.kwargs
    if target in (F.relu, torch.relu, "relu"):
        return "relu"
    if target in (torch.flatten, "flatten") and tuple(args[1:]) in ((1,), (1, -1)) and not kwargs:
        return "flatten"
    if target in (F.max_pool2d, torch.max_pool2d):
        pool = dict(zip(("kernel_size", "stride", "padding"), args[1:], strict=False)) | kwargs
        if (pool.get("kernel_size") in (2, (2, 2)) and pool.get("stride") in (None, 2, (2, 2))
                and pool.get("padding", 0) in (0, (0, 0)) and pool.get("dilation", 1) == 1
                and not pool.get("ceil_mode") and not pool.get("return_indices")):
            return "maxpool"
    name = target if isinstance(target, str) else getattr(target, "__name__", str(target))
    raise ValueError(f"the forward pass calls {name} with {args[1:]} {dict(kwargs)}: not a step "
                     "the course can run in another arithmetic (relu, max_pool2d(x, 2), "
                     "flatten(1))")


def forward_chain(model: nn.Module) -> list[str]:
    """The steps of ``model``'s forward pass, in order, traced with ``torch.fx``.

    Raises ``ValueError`` when the forward pass is not one chain of the steps above (a branch, an
    addition, an average, batch normalisation...), naming what it met.
    """
    try:
        graph = fx.symbolic_trace(model).graph
    except (fx.proxy.TraceError, TypeError, RuntimeError, NotImplementedError) as error:
        raise ValueError(f"cannot trace {type(model).__name__}'s forward pass: {error}") from error
    steps, previous = [], None
    for node in graph.nodes:
        if node.op == "placeholder":
            if previous is not None:
                raise ValueError(f"{type(model).__name__} takes more than one input")
            previous = node
            continue
        inputs = node.all_input_nodes
        if inputs != [previous]:
            raise ValueError(f"{type(model).__name__}'s forward pass is not a chain: {node.name} "
                             f"reads {[a.name for a in inputs]}, not only {previous.name}")
        if node.op == "output":
            break
        if node.op == "call_module":
            step = _module_step(model.get_submodule(node.target), node.target)
        elif node.op in ("call_function", "call_method"):
            step = _call_step(node)
        else:
            raise ValueError(f"{type(model).__name__}'s forward pass reads {node.target} directly")
        if step is not None:
            steps.append(step)
        previous = node
    if not any(is_layer(step) for step in steps):
        raise ValueError(f"{type(model).__name__} has no Linear or Conv2d layer")
    return steps


def relu_before_pooling(steps: list[str]) -> list[str]:
    """``steps`` with every ``maxpool, relu`` pair swapped to ``relu, maxpool``.

    The function is the same (ReLU and max pooling commute: both keep the order of values), but an
    integer kernel can then apply the ReLU of a layer with its sums (Conv + ReLU fused) and pool the
    8-bit values directly.
    """
    steps = list(steps)
    for i in range(len(steps) - 1):
        if steps[i] == "maxpool" and steps[i + 1] == "relu":
            steps[i], steps[i + 1] = "relu", "maxpool"
    return steps


def run_step(step: str, x: torch.Tensor) -> torch.Tensor:
    """One of :data:`STEPS` on ``x``, a float or a quantized tensor."""
    if step == "relu":
        return F.relu(x)
    if step == "maxpool":
        return F.max_pool2d(x, 2)
    if step == "flatten":
        return x.flatten(1)
    raise ValueError(f"{step!r} is a layer, not one of {STEPS}")


def layers_in_order(steps: list[str]) -> list[str]:
    """The module names among ``steps``, in the order they run."""
    return [step for step in steps if is_layer(step)]
