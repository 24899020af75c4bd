import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from course_utils.gap import GapNet
from course_utils.int8 import Int8Model, activation_qparams, int8_kernels_available
from course_utils.models import MLP, CaffeLeNet5, LeNet
from course_utils.quantization import (
    BinaryConnectMLP,
    BinaryLinear,
    binarize,
    binary_matmul,
    binary_regulariser,
    clip_weights,
    dequantize,
    fake_quantize,
    pack_signs,
    quantize,
    recalibrate_batchnorm,
    slide_regulariser,
    uniform_qparams,
)
from course_utils.storage import FP32_BITS, packed_bytes


def test_uniform_qparams_by_hand():
    # 4 levels over [-1, 3]
    scale, zero_point = uniform_qparams(torch.tensor(-1.0), torch.tensor(3.0), bits=2)
    assert scale.item() == pytest.approx(4 / 3)
    assert zero_point.item() == 1  # round(1 / (4/3)) = round(0.75)
    q = quantize(torch.tensor([-1.0, 0.0, 0.6, 3.0, 9.0]), scale, zero_point, bits=2)
    assert q.tolist() == [0, 1, 1, 3, 3]  # 9.0 saturates at the top level


def test_range_is_widened_to_hold_zero_exactly():
    scale, zero_point = uniform_qparams(torch.tensor(2.0), torch.tensor(6.0), bits=8)
    assert zero_point.item() == 0
    assert dequantize(quantize(torch.tensor(0.0), scale, zero_point, 8), scale,
                      zero_point).item() == 0.0


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(-100, 100, allow_nan=False, width=32), min_size=2, max_size=50),
       st.integers(2, 16))
def test_round_trip_error_is_at_most_half_a_step(values, bits):
    x = torch.tensor(values)
    scale, zero_point = uniform_qparams(x.min(), x.max(), bits)
    error = (dequantize(quantize(x, scale, zero_point, bits), scale, zero_point) - x).abs()
    assert error.max().item() <= scale.item() / 2 * (1 + 1e-4) + 1e-6


@pytest.mark.parametrize("bits", [0, 17, -1, 2.5])
def test_bits_outside_1_to_16_are_refused(bits):
    with pytest.raises(ValueError, match="bits"):
        fake_quantize(torch.ones(3), bits)


def test_per_channel_is_never_worse_than_per_tensor():
    torch.manual_seed(0)
    w = torch.randn(8, 20) * torch.logspace(-2, 0, 8)[:, None]  # rows of very different ranges
    err_tensor = (fake_quantize(w, 4) - w).abs().mean()
    err_channel = (fake_quantize(w, 4, per_channel=True) - w).abs().mean()
    assert err_channel < err_tensor / 2


def test_binarize_by_hand():
    w = torch.tensor([0.5, -1.5, 0.0, -0.2])
    assert binarize(w).tolist() == [1.0, -1.0, 1.0, -1.0]
    assert binarize(w, scaled=True).tolist() == pytest.approx([0.55, -0.55, 0.55, -0.55])


def test_regularisers_vanish_where_they_should():
    assert slide_regulariser(torch.tensor([-1.0, 0.0, 1.0])).item() == 0.0
    assert slide_regulariser(torch.tensor([0.5])).item() == pytest.approx(0.1875)
    assert binary_regulariser(torch.tensor([-1.0, 1.0])).item() == 0.0
    assert binary_regulariser(torch.tensor([0.0])).item() == 1.0


@pytest.mark.parametrize(("regulariser", "values", "slopes"), [
    # u^2 (1 - u^2) and its derivative 2u - 4u^3: falls beyond |u| = 1/sqrt(2), without bound
    ("slide", [0.0, 0.1875, 0.0, -12.0], [0.0, 0.5, -2.0, -28.0]),
    # (1 - u^2)^2 and its derivative -4u (1 - u^2): slopes towards 1 from both sides
    ("binary", [1.0, 0.5625, 0.0, 9.0], [0.0, -1.5, 0.0, 24.0]),
])
def test_regulariser_values_and_gradients_at_0_half_1_and_2(regulariser, values, slopes):
    fn = {"slide": slide_regulariser, "binary": binary_regulariser}[regulariser]
    u = torch.tensor([0.0, 0.5, 1.0, 2.0], requires_grad=True)
    got = [fn(u[i : i + 1]).item() for i in range(4)]
    fn(u).backward()  # a sum over the weights: each weight's gradient is its own term's slope
    assert got == pytest.approx(values)
    assert u.grad.tolist() == pytest.approx(slopes)


def test_binary_linear_uses_signs_forward_and_passes_gradients_straight_through():
    layer = BinaryLinear(3, 1, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.tensor([[0.2, -0.7, 2.0]]))
    x = torch.tensor([[1.0, 2.0, 3.0]])
    y = layer(x)
    assert y.item() == 1 - 2 + 3
    y.backward()
    assert layer.weight.grad.tolist() == [[1.0, 2.0, 3.0]]
    clip_weights(layer)
    assert layer.weight.tolist() == [[pytest.approx(0.2), pytest.approx(-0.7), 1.0]]


