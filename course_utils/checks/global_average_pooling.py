"""Self-check of notebook 12's exercise: the global-average-pooling head."""

from __future__ import annotations

import torch
from torch import nn

from ..exercises import Case, check_cases
from ..gap import GapHead


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
    inputs = {"C = 50, K = 10, 4x4 maps (LeNet-5's last features), batch 3": (50, 10, (3, 50, 4, 4)),
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
