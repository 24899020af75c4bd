import math
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from course_utils.fixed_point import (
    MAX_FRAC_BITS,
    FixedPointMLP,
    bit_string,
    check_format,
    frac_bits_for,
    from_fixed,
    int_matmul,
    range_and_precision,
    real_range,
    round_parameters,
    round_to_fixed,
    shift_round,
    to_fixed,
)
from course_utils.models import MLP, CaffeLeNet5


def test_conversion_by_hand():
    # <8, 4>: steps of 1/16, integers -128..127, reals -8.0..7.9375
    assert real_range(8, 4) == (-8.0, 7.9375)
    x = torch.tensor([1.03125, -1.03125, 1.0, 0.03, 7.9375, -8.0, 100.0, -100.0, 8.0])
    # 1.03125 * 16 = 16.5 rounds half up to 17; -16.5 to -16; 0.48 to 0; beyond the range saturates
    assert to_fixed(x, 8, 4).tolist() == [17, -16, 16, 0, 127, -128, 127, -128, 127]
    assert from_fixed(torch.tensor([17, -16, 127, -128]), 4).tolist() == [1.0625, -1.0, 7.9375,
                                                                          -8.0]
    assert to_fixed(torch.tensor([0.75, -0.75]), 4, 1).tolist() == [2, -1]  # 1.5 -> 2, -1.5 -> -1


def test_negative_and_large_frac_bits():
    # steps of 4, up to 508
    assert to_fixed(torch.tensor([100.0, 1000.0]), 8, -2).tolist() == [25, 127]
    assert round_to_fixed(torch.tensor([0.001]), 8, 12).tolist() == [pytest.approx(4 / 4096)]


@settings(max_examples=200, deadline=None)
@given(st.integers(2, 32), st.integers(-8, 40), st.floats(0, 1))
def test_round_trip_error_is_at_most_half_a_step_inside_the_range(bits, frac_bits, u):
    lo, hi = real_range(bits, frac_bits)
    x = torch.tensor([lo + u * (hi - lo)], dtype=torch.float64)
    error = (round_to_fixed(x, bits, frac_bits) - x).abs().item()
    assert error <= 2.0**-frac_bits / 2


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 24), st.integers(-4, 20),
       st.lists(st.floats(-1e4, 1e4, width=32), min_size=1, max_size=20))
def test_float32_rounding_is_one_of_the_two_neighbours(bits, frac_bits, values):
    x = torch.tensor(values)
    s = torch.tensor(values, dtype=torch.float64) * 2.0**frac_bits
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    neighbours = torch.floor(s).clamp(lo, hi), torch.ceil(s).clamp(lo, hi)
    nearest = torch.floor(s + 0.5).clamp(lo, hi)
    assert torch.equal(to_fixed(x, bits, frac_bits).double(), nearest)
    q = to_fixed(x, bits, frac_bits, "stochastic", torch.Generator().manual_seed(0)).double()
    assert bool(((q == neighbours[0]) | (q == neighbours[1])).all())


@settings(max_examples=30, deadline=None)
@given(st.floats(-3.9, 3.9))
def test_stochastic_rounding_is_unbiased(x):
    draws = torch.full((20_000,), x)
    # steps of 1/32
    values = round_to_fixed(draws, 8, 5, "stochastic", torch.Generator().manual_seed(1))
    step = 2.0**-5
    assert set(values.unique().tolist()) <= {math.floor(x / step) * step,
                                             math.ceil(x / step) * step}
    # 5 standard errors
    assert abs(values.double().mean().item() - x) < 5 * (step / 2) / math.sqrt(len(draws))


def test_stochastic_rounding_keeps_small_updates_in_expectation():
    w = torch.zeros(100_000)
    update = 0.2 * 2.0**-4  # a fifth of a step of <16, 4>
    nearest = round_to_fixed(w + update, 16, 4)
    stochastic = round_to_fixed(w + update, 16, 4, "stochastic", torch.Generator().manual_seed(0))
    assert nearest.abs().max() == 0  # the update vanishes
    assert stochastic.mean().item() == pytest.approx(update, rel=0.05)
    on_grid = torch.tensor([0.25, -1.5])
    # values on the grid never move
    assert torch.equal(round_to_fixed(on_grid, 8, 4, "stochastic"), on_grid)


