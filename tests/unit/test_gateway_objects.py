"""The Gateway router's objects and read-backs, built and parsed without a cluster: the
HTTPRoute rules for weights and a canary header, the colour a route sends everything to, what
Traefik must have applied before answers count, and the Traefik objects themselves (checked
against the by-hand smoke manifest and the image version the build script uses)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from zerodrop.platforms.kubernetes import gateway as gw
from zerodrop.platforms.kubernetes.platform import KubeConfig, layout_of

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = {"blue": ("payment-service-blue", 80), "green": ("payment-service-green", 80)}
PREVIEWS = {c: name for c, (name, _) in BACKENDS.items()}
LABELS = {"app.kubernetes.io/managed-by": "zerodrop", "zerodrop.io/run": "r1"}


def api_defaults(rules: list[dict]) -> list[dict]:
    """The rules as the API server stores them: a rule without matches gets PathPrefix /,
    every match a path, every backendRef group and kind (what a read-back sees)."""
    out = []
    for rule in rules:
        matches = [{"path": {"type": "PathPrefix", "value": "/"}, **m}
                   for m in rule.get("matches") or [{}]]
        refs = [{"group": "", "kind": "Service", **r} for r in rule["backendRefs"]]
        out.append({"matches": matches, "backendRefs": refs})
    return out


# ---- the rules ----------------------------------------------------------------------------------
def test_weights_alone_are_one_rule_over_both_previews():
    assert gw.route_rules({"blue": 90, "green": 10}, BACKENDS) == [
        {"backendRefs": [{"name": "payment-service-blue", "port": 80, "weight": 90},
                         {"name": "payment-service-green", "port": 80, "weight": 10}]}]


def test_a_colour_left_out_of_the_weights_is_listed_with_weight_zero():
    """So that a read-back always sees both colours, and a route_to moves traffic away from
    the other colour instead of leaving it at the API's default weight 1."""
    (rule,) = gw.route_rules({"green": 100}, BACKENDS)
    assert [(r["name"], r["weight"]) for r in rule["backendRefs"]] == [
        ("payment-service-blue", 0), ("payment-service-green", 100)]


def test_a_canary_comes_first_as_an_exact_header_match_to_its_preview_only():
    rules = gw.route_rules({"blue": 100, "green": 0}, BACKENDS, canary="green")
    assert rules[0] == {"matches": [{"headers": [{"type": "Exact", "name": "canary",
                                                  "value": "true"}]}],
                        "backendRefs": [{"name": "payment-service-green", "port": 80,
                                         "weight": 1}]}
    assert rules[1] == gw.route_rules({"blue": 100, "green": 0}, BACKENDS)[0]
    assert len(rules) == 2


# ---- reading a route back -----------------------------------------------------------------------
@pytest.mark.parametrize("weights, canary, active", [
    ({"blue": 100}, None, "blue"),
    ({"blue": 0, "green": 100}, None, "green"),
    ({"blue": 50, "green": 50}, None, None),
    ({"blue": 99, "green": 1}, None, None),
    ({"blue": 100, "green": 0}, "green", None),   # testers with the header reach green
    ({"blue": 100, "green": 0}, "blue", "blue"),  # the header leads where everything goes
])
def test_the_active_colour_is_the_only_one_any_request_reaches(weights, canary, active):
    rules = api_defaults(gw.route_rules(weights, BACKENDS, canary))
    assert gw.active_of_rules(rules, PREVIEWS) == active


def test_a_backend_that_is_not_a_preview_makes_the_route_no_colours():
    rules = [{"backendRefs": [{"name": "someone-else", "port": 80, "weight": 100}]}]
    assert gw.colors_of_rules(rules, PREVIEWS) is None
    assert gw.active_of_rules(rules, PREVIEWS) is None


def test_an_absent_weight_is_the_apis_default_one():
    rules = [{"backendRefs": [{"name": "payment-service-blue", "port": 80},
                              {"name": "payment-service-green", "port": 80, "weight": 0}]}]
    assert gw.active_of_rules(rules, PREVIEWS) == "blue"


