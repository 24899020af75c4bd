"""Showing things in notebooks: tables rendered as Markdown, and the source of course code."""

from __future__ import annotations

from collections.abc import Sequence


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A Markdown table; numbers right-aligned, ints with thousands separators."""

    def cell(value: object) -> str:
        return (f"{value:,}" if isinstance(value, int) and not isinstance(value, bool)
                else str(value))

    numeric = [all(isinstance(r[i], (int, float)) for r in rows) for i in range(len(headers))]
    lines = ["| " + " | ".join(headers) + " |",
             "| " + " | ".join("---:" if n else "---" for n in numeric) + " |"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def show_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> None:
    """Display a table in a notebook (as Markdown), or print it elsewhere."""
    text = markdown_table(headers, rows)
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display

        if get_ipython() is not None:
            display(Markdown(text))
            return
    except ImportError:
        pass
    print(text)


def show_source(*functions: object) -> None:
    """Display the source code of functions or classes from ``course_utils``, so the notebook
    that teaches an algorithm shows the code that runs it."""
    import inspect

    from IPython.display import Markdown, display

    for function in functions:
        display(Markdown(f"```python\n{inspect.getsource(function).rstrip()}\n```"))
