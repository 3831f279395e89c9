"""The two canary routers of the Kubernetes platform on a REAL kind cluster.

Istio: the VirtualService is created, patched and read back from the API server, which
validates it against Istio's own CRD schema (applied here by infra/cluster/build-istio-crds.sh
and left installed); no Envoy runs, so a switch is proven by the Service's selector moving real
traffic, and a split is proven as an object only (its weights move nothing, which a test shows).
Replica ratio: the split is real traffic, counted over fresh connections through the split
Service, and the share it can make is on the timeline beside the one asked for.

Answers name their colour in the payment service's ``X-App-Color`` header.
"""
from __future__ import annotations

import collections
import os
import subprocess
from pathlib import Path

import pytest
import requests

from zerodrop.platforms.base import PlatformError
from zerodrop.platforms.kubernetes import istio
from zerodrop.platforms.kubernetes.platform import KubeConfig, new_namespace, stand_up
from zerodrop.records.events import EventName

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
COLOR_HEADER = "X-App-Color"
_n = iter(range(1, 1000))


def answers(url: str, n: int) -> collections.Counter:
    """The colours that answer ``n`` requests, each on a new connection (kube-proxy picks a pod
    per connection, so a keep-alive session would count one pod many times)."""
    seen: collections.Counter = collections.Counter()
    for _ in range(n):
        try:
            resp = requests.get(f"{url}/health/live", timeout=5, headers={"Connection": "close"})
            missing = f"no {COLOR_HEADER} (HTTP {resp.status_code})"
            seen[resp.headers.get(COLOR_HEADER, missing)] += 1
        except requests.RequestException as exc:
            seen[f"error {type(exc).__name__}"] += 1
    return seen


def config(run_id: str, router: str) -> KubeConfig:
    return KubeConfig(replicas=1, run_id=run_id, ready_timeout=150, router=router)


# ---- Istio ------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def istio_crds(cluster):
    """Istio's CRDs in the cluster, by the script up.sh would run; left installed (other runs
    share the cluster and the CRDs hold nothing of this run)."""
    done = subprocess.run([str(ROOT / "infra/cluster/build-istio-crds.sh"), "crds", cluster.name],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "KUBECONFIG": cluster.kubeconfig})
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.fixture(scope="class")
def istio_platform(cluster, run_id, istio_crds):
    """Blue serving, green running v1.1.0 behind its preview: a switch has somewhere to go.
    Class-scoped: gone before the replica-ratio platform comes (small cluster, shared ports)."""
    p = stand_up(cluster, config(run_id, "istio"), new_namespace(run_id, f"istio{next(_n)}"))
    try:
        yield p
    finally:
        p.teardown()


class TestIstio:
    @pytest.fixture
    def platform(self, istio_platform):
        return istio_platform

    @staticmethod
    def read(platform) -> dict:
        """The VirtualService as the API server holds it, read without the router's code."""
        from kubernetes import client
        return client.CustomObjectsApi(platform.api.core.api_client).get_namespaced_custom_object(
            istio.GROUP, istio.VERSION, platform.namespace, istio.PLURAL,
            platform.layout.service)

    @staticmethod
    def host(platform, color: str) -> str:
        return f"{platform.layout.preview(color)}.{platform.namespace}.svc.cluster.local"

    def test_install_creates_the_virtual_service_with_all_weight_on_blue(self, platform):
        vs = self.read(platform)
        assert vs["spec"]["hosts"] == [platform.layout.service]
        assert vs["spec"]["http"] == [{"name": "weighted", "route": [
            {"destination": {"host": self.host(platform, "blue")}, "weight": 100}]}]
        assert platform.active_color() == "blue"
        assert answers(platform.service_url, 10) == {"blue": 10}

    def test_the_api_server_validates_it_against_istios_schema(self, platform):
        """Negative control of the read-back: what is read was validated, since a weight that
        is not a number is refused by the API server (the CRD's schema, not our code)."""
        from kubernetes import client
        from kubernetes.client.rest import ApiException
        custom = client.CustomObjectsApi(platform.api.core.api_client)
        bad = [{"op": "replace", "path": "/spec/http/0/route/0/weight", "value": "ninety"}]
        with pytest.raises(ApiException) as err:
            custom.patch_namespaced_custom_object(
                istio.GROUP, istio.VERSION, platform.namespace, istio.PLURAL,
                platform.layout.service, bad, _content_type=istio.JSON_PATCH)
        assert err.value.status == 422 and "weight" in err.value.body, err.value.body
        assert self.read(platform)["spec"]["http"][0]["route"][0]["weight"] == 100

    def test_weights_with_a_canary_put_the_header_rule_first_and_split_90_10(self, platform):
        platform.set_weights({"blue": 90, "green": 10}, canary="green")
        http = self.read(platform)["spec"]["http"]
        assert [r["name"] for r in http] == ["canary-header", "weighted"]
        assert http[0]["match"] == [{"headers": {"canary": {"exact": "true"}}}]
        assert http[0]["route"] == [{"destination": {"host": self.host(platform, "green")}}]
        assert [(d["destination"]["host"], d["weight"]) for d in http[1]["route"]] == [
            (self.host(platform, "blue"), 90), (self.host(platform, "green"), 10)]
        assert platform.active_color() is None  # a split: no single colour
        event = platform.events.named(EventName.SELECTOR_PATCHED)[-1]
        assert event.detail["weights"] == {"blue": 90, "green": 10}
        assert event.detail["data_plane"] is False
        # honest about the missing data plane: without Envoy the split moves nothing, and the
        # Service still sends every new connection to the colour it selects
        assert answers(platform.service_url, 20) == {"blue": 20}

    def test_route_to_green_moves_the_virtual_service_and_real_traffic(self, platform):
        platform.route_to("green")
        http = self.read(platform)["spec"]["http"]
        # a JSON patch replaced /spec/http: the canary header rule of the last test is gone
        assert http == [{"name": "weighted", "route": [
            {"destination": {"host": self.host(platform, "green")}, "weight": 100}]}]
        svc = platform.core.read_namespaced_service(platform.layout.service, platform.namespace)
        assert svc.spec.selector == platform.layout.selector("green")
        assert platform.active_color() == "green"
        platform.wait_routed(None, 60)  # kube-proxy applies the new EndpointSlices
        assert answers(platform.service_url, 30) == {"green": 30}


