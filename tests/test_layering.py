"""The package's layers point one way: Part I's modules import nothing of Part II.

Part I's modules are those the notebooks 00-04 and 15 use, and what they need. Every other module is
Part II's, or sits above both parts (``zoo``, ``reference``, the package's ``__init__``, which
re-exports from both, and ``maintainer``). Imports are read from the source (``ast``), inside
functions too; the import of a parent package that Python runs first is not counted.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import course_utils

PACKAGE = Path(course_utils.__file__).parent
PART_ONE = {
    "course_utils.paths", "course_utils.data", "course_utils.models", "course_utils.training",
    "course_utils.plots", "course_utils.widgets", "course_utils.exercises", "course_utils.display",
    "course_utils.timing", "course_utils.checkpoints", "course_utils.bench", "course_utils.checks",
    "course_utils.checks.modules", "course_utils.checks.start_here",
    "course_utils.checks.mnist_data", "course_utils.checks.linear_model", "course_utils.checks.mlp",
    "course_utils.checks.lenet", "course_utils.distributed", "course_utils.ddp_train",
    "course_utils.checks.data_parallel", "course_utils.targets",
}


def module_files(package: Path) -> dict[str, Path]:
    """Every module of ``package`` by dotted name (a sub-package by its ``__init__.py``)."""
    modules = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imported_modules(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package's modules that module ``name`` (its file ``path``) imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            target = ".".join(filter(None, [base, node.module]))
            if node.module:  # ``from . import x`` imports x, not the package above it
                found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names)  # names that are modules
    return {m for m in found if m in modules and m != name}


def part_one_leaks(modules: dict[str, Path], part_one: set[str]) -> dict[str, list[str]]:
    """For each Part I module that reaches a module outside Part I, the import chain to the
    first."""
    graph = {name: imported_modules(name, path, modules) for name, path in modules.items()}
    leaks = {}
    for start in sorted(part_one):
        chains, seen = [[start]], {start}
        while chains and start not in leaks:
            chain = chains.pop(0)
            for target in sorted(graph[chain[-1]] - seen):
                if target not in part_one:
                    leaks[start] = [*chain, target]
                    break
                seen.add(target)
                chains.append([*chain, target])
    return leaks


def test_part_one_lists_real_modules():
    assert PART_ONE <= set(module_files(PACKAGE))


def test_part_one_imports_nothing_of_part_two():
    assert part_one_leaks(module_files(PACKAGE), PART_ONE) == {}


CHECK = "pkg.sub.check"


@pytest.mark.parametrize("check_source, models_source, leaks", [
    ("from ..models import Net\nfrom .. import data\n", "", {}),
    ("from ..gap import GapNet\n", "", {CHECK: [CHECK, "pkg.gap"]}),
    ("from .. import gap\n", "", {CHECK: [CHECK, "pkg.gap"]}),
    ("import pkg.gap\n", "", {CHECK: [CHECK, "pkg.gap"]}),
    ("def f():\n    from ..gap import GapNet\n", "", {CHECK: [CHECK, "pkg.gap"]}),
    ("from ..models import Net\n", "from .gap import GapNet\n",
     {CHECK: [CHECK, "pkg.models", "pkg.gap"], "pkg.models": ["pkg.models", "pkg.gap"]}),
])
def test_a_leak_is_found_directly_or_through_other_modules(tmp_path, check_source, models_source,
                                                           leaks):
    """A fake package: Part I is ``data``, ``models`` and ``sub.check``; ``gap`` is Part II's."""
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    files = {"__init__": "from .gap import GapNet\n", "data": "", "gap": "from .data import x\n",
             "models": "from .data import x\n" + models_source, "sub/__init__": "",
             "sub/check": check_source}
    for name, source in files.items():
        (tmp_path / "pkg" / f"{name}.py").write_text(source)
    part_one = {"pkg.data", "pkg.models", CHECK}
    assert part_one_leaks(module_files(tmp_path / "pkg"), part_one) == leaks
