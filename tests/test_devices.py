"""Package-wide device rule: tensors leave their device for NumPy only through ``.cpu()``."""

import ast
from pathlib import Path

import course_utils

PACKAGE = Path(course_utils.__file__).parent


def test_every_numpy_call_goes_through_cpu():
    """``t.numpy()`` raises for a CUDA tensor; ``t.cpu().numpy()`` works on every device."""
    offending = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr == "numpy"):
                if ".cpu()" not in ast.unparse(node.func.value):
                    offending.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: "
                                     f"{ast.unparse(node)}")
    assert offending == []
