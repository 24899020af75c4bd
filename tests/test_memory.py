import sys

import pytest
import torch
from torch import nn

from course_utils.cost import alexnet_2012, layer_costs
from course_utils.memory import activation_bytes, chain_peak_bytes, measured_forward_growth
from course_utils.storage import FP32_BITS, packed_bytes


def test_activations_of_a_hand_made_chain():
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 26 * 26, 10))
    outputs = activation_bytes(layer_costs(model), batch_size=2)
    assert outputs == [2 * 4 * 4 * 26 * 26] * 3 + [2 * 4 * 10]
    assert outputs[-1] == packed_bytes(2 * 10, FP32_BITS)  # batch 2, 10 fp32 outputs each
    # conv: input 2*784*4 + output; ReLU: its input and output, the largest pair
    assert chain_peak_bytes(2 * 784 * 4, outputs) == 2 * 2 * 4 * 4 * 26 * 26


def test_the_largest_pair_can_be_anywhere():
    assert chain_peak_bytes(10, [1, 100, 2]) == 102
    assert chain_peak_bytes(10, [5]) == 15


@pytest.mark.skipif(sys.platform == "win32", reason="no peak resident memory on Windows")
def test_the_measured_growth_of_alexnet_is_its_widest_pair():
    with torch.device("meta"):
        costs = layer_costs(alexnet_2012(), (1, 3, 227, 227))
    estimate = chain_peak_bytes(8 * 3 * 227 * 227 * 4, activation_bytes(costs, 8))
    assert estimate == 2 * 8 * 96 * 55 * 55 * 4  # conv1's output and relu1's
    assert measured_forward_growth(8) == pytest.approx(estimate, rel=0.25)
