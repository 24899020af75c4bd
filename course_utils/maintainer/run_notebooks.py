"""Run notebooks headless, each in a fresh kernel: ``make bench`` and ``make execute``.

    python -m course_utils.maintainer.run_notebooks bench [NOTEBOOK ...]    # -> bench/results.json
    python -m course_utils.maintainer.run_notebooks execute [NOTEBOOK ...]  # store fresh outputs
                                                                              in place
    python -m course_utils.maintainer.run_notebooks clean [NOTEBOOK ...]    # strip outputs in place
    python -m course_utils.maintainer.run_notebooks browser-figures         # browser test counts
                                                                              -> results

The benchmark measures each notebook's wall-clock seconds (kernel start included) and the
kernel's peak resident memory, and gathers the figures the notebooks ``record``; then nbgrader
grades the reference solutions and the blank notebooks (``grade.*``, see ``grading``).
"""

from __future__ import annotations

import argparse
import html
import json
import os
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from time import perf_counter

import nbformat
from jupyter_client import KernelManager
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbval.kernel import CURRENT_ENV_KERNEL_NAME, NbvalKernelspecManager

from ..bench import FIGURES_ENV
from ..paths import BUILD_DIR, NOTEBOOKS_DIR, PROJECT_ROOT
from .grading import grade_figures
from .wrong_solutions import rejection_figures

RESULTS_PATH = PROJECT_ROOT / "bench" / "results.json"
BROWSER_SUMMARY = BUILD_DIR / "browser" / "summary.json"
CELL_TIMEOUT_S = 900
PEAK_RSS_CODE = (
    "import resource, sys\n"
    "_kb = 1 if sys.platform == 'darwin' else 1024  # ru_maxrss is bytes on macOS, KiB on Linux\n"
    "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * _kb / 2**20)"
)


def run_notebook(path: Path, figures_file: Path | None = None
                 ) -> tuple[nbformat.NotebookNode, float, float | None, bool]:
    """Execute ``path`` in a fresh kernel of this Python environment.

    Returns the executed notebook, wall-clock seconds, the kernel's peak RSS in MB (None if
    the notebook failed before the end) and whether every cell ran without error.
    """
    nb = nbformat.read(path, as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell(PEAK_RSS_CODE))
    if figures_file is not None:
        os.environ[FIGURES_ENV] = str(figures_file)
    km = KernelManager(kernel_name=CURRENT_ENV_KERNEL_NAME,
                       kernel_spec_manager=NbvalKernelspecManager())
    client = NotebookClient(nb, km=km, timeout=CELL_TIMEOUT_S,
                            resources={"metadata": {"path": str(path.parent)}})
    start = perf_counter()
    ok = True
    try:
        client.execute()
    except CellExecutionError as err:
        ok = False
        lines = str(err).splitlines()
        # the cell and the error
        print(f"{path.name}: " + "\n".join(lines[:1] + lines[-12:]), file=sys.stderr)
    finally:
        os.environ.pop(FIGURES_ENV, None)
    seconds = perf_counter() - start
    peak_cell = nb.cells.pop()
    peak_mb = float(peak_cell.outputs[0]["text"]) if ok and peak_cell.outputs else None
    return nb, seconds, peak_mb, ok


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"


def widget_text(model_id: str, state: dict) -> str | None:
    """A progress bar widget (HTML, FloatProgress, HTML) as the text tqdm prints, from its saved
    state; None for any other widget."""
    model = state.get(model_id, {})
    children = [state.get(c.removeprefix("IPY_MODEL_"), {}) for c in
                model.get("state", {}).get("children", [])]
    kinds = [c.get("model_name") for c in children]
    if model.get("model_name") != "HBoxModel" or kinds != ["HTMLModel", "FloatProgressModel",
                                                           "HTMLModel"]:
        return None
    left, bar, right = (c["state"] for c in children)
    filled = round(10 * bar.get("value", 0) / bar["max"]) if bar.get("max") else 0
    text = f"{left.get('value', '')}|{'█' * filled}{' ' * (10 - filled)}|{right.get('value', '')}"
    return html.unescape(text).replace("\u2007", " ")


