"""How a Kubernetes platform is wired, checked without a cluster: the names of a run's
namespaces (--namespace), which namespaces a sweep may delete, the provider and router a
platform is built with, and the selector router's refusal of weights. The kubeconfig is a real
file the real client parses; no call reaches an API server."""
from __future__ import annotations

import argparse
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from kubernetes import client

from tests.integration.test_kube_providers import KUBECONFIG
from zerodrop.platforms import registry
from zerodrop.platforms.base import PlatformError
from zerodrop.platforms.kubernetes.platform import (KubeConfig, KubernetesPlatform, layout_of,
                                                    new_namespace)
from zerodrop.platforms.kubernetes.providers import base
from zerodrop.platforms.kubernetes.providers.base import Cluster, sweepable
from zerodrop.platforms.kubernetes.routing import SelectorRouter
from zerodrop.platforms.provider import Run

WEIGHTS_REFUSED = ("the Service selector router cannot split traffic by weight; a weighted "
                   "router (Gateway API, Istio) is needed for canary weights")


class Group:
    """The part of pytest's option group a provider uses, over argparse."""

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser, self.options = parser, []

    def addoption(self, *names, **kwargs) -> None:
        self.parser.add_argument(*names, **kwargs)
        self.options.append(type("Opt", (), {"names": lambda _, n=names: list(n)})())


