"""A weighted router: a Gateway API HTTPRoute served by a Traefik of the run's own.

The selector router can only move all new connections at once; a canary stage needs a split by
percent and a header that pins testers to the canary. Here the run's namespace gets its own
Traefik (``zerodrop/traefik:<TRAEFIK_VERSION>``, built offline by
infra/cluster/build-traefik.sh), watching only that namespace, a GatewayClass whose controller
is Traefik, a Gateway, and an HTTPRoute whose backendRefs are the two preview Services with
weights. Clients come in through ``<service>-gateway``, a NodePort Service in front of
Traefik's entry point, so the switch is measured where clients see it.

Traefik resolves each backend Service to its ready EndpointSlice addresses and balances over
them itself (kube-proxy is not on the path), with a deterministic weighted round robin: a
50/50 split alternates exactly.

The objects are built by pure functions (``route_rules``, ``traefik_objects``,
``colors_of_rules``...), so their shape is tested without a cluster; ``GatewayRouter`` only
creates, patches, reads and deletes them. What is outside the namespace (the ClusterRole, its
binding and the GatewayClass) is named after the namespace, so ``remove()`` finds it even when
``install()`` stopped half way.
"""
from __future__ import annotations

import re
import time
from typing import Any

import requests

from zerodrop.platforms.base import COLORS, PlatformError
from zerodrop.platforms.kubernetes.api import api_reason
from zerodrop.platforms.kubernetes.layout import Layout
from zerodrop.platforms.kubernetes.routing import Router
from zerodrop.records.events import EventLog, EventName, Source

GROUP = "gateway.networking.k8s.io"
GATEWAY_VERSION = "v1"
# what the router creates and reads; a test appends a CRD that does not exist to see preflight
# refuse in one line before anything is created
REQUIRED_CRDS = [f"gatewayclasses.{GROUP}", f"gateways.{GROUP}", f"httproutes.{GROUP}"]
CRD_FIX = "infra/cluster/build-traefik.sh crds <kind cluster> (or the Gateway API standard install)"

# the image infra/cluster/build-traefik.sh builds (traefik-build/VERSION; a unit test keeps the
# two equal: the module must not read the checkout, it may be installed elsewhere)
TRAEFIK_VERSION = "v3.7.10"
TRAEFIK_IMAGE = f"zerodrop/traefik:{TRAEFIK_VERSION}"
CONTROLLER = "traefik.io/gateway-controller"
ENTRY_PORT = 8000      # the Gateway's listener port must be Traefik's entry point's port
PING_PORT = 8080       # Traefik's own entry point: /ping for the readiness probe
TRAEFIK = "zerodrop-gateway"   # the ServiceAccount and Deployment in the namespace
ROLE = {"zerodrop.io/role": "gateway"}  # Traefik's pod label: never the app's selector
CANARY_HEADER = ("canary", "true")      # the seed's VirtualService match


# ---- the objects (pure) -------------------------------------------------------------------------
def cluster_name(namespace: str) -> str:
    """The name of the cluster-scoped objects of one namespace's gateway (unique per run)."""
    return f"{namespace}-gateway"


def entry_name(service: str) -> str:
    return f"{service}-gateway"[:63]


def route_rules(weights: dict[str, int], backends: dict[str, tuple[str, int]],
                canary: str | None = None) -> list[dict[str, Any]]:
    """The HTTPRoute's rules: with ``canary``, first a rule that sends requests carrying
    ``canary: true`` (exact) to that colour's preview only; then the weighted rule over both
    previews (a colour absent from ``weights`` gets 0, so a read-back always sees both).
    ``backends``: colour -> (preview Service, its port). The weights are check_weights'."""
    def ref(color: str, weight: int) -> dict[str, Any]:
        name, port = backends[color]
        return {"name": name, "port": port, "weight": weight}

    rules = []
    if canary is not None:
        header, value = CANARY_HEADER
        rules.append({"matches": [{"headers": [{"type": "Exact", "name": header,
                                                "value": value}]}],
                      "backendRefs": [ref(canary, 1)]})
    rules.append({"backendRefs": [ref(c, int(weights.get(c, 0))) for c in COLORS]})
    return rules


