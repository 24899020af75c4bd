"""The self-checks of Part I's exercises, one module per notebook (``mnist_data`` is notebook 01).

Each ``check_*`` function takes the student's function or class, compares it case by case with the
tested ``course_utils`` version (:mod:`course_utils.exercises` prints expected against got) and
returns whether every case passed. ``seed`` changes the random cases: the grader's hidden tests
call the same check with another seed, so an answer fitted to the visible cases earns nothing.
"""
