"""The seed's canary (canary-controller.py) under load, with its faults fixed
(scenarios/canary.py): the new version gets a growing share of the traffic, stage by stage
(--canary-stages, --canary-stage-seconds), judged at each stage from the ledger (every request
knows the version that answered it) and from a real Prometheus scraping every replica (the
seed's PromQL, fixed), and is promoted or rolled back.

- a healthy canary is promoted, every request of the run is judged as in a switch (PASS), and
  afterwards every panel query of the shipped Grafana dashboard answers data from that run's
  Prometheus (a dashboard whose queries match nothing is a defect);
- a canary that starts failing after its smoke test is rolled back before it reaches 100 %,
  and the ledger shows no request failed outside the canary's share.

Each runs on a platform of its own (``zd_canary_platform``); the verdict JSON of each is
``reports/out/canary-<name>.json`` with the ``canary`` section: each stage's weight, requests
per version, each check's value and outcome, ``t_fault_on``, ``t_detected``, ``t_rolled_back``.
The load is fresh connections at --canary-load-rate (200/s): the local Service front splits NEW
connections by weight, as kube-proxy does, so kept-alive clients would stay where their
connection is.
"""
from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import allure
import pytest

from zerodrop.checks.steps import labels
from zerodrop.fixtures.proofs import load_errors_in_one_line
from zerodrop.scenarios.canary import canary
from zerodrop.scenarios.proof import prove
from zerodrop.scenarios.steps import Context

pytestmark = [pytest.mark.zero_downtime, pytest.mark.canary,
              pytest.mark.xdist_group("zero_downtime")]
BLOCKER = allure.severity_level.BLOCKER
NEW_VERSION = "v1.2.0"
FAULT = {"error_rate": 0.3}  # 30 % of the canary's answers become 500s ...
FAULT_AFTER_S = 1.0          # ... this long into its first stage, after its smoke test passed


def _settings(config: pytest.Config, **changes):
    o = config.option
    profile = getattr(o, "service_profile", None)
    reference = profile is None or profile.is_default
    return replace(o.canary_settings, token=o.token, replicas=o.replicas,
                   ready_timeout=o.ready_timeout, profile=profile,
                   prometheus=reference,  # the seed's metric names are the reference service's
                   **changes)


def _load(zd_proof_settings, config: pytest.Config):
    """New connections only (the split is by connection), at the canary's own rate: no more
    than --canary-load-rate, nor than the proofs' --load-rate."""
    rate = min(zd_proof_settings.rate, config.option.canary_load_rate)
    return replace(zd_proof_settings, populations={"fresh": 100}, idle_clients=0, rate=rate)


def _run(platform, scenario, load, evidence_dir, tmp_path, zd_terminal):
    with zd_terminal() as stream, load_errors_in_one_line():
        return prove(platform, scenario, Context(platform), load, evidence_dir,
                     tmp_path / "ledger", progress_stream=stream)


@labels("canary", "healthy canary promoted", BLOCKER)
def test_healthy_canary_is_promoted(zd_canary_platform, zd_proof_settings, zd_evidence_dir,
                                    zd_terminal, zd_judged, tmp_path, pytestconfig):
    """v1.2.0 through every stage to 100 %: promoted, no request dropped, and the dashboard's
    every panel query answers data from the run's Prometheus."""
    settings = _settings(pytestconfig)
    scenario = canary(zd_canary_platform, NEW_VERSION, settings, name="canary-healthy")
    proof = _run(zd_canary_platform, scenario, _load(zd_proof_settings, pytestconfig), zd_evidence_dir,
                 tmp_path, zd_terminal)
    zd_judged(proof)  # a PASS: promoted, and every request answered as in a switch
    facts = proof.verdict.to_dict()["canary"]
    assert facts["outcome"] == "promoted", facts
    if settings.prometheus:
        from zerodrop.payment_service.monitoring.dashboard import check_dashboard
        with allure.step("every dashboard panel query answers data from this run's Prometheus"):
            problems = check_dashboard(SimpleNamespace(query=zd_canary_platform.query_metrics))
        assert not problems, "dashboard queries without data: " + "; ".join(map(str, problems))


@labels("canary", "faulty canary rolled back", BLOCKER)
@pytest.mark.profile_needs("fault_api")
def test_faulty_canary_is_rolled_back(zd_canary_platform, zd_proof_settings, zd_evidence_dir,
                                      zd_terminal, tmp_path, pytestconfig):
    """v1.2.0 starts answering 30 % of its requests with 500 once past its smoke test: it is
    rolled back before it reaches 100 %, and every failed request was the canary's own."""
    from zerodrop.records.ledger import read_records
    from zerodrop.reports.allure_evidence import attach_proof
    settings = _settings(pytestconfig, fault=FAULT,
                         fault_after_s=min(FAULT_AFTER_S, pytestconfig.option.canary_stage_seconds / 2))
    scenario = canary(zd_canary_platform, NEW_VERSION, settings, name="canary-faulty")
    proof = _run(zd_canary_platform, scenario, _load(zd_proof_settings, pytestconfig), zd_evidence_dir,
                 tmp_path, zd_terminal)
    attach_proof(proof)
    facts = proof.verdict.to_dict()["canary"]
    assert facts["outcome"] == "rolled back", (
        f"the faulty canary was not rolled back ({facts['outcome']}): {proof.explain()}")
    weights = [s["weight"] for s in facts["stages"]]
    assert max(weights) < 100 and facts["t_detected"] is not None, facts
    assert zd_canary_platform.active_color() == "blue" and not [
        r for r in zd_canary_platform.replicas("green") if not r.terminating], \
        "after the rollback the stable colour serves alone and the canary is scaled to 0"
    with open(proof.load.ledger_path, encoding="utf-8") as lines:
        failed = [r for r in read_records(lines) if r.failed]
    outside = [r for r in failed if r.version != NEW_VERSION]
    assert failed, "the fault made no request fail: the rollback was not put to the test"
    assert not outside, (f"{len(outside)} of {len(failed)} failed requests were not the canary's "
                         f"(version {sorted({r.version or 'none' for r in outside})}): "
                         f"{outside[0].method} {outside[0].route} {outside[0].outcome}")
