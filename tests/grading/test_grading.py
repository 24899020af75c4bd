"""``make grading``: nbgrader grades the course's notebooks as README promises.

For every notebook in ``source/``: ``reference`` (the reference solutions) must get full points
and ``blank`` (the notebooks as released) none. Their runs are the ones ``make notebooks`` and the
browser test made (``make test`` runs this last), graded from their outputs in one nbgrader run
that executes nothing; ``problems`` hands in files that are no notebooks. A second run, in which
nbgrader executes the notebooks as ``make grade`` does, proves that ``broken`` (the first solution
cell raising) loses exactly that exercise, and a third, short one the per-cell timeout.
The first tests are fast unit tests of the CSV, the grading view, the folder scan and the runs.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import io
import json
import os
from time import perf_counter
from types import SimpleNamespace

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_raw_cell

from course_utils.maintainer import grading, release
from course_utils.paths import NOTEBOOKS_DIR, SOURCE_DIR

SOURCES = sorted(SOURCE_DIR.glob("*.ipynb"))
NAMES = [p.stem for p in SOURCES]
BROKEN = 'raise RuntimeError("broken on purpose")'
# Their grading setup trains for minutes, so the broken-exercise case (the same mechanism in every
# notebook) is proven on the others only; reference and blank still cover every notebook.
TRAINING_SETUP = {"07_neuron_pruning", "10_deep_compression", "13_compression_demo"}
BROKEN_NAMES = [name for name in NAMES if name not in TRAINING_SETUP]
LOOP_NOTEBOOK = "05_why_compress"  # the smallest setup: imports only
LOOP_TIMEOUT_S = 10  # for the exercises' cells; setup cells keep their own limit


def nbgrader_cell(source: str, grade_id: str, solution: bool, points: int = 0):
    cell = new_code_cell(source)
    cell.metadata.nbgrader = {"grade": not solution, "solution": solution, "grade_id": grade_id,
                              "locked": not solution, "schema_version": 3}
    if not solution:
        cell.metadata.nbgrader["points"] = points
    return cell


def first_solution(nb: nbformat.NotebookNode) -> int:
    return next(i for i, c in enumerate(nb.cells) if c.get("metadata", {}).get(
        "nbgrader", {}).get("solution"))


def checks_of(nb: nbformat.NotebookNode, solution: int) -> set[str]:
    """The graded cells after solution cell ``solution``, up to the next solution cell."""
    ids = set()
    for cell in nb.cells[solution + 1:]:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("solution"):
            break
        if meta.get("grade"):
            ids.add(meta["grade_id"])
    return ids


# ---- fast unit tests --------------------------------------------------------------------------

def test_the_view_keeps_markdown_exercises_and_setup_only():
    setup = new_code_cell("import torch")
    setup.metadata.tags = ["nbval-check-output", "setup"]
    nb = new_notebook(cells=[new_markdown_cell("# title"), setup, new_code_cell("train()"),
                             new_raw_cell("raw"), nbgrader_cell("def f(): ...", "f", True),
                             nbgrader_cell("check(f)", "f-check", False, 1)])
    kept, _ = grading.GradingView().preprocess(nb, {})
    assert [c.source for c in kept.cells] == ["# title", "import torch", "def f(): ...", "check(f)"]


def test_setup_cells_have_their_own_time_limit():
    setup = new_code_cell("train()")
    setup.metadata.tags = ["setup"]
    timeout = grading.CellTimeout(cell_s=60, setup_s=900)
    assert timeout(setup) == 900
    assert timeout(nbgrader_cell("def f(): ...", "f", True)) == 60
    assert timeout(new_code_cell("print(1)")) == 60


def test_csv_has_a_column_per_graded_cell_and_the_problems(tmp_path):
    rows = [grading.Row("ada", "05_x", {"a-check": 1.0, "b-check": 0.0}, 2.0),
            grading.Row("bob", "05_x", {"a-check": 0.0, "b-check": 0.0}, 2.0, "not JSON"),
            grading.Row("bob", "notes.txt", problem="not a notebook of the course")]
    out = grading.write_csv(rows, ["a-check", "b-check", "c-check"], tmp_path / "g" / "grades.csv")
    with open(out, newline="") as f:
        got = list(csv.DictReader(f))
    assert list(got[0]) == ["student", "notebook", "a-check", "b-check", "c-check", "total", "max",
                            "problem"]
    assert got[0] == {"student": "ada", "notebook": "05_x", "a-check": "1", "b-check": "0",
                      "c-check": "", "total": "1", "max": "2", "problem": ""}
    assert (got[1]["total"], got[1]["problem"]) == ("0", "not JSON")
    assert (got[2]["total"], got[2]["max"], got[2]["a-check"]) == ("", "", "")


def test_the_folder_scan_reports_what_it_cannot_grade(tmp_path):
    nb = tmp_path / "ok.json"
    nbformat.write(new_notebook(cells=[new_code_cell("1")]), nb)
    ada, bob = tmp_path / "in" / "ada", tmp_path / "in" / "bob" / "05_x"
    ada.mkdir(parents=True), bob.mkdir(parents=True)
    (ada / "05_x.ipynb").write_text("{ not json")
    (ada / "06_y.ipynb").write_text(json.dumps({"cells": "no list"}))
    (ada / "07_z.ipynb").write_bytes(nb.read_bytes())
    (ada / "99_other.ipynb").write_bytes(nb.read_bytes())
    (ada / ".ipynb_checkpoints").mkdir()
    (ada / ".ipynb_checkpoints" / "05_x-checkpoint.ipynb").write_text("{}")
    (bob / "05_x.ipynb").write_bytes(nb.read_bytes())  # nbgrader's own layout
    (bob / "timestamp.txt").write_text("2024-01-01 00:00:00")
    (tmp_path / "in" / "stray.ipynb").write_bytes(nb.read_bytes())
    found = grading.find_submissions(tmp_path / "in", ["05_x", "06_y", "07_z"])
    got = {(s.student, s.notebook): s.problem for s in found}
    assert set(got) == {("ada", "05_x"), ("ada", "06_y"), ("ada", "07_z"),
                        ("ada", "99_other.ipynb"), ("bob", "05_x"), ("", "stray")}
    assert got[("ada", "05_x")].startswith("not JSON")
    assert got[("ada", "06_y")].startswith("JSON but not a notebook")
    assert got[("ada", "99_other.ipynb")].startswith("not a notebook of the course")
    assert got[("", "stray")] == "not in a student's folder"
    assert got[("ada", "07_z")] == got[("bob", "05_x")] == ""


def test_nbgrader_errors_are_read_from_its_log():
    log = ("[AutogradeApp | ERROR] There was an error processing assignment: "
           "/c/submitted/ada/05_x\n[AutogradeApp | ERROR] Traceback (most recent call last):\n"
           '  File "x.py", line 1, in f\nnbgrader.preprocessors.execute.UnresponsiveKernelError\n')
    assert grading.nbgrader_errors(log) == {
        ("ada", "05_x"): "nbgrader.preprocessors.execute.UnresponsiveKernelError"}


def test_the_first_error_of_a_run_that_stopped():
    log = ("[AutogradeApp | INFO] Sanitizing x\n[AutogradeApp | ERROR] One or more notebooks use "
           "an old version \nof the metadata format.\n[AutogradeApp | INFO] y\n")
    assert grading.first_error(log) == "One or more notebooks use an old version of the metadata " \
                                       "format."


def test_bench_figures_are_shares_of_the_points():
    rows = [grading.Row("reference", "a", {"x": 1.0, "y": 2.0}, 3.0),
            grading.Row("blank", "a", {"x": 0.0, "y": 1.0}, 3.0),
            grading.Row("reference", "b", {"z": 1.0}, 1.0)]
    assert grading.bench_figures(rows) == {"grade.reference_fraction": 1.0,
                                           "grade.blank_fraction": 0.25,
                                           "grade.points_total": 4.0, "grade.exercises_total": 3.0}


def test_the_grading_view_finds_each_name_an_exercise_needs_in_a_setup_cell():
    setup = new_code_cell("%matplotlib inline\nimport torch\nfrom math import pi as PI\nx = 1")
    setup.metadata.tags = ["setup"]
    lecture = new_code_cell("model = torch.nn.Linear(2, 2)\ny = 2")
    nb = new_notebook(cells=[setup, lecture, nbgrader_cell(
        "def f(a, *rest, k=0):\n    z = [i for i in rest]\n    return a + x + y + z[0] + k + PI",
        "f", True), nbgrader_cell("check(f, model)\nprint(len(In))", "f-check", False, 1)])
    assert grading.view_undefined_names(nb) == [(2, "y"), (3, "check"), (3, "model")]
    nb.cells[1].metadata.tags = ["setup"]
    assert grading.view_undefined_names(nb) == [(3, "check")]


@pytest.mark.parametrize("source", SOURCES, ids=NAMES)
def test_every_exercise_runs_in_the_grading_view(source):
    """What ``make grade`` runs of each notebook (the view) defines every name its exercises and
    checks use: otherwise a right answer would lose its points to a NameError. (The runs below
    prove it for the notebooks whose grading setup does not train; this covers them all.)"""
    nb = nbformat.read(source, as_version=4)
    assert grading.view_undefined_names(nb) == []
    untagged = copy.deepcopy(nb)
    first = first_solution(untagged)
    setups = [i for i in range(first) if grading.is_setup(untagged.cells[i])]
    for i in setups:  # without its setup cells, the view misses names: the test can fail
        untagged.cells[i].metadata.tags.remove(grading.SETUP_TAG)
    assert grading.view_undefined_names(untagged)


def test_a_run_is_handed_in_only_whole_and_of_the_notebook_as_it_is(tmp_path):
    expected = new_notebook(cells=[new_markdown_cell("# t"), new_code_cell("x = 1"),
                                   new_code_cell("print(x)")])
    ran = copy.deepcopy(expected)
    ran.cells[1].execution_count, ran.cells[2].execution_count = 1, 2
    path = tmp_path / "n.ipynb"
    assert grading.run_problem(path, expected).startswith("no run at")
    nbformat.write(ran, path)
    assert grading.run_problem(path, expected) == ""
    ran.cells[2].execution_count = None
    nbformat.write(ran, path)
    assert grading.run_problem(path, expected).endswith("cells [2] did not run")
    expected.cells[1].source = "x = 2"
    assert "another version" in grading.run_problem(path, expected)


def test_outputs_are_graded_as_nbgrader_grades_them_without_running_anything(tmp_path):
    """A check that printed on standard output scores, one that wrote to standard error or
    raised scores nothing, and no cell runs (the solution would raise if it did)."""
    source_dir = tmp_path / "source"
    source_dir.mkdir()
    source = new_notebook(cells=[nbgrader_cell("def f(): ...", "f", True)] + [
        nbgrader_cell(f"check_{i}()", f"c{i}", False, 1) for i in range(3)])
    nbformat.write(source, source_dir / "05_x.ipynb")
    handed = copy.deepcopy(source)
    handed.cells[0].source = 'raise RuntimeError("must not run")'
    stdout, stderr, error = (nbformat.v4.new_output("stream", name="stdout", text="✓ c0\n"),
                             nbformat.v4.new_output("stream", name="stderr", text="✗ c1\n"),
                             nbformat.v4.new_output("error", ename="AssertionError",
                                                    evalue="c2", traceback=[]))
    for cell, output in zip(handed.cells[1:], (stdout, stderr, error), strict=True):
        cell.outputs, cell.execution_count = [output], 1
    (tmp_path / "in" / "ada").mkdir(parents=True)
    nbformat.write(handed, tmp_path / "in" / "ada" / "05_x.ipynb")
    (row,) = grading.grade(tmp_path / "in", None, course=tmp_path / "c", source_dir=source_dir,
                           execute=False)
    assert (row.problem, row.scores) == ("", {"c0": 1.0, "c1": 0.0, "c2": 0.0})


# ---- the runs of `make notebooks` and the browser test, graded ------------------------------

@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One nbgrader run that executes nothing: the reference solutions as ``make notebooks`` ran
    them, the untouched notebooks as the browser test ran them, and files that are no notebooks."""
    tmp = tmp_path_factory.mktemp("runs")
    folder = tmp / "submissions"
    missing = grading.copy_runs(folder, NAMES)
    problems = folder / "problems"
    problems.mkdir(parents=True)
    (problems / f"{NAMES[0]}.ipynb").write_text("this is not JSON {")
    (problems / f"{NAMES[1]}.ipynb").write_text(json.dumps({"cells": [], "note": "no notebook"}))
    (problems / "99_not_in_the_course.ipynb").write_bytes((NOTEBOOKS_DIR / SOURCES[0].name)
                                                          .read_bytes())
    report = io.StringIO()
    start = perf_counter()
    with contextlib.redirect_stdout(report):
        rows = grading.grade(folder, tmp / "grades.csv", course=tmp / "course", execute=False)
    print(report.getvalue(), f"graded in {perf_counter() - start:.0f} s", sep="\n")
    return SimpleNamespace(rows={(r.student, r.notebook): r for r in rows}, all_rows=rows,
                           missing=missing, report=report.getvalue(), csv=tmp / "grades.csv")


