"""The notebooks with their exercises solved, to test that every self-check accepts a right answer.

``solutions/NN_name.py`` holds the reference solution of each exercise stub of ``notebooks/NN_name.ipynb``
(a code cell that defines a function and raises ``NotImplementedError("your code here")``), under the
stub's own name. ``solved_notebook`` puts each solution in place of its stub, after the solutions
file's imports; ``python -m course_utils.solutions`` writes every solved notebook to ``build/solved``.
"""

from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

import nbformat

from .data import PROJECT_ROOT

SOLUTIONS_DIR = PROJECT_ROOT / "solutions"
SOLVED_DIR = PROJECT_ROOT / "build" / "solved"
STUB_MARK = 'raise NotImplementedError("your code here")'


def solutions(path: Path) -> tuple[str, dict[str, str]]:
    """The import lines of a solutions file, and the source of each top-level function by name."""
    text = path.read_text()
    tree = ast.parse(text)
    imports = [ast.get_source_segment(text, node) for node in tree.body if isinstance(node, ast.Import | ast.ImportFrom)]
    functions = {node.name: ast.get_source_segment(text, node) for node in tree.body if isinstance(node, ast.FunctionDef)}
    return "\n".join(imports), functions


def stub_name(source: str) -> str | None:
    """The name of the function an exercise stub cell defines, or None for any other cell."""
    match = re.search(r"^def (\w+)\(", source, flags=re.M)
    return match.group(1) if match and STUB_MARK in source else None


def solved_notebook(notebook: Path, solutions_dir: Path = SOLUTIONS_DIR) -> nbformat.NotebookNode:
    """``notebook`` with every exercise stub replaced by its solution; an unsolved stub is an error."""
    nb = nbformat.read(notebook, as_version=4)
    stubs = [cell for cell in nb.cells if cell.cell_type == "code" and stub_name(cell.source)]
    if not stubs:
        return nb
    solutions_file = solutions_dir / f"{notebook.stem}.py"
    if not solutions_file.exists():
        raise FileNotFoundError(f"{notebook.name} has exercises but {solutions_file} does not exist")
    imports, functions = solutions(solutions_file)
    for cell in stubs:
        name = stub_name(cell.source)
        if name not in functions:
            raise KeyError(f"{solutions_file.name} has no solution for {name}() of {notebook.name}")
        cell.source = f"{imports}\n\n\n{functions[name]}" if imports else functions[name]
    return nb


def write_solved(notebooks: list[Path], out_dir: Path = SOLVED_DIR) -> list[Path]:
    """Write the solved copy of each notebook to ``out_dir``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for notebook in notebooks:
        nbformat.write(solved_notebook(notebook), out_dir / notebook.name)
        written.append(out_dir / notebook.name)
    return written


if __name__ == "__main__":
    paths = [Path(p) for p in sys.argv[1:]] or sorted((PROJECT_ROOT / "notebooks").glob("*.ipynb"))
    for path in write_solved(paths):
        print("wrote", path.relative_to(PROJECT_ROOT))
