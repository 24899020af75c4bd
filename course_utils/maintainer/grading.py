"""Autograde submitted notebooks offline with nbgrader: ``make grade SUBMISSIONS=folder``.

    python -m course_utils.maintainer.grading SUBMISSIONS [--out build/grades.csv]
        [--timeout 60] [--setup-timeout 900] [--course DIR] [--feedback DIR]

**Layout.** ``SUBMISSIONS/<student_id>/<NN_name>.ipynb``: one folder per student, holding the
notebooks that student handed in, under their course names (``05_why_compress.ipynb``). That is
what collecting gives (an LMS download sorted into one folder per student); nbgrader's own
``submitted/<student_id>/<NN_name>/<NN_name>.ipynb`` works too. Hidden files and nbgrader's
``timestamp.txt`` are ignored; every other file is a submission.

**Result.** A CSV (default ``build/grades.csv``), one row per student and notebook: ``student``,
``notebook``, one column per graded self-check (its nbgrader ``grade_id``, the points scored; empty
for the other notebooks' rows), ``total``, ``max`` and ``problem``. A file that is not JSON, not a
notebook, or has a name that is no course notebook, or that nbgrader could not grade, gets a line
in the report and in ``problem`` (0 points where the notebook is known) and never stops the run.

**How.** A temporary nbgrader course (``release.course_folder``: each notebook its own assignment,
the gradebook filled from ``source/``), the submissions copied to ``submitted/``, one
``nbgrader autograde "*"`` for all of them, the scores read from the gradebook. The course's
config sets ``COURSE_STRICT_CHECKS=1`` for the kernels, so a self-check that fails loses its
points instead of printing a cross, and nbgrader puts back the self-check cells as the source has
them (hidden tests included), and any a student deleted.

**Grading view.** A full notebook trains and benchmarks for minutes; grading runs only what the
exercises need. :class:`GradingView` (added to nbgrader's sanitizing preprocessors) keeps the
markdown cells, the nbgrader cells (solutions and self-checks) and the code cells tagged
``setup``, and drops every other code cell. So the feedback shows the exercises, not the lecture,
and **an exercise and its check may use only names defined by ``setup`` cells** (the source
notebooks tag them; ``tests/grading`` proves that the reference solutions score full points in
the view). A student's helper in a cell of its own is dropped too: answers go in the answer cell.

**Timeouts.** Every cell has a time limit; when it runs out nbgrader interrupts the kernel
(``interrupt_on_timeout``), the cell fails and the run goes on, so an endless loop costs one
exercise and that much time. Student code (the solution and self-check cells) gets
``c.Execute.timeout`` = :data:`CELL_TIMEOUT_S` = 60 s: an exercise is a small function checked
on small inputs (the slowest such cell took 6 s on a loaded 2-core machine), so no right answer
is cut off on a busy machine and a loop costs a minute (nbgrader's default is 30 s). The
``setup`` cells, the course's own code and the same for every student, get
:data:`SETUP_TIMEOUT_S` = 900 s, the per-cell limit of ``make notebooks``: those of 07, 10 and 13
train for minutes. Both limits reach nbgrader as ``c.Execute.timeout_func`` (:class:`CellTimeout`).

**Grading a run's outputs.** ``grade(..., execute=False)`` keeps the outputs a submission was
handed in with and scores them as nbgrader does (an error or a line on standard error in a
self-check cell: no points), without running anything. ``make grading`` grades so the runs that
the other tests made anyway: the reference solutions as ``make notebooks`` ran them (strict, kept
by :mod:`course_utils.maintainer.executed`) and the untouched notebooks as the browser test ran
them (a failing or unattempted check reports on standard error); see :func:`copy_runs`.
"""

from __future__ import annotations

import argparse
import ast
import builtins
import csv
import json
import re
import shutil
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.preprocessors import NbGraderPreprocessor
from nbgrader.utils import is_grade, is_solution

from ..exercises import STRICT_ENV
from ..paths import BUILD_DIR, NOTEBOOKS_DIR, SOURCE_DIR
from . import release

GRADES_PATH = BUILD_DIR / "grades.csv"
CELL_TIMEOUT_S = 60
SETUP_TIMEOUT_S = 900
SETUP_TAG = "setup"
IGNORED_FILES = {"timestamp.txt"}
VIEW = "course_utils.maintainer.grading.GradingView"  # not __name__, which may be __main__
REFERENCE, BLANK = "reference", "blank"
EXECUTED_DIR = BUILD_DIR / "executed"
# Who hands in which run: the folder it is kept in, and the command that makes it.
RUNS = {REFERENCE: (EXECUTED_DIR / "instructor", "make notebooks"),
        BLANK: (EXECUTED_DIR / "student", "make test-browser")}
