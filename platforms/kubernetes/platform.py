"""The Kubernetes platform: the Platform interface on a real cluster, through the official
``kubernetes`` client (one ApiClient per platform, built from the Cluster's kubeconfig; the
process-global config is never loaded).

One platform is one namespace, labelled with the run id: PostgreSQL (shared by blue and
green), the migration Job, the blue and green Deployments, the Service, a preview Service per
colour, the canary Service. Services are NodePorts allocated from the pool the cluster
publishes on this machine, so load reaches them the way clients do: through the Service and
kube-proxy, never through ``kubectl port-forward`` (which pins one pod and cannot see a switch).

What the cluster does goes on the same timeline as the ledger (``time.time()``): the platform
emits what it does (deployed, scaled, selector patched, replica killed) and watches pods and
EndpointSlices (replica started/ready/unready/terminating/terminated, endpoints changed), each
stamped when this process saw it.
"""
from __future__ import annotations

import json
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import requests

from zerodrop.platforms.kubernetes.lint import lint
from zerodrop.platforms.kubernetes.providers import Cluster, ProviderError, signal_container
from zerodrop.platforms.kubernetes.render import APP, CONTAINER, DEFAULT_OVERLAY, customize, render
from zerodrop.platforms.base import COLORS, Platform, PlatformError, ReplicaInfo, Target
from zerodrop.records.events import EventLog

MANAGED = {"app.kubernetes.io/managed-by": "zerodrop"}
RUN_LABEL = "zerodrop.io/run"
OWNER = "zerodrop.io/owner"


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
    route_answers: int = 6           # fresh-connection answers wait_routed wants in a row
    load_from: str = "here"          # "cluster": Locust in a Job of the namespace (load_job.py)
    harness_image: str = "zerodrop/harness:dev"


def new_namespace(run_id: str, suffix: str = "") -> str:
    return f"zd-{run_id}{'-' + suffix if suffix else ''}"[:63]


def stand_up(cluster: Cluster, config: KubeConfig, namespace: str, active: str = "blue",
             versions: dict[str, str] | None = None, idle_replicas: int | None = None,
             faults: dict[str, dict] | None = None) -> "KubernetesPlatform":
    """A namespace with the whole stack, ``active`` serving and the idle colour running its
    own version behind its preview Service (``idle_replicas``, default as many as ``active``);
    torn down again if anything fails."""
    platform = KubernetesPlatform(cluster, namespace, config)
    try:
        platform.create(active, versions or {"blue": "v1.0.0", "green": "v1.1.0"},
                        config.replicas if idle_replicas is None else idle_replicas,
                        faults or {})
    except BaseException:
        platform.teardown()
        raise
    return platform