def test_requests_without_the_header_meet_only_the_weighted_rule():
    rules = api_defaults(gw.route_rules({"blue": 100, "green": 0}, BACKENDS, canary="green"))
    assert gw.colors_of_rules(rules, PREVIEWS, with_header=False) == {"blue"}
    assert gw.colors_of_rules(rules, PREVIEWS) == {"blue", "green"}
    assert gw.weights_of_rules(rules, PREVIEWS) == {"blue": 100, "green": 0}


# ---- what Traefik must have applied -------------------------------------------------------------
def traefik_answer(namespace: str, weights: dict[str, int]) -> list[dict]:
    """The shape of Traefik v3.7.10's /api/http/services (seen on zd-dev), cut down."""
    key = (f"httproute-{namespace}-payment-service-gw-{namespace}-payment-service-gateway"
           f"-ep-web-0-a9b")
    children = [{"name": f"{key}-svc-{namespace}-payment-service-{c}-{i}", "weight": w}
                for i, (c, w) in enumerate(weights.items())]
    return [{"name": "api@internal", "provider": "internal", "status": "enabled"},
            {"name": f"{key}-svc-{namespace}-payment-service-blue-0@kubernetesgateway",
             "provider": "kubernetesgateway", "type": "loadbalancer",
             "loadBalancer": {"servers": [{"url": "http://10.244.0.39:8080"}]}},
            {"name": f"{key}-wrr@kubernetesgateway", "provider": "kubernetesgateway",
             "type": "weighted", "weighted": {"services": children}}]


def test_traefiks_applied_weights_are_read_as_the_route_says_them():
    rules = gw.route_rules({"blue": 50, "green": 50}, BACKENDS)
    applied = gw.applied_services(traefik_answer("zd-r1-t1", {"blue": 50, "green": 50}),
                                  "zd-r1-t1")
    assert applied == gw.expected_services(rules)


def test_the_old_weights_still_applied_are_not_the_new_route():
    """Negative control of the wait: status said Accepted, Traefik still serves 100/0."""
    rules = gw.route_rules({"blue": 50, "green": 50}, BACKENDS)
    applied = gw.applied_services(traefik_answer("zd-r1-t1", {"blue": 100, "green": 0}),
                                  "zd-r1-t1")
    assert applied != gw.expected_services(rules)


def test_a_missing_canary_rule_in_traefik_is_not_the_route_with_one():
    rules = gw.route_rules({"blue": 100, "green": 0}, BACKENDS, canary="green")
    applied = gw.applied_services(traefik_answer("ns", {"blue": 100, "green": 0}), "ns")
    assert applied != gw.expected_services(rules)
    assert applied == gw.expected_services(gw.route_rules({"blue": 100, "green": 0}, BACKENDS))


def test_what_traefik_serves_is_said_in_a_few_words():
    rules = gw.route_rules({"blue": 100, "green": 0}, BACKENDS, canary="green")
    assert gw.describe_services(gw.expected_services(rules)) == (
        "payment-service-blue 100 + payment-service-green 0 | payment-service-green 1")
    assert gw.describe_services(set()) == "nothing"
    assert gw.describe_services("no running Traefik pod") == "no running Traefik pod"


def route_with(status: str, observed: int, generation: int = 2) -> dict:
    conds = [{"type": t, "status": status, "observedGeneration": observed, "reason": t}
             for t in ("Accepted", "ResolvedRefs")]
    return {"metadata": {"generation": generation},
            "status": {"parents": [{"controllerName": gw.CONTROLLER, "conditions": conds}]}}


def test_a_route_is_settled_only_when_traefik_saw_its_current_generation():
    assert gw.route_settled(route_with("True", 2))
    assert not gw.route_settled(route_with("True", 1))
    assert not gw.route_settled(route_with("False", 2))
    assert not gw.route_settled({"metadata": {"generation": 1}})
    assert gw.describe_conditions({"metadata": {"generation": 1}}) == "no status from Traefik yet"


