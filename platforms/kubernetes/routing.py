"""How the Service's traffic is steered between colours, as a strategy the platform holds.

``SelectorRouter`` is the plain Kubernetes way: the Service selects one colour, switched by a
JSON-patch replace of ``/spec/selector`` (a strategic or merge patch merges maps, and an old
key could survive). A weighted router (Gateway API HTTPRoute weights, an Istio
VirtualService) implements the same three methods and plugs in without touching the platform.
"""
from __future__ import annotations

import abc

from zerodrop.platforms.base import COLORS, PlatformError
from zerodrop.platforms.kubernetes.layout import Layout
from zerodrop.records.events import EventLog, EventName, Source


class Router(abc.ABC):
    """Where NEW connections to the Service go. One-line contracts."""

    @abc.abstractmethod
    def route_to(self, color: str) -> None:
        """Send all new connections to ``color``; emits "selector patched"."""

    @abc.abstractmethod
    def active_color(self) -> str | None:
        """The one colour that gets all new connections, or None (weights, or nothing)."""

    @abc.abstractmethod
    def set_weights(self, weights: dict[str, int], canary: str | None = None) -> None:
        """Split traffic by percent (a canary stage), or PlatformError in one line; with
        ``canary``, requests carrying the header ``canary: true`` go to that colour (the seed's
        VirtualService match)."""

    # ---- what a weighted router adds to the namespace (defaults: nothing) ----------------------
    def preflight(self) -> None:
        """Before anything is created: what this router needs from the cluster (CRDs, a Gateway
        implementation's image) is there, or PlatformError in one line."""

    def install(self, platform) -> None:
        """Once the overlay's Services exist: create what routing needs in the run's namespace
        (a Gateway and its HTTPRoute, a VirtualService), routed to ``platform``'s active
        colour. Removed with the namespace."""

    def remove(self) -> None:
        """At teardown, before the namespace goes: what it created outside the namespace
        (a GatewayClass, a ClusterRole and its binding). Never raises."""

    def entry_service(self) -> str | None:
        """The NodePort Service clients come in through when it is not the layout's Service
        (a Gateway's); None: the layout's Service."""
        return None

    def wait_entry(self, platform, timeout: float) -> None:
        """Until the entry Service (when there is one) routes to what the router says; only
        called when ``entry_service()`` is not None."""


class SelectorRouter(Router):
    """The Service's selector: one colour at a time, never weights. The selector is the
    layout's: the app's labels plus its colour label (``version`` in the seed)."""

    def __init__(self, api, layout: Layout, events: EventLog | None = None) -> None:
        self.api, self.layout, self.events = api, layout, events
        self.service = layout.service

    def route_to(self, color: str) -> None:
        selector = self.layout.selector(color)
        patch = [{"op": "replace", "path": "/spec/selector", "value": selector}]  # never a merge
        svc = self.api.call(f"patch the selector of {self.service}",
                            self.api.core.patch_namespaced_service, self.service,
                            self.api.namespace, patch)
        if self.events is not None:
            self.events.emit(Source.PLATFORM, EventName.SELECTOR_PATCHED, service=self.service,
                             selector=selector, resource_version=svc.metadata.resource_version)

    def active_color(self) -> str | None:
        svc = self.api.call(f"read Service {self.service}", self.api.core.read_namespaced_service,
                            self.service, self.api.namespace)
        selector = svc.spec.selector or {}
        color = selector.get(self.layout.label)
        return color if color in COLORS and selector == self.layout.selector(color) else None

    def set_weights(self, weights: dict[str, int], canary: str | None = None) -> None:
        raise PlatformError("the Service selector router cannot split traffic by weight; a "
                            "weighted router (Gateway API, Istio) is needed for canary weights")

