"""The Gateway API router on a REAL kind cluster: the run's own Traefik serves an HTTPRoute over
the two preview Services, and clients come in through its NodePort (``platform.service_url``).
Every count below is of fresh connections (``Connection: close``), the way new clients arrive,
read from the colour header the app puts on each answer; the idle colour always runs, so a
router that ignored its weights or its header rule would show in the counts.

Needs the Gateway API CRDs on the cluster (``infra/cluster/build-traefik.sh crds CLUSTER``;
up.sh applies them) and the image ``zerodrop/traefik:<v>`` (conftest's IMAGES)."""
from __future__ import annotations

import collections
import time

import pytest
import requests
from kubernetes import client
from kubernetes.client.rest import ApiException

from zerodrop.platforms.base import PlatformError
from zerodrop.platforms.kubernetes import gateway as gw
from zerodrop.platforms.kubernetes.platform import KubeConfig, new_namespace, stand_up
from zerodrop.records.events import EventName

pytestmark = pytest.mark.slow
CANARY = {"canary": "true"}


def cluster_objects(api, namespace: str) -> dict[str, str]:
    """The gateway's cluster-scoped objects of ``namespace`` that exist: kind -> name."""
    name, found = gw.cluster_name(namespace), {}
    rbac, custom = client.RbacAuthorizationV1Api(api), client.CustomObjectsApi(api)
    reads = {"ClusterRole": lambda: rbac.read_cluster_role(name),
             "ClusterRoleBinding": lambda: rbac.read_cluster_role_binding(name),
             "GatewayClass": lambda: custom.get_cluster_custom_object(
                 gw.GROUP, gw.GATEWAY_VERSION, "gatewayclasses", name)}
    for kind, read in reads.items():
        try:
            read()
            found[kind] = name
        except ApiException as exc:
            if exc.status != 404:
                raise
    return found


# first the tests that make platforms of their own and fail: the module's platform below
# holds 4 of the 10 shared NodePorts until the module ends
def test_a_missing_crd_is_one_line_before_anything_is_created(cluster, run_id, monkeypatch):
    """The real API server answers 404 for a CRD nobody installed: no namespace, no
    cluster-scoped object is made (a namespace created and deleted again would still be
    there, terminating)."""
    missing = "nosuchroutes.gateway.networking.k8s.io"
    monkeypatch.setattr(gw, "REQUIRED_CRDS", [*gw.REQUIRED_CRDS, missing])
    namespace = new_namespace(run_id, "gwpre")
    with pytest.raises(PlatformError) as err:
        stand_up(cluster, KubeConfig(replicas=1, run_id=run_id, router="gateway"), namespace)
    message = str(err.value)
    assert "\n" not in message
    assert f"missing on this cluster: {missing};" in message, message
    assert "gatewayclasses.gateway.networking.k8s.io" not in message.split("missing")[1]
    assert "build-traefik.sh crds" in message
    api = cluster.api_client()
    try:
        with pytest.raises(ApiException) as gone:
            client.CoreV1Api(api).read_namespace(namespace)
        assert gone.value.status == 404
        assert cluster_objects(api, namespace) == {}
    finally:
        api.close()


def test_an_install_that_fails_half_way_leaves_nothing_outside_the_namespace(cluster, run_id,
                                                                            monkeypatch):
    """Traefik's image does not exist: install has made the ClusterRole, its binding and the
    GatewayClass when its wait for Traefik fails; the error names the Deployment in one line
    and stand_up's teardown (remove()) takes the cluster-scoped objects away."""
    monkeypatch.setattr(gw, "TRAEFIK_IMAGE", "zerodrop/traefik:no-such-tag")
    namespace = new_namespace(run_id, "gwhalf")
    api = cluster.api_client()
    before_remove: dict[str, str] = {}
    remove = gw.GatewayRouter.remove

    def noting_remove(router):  # what exists when remove() starts: the half-made install
        before_remove.update(cluster_objects(api, router.api.namespace))
        remove(router)
    monkeypatch.setattr(gw.GatewayRouter, "remove", noting_remove)
    try:
        with pytest.raises(PlatformError) as err:
            stand_up(cluster, KubeConfig(replicas=1, run_id=run_id, ready_timeout=30,
                                         router="gateway"), namespace)
        message = str(err.value)
        assert "\n" not in message
        assert message.startswith(f"Deployment {gw.TRAEFIK} in {namespace} not ready"), message
        assert set(before_remove) == {"ClusterRole", "ClusterRoleBinding", "GatewayClass"}
        assert cluster_objects(api, namespace) == {}
    finally:
        api.close()