def test_istio_preflight_refuses_a_missing_crd_in_one_line_before_any_namespace(
        cluster, run_id, istio_crds, monkeypatch):
    from kubernetes import client
    from kubernetes.client.rest import ApiException
    missing = "nosuchroutes.networking.istio.io"
    monkeypatch.setattr(istio, "REQUIRED_CRDS", (*istio.REQUIRED_CRDS, missing))
    namespace = new_namespace(run_id, "istio-preflight")
    with pytest.raises(PlatformError) as err:
        stand_up(cluster, config(run_id, "istio"), namespace)
    message = str(err.value)
    assert "\n" not in message
    assert missing in message and "build-istio-crds.sh crds" in message, message
    core = client.CoreV1Api(cluster.api_client())
    try:
        with pytest.raises(ApiException) as gone:
            core.read_namespace(namespace)
        assert gone.value.status == 404, "the namespace was created before the preflight"
    finally:
        core.api_client.close()


# ---- replica ratio ----------------------------------------------------------------------------
@pytest.fixture(scope="class")
def ratio_platform(cluster, run_id):
    """Blue serving with 1 replica, green at 0: the split Service sees only blue. The two
    colours share 1 x 2 = 2 pods."""
    p = stand_up(cluster, config(run_id, "replicas"), new_namespace(run_id, f"ratio{next(_n)}"),
                 idle_replicas=0)
    try:
        yield p
    finally:
        p.teardown()


class TestReplicaRatio:
    @pytest.fixture
    def platform(self, ratio_platform):
        return ratio_platform

    def test_clients_come_in_through_the_split_service_which_serves_blue(self, platform):
        split = f"{platform.layout.service}-split"
        assert platform.router.entry_service() == split
        port = platform.core.read_namespaced_service(split, platform.namespace).spec.ports[0]
        assert platform.service_url == f"http://{platform.cluster.address(port.node_port)}"
        assert platform.active_color() == "blue"
        assert answers(platform.service_url, 10) == {"blue": 10}

    def test_fifty_fifty_is_served_by_both_colours(self, platform):
        platform.set_weights({"blue": 50, "green": 50})
        assert {c: len([r for r in platform.replicas(c) if r.ready and not r.terminating])
                for c in ("blue", "green")} == {"blue": 1, "green": 1}
        assert platform.active_color() is None
        platform.wait_routed(None, 60)
        seen = answers(platform.service_url, 200)
        # kube-proxy picks at random per connection: 1 of 2 pods is ~100 of 200 (sd 7)
        assert sum(seen.values()) == 200 and set(seen) == {"blue", "green"}, seen
        assert 50 <= seen["green"] <= 150, seen

    def test_asked_ten_percent_the_event_shows_the_effective_share(self, platform):
        platform.set_weights({"blue": 90, "green": 10})
        event = platform.events.named(EventName.SELECTOR_PATCHED)[-1]
        assert event.detail["asked"] == {"blue": 90, "green": 10}
        # 2 pods: a canary with any weight keeps one, so it gets half, not a tenth
        assert event.detail["replicas"] == {"blue": 1, "green": 1}
        assert event.detail["effective"] == {"blue": 50.0, "green": 50.0}

    def test_route_to_green_only_green_answers(self, platform):
        platform.route_to("green")
        assert platform.apps.read_namespaced_deployment(
            platform.layout.deployment("blue"), platform.namespace).spec.replicas == 0
        assert platform.active_color() == "green"
        event = platform.events.named(EventName.SELECTOR_PATCHED)[-1]
        assert event.detail["effective"] == {"blue": 0.0, "green": 100.0}
        platform.wait_routed(None, 60)
        assert answers(platform.service_url, 30) == {"green": 30}