def _has_header_match(rule: dict[str, Any]) -> bool:
    return any(m.get("headers") for m in rule.get("matches") or [])


def colors_of_rules(rules: list[dict[str, Any]], previews: dict[str, str],
                    with_header: bool = True) -> set[str] | None:
    """The colours that get any request under ``rules`` (weight > 0; an absent weight is the
    API's default 1); None when a backend is not one of the previews (someone else's route).
    ``with_header`` False: only the rules a request without headers meets."""
    by_name = {name: color for color, name in previews.items()}
    colors: set[str] = set()
    for rule in rules:
        if not with_header and _has_header_match(rule):
            continue
        for ref in rule.get("backendRefs") or []:
            color = by_name.get(ref.get("name"))
            if color is None or ref.get("kind", "Service") != "Service":
                return None
            if int(ref.get("weight", 1)) > 0:
                colors.add(color)
    return colors


def active_of_rules(rules: list[dict[str, Any]], previews: dict[str, str]) -> str | None:
    """The one colour every request goes to (header or not), or None (a split, a canary
    header to the other colour, nothing, or a backend that is not a preview)."""
    colors = colors_of_rules(rules, previews)
    return next(iter(colors)) if colors and len(colors) == 1 else None


def weights_of_rules(rules: list[dict[str, Any]], previews: dict[str, str]) -> dict[str, int]:
    """The weighted (header-free) rule's weight per colour, as read back."""
    by_name = {name: color for color, name in previews.items()}
    for rule in rules:
        if not _has_header_match(rule):
            return {by_name.get(r.get("name"), str(r.get("name"))): int(r.get("weight", 1))
                    for r in rule.get("backendRefs") or []}
    return {}


def missing_crds(present: set[str], required: list[str]) -> str | None:
    """The one-line refusal when CRDs are missing, or None."""
    missing = [c for c in required if c not in present]
    if not missing:
        return None
    return (f"the gateway router needs the Gateway API CRDs {', '.join(required)}; missing on "
            f"this cluster: {', '.join(missing)}; install them with {CRD_FIX}")


