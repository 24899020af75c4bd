"""Self-checks of notebook 12's exercises: the global-average-pooling head, the parameters of
GapNet and of a fully connected head, and the class activation maps of the runner-up class."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..exercises import Case, check_cases
from ..gap import GapHead, GapNet, class_activation_map


def with_reference_weights(student: nn.Module, reference: GapHead) -> nn.Module:
    """The student's head holding the reference's weights: its one parameter gets the reference's
    ``(K, C, 1, 1)`` weight, reshaped to its own shape (a ``(K, C)`` Linear weight is the same)."""
    params = list(student.parameters())
    if len(params) != 1 or params[0].numel() != reference.classifier.weight.numel():
        shapes = [tuple(p.shape) for p in params]
        raise ValueError(f"expected one weight of {reference.classifier.weight.numel()} numbers "
                         f"(a 1x1 convolution, no bias), got parameters of shapes {shapes}")
    with torch.no_grad():
        params[0].copy_(reference.classifier.weight.reshape(params[0].shape))
    return student


def check_gap_head(student_class: type[nn.Module], seed: int = 0,
                   strict: bool | None = None) -> bool:
    """Parameter counts, then scores against the course's head for several feature sizes: square
    and not, 1x1 maps, one image and a batch; the score of an image must not depend on the batch."""
    generator = torch.Generator().manual_seed(seed)
    inputs = {"C = 50, K = 10, 4x4 maps (LeNet-5's last features), batch 3":
                  (50, 10, (3, 50, 4, 4)),
              "C = 64, K = 10, 9x9 maps, one image": (64, 10, (1, 64, 9, 9)),
              "C = 8, K = 3, 1x1 maps: the average of one value": (8, 3, (5, 8, 1, 1)),
              "C = 5, K = 4, 3x7 maps: not square": (5, 4, (2, 5, 3, 7))}
    cases = [Case(f"parameters of GapHead({c}, {k})", c * k,
                  lambda c=c, k=k: sum(p.numel() for p in student_class(c, k).parameters()))
             for c, k, _ in inputs.values()]
    for label, (c, k, shape) in inputs.items():
        torch.manual_seed(seed)
        reference = GapHead(c, k)
        features = torch.randn(shape, generator=generator)  # (B, C, H, W)
        with torch.no_grad():
            expected = reference(features)  # (B, K)

        def scores(c=c, k=k, reference=reference, features=features) -> torch.Tensor:
            head = with_reference_weights(student_class(c, k), reference)
            with torch.no_grad():
                return head(features.clone())

        cases.append(Case(f"{label}: the scores", expected, scores))
    batch = torch.randn(4, 6, 5, 5, generator=generator)
    torch.manual_seed(seed)
    reference = GapHead(6, 2)

    def first_of_a_batch() -> torch.Tensor:
        head = with_reference_weights(student_class(6, 2), reference)
        with torch.no_grad():
            return head(torch.cat([batch[:1], 10 * batch[1:]]))[:1]

    with torch.no_grad():
        alone = reference(batch[:1])
    cases.append(Case("image 0 scored alone and beside other images: the same", alone,
                      first_of_a_batch))
    return check_cases("GapHead", cases, strict)


def check_gap_parameters(student: Callable[[tuple[int, int, int, int]], int], seed: int = 0,
                         strict: bool | None = None) -> bool:
    """Against the parameters counted in ``GapNet(widths)``: the default widths, one channel
    everywhere, widths that shrink, and random widths."""
    generator = torch.Generator().manual_seed(seed)
    random_widths = tuple(torch.randint(1, 97, (4,), generator=generator).tolist())
    inputs = {"(16, 32, 48, 64): GapNet's default": (16, 32, 48, 64),
              "(8, 16, 24, 32): half as wide": (8, 16, 24, 32),
              "(1, 1, 1, 1): one channel in every block": (1, 1, 1, 1),
              "(64, 8, 32, 4): widths that do not grow": (64, 8, 32, 4),
              f"{random_widths}: random widths": random_widths}
    return check_cases("gap_parameters: the parameters of GapNet(widths)", [
        Case(label, sum(p.numel() for p in GapNet(widths).parameters()),
             lambda widths=widths: student(widths))
        for label, widths in inputs.items()], strict)


def check_fc_head_parameters(student: Callable[[int, int, int, int, int], int], seed: int = 0,
                             strict: bool | None = None) -> bool:
    """Against the parameters of ``Linear(c h w, hidden)`` and ``Linear(hidden, classes)`` (built
    without memory, on the ``meta`` device): LeNet-5's head, the smallest head, features that are
    not square, two classes, an AlexNet-sized head, and a random one."""
    generator = torch.Generator().manual_seed(seed)
    random_args = tuple(torch.randint(1, 65, (5,), generator=generator).tolist())
    inputs = {"(50, 4, 4, 500, 10): Caffe LeNet-5's fc1 and fc2": (50, 4, 4, 500, 10),
              "(1, 1, 1, 1, 1): one feature, one hidden unit, one class": (1, 1, 1, 1, 1),
              "(20, 3, 5, 64, 10): 3x5 features, not square": (20, 3, 5, 64, 10),
              "(8, 2, 2, 16, 2): two classes": (8, 2, 2, 16, 2),
              "(256, 6, 6, 4096, 1000): AlexNet's features, one hidden layer of 4,096":
                  (256, 6, 6, 4096, 1000),
              f"{random_args}: random sizes": random_args}
    cases = []
    for label, (c, h, w, hidden, classes) in inputs.items():
        with torch.device("meta"):
            head = nn.Sequential(nn.Linear(c * h * w, hidden), nn.Linear(hidden, classes))
        cases.append(Case(label, sum(p.numel() for p in head.parameters()),
                          lambda args=(c, h, w, hidden, classes): student(*args)))
    return check_cases("fc_head_parameters: weights and biases of the two layers", cases, strict)


def reference_runner_up_maps(model: GapNet, x: torch.Tensor) -> torch.Tensor:
    """The class activation maps ``(B, H', W')`` of each image's second-highest score."""
    with torch.no_grad():
        second = model(x.to(next(model.parameters()).device)).topk(2, dim=1).indices[:, 1]  # (B,)
    return class_activation_map(model, x, second)[0]


def check_runner_up_maps(student: Callable[[GapNet, torch.Tensor], torch.Tensor], model: GapNet,
                         images: torch.Tensor, seed: int = 0, strict: bool | None = None) -> bool:
    """Against :func:`reference_runner_up_maps` for ``model`` (trained, in eval mode) on ``images``
    ``(B, 1, 28, 28)``, normalised digits: a batch, one image, digits on a larger black canvas
    (larger maps), and an untrained GapNet (the function must use the model it is given)."""
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(images), generator=generator)
    black = images.amin().item()  # the normalised value of a black pixel
    torch.manual_seed(seed)
    untrained = GapNet().eval()
    inputs = {f"{len(images)} digits": (model, images),
              "one digit alone": (model, images[order[:1]]),
              "3 digits on 44x44 black canvases: 13x13 maps":
                  (model, F.pad(images[order[:3]], [8] * 4, value=black)),
              "an untrained GapNet (random weights), the same digits": (untrained, images)}
    return check_cases("runner_up_maps: the maps of the second-highest class", [
        Case(label, reference_runner_up_maps(net, x), lambda net=net, x=x: student(net, x.clone()),
             atol=1e-4, rtol=1e-4)
        for label, (net, x) in inputs.items()], strict)