def store_finished_progress(nb: nbformat.NotebookNode) -> int:
    """Give each progress bar's plain-text fallback (what GitHub shows) its finished state, read
    from the widget state the run saved; returns how many outputs were changed."""
    state = nb.metadata.get("widgets", {}).get(WIDGET_STATE, {}).get("state", {})
    changed = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            view = output.get("data", {}).get(WIDGET_VIEW)
            text = view and widget_text(view["model_id"], state)
            if text:
                output["data"]["text/plain"] = text
                changed += 1
    return changed


def max_cell_seconds(nb: nbformat.NotebookNode) -> float:
    """The longest cell of an executed notebook, in seconds, from nbclient's timestamps."""
    longest = 0.0
    for cell in nb.cells:
        timing = cell.get("metadata", {}).get("execution", {})
        if "iopub.execute_input" in timing and "shell.execute_reply" in timing:
            start, end = (datetime.fromisoformat(timing[key].replace("Z", "+00:00"))
                          for key in ("iopub.execute_input", "shell.execute_reply"))
            longest = max(longest, (end - start).total_seconds())
    return longest


def load_results(results_path: Path = RESULTS_PATH) -> dict:
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    results.setdefault("notebooks", {})
    results.setdefault("figures", {})
    return results


def save_results(results: dict, results_path: Path = RESULTS_PATH) -> None:
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")


def bench(paths: list[Path], results_path: Path = RESULTS_PATH) -> dict:
    """Run each notebook, merge its measurements and figures into ``results_path``, return the
    results."""
    results = load_results(results_path)
    for path in paths:
        with tempfile.TemporaryDirectory() as tmp:
            figures_file = Path(tmp) / "figures.jsonl"
            nb, seconds, peak_mb, ok = run_notebook(path, figures_file)
            lines = figures_file.read_text().splitlines() if figures_file.exists() else []
        for line in lines:
            item = json.loads(line)
            results["figures"][item["name"]] = item["value"]
        peak = None if peak_mb is None else round(peak_mb)
        results["notebooks"][path.stem] = {"seconds": round(seconds, 1),
                                           "peak_rss_mb": peak, "ok": ok,
                                           "max_cell_seconds": round(max_cell_seconds(nb), 1)}
        print(f"{path.stem:32s} {seconds:7.1f} s {peak or '?':>7} MB  {'ok' if ok else 'FAILED'}",
              flush=True)
        save_results(results, results_path)
    results["figures"].update(rejection_figures())
    # nbgrader, grading view
    results["figures"].update(grade_figures([path.stem for path in paths]))
    save_results(results, results_path)
    return results


def record_browser_figures(summary_path: Path = BROWSER_SUMMARY,
                           results_path: Path = RESULTS_PATH) -> dict:
    """Add the browser test's counts (``browser.notebooks_passed``, ``browser.notebooks_total``) to
    the results."""
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    results = load_results(results_path)
    results["figures"]["browser.notebooks_passed"] = sum(summary.values())
    results["figures"]["browser.notebooks_total"] = len(summary)
    save_results(results, results_path)
    print(f"browser: {sum(summary.values())} of {len(summary)} notebooks passed")
    return results


def clear_outputs(paths: list[Path]) -> None:
    """Strip every output and execution count, in place."""
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code":
                cell.outputs, cell.execution_count = [], None
        nbformat.write(nb, path)
        print(f"{path.name}: outputs cleared")


def execute(paths: list[Path]) -> bool:
    """Run each notebook and store its fresh outputs in place; False if any failed."""
    all_ok = True
    for path in paths:
        nb, seconds, _, ok = run_notebook(path)
        if ok:
            store_finished_progress(nb)
            nbformat.write(nb, path)
        all_ok &= ok
        print(f"{path.name}: {'stored' if ok else 'FAILED, left unchanged'} ({seconds:.0f} s)",
              flush=True)
    return all_ok


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["bench", "execute", "clean", "browser-figures"])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebooks/*.ipynb")
    args = parser.parse_args(argv)
    paths = [p.resolve() for p in args.notebooks] or sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
    if args.action == "bench":
        results = bench(paths)
        return 0 if all(results["notebooks"][p.stem]["ok"] for p in paths) else 1
    if args.action == "clean":
        clear_outputs(paths)
        return 0
    if args.action == "browser-figures":
        record_browser_figures()
        return 0
    return 0 if execute(paths) else 1


if __name__ == "__main__":
    sys.exit(main())
