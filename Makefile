# Two commands on a fresh clone with only Python present:
#   make lab    set everything up and open the course in JupyterLab
#   make test   set everything up and run every test (what .ci/run calls)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup data lab test unit notebooks bench execute clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --editable '.[test]'
	touch $(STAMP)

setup: $(STAMP) data

data: $(STAMP)
	$(PY) -c "from course_utils.data import prepare_mnist; print('MNIST verified and unpacked in', prepare_mnist())"

lab: setup
	$(VENV)/bin/jupyter lab notebooks/

test: unit notebooks

unit: setup
	$(PY) -m pytest tests

# Every notebook as a test, with networking off for the kernel (see tools/offline).
notebooks: setup
	tools/offline $(PY) -m pytest --nbval-lax --nbval-current-env --nbval-cell-timeout=900 -p no:cacheprovider notebooks/

bench: setup
	$(PY) -m course_utils.run_notebooks bench

execute: setup
	$(PY) -m course_utils.run_notebooks execute

clean:
	rm -rf $(VENV) data/mnist/MNIST data/checkpoints/cache bench/results.json
