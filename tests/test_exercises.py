"""The self-check engine, and every Part I self-check against its reference and wrong answers."""

import pytest
import torch

from course_utils.exercises import STRICT_ENV, Case, check, check_cases, compare
from course_utils.maintainer.wrong_solutions import EXERCISES, passes, rejection_figures


def not_attempted() -> bool:
    raise NotImplementedError("your code here")


def test_strict_check_raises_unless_it_passes(monkeypatch):
    monkeypatch.setenv(STRICT_ENV, "1")
    assert check("right", lambda: True)
    with pytest.raises(AssertionError, match="wrong"):
        check("wrong", lambda: False)
    with pytest.raises(NotImplementedError):
        check("stub", not_attempted)
    with pytest.raises(ZeroDivisionError):
        check("bug", lambda: 1 / 0)


def test_check_cases_reports_expected_got_and_the_largest_difference(capsys):
    expected = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
    assert not check_cases("demo", [
        Case("equal", 5, lambda: 5),
        Case("off", expected, lambda: expected + torch.tensor([[0.0, 0.0], [0.0, 0.25]])),
        Case("shape", expected, lambda: expected.T.reshape(4)),
        Case("bug", 1, lambda: 1 / 0),
    ], strict=False)
    captured = capsys.readouterr()
    out = captured.err  # a failing check reports on standard error
    assert captured.out == ""
    assert "✗ demo: 1 of 4 cases pass" in out
    assert "✓ equal: expected 5, got 5" in out
    assert "largest difference 0.25 over 4 entries" in out
    assert "expected shape (2, 2), got shape (4,)" in out
    assert "raised ZeroDivisionError" in out


def test_check_cases_not_attempted_and_strict(capsys):
    assert not check_cases("stub", [Case("a", 1, not_attempted)], strict=False)
    captured = capsys.readouterr()
    assert "not attempted" in captured.err and captured.out == ""
    assert check_cases("done", [Case("a", 1, lambda: 1)], strict=False)
    captured = capsys.readouterr()
    assert captured.out.startswith("✓ done: 1 of 1 cases pass") and captured.err == ""
    with pytest.raises(NotImplementedError):
        check_cases("stub", [Case("a", 1, not_attempted)], strict=True)
    with pytest.raises(AssertionError, match="expected 1, got 2"):
        check_cases("wrong", [Case("a", 1, lambda: 2)], strict=True)
    assert check_cases("right", [Case("a", 1, lambda: 1)], strict=True)


@pytest.mark.parametrize(("expected", "got", "ok"), [
    (1.0, 1.0 + 1e-9, True), (1.0, 1.1, False), (1.0, "1.0", False), (3, 3, True),
    (3, torch.tensor(3), True), (3, 3.0, False), ("a", "a", True), ([1, 2], (1, 2), True),
    ([1.0], [1.0, 2.0], False), (torch.tensor([1, 2]), torch.tensor([1, 3]), False),
    (torch.ones(2), torch.ones(2, dtype=torch.bool), False), (torch.ones(2), [1.0, 1.0], False),
    (torch.tensor([0.0]), torch.tensor([float("nan")]), False),
])
def test_compare(expected, got, ok):
    assert compare(expected, got)[0] is ok


@pytest.mark.parametrize("exercise", EXERCISES, ids=lambda e: e.name)
def test_each_check_passes_the_reference(exercise):
    assert passes(exercise, exercise.reference)


@pytest.mark.parametrize(("exercise", "wrong"), [(e, w) for e in EXERCISES for w in e.wrong],
                         ids=lambda v: v if isinstance(v, str) else v.name)
def test_each_check_rejects_a_plausible_wrong_answer(exercise, wrong):
    assert not passes(exercise, exercise.wrong[wrong])


def test_rejection_figures_cover_two_wrong_answers_per_exercise():
    figures = rejection_figures()
    assert figures["checks.wrong_rejected_fraction"] == 1.0
    assert figures["checks.wrong_pairs"] >= 2 * figures["checks.exercises"]
    assert all(len(e.wrong) >= 2 for e in EXERCISES)


def test_hidden_seed_changes_the_random_cases(capsys):
    from course_utils.checks.mnist_data import check_one_hot
    from course_utils.data import one_hot
    check_one_hot(one_hot, seed=0)
    check_one_hot(one_hot, seed=1)
    first, second = capsys.readouterr().out.split("✓ one_hot_by_comparison")[1:]
    assert first.splitlines()[1] != second.splitlines()[1]


def test_a_check_handed_the_course_version_says_so_instead_of_passing(capsys):
    from course_utils.checks.fixed_point import check_shift_round, check_to_fixed
    from course_utils.fixed_point import shift_round, to_fixed

    assert not check_to_fixed(to_fixed) and not check_shift_round(shift_round)
    assert "the course's version, not yours" in capsys.readouterr().err
    with pytest.raises(AssertionError, match="not yours"):
        check_to_fixed(to_fixed, strict=True)


def test_check_reports_pass_fail_not_attempted_and_errors(capsys):
    def stub():
        raise NotImplementedError

    check("passes", lambda: 1 + 1 == 2)
    check("fails", lambda: 1 + 1 == 3)
    check("stub", stub)
    check("broken", lambda: 1 / 0)
    captured = capsys.readouterr()
    assert captured.out == "✓ passes\n"  # passes on standard output, the rest on standard error
    err = captured.err.splitlines()
    assert err[0].startswith("✗ fails")
    assert "not attempted" in err[1] and "ZeroDivisionError" in err[2]
