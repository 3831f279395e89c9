"""``zerodrop watch`` on a real kind cluster: the seed article's own blue-green-deploy.sh
(examples/seed-deploy, changed only where the article's formatting broke it) runs under load,
and its switch is judged request by request; a deploy that fails halfway is a FAIL naming its
exit status and last lines."""
from __future__ import annotations

from pathlib import Path

import pytest

from zerodrop.platforms.kubernetes.platform import KubeConfig, new_namespace, stand_up
from zerodrop.scenarios.proof import ProofSettings, prove
from zerodrop.scenarios.steps import Context
from zerodrop.scenarios.watch import WatchSettings, watched

pytestmark = pytest.mark.slow
SEED = Path(__file__).resolve().parents[2] / "examples" / "seed-deploy"
LOAD = ProofSettings(users=10, rate=60.0, baseline_s=1.0, tail_s=2.0, show_progress=False,
                     max_duration=400)


def judged(cluster, run_id, tmp_path, suffix: str, command: tuple[str, ...]):
    platform = stand_up(cluster, KubeConfig(replicas=2, run_id=run_id, ready_timeout=120),
                        new_namespace(run_id, suffix), idle_replicas=0)
    try:
        image = platform.apps.read_namespaced_deployment("payment-service-green", platform.namespace) \
            .spec.template.spec.containers[0].image
        settings = WatchSettings(tuple(a.replace("{image}", image) for a in command), timeout=300,
                                 workdir=SEED)
        proof = prove(platform, watched(platform, settings), Context(platform), LOAD,
                      tmp_path / "out", tmp_path / "ledger")
    finally:
        platform.teardown()
    return proof


def test_the_seed_deploy_script_is_judged_request_by_request(cluster, run_id, tmp_path):
    proof = judged(cluster, run_id, tmp_path, "seed",
                   ("bash", "./blue-green-deploy.sh", "payment-service", "{image}"))
    printed = [e.detail["line"] for e in proof.timeline if e.name == "deploy output"]
    assert "Switching traffic to green..." in printed, "\n".join(printed[-40:])
    assert "Blue-green deployment completed successfully!" in printed, "\n".join(printed[-40:])
    assert proof.scenario.ok, proof.explain()
    cut = proof.verdict.to_dict()["switch"]
    assert cut["t_switch"] is not None, proof.explain()
    # what the verdict says about the seed's script is kept in the README; here: it judged it
    assert proof.verdict.verdict in ("PASS", "FAIL"), proof.explain()
    assert proof.verdict.requests_total > 1000, proof.explain()
    (tmp_path / "seed-verdict.txt").write_text(proof.explain())
    print(proof.explain())


def test_a_deploy_that_fails_halfway_is_a_fail_with_its_status_and_last_lines(cluster, run_id,
                                                                              tmp_path):
    """The deploy scales green up, then gives up before any switch: the verdict's first cause
    is the command, with its status and its last lines."""
    script = ("kubectl scale deployment/payment-service-green --replicas=1 -n \"$NAMESPACE\" && "
              "echo 'ERROR: smoke tests failed'; exit 4")
    proof = judged(cluster, run_id, tmp_path, "fails", ("bash", "-c", script))
    assert not proof.scenario.ok
    assert proof.verdict.verdict == "FAIL", proof.explain()
    assert proof.verdict.reasons[0].startswith("deploy command: 'bash -c "), proof.explain()
    assert "exited with status 4; its last lines: " in proof.verdict.reasons[0]
    assert proof.verdict.reasons[0].endswith("ERROR: smoke tests failed"), proof.explain()
