import nbformat
import pytest

from course_utils.maintainer.slides import export_slides, slide_type
from course_utils.paths import PROJECT_ROOT

NOTEBOOKS = sorted((PROJECT_ROOT / "notebooks").glob("*.ipynb"))


def test_slide_types_follow_headings_unless_set():
    md = nbformat.v4.new_markdown_cell
    assert slide_type(md("# Title\ntext")) == "slide"
    assert slide_type(md("## Section")) == "slide"
    assert slide_type(md("### Part")) == "subslide"
    assert slide_type(md("plain text")) == "-"
    assert slide_type(nbformat.v4.new_code_cell("x = 1")) == "-"
    own = md("## Section")
    own.metadata["slideshow"] = {"slide_type": "fragment"}
    assert slide_type(own) == "fragment"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_every_notebook_exports_to_slides(path, tmp_path):
    html = export_slides(path, tmp_path).read_text()
    nb = nbformat.read(path, as_version=4)
    slides = sum(slide_type(c) == "slide" for c in nb.cells)
    assert "Reveal.initialize" in html
    assert html.count("<section") >= slides
    assert nb.cells[0].source.splitlines()[0][2:] in html  # the title slide


def test_slides_use_local_javascript_when_vendored(tmp_path):
    (tmp_path / "vendor" / "mathjax").mkdir(parents=True)
    (tmp_path / "vendor" / "mathjax" / "MathJax.js").write_text("")
    html = export_slides(NOTEBOOKS[0], tmp_path).read_text()
    for local in ["vendor/reveal.js/dist/reveal.js", "vendor/requirejs/require.js",
                  "vendor/jquery/dist/jquery.min.js", "vendor/mathjax/MathJax.js"]:
        assert local in html
    assert "cdnjs.cloudflare.com/ajax/libs/require.js" not in html