# ---- preflight's refusal ------------------------------------------------------------------------
def test_missing_crds_are_named_in_one_line_with_the_fix():
    required = [*gw.REQUIRED_CRDS, "nosuch.gateway.networking.k8s.io"]
    message = gw.missing_crds(set(gw.REQUIRED_CRDS), required)
    assert message is not None and "\n" not in message
    assert "missing on this cluster: nosuch.gateway.networking.k8s.io;" in message
    assert "infra/cluster/build-traefik.sh crds" in message
    assert gw.missing_crds(set(required), required) is None


# ---- the Traefik objects ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def objects() -> dict[str, dict]:
    return gw.traefik_objects("zd-r1-t1", "payment-service", BACKENDS, "blue", LABELS)


def test_the_image_is_the_one_build_traefik_sh_builds(objects):
    version = (ROOT / "infra/cluster/traefik-build/VERSION").read_text().strip()
    assert gw.TRAEFIK_VERSION == version
    (container,) = objects["deployment"]["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"zerodrop/traefik:{version}"


def test_traefik_watches_only_the_runs_namespace_and_never_calls_home(objects):
    spec = objects["deployment"]["spec"]
    assert spec["replicas"] == 1
    args = spec["template"]["spec"]["containers"][0]["args"]
    for arg in ("--providers.kubernetesgateway=true",
                "--providers.kubernetesgateway.namespaces=zd-r1-t1",
                f"--entrypoints.web.address=:{gw.ENTRY_PORT}", "--ping=true",
                "--global.checknewversion=false", "--global.sendanonymoususage=false"):
        assert arg in args
    probe = spec["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]
    assert probe == {"path": "/ping", "port": "traefik"}


def test_the_cluster_scoped_objects_are_named_after_the_namespace_and_labelled(objects):
    for role in ("role", "binding", "gatewayclass"):
        assert objects[role]["metadata"] == {"name": "zd-r1-t1-gateway", "labels": LABELS}
    assert objects["gatewayclass"]["spec"] == {"controllerName": "traefik.io/gateway-controller"}
    assert objects["binding"]["roleRef"]["name"] == "zd-r1-t1-gateway"
    assert objects["binding"]["subjects"] == [
        {"kind": "ServiceAccount", "name": objects["sa"]["metadata"]["name"],
         "namespace": "zd-r1-t1"}]


def test_the_cluster_role_has_the_rules_the_smoke_manifest_worked_with(objects):
    smoke = yaml.safe_load_all((ROOT / "infra/cluster/traefik-smoke.yaml").read_text())
    role = next(o for o in smoke if o and o["kind"] == "ClusterRole")
    assert objects["role"]["rules"] == role["rules"]


def test_the_gateway_listens_on_traefiks_entry_point_and_the_route_starts_on_the_active(objects):
    (listener,) = objects["gateway"]["spec"]["listeners"]
    assert listener["port"] == gw.ENTRY_PORT and listener["protocol"] == "HTTP"
    assert objects["gateway"]["spec"]["gatewayClassName"] == "zd-r1-t1-gateway"
    route = objects["route"]
    assert route["metadata"]["name"] == "payment-service"
    assert route["spec"]["parentRefs"] == [{"name": objects["gateway"]["metadata"]["name"]}]
    assert gw.active_of_rules(route["spec"]["rules"], PREVIEWS) == "blue"


def test_the_entry_service_selects_traefik_and_never_the_app(objects):
    entry = objects["entry"]
    assert entry["metadata"]["name"] == "payment-service-gateway"
    assert entry["spec"]["type"] == "NodePort"
    assert entry["spec"]["ports"][0]["port"] == gw.ENTRY_PORT
    pod_labels = objects["deployment"]["spec"]["template"]["metadata"]["labels"]
    assert entry["spec"]["selector"].items() <= pod_labels.items()
    assert objects["deployment"]["spec"]["selector"]["matchLabels"] == entry["spec"]["selector"]
    layout = layout_of(KubeConfig())
    for color in ("blue", "green"):  # Traefik's pod is never one of a colour's replicas
        assert layout.color_of(pod_labels) is None
        assert not layout.selector(color).items() <= pod_labels.items()
