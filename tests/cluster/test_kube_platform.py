"""The Kubernetes platform on a real kind cluster: the switch under load passes with the
cluster's own events on the timeline, each broken switch fails for its own reason, and bad
input fails in one line leaving nothing behind."""
from __future__ import annotations

import json
import re

import pytest

from zerodrop.platforms.kubernetes.platform import KubeConfig, new_namespace, stand_up
from zerodrop.platforms.base import PlatformError
from zerodrop.scenarios.blue_green import SwitchSettings, switch
from zerodrop.scenarios.proof import ProofSettings, prove
from zerodrop.scenarios.steps import Context

pytestmark = pytest.mark.slow
LOAD = ProofSettings(users=10, rate=60.0, baseline_s=1.0, tail_s=2.0, show_progress=False)
QUICK = SwitchSettings(replicas=1, post_deploy=False, verify_timeout=10, ready_timeout=120)
SLOW_BLUE = {"blue": {"latency_ms": 300}}
_n = iter(range(1, 1000))


def platform_for(cluster, run_id, faults=None, **config):
    namespace = new_namespace(run_id, f"t{next(_n)}")
    return stand_up(cluster, KubeConfig(replicas=1, run_id=run_id, ready_timeout=120, **config),
                    namespace, faults=faults, idle_replicas=0)


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


def test_a_switch_judged_from_load_inside_the_cluster_passes(cluster, run_id, tmp_path):
    """Positive control for --load-from cluster: Locust in a Job of the namespace, through the
    Service's cluster DNS name; its ledger comes back and shares the timeline's clock."""
    platform, proof = run_switch(cluster, run_id, tmp_path, load_from="cluster")
    assert proof.scenario.ok and proof.verdict.verdict == "PASS", proof.explain()
    assert proof.load.requests > 50 and proof.verdict.requests_failed == 0
    served = proof.verdict.to_dict()["served_by_version"]
    assert served.get("v1.0.0", 0) > 0 and served.get("v2.0.0", 0) > 0, served
    t_started = next(e.t for e in proof.timeline if e.name == "load started")
    with open(proof.load.ledger_path) as f:
        first = json.loads(f.readline())
    assert abs(first["t_start"] - t_started) < 5.0, (first["t_start"], t_started)


def test_a_missing_harness_image_is_one_clear_line(cluster, run_id, tmp_path):
    from zerodrop.load.runner import LoadError, LoadPlan
    platform = platform_for(cluster, run_id, load_from="cluster",
                            harness_image="zerodrop/harness:no-such-tag")
    try:
        with pytest.raises(LoadError) as err:
            with platform.load_generator()(LoadPlan(host=platform.service_url, ledger_dir=tmp_path)) as run:
                run.start(ready_timeout=60)
        assert "cannot get image zerodrop/harness:no-such-tag" in str(err.value)
        assert "\n" not in str(err.value)
        jobs = platform.batch.list_namespaced_job(platform.namespace).items
        assert not [j for j in jobs if j.metadata.deletion_timestamp is None
                    and j.metadata.name.startswith("zd-load-")], "load Job left behind"
    finally:
        platform.teardown()


@pytest.mark.parametrize("load_from", ["here", "cluster"])
def test_old_pods_sigkilled_mid_switch_fail(cluster, run_id, tmp_path, load_from):
    """Negative control: the old pods get a real SIGKILL (from the node, outside the pod's PID
    namespace) right after the switch instead of a drain: the requests they held are lost,
    whether the load comes from this machine or from inside the cluster."""
    _, proof = run_switch(cluster, run_id, tmp_path, faults=SLOW_BLUE, load_from=load_from,
                          settings=SwitchSettings(replicas=1, post_deploy=False,
                                                  ready_timeout=120, broken="kill_old"))
    assert proof.verdict.verdict == "FAIL", proof.explain()
    t_kill = next(e.t for e in proof.timeline if e.name == "replica killed")
    # 'replica killed' is stamped when the kill's command returns; a reset may reach the client
    # before that, but never before the step that sent the kill started
    t_step = max(e.t for e in proof.timeline if e.detail.get("step") == "start" and e.t <= t_kill)
    assert drops(proof), proof.explain()
    first = min(c.first_t for c in drops(proof))
    assert first >= t_step and first - t_kill < 2.0, proof.explain()
    # the resets reach the client through docker-proxy a little after the signal, so the
    # verdict may place them after a later step of the kill; each names an event it follows
    assert any(re.search(r"connection resets? .* after '", r) for r in proof.verdict.reasons), \
        proof.explain()


