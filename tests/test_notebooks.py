"""Every committed notebook is in the stored form the README promises, and has the course's
shape."""

import re

import nbformat
import pytest

from course_utils.paths import PROJECT_ROOT

NOTEBOOKS = sorted((PROJECT_ROOT / "notebooks").glob("*.ipynb"))
README = (PROJECT_ROOT / "README.md").read_text()


def code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_there_are_notebooks():
    assert len(NOTEBOOKS) >= 5


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_stored_with_the_outputs_of_one_full_run(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    cells = code_cells(nb)
    assert [c.execution_count for c in cells] == list(range(1, len(cells) + 1)), \
        f"{path.name}: not stored from one top-to-bottom run; refresh it with `make execute`"
    assert not [o for c in cells for o in c.outputs
                if o.output_type == "error"], f"{path.name} stores an error"
    unfinished = [i for i, c in enumerate(cells) for o in c.outputs
                  if re.search(r"(?<!\d)0%\|", str(o.get("data", {}).get("text/plain", "")))]
    assert not unfinished, f"{path.name}: code cells {unfinished} store a progress bar at 0%; " \
        "`make execute` stores the finished state"
    for cell in cells:
        if "nbval-check-output" in cell.metadata.get("tags", []):
            assert cell.outputs, f"{path.name}: a checked cell has no stored output"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_shape_of_a_lesson(path):
    nb = nbformat.read(path, as_version=4)
    title = nb.cells[0]
    assert title.cell_type == "markdown" and re.match(rf"# {path.stem[:2]} · ", title.source)
    assert "you will" in title.source, f"{path.name}: learning goals first"
    graded = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
    assert graded, f"{path.name}: exercises with graded self-checks"
    assert all("check" in c.source for c in graded), f"{path.name}: every graded cell self-checks"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_readme_maps_the_notebook_with_a_binder_link(path):
    assert f"(notebooks/{path.name})" in README
    assert f"urlpath=lab/tree/notebooks/{path.name})" in README