def options(provider_name: str, *argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    for name, kw in (("--replicas", {"type": int, "default": 2}), ("--token", {"default": "t"}),
                     ("--ready-timeout", {"type": float, "default": 60.0}),
                     ("--local-faults", {"default": "{}"})):
        parser.add_argument(name, **kw)
    registry.get(provider_name).add_options(Group(parser))
    return parser.parse_args(list(argv))


@pytest.fixture
def kubeconfig(tmp_path) -> str:
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    return str(path)


def test_every_namespace_of_a_run_carries_the_namespace_prefix(kubeconfig, tmp_path, monkeypatch):
    swept_with = []
    monkeypatch.setattr(base, "sweep", lambda cluster, run_id, prefix: swept_with.append(prefix)
                        or [])
    provider = registry.get("kubeconfig")
    o = options("kubeconfig", "--namespace", "team-a", "--kubeconfig", kubeconfig,
                "--allow-context", "production", "--node-address", "127.0.0.1")
    session = provider.acquire(o, Run("1201101010ab12", tmp_path, 1), say=lambda _: None)
    assert swept_with == ["team-a"]  # the sweep looks at this prefix's namespaces only
    assert provider.namespace(session, "c-1") == "team-a-1201101010ab12-c-1"
    again = provider.session_from_worker(provider.session_to_worker(session))
    assert provider.namespace(again, "gw0-2") == "team-a-1201101010ab12-gw0-2"
    config = provider.kube_config(o, session.run_id)
    assert (config.run_id, config.replicas, config.token) == ("1201101010ab12", 2, "t")
    assert new_namespace("r1") == "zd-r1" and new_namespace("r1", "s", "ci") == "ci-r1-s"


def test_a_bad_namespace_prefix_is_a_usage_error():
    o = options("kind", "--namespace", "Team_A")
    with pytest.raises(ValueError, match="--namespace 'Team_A': use lowercase letters"):
        registry.get("kind").check_options(o)


def namespace(name: str, run: str, owner: str = "elsewhere:1", age_h: float = 1.0,
              phase: str = "Active") -> client.V1Namespace:
    created = datetime.now(timezone.utc) - timedelta(hours=age_h)
    return client.V1Namespace(
        metadata=client.V1ObjectMeta(name=name, labels={"zerodrop.io/run": run},
                                     annotations={"zerodrop.io/owner": owner},
                                     creation_timestamp=created),
        status=client.V1NamespaceStatus(phase=phase))


def test_the_sweep_takes_only_finished_runs_of_its_own_prefix():
    now = datetime.now(timezone.utc).timestamp()
    items = [namespace("team-a-old-s", "old", age_h=7),             # over: too old
             namespace("team-a-dead-s", "dead", owner="here:111"),  # over: owner gone
             namespace("team-a-live-s", "live", owner="here:222"),  # another live run
             namespace("team-a-me-s", "me", age_h=7),               # this run
             namespace("team-a-gone-s", "gone", age_h=7, phase="Terminating"),
             namespace("zd-old-s", "old2", age_h=7)]                # another prefix's
    over = sweepable(items, "me", "team-a", now, "here", alive=lambda pid: pid == 222)
    assert over == ["team-a-old-s", "team-a-dead-s"]


@pytest.mark.parametrize("kind", ["kind", "kubeconfig"])
def test_a_platform_is_built_with_its_clusters_provider_and_a_selector_router(kind, kubeconfig):
    cluster = Cluster(kind, "c", kubeconfig, "staging", {})
    platform = KubernetesPlatform(cluster, "zd-x", KubeConfig())
    try:
        assert platform.provider is registry.get(kind)
        assert isinstance(platform.router, SelectorRouter)
        with pytest.raises(PlatformError) as err:
            platform.set_weights({"blue": 70, "green": 30})
        assert str(err.value) == WEIGHTS_REFUSED
    finally:
        platform.api.close()


def test_the_selector_router_refuses_weights_before_any_api_call():
    with pytest.raises(PlatformError) as err:
        SelectorRouter(None, layout_of(KubeConfig())).set_weights({"blue": 70, "green": 30})  # no client
    assert str(err.value) == WEIGHTS_REFUSED and "\n" not in str(err.value)


def test_the_registry_names_each_target_once_with_a_provider_of_that_name():
    assert registry.names() == ("local", "url", "kind", "kubeconfig")
    for name in registry.names():
        provider = registry.get(name)
        assert provider.name == name and provider.summary
        assert provider.summary in registry.target_help()
    assert registry.switchable() == ["local", "kind", "kubeconfig"]
    with pytest.raises(Exception, match="unknown target 'bogus'; known: local, url, kind"):
        registry.get("bogus")


def test_no_plugin_or_fixture_module_asks_which_target_it_holds():
    """Dispatch goes through the registry: no target names or kind checks in the plugin."""
    root = Path(__file__).resolve().parents[2]
    for path in [*(root / "plugin").glob("*.py"), *(root / "fixtures").glob("*.py")]:
        text = path.read_text()
        for smell in ('target == "', "target in (", "KUBE_TARGETS", 'kind == "kind"',
                      "node_container", "zerodrop.platforms.kubernetes",
                      "zerodrop.platforms.local", "zerodrop.platforms.url"):
            assert smell not in text, f"{path.name} mentions {smell!r}"


@pytest.mark.parametrize("weights,canary,message", [
    ({"blue": 90, "green": 20}, None, "weights must sum to 100, got 110"),
    ({"blue": 110, "green": -10}, None, "weight of blue must be a whole percent in 0..100, got 110"),
    ({"blue": 50.5, "green": 49.5}, None, "weight of blue must be a whole percent in 0..100, got 50.5"),
    ({"red": 100}, None, "unknown colour 'red' in weights; use blue and green"),
    ({"blue": 90, "green": 10}, "red", "unknown canary colour 'red'; use blue or green"),
])
def test_weights_outside_0_to_100_are_refused_in_one_line(weights, canary, message):
    from zerodrop.platforms.base import check_weights
    with pytest.raises(PlatformError) as err:
        check_weights(weights, canary)
    assert str(err.value) == message


def test_an_unknown_router_is_refused_in_one_line():
    from zerodrop.platforms.kubernetes.routers import make_router
    with pytest.raises(ValueError, match=r"^unknown router 'nginx'; choose one of selector, gateway, istio, replicas$"):
        make_router("nginx", None, layout_of(KubeConfig()))