FROM_OUTPUTS_CONFIG = """\
from nbgrader.converters import Autograde
from nbgrader.preprocessors import ClearOutput, Execute
_defaults = Autograde.class_traits()
c.Autograde.sanitize_preprocessors = [
    p for p in _defaults["sanitize_preprocessors"].default() if p is not ClearOutput]
c.Autograde.autograde_preprocessors = [
    p for p in _defaults["autograde_preprocessors"].default() if p is not Execute]
"""
GRADING_CONFIG = """\
import os
from course_utils.maintainer.grading import CellTimeout
os.environ[{strict!r}] = "1"  # the kernels inherit it: a failing self-check raises
c.Execute.timeout = {timeout}
c.Execute.timeout_func = CellTimeout({timeout}, {setup_timeout})
c.Execute.interrupt_on_timeout = True
c.OverwriteCells.add_missing_cells = True
c.Autograde.sanitize_preprocessors.append({view!r})
"""


def is_setup(cell: nbformat.NotebookNode) -> bool:
    """A code cell tagged ``setup`` that is no nbgrader cell: the course's own code."""
    return (cell.cell_type == "code" and SETUP_TAG in cell.get("metadata", {}).get("tags", [])
            and not (is_solution(cell) or is_grade(cell)))


def in_grading_view(cell: nbformat.NotebookNode) -> bool:
    """Markdown, solution and graded cells, and code cells tagged ``setup``."""
    return cell.cell_type == "markdown" or is_solution(cell) or is_grade(cell) or is_setup(cell)


@dataclass
class CellTimeout:
    """nbclient's ``timeout_func``: ``setup_s`` seconds for a setup cell, ``cell_s`` for others."""

    cell_s: int
    setup_s: int

    def __call__(self, cell: nbformat.NotebookNode) -> int:
        return self.setup_s if is_setup(cell) else self.cell_s


class GradingView(NbGraderPreprocessor):
    """Drop the lecture's code cells before autograding: keep what :func:`in_grading_view` keeps."""

    def preprocess(self, nb: nbformat.NotebookNode, resources: dict) -> tuple:
        nb.cells = [cell for cell in nb.cells if in_grading_view(cell)]
        return nb, resources


IPYTHON_NAMES = {"get_ipython", "display", "In", "Out", "_", "__", "___"}


def bound_names(tree: ast.AST) -> set[str]:
    """Every name a cell binds anywhere (assignments, imports, definitions, parameters, loop and
    comprehension targets). Generous: a name bound only inside a function counts too."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store | ast.Del):
            names.add(node.id)
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.alias):
            names.add((node.asname or node.name).split(".")[0])
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
    return names


def view_undefined_names(nb: nbformat.NotebookNode) -> list[tuple[int, str]]:
    """``(cell index, name)`` for each name that a cell of the grading view loads and no cell of
    the view defines before it (nor the cell itself, nor Python or IPython): in ``make grade`` it
    would raise NameError. The cure is to tag ``setup`` the cell that defines it."""
    from IPython.core.inputtransformer2 import TransformerManager

    to_python = TransformerManager().transform_cell
    known = set(dir(builtins)) | IPYTHON_NAMES
    missing = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or not in_grading_view(cell):
            continue
        tree = ast.parse(to_python(cell.source))
        defined = known | bound_names(tree)
        loaded = {node.id for node in ast.walk(tree)
                  if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}
        missing += [(index, name) for name in sorted(loaded - defined)]
        known |= bound_names(tree)
    return missing


def exercises(source: Path) -> list[tuple[str, float]]:
    """``(grade_id, points)`` of each graded cell of an instructor notebook, in order."""
    nb = nbformat.read(source, as_version=4)
    return [(c.metadata.nbgrader["grade_id"], float(c.metadata.nbgrader.get("points", 0)))
            for c in nb.cells if is_grade(c)]


@dataclass
class Submission:
    """One submitted file: whose, which notebook (the file's stem), and what is wrong with it."""

    student: str
    notebook: str
    path: Path
    problem: str = ""


@dataclass
class Row:
    """One line of the grades: points per graded cell, the notebook's maximum, any problem."""

    student: str
    notebook: str
    scores: dict[str, float] = field(default_factory=dict)
    max_points: float | None = None
    problem: str = ""

    @property
    def total(self) -> float:
        return sum(self.scores.values())


def notebook_problem(path: Path) -> str:
    """Why ``path`` cannot be graded as a notebook, or "" if it can."""
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text)
    except (UnicodeDecodeError, ValueError) as err:
        return f"not JSON ({type(err).__name__}: {str(err)[:80]})"
    if not isinstance(data, dict) or "nbformat" not in data:
        return "JSON but not a notebook (no nbformat field)"
    try:
        nb = nbformat.reads(text, as_version=4)
        nbformat.validate(nb)
    except Exception as err:  # nbformat raises several kinds for JSON that is no notebook
        return f"JSON but not a notebook ({type(err).__name__}: {str(err).splitlines()[0][:80]})"
    return ""


