"""The canary (scenarios/canary.py) on the local platform under real load, judged from the
ledger as it grows: a healthy canary is promoted; a canary that starts failing after its smoke
test is caught at its first stage, before the stage ends, and rolled back before it reaches
100 %, with every failed request the canary's own; a slow canary fails on its p99; a stage
without enough requests to judge is "no data" and never promoted.

The load is fresh connections only: the local Service front splits NEW connections by weight
(as kube-proxy would), so kept-alive clients would stay where their connection is."""
from __future__ import annotations

from pathlib import Path

import pytest

from zerodrop.platforms.local.platform import LocalConfig, stand_up
from zerodrop.scenarios.canary import CanarySettings, canary
from zerodrop.scenarios.proof import ProofSettings, prove
from zerodrop.scenarios.steps import Context

pytestmark = pytest.mark.slow
LOAD = ProofSettings(users=10, rate=150.0, baseline_s=1.0, tail_s=1.0, show_progress=False,
                     populations={"fresh": 100}, idle_clients=0)
# the p99 limit is the slow canary's test; here a busy CI machine's own p99 (~1 s at times)
# must not roll a healthy canary back
QUICK = CanarySettings(stages=(10, 50, 100), stage_s=4.0, min_requests=30, replicas=1,
                       max_p99_ms=5000.0)


def run_canary(tmp_path: Path, settings: CanarySettings, prometheus: bool = False):
    platform = stand_up(LocalConfig(replicas=1, prometheus=prometheus), idle_replicas=0)
    try:
        proof = prove(platform, canary(platform, "v2.0.0", settings), Context(platform), LOAD,
                      tmp_path / "out", tmp_path / "ledger")
        after = (platform.active_color(), len(platform.replicas("green")))
    finally:
        platform.teardown()
    return proof, after


def test_a_healthy_canary_goes_through_its_stages_and_is_promoted(tmp_path):
    """... judged from the ledger and from a real Prometheus scraping every replica."""
    proof, (active, _) = run_canary(tmp_path, QUICK, prometheus=True)
    assert proof.scenario.ok, proof.explain()
    assert proof.verdict.verdict == "PASS", proof.explain()
    facts = proof.verdict.to_dict()["canary"]
    assert facts["outcome"] == "promoted" and active == "green"
    assert [s["weight"] for s in facts["stages"]] == [10, 50]
    for stage in facts["stages"]:
        assert stage["outcome"] in ("pass", "marginal"), stage
        assert stage["requests"]["canary"] >= 30 and stage["requests"]["stable"] >= 30, stage
        assert [c["name"] for c in stage["checks"]] == [
            "error rate", "p99", "errors vs stable", "latency vs stable", "prometheus error rate",
            "prometheus errors vs stable", "prometheus p99", "prometheus p99 vs stable"]
        prom = {c["name"]: c for c in stage["checks"] if c["name"].startswith("prometheus")}
        assert all(c["outcome"] == "pass" and c["value"] is not None for c in prom.values()), prom
        assert prom["prometheus error rate"]["value"] == 0.0, prom  # data, and no 5xx
    # the shares moved: the canary answered more at 50 % than at 10 %
    first, second = (s["requests"] for s in facts["stages"])
    assert second["canary"] / (second["canary"] + second["stable"]) > \
        first["canary"] / (first["canary"] + first["stable"])


def test_a_canary_that_starts_failing_is_rolled_back_early_and_only_its_requests_failed(tmp_path):
    settings = CanarySettings(stages=(10, 50, 100), stage_s=20.0, min_requests=30, replicas=1,
                              max_p99_ms=5000.0, fault={"error_rate": 0.3}, fault_after_s=0.5)
    proof, (active, green_left) = run_canary(tmp_path, settings)
    assert not proof.scenario.ok
    assert proof.scenario.failure.startswith("step 'canary 10%' failed: canary failed at 10%: "
                                             "canary error rate "), proof.scenario.failure
    facts = proof.verdict.to_dict()["canary"]
    assert facts["outcome"] == "rolled back" and active == "blue" and green_left == 0
    assert [s["weight"] for s in facts["stages"]] == [10]  # never reached 100 %, nor 50 %
    # caught as soon as the canary had enough requests, not at the end of its 20 s stage
    assert facts["t_fault_on"] is not None and facts["t_detected"] - facts["t_fault_on"] < 10
    assert facts["t_rolled_back"] >= facts["t_detected"]
    from zerodrop.records.ledger import read_records
    with open(proof.load.ledger_path, encoding="utf-8") as lines:
        failed = [r for r in read_records(lines) if r.failed]
    assert failed and {r.version for r in failed} == {"v2.0.0"}, \
        {(r.version, r.outcome) for r in failed}


def test_a_slow_canary_fails_on_its_p99(tmp_path):
    settings = CanarySettings(stages=(10, 50, 100), stage_s=20.0, min_requests=30, replicas=1,
                              max_p99_ms=2000.0, fault={"latency_ms": 2500}, fault_after_s=0.5)
    proof, (active, _) = run_canary(tmp_path, settings)
    assert "canary failed at 10%: canary p99 " in proof.scenario.failure, proof.scenario.failure
    assert proof.verdict.to_dict()["canary"]["outcome"] == "rolled back" and active == "blue"


def test_a_stage_without_enough_requests_is_no_data_and_never_promoted(tmp_path):
    """The seed read an empty answer as 0.0 and passed; here too few requests is no data."""
    settings = CanarySettings(stages=(10, 100), stage_s=2.0, min_requests=10_000, replicas=1)
    proof, (active, _) = run_canary(tmp_path, settings)
    assert proof.scenario.failure.startswith("step 'canary 10%' failed: canary stage 10% has no "
                                             "data to judge: "), proof.scenario.failure
    assert proof.verdict.to_dict()["canary"]["outcome"] == "rolled back" and active == "blue"


def test_a_prometheus_that_stopped_answering_stops_the_canary_before_any_traffic_moves(tmp_path):
    """Prometheus killed after the platform stood up: the canary fails at its "Prometheus
    scrapes both versions" step, in one line, before any share of traffic moved to it (the
    seed read an unreachable Prometheus as 0.0 and promoted)."""
    import os
    import signal
    from zerodrop.records.events import EventName
    platform = stand_up(LocalConfig(replicas=1, prometheus=True), idle_replicas=0)
    try:
        os.kill(platform._prometheus.pid, signal.SIGKILL)  # the process the platform started
        result = canary(platform, "v2.0.0", QUICK).run(Context(platform))
        weights = [e for e in platform.events.snapshot()
                   if e.name == EventName.SELECTOR_PATCHED and "green" in str(e.detail)]
        active = platform.active_color()
    finally:
        platform.teardown()
    assert not result.ok
    assert result.failure.startswith("step 'Prometheus scrapes both versions' failed: "
                                     f"Prometheus at {platform.metrics_url} cannot be asked: "
                                     "cannot reach Prometheus"), result.failure
    assert "\n" not in result.failure
    assert not weights and active == "blue", weights
