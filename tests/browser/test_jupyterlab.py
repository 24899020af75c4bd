"""The student path in a real browser: JupyterLab on loopback, headless Chromium, Run All.

For every notebook: open it through the JupyterLab UI, run all cells, wait until every code
cell has run, fail on any error output, check that plots appear (and ipywidgets controls render
as widgets where the notebook has one), and save a screenshot under build/browser/. The run, as
JupyterLab saved it, is kept in build/executed/student/: `make grading` grades it (the untouched
notebooks must score nothing) instead of running the notebooks again.
The instructor path too: one notebook shown as live RISE slides (jupyterlab-rise), a code cell run
on its slide.
Needs Debian's chromium (tools/ensure-chromium installs it) and the playwright package.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import nbformat
import pytest

from course_utils.distributed import free_port
from course_utils.maintainer.grading import BLANK, RUNS
from course_utils.maintainer.slides import slide_type
from course_utils.paths import PROJECT_ROOT

playwright_api = pytest.importorskip("playwright.sync_api")

NOTEBOOKS = sorted((PROJECT_ROOT / "notebooks").glob("*.ipynb"))
OUT_DIR = PROJECT_ROOT / "build" / "browser"
RUNS_DIR = RUNS[BLANK][0]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
NOTEBOOK_TIMEOUT_S = 900
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab serving a copy of the notebooks (so saved outputs never touch the repository)."""
    root = tmp_path_factory.mktemp("lab")
    shutil.copytree(PROJECT_ROOT / "notebooks", root / "notebooks")
    settings = root / "settings" / "@jupyterlab"
    (settings / "notebook-extension").mkdir(parents=True)
    (settings / "apputils-extension").mkdir(parents=True)
    # Render every cell, not only those in view, so outputs can be inspected anywhere in the page;
    # and do not ask about fetching news (there is no network here).
    (settings / "notebook-extension" / "tracker.jupyterlab-settings").write_text(
        json.dumps({"windowingMode": "none"}))
    (settings / "apputils-extension" / "notification.jupyterlab-settings").write_text(
        json.dumps({"fetchNews": "false"}))
    port, token = free_port(), secrets.token_hex(16)
    env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(root / "settings"),
               JUPYTER_CONFIG_DIR=str(root / "config"))
    server = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ServerApp.ip=127.0.0.1",
         f"--ServerApp.port={port}", f"--IdentityProvider.token={token}",
         f"--ServerApp.root_dir={root}", *(["--allow-root"] if os.geteuid() == 0 else [])],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(120):
        try:
            urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    else:
        server.kill()
        pytest.fail("JupyterLab did not start")
    yield base, token, root
    server.terminate()
    server.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed (tools/ensure-chromium installs it)")
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def saved_notebook(root: Path, name: str) -> nbformat.NotebookNode:
    return nbformat.read(root / "notebooks" / name, as_version=4)


def run_all_and_wait(page, root: Path, name: str) -> nbformat.NotebookNode:
    """Run All through the menu, then save every few seconds until every code cell has run."""
    page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Run All Cells").first.click()
    deadline = time.monotonic() + NOTEBOOK_TIMEOUT_S
    while time.monotonic() < deadline:
        time.sleep(5)
        page.keyboard.press("Control+s")
        time.sleep(1)
        nb = saved_notebook(root, name)
        code = [c for c in nb.cells if c.cell_type == "code"]
        errors = [o for c in code for o in c.outputs if o.output_type == "error"]
        if errors or all(c.execution_count for c in code):
            return nb
    pytest.fail(f"{name} did not finish within {NOTEBOOK_TIMEOUT_S} s")


def shut_down_kernels(base: str, token: str) -> None:
    """Stop every kernel the server runs, so each notebook starts in a fresh one."""
    headers = {"Authorization": f"token {token}"}
    with urllib.request.urlopen(urllib.request.Request(f"{base}/api/kernels",
                                                       headers=headers)) as response:
        kernels = json.load(response)
    for kernel in kernels:
        request = urllib.request.Request(f"{base}/api/kernels/{kernel['id']}", headers=headers,
                                         method="DELETE")
        urllib.request.urlopen(request).close()


