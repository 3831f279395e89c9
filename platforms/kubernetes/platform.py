"""The Kubernetes platform: the Platform interface on a real cluster, through the official
``kubernetes`` client (one ApiClient per platform, built from the Cluster's kubeconfig; the
process-global config is never loaded).

One platform is one namespace, labelled with the run id, holding the objects of a kustomize
overlay: for the reference service PostgreSQL (shared by blue and green), the migration Job,
the blue and green Deployments, the Service, a preview Service per colour, the canary Service;
for another service its own overlay, whose Service, colour label, Deployments and container
the ``Layout`` found (layout.py), with the previews it lacks added. The Service and the
previews are NodePorts allocated from the pool the cluster
publishes on this machine, so load reaches them the way clients do: through the Service and
kube-proxy, never through ``kubectl port-forward`` (which pins one pod and cannot see a switch).

This module is the API; the rest is delegated: the Service's routing to a ``Router``
(routing.py), the timeline of what the cluster does to a ``Watcher`` (watch.py), why something
is not ready to diagnose.py, and what differs between clusters (how a replica is killed) to
the cluster's provider (providers/).
"""
from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from zerodrop.platforms.base import (COLORS, Platform, PlatformError, ReplicaInfo, Target,
                                     check_weights)
from zerodrop.platforms.kubernetes.api import KubeApi, api_reason
from zerodrop.platforms.kubernetes.diagnose import deployment_ready, why_not_ready
from zerodrop.platforms.kubernetes.lint import lint
from zerodrop.platforms.kubernetes.layout import Layout, discover
from zerodrop.platforms.kubernetes.render import DEFAULT_OVERLAY, customize, render
from zerodrop.platforms.kubernetes.routers import make_router
from zerodrop.platforms.kubernetes.routing import Router
from zerodrop.platforms.kubernetes.watch import Watcher, pod_ready, ready_endpoints
from zerodrop.profiles import profile as profiles
from zerodrop.records.events import EventLog, EventName, Source

MANAGED = {"app.kubernetes.io/managed-by": "zerodrop"}
RUN_LABEL = "zerodrop.io/run"
OWNER = "zerodrop.io/owner"
DEFAULT_PREFIX = "zd"


@dataclass(frozen=True)
class KubeConfig:
    replicas: int = 2
    token: str = "test-token"
    ready_timeout: float = 180.0
    image: str | None = "zerodrop/payment-service:dev"
    overlay: Path = DEFAULT_OVERLAY
    run_id: str = "manual"
    propagation_s: float = 2.0       # EndpointSlice -> kube-proxy, generously
    prestop_seconds: float | None = None  # None: the manifests' own; 0: none (negative control)
    env: dict[str, str] = field(default_factory=dict)  # app variables on both colours
    # fresh-connection answers wait_routed wants in a row. While kube-proxy still holds one
    # old pod beside one new one, each answer is the new pod's by a coin flip: 6 in a row
    # take 126 answers on average, a second or two of such lag (a CI run then saw the old
    # pod after 'routed'); 16 in a row take about 131,000.
    route_answers: int = 16
    load_from: str = "here"          # "cluster": Locust in a Job of the namespace (load_job.py)
    harness_image: str = "zerodrop/harness:dev"
    profile: profiles.Profile | None = None  # the service under test (None: the reference)
    router: str = "selector"         # routing.ROUTERS: how traffic is steered between colours
    prometheus: str | None = None    # "cluster": one in the namespace; a URL: the user's; None

    @property
    def service(self) -> profiles.Profile:
        return self.profile if self.profile is not None else profiles.load()


def new_namespace(run_id: str, suffix: str = "", prefix: str = DEFAULT_PREFIX) -> str:
    """``<prefix>-<run id>[-<suffix>]``, the name of every namespace of a run."""
    return f"{prefix}-{run_id}{'-' + suffix if suffix else ''}"[:63]


def stand_up(cluster, config: KubeConfig, namespace: str, active: str = "blue",
             versions: dict[str, str] | None = None, idle_replicas: int | None = None,
             faults: dict[str, dict] | None = None, provider=None) -> "KubernetesPlatform":
    """A namespace with the whole stack, ``active`` serving and the idle colour running its
    own version behind its preview Service (``idle_replicas``, default as many as ``active``);
    torn down again if anything fails."""
    platform = KubernetesPlatform(cluster, namespace, config, provider=provider)
    try:
        platform.create(active, versions or {"blue": "v1.0.0", "green": "v1.1.0"},
                        config.replicas if idle_replicas is None else idle_replicas,
                        faults or {})
    except BaseException:
        platform.teardown()
        raise
    return platform