def handed_in(runs: SimpleNamespace, who: str, name: str) -> grading.Row:
    """The graded row of ``who``'s run of ``name``; where that run was not made, a failure in CI
    and a skip elsewhere, saying which command makes it."""
    reason = runs.missing.get((who, name))
    if reason:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(reason)
    return runs.rows[(who, name)]


@pytest.mark.parametrize("name", NAMES)
def test_the_reference_solutions_score_full_points(runs, name):
    row = handed_in(runs, grading.REFERENCE, name)
    assert row.problem == ""
    assert row.max_points and row.total == row.max_points, row.scores


@pytest.mark.parametrize("name", NAMES)
def test_the_notebooks_as_released_score_nothing(runs, name):
    row = handed_in(runs, grading.BLANK, name)
    assert row.problem == "" and row.total == 0, row.scores


def test_files_that_are_no_notebooks_are_reported_and_the_run_goes_on(runs):
    problems = {(r.notebook, r.problem) for r in runs.all_rows if r.student == "problems"}
    assert {name for name, _ in problems} == {NAMES[0], NAMES[1], "99_not_in_the_course.ipynb"}
    assert all(problem for _, problem in problems)
    assert sum("PROBLEM" in line for line in runs.report.splitlines()) == 3
    with open(runs.csv, newline="") as f:
        lines = list(csv.DictReader(f))
    assert len(lines) == len(runs.all_rows) == 2 * len(NAMES) - len(runs.missing) + 3
    assert {line["notebook"] for line in lines if line["problem"]} == {
        NAMES[0], NAMES[1], "99_not_in_the_course.ipynb"}


