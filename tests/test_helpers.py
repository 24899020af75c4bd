import json

import matplotlib.pyplot as plt
import pytest
import torch

from course_utils.bench import FIGURES_ENV, record
from course_utils.exercises import check
from course_utils.plots import plot_confusion, plot_losses, plot_weight_histograms, show_digits
from course_utils.widgets import class_probabilities, digit_explorer
from course_utils.zoo import build_model


def test_record_is_silent_without_the_benchmark(monkeypatch, tmp_path):
    monkeypatch.delenv(FIGURES_ENV, raising=False)
    record("x.acc", 0.5)
    assert list(tmp_path.iterdir()) == []


def test_record_appends_figures_for_the_benchmark(monkeypatch, tmp_path):
    target = tmp_path / "figures.jsonl"
    monkeypatch.setenv(FIGURES_ENV, str(target))
    record("a.acc", 0.25)
    record("b.seconds", torch.tensor(3.0))
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    assert lines == [{"name": "a.acc", "value": 0.25}, {"name": "b.seconds", "value": 3.0}]


def test_check_reports_pass_fail_not_attempted_and_errors(capsys):
    def stub():
        raise NotImplementedError

    check("passes", lambda: 1 + 1 == 2)
    check("fails", lambda: 1 + 1 == 3)
    check("stub", stub)
    check("broken", lambda: 1 / 0)
    captured = capsys.readouterr()
    assert captured.out == "✓ passes\n"  # passes on standard output, the rest on standard error
    err = captured.err.splitlines()
    assert err[0].startswith("✗ fails")
    assert "not attempted" in err[1] and "ZeroDivisionError" in err[2]


def test_plots_have_one_panel_per_item():
    assert len(show_digits(torch.zeros(12, 28, 28, dtype=torch.uint8), labels=list(range(12)), ncols=5).axes) == 15
    assert len(plot_weight_histograms(build_model("lenet300")).axes) == 3
    assert len(plot_losses([2.0, 1.0, 0.5, 0.4], steps_per_epoch=2, val_acc=[0.5, 0.7]).axes) == 2
    assert len(plot_confusion(torch.eye(10, dtype=torch.long)).axes) == 1
    plt.close("all")


def test_class_probabilities_sum_to_one(mnist):
    probs = class_probabilities(build_model("mlp"), mnist.test[0][0])
    assert probs.shape == (10,)
    assert probs.sum().item() == pytest.approx(1.0)


def test_digit_explorer_offers_every_test_digit(mnist):
    explorer = digit_explorer(build_model("mlp"), mnist.test)
    slider = explorer.children[0]
    assert (slider.min, slider.max) == (0, 9_999)
    plt.close("all")


def test_markdown_table_aligns_numbers_and_separates_thousands(capsys):
    from course_utils.display import markdown_table, show_table

    text = markdown_table(["model", "parameters"], [("lenet", 61_706), ("mlp", 104_690)])
    assert text.splitlines() == ["| model | parameters |", "| --- | ---: |", "| lenet | 61,706 |", "| mlp | 104,690 |"]
    show_table(["a"], [(1,)])
    assert capsys.readouterr().out.startswith("| a |")
