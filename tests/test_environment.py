"""pyproject.toml (pip) and environment.yml (conda, Binder) must name the same packages."""

import re

import pytest

from course_utils.paths import PROJECT_ROOT

tomllib = pytest.importorskip("tomllib")
CONDA_NAMES = {"pytorch-cpu": "torch"}  # conda-forge's CPU-only PyTorch is the pip package torch
# no pip package: the interpreter, pip, a C compiler (notebook 14)
CONDA_ONLY = {"python", "pip", "c-compiler"}


def package_name(requirement: str) -> str:
    return re.split(r"[<>=!~ \[;]", requirement.strip(), maxsplit=1)[0].lower()


def pip_packages() -> set[str]:
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    # not the browser test's extra
    requirements = project["dependencies"] + project["optional-dependencies"]["test"]
    return {package_name(r) for r in requirements}


def conda_packages() -> set[str]:
    names = set()
    text = (PROJECT_ROOT / "environment.yml").read_text()
    for line in text.split("dependencies:", 1)[1].splitlines():
        # top-level dependencies only, not the pip: list
        match = re.match(r"^  - ([A-Za-z0-9_.-]+)", line)
        if match and match.group(1) not in CONDA_ONLY:
            names.add(CONDA_NAMES.get(match.group(1), match.group(1)).lower())
    return names


def test_both_files_name_the_same_packages():
    assert pip_packages() == conda_packages()


def test_lower_bounds_not_pins():
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]
    assert all(">=" in r and "==" not in r for r in project["dependencies"])


def test_environment_uses_cpu_pytorch_from_conda_forge():
    text = (PROJECT_ROOT / "environment.yml").read_text()
    assert "- conda-forge" in text and "pytorch-cpu" in text and "--editable ." in text


def test_environment_has_a_c_compiler_for_binder():
    assert re.search(r"^  - c-compiler\b", (PROJECT_ROOT / "environment.yml").read_text(), re.M)
