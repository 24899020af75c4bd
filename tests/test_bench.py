"""course_utils.bench: the figures a notebook records for ``make bench``."""

import json

import torch

from course_utils.bench import FIGURES_ENV, record


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