class KubernetesPlatform(Platform):
    def __init__(self, cluster, namespace: str, config: KubeConfig,
                 events: EventLog | None = None, provider=None,
                 router: Router | None = None) -> None:
        if provider is None:  # the provider the cluster was acquired by (kind, kubeconfig)
            from zerodrop.platforms import registry
            provider = registry.get(cluster.kind)
        self.cluster, self.namespace, self.config = cluster, namespace, config
        self._kubeconfig_copy: str | None = None  # command_env's, deleted at teardown
        self.provider = provider
        self.events = events or EventLog()
        self.admin_token = secrets.token_urlsafe(16)
        self.profile = config.service
        self.layout = layout_of(config)  # before anything is created: a bad overlay costs nothing
        self.api = KubeApi(cluster.api_client(), namespace)
        self.router = router or make_router(config.router, self.api, self.layout, self.events)
        self.watcher = Watcher(self.api, self.layout, self.events)
        self._node_ports: dict[str, int] = {}  # Service name -> its NodePort
        self._netem: set[str] = set()  # colours with tc netem in their pods (removed at teardown)
        self.metrics = None  # ClusterPrometheus / ExternalPrometheus (prometheus.py), or None
        self._torn_down = False

    # the clients, for what runs beside the platform (the load Job, tests)
    core = property(lambda self: self.api.core)
    apps = property(lambda self: self.api.apps)
    batch = property(lambda self: self.api.batch)
    discovery = property(lambda self: self.api.discovery)

    # ---- life cycle -------------------------------------------------------------------------
    def create(self, active: str, versions: dict[str, str], idle_replicas: int,
               faults: dict[str, dict]) -> None:
        """Namespace, database, Services, the migration Job, then blue and green; returns
        when every address handed out reaches its ready pods."""
        idle = next(c for c in COLORS if c != active)
        self.router.preflight()  # the CRDs a weighted router needs: before anything exists
        if self.config.prometheus not in (None, "cluster"):  # the user's: it must answer first
            from zerodrop.platforms.kubernetes.prometheus import ExternalPrometheus
            self.metrics = ExternalPrometheus(self.config.prometheus)
            self.metrics.check()
        self._create_namespace()
        self.watcher.start()
        objects = customize(render(self.config.overlay), layout=self.layout,
                            namespace=self.namespace, labels=self.labels(),
                            image=self.config.image, versions=versions,
                            replicas={active: self.config.replicas, idle: idle_replicas},
                            token=self.config.token, admin_token=self.admin_token,
                            faults=faults, env=self.config.env,
                            prestop_seconds=self.config.prestop_seconds,
                            reference=self.profile.is_default)
        by_kind: dict[str, list[dict]] = {}
        for o in objects:
            by_kind.setdefault(o["kind"], []).append(o)
        apps = [o for o in by_kind.get("Deployment", []) if self._is_app(o)]
        others = [o for o in by_kind.get("Deployment", []) if not self._is_app(o)]
        for o in by_kind.get("Secret", []):
            self.api.call("create Secret", self.core.create_namespaced_secret, self.namespace, o)
        self._create_deployments(others)  # the database first
        for o in by_kind.get("Service", []):
            self._create_service(o, active)
        self.router.install(self)  # a Gateway and its HTTPRoute, a VirtualService, or nothing
        if self.config.prometheus == "cluster":  # one in the namespace, scraping every app pod
            from zerodrop.platforms.kubernetes.prometheus import ClusterPrometheus
            self.metrics = ClusterPrometheus()
            self.metrics.install(self)
        for o in others:
            self._wait_deployment(o["metadata"]["name"], self.config.ready_timeout)
        for o in by_kind.get("Job", []):
            self.api.call("create Job", self.batch.create_namespaced_job, self.namespace, o)
            self._wait_job(o["metadata"]["name"], self.config.ready_timeout)
        self._create_deployments(apps)
        self._wait_serving(active, idle if idle_replicas else None)
        if self.config.prometheus == "cluster":  # and the dashboard's pod panel has its data
            self.metrics.wait_ready(self.config.ready_timeout)
            self.metrics.wait_kube_state(self.config.ready_timeout)

    def _create_namespace(self) -> None:
        from kubernetes import client
        ns = client.V1Namespace(metadata=client.V1ObjectMeta(
            name=self.namespace, labels=self.labels(),
            annotations={OWNER: f"{socket.gethostname()}:{os.getpid()}"}))
        self.api.call(f"create namespace {self.namespace}", self.core.create_namespace, ns)

    def _create_deployments(self, objs: list[dict]) -> None:
        for o in objs:
            self.api.call("create Deployment", self.apps.create_namespaced_deployment,
                          self.namespace, o)

    def _wait_serving(self, active: str, idle: str | None) -> None:
        colors = [active] + ([idle] if idle else [])
        for c in colors:
            self.wait_ready(c, self.config.ready_timeout)
        # ready is not yet routed: every address handed out must already reach its pods
        for c in [None, *colors]:
            self.wait_routed(c, self.config.ready_timeout)

    def teardown(self) -> None:
        if self._torn_down:
            return
        self._torn_down = True
        self.watcher.stop(timeout=0)
        self.router.remove()
        for name in list(self._node_ports):  # NodePorts are few (10): free them now, not when
            with contextlib.suppress(Exception):  # the namespace has finished terminating
                self.core.delete_namespaced_service(name, self.namespace, _request_timeout=10)
        try:
            self.core.delete_namespace(self.namespace, propagation_policy="Background",
                                       _request_timeout=30)
            # nobody needs a drain any more: without this every pod would sit out its preStop
            # and grace period (a terminating namespace accepts no new pods)
            self.core.delete_collection_namespaced_pod(self.namespace, grace_period_seconds=0,
                                                       _request_timeout=30)
        except Exception:  # already gone, or the cluster is: the session sweep retries
            pass
        self.events.emit(Source.PLATFORM, EventName.NAMESPACE_DELETED, namespace=self.namespace)
        self.watcher.stop()
        self.api.close()
        if self._kubeconfig_copy is not None:
            with contextlib.suppress(OSError):
                os.unlink(self._kubeconfig_copy)

    # ---- the Platform interface -------------------------------------------------------------
    @property
    def service_url(self) -> str:
        return self._url(self.router.entry_service() or self.layout.service)

    def command_env(self) -> dict[str, str]:
        """KUBECONFIG (a private copy whose current context is the run's), NAMESPACE and
        SERVICE_NAME: what the seed's deploy script and kubectl need to act on this namespace."""
        if self._kubeconfig_copy is None:
            import tempfile

            import yaml
            with open(self.cluster.kubeconfig, encoding="utf-8") as f:
                data = yaml.safe_load(f) or {}
            if self.cluster.context:
                data["current-context"] = self.cluster.context
            fd, path = tempfile.mkstemp(prefix=f"{self.namespace}-", suffix=".kubeconfig")
            with os.fdopen(fd, "w", encoding="utf-8") as f:  # mkstemp: mode 0600
                yaml.safe_dump(data, f)
            self._kubeconfig_copy = path
        return {"KUBECONFIG": self._kubeconfig_copy, "NAMESPACE": self.namespace,
                "SERVICE_NAME": self.layout.service}

    def preview_url(self, color: str) -> str:
        _check_color(color)
        return self._url(self.layout.preview(color))

    @property
    def metrics_url(self) -> str | None:
        return self.metrics.url if self.metrics is not None else None

    def query_metrics(self, promql: str):
        if self.metrics is None:
            raise PlatformError("no Prometheus scrapes this platform (KubeConfig.prometheus)")
        return self.metrics.query(promql)

    def wait_scraped(self, color: str, timeout: float | None = None) -> None:
        """The namespace's Prometheus: until every ready app pod (both colours) is scraped. A
        user's Prometheus scrapes on its own terms: its first stage may read "no data"."""
        _check_color(color)
        if self.metrics is None:
            raise PlatformError("no Prometheus scrapes this platform (KubeConfig.prometheus)")
        if hasattr(self.metrics, "wait_scraped"):
            self.metrics.wait_scraped(timeout or self.config.ready_timeout)

    @property
    def propagation_hint(self) -> float:
        return self.config.propagation_s

    def deploy(self, color: str, version: str, *, faults: dict | None = None) -> None:
        _check_color(color)
        env = [{"name": "APP_VERSION", "value": version}]
        if self.profile.is_default:
            env.append({"name": "FAULTS", "value": json.dumps(faults or {}, sort_keys=True)})
        elif faults:
            raise PlatformError(self._no_faults(faults))
        container: dict[str, Any] = {"name": self.layout.container, "env": env}
        if self.config.image:
            container["image"] = self.config.image
        patch = {"spec": {"template": {"spec": {"containers": [container]}}}}
        self.api.call(f"deploy {version} to {color}", self.apps.patch_namespaced_deployment,
                      self.layout.deployment(color), self.namespace, patch)
        self.events.emit(Source.PLATFORM, EventName.DEPLOYED, color=color, version=version,
                         faults=faults or {})

    def scale(self, color: str, replicas: int) -> None:
        _check_color(color)
        self.api.call(f"scale {color}", self.apps.patch_namespaced_deployment_scale,
                      self.layout.deployment(color), self.namespace,
                      {"spec": {"replicas": replicas}})
        self.events.emit(Source.PLATFORM, EventName.SCALED, color=color, replicas=replicas)

    def wait_ready(self, color: str, timeout: float | None = None) -> None:
        _check_color(color)
        self._wait_deployment(self.layout.deployment(color), timeout or self.config.ready_timeout)

    def wait_routed(self, color: str | None = None, timeout: float | None = None) -> None:
        service = self.layout.service if color is None else self.layout.preview(color)
        timeout = timeout or self.config.ready_timeout
        if color is None and self.router.entry_service() is not None:
            self.router.wait_entry(self, timeout)  # clients come in through a Gateway
            return
        deadline = time.monotonic() + timeout
        want = self._wait_slices(service, deadline, timeout)
        self._wait_answers(service, want, deadline, timeout)

    def _wait_slices(self, service: str, deadline: float, timeout: float) -> set[str]:
        """Until the EndpointSlices list exactly the ready pods the selector picks; those."""
        while True:
            selector = self._read_service(service).spec.selector or {}
            want = {p.metadata.name for p in self._pods_matching(selector)
                    if pod_ready(p) and not p.metadata.deletion_timestamp}
            got = self._slice_endpoints(service)
            if want and got == want:
                return want
            if time.monotonic() > deadline:
                raise PlatformError(
                    f"Service {service} in {self.namespace} is not routed to its ready pods "
                    f"after {timeout:g} s: EndpointSlices list {sorted(got) or 'nothing'}, "
                    f"ready pods {sorted(want) or 'none'}")
            time.sleep(0.2)

    def _wait_answers(self, service: str, want: set[str], deadline: float,
                      timeout: float) -> None:
        """... and until kube-proxy sends new connections there: ask the Service itself, on new
        connections, until enough answers in a row come from those pods (the profile's replica
        header names the pod; a service without one is asked for its liveness answer only)."""
        url, in_a_row, seen = self._url(service), 0, "nothing"
        header = self.profile.replica_header
        while in_a_row < self.config.route_answers:
            if time.monotonic() > deadline:
                raise PlatformError(f"Service {service} answers from {seen}, not only from "
                                    f"{sorted(want)}, after {timeout:g} s (kube-proxy behind?)")
            try:
                resp = requests.get(f"{url}{self.profile.liveness}", timeout=2,
                                    headers={"Connection": "close"})
                if not header:
                    seen = "a ready pod" if resp.ok else f"HTTP {resp.status_code}"
                else:
                    seen = resp.headers.get(header, f"an answer without {header}")
            except requests.RequestException as exc:
                seen = f"no answer ({type(exc).__name__})"
            good = seen in want or (not header and seen == "a ready pod")
            in_a_row = in_a_row + 1 if good else 0
            if not good:
                time.sleep(0.1)

    def deployed_version(self, color: str) -> str | None:
        _check_color(color)
        d = self.api.call("read Deployment", self.apps.read_namespaced_deployment,
                          self.layout.deployment(color), self.namespace)
        for c in d.spec.template.spec.containers:
            for e in c.env or []:
                if c.name == self.layout.container and e.name == "APP_VERSION":
                    return e.value or None
        return None

    def active_color(self) -> str | None:
        return self.router.active_color()

    def route_to(self, color: str) -> None:
        _check_color(color)
        self.router.route_to(color)

    def set_weights(self, weights: dict[str, int], canary: str | None = None) -> None:
        self.router.set_weights(check_weights(weights, canary), canary)

    def replicas(self, color: str) -> list[ReplicaInfo]:
        _check_color(color)
        pods = self._pods_matching(self.layout.selector(color))
        return [_info(p, color, self.layout) for p in sorted(pods, key=lambda p: p.metadata.name)
                if p.status.phase not in ("Succeeded", "Failed")]

    def kill_replica(self, color: str, sig: int, index: int = 0) -> ReplicaInfo:
        live = [r for r in self.replicas(color) if not r.terminating]
        if not 0 <= index < len(live):
            raise PlatformError(f"{color} has {len(live)} running replicas; no index {index}")
        self.provider.kill(self, live[index], sig)  # a real signal where the cluster allows
        return live[index]

    def delete_replica(self, color: str, index: int = 0) -> ReplicaInfo:
        live = [r for r in self.replicas(color) if not r.terminating]
        if not 0 <= index < len(live):
            raise PlatformError(f"{color} has {len(live)} running replicas; no index {index}")
        self.events.emit(Source.FAULT, EventName.REPLICA_DELETED, color=color,
                         replica=live[index].name)
        self.api.call(f"delete pod {live[index].name}", self.core.delete_namespaced_pod,
                      live[index].name, self.namespace)
        return live[index]

    @property
    def network_faults(self) -> bool:
        return bool(getattr(self.provider, "network_faults", False))

    def network_fault(self, color: str, delay_ms: int = 0, loss_pct: int = 0) -> None:
        qdisc = ["netem"] + (["delay", f"{int(delay_ms)}ms"] if delay_ms else []) + \
            (["loss", f"{int(loss_pct)}%"] if loss_pct else [])
        self._netem.add(color)  # cleared at the end even when only some pods got it
        for r in self.replicas(color):
            if not r.terminating:
                self.provider.netem(self, r, qdisc)  # PlatformError where it cannot
        self.events.emit(Source.FAULT, EventName.FAULT_APPLIED, color=color,
                         faults={"netem_delay_ms": delay_ms, "netem_loss_pct": loss_pct})

    def clear_network_fault(self, color: str) -> None:
        if color not in self._netem:
            return
        for r in self.replicas(color):
            with contextlib.suppress(PlatformError):
                self.provider.netem(self, r, None)
        self._netem.discard(color)
        self.events.emit(Source.FAULT, EventName.FAULT_REMOVED, color=color, fault="netem")

    def apply_fault(self, color: str, faults: dict, index: int | None = None) -> None:
        """PATCH /admin/faults inside each running pod (pod IPs are not this machine's); the
        reference service's admin API, so another service's faults are its own command's."""
        if not self.profile.is_default:
            raise PlatformError(self._no_faults(faults))
        from kubernetes import client
        from kubernetes.stream import stream
        body = json.dumps(faults)
        exec_api = client.CoreV1Api(self.cluster.api_client())  # stream() patches its client
        try:
            live = [r for r in self.replicas(color) if not r.terminating]
            if index is not None:
                if not 0 <= index < len(live):
                    raise PlatformError(f"{color} has {len(live)} running replicas; no index {index}")
                live = [live[index]]
            for r in live:
                out = stream(exec_api.connect_get_namespaced_pod_exec, r.name, self.namespace,
                             container=self.layout.container,
                             command=["python", "-c", _PATCH_FAULTS, body],
                             stderr=True, stdout=True, stdin=False, tty=False)
                if "200" not in out:
                    raise PlatformError(f"{r.name} refused fault {faults}: {out.strip()[-200:]}")
        finally:
            exec_api.api_client.close()
        self.events.emit(Source.FAULT, EventName.FAULT_APPLIED, color=color,
                         faults=dict(faults))

    def migrate(self, version: str, env: dict[str, str] | None = None) -> None:
        """The overlay's migration Job once more, as ``version``'s (APP_VERSION, ``env`` on its
        containers, the run's image), while both colours keep serving: waited for with the
        ready timeout, its log tail in the error, deleted afterwards."""
        started, extra = time.time(), {"APP_VERSION": version, **(env or {})}
        objects = customize(render(self.config.overlay), layout=self.layout,
                            namespace=self.namespace, labels=self.labels(),
                            image=self.config.image, versions={}, replicas={},
                            token=self.config.token, admin_token=self.admin_token, faults={},
                            env=self.config.env, reference=self.profile.is_default)
        jobs = [o for o in objects if o.get("kind") == "Job"]
        if not jobs:
            raise PlatformError(f"--manifests {self.config.overlay} has no migration Job, so "
                                f"{version}'s migration cannot run on this cluster; add one")
        output: list[str] = []
        for job in jobs:
            name = _migration_job_name(job["metadata"]["name"], version)
            job["metadata"]["name"] = name
            for c in job["spec"]["template"]["spec"]["containers"]:
                c["env"] = [e for e in c.get("env", []) if e.get("name") not in extra]
                c["env"] += [{"name": k, "value": v} for k, v in extra.items()]
            self.api.call("create Job", self.batch.create_namespaced_job, self.namespace, job)
            try:
                self._wait_job(name, self.config.ready_timeout)
                output += self._job_log(name)
            finally:
                with contextlib.suppress(PlatformError):
                    self.api.call(f"delete Job {name}", self.batch.delete_namespaced_job, name,
                                  self.namespace, propagation_policy="Background")
        self.events.emit(Source.PLATFORM, EventName.MIGRATED, version=version,
                         env=dict(env or {}), seconds=round(time.time() - started, 3),
                         output=output)

    def _job_log(self, name: str) -> list[str]:
        """The last lines the Job's succeeded pod printed (what the migration applied)."""
        pods = self.api.call("list pods", self.core.list_namespaced_pod, self.namespace,
                             label_selector=f"job-name={name}").items
        done = [p for p in pods if p.status.phase == "Succeeded"] or pods
        if not done:
            return []
        log = self.api.call(f"read log of {done[0].metadata.name}",
                            self.core.read_namespaced_pod_log, done[0].metadata.name,
                            self.namespace, tail_lines=20)
        return [ln for ln in (log or "").splitlines() if ln.strip()]

    def target(self) -> Target:
        return Target(self.cluster.kind, self.service_url, self.config.token,
                      {c: self.preview_url(c) for c in COLORS}, self.admin_token,
                      self.active_color())

    def load_generator(self):
        if self.config.load_from != "cluster":
            return None
        from zerodrop.platforms.kubernetes.load_job import ClusterLoadRun

        def make(plan, progress=None):
            return ClusterLoadRun(self, plan, progress, image=self.config.harness_image)
        return make

    def labels(self) -> dict[str, str]:
        """The labels every object of this platform carries (the run's)."""
        return {**MANAGED, RUN_LABEL: self.config.run_id}

    def readiness_findings(self, color: str) -> list[str]:
        """The zero-downtime lint of the live objects before traffic moves to ``color``."""
        deployments = self.api.call("list Deployments", self.apps.list_namespaced_deployment,
                                    self.namespace,
                                    label_selector=self.layout.label_selector()).items
        objs = [{**self.api.serialize(d), "kind": "Deployment"} for d in deployments]
        objs.append({**self.api.serialize(self._read_service(self.layout.service)),
                     "kind": "Service"})
        found = lint(objs, color, self.config.propagation_s, service=self.layout.service,
                     label=self.layout.label)
        for f in found:
            self.events.emit(Source.PLATFORM, EventName.READINESS_FINDING, rule=f.rule,
                             finding=str(f))
        return [str(f) for f in found]

    # ---- internals ----------------------------------------------------------------------------
    def _is_app(self, obj: dict) -> bool:
        return self.layout.color_of_deployment(obj["metadata"]["name"]) is not None

    def _no_faults(self, faults: dict) -> str:
        return (f"faults {sorted(faults)} are the reference service's admin API; "
                f"{self.profile.name} is broken through its own manifests or command")

    def _url(self, service: str) -> str:
        port = self._node_ports.get(service)
        if port is None:
            raise PlatformError(f"Service {service} has no NodePort reachable from here")
        return f"http://{self.cluster.address(port)}"

    def _create_service(self, obj: dict, active: str) -> None:
        name = obj["metadata"]["name"]
        if name == self.layout.service:
            obj["spec"]["selector"] = self.layout.selector(active)
        if name in self.layout.services:
            obj["spec"]["type"] = "NodePort"  # the checks and the load must reach them from here
        if obj["spec"].get("type") != "NodePort":
            self.api.call(f"create Service {name}", self.core.create_namespaced_service,
                          self.namespace, obj)
            return
        self._node_ports[name] = self._create_node_port(obj)

    def create_node_port_service(self, obj: dict) -> int:
        """Create ``obj``, a NodePort Service a router adds (a Gateway's, the replica-ratio
        split), on the first free NodePort this machine reaches, and remember it so that
        ``service_url`` can point at it; that port."""
        port = self._create_node_port(obj)
        self._node_ports[obj["metadata"]["name"]] = port
        return port

    def _create_node_port(self, obj: dict) -> int:
        """Create the Service on the first free NodePort this machine reaches; that port."""
        from kubernetes.client.rest import ApiException
        name = obj["metadata"]["name"]
        for candidate in sorted(int(p) for p in self.cluster.node_ports):
            obj["spec"]["ports"][0]["nodePort"] = candidate
            try:
                self.core.create_namespaced_service(self.namespace, obj)
            except ApiException as exc:
                if exc.status == 422 and "already allocated" in (exc.body or ""):
                    continue
                raise PlatformError(f"create Service {name}: {api_reason(exc)}") from None
            return candidate
        raise PlatformError(f"every NodePort this machine reaches ({len(self.cluster.node_ports)}) "
                            f"is taken; too many zerodrop platforms on one cluster?")

    def _read_service(self, name: str):
        return self.api.call(f"read Service {name}", self.core.read_namespaced_service, name,
                             self.namespace)

    def _pods_matching(self, selector: dict[str, str]) -> list:
        label = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        return self.api.call("list pods", self.core.list_namespaced_pod, self.namespace,
                             label_selector=label).items

    def _slice_endpoints(self, service: str) -> set[str]:
        slices = self.api.call("list EndpointSlices",
                               self.discovery.list_namespaced_endpoint_slice, self.namespace,
                               label_selector=f"kubernetes.io/service-name={service}").items
        return {name for s in slices for name in ready_endpoints(s)}

    def _wait_deployment(self, name: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            d = self.api.call(f"read Deployment {name}", self.apps.read_namespaced_deployment,
                              name, self.namespace)
            if deployment_ready(d):
                return
            if time.monotonic() > deadline:
                raise PlatformError(f"Deployment {name} in {self.namespace} not ready after "
                                    f"{timeout:g} s ({d.status.ready_replicas or 0}/"
                                    f"{d.spec.replicas or 0} ready): "
                                    f"{why_not_ready(self.api, d.spec.selector.match_labels)}")
            time.sleep(0.25)

    def _wait_job(self, name: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            job = self.api.call(f"read Job {name}", self.batch.read_namespaced_job, name,
                                self.namespace)
            if job.status.succeeded:
                return
            limit = (job.spec.backoff_limit or 0) + 1
            if (job.status.failed or 0) >= limit or time.monotonic() > deadline:
                raise PlatformError(f"Job {name} did not complete: "
                                    f"{why_not_ready(self.api, {'job-name': name})}")
            time.sleep(0.5)


_PATCH_FAULTS = ("import os,sys,urllib.request as u;"
                 "r=u.Request('http://127.0.0.1:8080/admin/faults',data=sys.argv[1].encode(),"
                 "method='PATCH',headers={'Authorization':'Bearer '+os.environ['ADMIN_TOKEN'],"
                 "'Content-Type':'application/json'});print(u.urlopen(r,timeout=5).status)")


def _check_color(color: str) -> None:
    if color not in COLORS:
        raise PlatformError(f"colour must be blue or green, got {color!r}")


def layout_of(config: KubeConfig) -> Layout:
    """Where the service is in ``config``'s overlay, as its profile names it."""
    p = config.service
    return discover(render(config.overlay), service=p.kube_service or p.name, label=p.color_label,
                    container=p.kube_container, where=f"--manifests {config.overlay}")


def _info(pod, color: str, layout: Layout) -> ReplicaInfo:
    restarts = sum(s.restart_count for s in pod.status.container_statuses or [])
    version = next((e.value for c in pod.spec.containers for e in c.env or []
                    if c.name == layout.container and e.name == "APP_VERSION"), "") or ""
    return ReplicaInfo(pod.metadata.name, color, version,
                       f"http://{pod.status.pod_ip}:{layout.port}" if pod.status.pod_ip else "",
                       None, pod_ready(pod), bool(pod.metadata.deletion_timestamp), restarts)


def _migration_job_name(base: str, version: str) -> str:
    """``<the overlay's Job>-<version>-<suffix>``: a DNS label of at most 63 characters, new
    each time (a Job's template cannot change, and the last run's may still be deleting)."""
    slug = "".join(ch if ch.isalnum() else "-" for ch in version.lower()).strip("-") or "next"
    return f"{base[:30]}-{slug[:20]}-{secrets.token_hex(3)}".replace("--", "-")[:63].strip("-")
