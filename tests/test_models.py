import pytest
import torch

from course_utils.models import count_parameters
from course_utils.zoo import MODELS, build_model

# Weights and biases, counted layer by layer by hand.
EXPECTED_PARAMETERS = {
    "linear": 784 * 10 + 10,
    "mlp": (784 * 120 + 120) + (120 * 80 + 80) + (80 * 10 + 10),
    "lenet":
        (6 * 25 + 6) + (16 * 6 * 25 + 16) + (400 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10),
    "lenet300": 266_610,  # Han et al. 2015, Table 1: 267K
    "lenet5": 431_080,  # Han et al. 2015, Table 1: 431K
    # 3x3 convs, BN, 1x1 classifier
    "gap": 9 * (1 * 16 + 16 * 32 + 32 * 48 + 48 * 64) + 2 * (16 + 32 + 48 + 64) + 64 * 10,
    # binary weights, BN scale and shift
    "binaryconnect": (784 * 1024 + 1024 * 1024 + 1024 * 10) + 2 * (1024 + 1024 + 10),
}


@pytest.mark.parametrize("name", sorted(MODELS))
def test_output_shape(name):
    model = build_model(name)
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_parameter_counts(name):
    assert count_parameters(build_model(name)) == EXPECTED_PARAMETERS[name]


def test_lenet_feature_shape_is_the_lectures_after_padding():
    assert build_model("lenet").features(torch.zeros(1, 1, 28, 28)).shape == (1, 16, 5, 5)
    assert build_model("lenet5").features(torch.zeros(1, 1, 28, 28)).shape == (1, 50, 4, 4)


def test_lenet_rejects_a_wrong_input_shape():
    with pytest.raises(RuntimeError):
        build_model("lenet")(torch.zeros(1, 3, 32, 32))


def test_unknown_model_name():
    with pytest.raises(ValueError, match="unknown model 'resnet'.*lenet"):
        build_model("resnet")