def test_frac_bits_from_the_range():
    assert frac_bits_for(torch.tensor([0.3, -0.1]), 8) == 8  # ceil(log2 0.3) = -1
    assert frac_bits_for(torch.tensor([-5.0, 1.0]), 8) == 4  # ceil(log2 5) = 3
    assert frac_bits_for(torch.tensor([4.0]), 16) == 13
    assert frac_bits_for(torch.tensor([3000.0]), 4) == -9
    assert frac_bits_for(torch.zeros(3), 8) == MAX_FRAC_BITS


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 24), st.floats(1e-6, 1e6))
def test_chosen_frac_bits_cover_the_range_with_the_finest_step(bits, largest):
    frac_bits = frac_bits_for(torch.tensor([largest], dtype=torch.float64), bits)
    # fits, up to one step at a power of two
    assert real_range(bits, frac_bits)[1] >= largest - 2.0**-frac_bits
    assert real_range(bits, frac_bits + 1)[1] < largest  # one more fractional bit would overflow


def test_range_and_precision_by_hand():
    # reals -2..1.75
    overflow, error = range_and_precision(torch.tensor([0.1, 10.0, -2.0, 1.75]), 4, 2)
    assert overflow == 0.25  # 10.0 saturates
    assert error == pytest.approx(0.1 / 3)  # 0.1 -> 0.0; -2.0 and 1.75 are exact


def test_bit_strings():
    assert bit_string(17, 8) == "00010001"
    assert bit_string(-1, 8) == "11111111"
    assert bit_string(-128, 8) == "10000000"
    with pytest.raises(ValueError, match="does not fit"):
        bit_string(128, 8)


def test_shift_round_by_hand():
    acc = torch.tensor([5, -5, 7, -7, 6])
    # 2.5 -> 3, -2.5 -> -2, 3.5 -> 4, -3.5 -> -3
    assert shift_round(acc, 1).tolist() == [3, -2, 4, -3, 3]
    assert shift_round(acc, 2).tolist() == [1, -1, 2, -2, 2]  # 1.25, -1.25, 1.75, -1.75, 1.5
    assert shift_round(acc, 0).tolist() == acc.tolist()
    assert shift_round(acc, -2).tolist() == [20, -20, 28, -28, 24]


@settings(max_examples=200, deadline=None)
@given(st.integers(-(2**50), 2**50), st.integers(1, 40))
def test_shift_round_is_round_half_up(value, shift):
    # floor(value / 2^shift + 1/2) with Python integers
    expected = (2 * value + 2**shift) // 2 ** (shift + 1)
    assert shift_round(torch.tensor([value]), shift).item() == expected


# one int32 product up to 11 bits, 8-bit limbs beyond
@pytest.mark.parametrize("bits", [2, 8, 11, 12, 16])
def test_int_matmul_is_exact(bits):
    g = torch.Generator().manual_seed(bits)
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1)
    a, b = torch.randint(lo, hi, (7, 800), generator=g), torch.randint(lo, hi, (5, 800),
                                                                       generator=g)
    a[0], b[0] = lo, lo  # the extreme products
    assert np.array_equal(int_matmul(a, b, bits).numpy(), a.numpy() @ b.numpy().T)


def test_int_matmul_refuses_too_long_rows():
    with pytest.raises(ValueError, match="overflow"):
        int_matmul(torch.zeros(1, 2**15, dtype=torch.long),
                   torch.zeros(1, 2**15, dtype=torch.long), 8)


def reference_integer_mlp(model: nn.Module, frac: dict[str, int], bits: int, x: np.ndarray,
                          names: tuple[str, ...] = ("fc1", "fc2", "fc3")) -> np.ndarray:
    """The integer pipeline written directly with NumPy int64 and floor division, over the Linear
    layers ``names``."""
    lo, hi = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1

    def fixed(v: np.ndarray, f: int, word: int) -> np.ndarray:  # round half up, saturate
        return np.clip(np.floor(v.astype(np.float64) * 2.0**f + 0.5), -(2 ** (word - 1)),
                       2 ** (word - 1) - 1).astype(np.int64)

    q, f_in = fixed(x.reshape(len(x), -1), frac["input"], bits), frac["input"]
    for name in names:
        layer = model.get_submodule(name)
        f_w, f_out = frac[f"{name}.weight"], frac[f"{name}.out"]
        w = fixed(layer.weight.detach().numpy(), f_w, bits)
        b = fixed(layer.bias.detach().numpy(), f_in + f_w, 2 * bits)
        acc = q @ w.T + b
        if name != names[-1]:
            acc = np.maximum(acc, 0)
        shift = f_in + f_w - f_out
        acc = (acc + 2 ** (shift - 1)) // 2**shift if shift > 0 else acc * 2**-shift
        q, f_in = np.clip(acc, lo, hi), f_out
    return q