def traefik_objects(namespace: str, service: str, previews: dict[str, tuple[str, int]],
                    active: str, labels: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Everything ``install`` creates, by role: sa, role, binding, deployment, gatewayclass,
    gateway, route, entry (the NodePort Service; its nodePort is the platform's to pick)."""
    cname, meta = cluster_name(namespace), {"labels": dict(labels)}
    pod_labels = {**labels, **ROLE}
    return {
        "sa": {"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {**meta, "name": TRAEFIK, "namespace": namespace}},
        "role": {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                 "metadata": {**meta, "name": cname}, "rules": _RBAC_RULES},
        "binding": {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                    "metadata": {**meta, "name": cname},
                    "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                "name": cname},
                    "subjects": [{"kind": "ServiceAccount", "name": TRAEFIK,
                                  "namespace": namespace}]},
        "deployment": {
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {**meta, "name": TRAEFIK, "namespace": namespace},
            "spec": {"replicas": 1, "selector": {"matchLabels": dict(ROLE)},
                     "template": {"metadata": {"labels": pod_labels}, "spec": {
                         "serviceAccountName": TRAEFIK,
                         "terminationGracePeriodSeconds": 5,
                         "containers": [{
                             "name": "traefik", "image": TRAEFIK_IMAGE,
                             "imagePullPolicy": "IfNotPresent",
                             "args": [f"--entrypoints.web.address=:{ENTRY_PORT}",
                                      f"--entrypoints.traefik.address=:{PING_PORT}",
                                      "--ping=true",
                                      # the applied configuration, on the internal port only
                                      # (wait_entry reads it through the API server's proxy)
                                      "--api=true", "--api.insecure=true",
                                      "--providers.kubernetesgateway=true",
                                      f"--providers.kubernetesgateway.namespaces={namespace}",
                                      "--log.level=INFO", "--log.nocolor=true",
                                      # offline cluster: no calls home
                                      "--global.checknewversion=false",
                                      "--global.sendanonymoususage=false"],
                             "ports": [{"name": "web", "containerPort": ENTRY_PORT},
                                       {"name": "traefik", "containerPort": PING_PORT}],
                             "readinessProbe": {"httpGet": {"path": "/ping", "port": "traefik"},
                                                "periodSeconds": 2},
                             "resources": {"requests": {"cpu": "50m", "memory": "64Mi"},
                                           "limits": {"memory": "256Mi"}}}]}}}},
        "gatewayclass": {"apiVersion": f"{GROUP}/{GATEWAY_VERSION}", "kind": "GatewayClass",
                         "metadata": {**meta, "name": cname},
                         "spec": {"controllerName": CONTROLLER}},
        "gateway": {"apiVersion": f"{GROUP}/{GATEWAY_VERSION}", "kind": "Gateway",
                    "metadata": {**meta, "name": entry_name(service), "namespace": namespace},
                    "spec": {"gatewayClassName": cname,
                             "listeners": [{"name": "web", "port": ENTRY_PORT,
                                            "protocol": "HTTP",
                                            "allowedRoutes": {"namespaces": {"from": "Same"}}}]}},
        "route": {"apiVersion": f"{GROUP}/{GATEWAY_VERSION}", "kind": "HTTPRoute",
                  "metadata": {**meta, "name": service, "namespace": namespace},
                  "spec": {"parentRefs": [{"name": entry_name(service)}],
                           "rules": route_rules({active: 100}, previews)}},
        "entry": {"apiVersion": "v1", "kind": "Service",
                  "metadata": {**meta, "name": entry_name(service), "namespace": namespace},
                  "spec": {"type": "NodePort", "selector": dict(ROLE),
                           "ports": [{"name": "web", "port": ENTRY_PORT,
                                      "targetPort": "web"}]}},
    }


# the rules of Traefik's docs/content/reference/dynamic-configuration/kubernetes-gateway-rbac.yml
# (as in infra/cluster/traefik-smoke.yaml)
_RBAC_RULES = [
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
    {"apiGroups": [""], "resources": ["services", "secrets", "configmaps"],
     "verbs": ["get", "list", "watch"]},
    {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
     "verbs": ["list", "watch"]},
    {"apiGroups": [GROUP], "resources": ["gatewayclasses", "gateways", "httproutes", "grpcroutes",
                                         "tcproutes", "tlsroutes", "referencegrants",
                                         "backendtlspolicies"],
     "verbs": ["get", "list", "watch"]},
    {"apiGroups": [GROUP], "resources": ["gatewayclasses/status", "gateways/status",
                                         "httproutes/status", "grpcroutes/status",
                                         "tcproutes/status", "tlsroutes/status",
                                         "referencegrants/status", "backendtlspolicies/status"],
     "verbs": ["update"]},
]


def expected_services(rules: list[dict[str, Any]]) -> set[tuple]:
    """What Traefik's applied configuration holds once it took ``rules``: per rule, one
    weighted service over the rule's backend Services with its weights; each as the sorted
    (Service, weight) pairs."""
    return {tuple(sorted((str(r["name"]), int(r.get("weight", 1)))
                         for r in rule.get("backendRefs") or []))
            for rule in rules}


def applied_services(services: list[dict[str, Any]], namespace: str) -> set[tuple]:
    """The weighted services in Traefik's ``/api/http/services`` answer that its Gateway
    provider made, in ``expected_services``' shape. Traefik v3.7 names a child
    ``httproute-…-svc-<namespace>-<Service>-<index>``; a name not in that form stays whole
    (and then matches nothing, so a wait on it says what it saw)."""
    child = re.compile(rf"-svc-{re.escape(namespace)}-(.+)-\d+$")
    out = set()
    for svc in services:
        if svc.get("provider") != "kubernetesgateway" or not svc.get("weighted"):
            continue
        pairs = []
        for c in svc["weighted"].get("services") or []:
            name = str(c.get("name", "")).split("@")[0]
            m = child.search(name)
            pairs.append((m.group(1) if m else name, int(c.get("weight", 1))))
        out.add(tuple(sorted(pairs)))
    return out


def describe_services(services: set[tuple] | str) -> str:
    """``applied_services``' shape for a person: ``a 100 + b 0 | c 1``, or the reason."""
    if isinstance(services, str):
        return services
    return " | ".join(" + ".join(f"{name} {weight}" for name, weight in svc)
                      for svc in sorted(services)) or "nothing"


def route_conditions(route: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The HTTPRoute's conditions from its controller (Traefik), by type."""
    out: dict[str, dict[str, Any]] = {}
    for parent in (route.get("status") or {}).get("parents") or []:
        if parent.get("controllerName") == CONTROLLER:
            for c in parent.get("conditions") or []:
                out[c.get("type", "?")] = c
    return out


def route_settled(route: dict[str, Any]) -> bool:
    """Traefik has seen the route's current spec and taken it: Accepted and ResolvedRefs True,
    both observed at the current generation."""
    conds, gen = route_conditions(route), (route.get("metadata") or {}).get("generation", 0)
    return all(conds.get(t, {}).get("status") == "True"
               and conds[t].get("observedGeneration", 0) >= gen
               for t in ("Accepted", "ResolvedRefs"))


def describe_conditions(route: dict[str, Any]) -> str:
    conds = route_conditions(route)
    return "; ".join(f"{t}={c.get('status')} ({c.get('reason')}: {c.get('message', '')[:120]})"
                     for t, c in sorted(conds.items())) or "no status from Traefik yet"


# ---- the router ---------------------------------------------------------------------------------
class GatewayRouter(Router):
    """Weights and a canary header through an HTTPRoute that the run's own Traefik serves."""

    def __init__(self, api, layout: Layout, events: EventLog | None = None) -> None:
        self.api, self.layout, self.events = api, layout, events
        self.route = layout.service
        self._installed = False
        self._cluster_objects = False  # install got as far as creating cluster-scoped objects
        self._ports: dict[str, int] = {}   # colour -> its preview Service's port

    # clients built on the platform's ApiClient, on first use (no I/O at construction)
    def _custom(self):
        from kubernetes import client
        return client.CustomObjectsApi(self.api.core.api_client)

    def _rbac(self):
        from kubernetes import client
        return client.RbacAuthorizationV1Api(self.api.core.api_client)

    @property
    def previews(self) -> dict[str, str]:
        return {c: self.layout.preview(c) for c in COLORS}

    def _backends(self) -> dict[str, tuple[str, int]]:
        return {c: (self.layout.preview(c), self._ports[c]) for c in COLORS}

    # ---- life cycle ---------------------------------------------------------------------------
    def preflight(self) -> None:
        """Each of REQUIRED_CRDS is read by name (no list of every CRD on the cluster): a 404
        is "missing"; any other failure (403, no answer) is said as it is, not guessed."""
        from kubernetes import client
        from kubernetes.client.rest import ApiException
        from urllib3.exceptions import HTTPError
        ext = client.ApiextensionsV1Api(self.api.core.api_client)
        present = set()
        for name in REQUIRED_CRDS:
            try:
                ext.read_custom_resource_definition(name, _request_timeout=30)
                present.add(name)
            except ApiException as exc:
                if exc.status != 404:
                    raise PlatformError(f"read CRD {name}: {api_reason(exc)}") from None
            except (HTTPError, OSError) as exc:
                raise PlatformError(f"read CRD {name}: the API server did not answer "
                                    f"({type(exc).__name__})") from None
        refusal = missing_crds(present, list(REQUIRED_CRDS))
        if refusal:
            raise PlatformError(refusal)

    def install(self, platform) -> None:
        ns = self.api.namespace
        svc = self.api.call(f"read Service {self.layout.service}",
                            self.api.core.read_namespaced_service, self.layout.service, ns)
        active = (svc.spec.selector or {}).get(self.layout.label)
        if active not in COLORS:
            raise PlatformError(f"Service {self.layout.service} selects no colour "
                                f"({svc.spec.selector}); the gateway cannot start routed")
        for c in COLORS:
            preview = self.api.call(f"read Service {self.layout.preview(c)}",
                                    self.api.core.read_namespaced_service,
                                    self.layout.preview(c), ns)
            self._ports[c] = int(preview.spec.ports[0].port)
        objs = traefik_objects(ns, self.layout.service, self._backends(), active,
                               platform.labels())
        custom, rbac = self._custom(), self._rbac()
        self.api.call("create the gateway's ServiceAccount",
                      self.api.core.create_namespaced_service_account, ns, objs["sa"])
        self._cluster_objects = True  # from here on remove() has something to delete
        self.api.call("create the gateway's ClusterRole", rbac.create_cluster_role, objs["role"])
        self.api.call("create the gateway's ClusterRoleBinding",
                      rbac.create_cluster_role_binding, objs["binding"])
        self.api.call("create the GatewayClass", custom.create_cluster_custom_object, GROUP,
                      GATEWAY_VERSION, "gatewayclasses", objs["gatewayclass"])
        self.api.call("create the Traefik Deployment", self.api.apps.create_namespaced_deployment,
                      ns, objs["deployment"])
        self.api.call("create the Gateway", custom.create_namespaced_custom_object, GROUP,
                      GATEWAY_VERSION, ns, "gateways", objs["gateway"])
        self.api.call("create the HTTPRoute", custom.create_namespaced_custom_object, GROUP,
                      GATEWAY_VERSION, ns, "httproutes", objs["route"])
        platform.create_node_port_service(objs["entry"])
        self._installed = True
        timeout = platform.config.ready_timeout
        platform._wait_deployment(TRAEFIK, timeout)
        self._wait_route(time.monotonic() + timeout, timeout)

    def remove(self) -> None:
        if not self._cluster_objects:
            return
        from kubernetes import client
        name = cluster_name(self.api.namespace)
        try:
            rbac, custom = self._rbac(), self._custom()
            deletes = [(rbac.delete_cluster_role_binding, (name,)),
                       (rbac.delete_cluster_role, (name,)),
                       (custom.delete_cluster_custom_object,
                        (GROUP, GATEWAY_VERSION, "gatewayclasses", name))]
        except Exception:
            return
        for fn, args in deletes:
            try:  # each on its own: one failure must not keep the others
                fn(*args, _request_timeout=30, body=client.V1DeleteOptions())
            except Exception:
                pass  # gone already, or the cluster is
        self._cluster_objects = False

    def entry_service(self) -> str | None:
        return entry_name(self.layout.service) if self._installed else None

    # ---- routing ------------------------------------------------------------------------------
    def _read_route(self) -> dict[str, Any]:
        return self.api.call(f"read HTTPRoute {self.route}",
                             self._custom().get_namespaced_custom_object, GROUP, GATEWAY_VERSION,
                             self.api.namespace, "httproutes", self.route)

    def set_weights(self, weights: dict[str, int], canary: str | None = None) -> None:
        self._patch(weights, canary)

    def route_to(self, color: str) -> None:
        self._patch({color: 100}, None)

    def _patch(self, weights: dict[str, int], canary: str | None) -> None:
        if not self._installed:
            raise PlatformError("the gateway router is not installed: nothing to route yet")
        rules = route_rules(weights, self._backends(), canary)
        patch = [{"op": "replace", "path": "/spec/rules", "value": rules}]  # never a merge
        route = self.api.call(f"patch the rules of HTTPRoute {self.route}",
                              self._custom().patch_namespaced_custom_object, GROUP,
                              GATEWAY_VERSION, self.api.namespace, "httproutes", self.route,
                              patch, _content_type="application/json-patch+json")
        if self.events is not None:
            full = {c: int(weights.get(c, 0)) for c in COLORS}
            self.events.emit(Source.PLATFORM, EventName.SELECTOR_PATCHED,
                             selector=" ".join(f"{c} {w}" for c, w in full.items())
                             + (f", canary header to {canary}" if canary else ""),
                             route=self.route, weights=full, canary=canary,
                             resource_version=route["metadata"]["resourceVersion"])

    def active_color(self) -> str | None:
        return active_of_rules(self._read_route()["spec"].get("rules") or [], self.previews)

    # ---- waiting ------------------------------------------------------------------------------
    def _wait_route(self, deadline: float, timeout: float) -> dict[str, Any]:
        """Until Traefik has taken the HTTPRoute's current spec; the route."""
        while True:
            route = self._read_route()
            if route_settled(route):
                return route
            if time.monotonic() > deadline:
                raise PlatformError(f"HTTPRoute {self.route} in {self.api.namespace} not taken "
                                    f"by Traefik after {timeout:g} s: "
                                    f"{describe_conditions(route)}")
            time.sleep(0.25)

    def _applied(self) -> set[tuple] | str:
        """Traefik's applied weighted services (``applied_services``), read from its API
        through the API server's pod proxy (the API is on its internal port only); a
        string saying why not."""
        import json
        pods = self.api.call("list the Traefik pods", self.api.core.list_namespaced_pod,
                             self.api.namespace,
                             label_selector=",".join(f"{k}={v}" for k, v in ROLE.items())).items
        ready = [p for p in pods if not p.metadata.deletion_timestamp and p.status.pod_ip]
        if not ready:
            return "no running Traefik pod"
        try:
            resp = self.api.core.connect_get_namespaced_pod_proxy_with_path(
                f"{ready[0].metadata.name}:{PING_PORT}", self.api.namespace, "api/http/services",
                _request_timeout=10, _preload_content=False)  # else a repr of the JSON
            return applied_services(json.loads(resp.data), self.api.namespace)
        except Exception as exc:  # not up yet: the caller retries until its deadline
            return f"Traefik's API did not answer ({type(exc).__name__})"

    def wait_entry(self, platform, timeout: float) -> None:
        """Until Traefik took the route's current spec (its status) and applied it (its own
        API's weighted services equal the route's rules), and requests without a canary
        header, each on a new connection, answer ``route_answers`` times in a row from the
        ready pods of the colours the weights point to (the replica header names the pod;
        without one the colour header, without that any good answer)."""
        deadline = time.monotonic() + timeout
        route = self._wait_route(deadline, timeout)
        colors = colors_of_rules(route["spec"].get("rules") or [], self.previews,
                                 with_header=False) or set()
        if not colors:
            weights = weights_of_rules(route["spec"]["rules"], self.previews)
            raise PlatformError(f"HTTPRoute {self.route} sends requests to no colour "
                                f"(weights {weights})")
        # Traefik writes the route's status before it applies the configuration (and at most
        # every providersThrottleDuration): a split whose colours both served before would
        # pass the answers below on the old weights; its own API says what it applies
        want_services = expected_services(route["spec"]["rules"])
        while (applied := self._applied()) != want_services:
            if time.monotonic() > deadline:
                raise PlatformError(f"Traefik has not applied HTTPRoute {self.route} after "
                                    f"{timeout:g} s: it serves {describe_services(applied)}, "
                                    f"not {describe_services(want_services)}")
            time.sleep(0.2)
        url = platform._url(entry_name(self.layout.service)) + platform.profile.liveness
        replica, color_header = platform.profile.replica_header, platform.profile.color_header
        want = self._ready_pods(colors) if replica else set(colors)
        in_a_row, seen = 0, "nothing"
        while in_a_row < platform.config.route_answers:
            if time.monotonic() > deadline:
                raise PlatformError(f"the gateway {entry_name(self.layout.service)} answers from "
                                    f"{seen}, not only from {sorted(want) or 'no ready pod'} "
                                    f"({' and '.join(sorted(colors))}), after {timeout:g} s")
            try:
                resp = requests.get(url, timeout=2, headers={"Connection": "close"})
                if replica:
                    seen = resp.headers.get(replica, f"HTTP {resp.status_code} without {replica}")
                elif color_header:
                    seen = resp.headers.get(color_header,
                                            f"HTTP {resp.status_code} without {color_header}")
                else:
                    seen = "a good answer" if resp.ok else f"HTTP {resp.status_code}"
            except requests.RequestException as exc:
                seen = f"no answer ({type(exc).__name__})"
            good = seen in want or (not replica and not color_header and seen == "a good answer")
            in_a_row = in_a_row + 1 if good else 0
            if not good:
                time.sleep(0.1)
                if replica:  # a pod may have become ready (or gone) meanwhile
                    want = self._ready_pods(colors)

    def _ready_pods(self, colors: set[str]) -> set[str]:
        from zerodrop.platforms.kubernetes.watch import pod_ready
        names = set()
        for c in colors:
            pods = self.api.call("list pods", self.api.core.list_namespaced_pod,
                                 self.api.namespace,
                                 label_selector=self.layout.label_selector(c)).items
            names |= {p.metadata.name for p in pods
                      if pod_ready(p) and not p.metadata.deletion_timestamp}
        return names
