"""course_utils.widgets: the interactive explorers of the notebooks."""

import matplotlib.pyplot as plt
import pytest

from course_utils.widgets import class_probabilities, digit_explorer
from course_utils.zoo import build_model


def test_class_probabilities_sum_to_one(mnist):
    probs = class_probabilities(build_model("mlp"), mnist.test[0][0])
    assert probs.shape == (10,)
    assert probs.sum().item() == pytest.approx(1.0)


def test_digit_explorer_offers_every_test_digit(mnist):
    explorer = digit_explorer(build_model("mlp"), mnist.test)
    slider = explorer.children[0]
    assert (slider.min, slider.max) == (0, 9_999)
    plt.close("all")