def find_submissions(folder: Path, known: Iterable[str]) -> list[Submission]:
    """Every file in ``folder/<student_id>/`` (and one folder deeper), checked; see the layout."""
    known = set(known)
    found = []
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if entry.is_file():
            found.append(Submission("", entry.stem, entry, "not in a student's folder"))
            continue
        files = [f for f in sorted(entry.glob("*")) + sorted(entry.glob("*/*")) if f.is_file()
                 and not any(p.startswith(".") for p in f.relative_to(entry).parts)
                 and f.name not in IGNORED_FILES]
        seen = set()
        for f in files:
            sub = Submission(entry.name, f.stem, f)
            if f.suffix != ".ipynb" or f.stem not in known:
                sub.problem = f"not a notebook of the course: {f.relative_to(folder)}"
                sub.notebook = f.name
            elif f.stem in seen:
                sub.problem = f"handed in twice, {f.relative_to(folder)} not graded"
            else:
                sub.problem = notebook_problem(f)
            seen.add(f.stem)
            found.append(sub)
    return found


def nbgrader_errors(log: str) -> dict[tuple[str, str], str]:
    """The last line of nbgrader's traceback per (student, notebook) that it failed to grade."""
    errors = {}
    parts = re.split(r"There was an error processing assignment: ", log)
    for part in parts[1:]:
        path = Path(part.splitlines()[0].strip())
        lines = [line for line in part.splitlines()[1:]
                 if line.strip() and "[AutogradeApp" not in line]
        tail = [line for line in lines
                if re.match(r"^\w+(\.\w+)*(Error|Exception|Interrupt)\b", line)]
        errors[(path.parent.name, path.name)] = (tail or lines or ["see nbgrader's log"])[-1][:160]
    return errors


def graded_path(course: Path, sub: Submission) -> Path:
    """Where nbgrader writes the graded notebook of a submission (removed if it failed)."""
    return course / "autograded" / sub.student / sub.notebook / f"{sub.notebook}.ipynb"


def run_autograde(course: Path, *args: str) -> str:
    """``nbgrader autograde`` with ``args``; its log, whether or not some submission failed."""
    try:
        done = release.nbgrader(course, "autograde", *args, "--force")
        return done.stdout + done.stderr
    except RuntimeError as err:  # some submission failed; the others are graded
        return str(err)


def first_error(log: str) -> str:
    """nbgrader's first error message in ``log`` (two lines of it), or its last line."""
    lines = [line.strip() for line in log.splitlines() if line.strip()] or ["no log"]
    starts = [i for i, line in enumerate(lines) if "| ERROR]" in line]
    if not starts:
        return lines[-1][:160]
    first = lines[starts[0]].split("| ERROR]", 1)[1].strip()
    following = lines[starts[0] + 1:starts[0] + 2]
    return " ".join([first, *(line for line in following if "| " not in line)])[:160]


def autograde(course: Path, submissions: list[Submission]) -> dict[tuple[str, str], str]:
    """Copy the submissions into ``course/submitted`` and autograde them all in one run; what
    went wrong per (student, notebook). A submission the run did not reach (nbgrader stops at
    some errors, such as old cell metadata) is graded again on its own."""
    for sub in submissions:
        target = course / "submitted" / sub.student / sub.notebook / f"{sub.notebook}.ipynb"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(sub.path, target)
    errors = nbgrader_errors(run_autograde(course, "*"))
    for sub in submissions:
        key = (sub.student, sub.notebook)
        if not graded_path(course, sub).exists() and key not in errors:
            log = run_autograde(course, sub.notebook, f"--student={sub.student}")
            errors[key] = nbgrader_errors(log).get(key) or first_error(log)
    return errors


