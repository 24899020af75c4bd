"""Notebooks as reveal.js slides for lectures: ``make slides`` -> ``build/slides/*.slides.html``.

Markdown cells that open with a ``#`` or ``##`` heading start a new slide, ``###`` a sub-slide
(below it); every other cell continues the current one. A cell whose metadata already sets
``slideshow.slide_type`` (a ``fragment``, say, set in JupyterLab's property inspector) keeps it.
When ``build/slides/vendor`` holds copies of reveal.js, require.js, jQuery and MathJax
(``tools/vendor-slides`` fetches them from the npm registry) the slides use them and work
offline; otherwise they load those from the web when opened.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbconvert import SlidesExporter

from ..paths import BUILD_DIR, NOTEBOOKS_DIR, PROJECT_ROOT

SLIDES_DIR = BUILD_DIR / "slides"
VENDOR = "vendor"  # beside the slides: local copies of the JavaScript they load


def slide_type(cell: nbformat.NotebookNode) -> str:
    """The reveal.js role of a cell: its own setting if it has one, else from its heading."""
    own = cell.get("metadata", {}).get("slideshow", {}).get("slide_type")
    if own:
        return own
    first_line = cell.source.lstrip().split("\n", 1)[0]
    if cell.cell_type == "markdown" and first_line.startswith(("# ", "## ")):
        return "slide"
    if cell.cell_type == "markdown" and first_line.startswith("### "):
        return "subslide"
    return "-"


def export_slides(notebook: Path, out_dir: Path = SLIDES_DIR) -> Path:
    """Write ``<stem>.slides.html`` for ``notebook`` into ``out_dir`` and return its path."""
    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        cell.metadata["slideshow"] = {"slide_type": slide_type(cell)}
    exporter = SlidesExporter()
    if (out_dir / VENDOR / "mathjax" / "MathJax.js").exists():
        exporter.reveal_url_prefix = f"{VENDOR}/reveal.js"
        exporter.require_js_url = f"{VENDOR}/requirejs/require.js"
        exporter.jquery_url = f"{VENDOR}/jquery/dist/jquery.min.js"
        exporter.mathjax_url = f"{VENDOR}/mathjax/MathJax.js?config=TeX-AMS_CHTML-full,Safe"
    html, _ = exporter.from_notebook_node(nb)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / f"{notebook.stem}.slides.html"
    target.write_text(html, encoding="utf-8")
    return target


def main(paths: list[str]) -> None:
    notebooks = [Path(p) for p in paths] or sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
    for notebook in notebooks:
        print(f"{notebook.name} -> {export_slides(notebook).relative_to(PROJECT_ROOT)}")


if __name__ == "__main__":
    main(sys.argv[1:])
