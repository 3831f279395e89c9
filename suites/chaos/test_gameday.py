"""Game days: faults on purpose while a switch or a canary runs under load, each experiment
judged against the outcome it expects (scenarios/experiments.py, reports/gameday.py).

Run with ``zerodrop gameday NAME`` (or ``--experiment NAME``, repeatable, ``all``); plain
``zerodrop verify`` deselects this suite. Each experiment runs on a platform of its own and
writes ``reports/out/gameday-<name>.json`` and ``.html`` (the report a person reads), beside
the ordinary evidence of every request (``gameday-<name>-requests.*``).

The steady-state hypothesis is the service profile's ``[steady_state]``; when it does not hold
on the load's baseline, the experiment stops before its method and touches nothing (ABORTED).
"""
from __future__ import annotations

import allure
import pytest

from zerodrop.checks.steps import labels
from zerodrop.fixtures.proofs import load_errors_in_one_line
from zerodrop.plugin.gameday import selected

pytestmark = [pytest.mark.gameday, pytest.mark.xdist_group("zero_downtime")]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "experiment" in metafunc.fixturenames:
        names = selected(metafunc.config)
        metafunc.parametrize("experiment", names)


@labels("chaos", "game day", allure.severity_level.CRITICAL)
def test_gameday(experiment, zd_proof_settings, zd_evidence_dir, zd_terminal, tmp_path,
                 pytestconfig, request):
    """The experiment's expectation holds: the switch completes or aborts as it should, the
    failures stay in their budget, the steady state holds before and after, no acknowledged
    write is lost and every fault is removed."""
    from zerodrop.scenarios.experiments import lookup
    from zerodrop.scenarios.gameday import run_gameday
    from zerodrop.fixtures.gameday import gameday_setup
    exp = lookup(experiment)
    # a canary needs a platform that splits traffic by weight (on a cluster: its router)
    platform = request.getfixturevalue("zd_canary_platform" if exp.method == "canary"
                                       else "zd_platform")
    gd, hypothesis, settings = gameday_setup(pytestconfig, exp, platform, zd_proof_settings)
    with zd_terminal() as stream, load_errors_in_one_line():
        result = run_gameday(gd, hypothesis, settings, zd_evidence_dir, tmp_path / "ledger",
                             progress_stream=stream, target=pytestconfig.option.target)
    allure.attach.file(str(result.report["html"]), name=f"game day {experiment}",
                       attachment_type=allure.attachment_type.HTML)
    if result.verdict.verdict != "PASS":
        pytest.fail(result.explain(), pytrace=False)
