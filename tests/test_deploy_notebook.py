"""Notebook 14 (deployment in C): the figures it records, its exercise, and what its stored run
shows."""

import re

import nbformat
import pytest

from course_utils.paths import PROJECT_ROOT

SOURCE = PROJECT_ROOT / "source" / "14_deploy_in_c.ipynb"
STORED = PROJECT_ROOT / "notebooks" / "14_deploy_in_c.ipynb"
FIGURES = ["c.lenet5.agreement", "c.lenet300.agreement", "c.max_logit_diff", "c.fixed.bit_exact",
           "c.binary_bytes", "c.lenet300.speedup_b1", "ort_int8.lenet5.acc_drop",
           "ort_int8.lenet5.size_ratio", "ort_int8.lenet5.speedup_b256"]


@pytest.fixture(scope="module")
def source() -> nbformat.NotebookNode:
    return nbformat.read(SOURCE, as_version=4)


def test_records_every_figure_of_the_issue(source):
    text = "\n".join(c.source for c in source.cells if c.cell_type == "code")
    recorded = set(re.findall(r'record\(f?"([\w.{}]+)"', text))
    recorded = {r.replace("{arch}", a) for r in recorded for a in ("lenet5", "lenet300")}
    assert set(FIGURES) <= recorded, set(FIGURES) - recorded


def test_lines_are_short(source):
    long = [line for c in source.cells for line in c.source.splitlines() if len(line) > 100]
    assert not long, long


def test_the_exercise_is_worth_two_points_with_a_hidden_strict_test(source):
    graded = [c for c in source.cells if c.metadata.get("nbgrader", {}).get("grade")]
    assert [c.metadata.nbgrader["points"] for c in graded] == [2]
    assert "check_max_pool_c(max_pool_c, seed=1, strict=True)" in graded[0].source
    setup = [c for c in source.cells if "setup" in c.metadata.get("tags", [])]
    # all the exercise needs, in the grading view
    assert setup and "check_max_pool_c" in setup[0].source


def test_the_stored_run_shows_agreement_bit_exactness_and_the_cpu():
    outputs = "\n".join(output.get("text", "")
                        + str(output.get("data", {}).get("text/markdown", ""))
                        for cell in nbformat.read(STORED, as_version=4).cells
                        if cell.cell_type == "code"
                        for output in cell.outputs)
    assert (re.search(r"\| lenet5 \| 10,000 \| 1\.0000 \|", outputs)
            and re.search(r"\| lenet300 \| 10,000 \| 1\.0000 \|", outputs))
    assert "10,000 of 10,000; bit-exact: True" in outputs
    assert "targets (>= 3.5x smaller, <= 0.1 points lost): met" in outputs
    assert re.search(r"CPU: AVX2 (yes|no), AVX-512 (yes|no)", outputs)