def record_result(name: str, passed: bool) -> None:
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    summary_path = OUT_DIR / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    summary[Path(name).stem] = passed
    summary_path.write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_in_jupyterlab(lab, browser, notebook):
    base, token, root = lab
    name = notebook.name
    # a fresh copy without outputs, as a student starts
    blank = nbformat.read(notebook, as_version=4)
    for cell in blank.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.write(blank, root / "notebooks" / name)
    (RUNS_DIR / name).unlink(missing_ok=True)
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    passed = False
    try:
        # A workspace of its own, reset, so no tab of an earlier notebook is restored beside it.
        page.goto(f"{base}/lab/workspaces/{notebook.stem}/tree/notebooks/{name}"
                  f"?reset&token={token}")
        page.locator(".jp-Notebook").first.wait_for(timeout=60_000)
        accept_kernel = page.locator(".jp-Dialog .jp-mod-accept")
        try:
            accept_kernel.wait_for(timeout=5_000)  # JupyterLab may ask which kernel to start
            accept_kernel.click()
        except playwright_api.TimeoutError:
            pass
        page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first.wait_for(
            timeout=60_000)
        nb = run_all_and_wait(page, root, name)
        errors = [f"{o.ename}: {o.evalue}" for c in nb.cells if c.cell_type == "code"
                  for o in c.outputs if o.output_type == "error"]
        assert not errors, f"{name}: {errors}"
        expects_plots = any("image/png" in o.get("data", {}) for c in nb.cells
                            if c.cell_type == "code" for o in c.outputs)
        if expects_plots:
            assert page.locator(".jp-OutputArea-output img").count() > 0, (
                f"{name}: no plot rendered")
        widget_outputs = [o["data"] for c in nb.cells if c.cell_type == "code" for o in c.outputs
                          if "application/vnd.jupyter.widget-view+json" in o.get("data", {})]
        if widget_outputs:  # progress bars, sliders: drawn as widgets, not as their text fallback
            page.locator(".jp-OutputArea-output .jupyter-widgets").first.wait_for(timeout=30_000)
        if any(data.get("text/plain", "").startswith("interactive(") for data in widget_outputs):
            slider = page.locator(".jp-OutputArea-output .widget-slider").first
            slider.wait_for(timeout=30_000)
            slider.scroll_into_view_if_needed()
        passed = True
        RUNS_DIR.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / "notebooks" / name, RUNS_DIR / name)
    finally:
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(OUT_DIR / f"{notebook.stem}.png"))
        page.close()
        shut_down_kernels(base, token)
        record_result(name, passed)


RISE_NOTEBOOK = "00_start_here.ipynb"


def test_notebook_runs_as_live_rise_slides(lab, browser):
    """Open a notebook in JupyterLab, render it as RISE slides, run a code cell on its slide."""
    base, token, root = lab
    nb = nbformat.read(PROJECT_ROOT / "notebooks" / RISE_NOTEBOOK, as_version=4)
    for cell in nb.cells:  # headings start slides, as in `make slides`; no stored outputs
        cell.metadata["slideshow"] = {"slide_type": slide_type(cell)}
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.write(nb, root / "notebooks" / RISE_NOTEBOOK)
    first_code = next(i for i, cell in enumerate(nb.cells) if cell.cell_type == "code")
    expect = playwright_api.expect
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    try:
        page.goto(f"{base}/lab/workspaces/rise/tree/notebooks/{RISE_NOTEBOOK}?reset&token={token}")
        page.locator(".jp-Notebook").first.wait_for(timeout=60_000)
        accept_kernel = page.locator(".jp-Dialog .jp-mod-accept")
        try:
            accept_kernel.wait_for(timeout=5_000)
            accept_kernel.click()
        except playwright_api.TimeoutError:
            pass
        page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']").first.wait_for(
            timeout=60_000)
        # Select the first code cell, so the slideshow opens on its slide; then the toolbar
        # button "Render as Reveal Slideshow" (Alt+R) opens the slides beside the notebook.
        page.locator(".jp-Notebook .jp-Cell").nth(first_code).locator(".jp-InputPrompt").click()
        page.locator("[data-jp-item-name='RISE-button'] button").click()
        slides = page.frame_locator(".jp-IFrame iframe")
        cell = slides.locator(".reveal section.present .jp-Cell").filter(
            has_text=nb.cells[first_code].source.splitlines()[0])
        cell.locator(".jp-InputPrompt").click(timeout=60_000)
        page.keyboard.press("Shift+Enter")  # RISE's smart-exec: run the cell, live, on the slide
        output = cell.locator(".jp-OutputArea")
        expect(output).to_contain_text("Matplotlib", timeout=60_000)  # its last line printed
        expect(output).not_to_contain_text("Traceback")
    finally:
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(OUT_DIR / f"rise_{Path(RISE_NOTEBOOK).stem}.png"))
        page.close()
        shut_down_kernels(base, token)
