"""The nightly regression against a real kind cluster, read-only: the reference service is
deployed in a namespace of this test's own (the ordinary Kubernetes platform), then three
nightly runs (``--nightly --target kubeconfig --nightly-namespace NS``, pytest in a subprocess,
as ``zerodrop nightly`` starts them) attach to its Service and load it through its NodePort.

Done when: the history holds the three runs, the two equal ones are not flagged and the third,
slowed between runs through the platform (the fault API in each pod), is; and the runs changed
nothing (the Service and the Deployments keep their resourceVersion, no namespace carries their
run ids). The read-only guard refuses a selector switch on the live Service, which stays as it
was; allowed, the same switch goes through (its negative control)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from zerodrop.platforms.kubernetes.platform import KubeConfig, new_namespace, stand_up

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
SLOW = {"latency_ms": 80}  # far above the judge's 25 ms floor and its 1.2x


def nightly(cluster, namespace: str, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:randomly", "-q", "-rfE",
         "-o", "addopts=-p no:cacheprovider -p no:locust",
         "--pyargs", "zerodrop.suites.nightly", "--nightly", "--target", "kubeconfig",
         "--kubeconfig", cluster.kubeconfig, "--context", cluster.context,
         "--allow-context", cluster.context, "--node-address", "127.0.0.1",
         "--nightly-namespace", namespace, "--history-dir", str(tmp_path / "history"),
         "--nightly-hold", "4", "--load-rate", "40", "--idle-clients", "2",
         "--evidence-dir", str(tmp_path / "out"), "--alluredir", str(tmp_path / "allure")],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT)})


def versions(platform) -> dict[str, str]:
    """The resourceVersion of the Service and of each Deployment: any write changes one."""
    svc = platform.core.read_namespaced_service(platform.layout.service, platform.namespace)
    out = {f"service/{svc.metadata.name}": svc.metadata.resource_version}
    for d in platform.apps.list_namespaced_deployment(platform.namespace).items:
        out[f"deployment/{d.metadata.name}"] = d.metadata.resource_version
    return out


@pytest.fixture(scope="module")
def served(cluster, run_id):
    """The reference service in a namespace of its own (one platform for the module: the
    cluster's ten NodePorts are shared by every session on this machine)."""
    platform = stand_up(cluster, KubeConfig(replicas=1, run_id=run_id, ready_timeout=180),
                        new_namespace(run_id, "nightly"), idle_replicas=0)
    try:
        yield platform
    finally:
        platform.teardown()


def test_three_read_only_nightly_runs_flag_only_the_slower_one(cluster, served, tmp_path):
    platform = served
    port = int(platform.service_url.rsplit(":", 1)[1])
    assert cluster.address(port) == f"127.0.0.1:{port}", cluster.node_ports  # --node-address
    before = versions(platform)
    runs = []
    for i in range(2):
        done = nightly(cluster, platform.namespace, tmp_path)
        out = done.stdout + done.stderr
        assert done.returncode == 0, out[-3000:]
        runs.append(out)
    assert "no history yet" in runs[0]
    assert "error rate: no regression" in runs[1], runs[1][-3000:]
    assert "latency regression" not in runs[1], runs[1][-3000:]
    assert versions(platform) == before  # read-only: nothing was written

    platform.apply_fault("blue", SLOW)
    done = nightly(cluster, platform.namespace, tmp_path)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out[-3000:]
    flagged = [ln for ln in out.splitlines()
               if "regression against earlier runs: latency regression: median" in ln]
    assert flagged and "Mann-Whitney p=" in flagged[0] and "confidence" in flagged[0], out[-3000:]
    assert "Traceback" not in out
    assert versions(platform) == before

    history = tmp_path / "history"
    stored = sorted(p for p in history.iterdir() if p.is_dir())
    assert len(stored) == 3, stored
    outcomes = [json.loads((p / "comparison.json").read_text())["outcome"] for p in stored]
    assert outcomes[0] == "no history" and outcomes[1] in ("pass", "marginal")
    assert outcomes[2] == "fail", outcomes
    ids = [json.loads((p / "context.json").read_text())["run_id"] for p in stored]
    for rid in ids:  # no namespace of the nightly runs' own
        assert not platform.core.list_namespace(
            label_selector=f"zerodrop.io/run={rid}").items, rid
    context = json.loads((stored[0] / "context.json").read_text())
    assert context["namespace"] == platform.namespace and context["context"] == cluster.context
    text = "".join(f.read_text() for p in stored for f in p.iterdir() if f.is_file())
    assert platform.admin_token not in text and "client-key-data" not in text


def test_the_guard_keeps_the_live_service_as_it_was(cluster, served):
    from zerodrop.platforms.kubernetes.attach import ReadOnlyError, WriteGuard, attach
    platform = served

    def attached(allow: bool):
        return attach(cluster, platform.namespace, platform.layout.service, token="t",
                      guard=WriteGuard(allow=allow))
    ro = attached(False)
    try:
        assert ro.active_color() == "blue" and ro.service_url == platform.service_url
        assert [r.ready for r in ro.replicas("blue")] == [True]
        before = versions(platform)
        with pytest.raises(ReadOnlyError, match="refused to switch Service"):
            ro.route_to("green")
        assert versions(platform) == before and platform.active_color() == "blue"
    finally:
        ro.teardown()
    rw = attached(True)  # negative control: allowed, the same switch goes through
    try:
        rw.route_to("green")
        assert platform.active_color() == "green"
        rw.route_to("blue")
        assert platform.active_color() == "blue"
    finally:
        rw.teardown()
