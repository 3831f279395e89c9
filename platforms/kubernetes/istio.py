"""The seed's Istio VirtualService as a router: what the canary controller patches, done right.

What it does: one VirtualService per run, named as the Service and with the Service as its
host, whose ``http`` routes are (with a canary colour) first a match on the header
``canary: exact "true"`` to the canary, then a weighted route over the colours' preview
Services (``<service>-blue``/``-green``, namespace-qualified hosts). Every change replaces
``/spec/http`` with a JSON patch: the seed's merge patch replaces lists too, but a JSON patch
says so, and no route of an earlier stage can survive a later one. ``route_to`` patches the
VirtualService AND the Service's selector (through a ``SelectorRouter``), so a switch moves
real traffic even without a mesh; ``active_color`` reads the VirtualService back.

What it cannot do here: Istio's data plane (istiod, the Envoy sidecars) cannot be built on
this machine, so on the kind cluster only the control objects exist. Weights and the header
rule are written, validated by the API server against Istio's CRD schema and read back, but
no proxy applies them: ``set_weights`` moves no real traffic (clients still reach the colour
the Service selects). Istio's own webhook validation (istiod) is not there either: the
objects are built to pass it (weights 0..100 summing to 100, zero-weight destinations left
out, a single destination at weight 100). On a cluster with Istio installed, the same
objects route.

The CRDs come from ``infra/cluster/build-istio-crds.sh crds <cluster>`` (istio.io/api's
``kubernetes/customresourcedefinitions.gen.yaml`` from the Go module proxy).
"""
from __future__ import annotations

from typing import Any

from zerodrop.platforms.base import COLORS, PlatformError
from zerodrop.platforms.kubernetes.layout import Layout
from zerodrop.platforms.kubernetes.routing import Router, SelectorRouter
from zerodrop.records.events import EventLog, EventName, Source

GROUP, VERSION, PLURAL = "networking.istio.io", "v1", "virtualservices"
# what preflight wants Established; a module-level tuple so a test can add one that is missing
REQUIRED_CRDS: tuple[str, ...] = ("virtualservices.networking.istio.io",)
INSTALL_HINT = "infra/cluster/build-istio-crds.sh crds <cluster>"
CANARY_HEADER = {"canary": {"exact": "true"}}  # the seed's match
HEADER_ROUTE, WEIGHTED_ROUTE = "canary-header", "weighted"
JSON_PATCH = "application/json-patch+json"


# ---- pure: the objects ------------------------------------------------------------------------
def host(layout: Layout, namespace: str, color: str) -> str:
    """The colour's preview Service as a mesh host, namespace-qualified (Istio resolves a short
    name in the VirtualService's namespace; the long form cannot be misread)."""
    return f"{layout.preview(color)}.{namespace}.svc.cluster.local"


def http_routes(layout: Layout, namespace: str, weights: dict[str, int],
                canary: str | None = None) -> list[dict[str, Any]]:
    """``spec.http`` for ``weights`` (checked: whole percents summing to 100): the header rule
    first when there is a canary colour, then the weighted route. Zero weights are left out,
    so one colour at 100 is a route with one destination."""
    routes: list[dict[str, Any]] = []
    if canary is not None:
        routes.append({"name": HEADER_ROUTE, "match": [{"headers": dict(CANARY_HEADER)}],
                       "route": [{"destination": {"host": host(layout, namespace, canary)}}]})
    routes.append({"name": WEIGHTED_ROUTE,
                   "route": [{"destination": {"host": host(layout, namespace, c)},
                              "weight": weights[c]}
                             for c in COLORS if weights.get(c, 0) > 0]})
    return routes


def virtual_service(layout: Layout, namespace: str, labels: dict[str, str],
                    weights: dict[str, int], canary: str | None = None) -> dict[str, Any]:
    """The whole VirtualService, named as the Service and with the Service as its host."""
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "VirtualService",
            "metadata": {"name": layout.service, "labels": dict(labels)},
            "spec": {"hosts": [layout.service],
                     "http": http_routes(layout, namespace, weights, canary)}}


def color_of_host(layout: Layout, namespace: str, name: str) -> str | None:
    """The colour whose preview Service ``name`` is, in short, ``svc.ns`` or FQDN form."""
    for color in COLORS:
        short = layout.preview(color)
        if name in (short, f"{short}.{namespace}", f"{short}.{namespace}.svc",
                    host(layout, namespace, color)):
            return color
    return None


