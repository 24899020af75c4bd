"""Self-checks for the exercises at the end of each notebook.

An exercise stub raises ``NotImplementedError`` until the student fills it in; ``check``
then reports "not attempted" instead of failing, so an untouched notebook still runs.
"""

from __future__ import annotations

from collections.abc import Callable


def check(what: str, test: Callable[[], bool]) -> None:
    """Run ``test`` and print whether the exercise ``what`` passes; never raises."""
    try:
        passed = bool(test())
    except NotImplementedError:
        print(f"… {what}: not attempted yet")
        return
    except Exception as err:  # a student's bug is reported, not raised
        print(f"✗ {what}: raised {type(err).__name__}: {err}")
        return
    print(f"{'✓' if passed else '✗'} {what}")
