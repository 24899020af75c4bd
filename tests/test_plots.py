"""course_utils.plots: one panel per item."""

import matplotlib.pyplot as plt
import torch

from course_utils.plots import plot_confusion, plot_losses, plot_weight_histograms, show_digits
from course_utils.zoo import build_model


def test_plots_have_one_panel_per_item():
    assert len(show_digits(torch.zeros(12, 28, 28, dtype=torch.uint8), labels=list(range(12)),
                           ncols=5).axes) == 15
    assert len(plot_weight_histograms(build_model("lenet300")).axes) == 3
    assert len(plot_losses([2.0, 1.0, 0.5, 0.4], steps_per_epoch=2, val_acc=[0.5, 0.7]).axes) == 2
    assert len(plot_confusion(torch.eye(10, dtype=torch.long)).axes) == 1
    plt.close("all")
