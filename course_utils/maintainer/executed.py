"""A pytest plugin for nbval: keep each notebook as it ran, outputs included.

    pytest -p course_utils.maintainer.executed --executed-dir build/executed/instructor \\
        --nbval-lax ... build/instructor/

``make notebooks`` runs the instructor notebooks so, and ``make grading`` then grades the reference
solutions from those outputs instead of running every notebook a second time. A cell that nbval
did not run (skipped, or after the kernel died) is written without outputs and without an
execution count, so grading can tell it from a cell that ran and printed nothing.
"""

from __future__ import annotations

import copy
from pathlib import Path

import nbformat
import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--executed-dir", type=Path, default=None,
                     help="write each notebook nbval ran here, with the outputs of this run")


def pytest_configure(config: pytest.Config) -> None:
    folder = config.getoption("executed_dir")
    if folder is not None:
        config.pluginmanager.register(Recorder(folder), "executed-notebooks")


class Recorder:
    """Collects the outputs of every nbval cell item; writes one notebook per file at the end."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.notebooks: dict[Path, nbformat.NotebookNode] = {}
        self.outputs: dict[Path, dict[int, list]] = {}

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_call(self, item: pytest.Item):
        yield
        outputs = getattr(item, "test_outputs", None)
        if outputs is None or not hasattr(item, "cell_num"):
            return  # not an nbval cell, or one that never reached the kernel
        path = Path(str(item.parent.fspath))
        self.notebooks.setdefault(path, item.parent.nb)
        self.outputs.setdefault(path, {})[item.cell_num] = list(outputs)

    def pytest_sessionfinish(self) -> None:
        for path, nb in self.notebooks.items():
            ran = copy.deepcopy(nb)
            code = [cell for cell in ran.cells if cell.cell_type == "code"]
            for number, cell in enumerate(code):
                outputs = self.outputs[path].get(number)
                cell.outputs = [nbformat.from_dict(dict(o)) for o in outputs or []]
                cell.execution_count = number + 1 if outputs is not None else None
                for output in cell.outputs:
                    if output.output_type == "execute_result":
                        output.execution_count = cell.execution_count
            self.folder.mkdir(parents=True, exist_ok=True)
            nbformat.write(ran, self.folder / path.name)
