"""Self-checks for the exercises: what was expected, what the student's code gave, how far off.

An exercise stub raises ``NotImplementedError`` until the student fills it in; a check then
reports "not attempted" instead of failing, so an untouched notebook still runs top to bottom.
A passing check prints to standard output; a failing or unattempted one to standard error, which
JupyterLab shows on a red background and nbgrader scores as no points when it grades the outputs
of a run (``tests/grading`` grades the browser test's run of the untouched notebooks so).
A check raises instead of printing when it is *strict*: with ``strict=True`` (the hidden tests of
the grader use that) or with the environment variable ``COURSE_STRICT_CHECKS=1`` (set by
``make test`` when it runs the notebooks with their reference solutions).

``check_cases`` is the engine: each :class:`Case` names an input, holds the expected value and a
thunk that calls the student's code. Tensors are compared by shape, then value, and the largest
difference is shown; floats with a tolerance; everything else with ``==``.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

STRICT_ENV = "COURSE_STRICT_CHECKS"
NOT_ATTEMPTED = "not attempted yet"


def say(text: str, passed: bool) -> None:
    """Print a check's report: to standard output if it passed, else to standard error."""
    print(text, file=sys.stdout if passed else sys.stderr)


def is_strict(strict: bool | None = None) -> bool:
    """``strict`` if given, else whether ``COURSE_STRICT_CHECKS=1`` is set."""
    return os.environ.get(STRICT_ENV) == "1" if strict is None else strict


def check(what: str, test: Callable[[], bool], strict: bool | None = None) -> bool:
    """Run a yes/no ``test`` and print whether the exercise ``what`` passes.

    Never raises, unless strict. Prefer :func:`check_cases`, which shows expected against got.
    """
    try:
        passed = bool(test())
    except NotImplementedError:
        say(f"… {what}: {NOT_ATTEMPTED}", False)
        if is_strict(strict):
            raise
        return False
    except Exception as err:  # a student's bug is reported, not raised
        say(f"✗ {what}: raised {type(err).__name__}: {err}", False)
        if is_strict(strict):
            raise
        return False
    say(f"{'✓' if passed else '✗'} {what}", passed)
    if is_strict(strict) and not passed:
        raise AssertionError(f"exercise check failed: {what}")
    return passed


def is_the_course_version(what: str, student: object, course: object,
                          strict: bool | None = None) -> bool:
    """Whether the answer handed to a check is the course's own function (re-imported after the
    exercise, or left in place by a cell that failed): then nothing of the student's is tested,
    and the check says so instead of passing."""
    if student is not course:
        return False
    message = (f"{what}: this is the course's version, not yours; run your own cell again, "
               "then this check")
    say(f"✗ {message}", False)
    if is_strict(strict):
        raise AssertionError(message)
    return True


@dataclass
class Case:
    """One input of a self-check: its description, the expected value and how to get the answer.

    ``got`` is called inside the check, so that an exception in the student's code is reported
    against this case. Floats and float tensors agree within ``atol + rtol * |expected|``.
    """

    label: str
    expected: Any
    got: Callable[[], Any]
    atol: float = 1e-6
    rtol: float = 1e-5