def routed_color(spec: dict[str, Any] | None, layout: Layout, namespace: str) -> str | None:
    """The one colour every request goes to under ``spec``: the weighted route's only
    destination with weight, and a header rule (if any) to the same colour; else None."""
    http = (spec or {}).get("http") or []
    weighted = [r for r in http if not r.get("match")]
    if len(weighted) != 1:
        return None
    dests = weighted[0].get("route") or []
    sole = len(dests) == 1
    colors = {color_of_host(layout, namespace, (d.get("destination") or {}).get("host", ""))
              for d in dests if (d.get("weight") or (100 if sole else 0)) > 0}
    if len(colors) != 1 or None in colors:
        return None
    color = colors.pop()
    for r in http:
        if r.get("match"):
            if {color_of_host(layout, namespace, (d.get("destination") or {}).get("host", ""))
                    for d in r.get("route") or []} != {color}:
                return None
    return color


# ---- the router -------------------------------------------------------------------------------
class IstioRouter(Router):
    """The VirtualService for weights and the header rule; the Service selector as well for a
    switch, because without a mesh that is what moves traffic."""

    def __init__(self, api, layout: Layout, events: EventLog | None = None) -> None:
        self.api, self.layout, self.events = api, layout, events
        self.name = layout.service
        self.selector = SelectorRouter(api, layout, events)
        self._labels: dict[str, str] = {}
        self._custom = None

    @property
    def custom(self):
        if self._custom is None:
            from kubernetes import client
            self._custom = client.CustomObjectsApi(self.api.core.api_client)
        return self._custom

    def preflight(self) -> None:
        """Every CRD in ``REQUIRED_CRDS`` exists and is Established, before the namespace."""
        from kubernetes import client
        from kubernetes.client.rest import ApiException
        from urllib3.exceptions import HTTPError

        from zerodrop.platforms.kubernetes.api import REQUEST_TIMEOUT_S, api_reason
        ext = client.ApiextensionsV1Api(self.api.core.api_client)
        for crd in REQUIRED_CRDS:
            try:
                found = ext.read_custom_resource_definition(crd,
                                                            _request_timeout=REQUEST_TIMEOUT_S)
            except ApiException as exc:
                if exc.status == 404:
                    raise PlatformError(f"the istio router needs the CRD {crd}, which this "
                                        f"cluster lacks; install Istio's CRDs with "
                                        f"{INSTALL_HINT}") from None
                raise PlatformError(f"read CRD {crd}: {api_reason(exc)}") from None
            except (HTTPError, OSError) as exc:
                raise PlatformError(f"read CRD {crd}: the API server did not answer "
                                    f"({type(exc).__name__})") from None
            conditions = (found.status.conditions if found.status else None) or []
            if not any(c.type == "Established" and c.status == "True" for c in conditions):
                raise PlatformError(f"the CRD {crd} exists but is not Established yet; wait for "
                                    f"it (kubectl wait --for condition=Established crd/{crd})")

    def install(self, platform) -> None:
        """The VirtualService with all weight on the colour the Service selects."""
        active = self.selector.active_color()
        if active is None:
            raise PlatformError(f"Service {self.name} selects no single colour; cannot create "
                                f"its VirtualService")
        self._labels = platform.labels()
        body = virtual_service(self.layout, self.api.namespace, self._labels, {active: 100})
        self.api.call(f"create VirtualService {self.name}",
                      self.custom.create_namespaced_custom_object, GROUP, VERSION,
                      self.api.namespace, PLURAL, body)

    def read(self) -> dict[str, Any]:
        """The VirtualService as the API server holds it."""
        return self.api.call(f"read VirtualService {self.name}",
                             self.custom.get_namespaced_custom_object, GROUP, VERSION,
                             self.api.namespace, PLURAL, self.name)

    def _replace_http(self, weights: dict[str, int], canary: str | None) -> None:
        routes = http_routes(self.layout, self.api.namespace, weights, canary)
        patch = [{"op": "replace", "path": "/spec/http", "value": routes}]  # never a merge
        vs = self.api.call(f"patch VirtualService {self.name}",
                           self.custom.patch_namespaced_custom_object, GROUP, VERSION,
                           self.api.namespace, PLURAL, self.name, patch,
                           _content_type=JSON_PATCH)
        if self.events is not None:
            self.events.emit(Source.PLATFORM, EventName.SELECTOR_PATCHED,
                             service=f"VirtualService/{self.name}", selector=dict(weights),
                             weights=dict(weights), canary=canary,
                             resource_version=(vs.get("metadata") or {}).get("resourceVersion"),
                             data_plane=False)

    def route_to(self, color: str) -> None:
        self._replace_http({color: 100}, None)
        self.selector.route_to(color)  # what really moves traffic without a mesh

    def set_weights(self, weights: dict[str, int], canary: str | None = None) -> None:
        """Writes the split; without Istio's data plane nothing applies it (module docstring)."""
        self._replace_http(weights, canary)

    def active_color(self) -> str | None:
        return routed_color(self.read().get("spec"), self.layout, self.api.namespace)