def read_grades(course: Path, sub: Submission, expected: list[tuple[str, float]],
                errors: dict[tuple[str, str], str]) -> Row:
    """The gradebook's points for one graded submission (0 with a problem if grading failed)."""
    row = Row(sub.student, sub.notebook, {gid: 0.0 for gid, _ in expected},
              sum(points for _, points in expected))
    if not graded_path(course, sub).exists():
        row.problem = "nbgrader could not grade it: " + errors.get(
            (sub.student, sub.notebook), "see nbgrader's log")
        return row
    with Gradebook(f"sqlite:///{course / 'gradebook.db'}") as gb:
        try:
            grades = gb.find_submission_notebook(sub.notebook, sub.notebook, sub.student).grades
        except MissingEntry:
            row.problem = "not in nbgrader's gradebook"
            return row
        for grade in grades:
            if grade.name in row.scores:
                row.scores[grade.name] = float(grade.score or 0.0)
    return row


def write_csv(rows: list[Row], columns: list[str], out: Path) -> Path:
    """One line per row: student, notebook, a column per grade id in ``columns``, total, max,
    problem."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["student", "notebook", *columns, "total", "max", "problem"])
        for row in rows:
            known = row.max_points is not None
            writer.writerow([row.student, row.notebook,
                             *(f"{row.scores[c]:g}" if c in row.scores else "" for c in columns),
                             f"{row.total:g}" if known else "",
                             f"{row.max_points:g}" if known else "", row.problem])
    return out


def report_line(row: Row) -> str:
    """What the report prints for a row."""
    score = f"{row.total:g}/{row.max_points:g}" if row.max_points is not None else "-"
    return f"{row.student or '?':20s} {row.notebook:40s} {score:>7s}" + (
        f"  PROBLEM: {row.problem}" if row.problem else "")


def generate_feedback(course: Path, feedback: Path) -> list[Path]:
    """nbgrader's feedback HTML of every graded submission, as ``feedback/<student>/<nb>.html``."""
    try:
        release.nbgrader(course, "generate_feedback", "*", "--force")
    except RuntimeError as err:  # one that fails leaves the others
        print("feedback: nbgrader generate_feedback failed for some:",
              str(err).strip().splitlines()[-1])
    written = []
    for html in sorted((course / "feedback").glob("*/*/*.html")):
        target = feedback / html.parent.parent.name / html.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(html, target)
        written.append(target)
    return written


def grade(folder: Path, out: Path | None = GRADES_PATH, timeout: int = CELL_TIMEOUT_S,
          course: Path | None = None, feedback: Path | None = None,
          setup_timeout: int = SETUP_TIMEOUT_S, source_dir: Path = SOURCE_DIR,
          execute: bool = True) -> list[Row]:
    """Grade every submission under ``folder``; write the CSV to ``out`` (unless None), print the
    report, return the rows. ``course`` keeps the nbgrader course folder (default: temporary).
    ``execute=False`` grades the outputs the submissions hold instead of running them."""
    if course is not None and course.exists() and any(course.iterdir()):
        raise ValueError(f"{course} is not empty: give a new folder for nbgrader's course")
    known = {p.stem: p for p in sorted(source_dir.glob("*.ipynb"))}
    submissions = find_submissions(folder, known)
    good = [s for s in submissions if not s.problem]
    names = sorted({s.notebook for s in good})
    expected = {name: exercises(known[name]) for name in names}
    with tempfile.TemporaryDirectory(prefix="dl-course-grading-") as tmp:
        course = Path(tmp) if course is None else course
        errors: dict[tuple[str, str], str] = {}
        if good:
            config = release.NBGRADER_CONFIG + ("" if execute else FROM_OUTPUTS_CONFIG)
            config += GRADING_CONFIG.format(
                strict=STRICT_ENV, timeout=int(timeout), setup_timeout=int(setup_timeout),
                view=VIEW)
            release.course_folder(course, [known[n] for n in names], config)
            errors = autograde(course, good)
        rows = []
        for sub in submissions:
            if not sub.problem:
                rows.append(read_grades(course, sub, expected[sub.notebook], errors))
            elif sub.notebook in known:
                ids = exercises(known[sub.notebook])
                rows.append(Row(sub.student, sub.notebook, {gid: 0.0 for gid, _ in ids},
                                sum(p for _, p in ids), sub.problem))
            else:
                rows.append(Row(sub.student, sub.notebook, problem=sub.problem))
        report(rows, out, known)
        if feedback is not None and any(graded_path(course, s).exists() for s in good):
            print(f"feedback: {len(generate_feedback(course, feedback))} HTML files in {feedback}")
    return rows


def report(rows: list[Row], out: Path | None, known: dict[str, Path]) -> None:
    """Print a line per row and a summary; write the CSV to ``out`` unless None."""
    for row in rows:
        print(report_line(row))
    problems = sum(bool(r.problem) for r in rows)
    print(f"{len(rows)} submissions of {len({r.student for r in rows})} students, "
          f"{problems} with a problem")
    if out is not None:
        columns = [gid for name in sorted({r.notebook for r in rows} & set(known))
                   for gid, _ in exercises(known[name])]
        print("wrote", write_csv(rows, columns, out))


