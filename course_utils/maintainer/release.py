"""One source per notebook: the instructor notebooks of ``source/`` generate the others.

``source/NN_name.ipynb`` holds the lecture, the reference solutions between
``### BEGIN SOLUTION`` / ``### END SOLUTION`` and the hidden tests between
``### BEGIN HIDDEN TESTS`` / ``### END HIDDEN TESTS``, in nbgrader's cell format: a solution
cell has ``nbgrader.solution``, a graded self-check has ``nbgrader.grade`` and ``points``.

- ``notebooks/`` (what students and Binder open) is nbgrader's ``generate_assignment`` output,
  each notebook its own assignment, with the outputs of one run stored by ``make execute``:
  ``python -m course_utils.maintainer.release students``.
- ``build/instructor/`` is ``notebooks/`` with the solution and self-check cells put back from
  the source, hidden tests included; ``make notebooks`` runs it with nbval and strict checks:
  ``python -m course_utils.maintainer.release instructor``.
"""

from __future__ import annotations

import argparse
import ast
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

from ..paths import BUILD_DIR, NOTEBOOKS_DIR, PROJECT_ROOT, SOURCE_DIR

INSTRUCTOR_DIR = BUILD_DIR / "instructor"
STUB = 'raise NotImplementedError("your code here")'
NBGRADER_CONFIG = f"""\
c = get_config()
c.ClearSolutions.code_stub = {{"python": {STUB!r}}}
"""


def nbgrader(course: Path, *args: str) -> subprocess.CompletedProcess:
    """Run an nbgrader command in the course folder ``course``; raise with its log if it fails."""
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    done = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course, env=env,
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"nbgrader {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done


def course_folder(course: Path, sources: list[Path], config: str = NBGRADER_CONFIG) -> Path:
    """Lay out an nbgrader course in ``course``: ``source/<stem>/<stem>.ipynb`` for each source,
    the course's config, and the gradebook filled by ``generate_assignment``."""
    course.mkdir(parents=True, exist_ok=True)
    (course / "nbgrader_config.py").write_text(config)
    for source in sources:
        folder = course / "source" / source.stem
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, folder / source.name)
        nbgrader(course, "generate_assignment", source.stem, "--force")
    return course


def same_code(a: str, b: str) -> bool:
    """Whether two cells hold the same program: the same syntax tree once IPython's magics are
    read as Python, so comments and line breaks do not count. Cells that do not parse are
    compared by their lines that are neither blank nor only a comment."""
    from IPython.core.inputtransformer2 import TransformerManager

    to_python = TransformerManager().transform_cell
    try:
        return ast.dump(ast.parse(to_python(a))) == ast.dump(ast.parse(to_python(b)))
    except SyntaxError:
        def lines(source: str) -> list[str]:
            return [line for line in source.splitlines()
                    if line.strip() and not line.lstrip().startswith("#")]
        return lines(a) == lines(b)


def keep_stored_outputs(new: nbformat.NotebookNode, stored: nbformat.NotebookNode) -> None:
    """Copy the stored run's outputs into ``new`` where the cells still hold the same code.

    Only a change of comments or of layout keeps a cell's outputs (:func:`same_code`); any other
    change leaves the cell without outputs, so the stored-run test fails until ``make execute``
    runs the notebook again. The
    stored run's widget state (the notebook's ``widgets`` metadata) goes with the outputs, so that
    kept progress bars still render as bars.
    """
    if [c.cell_type for c in new.cells] != [c.cell_type for c in stored.cells]:
        return
    for cell, old in zip(new.cells, stored.cells, strict=True):
        if cell.cell_type == "code" and same_code(cell.source, old.source):
            cell.outputs, cell.execution_count = old.outputs, old.execution_count
    new.metadata.pop("widgets", None)
    if "widgets" in stored.metadata:
        new.metadata["widgets"] = stored.metadata["widgets"]


def student_notebooks(sources: list[Path], out_dir: Path) -> list[Path]:
    """Write the student version of each source notebook to ``out_dir``, keeping the outputs of
    the notebook stored there for the cells whose code is unchanged."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with tempfile.TemporaryDirectory() as tmp:
        course = course_folder(Path(tmp), sources)
        for source in sources:
            new = nbformat.read(course / "release" / source.stem / source.name, as_version=4)
            target = out_dir / source.name
            if target.exists():
                keep_stored_outputs(new, nbformat.read(target, as_version=4))
            nbformat.write(new, target)
            written.append(target)
    return written


def grade_id(cell: nbformat.NotebookNode) -> str | None:
    """The nbgrader id of a solution or graded cell, None for a lecture cell."""
    return cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")


def instructor_notebook(student: Path, source: Path) -> nbformat.NotebookNode:
    """The stored student notebook with every nbgrader cell's source taken from the instructor
    source (solutions and hidden tests), outputs of the stored run kept for nbval."""
    nb = nbformat.read(student, as_version=4)
    from_source = {grade_id(c): c.source for c in nbformat.read(source, as_version=4).cells
                   if grade_id(c)}
    for cell in nb.cells:
        if grade_id(cell):
            cell.source = from_source[grade_id(cell)]
    return nb


def write_instructor(names: list[str], out_dir: Path = INSTRUCTOR_DIR) -> list[Path]:
    """Write ``build/instructor/<name>.ipynb`` for each notebook name; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in names:
        nb = instructor_notebook(NOTEBOOKS_DIR / f"{name}.ipynb", SOURCE_DIR / f"{name}.ipynb")
        nbformat.write(nb, out_dir / f"{name}.ipynb")
        written.append(out_dir / f"{name}.ipynb")
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=["students", "instructor"])
    parser.add_argument("notebooks", nargs="*", help="notebook names; default: every source")
    args = parser.parse_args(argv)
    names = args.notebooks or [p.stem for p in sorted(SOURCE_DIR.glob("*.ipynb"))]
    names = [Path(n).stem for n in names]
    if args.what == "students":
        paths = student_notebooks([SOURCE_DIR / f"{n}.ipynb" for n in names], NOTEBOOKS_DIR)
    else:
        paths = write_instructor(names)
    for path in paths:
        print("wrote", path.relative_to(PROJECT_ROOT))
    return 0


if __name__ == "__main__":
    sys.exit(main())
