"""A real Prometheus in the run's namespace, scraping the app's pods, for canary analysis on a
cluster; or a user's own Prometheus, checked before it is trusted.

``ClusterPrometheus.install(platform)`` creates, in ``platform.namespace`` only (the namespace's
deletion at teardown removes it all):

- a ServiceAccount of its own, without an API token: it never talks to the API server (below);
- a headless Service ``prometheus-targets`` selecting the app's pods of every colour
  (``platform.layout.app_labels``) on their container port (``layout.port``), publishing
  not-ready addresses too, so a starting pod is a (down) target at once and a terminating one
  is scraped until it is gone (its last requests counted);
- a ConfigMap with ``prometheus.yml``: a 1 s scrape interval (a canary stage of seconds needs
  samples; ``rate()`` needs two scrapes) and ``dns_sd_configs`` of that Service's A records
  (one per pod IP, refreshed every 2 s); ``honor_labels: true`` because the app's series
  already carry ``service``/``version``/``route``/``status`` and a target label of the same
  name must never replace them (``version`` is the colour the PromQL selects on);
- a Deployment of ``zerodrop/prometheus:dev`` (infra/cluster/build-prometheus-image.sh: Debian's
  package, no registry) with its TSDB on an emptyDir and a readiness probe on ``/-/ready``;
- a NodePort Service ``prometheus`` through the platform's NodePort allocator, so this machine
  asks it the way the load reaches the app (``url``);
- kube-state-metrics (``KUBE_STATE``: ``zerodrop/kube-state-metrics:<KUBE_STATE_VERSION>``,
  infra/cluster/build-kube-state-metrics.sh, built from the Go module proxy) limited to this
  namespace and to pods (``--namespaces=<ns> --resources=pods``), so that the dashboard's "Pod
  Status by Version" panel (``kube_pod_status_phase``) answers data: a ServiceAccount WITH a
  token (it lists and watches pods through the API server), a Role granting only list/watch on
  pods in this namespace and its RoleBinding (nothing cluster-wide: a run must not read other
  namespaces), a Deployment, and a ClusterIP Service ``kube-state-metrics`` that the ConfigMap
  names as a static target (``kube-state-metrics.<ns>.svc:8080``).

Prometheus' Deployment does not wait on kube-state-metrics: the canary's own queries are the
app's series, so an exporter that cannot start costs one dashboard panel, never the run.
``wait_kube_state`` is the separate wait for that panel's data.

Why DNS and not ``kubernetes_sd_configs``: Debian builds Prometheus without Kubernetes service
discovery (bookworm's 2.42: ``field kubernetes_sd_configs not found``; its discovery packages
are aws, azure, dns, file, http, ... and no kubernetes). The headless Service gives the same
set of pods from cluster DNS, with no Role or RoleBinding at all; what it cannot give are pod
meta labels (pod name, colour label), which the queries do not need: ``version`` is the app's.

``wait_ready``, ``wait_scraped`` and ``wait_kube_state`` wait on conditions with a deadline and
fail in one line with what they saw. A new pod reaches the scrapers after DNS (CoreDNS answers
with a 5 s TTL), discovery's refresh and its next 5 s hand-over tick, so a query before
``wait_scraped`` is ``no_data``, which is never a pass (``QueryResult``).

``ExternalPrometheus(url)`` is a Prometheus the user runs (the seed's ``http://prometheus:9090``):
``check()`` asks it ``up`` once, so an unreachable or broken one fails before the canary starts
instead of answering "no data" at every stage.

The query side (``query_prometheus``, ``QueryResult``) is the local platform's, reused: one
definition of data / no data / error for every Prometheus.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from typing import Any

import requests

from zerodrop.platforms.base import PlatformError
from zerodrop.platforms.kubernetes.diagnose import why_not_ready
from zerodrop.platforms.kubernetes.watch import pod_ready
from zerodrop.platforms.local.prometheus import ERROR, QueryResult, query_prometheus

__all__ = ["ClusterPrometheus", "ExternalPrometheus", "prometheus_config", "IMAGE", "NAME",
           "TARGETS", "KUBE_STATE", "KUBE_STATE_IMAGE", "KUBE_STATE_JOB", "KUBE_STATE_PORT",
           "KUBE_STATE_VERSION"]

IMAGE = "zerodrop/prometheus:dev"
NAME = "prometheus"          # its objects' name: ServiceAccount, ConfigMap, Deployment, Service
TARGETS = "prometheus-targets"   # the headless Service whose A records are the app's pods
PORT = 9090
JOB = "payment-service"
CONFIG_DIR = "/etc/prometheus"
DATA_DIR = "/prometheus"
# the image infra/cluster/build-kube-state-metrics.sh builds (kube-state-metrics-build/VERSION; a
# test keeps the two equal, as for gateway.py's Traefik: the module must not read the checkout,
# it may be installed elsewhere)
KUBE_STATE_VERSION = "v2.20.0"
KUBE_STATE_IMAGE = f"zerodrop/kube-state-metrics:{KUBE_STATE_VERSION}"
KUBE_STATE = "kube-state-metrics"  # its ServiceAccount, Role, RoleBinding, Deployment, Service
KUBE_STATE_PORT = 8080             # /metrics: the Kubernetes objects' series
KUBE_STATE_TELEMETRY = 8081        # its own metrics and /readyz
KUBE_STATE_JOB = "kube-state-metrics"


def prometheus_config(targets: str, port: int, scrape_interval: float = 1.0,
                      job: str = JOB, kube_state: str | None = None) -> dict:
    """``prometheus.yml`` (pure): every A record of the headless Service ``targets`` (one per
    app pod) on ``port``; with ``kube_state`` (``host:port``), that kube-state-metrics as a
    static target of a job of its own. JSON is YAML: no YAML writer needed."""
    interval = f"{max(1, round(scrape_interval * 1000))}ms"
    config = {
        "global": {"scrape_interval": interval, "scrape_timeout": interval,
                   "evaluation_interval": interval},
        "scrape_configs": [{
            "job_name": job,
            "metrics_path": "/metrics",
            "honor_labels": True,   # the app's own version/service/route/status win
            # the short name: the pod's resolv.conf searches its own namespace first
            "dns_sd_configs": [{"names": [targets], "type": "A", "port": port,
                                "refresh_interval": "2s"}],
        }],
    }
    if kube_state:
        config["scrape_configs"].append({
            "job_name": KUBE_STATE_JOB,
            "metrics_path": "/metrics",
            # its series' own namespace/pod labels name the pod described, never a target's
            "honor_labels": True,
            "static_configs": [{"targets": [kube_state]}],
        })
    return config


@dataclass
class ClusterPrometheus:
    """Prometheus in one platform's namespace. ``install`` creates it (and removes what it
    created if it fails part way); the namespace's deletion at teardown removes the rest."""

    image: str = IMAGE
    kube_state_image: str = KUBE_STATE_IMAGE
    scrape_interval: float = 1.0
    ready_timeout: float = 120.0
    platform: Any = field(init=False, default=None, repr=False)
    _created: list[tuple[str, Any, str]] = field(init=False, default_factory=list, repr=False)

    # ---- life cycle -------------------------------------------------------------------------
    def install(self, platform) -> None:
        """The ServiceAccount, the targets' headless Service, the ConfigMap, the Deployment,
        kube-state-metrics (ServiceAccount, Role, RoleBinding, Deployment, Service) and the
        NodePort Service in ``platform.namespace``; returns once created (``wait_ready`` waits
        for Prometheus to serve, ``wait_kube_state`` for the pods' phases). PlatformError in one
        line; on any failure what it created is deleted again."""
        if self.platform is not None:
            raise PlatformError("this ClusterPrometheus is already installed; make a new one")
        self.platform = platform
        api, ns, layout = platform.api, platform.namespace, platform.layout
        meta = {"name": NAME, "namespace": ns,
                "labels": {**platform.labels(), "app.kubernetes.io/name": NAME}}
        try:
            self._create("ServiceAccount", api.core.create_namespaced_service_account,
                         api.core.delete_namespaced_service_account,
                         {"metadata": meta, "automountServiceAccountToken": False})
            self._create("Service", api.core.create_namespaced_service,
                         api.core.delete_namespaced_service, {
                             "metadata": {**meta, "name": TARGETS},
                             "spec": {"clusterIP": "None", "publishNotReadyAddresses": True,
                                      "selector": dict(layout.app_labels),
                                      "ports": [{"name": "metrics", "port": layout.port,
                                                 "targetPort": layout.port}]}},
                         name=TARGETS)
            config = prometheus_config(TARGETS, layout.port, self.scrape_interval,
                                       kube_state=f"{KUBE_STATE}.{ns}.svc:{KUBE_STATE_PORT}")
            self._create("ConfigMap", api.core.create_namespaced_config_map,
                         api.core.delete_namespaced_config_map, {
                             "metadata": meta,
                             "data": {"prometheus.yml": json.dumps(config, indent=1)}})
            self._create("Deployment", api.apps.create_namespaced_deployment,
                         api.apps.delete_namespaced_deployment, self._deployment(meta))
            self._install_kube_state()
            platform.create_node_port_service(self._service(meta))
            self._created.append(("Service", api.core.delete_namespaced_service, NAME))
        except BaseException:
            self.remove()
            raise

    def _install_kube_state(self) -> None:
        """kube-state-metrics beside Prometheus, in the namespace only: its token reads pods
        here and nowhere else (a Role, not a ClusterRole), so a run never sees another's."""
        from kubernetes import client
        api, ns = self.platform.api, self.platform.namespace
        rbac = client.RbacAuthorizationV1Api(api.core.api_client)
        meta = {"name": KUBE_STATE, "namespace": ns,
                "labels": {**self.platform.labels(), "app.kubernetes.io/name": KUBE_STATE}}
        self._create("ServiceAccount", api.core.create_namespaced_service_account,
                     api.core.delete_namespaced_service_account,
                     {"metadata": meta, "automountServiceAccountToken": True}, name=KUBE_STATE)
        self._create("Role", rbac.create_namespaced_role, rbac.delete_namespaced_role, {
            "metadata": meta,
            "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "watch"]}]},
            name=KUBE_STATE)
        self._create("RoleBinding", rbac.create_namespaced_role_binding,
                     rbac.delete_namespaced_role_binding, {
                         "metadata": meta,
                         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                     "name": KUBE_STATE},
                         "subjects": [{"kind": "ServiceAccount", "name": KUBE_STATE,
                                       "namespace": ns}]},
                     name=KUBE_STATE)
        self._create("Deployment", api.apps.create_namespaced_deployment,
                     api.apps.delete_namespaced_deployment, self._kube_state_deployment(meta),
                     name=KUBE_STATE)
        self._create("Service", api.core.create_namespaced_service,
                     api.core.delete_namespaced_service, {
                         "metadata": meta,
                         "spec": {"selector": {"app.kubernetes.io/name": KUBE_STATE},
                                  "ports": [{"name": "http-metrics", "port": KUBE_STATE_PORT,
                                             "targetPort": "http-metrics"}]}},
                     name=KUBE_STATE)

    def _create(self, kind: str, create, delete, body: dict, name: str = NAME) -> None:
        self.platform.api.call(f"create {kind} {name}", create, self.platform.namespace, body)
        self._created.append((kind, delete, name))

    def remove(self) -> None:
        """Delete what ``install`` created, newest first (a failed install must not leave a
        half Prometheus, nor hold a shared NodePort). Never raises: it runs on failure paths."""
        created, self._created = self._created, []
        for kind, delete, name in reversed(created):
            try:
                self.platform.api.call(f"delete {kind} {name}", delete, name,
                                       self.platform.namespace)
            except PlatformError:
                pass  # gone already, or the namespace is going: nothing left to free
        if any(name == NAME and kind == "Service" for kind, _, name in created):
            # the platform's record of the port: service_url-style lookups must not find it
            self.platform._node_ports.pop(NAME, None)

    def _labels(self) -> dict[str, str]:
        return {"app.kubernetes.io/name": NAME, **self.platform.labels()}

    def _deployment(self, meta: dict) -> dict:
        pod_labels = self._labels()
        return {
            "metadata": meta,
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app.kubernetes.io/name": NAME}},
                "template": {"metadata": {"labels": pod_labels}, "spec": {
                    "serviceAccountName": NAME,
                    # SIGTERM flushes the head block; nothing here is kept, so do not wait
                    "terminationGracePeriodSeconds": 5,
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 65534,
                                        "runAsGroup": 65534, "fsGroup": 65534},
                    "containers": [{
                        "name": NAME,
                        "image": self.image,
                        "imagePullPolicy": "IfNotPresent",  # kind-loaded: there is no registry
                        "args": [f"--config.file={CONFIG_DIR}/prometheus.yml",
                                 f"--storage.tsdb.path={DATA_DIR}",
                                 "--storage.tsdb.retention.time=1d",
                                 f"--web.listen-address=:{PORT}"],
                        "ports": [{"name": "web", "containerPort": PORT}],
                        "readinessProbe": {"httpGet": {"path": "/-/ready", "port": "web"},
                                           "periodSeconds": 2, "failureThreshold": 2},
                        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"},
                                      "limits": {"memory": "512Mi"}},
                        "volumeMounts": [{"name": "config", "mountPath": CONFIG_DIR},
                                         {"name": "data", "mountPath": DATA_DIR}],
                    }],
                    "volumes": [{"name": "config", "configMap": {"name": NAME}},
                                {"name": "data", "emptyDir": {}}],
                }},
            },
        }

    def _kube_state_deployment(self, meta: dict) -> dict:
        ns = self.platform.namespace
        return {
            "metadata": meta,
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": {"app.kubernetes.io/name": KUBE_STATE}},
                "template": {"metadata": {"labels": dict(meta["labels"])}, "spec": {
                    "serviceAccountName": KUBE_STATE,
                    "automountServiceAccountToken": True,  # it lists and watches pods
                    "terminationGracePeriodSeconds": 5,    # it keeps nothing
                    "securityContext": {"runAsNonRoot": True, "runAsUser": 65534,
                                        "runAsGroup": 65534},
                    "containers": [{
                        "name": KUBE_STATE,
                        "image": self.kube_state_image,
                        "imagePullPolicy": "IfNotPresent",  # kind-loaded: there is no registry
                        # the namespace's pods only: the Role grants no more, and a default
                        # start (every resource, every namespace) would fail on 403s
                        "args": [f"--namespaces={ns}", "--resources=pods",
                                 f"--port={KUBE_STATE_PORT}",
                                 f"--telemetry-port={KUBE_STATE_TELEMETRY}"],
                        "ports": [{"name": "http-metrics", "containerPort": KUBE_STATE_PORT},
                                  {"name": "telemetry", "containerPort": KUBE_STATE_TELEMETRY}],
                        # /readyz: 200 once its registry has metrics (upstream's probe)
                        "readinessProbe": {"httpGet": {"path": "/readyz", "port": "telemetry"},
                                           "periodSeconds": 2, "failureThreshold": 2},
                        "securityContext": {"allowPrivilegeEscalation": False,
                                            "readOnlyRootFilesystem": True,
                                            "capabilities": {"drop": ["ALL"]}},
                        "resources": {"requests": {"cpu": "10m", "memory": "32Mi"},
                                      "limits": {"memory": "256Mi"}},
                    }],
                }},
            },
        }

    def _service(self, meta: dict) -> dict:
        return {"apiVersion": "v1", "kind": "Service", "metadata": dict(meta),
                "spec": {"type": "NodePort", "selector": {"app.kubernetes.io/name": NAME},
                         "ports": [{"name": "web", "port": PORT, "targetPort": "web"}]}}

    # ---- where it is, and what it says ------------------------------------------------------
    @property
    def url(self) -> str:
        """Its HTTP API from this machine (the NodePort)."""
        return self._installed()._url(NAME)

    def _installed(self):
        if self.platform is None:
            raise PlatformError("ClusterPrometheus is not installed; call install(platform)")
        return self.platform

    def query(self, promql: str, *, at: float | None = None, timeout: float = 10.0) -> QueryResult:
        return query_prometheus(self.url, promql, at=at, timeout=timeout)

    def wait_ready(self, timeout: float | None = None) -> None:
        """Until GET /-/ready through the NodePort answers 200 (its TSDB is open and it serves
        queries); on timeout one line with the last answer and why its pod is not ready."""
        platform = self._installed()
        timeout = self.ready_timeout if timeout is None else timeout
        deadline, last = time.monotonic() + timeout, "no answer"
        url = self.url
        while True:
            try:
                r = requests.get(f"{url}/-/ready", timeout=2, headers={"Connection": "close"})
                if r.status_code == 200:
                    return
                last = f"HTTP {r.status_code}"
            except requests.RequestException as exc:
                last = f"no answer ({type(exc).__name__})"
            if time.monotonic() >= deadline:
                why = why_not_ready(platform.api, {"app.kubernetes.io/name": NAME})
                raise PlatformError(f"Prometheus in {platform.namespace} not ready after "
                                    f"{timeout:g} s at {url}/-/ready (last: {last}): {why}")
            time.sleep(0.25)

    def active_targets(self) -> list[dict]:
        """``/api/v1/targets?state=active``'s targets; PlatformError in one line."""
        try:
            r = requests.get(f"{self.url}/api/v1/targets", params={"state": "active"}, timeout=5)
            body = r.json()
        except (requests.RequestException, ValueError) as exc:
            raise PlatformError(f"GET /api/v1/targets on {self.url} failed: "
                                f"{type(exc).__name__}") from None
        if body.get("status") != "success":
            raise PlatformError(f"GET /api/v1/targets on {self.url}: {body.get('error')}")
        return body["data"]["activeTargets"]

    def app_pod_addresses(self) -> set[str]:
        """``ip:port`` of every ready app pod (any colour) that is not terminating."""
        platform = self._installed()
        pods = platform.api.call("list the app's pods", platform.core.list_namespaced_pod,
                                 platform.namespace,
                                 label_selector=platform.layout.label_selector()).items
        return {f"{p.status.pod_ip}:{platform.layout.port}" for p in pods
                if pod_ready(p) and not p.metadata.deletion_timestamp and p.status.pod_ip}

    def wait_scraped(self, timeout: float = 60.0) -> None:
        """Until Prometheus is ready and every ready app pod is an active target scraped with
        health "up" (at least one pod: an empty set would pass vacuously); on timeout one line
        with the pods wanted and the targets seen."""
        platform = self._installed()
        deadline = time.monotonic() + timeout
        self.wait_ready(timeout)
        want: set[str] = set()
        seen = "no target"
        while True:
            want = self.app_pod_addresses()
            try:
                targets = self.active_targets()
                up = {t["labels"].get("instance") for t in targets if t.get("health") == "up"}
                seen = ", ".join(sorted(f"{t['labels'].get('instance')} {t.get('health')}"
                                        + (f" ({t['lastError']})" if t.get("lastError") else "")
                                        for t in targets)) or "no target"
            except PlatformError as exc:
                up, seen = set(), str(exc)
            if want and want <= up:
                return
            if time.monotonic() >= deadline:
                raise PlatformError(f"Prometheus in {platform.namespace} has not scraped every "
                                    f"ready app pod after {timeout:g} s: want "
                                    f"{sorted(want) or 'a ready app pod (none is)'}, "
                                    f"targets: {seen}")
            time.sleep(0.5)

    def kube_state_pods(self) -> dict[str, str]:
        """Pod name -> phase, as kube-state-metrics says through this Prometheus: the pods of
        the namespace whose ``kube_pod_status_phase`` is 1 (each pod has one series per phase,
        the current one 1). Empty when it has not been scraped yet."""
        platform = self._installed()
        ns = platform.namespace
        result = self.query(f'kube_pod_status_phase{{namespace="{ns}"}} == 1')
        if result.outcome == ERROR:
            raise PlatformError(f"kube_pod_status_phase in {ns}: {result.describe()}")
        return {s.labels["pod"]: s.labels.get("phase", "?") for s in result.samples
                if "pod" in s.labels}

    def wait_kube_state(self, timeout: float = 60.0) -> None:
        """Until Prometheus is ready and kube-state-metrics' ``kube_pod_status_phase`` has a
        current phase for every blue and green pod the API lists (at least one: an empty set
        would pass vacuously), so the dashboard's pod status panel has data; on timeout one line
        with the pods wanted, those seen and why kube-state-metrics is not serving."""
        platform = self._installed()
        deadline = time.monotonic() + timeout
        self.wait_ready(timeout)
        while True:
            pods = platform.api.call("list the app's pods", platform.core.list_namespaced_pod,
                                     platform.namespace,
                                     label_selector=platform.layout.label_selector()).items
            # blue's and green's pods (the panel's): the app selector also picks the
            # migration Job's
            want = {p.metadata.name for p in pods if not p.metadata.deletion_timestamp
                    and platform.layout.color_of(p.metadata.labels)}
            try:
                seen, last = self.kube_state_pods(), None
            except PlatformError as exc:
                seen, last = {}, str(exc)
            if want and want <= set(seen):
                return
            if time.monotonic() >= deadline:
                why = why_not_ready(platform.api, {"app.kubernetes.io/name": KUBE_STATE})
                raise PlatformError(
                    f"kube-state-metrics in {platform.namespace} has no kube_pod_status_phase "
                    f"for every app pod after {timeout:g} s: want "
                    f"{sorted(want) or 'a blue or green pod (none exists)'}, seen "
                    f"{sorted(seen) or 'none'}{f' ({last})' if last else ''}; "
                    f"kube-state-metrics: {why}")
            time.sleep(0.5)


@dataclass(frozen=True)
class ExternalPrometheus:
    """A Prometheus the user runs and names by URL; zerodrop only asks it."""

    url: str
    timeout: float = 5.0

    def check(self) -> None:
        """One query of ``up``: PlatformError in one line when it cannot be reached or answers
        an error (a broken Prometheus would otherwise read as "no data" at every stage)."""
        result = query_prometheus(self.url, "up", timeout=self.timeout)
        if result.outcome == ERROR:
            raise PlatformError(f"Prometheus at {self.url} cannot be used: {result.describe()}; "
                                f"check the URL and that it serves /api/v1/query")

    def query(self, promql: str, *, at: float | None = None, timeout: float = 10.0) -> QueryResult:
        return query_prometheus(self.url, promql, at=at, timeout=timeout)
