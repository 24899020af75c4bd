import pytest
import torch
import torchvision
from torch import nn

from course_utils.cost import (
    ENERGY_PJ,
    HAN_ALEXNET_TABLE4,
    alexnet_2012,
    conv_cost,
    energy_per_inference,
    flop_counter_macs,
    layer_costs,
    linear_cost,
    size_bytes,
)
from course_utils.storage import packed_bytes
from course_utils.timing import inference_seconds, median_seconds
from course_utils.zoo import build_model


def test_hand_made_conv_and_linear_costs():
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                          nn.Linear(36, 5))
    costs = layer_costs(model, (1, 2, 8, 8))
    assert [(c.kind, c.output_shape, c.params, c.macs) for c in costs] == [
        ("Conv2d", (4, 6, 6), 4 * (2 * 9 + 1), 4 * 36 * 2 * 9),
        ("ReLU", (4, 6, 6), 0, 0),
        ("MaxPool2d", (4, 3, 3), 0, 0),
        ("Flatten", (36,), 0, 0),
        ("Linear", (5,), 36 * 5 + 5, 36 * 5),
    ]


def test_grouped_convolution_macs():
    costs = layer_costs(nn.Conv2d(4, 8, 3, groups=2, bias=False), (1, 4, 5, 5))
    assert costs[0].macs == 8 * 3 * 3 * (4 // 2) * 3 * 3 and costs[0].params == 8 * 2 * 9


@pytest.mark.parametrize("name,params,macs", [
    ("alexnet", 61_100_840, 714_188_480),  # about 61 M parameters, as published
    ("vgg16", 138_357_544, 15_470_264_320),  # about 138 M parameters, as published
])
def test_published_totals_on_the_meta_device(name, params, macs):
    with torch.device("meta"):
        model = getattr(torchvision.models, name)()
    costs = layer_costs(model, (1, 3, 224, 224))
    assert sum(c.params for c in costs) == params == sum(p.numel() for p in model.parameters())
    assert sum(c.macs for c in costs) == macs == flop_counter_macs(model, (1, 3, 224, 224))
    fc_share = sum(c.params for c in costs if c.kind == "Linear") / params
    assert fc_share > 0.85  # the fully connected layers hold most of the parameters


@pytest.mark.parametrize("name", ["lenet", "lenet300", "lenet5"])
def test_our_models_agree_with_flop_counter(name):
    model = build_model(name)
    assert sum(c.macs for c in layer_costs(model)) == flop_counter_macs(model)


def test_batch_must_be_one():
    with pytest.raises(ValueError, match="batch size must be 1"):
        layer_costs(build_model("mlp"), (2, 1, 28, 28))


def test_size_and_energy():
    assert size_bytes(nn.Linear(10, 10)) == 110 * 4
    assert size_bytes(nn.Linear(10, 10), bits=8) == 110
    assert size_bytes(nn.Linear(10, 10), bits=3) == 42 == packed_bytes(110, 3)  # 41.25 rounded up
    e = energy_per_inference(params=1_000, macs=10_000, weights_in="dram")
    assert e.compute_uj == pytest.approx(10_000 * (3.7 + 0.9) / 1e6)
    assert e.weights_uj == pytest.approx(1_000 * ENERGY_PJ["dram_read_32bit"] / 1e6)
    assert e.total_uj == pytest.approx(e.compute_uj + e.weights_uj)
    with pytest.raises(ValueError, match="weights_in"):
        energy_per_inference(1, 1, "disk")


def test_median_seconds_counts_calls_and_returns_the_median(monkeypatch):
    calls = []
    ticks = iter([0.0, 1.0, 1.0, 4.0, 4.0, 6.0])  # durations 1, 3, 2 -> median 2
    monkeypatch.setattr("course_utils.timing.perf_counter", lambda: next(ticks))
    assert median_seconds(lambda: calls.append(1), repeats=3, warmup=2) == 2.0
    assert len(calls) == 5
    with pytest.raises(ValueError):
        median_seconds(lambda: None, repeats=0)


def test_inference_seconds_is_positive_and_leaves_eval_mode():
    model = build_model("lenet300")
    assert inference_seconds(model, (1, 1, 28, 28), repeats=3, warmup=1) > 0
    assert not model.training


def test_the_formulas_of_one_layer():
    assert linear_cost(784, 10) == (7850, 7840)
    assert linear_cost(784, 10, bias=False) == (7840, 7840)
    assert conv_cost(96, 256, 5, 27, 27, groups=2) == (256 * 48 * 25 + 256, 27 * 27 * 256 * 48 * 25)
    assert conv_cost(3, 8, (3, 1), 10, 4) == (8 * 9 + 8, 8 * 40 * 9)
    with pytest.raises(ValueError, match="groups=3 must divide"):
        conv_cost(4, 6, 3, 5, 5, groups=3)


def test_the_original_alexnet_matches_han_table_4():
    with torch.device("meta"):
        model = alexnet_2012()
    costs = {c.name: c for c in layer_costs(model, (1, 3, 227, 227)) if c.params}
    assert list(costs) == list(HAN_ALEXNET_TABLE4)
    assert costs["conv1"].output_shape == (96, 55, 55) and costs["conv1"].macs == 105_415_200
    for name, (weights, flops) in HAN_ALEXNET_TABLE4.items():
        layer = model.get_submodule(name)
        assert layer.weight.numel() == pytest.approx(weights, rel=0.03)  # Han rounds to 2-3 digits
        assert 2 * costs[name].macs == pytest.approx(flops, rel=0.03)  # one MAC = two FLOPs
    total = sum(c.macs for c in costs.values())
    assert total == 724_406_816 == flop_counter_macs(model, (1, 3, 227, 227))