def test_the_csv_has_a_column_per_graded_cell(runs):
    with open(runs.csv, newline="") as f:
        header = next(csv.reader(f))
    graded = {r.notebook for r in runs.all_rows if r.max_points is not None}
    ids = [gid for source in SOURCES if source.stem in graded
           for gid, _ in grading.exercises(source)]
    assert header == ["student", "notebook", *ids, "total", "max", "problem"]


def test_the_bench_figures_of_the_run(runs):
    if runs.missing:
        (pytest.fail if os.environ.get("CI") else pytest.skip)(next(iter(runs.missing.values())))
    figures = grading.bench_figures(runs.all_rows)
    assert figures["grade.reference_fraction"] == 1.0 and figures["grade.blank_fraction"] == 0.0
    assert figures["grade.exercises_total"] == sum(len(grading.exercises(s)) for s in SOURCES)


# ---- nbgrader running the notebooks: a broken exercise, an endless loop ----------------------

@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    """One nbgrader run that executes: the reference solutions with the first solution cell
    raising, in every notebook whose grading setup does not train."""
    tmp = tmp_path_factory.mktemp("broken")
    folder = tmp / "submissions"
    (folder / "broken").mkdir(parents=True)
    lost = {}
    for name in BROKEN_NAMES:
        nb = release.instructor_notebook(NOTEBOOKS_DIR / f"{name}.ipynb",
                                         SOURCE_DIR / f"{name}.ipynb")
        index = first_solution(nb)
        nb.cells[index].source = BROKEN
        lost[name] = checks_of(nb, index)
        nbformat.write(nb, folder / "broken" / f"{name}.ipynb")
    start = perf_counter()
    rows = grading.grade(folder, None, course=tmp / "course")
    print(f"graded in {perf_counter() - start:.0f} s")
    return SimpleNamespace(rows={r.notebook: r for r in rows}, lost=lost)


