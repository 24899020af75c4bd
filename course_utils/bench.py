"""Benchmark figures: notebooks record them, ``make bench`` collects them.

A notebook calls ``record("lenet.test_acc", acc)``; that does nothing unless the
benchmark runner set ``COURSE_BENCH_FIGURES`` to a file, where it appends one JSON line.
"""

from __future__ import annotations

import json
import os

FIGURES_ENV = "COURSE_BENCH_FIGURES"


def record(name: str, value: float) -> None:
    """Hand a measured figure to ``make bench`` (a no-op in ordinary runs)."""
    path = os.environ.get(FIGURES_ENV)
    if path:
        with open(path, "a") as f:
            f.write(json.dumps({"name": name, "value": float(value)}) + "\n")