@pytest.fixture(scope="module")
def gateway(cluster, run_id):
    """blue active, green idle with a replica of its own, both behind the gateway."""
    platform = stand_up(cluster, KubeConfig(replicas=1, run_id=run_id, ready_timeout=150,
                                            router="gateway"),
                        new_namespace(run_id, "gw"), idle_replicas=1)
    try:
        yield platform
    finally:
        platform.teardown()


def colors(platform, n: int, headers: dict[str, str] | None = None) -> collections.Counter:
    """The colour of each of ``n`` answers through the gateway, one new connection each (an
    error is counted under its own name, never as a colour)."""
    url, header = platform.service_url + platform.profile.liveness, platform.profile.color_header
    seen = collections.Counter()
    for _ in range(n):
        try:
            resp = requests.get(url, timeout=5, headers={"Connection": "close", **(headers or {})})
            ok = resp.ok
            seen[resp.headers.get(header, "no colour") if ok else f"HTTP {resp.status_code}"] += 1
        except requests.RequestException as exc:
            seen[type(exc).__name__] += 1
    return seen


def route_then_wait(platform, weights: dict[str, int] | None = None, canary: str | None = None,
                    to: str | None = None) -> None:
    if to is not None:
        platform.route_to(to)
    else:
        platform.set_weights(weights, canary)
    platform.wait_routed(None, 90)


def test_the_gateway_serves_the_active_colour_at_install(gateway):
    """Clients come in through Traefik's NodePort, not the layout's Service, and every answer
    is blue although green runs too (behind the same route, at weight 0)."""
    entry = gateway.router.entry_service()
    assert entry == "payment-service-gateway"
    assert gateway.service_url == gateway._url(entry) != gateway._url(gateway.layout.service)
    route = gateway.router._read_route()
    assert gw.route_settled(route), gw.describe_conditions(route)
    assert gateway.active_color() == "blue"
    assert gateway.replicas("green"), "green must run, or all-blue would prove nothing"
    assert colors(gateway, 30) == {"blue": 30}


def test_half_and_half_reaches_both_colours(gateway):
    route_then_wait(gateway, {"blue": 50, "green": 50})
    seen = colors(gateway, 200)
    assert 50 <= seen["blue"] <= 150 and 50 <= seen["green"] <= 150, seen
    assert seen["blue"] + seen["green"] == 200, seen
    assert gateway.active_color() is None
    patched = list(gateway.events.named(EventName.SELECTOR_PATCHED))[-1].detail
    assert patched["route"] == "payment-service" and patched["canary"] is None
    assert patched["weights"] == {"blue": 50, "green": 50} and patched["resource_version"]


def test_route_to_green_sends_every_new_connection_to_green(gateway):
    route_then_wait(gateway, {"blue": 50, "green": 50})  # from a split: both served before
    route_then_wait(gateway, to="green")
    assert gateway.active_color() == "green"
    assert colors(gateway, 60) == {"green": 60}


def test_the_canary_header_reaches_the_canary_and_nothing_else_does(gateway):
    """From green 100 to blue 100 with a header rule to green: the answers without the header
    turning blue show Traefik took the new rules, so the header's must all be green. The
    same weights without ``canary`` are the negative control: the header alone moves
    nothing."""
    route_then_wait(gateway, to="green")
    route_then_wait(gateway, {"blue": 100, "green": 0}, canary="green")
    assert colors(gateway, 40) == {"blue": 40}
    assert colors(gateway, 40, CANARY) == {"green": 40}
    assert colors(gateway, 20, {"canary": "false"}) == {"blue": 20}
    assert gateway.active_color() is None  # testers with the header reach green
    route_then_wait(gateway, {"blue": 100, "green": 0})
    assert colors(gateway, 40, CANARY) == {"blue": 40}
    assert gateway.active_color() == "blue"


def test_teardown_removes_the_cluster_scoped_objects(cluster, gateway):
    """Last in this module (it tears the module's platform down; teardown runs once)."""
    api = cluster.api_client()
    try:
        made = cluster_objects(api, gateway.namespace)
        assert set(made) == {"ClusterRole", "ClusterRoleBinding", "GatewayClass"}, made
        gateway.teardown()
        deadline, left = time.monotonic() + 60, made
        while left and time.monotonic() < deadline:
            time.sleep(0.5)
            left = cluster_objects(api, gateway.namespace)
        assert left == {}, f"still there 60 s after teardown: {left}"
    finally:
        api.close()
