"""suites/canary as a user runs it (a separate pytest process, a real local platform, a real
Prometheus): each of its two tests FAILS for the right reason when what it guards is broken,
and its options refuse what cannot run in one line, before any platform starts."""
from __future__ import annotations

import pytest

from tests.integration.conftest import run_pytest

pytestmark = pytest.mark.slow
QUICK = ("--target", "local", "--replicas", "1", "--load-rate", "200",
         "--canary-stage-seconds", "3")


def canary_suite(tmp_path, *args: str):
    return run_pytest("suites/canary", *QUICK, "--alluredir", str(tmp_path / "allure"),
                      "--evidence-dir", str(tmp_path / "out"), *args, timeout=300)


def test_a_canary_promoted_without_any_analysis_stage_fails_the_rollback_test(tmp_path):
    """--canary-stages 100: no stage to judge, so the faulty canary goes straight to 100 %.
    The rollback test must fail on that, not pass because nothing failed in its stages."""
    done = canary_suite(tmp_path, "--canary-stages", "100", "-k", "faulty")
    assert done.returncode == 1, done.stdout[-3000:]
    assert "the faulty canary was not rolled back (promoted)" in done.stdout, done.stdout[-3000:]


def test_a_canary_whose_stages_cannot_gather_data_is_never_promoted(tmp_path):
    """More requests per stage than the load can send: every stage is "no data", which must
    fail the healthy canary's test (the seed promoted on an empty answer read as 0.0)."""
    done = canary_suite(tmp_path, "--canary-stages", "25,100", "--canary-min-requests", "100000",
                        "-k", "healthy")
    assert done.returncode == 1, done.stdout[-3000:]
    assert "canary stage 25% has no data to judge" in done.stdout, done.stdout[-3000:]


def test_the_faulty_canary_is_rolled_back_and_the_healthy_one_promoted(tmp_path):
    """The positive control of the two above, with the same quick settings."""
    done = canary_suite(tmp_path, "--canary-stages", "25,100")
    assert done.returncode == 0, done.stdout[-3000:]
    assert "2 passed" in done.stdout, done.stdout[-3000:]


@pytest.mark.parametrize("args, message", [
    (("--canary-stages", "5,10"), "--canary-*: canary stages must end at 100 (the promotion), got [5, 10]"),
    (("--canary-stages", "10,5,100"), "--canary-*: canary stages must grow, got [10, 5, 100]"),
    (("--canary-stages", "five"), "--canary-stages 'five': give whole percents separated by commas"),
    (("--canary-max-error-rate", "150"), "--canary-max-error-rate must be in 0..100 %"),
])
def test_canary_options_that_cannot_run_are_refused_in_one_line(tmp_path, args, message):
    done = run_pytest("suites/canary", "--target", "local", *args, timeout=60)
    assert done.returncode == 4, done.stdout[-2000:] + done.stderr[-2000:]
    assert message in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr + done.stdout
