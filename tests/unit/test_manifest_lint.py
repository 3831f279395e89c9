"""The zero-downtime lint on the shipped manifests (they must pass) and on broken copies of
them (each must produce the finding for its rule). Pure: no cluster involved."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from zerodrop.platforms.kubernetes.lint import lint

BASE = Path(__file__).resolve().parents[2] / "payment_service" / "manifests" / "base"


def shipped() -> list[dict]:
    objs = []
    for f in sorted(BASE.glob("*.yaml")):
        if f.name != "kustomization.yaml":
            objs += [o for o in yaml.safe_load_all(f.read_text()) if o]
    return objs


def scaled_up(objs: list[dict], color: str) -> list[dict]:
    """The objects as they stand just before a switch: the target colour scaled up."""
    objs = copy.deepcopy(objs)
    for o in objs:
        if o["kind"] == "Deployment" and o["metadata"]["labels"].get("version") == color:
            o["spec"]["replicas"] = 2
    return objs


def deployment(objs: list[dict], color: str) -> dict:
    return next(o for o in objs if o["kind"] == "Deployment"
                and o["metadata"]["labels"]["version"] == color)


def rules(findings) -> set[str]:
    return {f.rule for f in findings}


def test_the_shipped_manifests_are_ready_for_a_switch_either_way():
    for color in ("blue", "green"):
        assert lint(scaled_up(shipped(), color), color, propagation_s=2.0) == []


def test_the_idle_colour_at_zero_replicas_is_not_ready_to_take_traffic():
    findings = lint(shipped(), "green", propagation_s=2.0)
    assert rules(findings) == {"replicas"}
    assert "green has 0 replicas" in str(findings[0])


def container(objs, color):
    return deployment(objs, color)["spec"]["template"]["spec"]["containers"][0]


@pytest.mark.parametrize("break_it, rule, text", [
    (lambda o: container(o, "green").pop("readinessProbe"), "readiness-probe", "no readinessProbe"),
    (lambda o: container(o, "green")["lifecycle"].pop("preStop"), "prestop",
     "serves for 2 s (preStop 0 s + drain 2 s), less than the 5 s"),
    (lambda o: deployment(o, "green")["spec"]["template"]["spec"].update(
        terminationGracePeriodSeconds=10), "grace-period",
     "terminationGracePeriodSeconds 10 is not longer than preStop 5 + drain 2 + shutdown 10 s"),
    (lambda o: deployment(o, "green")["spec"]["strategy"]["rollingUpdate"].update(
        maxUnavailable=1), "max-unavailable", "maxUnavailable 1"),
    (lambda o: deployment(o, "green")["spec"]["template"]["metadata"]["labels"].update(
        app="payments"), "selector", "does not match the pods of Deployment/payment-service-green"),
    (lambda o: next(s for s in o if s["kind"] == "Service")["spec"]["selector"].pop("version"),
     "selector", "the selector has no version key"),
])
def test_each_broken_rule_is_found(break_it, rule, text):
    objs = scaled_up(shipped(), "green")
    break_it(objs)
    findings = [f for f in lint(objs, "green", propagation_s=5.0) if f.rule == rule]
    assert findings, f"no {rule} finding"
    assert any(text in str(f) for f in findings), [str(f) for f in findings]


def test_a_longer_propagation_than_the_shipped_prestop_is_found():
    findings = lint(scaled_up(shipped(), "green"), "green", propagation_s=10.0)
    assert rules(findings) == {"prestop"}
    assert "add a preStop sleep of at least 8 s" in str(findings[0])


def test_the_builtin_sleep_action_counts_as_prestop():
    objs = scaled_up(shipped(), "green")
    container(objs, "green")["lifecycle"]["preStop"] = {"sleep": {"seconds": 5}}
    assert lint(objs, "green", propagation_s=5.0) == []
