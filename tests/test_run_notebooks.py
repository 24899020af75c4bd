import json

import nbformat

from course_utils.maintainer.run_notebooks import bench, execute


def write_notebook(path, *sources):
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources]),
                   path)
    return path


def test_bench_measures_a_notebook_and_collects_its_figures(tmp_path):
    good = write_notebook(tmp_path / "good.ipynb",
                          "from course_utils import record\nrecord('demo.acc', 0.75)",
                          "big = bytearray(200 * 2**20)  # touch 200 MB")
    bad = write_notebook(tmp_path / "bad.ipynb", "raise ValueError('boom')")
    results_path = tmp_path / "results.json"
    bench([good, bad], results_path)
    results = json.loads(results_path.read_text())
    assert results["figures"]["demo.acc"] == 0.75
    assert results["notebooks"]["good"]["ok"] is True and results["notebooks"]["bad"]["ok"] is False
    assert results["notebooks"]["good"]["peak_rss_mb"] >= 200
    assert results["notebooks"]["good"]["seconds"] > 0
    assert results["notebooks"]["good"]["max_cell_seconds"] >= 0
    assert results["figures"]["checks.wrong_rejected_fraction"] == 1.0


def test_execute_stores_outputs_without_the_measuring_cell(tmp_path):
    path = write_notebook(tmp_path / "n.ipynb", "print(6 * 7)")
    assert execute([path])
    nb = nbformat.read(path, as_version=4)
    assert len(nb.cells) == 1
    assert nb.cells[0].outputs[0]["text"] == "42\n"


def test_clear_outputs_strips_outputs_and_counts(tmp_path):
    from course_utils.maintainer.run_notebooks import clear_outputs

    path = write_notebook(tmp_path / "n.ipynb", "print(1)")
    nb = nbformat.read(path, as_version=4)
    nb.cells[0].outputs = [nbformat.v4.new_output("stream", text="1\n")]
    nb.cells[0].execution_count = 1
    nbformat.write(nb, path)
    clear_outputs([path])
    cell = nbformat.read(path, as_version=4).cells[0]
    assert cell.outputs == [] and cell.execution_count is None


def test_browser_counts_are_added_to_the_results(tmp_path):
    from course_utils.maintainer.run_notebooks import record_browser_figures

    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"00_start_here": True, "01_mnist_data": False,
                                   "02_linear_model": True}))
    results_path = tmp_path / "results.json"
    results_path.write_text(json.dumps({"notebooks": {}, "figures": {"lenet.test_acc": 0.99}}))
    figures = record_browser_figures(summary, results_path)["figures"]
    assert figures == {"lenet.test_acc": 0.99, "browser.notebooks_passed": 2,
                       "browser.notebooks_total": 3}
    assert json.loads(results_path.read_text())["figures"] == figures


def test_progress_bars_are_stored_in_their_finished_state():
    from course_utils.maintainer.run_notebooks import (
        WIDGET_STATE,
        WIDGET_VIEW,
        store_finished_progress,
    )
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("fit(...)")])
    nb.cells[0].outputs = [nbformat.v4.new_output("display_data", data={
        "text/plain": "  0%|          | 0/4 [00:00<?, ?batch/s]",
        WIDGET_VIEW: {"model_id": "box"}})]
    nb.metadata["widgets"] = {WIDGET_STATE: {"state": {
        "box": {"model_name": "HBoxModel",
                "state": {"children": ["IPY_MODEL_l", "IPY_MODEL_b", "IPY_MODEL_r"]}},
        "l": {"model_name": "HTMLModel", "state": {"value": "lr\u20070.1:\u2007100%"}},
        "b": {"model_name": "FloatProgressModel", "state": {"value": 4, "max": 4}},
        "r": {"model_name": "HTMLModel", "state": {"value": "\u20074/4\u2007[00:01&lt;00:00]"}},
    }}}
    assert store_finished_progress(nb) == 1
    assert (nb.cells[0].outputs[0]["data"]["text/plain"]
            == "lr 0.1: 100%|██████████| 4/4 [00:01<00:00]")