@pytest.mark.parametrize("bits", [3, 4, 8, 12, 16])
@pytest.mark.parametrize("dynamic", [True, False])
def test_integer_inference_equals_the_reference(bits, dynamic):
    torch.manual_seed(bits)
    model = MLP((20, 12)).eval()
    # some inputs beyond the range
    calibration, x = torch.randn(64, 1, 28, 28), torch.randn(32, 1, 28, 28) * 1.2
    fixed = FixedPointMLP(model, bits, calibration, dynamic=dynamic)
    q = fixed(x)
    assert q.dtype == torch.int64 and q.shape == (32, 10)
    assert np.array_equal(q.numpy(), reference_integer_mlp(model, fixed.frac, bits, x.numpy()))


def test_integer_inference_takes_its_layers_from_the_float_model():
    """A nested MLP runs its own layers in its own order; a network that is not flatten, then
    Linear layers with ReLU between, is refused with the steps it runs."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Sequential(nn.Linear(784, 16), nn.ReLU()),
                          nn.Linear(16, 12), nn.ReLU(), nn.Linear(12, 10)).eval()
    calibration, x = torch.randn(64, 1, 28, 28), torch.randn(16, 1, 28, 28)
    fixed = FixedPointMLP(model, 8, calibration)
    assert fixed.names == ["1.0", "2", "4"]
    assert np.array_equal(fixed(x).numpy(),
                          reference_integer_mlp(model, fixed.frac, 8, x.numpy(), ("1.0", "2", "4")))
    for not_an_mlp in [CaffeLeNet5(), nn.Sequential(nn.Flatten(), nn.Linear(784, 10), nn.ReLU())]:
        with pytest.raises(ValueError, match="not flatten, then Linear layers"):
            FixedPointMLP(not_an_mlp, 8, calibration)


def test_formats_are_chosen_per_tensor_or_shared():
    torch.manual_seed(0)
    model, calibration = MLP((20, 12)).eval(), torch.randn(64, 1, 28, 28)
    dynamic, shared = FixedPointMLP(model, 8, calibration), FixedPointMLP(model, 8, calibration,
                                                                          dynamic=False)
    assert dynamic.frac["fc1.weight"] == frac_bits_for(model.fc1.weight, 8)
    assert dynamic.frac["input"] == frac_bits_for(calibration, 8)
    assert len(set(shared.frac.values())) == 1
    assert shared.frac["input"] == min(dynamic.frac.values())  # set by the largest range


def test_sixteen_bit_inference_follows_the_float_model():
    torch.manual_seed(0)
    model = MLP((30, 20)).eval()
    calibration = torch.randn(128, 1, 28, 28)
    fixed = FixedPointMLP(model, 16, calibration)
    with torch.no_grad():
        expected = model(calibration)
    actual = from_fixed(fixed(calibration), fixed.frac["fc3.out"])
    assert (actual - expected).abs().max() < 0.01 * expected.abs().max()


def test_a_saturated_bias_is_counted_and_warned_about():
    torch.manual_seed(0)
    model, calibration = MLP((20, 12)).eval(), torch.randn(64, 1, 28, 28)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning when every bias fits
        quiet = FixedPointMLP(model, 4, calibration)
    assert quiet.saturated_biases == {"fc1": 0, "fc2": 0, "fc3": 0}
    frac_b = quiet.frac["input"] + quiet.frac["fc1.weight"]
    largest = (2**7 - 1) * 2.0**-frac_b  # the largest bias an 8-bit accumulator word holds
    with torch.no_grad():
        model.fc1.bias[:3] = torch.tensor([largest, 2 * largest, -3 * largest])
    with pytest.warns(UserWarning, match="biases saturated in their 8-bit words"):
        loud = FixedPointMLP(model, 4, calibration)
    assert loud.saturated_biases == {"fc1": 2, "fc2": 0, "fc3": 0}
    assert loud.int_biases["fc1"][:3].tolist() == [127, 127, -128]


def test_round_parameters_puts_every_parameter_on_the_grid():
    torch.manual_seed(0)
    model = MLP((10, 8))
    round_parameters(model, 16, 10, "stochastic", torch.Generator().manual_seed(0))
    for p in model.parameters():
        steps = p.detach().double() * 2**10
        assert torch.equal(steps, steps.round())


@pytest.mark.parametrize("bits", [1, 33, 0, 2.5, True, "8"])
def test_bad_bits_are_refused(bits):
    with pytest.raises(ValueError, match="bits must be an integer in 2..32"):
        to_fixed(torch.ones(2), bits, 4)


@pytest.mark.parametrize("frac_bits", [65, -33, 1.5, None])
def test_bad_frac_bits_are_refused(frac_bits):
    with pytest.raises(ValueError, match="frac_bits must be an integer"):
        check_format(8, frac_bits)


def test_other_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="rounding"):
        to_fixed(torch.ones(2), 8, 4, rounding="up")
    with pytest.raises(ValueError, match="bits must be an integer in 2..16"):
        FixedPointMLP(MLP((10, 8)), 17, torch.randn(4, 1, 28, 28))
