"""Faults and game days on a real kind cluster: tc netem really sits in one pod's network
namespace (and is gone after), a pod deletion is replaced by its ReplicaSet, a flapping
readiness takes one pod in and out of the endpoints, and the kind-only experiment
(network-delay-in-green) passes with its expectation and fails its negative control.

The other experiments run on kind in .ci/run (`./zd gameday all --target kind`)."""
from __future__ import annotations

import json
import subprocess
import time

import pytest
import requests

from tests.cluster.conftest import CLUSTER
from tests.integration.conftest import run_pytest
from tests.procs import wait_until
from zerodrop.platforms.base import PlatformError
from zerodrop.platforms.kubernetes.platform import KubeConfig, new_namespace, stand_up
from zerodrop.platforms.kubernetes.providers.kind import netem_missing
from zerodrop.scenarios.faults import FaultSpec, Injector

pytestmark = pytest.mark.slow
_n = iter(range(1, 1000))


@pytest.fixture
def kube(cluster, run_id):
    """Blue active with two pods, on a namespace of its own."""
    p = stand_up(cluster, KubeConfig(replicas=2, run_id=run_id, ready_timeout=120),
                 new_namespace(run_id, f"gd{next(_n)}"), idle_replicas=0)
    try:
        yield p
    finally:
        p.teardown()


def qdisc_of(platform, replica) -> str:
    """``tc qdisc show dev eth0`` inside the pod's network namespace, read from the node."""
    from zerodrop.platforms.kubernetes.providers.kind import _container_id
    cid = _container_id(platform, replica).split("://", 1)[-1]
    node = platform.cluster.node_container
    tasks = subprocess.run(["docker", "exec", node, "ctr", "-n", "k8s.io", "task", "ls"],
                           capture_output=True, text=True, timeout=30).stdout
    pid = next(line.split()[1] for line in tasks.splitlines() if line.startswith(cid))
    return subprocess.run(["docker", "exec", node, "nsenter", "-t", pid, "-n", "tc", "qdisc",
                           "show", "dev", "eth0"], capture_output=True, text=True,
                          timeout=30).stdout


def test_netem_delays_every_pod_of_a_colour_and_is_removed(kube):
    inj = Injector(kube)
    pods = [r for r in kube.replicas("blue") if not r.terminating]
    if netem_missing():  # this machine's kernel: the refusal, in one line, changing nothing
        with pytest.raises(PlatformError, match="kernel has no netem qdisc"):
            inj.apply(FaultSpec("network", "blue", {"delay_ms": 300}, at="after x"), "blue")
        assert not kube.events.named("fault applied") and inj.remove_all() == []
        return
    assert all("netem" not in qdisc_of(kube, r) for r in pods)
    inj.apply(FaultSpec("network", "blue", {"delay_ms": 300}, at="after x"), "blue")
    for r in pods:
        assert "netem" in qdisc_of(kube, r) and "delay 300ms" in qdisc_of(kube, r)
    # a lower bound holds on any machine: an answer cannot come back sooner than its delay
    fastest = min(_seconds(kube.preview_url("blue")) for _ in range(5))
    assert fastest >= 0.3, fastest
    assert inj.remove_all() == []
    assert all("netem" not in qdisc_of(kube, r) for r in pods)
    assert kube.events.named("fault removed")[-1].detail["fault"].startswith("network")


def test_a_deleted_pod_is_replaced_and_a_flapping_pod_leaves_and_rejoins(kube):
    inj = Injector(kube)
    before = {r.name for r in kube.replicas("blue")}
    inj.apply(FaultSpec("delete-pod", "blue", {"index": 0}, at="before x"), "blue")
    wait_until(lambda: len({r.name for r in kube.replicas("blue") if not r.terminating}
                           - before) == 1, 120, "a replacement pod for the deleted one")
    kube.wait_ready("blue", 120)
    flapping = [r.name for r in kube.replicas("blue") if not r.terminating][0]
    # down for 5 s: two failed probes in a row at the manifests' 2 s period
    inj.apply(FaultSpec("flapping-readiness", "blue", {"period_s": 5.0, "index": 0}), "blue")
    wait_until(lambda: any(e.detail.get("replica") == flapping
                           for e in kube.events.named("replica unready")), 60,
               "the flapping pod out of the endpoints")
    assert inj.remove_all() == []
    kube.wait_ready("blue", 120)


def _seconds(url: str) -> float:
    t = time.monotonic()
    requests.get(f"{url}/health", headers={"Connection": "close"}, timeout=10)
    return time.monotonic() - t


def gameday(tmp_path, name: str, *args: str):
    out = tmp_path / "out"
    done = run_pytest("suites/chaos", "--target", "kind", "--kind-cluster", CLUSTER,
                      "--keep-cluster", "--experiment", name, "--alluredir",
                      str(tmp_path / "allure"), "--evidence-dir", str(out), *args, timeout=600)
    report = out / f"gameday-{name}.json"
    return done, (json.loads(report.read_text()) if report.exists() else None)


def test_network_delay_in_green_passes_and_its_control_fails(cluster, tmp_path):
    """200 ms of delay costs no request; 100 % loss (the control) does: the new version
    cannot answer, and the experiment says the switch did not complete. Where this machine's
    kernel has no netem, the experiment is refused in one line before anything starts."""
    if netem_missing():
        done, report = gameday(tmp_path, "network-delay-in-green")
        assert done.returncode == 4 and report is None, done.stdout[-2000:]
        assert "kernel has no netem qdisc" in done.stderr and "usable here: kill-old" in \
            done.stderr and "network delay or loss cannot be injected here" in done.stderr, \
            done.stderr[-2000:]
        return
    done, report = gameday(tmp_path / "ok", "network-delay-in-green")
    assert done.returncode == 0, done.stdout[-3000:]
    assert report["verdict"] == "PASS" and report["switch"] == "completed"
    done, report = gameday(tmp_path / "loss", "network-delay-in-green", "--gameday-param",
                           "network:loss_pct=100")
    assert done.returncode == 1, done.stdout[-3000:]
    broken = {c["name"] for c in report["checks"] if c["held"] is False}
    assert broken & {"the switch", "failures while the method ran"}, report["reasons"]
