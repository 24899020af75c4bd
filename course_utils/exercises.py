"""Self-checks for the exercises at the end of each notebook.

An exercise stub raises ``NotImplementedError`` until the student fills it in; ``check``
then reports "not attempted" instead of failing, so an untouched notebook still runs.
With the environment variable ``COURSE_STRICT_CHECKS=1`` (set by ``make test`` when it runs the
notebooks with the reference solutions of ``solutions/``) every check must pass, or it raises.
"""

from __future__ import annotations

import os
from collections.abc import Callable

STRICT_ENV = "COURSE_STRICT_CHECKS"


def check(what: str, test: Callable[[], bool]) -> None:
    """Run ``test`` and print whether the exercise ``what`` passes; never raises, unless strict."""
    strict = os.environ.get(STRICT_ENV) == "1"
    try:
        passed = bool(test())
    except NotImplementedError:
        print(f"… {what}: not attempted yet")
        if strict:
            raise
        return
    except Exception as err:  # a student's bug is reported, not raised
        print(f"✗ {what}: raised {type(err).__name__}: {err}")
        if strict:
            raise
        return
    print(f"{'✓' if passed else '✗'} {what}")
    if strict and not passed:
        raise AssertionError(f"exercise check failed: {what}")