@pytest.mark.parametrize("k", [1, 7, 64, 65, 200])
def test_packed_binary_product_equals_float_product(k):
    torch.manual_seed(k)
    a = binarize(torch.randn(5, k))
    b = binarize(torch.randn(4, k))
    pa, pb = pack_signs(a), pack_signs(b)
    assert pa.dtype == np.uint64 and pa.shape == (5, (k + 63) // 64)
    assert (binary_matmul(pa, pb, k) == (a @ b.T).numpy()).all()


def test_pack_signs_bits_by_hand():
    packed = pack_signs(torch.tensor([[1.0, -1.0, -1.0, 1.0, 1.0, 1.0, 1.0, -1.0]]))
    assert packed.view(np.uint8)[0, 0] == 0b10011110


needs_int8 = pytest.mark.skipif(not int8_kernels_available(),
                                reason="this torch has no quantized CPU kernels")


@needs_int8
@pytest.mark.parametrize("make_model", [
    lambda: MLP((30, 20)), CaffeLeNet5, LeNet,
    # nested, a layer without bias, a ReLU after the pooling: the model's own steps
    lambda: nn.Sequential(nn.Conv2d(1, 4, 3), nn.MaxPool2d(2), nn.ReLU(), nn.Flatten(),
                          nn.Sequential(nn.Linear(4 * 13 * 13, 10, bias=False))),
])
def test_int8_models_follow_their_float_model(make_model):
    # before building the model: its random weights must not depend on test order
    torch.manual_seed(0)
    model = make_model().eval()
    x = torch.randn(64, 1, 28, 28)
    q = Int8Model(model, x)
    with torch.no_grad():
        expected, actual = model(x), q(x)
    assert actual.shape == expected.shape
    span = expected.max() - expected.min()
    assert (actual - expected).abs().max() < 0.1 * span  # a few uint8 steps of the logits' range
    assert (actual.argmax(1) == expected.argmax(1)).float().mean() > 0.9


@needs_int8
def test_int8_storage_is_about_a_quarter():
    model = MLP((300, 100))
    q = Int8Model(model, torch.randn(8, 1, 28, 28))
    assert q.int_weights["fc1"].int_repr().dtype == torch.int8
    fp32_bytes = packed_bytes(sum(p.numel() for p in model.parameters()), FP32_BITS)
    assert 3.8 < fp32_bytes / q.stored_bytes() < 4.0


@needs_int8
def test_int8_preparation_leaves_the_float_model_where_and_as_it_was(other_device):
    """int8 runs on the CPU; preparing it must neither move the float model (on a GPU when there is
    one; the meta device has no values to copy, so the CPU stands in) nor switch it to eval mode."""
    device = other_device if other_device.type == "cuda" else torch.device("cpu")
    torch.manual_seed(0)
    model = MLP((30, 20))
    x = torch.randn(8, 1, 28, 28)  # fresh, on the CPU
    expected = Int8Model(model, x)(x)
    model.to(device).train()
    actual = Int8Model(model, x)(x)
    assert model.training
    assert {p.device for p in model.parameters()} == {device}
    assert torch.equal(actual, expected)


@needs_int8
def test_int8_fuses_each_layer_with_its_relu_and_calibrates_after_it():
    """LeNet-5's ReLU after each pooling runs in the convolution's kernel, and each layer's output
    scale covers exactly the range of its (ReLU'd) output on the calibration inputs."""
    torch.manual_seed(0)
    model = CaffeLeNet5().eval()
    x = torch.randn(16, 1, 28, 28)
    q = Int8Model(model, x)
    assert q.steps == ["conv1", "relu", "maxpool", "conv2", "relu", "maxpool", "flatten", "fc1",
                       "relu", "fc2"]
    assert [i for i in range(len(q.steps)) if q.fused_relu(i)] == [0, 3, 7]
    with torch.no_grad():
        fc1_out = model.fc1(model.features(x).flatten(1)).relu()
    assert q.qparams["fc1"] == activation_qparams(fc1_out)
    assert q.qparams["fc1"][1] == 0  # a ReLU output starts at 0: zero point 0
    assert list(q.qparams) == ["input", "conv1", "conv2", "fc1", "fc2"]


@needs_int8
def test_int8_refuses_a_model_that_is_not_a_chain_of_its_steps():
    with pytest.raises(ValueError, match="amin"):
        Int8Model(GapNet(), torch.randn(4, 1, 28, 28))


def test_binarize_per_filter_scales_each_output_row():
    w = torch.tensor([[0.5, -1.5], [0.1, -0.3]])
    torch.testing.assert_close(binarize(w, scaled=True, per_filter=True),
                               torch.tensor([[1.0, -1.0], [0.2, -0.2]]))
    conv = torch.randn(4, 2, 3, 3)
    alphas = conv.abs().mean(dim=(1, 2, 3))  # (4,)
    scaled = binarize(conv, scaled=True, per_filter=True)  # (4, 2, 3, 3)
    torch.testing.assert_close(scaled.abs().amax(dim=(1, 2, 3)), alphas)
    with pytest.raises(ValueError, match="needs scaled=True"):
        binarize(w, per_filter=True)


def test_recalibrated_batchnorm_statistics_follow_the_new_weights():
    torch.manual_seed(0)
    model = BinaryConnectMLP(hidden=16, binary=False)
    data = [(torch.randn(32, 1, 28, 28) + 2, None) for _ in range(4)]
    recalibrate_batchnorm(model, data, batches=4)
    first_norm = model[2]
    with torch.no_grad():
        outputs = torch.cat([model[1](model[0](x)) for x, _ in data])  # (128, 16) before the norm
    torch.testing.assert_close(first_norm.running_mean, outputs.mean(dim=0), atol=1e-5, rtol=1e-4)
    assert not model.training and first_norm.momentum == 0.1
