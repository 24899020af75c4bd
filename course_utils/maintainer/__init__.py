"""Maintainer tools, apart from what students import: run and benchmark the notebooks
(``run_notebooks``), export slides (``slides``), generate the student notebooks from the
instructor sources and build the instructor notebooks that ``make test`` runs (``release``),
and autograde submissions with nbgrader (``grading``)."""
