"""What the cluster providers share: the ``Cluster`` every process of a run needs, the run's
session on it, its options, and the namespaces of a run (created, swept, finished).

Only the pytest controller acquires a cluster; xdist workers get the session (a plain dict)
and build their own API clients from it. Every platform of a run lives in a namespace named
``<--namespace>-<run id>-<name>`` and labelled with the run id, so the end of the run (and the
sweep at the start of a later one) finds and deletes exactly what runs of that prefix created.
"""
from __future__ import annotations

import abc
import json
import os
import re
import socket
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from zerodrop.platforms.base import Platform, PlatformError, ReplicaInfo, Target
from zerodrop.platforms.provider import Provider, Run, Say, TargetError
from zerodrop.platforms.registry import add_once

REFERENCE_IMAGE = "zerodrop/payment-service:dev"
DEFAULT_POOL = tuple(range(30080, 30090))  # NodePorts the platform allocates Services from
SWEEP_AFTER_S = 6 * 3600  # a labelled namespace older than this is a leftover on any host
MANAGED_SELECTOR = "app.kubernetes.io/managed-by=zerodrop"
RUN_LABEL = "zerodrop.io/run"
OWNER = "zerodrop.io/owner"
PREFIX = re.compile(r"^[a-z0-9]([-a-z0-9]{0,18}[a-z0-9])?$")


class ProviderError(TargetError):
    """A cluster cannot be used; one line for a person, with the fix."""


@dataclass(frozen=True)
class Cluster:
    """A cluster the harness may change, as every process of a run needs it."""

    kind: str                        # the provider's name: "kind" | "kubeconfig"
    name: str                        # kind cluster name, or the context
    kubeconfig: str                  # a file path; its contents never go into a report
    context: str | None
    node_ports: dict[str, str]       # NodePort (as str, JSON-safe) -> "host:port" from here
    node_container: str | None = None  # kind: the node's docker container (signals, logs)
    created: bool = False            # this run created it (and deletes it unless kept)
    kept: bool = False

    def address(self, node_port: int) -> str:
        try:
            return self.node_ports[str(node_port)]
        except KeyError:
            raise ProviderError(f"NodePort {node_port} is not reachable from this machine; "
                                f"reachable: {', '.join(sorted(self.node_ports)) or 'none'}") from None

    def api_client(self):
        """A client of its own for this kubeconfig and context (never the global config)."""
        from kubernetes import config as kconfig
        try:
            return kconfig.new_client_from_config(config_file=self.kubeconfig,
                                                  context=self.context, persist_config=False)
        except (kconfig.ConfigException, OSError, ValueError, TypeError) as exc:
            raise ProviderError(f"bad kubeconfig {self.kubeconfig}: {first_line(exc)}") from None

    def redacted(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "context": self.context,
                "node_ports": dict(self.node_ports)}


@dataclass
class ClusterSession:
    """A run on a cluster: the cluster, the run id, the namespace prefix, and the suites'
    shared platform (stood up by the controller; workers get only its Target)."""

    cluster: Cluster
    run_id: str
    prefix: str = "zd"
    suite_target: dict | None = None
    in_worker: bool = False
    suite_platform: Platform | None = field(default=None, repr=False, compare=False)