def short(value: Any, width: int = 60) -> str:
    """A one-line description of ``value`` for a check's report."""
    if isinstance(value, torch.Tensor):
        if value.numel() <= 8:
            text = str(value.detach().cpu().tolist())
        else:
            text = f"tensor of shape {tuple(value.shape)}"
        return f"{text} ({str(value.dtype).removeprefix('torch.')})"
    text = repr(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def compare(expected: Any, got: Any, atol: float = 1e-6, rtol: float = 1e-5) -> tuple[bool, str]:
    """Whether ``got`` matches ``expected``, and a line saying how it differs (or how close)."""
    if isinstance(expected, torch.Tensor):
        return compare_tensors(expected, got, atol, rtol)
    if isinstance(expected, float):
        if not isinstance(got, int | float) or isinstance(got, bool):
            return False, f"expected the number {expected:.6g}, got {short(got)}"
        diff = abs(got - expected)
        ok = diff <= atol + rtol * abs(expected) or (math.isinf(expected) and got == expected)
        return ok, f"expected {expected:.6g}, got {got:.6g}, difference {diff:.2g}"
    if isinstance(expected, list | tuple) and isinstance(got, list | tuple):
        if len(expected) != len(got):
            return False, f"expected {len(expected)} items, got {len(got)}: {short(got)}"
        for i, (e, g) in enumerate(zip(expected, got, strict=True)):
            ok, detail = compare(e, g, atol, rtol)
            if not ok:
                return False, f"item {i}: {detail}"
        return True, f"all {len(expected)} items as expected"
    if type(expected) is int and (type(got) is not int):
        if isinstance(got, torch.Tensor) and got.numel() == 1 and not got.is_floating_point():
            got = int(got.item())  # a 0-d integer tensor is the same answer as an int
        else:
            return False, f"expected the int {expected}, got {short(got)}"
    ok = bool(expected == got)
    return ok, f"expected {short(expected)}, got {short(got)}"


def compare_tensors(expected: torch.Tensor, got: Any, atol: float, rtol: float) -> tuple[bool, str]:
    """Shape first, then values; the report gives the largest absolute difference."""
    if not isinstance(got, torch.Tensor):
        return False, f"expected a tensor of shape {tuple(expected.shape)}, got {short(got)}"
    if got.shape != expected.shape:
        return False, f"expected shape {tuple(expected.shape)}, got shape {tuple(got.shape)}"
    e, g = expected.detach().cpu(), got.detach().cpu()
    if (e.is_floating_point(), e.dtype == torch.bool) != (g.is_floating_point(),
                                                          g.dtype == torch.bool):
        return False, f"expected {str(e.dtype).removeprefix('torch.')} values, got {short(got)}"
    if e.numel() == 0:
        return True, f"both empty, shape {tuple(e.shape)}"
    if not e.is_floating_point():
        wrong = int((e.long() != g.long()).sum())
        return wrong == 0, (f"{wrong} of {e.numel()} entries differ" if wrong
                            else f"all {e.numel()} entries equal")
    diff = (g.double() - e.double()).abs()
    if torch.isnan(diff).any():
        nan_where = int(torch.isnan(g).sum())
        return False, f"{nan_where} entries are nan (expected {short(expected)})"
    largest = float(diff.max())
    ok = bool((diff <= atol + rtol * e.double().abs()).all())
    return ok, f"largest difference {largest:.2g} over {e.numel()} entries"


def check_cases(what: str, cases: Iterable[Case], strict: bool | None = None) -> bool:
    """Run every case, print expected against got for each, and whether all of them pass.

    An untouched stub (``NotImplementedError``) is "not attempted"; any other exception in the
    student's code fails that case and is shown. Strict checks raise ``AssertionError`` (or the
    ``NotImplementedError``) after printing the report.
    """
    lines, passed, attempted = [], 0, True
    cases = list(cases)
    for case in cases:
        try:
            got = case.got()
        except NotImplementedError:
            attempted = False
            break
        except Exception as err:  # a student's bug is reported against its case
            lines.append(f"  ✗ {case.label}: raised {type(err).__name__}: {err}")
            continue
        ok, detail = compare(case.expected, got, case.atol, case.rtol)
        passed += ok
        lines.append(f"  {'✓' if ok else '✗'} {case.label}: {detail}")
    if not attempted:
        say(f"… {what}: {NOT_ATTEMPTED}", False)
        if is_strict(strict):
            raise NotImplementedError(f"{what}: {NOT_ATTEMPTED}")
        return False
    all_pass = passed == len(cases)
    say(f"{'✓' if all_pass else '✗'} {what}: {passed} of {len(cases)} cases pass\n"
        + "\n".join(lines), all_pass)
    if is_strict(strict) and not all_pass:
        raise AssertionError(f"exercise check failed: {what}\n" + "\n".join(lines))
    return all_pass


def same_function_cases(student: Callable, reference: Callable, inputs: Sequence[tuple[str, tuple]],
                        atol: float = 1e-6, rtol: float = 1e-5) -> list[Case]:
    """Cases comparing ``student(*args)`` with ``reference(*args)`` for each ``(label, args)``."""
    return [Case(label, reference(*args), lambda args=args: student(*args), atol, rtol)
            for label, args in inputs]
