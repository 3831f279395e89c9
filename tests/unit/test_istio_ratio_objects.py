"""The objects the two canary routers build, without a cluster: the Istio VirtualService for a
split (the seed's header rule first, the weighted route over the preview Services, nothing
stale), reading a colour back from one, and the replica arithmetic of the no-mesh router
(which must show when the split it can make differs from the one asked)."""
from __future__ import annotations

import pytest

from zerodrop.platforms.base import PlatformError
from zerodrop.platforms.kubernetes import istio, ratio
from zerodrop.platforms.kubernetes.layout import Layout

LAYOUT = Layout(service="pay", label="version", app_labels=(("app", "pay"),),
                deployments=(("blue", "pay-blue"), ("green", "pay-green")),
                previews=(("blue", "pay-blue"), ("green", "pay-green")),
                made_previews=(), container="pay")
NS = "zd-x"
BLUE, GREEN = "pay-blue.zd-x.svc.cluster.local", "pay-green.zd-x.svc.cluster.local"


def weighted(spec):
    return [(r["destination"]["host"], r["weight"]) for r in spec["http"][-1]["route"]]


# ---- Istio ------------------------------------------------------------------------------------
def test_a_canary_split_is_the_header_rule_first_then_the_weights():
    vs = istio.virtual_service(LAYOUT, NS, {"run": "r1"}, {"blue": 90, "green": 10}, "green")
    assert vs["apiVersion"] == "networking.istio.io/v1" and vs["kind"] == "VirtualService"
    assert vs["metadata"] == {"name": "pay", "labels": {"run": "r1"}}
    spec = vs["spec"]
    assert spec["hosts"] == ["pay"] and len(spec["http"]) == 2
    header = spec["http"][0]
    assert header["match"] == [{"headers": {"canary": {"exact": "true"}}}]
    assert header["route"] == [{"destination": {"host": GREEN}}]
    assert "match" not in spec["http"][1]
    assert weighted(spec) == [(BLUE, 90), (GREEN, 10)]


def test_without_a_canary_colour_there_is_no_header_rule_and_zero_weights_are_left_out():
    routes = istio.http_routes(LAYOUT, NS, {"blue": 0, "green": 100})
    assert len(routes) == 1 and "match" not in routes[0]
    assert weighted({"http": routes}) == [(GREEN, 100)]


def test_the_colour_read_back_is_the_one_with_all_the_weight():
    def spec(weights, canary=None):
        return {"http": istio.http_routes(LAYOUT, NS, weights, canary)}
    assert istio.routed_color(spec({"blue": 100}), LAYOUT, NS) == "blue"
    assert istio.routed_color(spec({"green": 100, "blue": 0}), LAYOUT, NS) == "green"
    assert istio.routed_color(spec({"blue": 90, "green": 10}), LAYOUT, NS) is None
    # the header rule sends some requests elsewhere: no single colour
    assert istio.routed_color(spec({"blue": 100}, "green"), LAYOUT, NS) is None
    assert istio.routed_color(spec({"green": 100}, "green"), LAYOUT, NS) == "green"
    # hosts in short form, as a person might write them, and an unknown host
    short = {"http": [{"route": [{"destination": {"host": "pay-blue"}}]}]}
    assert istio.routed_color(short, LAYOUT, NS) == "blue"
    other = {"http": [{"route": [{"destination": {"host": "pay"}}]}]}
    assert istio.routed_color(other, LAYOUT, NS) is None
    assert istio.routed_color({}, LAYOUT, NS) is None


# ---- replicas ---------------------------------------------------------------------------------
@pytest.mark.parametrize("weights,total,counts,effective", [
    ({"blue": 50, "green": 50}, 4, {"blue": 2, "green": 2}, {"blue": 50.0, "green": 50.0}),
    ({"blue": 90, "green": 10}, 4, {"blue": 3, "green": 1}, {"blue": 75.0, "green": 25.0}),
    ({"blue": 10, "green": 90}, 2, {"blue": 1, "green": 1}, {"blue": 50.0, "green": 50.0}),
    ({"blue": 75, "green": 25}, 4, {"blue": 3, "green": 1}, {"blue": 75.0, "green": 25.0}),
    ({"blue": 100, "green": 0}, 4, {"blue": 4, "green": 0}, {"blue": 100.0, "green": 0.0}),
    ({"green": 100}, 2, {"blue": 0, "green": 2}, {"blue": 0.0, "green": 100.0}),
    ({"blue": 1, "green": 99}, 10, {"blue": 1, "green": 9}, {"blue": 10.0, "green": 90.0}),
    ({"blue": 70, "green": 30}, 10, {"blue": 7, "green": 3}, {"blue": 70.0, "green": 30.0}),
])
def test_replica_counts_are_the_closest_split_and_a_weighted_colour_keeps_a_pod(
        weights, total, counts, effective):
    got = ratio.replica_counts(weights, total)
    assert got == counts and sum(got.values()) == total
    assert ratio.effective_weights(got) == effective


def test_the_total_is_twice_the_replicas_within_bounds():
    assert [ratio.split_total(n) for n in (0, 1, 2, 3, 5, 6, 50)] == [2, 2, 4, 6, 10, 10, 10]
    with pytest.raises(PlatformError, match=r"^a replica split needs at least 2 pods, got 1$"):
        ratio.replica_counts({"blue": 100}, 1)


def test_the_split_service_selects_every_colour_on_the_services_ports():
    main = {"spec": {"selector": {"app": "pay", "version": "blue"}, "type": "NodePort",
                     "ports": [{"name": "http", "port": 80, "targetPort": "http",
                                "nodePort": 30081, "protocol": "TCP"}]}}
    svc = ratio.split_service(LAYOUT, main, {"run": "r1"})
    assert svc["metadata"] == {"name": "pay-split",
                               "labels": {"run": "r1", "zerodrop.io/role": "split"}}
    assert svc["spec"]["selector"] == {"app": "pay"}  # no colour label: both colours
    assert svc["spec"]["type"] == "NodePort"
    assert svc["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http",
                                     "protocol": "TCP"}]
    with pytest.raises(PlatformError, match=r"^Service pay has no ports to copy to pay-split$"):
        ratio.split_service(LAYOUT, {"spec": {}}, {})


def test_the_ratio_router_says_it_cannot_keep_a_header_rule_instead_of_failing_a_canary():
    router = ratio.ReplicaRatioRouter(api=None, layout=LAYOUT)
    assert ratio.header_note(None) == {}
    note = ratio.header_note("green")["canary_header"]
    assert note.startswith("not routed to green: kube-proxy sees no headers") and "\n" not in note
    assert router.entry_service() == "pay-split"
