"""Exercise self-checks, their strict mode, and the solved notebooks that ``make test`` runs."""

import nbformat
import pytest

from course_utils.data import PROJECT_ROOT
from course_utils.exercises import STRICT_ENV, check
from course_utils.solutions import STUB_MARK, solved_notebook, stub_name

NOTEBOOKS = sorted((PROJECT_ROOT / "notebooks").glob("*.ipynb"))
STUB = f'def area(w: int, h: int) -> int:\n    {STUB_MARK}'


def not_attempted() -> bool:
    raise NotImplementedError("your code here")


def test_strict_check_raises_unless_it_passes(monkeypatch):
    monkeypatch.setenv(STRICT_ENV, "1")
    check("right", lambda: True)
    with pytest.raises(AssertionError, match="wrong"):
        check("wrong", lambda: False)
    with pytest.raises(NotImplementedError):
        check("stub", not_attempted)
    with pytest.raises(ZeroDivisionError):
        check("bug", lambda: 1 / 0)


def test_stub_name_only_for_stubs():
    assert stub_name(STUB) == "area"
    assert stub_name("def area(w, h):\n    return w * h") is None
    assert stub_name("x = 1") is None


def write(tmp_path, *sources):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    path = tmp_path / "99_demo.ipynb"
    nbformat.write(nb, path)
    return path


def test_solved_notebook_puts_the_solution_and_its_imports_in_place_of_the_stub(tmp_path):
    path = write(tmp_path, "x = 1", STUB, "check('area', lambda: area(2, 3) == 6)")
    (tmp_path / "99_demo.py").write_text('"""doc"""\nimport math\n\n\ndef area(w: int, h: int) -> int:\n    return w * h\n\n\n'
                                         'def unused() -> None:\n    pass\n')
    cells = [c.source for c in solved_notebook(path, tmp_path).cells]
    assert cells == ["x = 1", "import math\n\n\ndef area(w: int, h: int) -> int:\n    return w * h",
                     "check('area', lambda: area(2, 3) == 6)"]


def test_a_stub_without_a_solution_is_an_error(tmp_path):
    path = write(tmp_path, STUB)
    with pytest.raises(FileNotFoundError, match="99_demo.py"):
        solved_notebook(path, tmp_path)
    (tmp_path / "99_demo.py").write_text("def volume() -> int:\n    return 1\n")
    with pytest.raises(KeyError, match="area"):
        solved_notebook(path, tmp_path)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_exercise_has_a_reference_solution(path):
    original = nbformat.read(path, as_version=4)
    assert any(stub_name(c.source) for c in original.cells if c.cell_type == "code"), "a lesson ends with exercises"
    solved = solved_notebook(path)
    assert not any(STUB_MARK in c.source for c in solved.cells)
    assert len(solved.cells) == len(original.cells)