@pytest.mark.parametrize("name", BROKEN_NAMES)
def test_a_broken_exercise_loses_exactly_its_points(broken, name):
    row, points = broken.rows[name], dict(grading.exercises(SOURCE_DIR / f"{name}.ipynb"))
    assert row.problem == "" and broken.lost[name]
    assert {gid for gid, scored in row.scores.items() if scored < points[gid]} == broken.lost[name]
    assert all(row.scores[gid] == 0 for gid in broken.lost[name])


def test_an_endless_loop_is_cut_off_and_the_other_exercises_keep_their_points(tmp_path):
    """Also: a notebook that stops nbgrader's run (old nbgrader metadata, graded first) is
    reported, and the run grades the others one by one."""
    folder = grading.reference_and_blank(tmp_path / "submissions", [LOOP_NOTEBOOK])
    path = folder / grading.REFERENCE / f"{LOOP_NOTEBOOK}.ipynb"
    nb = nbformat.read(path, as_version=4)
    old = folder / "old_metadata" / path.name
    old.parent.mkdir()
    (folder / grading.BLANK / path.name).rename(old)
    blank = nbformat.read(old, as_version=4)
    next(c for c in blank.cells if "nbgrader" in c.metadata).metadata.nbgrader.schema_version = 1
    nbformat.write(blank, old)
    index = first_solution(nb)
    nb.cells[index].source = "while True:\n    pass"
    looping = checks_of(nb, index)
    nbformat.write(nb, folder / grading.REFERENCE / path.name)
    start = perf_counter()
    rows = grading.grade(folder, None, timeout=LOOP_TIMEOUT_S, course=tmp_path / "c")
    seconds = perf_counter() - start
    (row,) = [r for r in rows if r.student == grading.REFERENCE]
    (refused,) = [r for r in rows if r.student == "old_metadata"]
    assert refused.problem.startswith("nbgrader could not grade it: One or more notebooks")
    assert row.problem == ""
    assert {gid for gid, points in row.scores.items() if points == 0} == looping
    points = dict(grading.exercises(SOURCE_DIR / path.name))
    assert row.total == row.max_points - sum(points[gid] for gid in looping)
    graded_nb = nbformat.read(tmp_path / "c" / "autograded" / grading.REFERENCE / LOOP_NOTEBOOK
                              / path.name, as_version=4)
    loop_cell = next(c for c in graded_nb.cells if c.source.startswith("while True"))
    assert "CellTimeoutError" in [o.get("ename") for o in loop_cell.outputs]
    print(f"endless loop cut off after {LOOP_TIMEOUT_S} s; the run took {seconds:.0f} s")