class ClusterProvider(Provider):
    """A Kubernetes cluster as a target: a subclass acquires and releases the cluster and
    says how a replica is killed on it; the rest (options, namespaces, platforms) is here."""

    outside_commands = True  # kubectl, Helm, the seed's script: anything with the KUBECONFIG

    # ---- what a cluster provider adds ----------------------------------------------------------
    @abc.abstractmethod
    def acquire_cluster(self, options: Any, run: Run) -> Cluster:
        """The cluster ``options`` name; ProviderError (one line) when it cannot be used."""

    @abc.abstractmethod
    def release_cluster(self, cluster: Cluster, say: Say = print) -> None:
        """Give the cluster back (delete it if this run created it and it is not kept)."""

    @abc.abstractmethod
    def kill(self, platform: Any, replica: ReplicaInfo, sig: int) -> None:
        """Send ``sig`` to ``replica`` of ``platform`` as this cluster allows, and emit
        "replica killed" (or "replica kill failed") on the platform's timeline."""

    network_faults = False  # netem below works on this provider's clusters

    def network_faults_missing(self, options: Any) -> str:
        return (f"{self.name} clusters give no way into a pod's network namespace from here "
                f"(tc netem needs the node): use --target kind")

    def netem(self, platform: Any, replica: ReplicaInfo, qdisc: list[str] | None) -> None:
        """Put ``tc qdisc replace dev eth0 root <qdisc>`` (None: delete it) in ``replica``'s
        network namespace, where the cluster lets this machine reach it; PlatformError (one
        line) where it cannot."""
        raise PlatformError(f"{self.name} clusters give no way into a pod's network namespace "
                            f"from here (tc netem needs the node): use --target kind")

    def add_own_options(self, group: Any) -> None:
        """Options of this provider alone."""

    # ---- the Provider interface ------------------------------------------------------------------
    def add_options(self, group: Any) -> None:
        add_once(group, "--namespace", default="zd",
                 help="kind/kubeconfig: prefix of the namespaces this run creates and sweeps, "
                      "<prefix>-<run id>[-<n>] (default zd)")
        add_once(group, "--image", default=None,
                 help="kind/kubeconfig: the app's image in both colours (default: for the "
                      f"reference service {REFERENCE_IMAGE}, for another profile the images its "
                      "manifests name)")
        add_once(group, "--load-from", choices=("here", "cluster"), default="here",
                 help="kind/kubeconfig: where the zero-downtime load runs: here (Locust on this "
                      "machine, through the NodePorts; default) or cluster (Locust in a Job of "
                      "the platform's namespace, through the Service's cluster DNS name)")
        add_once(group, "--harness-image", default="zerodrop/harness:dev",
                 help="--load-from cluster: the load generator's image (default "
                      "zerodrop/harness:dev, infra/cluster/build-harness-image.sh)")
        add_once(group, "--manifests", type=Path, default=None,
                 help="kind/kubeconfig: the kustomize overlay to deploy (default: the profile's "
                      "[kubernetes] manifests; for the reference service "
                      "payment_service/manifests/overlays/kind)")
        add_once(group, "--router", choices=("gateway", "istio", "replicas"), default="gateway",
                 help="kind/kubeconfig: how a canary's traffic is split (switches always patch the "
                      "Service selector): gateway (a Gateway API HTTPRoute's weights, through "
                      "Traefik; default), istio (the seed's VirtualService; on kind without a data "
                      "plane, so weights are patched but do not move traffic), replicas (the share "
                      "of replicas behind a Service over both colours)")
        add_once(group, "--prometheus-url", default=None, metavar="URL",
                 help="kind/kubeconfig: the canary reads error rate and p99 from YOUR Prometheus "
                      "(e.g. the seed's http://prometheus:9090, reachable from here) instead of "
                      "one zerodrop runs in the platform's namespace")
        self.add_own_options(group)

    def check_options(self, options: Any, parallel: bool = False) -> None:
        from zerodrop.platforms.base import PlatformError
        from zerodrop.platforms.kubernetes.platform import layout_of
        manifests = manifests_of(options)
        if not (manifests / "kustomization.yaml").is_file():
            raise ValueError(f"--manifests {manifests}: no kustomization.yaml there")
        try:  # the overlay renders and holds the service the profile names: before anything starts
            layout_of(self.kube_config(options, "check"))
        except PlatformError as exc:
            raise ValueError(str(exc)) from None
        url = options.prometheus_url
        if url is not None and not re.match(r"^https?://[^/\s]+", url):
            raise ValueError(f"--prometheus-url {url!r}: give an http(s) URL, e.g. "
                             f"http://prometheus:9090")
        if not PREFIX.match(options.namespace):
            raise ValueError(f"--namespace {options.namespace!r}: use lowercase letters, digits "
                             f"and '-' (at most 20), e.g. zd or team-a")

    def acquire(self, options: Any, run: Run, say: Say = print) -> ClusterSession:
        cluster = self.acquire_cluster(options, run)
        try:
            swept = sweep(cluster, run.run_id, options.namespace)
        except BaseException:
            self.release_cluster(cluster, say=lambda _: None)
            raise
        what = "created" if cluster.created else "reusing"
        say(f"zerodrop: {what} {cluster.kind} cluster {cluster.name}; run {run.run_id}")
        if swept:
            say(f"zerodrop: swept {len(swept)} namespace(s) of earlier runs: {', '.join(swept)}")
        return ClusterSession(cluster, run.run_id, options.namespace)

    def session_to_worker(self, session: ClusterSession) -> dict:
        return {"cluster": asdict(session.cluster), "run_id": session.run_id,
                "prefix": session.prefix, "suite_target": session.suite_target}

    def session_from_worker(self, data: dict) -> ClusterSession:
        return ClusterSession(Cluster(**data["cluster"]), data["run_id"], data["prefix"],
                              data.get("suite_target"), in_worker=True)

    def target(self, session: ClusterSession, options: Any) -> Target:
        if session.suite_target is None:
            if session.in_worker:
                raise ProviderError(f"--target {self.name}: the suites' platform is stood up by "
                                    f"the pytest controller before the suites run; run them "
                                    f"from suites/")
            session.suite_platform = self.platform(session, options, "s",
                                                   faults=json.loads(options.local_faults))
            session.suite_target = asdict(session.suite_platform.target())
        return Target(**session.suite_target)

    def platform(self, session: ClusterSession, options: Any, name: str,
                 **stand_up: Any) -> Platform:
        from zerodrop.platforms.kubernetes.platform import stand_up as kube_stand_up
        # a canary is judged from the ledger as it grows: its load runs here, whatever
        # --load-from says (an in-cluster load hands its ledger over only when it stops)
        canary = {"router": options.router, "prometheus": options.prometheus_url or "cluster",
                  "load_from": "here"} if stand_up.pop("canary", False) else {}
        return kube_stand_up(session.cluster, self.kube_config(options, session.run_id, **canary),
                             self.namespace(session, name), provider=self, **stand_up)

    def release(self, session: ClusterSession, say: Say = print) -> None:
        if session.suite_platform is not None:
            session.suite_platform.teardown()
            session.suite_platform = None
        finish(session.cluster, session.run_id, session.prefix, say=say)
        self.release_cluster(session.cluster, say)

    def environment(self, session: ClusterSession, options: Any) -> dict[str, str]:
        c = session.cluster  # names only: never the kubeconfig's contents
        return {"zerodrop.cluster": f"{c.kind} {c.name} (context {c.context})",
                "zerodrop.run": session.run_id, "load.from": options.load_from}

    # ---- naming ---------------------------------------------------------------------------------
    @staticmethod
    def kube_config(options: Any, run_id: str, **overrides: Any):
        """The KubeConfig of every platform of this run (``overrides`` win: a canary's)."""
        from zerodrop.platforms.kubernetes.platform import KubeConfig
        fields = dict(replicas=options.replicas, token=options.token,
                      ready_timeout=options.ready_timeout, image=image_of(options),
                      overlay=manifests_of(options), run_id=run_id,
                      load_from=options.load_from, harness_image=options.harness_image,
                      profile=getattr(options, "service_profile", None))
        return KubeConfig(**{**fields, **overrides})

    @staticmethod
    def namespace(session: ClusterSession, name: str) -> str:
        from zerodrop.platforms.kubernetes.platform import new_namespace
        return new_namespace(session.run_id, name, session.prefix)


