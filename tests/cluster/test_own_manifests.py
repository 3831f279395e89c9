"""Another team's manifests on a real kind cluster: the to-do example's own kustomize overlay
(examples/todo_service/k8s: its own names, `slot` instead of `version`, no preview Services, a
migration Job, SQLite shared by both slots), its own image, described only by its profile's
[kubernetes] section. The suites and both proofs pass through the real command line; the same
overlay as a hurried team would patch it (no preStop sleep, a green that loses writes) FAILs
the switch proof for the right reason."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests.cluster.conftest import CLUSTER
from tests.integration.conftest import run_pytest
from zerodrop.platforms.kubernetes.platform import KubeConfig, new_namespace, stand_up
from zerodrop.profiles import profile as profiles
from zerodrop.scenarios.blue_green import SwitchSettings, switch
from zerodrop.scenarios.proof import ProofSettings, prove
from zerodrop.scenarios.steps import Context

pytestmark = pytest.mark.slow
PROFILE_FILE = Path(__file__).resolve().parents[2] / "examples" / "todo_service" / "todo.profile.toml"
PROFILE = profiles.load(PROFILE_FILE)


def test_the_example_overlay_passes_the_suites_and_both_proofs_on_kind(tmp_path):
    """The user's path: --target kind and --profile; the manifests, the Service, the label
    that switches and the image all come from the profile and its overlay."""
    done = run_pytest("suites", "--target", "kind", "--kind-cluster", CLUSTER, "--keep-cluster",
                      "--profile", str(PROFILE_FILE), "--replicas", "1", "--load-rate", "100",
                      "--alluredir", str(tmp_path / "allure"),
                      "--evidence-dir", str(tmp_path / "evidence"), timeout=900)
    assert done.returncode == 0, done.stdout[-3000:]
    assert re.search(r"\b14 passed, 7 deselected\b", done.stdout), done.stdout[-2000:]  # + canary
    for name in ("switch-under-load", "rollback-under-load"):
        verdict = json.loads((tmp_path / "evidence" / f"{name}.json").read_text())
        assert verdict["verdict"] == "PASS", verdict["reasons"]
        assert verdict["integrity"]["acknowledged"] > 50, verdict["integrity"]
        assert len(verdict["served_by_version"]) == 2, verdict["served_by_version"]
        # the selector the switch patched is the example's own: its app label and `slot`
        patched = [e["detail"]["selector"] for e in verdict["timeline"]
                   if e["name"] == "selector patched"]
        assert patched and all(set(s) == {"app.kubernetes.io/name", "slot"} for s in patched), patched


def hurried_overlay(tmp_path: Path) -> Path:
    """The example's overlay, patched as a hurried team might: no preStop sleep on either
    slot, and a new image on green that answers 201 for every 5th to-do without keeping it
    (its own --fault knob, baked into green's arguments)."""
    overlay = Path(PROFILE.kube_manifests)
    out = tmp_path / "hurried"
    out.mkdir()
    (out / "kustomization.yaml").write_text(f"""\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - {os.path.relpath(overlay, out)}
patches:
  - target: {{kind: Deployment, labelSelector: "app.kubernetes.io/name=todo"}}
    patch: |-
      - {{op: remove, path: /spec/template/spec/containers/0/lifecycle}}
  - target: {{kind: Deployment, name: todo-api-green}}
    patch: |-
      - {{op: add, path: /spec/template/spec/containers/0/args/-, value: "--fault"}}
      - {{op: add, path: /spec/template/spec/containers/0/args/-, value: "lose_writes"}}
""")
    return out


def test_the_same_overlay_with_a_broken_green_fails_the_switch(cluster, run_id, tmp_path):
    """The switch to the patched green loses acknowledged to-dos: the data check reads them
    back through the example's own Service and FAILs; the readiness lint names the missing
    preStop under the example's own `slot` label. (A missing preStop alone does not fail
    every run on a one-node cluster, where kube-proxy is fast: the lint is what says it.)"""
    config = KubeConfig(replicas=2, run_id=run_id, ready_timeout=120, image=None,
                        overlay=hurried_overlay(tmp_path), profile=PROFILE)
    platform = stand_up(cluster, config, new_namespace(run_id, "hurried"), idle_replicas=0)
    try:
        assert platform.layout.label == "slot" and platform.layout.made_previews
        load = ProofSettings(users=10, rate=100.0, baseline_s=1.0, tail_s=2.0,
                             show_progress=False, profile=PROFILE)
        settings = SwitchSettings(replicas=2, post_deploy=False, verify_timeout=20,
                                  profile=PROFILE)
        proof = prove(platform, switch(platform, "v2.0.0", settings, name="hurried"),
                      Context(platform), load, tmp_path / "out", tmp_path / "ledger")
    finally:
        platform.teardown()
    assert proof.verdict.verdict == "FAIL", proof.explain()
    assert proof.data.missing, proof.explain()
    assert any(r.startswith("data loss:") and "acknowledged to-dos" in r and "missing" in r
               for r in proof.verdict.reasons), proof.explain()
    assert any(r.startswith("readiness lint:") and "[prestop]" in r and "todo-api-green" in r
               for r in proof.verdict.reasons), proof.explain()
