"""Neuron pruning (notebook 07): group norms, group regularisers, and physically smaller layers.

A hidden neuron between two linear layers ``fc_in`` (out x in) and ``fc_out`` owns one *row*
of ``fc_in.weight`` (its incoming weights) and one *column* of ``fc_out.weight`` (its outgoing
weights). Removing the neuron removes both.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn


def incoming_norms(fc_in: nn.Linear) -> torch.Tensor:
    """L2 norm of each neuron's incoming weights: the rows of ``fc_in.weight``, shape ``(out,)``."""
    return fc_in.weight.norm(dim=1)


def outgoing_norms(fc_out: nn.Linear) -> torch.Tensor:
    """L2 norm of each neuron's outgoing weights: the columns of ``fc_out.weight``, shape
    ``(in,)``."""
    return fc_out.weight.norm(dim=0)


def group_penalty(fc_in: nn.Linear, fc_out: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
    """The lecture's group regularisers for the hidden neurons between ``fc_in`` and ``fc_out``:
    ``li`` = sum of incoming-weight norms, ``lo`` = sum of outgoing-weight norms."""
    if fc_in.out_features != fc_out.in_features:
        raise ValueError(f"{fc_in} does not feed {fc_out}")
    return incoming_norms(fc_in).sum(), outgoing_norms(fc_out).sum()


def l1_penalty(*layers: nn.Linear) -> torch.Tensor:
    """Sum of absolute weights of the given layers."""
    return sum(layer.weight.abs().sum() for layer in layers)


def connected_neurons(fc_in: nn.Linear, fc_out: nn.Linear) -> torch.Tensor:
    """Boolean ``(hidden,)``: True for neurons with at least one nonzero incoming *and* outgoing
    weight."""
    has_input = (fc_in.weight != 0).any(dim=1)
    has_output = (fc_out.weight != 0).any(dim=0)
    return has_input & has_output


@torch.no_grad()
def shrink_pair(fc_in: nn.Linear, fc_out: nn.Linear, keep: torch.Tensor,
                activation: Callable[[torch.Tensor], torch.Tensor] = torch.relu
                ) -> tuple[nn.Linear, nn.Linear]:
    """New, smaller dense layers with only the hidden neurons where ``keep`` is True.

    A removed neuron with no incoming weights still outputs the constant ``activation(bias)``;
    that constant's effect is folded into ``fc_out``'s bias, so removing neurons without incoming
    or without outgoing weights leaves the function unchanged exactly.
    """
    if keep.dtype != torch.bool or keep.shape != (fc_in.out_features,):
        raise ValueError(f"keep must be a boolean mask of shape ({fc_in.out_features},)")
    device = fc_in.weight.device  # the new layers, like the old pair, live on one device
    index = keep.nonzero().flatten().to(device)
    new_in = nn.Linear(fc_in.in_features, len(index), bias=fc_in.bias is not None, device=device)
    new_out = nn.Linear(len(index), fc_out.out_features, device=device)
    new_in.weight.copy_(fc_in.weight[index])
    new_out.weight.copy_(fc_out.weight[:, index])
    if fc_out.bias is None:
        new_out.bias.zero_()
    else:
        new_out.bias.copy_(fc_out.bias)
    if fc_in.bias is not None:
        new_in.bias.copy_(fc_in.bias[index])
        constant = ~keep.to(device) & ~(fc_in.weight != 0).any(dim=1)  # removed, input ignored
        new_out.bias += fc_out.weight @ (activation(fc_in.bias) * constant)  # (out,): their outputs
    return new_in, new_out


@torch.no_grad()
def shrink_inputs(fc: nn.Linear, keep: torch.Tensor) -> nn.Linear:
    """A new layer reading only the inputs where ``keep`` is True (columns of ``fc.weight``)."""
    if keep.dtype != torch.bool or keep.shape != (fc.in_features,):
        raise ValueError(f"keep must be a boolean mask of shape ({fc.in_features},)")
    index = keep.nonzero().flatten().to(fc.weight.device)
    new = nn.Linear(len(index), fc.out_features, bias=fc.bias is not None, device=fc.weight.device)
    new.weight.copy_(fc.weight[:, index])
    if fc.bias is not None:
        new.bias.copy_(fc.bias)
    return new
