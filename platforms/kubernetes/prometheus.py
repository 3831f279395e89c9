"""A real Prometheus in the run's namespace, scraping the app's pods, for canary analysis on a
cluster; or a user's own Prometheus, checked before it is trusted.

``ClusterPrometheus.install(platform)`` creates, in ``platform.namespace`` only (a run must not
read or grant anything outside its namespace, and the namespace's deletion removes it all):

- a ServiceAccount with a namespaced Role + RoleBinding: get/list/watch pods, endpoints and
  services in this namespace (Kubernetes service discovery needs no more, and a ClusterRole
  would outlive the run);
- a ConfigMap with ``prometheus.yml``: a 1 s scrape interval (a canary stage of seconds needs
  samples; ``rate()`` needs two scrapes), ``kubernetes_sd_configs`` of role ``pod`` limited to
  the namespace, keeping only the app's pods (``platform.layout.app_labels``), only Running
  ones, and only their container port (``layout.port``); ``honor_labels: true`` because the
  app's series already carry ``service``/``version``/``route``/``status`` and a target label of
  the same name must never replace them (``version`` is the colour the PromQL selects on). The
  targets add ``pod`` and ``color`` (the pod's colour label) for people reading the targets;
- a Deployment of ``zerodrop/prometheus:dev`` (infra/cluster/build-prometheus-image.sh: Debian's
  package, no registry) with its TSDB on an emptyDir and a readiness probe on ``/-/ready``;
- a NodePort Service ``prometheus`` through the platform's NodePort allocator, so this machine
  asks it the way the load reaches the app (``url``).

``wait_ready`` and ``wait_scraped`` wait on conditions with a deadline and fail in one line with
what they saw. A new pod reaches the scrapers only on discovery's next tick (~5 s), so a query
before ``wait_scraped`` is ``no_data``, which is never a pass (``QueryResult``).

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

__all__ = ["ClusterPrometheus", "ExternalPrometheus", "prometheus_config", "IMAGE", "NAME"]

IMAGE = "zerodrop/prometheus:dev"
NAME = "prometheus"          # every object's name: the ServiceAccount, Role, Service, ...
PORT = 9090
JOB = "payment-service"
CONFIG_DIR = "/etc/prometheus"
DATA_DIR = "/prometheus"


def _meta_label(label: str) -> str:
    """The discovery meta label of a pod label: Prometheus turns every character that is not
    a letter, a digit or ``_`` into ``_`` (``app.kubernetes.io/name`` ->
    ``__meta_kubernetes_pod_label_app_kubernetes_io_name``)."""
    return "__meta_kubernetes_pod_label_" + "".join(
        c if c.isascii() and (c.isalnum() or c == "_") else "_" for c in label)


def _escape_regex(value: str) -> str:
    """A literal for a relabel ``regex`` (RE2, anchored by Prometheus)."""
    return "".join("\\" + c if c in r".^$*+?()[]{}|\/" else c for c in value)


def prometheus_config(namespace: str, app_labels: dict[str, str], port: int,
                      color_label: str, scrape_interval: float = 1.0, job: str = JOB) -> dict:
    """``prometheus.yml`` (pure): the app's Running pods in ``namespace``, their container
    ``port`` only. JSON is YAML: no YAML writer needed."""
    interval = f"{max(1, round(scrape_interval * 1000))}ms"
    keep = [{"action": "keep", "source_labels": [_meta_label(k)], "regex": _escape_regex(v)}
            for k, v in sorted(app_labels.items())]
    keep += [
        {"action": "keep", "source_labels": ["__meta_kubernetes_pod_phase"], "regex": "Running"},
        {"action": "keep", "source_labels": ["__meta_kubernetes_pod_container_port_number"],
         "regex": str(port)},
        {"action": "replace", "source_labels": ["__meta_kubernetes_pod_name"],
         "target_label": "pod"},
        {"action": "replace", "source_labels": [_meta_label(color_label)],
         "target_label": "color"},
    ]
    return {
        "global": {"scrape_interval": interval, "scrape_timeout": interval,
                   "evaluation_interval": interval},
        "scrape_configs": [{
            "job_name": job,
            "metrics_path": "/metrics",
            "honor_labels": True,   # the app's own version/service/route/status win
            "kubernetes_sd_configs": [{"role": "pod", "namespaces": {"names": [namespace]}}],
            "relabel_configs": keep,
        }],
    }


@dataclass
class ClusterPrometheus:
    """Prometheus in one platform's namespace. ``install`` creates it (and removes what it
    created if it fails part way); the namespace's deletion at teardown removes the rest."""

    image: str = IMAGE
    scrape_interval: float = 1.0
    ready_timeout: float = 120.0
    platform: Any = field(init=False, default=None, repr=False)
    _created: list[tuple[str, Any, str]] = field(init=False, default_factory=list, repr=False)

    # ---- life cycle -------------------------------------------------------------------------
    def install(self, platform) -> None:
        """The ServiceAccount, Role, RoleBinding, ConfigMap, Deployment and NodePort Service in
        ``platform.namespace``; returns once created (``wait_ready`` waits for it to serve).
        PlatformError in one line; on any failure what it created is deleted again."""
        from kubernetes import client
        if self.platform is not None:
            raise PlatformError("this ClusterPrometheus is already installed; make a new one")
        self.platform = platform
        api, ns, layout = platform.api, platform.namespace, platform.layout
        rbac = client.RbacAuthorizationV1Api(api.client)
        meta = {"name": NAME, "namespace": ns,
                "labels": {**platform.labels(), "app.kubernetes.io/name": NAME}}
        try:
            self._create("ServiceAccount", api.core.create_namespaced_service_account,
                         api.core.delete_namespaced_service_account,
                         {"metadata": meta, "automountServiceAccountToken": True})
            self._create("Role", rbac.create_namespaced_role, rbac.delete_namespaced_role, {
                "metadata": meta,
                "rules": [{"apiGroups": [""], "resources": ["pods", "endpoints", "services"],
                           "verbs": ["get", "list", "watch"]}]})
            self._create("RoleBinding", rbac.create_namespaced_role_binding,
                         rbac.delete_namespaced_role_binding, {
                             "metadata": meta,
                             "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                         "name": NAME},
                             "subjects": [{"kind": "ServiceAccount", "name": NAME,
                                           "namespace": ns}]})
            config = prometheus_config(ns, dict(layout.app_labels), layout.port, layout.label,
                                       self.scrape_interval)
            self._create("ConfigMap", api.core.create_namespaced_config_map,
                         api.core.delete_namespaced_config_map, {
                             "metadata": meta,
                             "data": {"prometheus.yml": json.dumps(config, indent=1)}})
            self._create("Deployment", api.apps.create_namespaced_deployment,
                         api.apps.delete_namespaced_deployment, self._deployment(meta))
            platform.create_node_port_service(self._service(meta))
            self._created.append(("Service", api.core.delete_namespaced_service, NAME))
        except BaseException:
            self.remove()
            raise

    def _create(self, kind: str, create, delete, body: dict) -> None:
        self.platform.api.call(f"create {kind} {NAME}", create, self.platform.namespace, body)
        self._created.append((kind, delete, NAME))

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
        if any(kind == "Service" for kind, _, _ in created):
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
