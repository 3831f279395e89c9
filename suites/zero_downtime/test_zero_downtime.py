"""Zero downtime, proven per deployment: a blue-to-green switch and a rollback, each under
Locust load through the Service, every request judged (scenarios/proof.py).

The platform comes from the ``zd_platform`` fixture, so the same tests run unchanged on every
target that can switch. They run one at a time (xdist group): two proofs sharing two cores
would each starve the other's load generator and end INCONCLUSIVE.
"""
from __future__ import annotations

import allure
import pytest

from zerodrop.fixtures.proofs import load_errors_in_one_line
from zerodrop.scenarios.blue_green import SwitchSettings, rollback, switch
from zerodrop.scenarios.proof import prove
from zerodrop.scenarios.steps import Context
from zerodrop.checks.steps import labels

pytestmark = [pytest.mark.zero_downtime, pytest.mark.xdist_group("zero_downtime")]
BLOCKER = allure.severity_level.BLOCKER


def _settings(pytestconfig) -> SwitchSettings:
    o = pytestconfig.option
    return SwitchSettings(token=o.token, replicas=o.replicas, ready_timeout=o.ready_timeout,
                          payment_timeout=o.payment_timeout, profile=getattr(o, "service_profile", None))


@labels("zero-downtime", "switch under load", BLOCKER)
def test_switch_under_load(zd_platform, zd_proof_settings, zd_evidence_dir, zd_terminal, zd_judged,
                           tmp_path, pytestconfig):
    """Blue (v1.0.0) to green (v1.2.0) while the load runs: no request dropped, no payment lost."""
    scenario = switch(zd_platform, "v1.2.0", _settings(pytestconfig), name="switch-under-load")
    with zd_terminal() as stream, load_errors_in_one_line():
        proof = prove(zd_platform, scenario, Context(zd_platform), zd_proof_settings,
                      zd_evidence_dir, tmp_path / "ledger", progress_stream=stream)
    zd_judged(proof)


@labels("zero-downtime", "rollback under load", BLOCKER)
def test_rollback_under_load(zd_platform, zd_proof_settings, zd_evidence_dir, zd_terminal, zd_judged,
                             tmp_path, pytestconfig):
    """After a switch to green, back to blue (v1.0.0) under the same load."""
    settings = _settings(pytestconfig)
    with allure.step("switch to green first (no load)"):
        first = switch(zd_platform, "v1.2.0", settings).run(Context(zd_platform))
        assert first.ok, first.failure
    scenario = rollback(zd_platform, settings, name="rollback-under-load")
    with zd_terminal() as stream, load_errors_in_one_line():
        proof = prove(zd_platform, scenario, Context(zd_platform), zd_proof_settings,
                      zd_evidence_dir, tmp_path / "ledger", progress_stream=stream)
    zd_judged(proof)
