"""The fault catalogue (scenarios/faults.py) on the local platform with the real
payment-service: each fault does what it says on real replicas, is a window on the timeline,
and is taken away again, also when the run is interrupted (Ctrl-C)."""
from __future__ import annotations

import pytest
import requests

from zerodrop.platforms.base import PlatformError
from zerodrop.platforms.local.platform import LocalConfig, stand_up
from zerodrop.reports.gameday import Hypothesis
from zerodrop.scenarios.experiments import EXPERIMENTS, build
from zerodrop.scenarios.faults import FaultError, FaultSpec, Injector, unusable, usable_kinds
from zerodrop.scenarios.steps import Context
from tests.procs import wait_until

pytestmark = pytest.mark.slow


@pytest.fixture
def two():
    """Blue active with two replicas (a fault may hit one of them)."""
    p = stand_up(LocalConfig(replicas=2))
    try:
        yield p
    finally:
        p.teardown()


def knobs(platform, replica) -> dict:
    resp = requests.get(f"{replica.url}/admin/faults", timeout=5,
                        headers={"Authorization": f"Bearer {platform.admin_token}"})
    resp.raise_for_status()
    return resp.json()["faults"]


def test_knob_faults_change_live_replicas_and_are_removed_with_their_window(two):
    ctx = Context(two)
    inj = Injector(two, ctx)
    name = inj.apply(FaultSpec("latency", "blue", {"latency_ms": 250}), "blue")
    inj.apply(FaultSpec("db-unreachable", "blue"), "blue")
    for r in two.replicas("blue"):
        assert knobs(two, r)["latency_ms"] == 250
    ready = requests.get(f"{two.replicas('blue')[0].url}/health/ready", timeout=5)
    assert ready.status_code == 503  # the database is unreachable: not ready
    assert inj.active == [name, "db-unreachable on blue"]
    assert inj.remove_all() == []
    for r in two.replicas("blue"):
        assert knobs(two, r)["latency_ms"] == 0 and knobs(two, r)["db_unreachable"] is False
    windows = ctx.facts().faults
    assert [w.name for w in windows] == [name, "db-unreachable on blue"]
    assert all(w.t_end is not None and w.t_end >= w.t_start for w in windows)
    assert len(two.events.named("fault removed")) == 2


def test_an_interrupted_run_leaves_no_fault_behind(two):
    """Ctrl-C while a fault is on: the Injector's with-block takes it away."""
    with pytest.raises(KeyboardInterrupt):
        with Injector(two) as inj:
            inj.apply(FaultSpec("error-rate", "blue", {"rate": 1.0}), "blue")
            assert requests.get(f"{two.service_url}/api/accounts/acc-001/balance",
                                headers={"Authorization": "Bearer test-token"},
                                timeout=5).status_code == 500
            raise KeyboardInterrupt
    assert all(knobs(two, r)["error_rate"] == 0 for r in two.replicas("blue"))


def test_delete_pod_replaces_the_replica_and_kill_restarts_it(two):
    inj = Injector(two)
    before = {r.name for r in two.replicas("blue")}
    gone = two.replicas("blue")[0].name
    inj.apply(FaultSpec("delete-pod", "blue", {"index": 0}, at="before x"), "blue")
    wait_until(lambda: gone not in {r.name for r in two.replicas("blue")}
               and len([r for r in two.replicas("blue") if not r.terminating]) == 2,
               30, "the deleted replica gone and a replacement running")
    assert {r.name for r in two.replicas("blue")} - before  # a new name: a replacement
    assert two.events.named("replica deleted")[-1].detail["replica"] == gone
    two.wait_ready("blue", 30)
    killed = two.replicas("blue")[0]
    inj.apply(FaultSpec("sigkill", "blue", {"index": 0}, at="before x"), "blue")
    wait_until(lambda: any(e.detail.get("replica") == killed.name and e.detail.get("restart")
                           for e in two.events.named("replica started")),
               30, "the killed replica restarted in place")
    assert inj.active == []  # a kill is a moment: nothing to remove


def test_flapping_readiness_takes_one_replica_in_and_out_of_the_endpoints(two):
    inj = Injector(two)
    flapping, steady = [r.name for r in two.replicas("blue")]
    inj.apply(FaultSpec("flapping-readiness", "blue", {"period_s": 1.0, "index": 0}), "blue")
    wait_until(lambda: any(e.detail.get("replica") == flapping
                           for e in two.events.named("replica unready")), 20,
               "the flapping replica taken out of the endpoints")
    wait_until(lambda: any(e.detail.get("replica") == flapping and e.t > two.events.named(
        "replica unready")[0].t for e in two.events.named("replica ready")), 20,
               "the flapping replica back in")
    assert inj.remove_all() == []
    assert not any(e.detail.get("replica") == steady for e in two.events.named("replica unready"))
    two.wait_ready("blue", 30)


def test_network_faults_are_refused_locally_in_one_line_naming_what_can(two):
    with pytest.raises(PlatformError, match="share this machine's loopback.*--target kind"):
        two.network_fault("blue", delay_ms=100)
    assert "network" not in usable_kinds(two, reference_service=True)
    why = unusable(FaultSpec("network", "new", {"delay_ms": 100}, at="after x"), two, True)
    assert why.startswith("fault 'network' cannot run here") and "usable: sigterm" in why
    why = unusable(FaultSpec("latency", "new"), two, reference_service=False)
    assert "knobs belong to the reference payment-service" in why and "latency" not in \
        why.split("usable:")[1]
    assert unusable(FaultSpec("quake"), two, True).startswith("unknown fault 'quake'; known:")


def test_an_experiment_whose_fault_matches_no_step_is_refused_before_anything(two):
    exp = EXPERIMENTS["kill-old-during-switch"]
    from dataclasses import replace
    bad = replace(exp, faults=(FaultSpec("sigterm", "old", {"index": 0}, at="before teleport"),))
    with pytest.raises(FaultError, match="no step of the method matches 'before teleport'"):
        build(bad, two, Hypothesis())
    assert two.deployed_version("green") != "v1.2.0"
    assert not two.events.named("fault applied") and not two.events.named("replica killed")
