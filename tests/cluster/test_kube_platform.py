"""The Kubernetes platform on a real kind cluster: the switch under load passes with the
cluster's own events on the timeline, each broken switch fails for its own reason, and bad
input fails in one line leaving nothing behind."""
from __future__ import annotations

import re

import pytest

from fixtures.kubernetes.platform import KubeConfig, new_namespace, stand_up
from fixtures.platform import PlatformError
from scenarios.blue_green import SwitchSettings, switch
from scenarios.proof import ProofSettings, prove
from scenarios.steps import Context

pytestmark = pytest.mark.slow
LOAD = ProofSettings(users=10, rate=60.0, baseline_s=1.0, tail_s=2.0, show_progress=False)
QUICK = SwitchSettings(replicas=1, post_deploy=False, verify_timeout=10, ready_timeout=120)
SLOW_BLUE = {"blue": {"latency_ms": 300}}
_n = iter(range(1, 1000))


def platform_for(cluster, run_id, faults=None, **config):
    namespace = new_namespace(run_id, f"t{next(_n)}")
    return stand_up(cluster, KubeConfig(replicas=1, run_id=run_id, ready_timeout=120, **config),
                    namespace, faults=faults)


def run_switch(cluster, run_id, tmp_path, settings=QUICK, faults=None, **config):
    platform = platform_for(cluster, run_id, faults, **config)
    try:
        proof = prove(platform, switch(platform, "v2.0.0", settings, name="k8s-control"),
                      Context(platform), LOAD, tmp_path / "out", tmp_path / "ledger")
    finally:
        platform.teardown()
    return platform, proof


def names(proof) -> list[str]:
    return [e.name for e in proof.timeline]


def drops(proof):
    return [c for c in proof.verdict.failure_classes if c.outcome in ("reset", "refused",
                                                                          "closed", "timeout")]


def test_switch_passes_with_the_clusters_events_on_the_timeline(cluster, run_id, tmp_path):
    """Positive control: every request answered, and the evidence shows what Kubernetes did:
    the selector patch, EndpointSlice changes, the old pod terminating and deleted."""
    _, proof = run_switch(cluster, run_id, tmp_path)
    assert proof.scenario.ok and proof.verdict.verdict == "PASS", proof.explain()
    assert proof.verdict.requests_failed == 0
    events = names(proof)
    for expected in ("selector patched", "endpoints changed", "replica terminating",
                     "replica terminated"):
        assert expected in events, events
    patched = next(e for e in proof.timeline if e.name == "selector patched")
    moved = [e for e in proof.timeline if e.name == "endpoints changed" and e.t >= patched.t
             and e.detail["front"] == "payment-service"]
    assert moved and all("green" in n for n in moved[0].detail["endpoints"]), moved
    assert '"selector patched"' in proof.evidence["json"].read_text()


def test_old_pods_sigkilled_mid_switch_fail(cluster, run_id, tmp_path):
    """Negative control: the old pods get a real SIGKILL (from the node, outside the pod's PID
    namespace) right after the switch instead of a drain: the requests they held are lost."""
    _, proof = run_switch(cluster, run_id, tmp_path, faults=SLOW_BLUE,
                          settings=SwitchSettings(replicas=1, post_deploy=False,
                                                  ready_timeout=120, broken="kill_old"))
    assert proof.verdict.verdict == "FAIL", proof.explain()
    t_kill = next(e.t for e in proof.timeline if e.name == "replica killed")
    assert drops(proof), proof.explain()
    assert 0 <= min(c.first_t for c in drops(proof)) - t_kill < 2.0, proof.explain()
    assert any(re.search(r"after 'replica killed'", r) for r in proof.verdict.reasons), \
        proof.explain()


def test_old_pods_without_prestop_or_drain_deleted_at_once_fail(cluster, run_id, tmp_path):
    """Negative control: the seed's race on a real cluster. No preStop, no app drain, and the
    old colour scaled down right after the selector patch: kube-proxy still sends it new
    connections while it stops. The readiness lint names the missing preStop."""
    _, proof = run_switch(cluster, run_id, tmp_path, faults=SLOW_BLUE, prestop_seconds=0,
                          env={"DRAIN_SECONDS": "0"},
                          settings=SwitchSettings(replicas=1, post_deploy=False,
                                                  ready_timeout=120, broken="no_drain"))
    assert proof.verdict.verdict == "FAIL", proof.explain()
    assert drops(proof) or proof.verdict.requests_failed, proof.explain()
    assert any(r.startswith("readiness lint:") and "[prestop]" in r
               for r in proof.verdict.reasons), proof.explain()


def test_a_deployment_that_never_becomes_ready_says_why_and_leaves_nothing(cluster, run_id):
    """An image the node cannot get: one line naming the pod, its state and its events; the
    namespace of the failed stand-up is deleted at once."""
    from kubernetes import client
    from kubernetes.client.rest import ApiException
    namespace = new_namespace(run_id, "never-ready")
    with pytest.raises(PlatformError) as err:
        stand_up(cluster, KubeConfig(replicas=1, run_id=run_id, ready_timeout=20,
                                     image="zerodrop/payment-service:no-such-tag"), namespace)
    message = str(err.value)
    assert "\n" not in message
    assert "did not complete" in message or "not ready after 20 s" in message, message
    assert re.search(r"ErrImageNeverPull|ImagePullBackOff|ErrImagePull", message), message
    core = client.CoreV1Api(cluster.api_client())
    try:
        ns = core.read_namespace(namespace)
        assert ns.metadata.deletion_timestamp is not None, "namespace left behind"
    except ApiException as exc:
        assert exc.status == 404
    finally:
        core.api_client.close()
