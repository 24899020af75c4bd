# Two commands on a fresh clone with only Python present:
#   make lab    set everything up and open the course in JupyterLab
#   make test   set everything up and run every test (what .ci/run calls)
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
BROWSER_STAMP := $(VENV)/.browser-installed

.PHONY: setup data lab test lint unit notebooks test-browser bench execute clean-outputs slides deploy clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --editable '.[test]'
	touch $(STAMP)

$(BROWSER_STAMP): $(STAMP)
	$(PY) -m pip install --quiet --editable '.[test,browser]'
	touch $(BROWSER_STAMP)

setup: $(STAMP) data

data: $(STAMP)
	$(PY) -c "from course_utils.data import prepare_mnist; print('MNIST verified and unpacked in', prepare_mnist())"

lab: setup
	$(VENV)/bin/jupyter lab notebooks/ $(if $(filter 0,$(shell id -u)),--allow-root)

# grading comes last: it grades the runs that notebooks and test-browser made.
test: lint unit notebooks test-browser grading

lint: setup
	$(VENV)/bin/ruff check course_utils tests notebooks source

# The C program's tests need a compiler: tools/ensure-cc installs one where it can (CI must have it).
unit: setup
	@tools/ensure-cc || [ -z "$$CI" ]
	$(PY) -m pytest tests --ignore=tests/browser --ignore=tests/grading

# nbgrader grades every notebook, networking off: the reference solutions as `make notebooks` ran
# them score full points, the released notebooks as `make test-browser` ran them none (graded from
# those runs' outputs, kept in build/executed/), a broken exercise loses its points and an endless
# loop is cut off (nbgrader running them); see tests/grading.
.PHONY: grading grade
grading: setup
	tools/offline $(PY) -m pytest tests/grading -p no:cacheprovider

# Autograde SUBMISSIONS/<student_id>/<NN_name>.ipynb with nbgrader into $(GRADES); see README.
# FEEDBACK=folder also writes nbgrader's feedback HTML there, one folder per student.
GRADES ?= build/grades.csv
GRADE_FEEDBACK = $(if $(FEEDBACK),--feedback "$(FEEDBACK)")
grade: setup
	@test -n "$(SUBMISSIONS)" || { echo "usage: make grade SUBMISSIONS=folder"; exit 2; }
	$(PY) -m course_utils.maintainer.grading "$(SUBMISSIONS)" --out "$(GRADES)" $(GRADE_FEEDBACK)

# Every notebook as a test, with networking off for the kernel (see tools/offline): the instructor
# version (reference solutions and hidden tests from source/), every self-check required to pass.
# (test-browser runs the student versions, unsolved.) Each run is kept in build/executed/instructor.
notebooks: setup
	$(PY) -m course_utils.maintainer.release instructor
	COURSE_STRICT_CHECKS=1 tools/offline $(PY) -m pytest --nbval-lax --nbval-current-env \
		--nbval-cell-timeout=900 -p no:cacheprovider -p course_utils.maintainer.executed \
		--executed-dir build/executed/instructor build/instructor/

# Every notebook run through JupyterLab's UI in headless Chromium, networking off.
# Where chromium cannot be had, this says so and is skipped, except in CI, where it must run.
test-browser: setup $(BROWSER_STAMP)
	@if tools/ensure-chromium; then \
		tools/offline $(PY) -m pytest tests/browser -p no:cacheprovider; \
	elif [ -n "$$CI" ]; then exit 1; \
	else echo "browser test skipped: chromium is not available"; fi

bench: setup
	$(PY) -m course_utils.maintainer.run_notebooks bench
	@if tools/ensure-chromium && $(MAKE) --no-print-directory $(BROWSER_STAMP) >/dev/null; then \
		rm -f build/browser/summary.json; \
		tools/offline $(PY) -m pytest tests/browser -q -p no:cacheprovider || true; \
		$(PY) -m course_utils.maintainer.run_notebooks browser-figures; \
	fi

# The student notebooks generated from source/ (nbgrader), run, and stored with their outputs.
execute: setup
	$(PY) -m course_utils.maintainer.release students
	$(PY) -m course_utils.maintainer.run_notebooks execute

clean-outputs: setup
	$(PY) -m course_utils.maintainer.run_notebooks clean

# Slides for lectures, in build/slides (offline when npm can fetch their JavaScript, see tools/vendor-slides).
slides: setup
	tools/vendor-slides
	$(PY) -m course_utils.maintainer.slides

# The compressed model in a C program of the course's own: deploy/ reads notebook 13's compact file
# and notebook 11's fixed-point one. No Python and no library needed: `build/deploy/dlcz --accuracy
# model.dlcz` (see --help). `make unit` builds and tests it (tests/test_deploy.py): without a C
# compiler those tests are skipped, except in CI ($CI set), where they fail.
deploy: build/deploy/dlcz

build/deploy/dlcz: $(wildcard deploy/*.c deploy/*.h)
	mkdir -p build/deploy
	$(CC) -std=c99 -O2 -Wall -Wextra -o $@ $(sort $(wildcard deploy/*.c)) -lm

clean:
	rm -rf $(VENV) build data/mnist/MNIST data/checkpoints/cache bench/results.json
