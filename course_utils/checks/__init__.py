"""The self-checks of the exercises, one module per notebook, named after its topic
(``mnist_data`` is notebook 01, ``why_compress`` 05, ``weight_pruning`` 06, ``deploy_in_c`` 14,
``data_parallel`` 15).

Each ``check_*`` function takes the student's function or class, compares it case by case with the
tested ``course_utils`` version (:mod:`course_utils.exercises` prints expected against got) and
returns whether every case passed. ``seed`` changes the random cases: the grader's hidden tests
call the same check with another seed, so an answer fitted to the visible cases earns nothing.
"""
