import pytest
import torch
import torch.nn.functional as F
from torch import nn

from course_utils.neurons import (
    connected_neurons,
    group_penalty,
    incoming_norms,
    l1_penalty,
    outgoing_norms,
    shrink_inputs,
    shrink_pair,
)


@pytest.fixture
def pair():
    fc_in, fc_out = nn.Linear(3, 2), nn.Linear(2, 1)
    with torch.no_grad():
        fc_in.weight.copy_(torch.tensor([[3.0, 4.0, 0.0], [0.0, 0.0, 1.0]]))
        fc_out.weight.copy_(torch.tensor([[6.0, -8.0]]))
    return fc_in, fc_out


def test_group_norms_against_a_direct_computation(pair):
    fc_in, fc_out = pair
    assert incoming_norms(fc_in).tolist() == [5.0, 1.0]
    assert outgoing_norms(fc_out).tolist() == [6.0, 8.0]
    assert outgoing_norms(fc_in).tolist() == [3.0, 4.0, 1.0]
    li, lo = group_penalty(fc_in, fc_out)
    assert (li.item(), lo.item()) == (6.0, 14.0)
    assert l1_penalty(fc_in, fc_out).item() == 3 + 4 + 1 + 6 + 8


def test_random_group_norms_match_loops():
    torch.manual_seed(1)
    fc_in, fc_out = nn.Linear(7, 5), nn.Linear(5, 3)
    li, lo = group_penalty(fc_in, fc_out)
    assert li.item() == pytest.approx(sum(fc_in.weight[i].pow(2).sum().sqrt().item()
                                          for i in range(5)), rel=1e-6)
    assert lo.item() == pytest.approx(sum(fc_out.weight[:, i].pow(2).sum().sqrt().item()
                                          for i in range(5)), rel=1e-6)


def test_mismatched_layers_are_refused():
    with pytest.raises(ValueError, match="does not feed"):
        group_penalty(nn.Linear(3, 4), nn.Linear(5, 2))


@pytest.mark.parametrize("seed", range(5))
def test_removing_unconnected_neurons_preserves_outputs(seed):
    torch.manual_seed(seed)
    fc_in, fc_out = nn.Linear(6, 8), nn.Linear(8, 3)
    with torch.no_grad():
        fc_out.weight[:, [1, 4]] = 0  # no outgoing weights
        fc_in.weight[[2, 6]] = 0  # no incoming weights: constant ReLU(bias)
        fc_in.bias[2], fc_in.bias[6] = 0.9, -0.4
        fc_in.weight[:, 5] = 0  # input 5 is read by nobody
    keep = connected_neurons(fc_in, fc_out)
    assert keep.tolist() == [True, False, False, True, False, True, False, True]
    small_in, small_out = shrink_pair(fc_in, fc_out, keep)
    inputs = (small_in.weight != 0).any(dim=0)
    small_in = shrink_inputs(small_in, inputs)
    assert (small_in.in_features, small_in.out_features, small_out.in_features) == (5, 4, 4)
    x = torch.randn(10, 6)
    expected = fc_out(F.relu(fc_in(x)))
    assert torch.allclose(small_out(F.relu(small_in(x[:, inputs]))), expected, atol=1e-6)


def test_bad_keep_masks_are_refused(pair):
    fc_in, fc_out = pair
    with pytest.raises(ValueError, match="boolean mask"):
        shrink_pair(fc_in, fc_out, torch.tensor([1, 0]))
    with pytest.raises(ValueError, match="boolean mask"):
        shrink_inputs(fc_in, torch.tensor([True, False]))


def test_smaller_layers_are_made_on_the_layers_device(other_device, one_device):
    torch.manual_seed(0)
    fc_in, fc_out = nn.Linear(6, 8), nn.Linear(8, 3)
    with torch.no_grad():
        # a removed neuron without incoming weights: its constant moves to fc_out's bias
        fc_in.weight[2] = 0
    keep = torch.tensor([True, False, False, True, False, True, False, True])  # fresh, on the CPU
    inputs = torch.tensor([True, True, False, True, True, True])
    expected_in, expected_out = shrink_pair(fc_in, fc_out, keep)
    expected_narrow = shrink_inputs(expected_in, inputs)
    with one_device():
        small_in, small_out = shrink_pair(fc_in.to(other_device), fc_out.to(other_device), keep)
        narrow = shrink_inputs(small_in, inputs)
    assert {p.device for m in (small_in, small_out, narrow)
            for p in m.parameters()} == {other_device}
    assert (narrow.in_features, narrow.out_features, small_out.in_features) == (5, 4, 4)
    if other_device.type != "meta":  # values exist: the same layers as on the CPU
        for got, want in [(small_out, expected_out), (narrow, expected_narrow)]:
            assert torch.allclose(got.weight.cpu(), want.weight)
            assert torch.allclose(got.bias.cpu(), want.bias)