def _profile(options: Any):
    from zerodrop.profiles import profile as profiles
    found = getattr(options, "service_profile", None)
    return found if found is not None else profiles.load()


def manifests_of(options: Any) -> Path:
    """--manifests as given, else the profile's [kubernetes] manifests, else (the reference
    service only) the bundled overlay; ValueError in one line when a profile names none."""
    if options.manifests is not None:
        return Path(options.manifests)
    profile = _profile(options)
    if profile.kube_manifests:
        return Path(profile.kube_manifests)
    if profile.is_default:
        from zerodrop.platforms.kubernetes.render import DEFAULT_OVERLAY
        return DEFAULT_OVERLAY
    raise ValueError(f"{profile.source}: {profile.name} has no [kubernetes] manifests and no "
                     f"--manifests was given: name the kustomize overlay of its Deployments and Service")


def image_of(options: Any) -> str | None:
    """--image as given, else the reference image for the reference service, else None (the
    images the manifests name)."""
    if options.image:
        return options.image
    return REFERENCE_IMAGE if _profile(options).is_default else None


# ---- the namespaces of runs ---------------------------------------------------------------------

def cluster_call(cluster: Cluster, api: Any, what: str, fn: Callable, *args, **kwargs):
    """An API call made for the run itself (not a platform's): ProviderError in one line,
    the API server's address included, when it fails or nobody answers."""
    from kubernetes.client.rest import ApiException
    from urllib3.exceptions import HTTPError
    try:
        return fn(*args, _request_timeout=(10, 30), **kwargs)
    except ApiException as exc:
        from zerodrop.platforms.kubernetes.api import api_reason
        raise ProviderError(f"{what} on {cluster.kind} cluster {cluster.name}: "
                            f"{api_reason(exc)}") from None
    except (HTTPError, OSError) as exc:
        host = getattr(getattr(api, "configuration", None), "host", "?")
        raise ProviderError(f"cannot reach the API server of {cluster.kind} cluster "
                            f"{cluster.name} at {host} ({unreachable(exc)}); is the cluster up "
                            f"and the kubeconfig current?") from None


