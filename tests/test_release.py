"""One source per notebook: the student notebooks are nbgrader's output from source/, and the
instructor build puts the reference solutions and hidden tests back."""

import nbformat
import pytest

from course_utils.maintainer.release import (
    NOTEBOOKS_DIR,
    SOURCE_DIR,
    STUB,
    grade_id,
    instructor_notebook,
    keep_stored_outputs,
    same_code,
    student_notebooks,
)

SOURCES = sorted(SOURCE_DIR.glob("*.ipynb"))


def test_every_notebook_has_a_source_and_every_source_a_notebook():
    assert [p.name for p in SOURCES] == sorted(p.name for p in NOTEBOOKS_DIR.glob("*.ipynb"))


def shape(nb):
    """What the generator decides: cell kinds, sources and nbgrader metadata, not the outputs."""
    return [(c.cell_type, c.source, c.metadata.get("nbgrader"), c.metadata.get("tags"))
            for c in nb.cells]


def test_the_student_notebooks_are_what_the_generator_produces(tmp_path):
    written = student_notebooks(SOURCES, tmp_path)
    for path in written:
        generated = nbformat.read(path, as_version=4)
        stored = nbformat.read(NOTEBOOKS_DIR / path.name, as_version=4)
        assert shape(generated) == shape(stored), \
            f"{path.name} differs from source/: run `make execute`"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_sources_hold_solutions_and_graded_checks_with_points(source):
    nb = nbformat.read(source, as_version=4)
    solutions = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")]
    graded = [c for c in nb.cells if c.metadata.get("nbgrader", {}).get("grade")]
    assert solutions and graded, "every lesson has exercises"
    assert all("### BEGIN SOLUTION" in c.source for c in solutions)
    assert all(c.metadata["nbgrader"]["points"] > 0 for c in graded)
    for cell in graded:  # each graded check shows its points to the student
        points = cell.metadata["nbgrader"]["points"]
        assert cell.source.startswith(f"# Self-check · {points} point"), cell.source[:60]
    assert len({grade_id(c) for c in solutions + graded}) == len(solutions + graded)


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_student_version_has_stubs_and_no_solution_or_hidden_test(source):
    student = nbformat.read(NOTEBOOKS_DIR / source.name, as_version=4)
    text = "\n".join(c.source for c in student.cells)
    assert "BEGIN SOLUTION" not in text and "HIDDEN TESTS" not in text
    stubs = [c for c in student.cells if c.metadata.get("nbgrader", {}).get("solution")]
    assert stubs and all(STUB in c.source for c in stubs)


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_instructor_build_takes_every_nbgrader_cell_from_the_source(source):
    student = NOTEBOOKS_DIR / source.name
    built = instructor_notebook(student, source)
    from_source = {grade_id(c): c.source for c in nbformat.read(source, as_version=4).cells
                   if grade_id(c)}
    built_cells = {grade_id(c): c.source for c in built.cells if grade_id(c)}
    assert built_cells == from_source
    assert not any(STUB in s for s in built_cells.values())


def test_outputs_survive_a_change_of_comments_or_layout_only():
    old = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("x = 1  # one"), nbformat.v4.new_code_cell("y = 2"),
        nbformat.v4.new_code_cell('%time f(a, "bc")'), nbformat.v4.new_code_cell("g(1, 2)")])
    for i, cell in enumerate(old.cells):
        cell.outputs, cell.execution_count = [nbformat.v4.new_output("stream", text="out")], i + 1
    new = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("# a comment\nx = 1  # one"), nbformat.v4.new_code_cell("y = 3"),
        nbformat.v4.new_code_cell('%time f(a, "bc")'),
        nbformat.v4.new_code_cell("g(1,\n  2)  # wrapped")])
    keep_stored_outputs(new, old)
    assert [c.execution_count for c in new.cells] == [1, None, 3, 4]
    assert [bool(c.outputs) for c in new.cells] == [True, False, True, True]
    assert same_code('print("a" "b")', 'print(\n    "ab"\n)')
    assert not same_code("f(a, b)", "f(b, a)") and not same_code("%time f()", "%timeit f()")
    assert same_code("def f(:\n  # x\n  pass", "def f(:\n  pass")  # no Python: by its lines


def test_the_stored_widget_state_goes_with_the_outputs():
    state = {"application/vnd.jupyter.widget-state+json": {"state": {"a1": {}}, "version_major": 2}}
    old = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("bar()")],
                                   metadata={"widgets": state})
    new = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("bar()")],
                                   metadata={"widgets": {"stale": True}})
    keep_stored_outputs(new, old)
    assert new.metadata["widgets"] == state
    unrun = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("bar()")])
    new = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("bar()")],
                                   metadata={"widgets": {"stale": True}})
    keep_stored_outputs(new, unrun)
    assert "widgets" not in new.metadata  # no stale state from source/ without a stored run
