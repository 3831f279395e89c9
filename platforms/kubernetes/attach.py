"""A Service that already runs on a cluster, attached READ-ONLY (``--target kubeconfig
--nightly-namespace NS``): what a nightly run against staging reads and loads.

Nothing is created, patched, scaled or deleted unless the run allows it
(``--nightly-allow-deploy``). That is enforced in code, twice:

- ``WriteGuard.check(what)`` (platforms/readonly.py) is called by every method of the platform
  that would change something before it does anything, and refuses in one line;
- ``GuardedApi`` (the platform's only way to the API server) refuses every call whose client
  method writes (``create_*``, ``patch_*``, ``replace_*``, ``delete_*``, ``connect_*``: an exec
  is a write too) before the request is made: a write added here later cannot slip past.
"""
from __future__ import annotations

from typing import Any, Callable

from zerodrop.platforms.base import COLORS, PlatformError, ReplicaInfo
from zerodrop.platforms.kubernetes.api import KubeApi
from zerodrop.platforms.readonly import FIX, ReadOnlyError, ReadOnlyPlatform, WriteGuard
from zerodrop.records.events import EventLog

__all__ = ["FIX", "ReadOnlyError", "WriteGuard", "GuardedApi", "AttachedPlatform", "attach",
           "writes", "WRITE_VERBS"]
WRITE_VERBS = ("create_", "patch_", "replace_", "delete_", "connect_")


def writes(fn: Callable) -> bool:
    """Whether a client method changes the cluster (by the official client's naming)."""
    return getattr(fn, "__name__", "").startswith(WRITE_VERBS)


class GuardedApi(KubeApi):
    """``KubeApi`` whose every write goes through the guard before the request is made."""

    def __init__(self, api_client: Any, namespace: str, guard: WriteGuard) -> None:
        super().__init__(api_client, namespace)
        self.guard = guard

    def call(self, what: str, fn: Callable, *args, **kwargs):
        if writes(fn):
            self.guard.check(what)
        return super().call(what, fn, *args, **kwargs)


class AttachedPlatform(ReadOnlyPlatform):
    """The Service ``service`` of a cluster, reached at ``url``: its selector and pods are read
    through ``api`` (a GuardedApi on its namespace); a selector switch, allowed, is a JSON patch."""

    def __init__(self, url: str, guard: WriteGuard, api: GuardedApi, service: str, *,
                 kind: str = "kubeconfig", token: str = "test-token",
                 color_label: str = "version", events: EventLog | None = None) -> None:
        super().__init__(url, guard, kind=kind, token=token, events=events)
        self.api, self.service, self.color_label = api, service, color_label

    def active_color(self) -> str | None:
        color = (self._service().spec.selector or {}).get(self.color_label)
        return color if color in COLORS else None

    def replicas(self, color: str) -> list[ReplicaInfo]:
        selector = dict(self._service().spec.selector or {})
        selector[self.color_label] = color
        label = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        pods = self.api.call("list pods", self.api.core.list_namespaced_pod, self.api.namespace,
                             label_selector=label).items
        return [ReplicaInfo(p.metadata.name, color, "", "", None,
                            any(c.type == "Ready" and c.status == "True"
                                for c in (p.status.conditions or [])),
                            bool(p.metadata.deletion_timestamp),
                            sum(s.restart_count for s in p.status.container_statuses or []))
                for p in sorted(pods, key=lambda p: p.metadata.name)]

    def route_to(self, color: str) -> None:
        """Replace the Service's selector colour with a JSON patch (allowed runs only)."""
        self.guard.check(f"switch Service {self.service} to {color}")
        if color not in COLORS:
            raise PlatformError(f"colour must be blue or green, got {color!r}")
        selector = dict(self._service().spec.selector or {})
        selector[self.color_label] = color
        self.api.call(f"patch Service {self.service} selector",
                      self.api.core.patch_namespaced_service, self.service, self.api.namespace,
                      [{"op": "replace", "path": "/spec/selector", "value": selector}])

    def teardown(self) -> None:
        if not self._closed:
            self.api.close()
        super().teardown()

    def _service(self):
        return self.api.call(f"read Service {self.service}", self.api.core.read_namespaced_service,
                             self.service, self.api.namespace)


def node_port_of(service: Any) -> int:
    for port in service.spec.ports or []:
        if port.node_port:
            return int(port.node_port)
    raise PlatformError(f"Service {service.metadata.name} in {service.metadata.namespace} has no "
                        f"NodePort: a nightly run reaches the Service from this machine through "
                        f"one (type NodePort)")


def attach(cluster: Any, namespace: str, service: str, *, token: str, guard: WriteGuard,
           color_label: str = "version", address: Callable[[int], str] | None = None,
           ) -> AttachedPlatform:
    """The existing ``service`` in ``namespace``, read through the API (nothing written): its
    NodePort, reached at ``address(port)`` (default: the cluster's own mapping)."""
    api = GuardedApi(cluster.api_client(), namespace, guard)
    try:
        obj = api.call(f"read Service {service}", api.core.read_namespaced_service, service,
                       namespace)
        port = node_port_of(obj)
        where = (address or cluster.address)(port)
    except BaseException:
        api.close()
        raise
    return AttachedPlatform(f"http://{where}", guard, api, service, kind=cluster.kind,
                            token=token, color_label=color_label)