class KubernetesPlatform(Platform):
    def __init__(self, cluster: Cluster, namespace: str, config: KubeConfig,
                 events: EventLog | None = None) -> None:
        from kubernetes import client
        self.cluster, self.namespace, self.config = cluster, namespace, config
        self.events = events or EventLog()
        self.admin_token = secrets.token_urlsafe(16)
        self._api = cluster.api_client()
        self.core = client.CoreV1Api(self._api)
        self.apps = client.AppsV1Api(self._api)
        self.batch = client.BatchV1Api(self._api)
        self.discovery = client.DiscoveryV1Api(self._api)
        self._node_ports: dict[str, int] = {}  # Service name -> its NodePort
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._pods: dict[str, tuple[bool, bool]] = {}   # name -> (ready, terminating)
        self._slices: dict[str, tuple[str, tuple[str, ...]]] = {}  # slice -> (Service, ready pods)
        self._torn_down = False

    # ---- life cycle -------------------------------------------------------------------------
    def create(self, active: str, versions: dict[str, str], idle_replicas: int,
               faults: dict[str, dict]) -> None:
        from kubernetes import client
        idle = next(c for c in COLORS if c != active)
        labels = self.labels()
        ns = client.V1Namespace(metadata=client.V1ObjectMeta(
            name=self.namespace, labels=labels,
            annotations={OWNER: f"{socket.gethostname()}:{os.getpid()}"}))
        self._call(f"create namespace {self.namespace}", self.core.create_namespace, ns)
        self._watch()
        objects = customize(render(self.config.overlay), namespace=self.namespace,
                            labels=labels, image=self.config.image, versions=versions,
                            replicas={active: self.config.replicas, idle: idle_replicas},
                            token=self.config.token, admin_token=self.admin_token,
                            faults=faults, env=self.config.env,
                            prestop_seconds=self.config.prestop_seconds)
        by_kind: dict[str, list[dict]] = {}
        for o in objects:
            by_kind.setdefault(o["kind"], []).append(o)
        for o in by_kind.get("Secret", []):
            self._call("create Secret", self.core.create_namespaced_secret, self.namespace, o)
        for o in by_kind.get("Deployment", []):
            if o["metadata"]["labels"].get("app") != APP:  # the database first
                self._call("create Deployment", self.apps.create_namespaced_deployment,
                           self.namespace, o)
        for o in by_kind.get("Service", []):
            self._create_service(o, active)
        for o in by_kind.get("Deployment", []):
            if o["metadata"]["labels"].get("app") != APP:
                self._wait_deployment(o["metadata"]["name"], self.config.ready_timeout)
        for o in by_kind.get("Job", []):
            self._call("create Job", self.batch.create_namespaced_job, self.namespace, o)
            self._wait_job(o["metadata"]["name"], self.config.ready_timeout)
        for o in by_kind.get("Deployment", []):
            if o["metadata"]["labels"].get("app") == APP:
                self._call("create Deployment", self.apps.create_namespaced_deployment,
                           self.namespace, o)
        self.wait_ready(active, self.config.ready_timeout)
        if idle_replicas:
            self.wait_ready(idle, self.config.ready_timeout)
        # ready is not yet routed: every address handed out must already reach its pods
        self.wait_routed(None, self.config.ready_timeout)
        self.wait_routed(active, self.config.ready_timeout)
        if idle_replicas:
            self.wait_routed(idle, self.config.ready_timeout)

    def teardown(self) -> None:
        if self._torn_down:
            return
        self._torn_down = True
        self._stop.set()
        try:
            self.core.delete_namespace(self.namespace, propagation_policy="Background",
                                       _request_timeout=30)
            # nobody needs a drain any more: without this every pod would sit out its preStop
            # and grace period (a terminating namespace accepts no new pods)
            self.core.delete_collection_namespaced_pod(self.namespace, grace_period_seconds=0,
                                                       _request_timeout=30)
        except Exception:  # already gone, or the cluster is: the session sweep retries
            pass
        self.events.emit("platform", "namespace deleted", namespace=self.namespace)
        for t in self._threads:
            t.join(timeout=1)
        try:
            self._api.close()
        except Exception:
            pass

    # ---- the Platform interface -------------------------------------------------------------
    @property
    def service_url(self) -> str:
        return self._url(APP)

    def preview_url(self, color: str) -> str:
        _check_color(color)
        return self._url(f"{APP}-{color}")

    @property
    def propagation_hint(self) -> float:
        return self.config.propagation_s

    def deploy(self, color: str, version: str, *, faults: dict | None = None) -> None:
        _check_color(color)
        env = [{"name": "APP_VERSION", "value": version},
               {"name": "FAULTS", "value": json.dumps(faults or {}, sort_keys=True)}]
        container: dict[str, Any] = {"name": CONTAINER, "env": env}
        if self.config.image:
            container["image"] = self.config.image
        patch = {"spec": {"template": {"spec": {"containers": [container]}}}}
        self._call(f"deploy {version} to {color}", self.apps.patch_namespaced_deployment,
                   _deployment(color), self.namespace, patch)
        self.events.emit("platform", "deployed", color=color, version=version,
                         faults=faults or {})

    def scale(self, color: str, replicas: int) -> None:
        _check_color(color)
        self._call(f"scale {color}", self.apps.patch_namespaced_deployment_scale,
                   _deployment(color), self.namespace, {"spec": {"replicas": replicas}})
        self.events.emit("platform", "scaled", color=color, replicas=replicas)

    def wait_ready(self, color: str, timeout: float | None = None) -> None:
        _check_color(color)
        self._wait_deployment(_deployment(color), timeout or self.config.ready_timeout)

    def wait_routed(self, color: str | None = None, timeout: float | None = None) -> None:
        service = APP if color is None else f"{APP}-{color}"
        timeout = timeout or self.config.ready_timeout
        deadline = time.monotonic() + timeout
        want: set[str] = set()
        got: set[str] = set()
        while True:  # the EndpointSlices list exactly the ready pods the selector picks
            selector = self._read_service(service).spec.selector or {}
            want = {p.metadata.name for p in self._pods_matching(selector)
                    if _ready(p) and not p.metadata.deletion_timestamp}
            got = self._slice_endpoints(service)
            if want and got == want:
                break
            if time.monotonic() > deadline:
                raise PlatformError(
                    f"Service {service} in {self.namespace} is not routed to its ready pods "
                    f"after {timeout:g} s: EndpointSlices list {sorted(got) or 'nothing'}, "
                    f"ready pods {sorted(want) or 'none'}")
            time.sleep(0.2)
        # ... and kube-proxy sends new connections there: ask the Service itself
        url, in_a_row, seen = self._url(service), 0, "nothing"
        while in_a_row < self.config.route_answers:
            if time.monotonic() > deadline:
                raise PlatformError(f"Service {service} answers from {seen}, not only from "
                                    f"{sorted(want)}, after {timeout:g} s (kube-proxy behind?)")
            try:
                resp = requests.get(f"{url}/health/live", timeout=2,
                                    headers={"Connection": "close"})
                seen = resp.headers.get("X-Replica", "an answer without X-Replica")
            except requests.RequestException as exc:
                seen = f"no answer ({type(exc).__name__})"
            in_a_row = in_a_row + 1 if seen in want else 0
            if seen not in want:
                time.sleep(0.1)

    def deployed_version(self, color: str) -> str | None:
        _check_color(color)
        d = self._call("read Deployment", self.apps.read_namespaced_deployment,
                       _deployment(color), self.namespace)
        for c in d.spec.template.spec.containers:
            for e in c.env or []:
                if c.name == CONTAINER and e.name == "APP_VERSION":
                    return e.value or None
        return None

    def active_color(self) -> str | None:
        selector = self._read_service(APP).spec.selector or {}
        color = selector.get("version")
        return color if color in COLORS and set(selector) == {"app", "version"} else None

    def route_to(self, color: str) -> None:
        _check_color(color)
        selector = {"app": APP, "version": color}
        patch = [{"op": "replace", "path": "/spec/selector", "value": selector}]  # never a merge
        svc = self._call(f"patch the selector of {APP}", self.core.patch_namespaced_service,
                         APP, self.namespace, patch)
        self.events.emit("platform", "selector patched", service=APP, selector=selector,
                         resource_version=svc.metadata.resource_version)

    def set_weights(self, weights: dict[str, int]) -> None:
        raise PlatformError("a plain Kubernetes Service cannot split traffic by weight; "
                            "canary weights need an ingress or a mesh")

    def replicas(self, color: str) -> list[ReplicaInfo]:
        _check_color(color)
        pods = self._pods_matching({"app": APP, "version": color})
        return [_info(p, color) for p in sorted(pods, key=lambda p: p.metadata.name)
                if p.status.phase not in ("Succeeded", "Failed")]

    def kill_replica(self, color: str, sig: int, index: int = 0) -> ReplicaInfo:
        import signal as signals
        live = [r for r in self.replicas(color) if not r.terminating]
        if not 0 <= index < len(live):
            raise PlatformError(f"{color} has {len(live)} running replicas; no index {index}")
        info = live[index]
        name = signals.Signals(sig).name
        if self.cluster.node_container:  # a real signal, from outside the pod's PID namespace
            pod = self.core.read_namespaced_pod(info.name, self.namespace)
            status = next((s for s in pod.status.container_statuses or []
                           if s.name == CONTAINER), None)
            if status is None or not status.container_id:
                raise PlatformError(f"{info.name} has no running {CONTAINER} container")
            # stamped as it is sent: `docker exec` returns tens of ms after the signal lands
            self.events.emit("fault", "replica killed", color=color, replica=info.name,
                             signal=name)
            try:
                signal_container(self.cluster, status.container_id, name)
            except ProviderError as exc:
                self.events.emit("fault", "replica kill failed", color=color,
                                 replica=info.name, error=str(exc))
                raise PlatformError(str(exc)) from None
        else:  # an existing cluster: the closest is a delete, immediate for SIGKILL
            self.events.emit("fault", "replica killed", color=color, replica=info.name,
                             signal=name, via="pod delete")
            self._call(f"delete pod {info.name}", self.core.delete_namespaced_pod, info.name,
                       self.namespace, grace_period_seconds=0 if sig == signals.SIGKILL else None)
        return info

    def apply_fault(self, color: str, faults: dict) -> None:
        """PATCH /admin/faults inside each running pod (pod IPs are not this machine's)."""
        from kubernetes import client
        from kubernetes.stream import stream
        body = json.dumps(faults)
        script = ("import os,sys,urllib.request as u;"
                  "r=u.Request('http://127.0.0.1:8080/admin/faults',data=sys.argv[1].encode(),"
                  "method='PATCH',headers={'Authorization':'Bearer '+os.environ['ADMIN_TOKEN'],"
                  "'Content-Type':'application/json'});print(u.urlopen(r,timeout=5).status)")
        exec_api = client.CoreV1Api(self.cluster.api_client())  # stream() patches its client
        try:
            for r in self.replicas(color):
                if r.terminating:
                    continue
                out = stream(exec_api.connect_get_namespaced_pod_exec, r.name, self.namespace,
                             container=CONTAINER, command=["python", "-c", script, body],
                             stderr=True, stdout=True, stdin=False, tty=False)
                if "200" not in out:
                    raise PlatformError(f"{r.name} refused fault {faults}: {out.strip()[-200:]}")
        finally:
            exec_api.api_client.close()
        self.events.emit("fault", "fault applied", color=color, faults=dict(faults))

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
        deployments = self._call("list Deployments", self.apps.list_namespaced_deployment,
                                 self.namespace, label_selector=f"app={APP}").items
        serialize = self._api.sanitize_for_serialization
        objs = [{**serialize(d), "kind": "Deployment"} for d in deployments]  # items lack kind
        objs.append({**serialize(self._read_service(APP)), "kind": "Service"})
        found = lint(objs, color, self.config.propagation_s)
        for f in found:
            self.events.emit("platform", "readiness finding", rule=f.rule, finding=str(f))
        return [str(f) for f in found]

    # ---- internals ----------------------------------------------------------------------------
    def _url(self, service: str) -> str:
        port = self._node_ports.get(service)
        if port is None:
            raise PlatformError(f"Service {service} has no NodePort reachable from here")
        return f"http://{self.cluster.address(port)}"

    def _create_service(self, obj: dict, active: str) -> None:
        from kubernetes.client.rest import ApiException
        name = obj["metadata"]["name"]
        if obj["metadata"]["name"] == APP:
            obj["spec"]["selector"] = {"app": APP, "version": active}
        if name in (APP, *(f"{APP}-{c}" for c in COLORS)):
            obj["spec"]["type"] = "NodePort"  # the checks and the load must reach them from here
        if obj["spec"].get("type") != "NodePort":
            self._call(f"create Service {name}", self.core.create_namespaced_service,
                       self.namespace, obj)
            return
        for candidate in sorted(int(p) for p in self.cluster.node_ports):
            obj["spec"]["ports"][0]["nodePort"] = candidate
            try:
                self.core.create_namespaced_service(self.namespace, obj)
            except ApiException as exc:
                if exc.status == 422 and "already allocated" in (exc.body or ""):
                    continue
                raise PlatformError(f"create Service {name}: {_api_reason(exc)}") from None
            self._node_ports[name] = candidate
            return
        raise PlatformError(f"every NodePort this machine reaches ({len(self.cluster.node_ports)}) "
                            f"is taken; too many zerodrop platforms on one cluster?")

    def _read_service(self, name: str):
        return self._call(f"read Service {name}", self.core.read_namespaced_service, name,
                          self.namespace)

    def _pods_matching(self, selector: dict[str, str]) -> list:
        label = ",".join(f"{k}={v}" for k, v in sorted(selector.items()))
        return self._call("list pods", self.core.list_namespaced_pod, self.namespace,
                          label_selector=label).items

    def _slice_endpoints(self, service: str) -> set[str]:
        slices = self._call("list EndpointSlices", self.discovery.list_namespaced_endpoint_slice,
                            self.namespace,
                            label_selector=f"kubernetes.io/service-name={service}").items
        return {e.target_ref.name for s in slices for e in (s.endpoints or [])
                if e.target_ref and e.conditions and e.conditions.ready}

    def _wait_deployment(self, name: str, timeout: float) -> None:
        """The full rollout predicate: the controller saw the current spec, and every desired
        replica is updated, ready and available, with no old pod left."""
        deadline = time.monotonic() + timeout
        while True:
            d = self._call(f"read Deployment {name}", self.apps.read_namespaced_deployment,
                           name, self.namespace)
            st, want = d.status, d.spec.replicas or 0
            if ((st.observed_generation or 0) >= d.metadata.generation
                    and (st.updated_replicas or 0) == want and (st.ready_replicas or 0) == want
                    and (st.available_replicas or 0) == want and (st.replicas or 0) == want):
                return
            if time.monotonic() > deadline:
                raise PlatformError(f"Deployment {name} in {self.namespace} not ready after "
                                    f"{timeout:g} s ({st.ready_replicas or 0}/{want} ready): "
                                    f"{self._why_not_ready(d.spec.selector.match_labels)}")
            time.sleep(0.25)

    def _wait_job(self, name: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            job = self._call(f"read Job {name}", self.batch.read_namespaced_job, name,
                             self.namespace)
            if job.status.succeeded:
                return
            limit = (job.spec.backoff_limit or 0) + 1
            if (job.status.failed or 0) >= limit or time.monotonic() > deadline:
                raise PlatformError(f"Job {name} did not complete: "
                                    f"{self._why_not_ready({'job-name': name})}")
            time.sleep(0.5)

    def _why_not_ready(self, selector: dict[str, str]) -> str:
        """Each pod's state, its last events and the last lines of its log, on one line."""
        parts = []
        for p in self._pods_matching(selector)[:3]:
            states = []
            for s in p.status.container_statuses or []:
                w = s.state.waiting or s.state.terminated
                states.append(f"{s.name} {getattr(w, 'reason', None) or 'running'}"
                              f"{' ready' if s.ready else ''}")
            try:
                evs = self.core.list_namespaced_event(
                    self.namespace, field_selector=f"involvedObject.name={p.metadata.name}").items
                last = "; ".join(f"{e.reason}: {(e.message or '')[:120]}" for e in evs[-2:])
            except Exception:
                last = "events unavailable"
            try:
                log = self.core.read_namespaced_pod_log(p.metadata.name, self.namespace,
                                                        tail_lines=3, container=None)
                tail = " | ".join(ln.strip() for ln in log.splitlines()[-3:] if ln.strip())
            except Exception:
                tail = "no log"
            parts.append(f"pod {p.metadata.name} {p.status.phase} [{', '.join(states)}] "
                         f"events: {last or 'none'}; log: {tail[:300] or 'empty'}")
        return " || ".join(parts) or "no pods at all (check the ReplicaSet's events)"

    def _call(self, what: str, fn: Callable, *args, **kwargs):
        from kubernetes.client.rest import ApiException
        from urllib3.exceptions import HTTPError
        try:
            return fn(*args, _request_timeout=30, **kwargs)
        except ApiException as exc:
            raise PlatformError(f"{what} in {self.namespace}: {_api_reason(exc)}") from None
        except (HTTPError, OSError) as exc:
            raise PlatformError(f"{what}: the API server did not answer "
                                f"({type(exc).__name__})") from None

    # ---- watching the cluster ---------------------------------------------------------------
    def _watch(self) -> None:
        for fn, handler in ((self.core.list_namespaced_pod, self._on_pod),
                            (self.discovery.list_namespaced_endpoint_slice, self._on_slice)):
            t = threading.Thread(target=self._watch_loop, args=(fn, handler), daemon=True,
                                 name=f"zd-watch-{handler.__name__}")
            t.start()
            self._threads.append(t)

    def _watch_loop(self, list_fn: Callable, handler: Callable) -> None:
        """Watch from where the last watch ended (its resourceVersion), so no event falls in
        the gap between two watch calls; a watch that cannot resume (410 Gone) lists afresh,
        and the handlers' state diffs make the repeated ADDED events harmless."""
        from kubernetes import watch
        version = None
        while not self._stop.is_set():
            w = watch.Watch()
            kwargs = {"resource_version": version} if version else {}
            try:
                for ev in w.stream(list_fn, self.namespace, timeout_seconds=2,
                                   _request_timeout=10, **kwargs):
                    if self._stop.is_set():
                        w.stop()
                        break
                    if ev["type"] == "ERROR":
                        version = None
                        continue
                    handler(ev["type"], ev["object"])
                version = w.resource_version or version
            except Exception:  # 410 Gone, a dropped connection: start over with a list
                version = None
                self._stop.wait(0.2)

    def _on_pod(self, kind: str, pod) -> None:
        labels = pod.metadata.labels or {}
        color = labels.get("version")
        if labels.get("app") != APP or color not in COLORS:
            return
        name = pod.metadata.name
        if kind == "DELETED":
            if self._pods.pop(name, None) is not None:
                self.events.emit("platform", "replica terminated", color=color, replica=name,
                                 reason="pod deleted")
            return
        now = (_ready(pod), bool(pod.metadata.deletion_timestamp))
        before = self._pods.get(name)
        self._pods[name] = now
        if before is None:
            self.events.emit("platform", "replica started", color=color, replica=name)
            before = (False, False)
        if now[1] and not before[1]:
            self.events.emit("platform", "replica terminating", color=color, replica=name)
        if now[0] and not before[0]:
            self.events.emit("platform", "replica ready", color=color, replica=name)
        elif before[0] and not now[0]:
            self.events.emit("platform", "replica unready", color=color, replica=name,
                             reason="terminating" if now[1] else "readiness failed")

    def _on_slice(self, kind: str, eps) -> None:
        service = (eps.metadata.labels or {}).get("kubernetes.io/service-name") or ""
        if not service.startswith(APP) or service.endswith("-canary"):
            return  # the database's and the canary's endpoints are not the switch's
        before = self._routed(service)
        if kind == "DELETED":
            self._slices.pop(eps.metadata.name, None)
        else:  # a Service may have several slices: the endpoints are their union
            self._slices[eps.metadata.name] = (service, tuple(sorted(
                e.target_ref.name for e in (eps.endpoints or [])
                if e.target_ref and e.conditions and e.conditions.ready)))
        now = self._routed(service)
        if now != before:
            self.events.emit("platform", "endpoints changed", front=service,
                             endpoints=sorted(now), slice=eps.metadata.name)

    def _routed(self, service: str) -> set[str]:
        return {name for svc, names in self._slices.values() if svc == service for name in names}


def _deployment(color: str) -> str:
    return f"{APP}-{color}"


def _check_color(color: str) -> None:
    if color not in COLORS:
        raise PlatformError(f"colour must be blue or green, got {color!r}")


def _ready(pod) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


def _info(pod, color: str) -> ReplicaInfo:
    restarts = sum(s.restart_count for s in pod.status.container_statuses or [])
    version = next((e.value for c in pod.spec.containers for e in c.env or []
                    if e.name == "APP_VERSION"), "") or ""
    return ReplicaInfo(pod.metadata.name, color, version,
                       f"http://{pod.status.pod_ip}:8080" if pod.status.pod_ip else "",
                       None, _ready(pod), bool(pod.metadata.deletion_timestamp), restarts)


def _api_reason(exc) -> str:
    try:
        message = json.loads(exc.body).get("message", "")
    except (TypeError, ValueError, AttributeError):
        message = ""
    return f"HTTP {exc.status} {message or exc.reason}"[:300]