def test_old_pods_without_prestop_or_drain_deleted_at_once_fail(cluster, run_id, tmp_path):
    """Negative control: the seed's race on a real cluster. No preStop, no app drain, an app
    that exits on SIGTERM, and the old colour scaled down right after the selector patch: the
    keep-alive connections still on it (kube-proxy keeps established ones) lose their requests.
    The readiness lint names the missing preStop. (With a graceful app alone the race bites
    only sometimes here: kube-proxy on one node is fast, and in-flight requests finish.)"""
    faults = {"blue": {**SLOW_BLUE["blue"], "no_graceful_shutdown": True}}
    _, proof = run_switch(cluster, run_id, tmp_path, faults=faults, prestop_seconds=0,
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


def test_the_kind_provider_creates_reuses_and_deletes_a_cluster_of_its_own(tmp_path):
    """A second cluster, made by the provider: its own kubeconfig file (never ~/.kube/config),
    the images loaded, reused when asked again, deleted at the end because this run made it."""
    import os
    import subprocess
    from pathlib import Path

    from zerodrop.platforms.kubernetes.providers.kind import (KindOptions, acquire_kind, docker_binary,
                                                              kind_binary, release_kind)
    name = f"zd-t{os.getpid() % 100000}"
    config = tmp_path / "kind.yaml"  # the offline node image has no kindnet: its own CNI
    config.write_text("kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha4\nnetworking:\n"
                      "  disableDefaultCNI: true\n  apiServerAddress: 127.0.0.1\nnodes:\n"
                      "  - role: control-plane\n    extraPortMappings:\n"
                      "      - {containerPort: 30080, hostPort: 0, listenAddress: 127.0.0.1}\n")
    home_config = Path.home() / ".kube" / "config"
    before = home_config.read_bytes() if home_config.exists() else None
    node_image = os.environ.get("ZD_KIND_NODE_IMAGE", "zerodrop/kind-node:v1.34.12")
    opts = KindOptions(name=name, node_image=node_image, config=config, kubeconfig_dir=tmp_path)
    env = {**os.environ, "PATH": f"{Path(docker_binary()).parent}:{os.environ['PATH']}"}
    made = acquire_kind(opts)
    try:
        assert made.created and not made.kept
        assert Path(made.kubeconfig).parent == tmp_path
        assert oct(Path(made.kubeconfig).stat().st_mode & 0o777) == "0o600"
        host, _, port = made.address(30080).partition(":")
        assert host == "127.0.0.1" and int(port) > 0  # published on loopback only
        again = acquire_kind(opts)
        assert not again.created and again.node_ports == made.node_ports
        assert release_kind(again) is None  # a reused cluster is never deleted
    finally:
        assert release_kind(made) == f"deleted kind cluster {name}"
    clusters = subprocess.run([kind_binary(), "get", "clusters"], env=env, capture_output=True,
                              text=True, timeout=60).stdout.split()
    assert name not in clusters
    assert (home_config.read_bytes() if home_config.exists() else None) == before


def test_credentials_without_rights_are_refused_in_one_line(cluster, run_id, tmp_path):
    """A real ServiceAccount with no role at all: the platform says what it may not do, in one
    line, and the token never shows in it."""
    import yaml
    from kubernetes import client
    from zerodrop.platforms.kubernetes.providers.base import Cluster
    core = client.CoreV1Api(cluster.api_client())
    home = new_namespace(run_id, "rbac")
    try:
        core.create_namespace({"metadata": {"name": home, "labels": {
            "app.kubernetes.io/managed-by": "zerodrop", "zerodrop.io/run": run_id}}})
        core.create_namespaced_service_account(home, {"metadata": {"name": "nobody"}})
        token = core.create_namespaced_service_account_token(
            "nobody", home, {"spec": {"expirationSeconds": 600}}).status.token
        config = yaml.safe_load(open(cluster.kubeconfig))
        config["users"] = [{"name": "nobody", "user": {"token": token}}]
        config["contexts"] = [{"name": "nobody", "context": {
            "cluster": config["clusters"][0]["name"], "user": "nobody"}}]
        config["current-context"] = "nobody"
        path = tmp_path / "nobody.kubeconfig"
        path.write_text(yaml.safe_dump(config))
        weak = Cluster("kubeconfig", "nobody", str(path), "nobody", cluster.node_ports)
        with pytest.raises(PlatformError) as err:
            stand_up(weak, KubeConfig(replicas=1, run_id=run_id, ready_timeout=20),
                     new_namespace(run_id, "denied"))
        message = str(err.value)
        assert "\n" not in message and token not in message
        assert "HTTP 403" in message and "cannot create resource" in message, message
    finally:
        core.delete_namespace(home)
        core.api_client.close()


def test_an_image_is_loaded_again_only_when_the_node_lacks_that_exact_image(cluster):
    """The provider skips `kind load` for an image the node holds with the same config digest
    (the Docker image ID), and loads it when the name points at different content."""
    import os
    import subprocess
    from pathlib import Path

    from zerodrop.platforms.kubernetes.providers.kind import _node_has, docker_binary, kind_binary
    docker, node, probe = docker_binary(), cluster.node_container, "zerodrop/zd-probe:t"
    env = {**os.environ, "PATH": f"{Path(docker).parent}:{os.environ['PATH']}"}

    def sh(*args):
        return subprocess.run(args, env=env, capture_output=True, text=True, timeout=300)

    try:
        sh(docker, "tag", "zerodrop/postgres:15", probe)
        assert not _node_has(docker, node, probe, env)
        assert sh(kind_binary(), "load", "docker-image", probe, "--name", cluster.name).returncode == 0
        assert _node_has(docker, node, probe, env)
        sh(docker, "tag", "zerodrop/harness:dev", probe)  # same name, other content
        assert not _node_has(docker, node, probe, env)
    finally:
        sh(docker, "rmi", probe)
        sh(docker, "exec", node, "ctr", "-n", "k8s.io", "images", "rm", f"docker.io/{probe}")


def test_wait_routed_refuses_a_service_with_no_ready_pod(cluster, run_id):
    """Negative control of wait_routed: green at 0 replicas has no endpoint, so its preview is
    not routed, and the message says what the EndpointSlices and the pods show."""
    platform = platform_for(cluster, run_id)
    try:
        with pytest.raises(PlatformError) as err:
            platform.wait_routed("green", timeout=3)
        message = str(err.value)
        assert "payment-service-green" in message and "is not routed" in message, message
        assert "EndpointSlices list nothing, ready pods none" in message, message
        platform.wait_routed("blue", timeout=30)  # the positive side, on the same platform
    finally:
        platform.teardown()