def unreachable(exc: BaseException) -> str:
    text = str(exc)
    for marker in ("Connection refused", "timed out", "Name or service not known",
                   "No route to host", "certificate verify failed", "Connection reset"):
        if marker in text:
            return marker.lower()
    return type(exc).__name__


def _managed(cluster: Cluster, api: Any) -> tuple[Any, list]:
    from kubernetes import client
    core = client.CoreV1Api(api)
    items = cluster_call(cluster, api, "list namespaces", core.list_namespace,
                         label_selector=MANAGED_SELECTOR).items
    return core, items


def sweepable(namespaces: list, run_id: str, prefix: str, now: float, host: str,
              alive: Callable[[int], bool]) -> list[str]:
    """Which labelled namespaces of ``prefix`` belong to runs that are over: their owner
    process on this host is gone, or they are older than SWEEP_AFTER_S. Another live run's,
    this run's, another prefix's and those already terminating are left alone."""
    over = []
    for ns in namespaces:
        labels = ns.metadata.labels or {}
        if (not ns.metadata.name.startswith(f"{prefix}-") or labels.get(RUN_LABEL) == run_id
                or (ns.status and ns.status.phase == "Terminating")):
            continue
        owner = (ns.metadata.annotations or {}).get(OWNER, "")
        owner_host, _, pid = owner.rpartition(":")
        old = now - ns.metadata.creation_timestamp.timestamp() > SWEEP_AFTER_S
        dead = owner_host == host and pid.isdigit() and not alive(int(pid))
        if old or dead:
            over.append(ns.metadata.name)
    return over


def sweep(cluster: Cluster, run_id: str, prefix: str) -> list[str]:
    """Delete the namespaces of earlier runs of ``prefix`` that are over; their names. The
    first API call of a run: an unreachable cluster is a ProviderError here, in one line."""
    from kubernetes.client.rest import ApiException
    from zerodrop.platforms.local.replica import pid_alive
    api = cluster.api_client()
    try:
        core, items = _managed(cluster, api)
        swept = []
        for name in sweepable(items, run_id, prefix, time.time(), socket.gethostname(),
                              pid_alive):
            try:
                core.delete_namespace(name, _request_timeout=30)
                swept.append(name)
            except ApiException:
                pass
        return swept
    finally:
        api.close()


def finish(cluster: Cluster, run_id: str, prefix: str = "zd", timeout: float = 120.0,
           say: Say = print) -> None:
    """Delete every namespace of this run (labelled with it, named with ``prefix``) and wait
    until they are gone."""
    try:
        api = cluster.api_client()
    except ProviderError as exc:
        say(f"zerodrop: could not clean up namespaces of run {run_id}: {exc}")
        return
    try:
        _delete_run(cluster, api, run_id, prefix, timeout, say)
    except Exception as exc:  # the cluster may be gone already (ProviderError included)
        say(f"zerodrop: could not clean up namespaces of run {run_id}: {type(exc).__name__}")
    finally:
        api.close()


def _delete_run(cluster: Cluster, api: Any, run_id: str, prefix: str, timeout: float,
                say: Say) -> None:
    core, items = _managed(cluster, api)
    mine = [n.metadata.name for n in items if (n.metadata.labels or {}).get(RUN_LABEL) == run_id
            and n.metadata.name.startswith(f"{prefix}-")]
    for name in mine:
        try:
            core.delete_namespace(name, _request_timeout=30)
        except Exception:
            pass
    deadline = time.monotonic() + timeout
    while mine and time.monotonic() < deadline:
        left = {n.metadata.name for n in _managed(cluster, api)[1]}
        mine = [n for n in mine if n in left]
        time.sleep(1)
    if mine:
        say(f"zerodrop: namespaces still terminating after {timeout:g} s: {', '.join(mine)}")


# ---- small helpers ---------------------------------------------------------------------------

def run_cmd(args: list[str], env: dict | None, timeout: float) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(args, 124, "", f"timed out after {timeout:g} s")
    except OSError as exc:
        return subprocess.CompletedProcess(args, 127, "", str(exc))


def last_line(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "no output"


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def gopath_bin(name: str) -> str | None:
    for root in (os.environ.get("GOPATH", ""), str(Path.home() / "go")):
        if root and os.access(Path(root) / "bin" / name, os.X_OK):
            return str(Path(root) / "bin" / name)
    return None