def reference_and_blank(folder: Path, names: Iterable[str]) -> Path:
    """Submissions of two students: ``reference`` hands in the reference solutions
    (``release.instructor_notebook``), ``blank`` the student notebooks as released."""
    for name in names:
        student = NOTEBOOKS_DIR / f"{name}.ipynb"
        source = SOURCE_DIR / f"{name}.ipynb"
        for who in (REFERENCE, BLANK):
            (folder / who).mkdir(parents=True, exist_ok=True)
        reference = release.instructor_notebook(student, source)
        nbformat.write(reference, folder / REFERENCE / student.name)
        shutil.copy(student, folder / BLANK / student.name)
    return folder


def run_problem(ran: Path, expected: nbformat.NotebookNode) -> str:
    """Why the notebook at ``ran`` is not a whole run of ``expected`` as it is now ("" if it is):
    missing, made from other cells, or with code cells that did not run."""
    if not ran.exists():
        return f"no run at {ran}"
    nb = nbformat.read(ran, as_version=4)
    if [c.source for c in nb.cells] != [c.source for c in expected.cells]:
        return f"{ran} is a run of another version of the notebook"
    unrun = [i for i, c in enumerate(nb.cells)
             if c.cell_type == "code" and c.execution_count is None]
    return f"{ran}: cells {unrun[:5]} did not run" if unrun else ""


def copy_runs(folder: Path, names: Iterable[str]) -> dict[tuple[str, str], str]:
    """Hand in the runs of :data:`RUNS` as submissions: ``folder/reference/`` the reference
    solutions as ``make notebooks`` ran them, ``folder/blank/`` the released notebooks as the
    browser test ran them. Returns, per (student, name) not handed in, why and what to run."""
    missing = {}
    for name in names:
        student = NOTEBOOKS_DIR / f"{name}.ipynb"
        expected = {REFERENCE: release.instructor_notebook(student, SOURCE_DIR / f"{name}.ipynb"),
                    BLANK: nbformat.read(student, as_version=4)}
        for who, (runs, command) in RUNS.items():
            problem = run_problem(runs / student.name, expected[who])
            if problem:
                missing[(who, name)] = f"{problem}: run `{command}` first"
                continue
            (folder / who).mkdir(parents=True, exist_ok=True)
            shutil.copy(runs / student.name, folder / who / student.name)
    return missing


def bench_figures(rows: list[Row]) -> dict[str, float]:
    """The ``grade.*`` figures of ``make bench`` from a run of :func:`reference_and_blank`."""
    reference = [r for r in rows if r.student == REFERENCE]
    blank = [r for r in rows if r.student == BLANK]
    points = sum(r.max_points or 0.0 for r in reference)
    return {"grade.reference_fraction": sum(r.total for r in reference) / points if points else 0.0,
            "grade.blank_fraction": sum(r.total for r in blank) / points if points else 0.0,
            "grade.points_total": points,
            "grade.exercises_total": float(sum(len(r.scores) for r in reference))}


def grade_figures(names: Iterable[str]) -> dict[str, float]:
    """Grade the reference solutions and the blank notebooks of ``names`` (those with a source):
    the share of the points each gets, the points and the graded cells in all."""
    names = [n for n in names if (SOURCE_DIR / f"{n}.ipynb").exists()
             and (NOTEBOOKS_DIR / f"{n}.ipynb").exists()]
    if not names:
        return {}
    with tempfile.TemporaryDirectory(prefix="dl-course-grade-bench-") as tmp:
        rows = grade(reference_and_blank(Path(tmp), names), out=None)
    return bench_figures(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("submissions", type=Path, help="SUBMISSIONS/<student_id>/<NN_name>.ipynb")
    parser.add_argument("--out", type=Path, default=GRADES_PATH, help="the CSV to write")
    parser.add_argument("--timeout", type=int, default=CELL_TIMEOUT_S,
                        help="seconds for each cell of the exercises")
    parser.add_argument("--setup-timeout", type=int, default=SETUP_TIMEOUT_S,
                        help="seconds for each setup cell")
    parser.add_argument("--course", type=Path, help="keep nbgrader's course folder here")
    parser.add_argument("--feedback", type=Path, help="write feedback HTML here")
    args = parser.parse_args(argv)
    if not args.submissions.is_dir():
        parser.error(f"{args.submissions} is not a folder")
    grade(args.submissions, args.out, args.timeout, args.course, args.feedback, args.setup_timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
