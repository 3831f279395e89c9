"""``--target kubeconfig``: an existing cluster (staging) through a kubeconfig file.

Never created or deleted. Any change is refused unless the context is allow-listed
(``--allow-context``): a harness must never be one typo away from switching production. Load
reaches the Services at ``--node-address``. A replica is "killed" by deleting its pod (at once
for SIGKILL): an existing cluster gives no way to signal a container from outside.
"""
from __future__ import annotations

import os
import re
import signal as signals
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from zerodrop.platforms.base import Platform, ReplicaInfo, Target
from zerodrop.platforms.kubernetes.providers.base import (DEFAULT_POOL, Cluster, ClusterProvider,
                                                          ClusterSession, ProviderError, first_line)
from zerodrop.platforms.provider import Run, Say
from zerodrop.records.events import EventName, Source

NAMESPACE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


@dataclass(frozen=True)
class ExistingOptions:
    kubeconfig: str = ""
    context: str | None = None
    allow_contexts: tuple[str, ...] = ()
    node_address: str | None = None  # where NodePorts answer from this machine
    pool: tuple[int, ...] = DEFAULT_POOL
    nightly: bool = False  # a nightly run: refused in its own words (read-only runs need it too)


@dataclass
class AttachedSession(ClusterSession):
    """A run attached to an existing Service (``--nightly-namespace``): read-only unless
    ``allow_deploy``; nothing of the run's is swept, created or deleted then."""

    attached: dict = field(default_factory=dict)  # namespace, service, allow_deploy, node_address


class KubeconfigProvider(ClusterProvider):
    name = "kubeconfig"
    summary = "an existing cluster, with --kubeconfig and --allow-context"

    def add_own_options(self, group: Any) -> None:
        group.addoption("--kubeconfig",
                        default=os.environ.get("KUBECONFIG", "").split(os.pathsep)[0],
                        help="--target kubeconfig: the cluster's kubeconfig file [env KUBECONFIG]")
        group.addoption("--context", default=None,
                        help="--target kubeconfig: the context (default: the file's current one)")
        group.addoption("--allow-context", action="append", default=[], metavar="CONTEXT",
                        help="--target kubeconfig: a context zerodrop may change (repeatable); "
                             "any other is refused")
        group.addoption("--node-address", default=None,
                        help="--target kubeconfig: the host where this machine reaches the "
                             "cluster's NodePorts 30080-30089")
        group.addoption("--nightly-namespace", default=None, metavar="NS",
                        help="--target kubeconfig: attach READ-ONLY to the Service that already "
                             "runs in NS (a nightly run against staging): the suites and the "
                             "steady-load probe reach it at --node-address and its NodePort; "
                             "nothing is created, patched, scaled or deleted")
        group.addoption("--nightly-service", default=None, metavar="NAME",
                        help="--nightly-namespace: the Service to attach to (default: the "
                             "profile's, payment-service)")
        group.addoption("--nightly-allow-deploy", action="store_true",
                        help="--target kubeconfig: a nightly run may change the cluster (sweep, "
                             "and stand up platforms of its own for proofs); without it a nightly "
                             "run is read-only")

    def check_options(self, options: Any, parallel: bool = False) -> None:
        ns = options.nightly_namespace
        if ns is None or options.nightly_allow_deploy:  # read-only deploys nothing: no overlay
            super().check_options(options, parallel)
        if ns is not None and not NAMESPACE.match(ns):
            raise ValueError(f"--nightly-namespace {ns!r}: not a namespace name (lowercase "
                             f"letters, digits and '-')")
        if options.nightly_service is not None and ns is None:
            raise ValueError("--nightly-service needs --nightly-namespace NS: the namespace it "
                             "runs in")
        if getattr(options, "zd_nightly", False) and ns is None and not options.nightly_allow_deploy:
            raise ValueError("a nightly run on --target kubeconfig is read-only: name the "
                             "existing Service with --nightly-namespace NS [--nightly-service "
                             "NAME], or pass --nightly-allow-deploy to let it deploy its own")

    def describe(self, options: Any) -> str:
        where = f"{options.kubeconfig} context {options.context or '(current)'}"
        if options.nightly_namespace is not None:
            mode = "" if options.nightly_allow_deploy else "read-only, "
            where += (f" ({mode}attached to {options.nightly_namespace}/"
                      f"{_service_name(options)})")
        return where

    def acquire_cluster(self, options: Any, run: Run) -> Cluster:
        return acquire_existing(ExistingOptions(
            kubeconfig=options.kubeconfig, context=options.context,
            allow_contexts=tuple(options.allow_context), node_address=options.node_address,
            nightly=bool(getattr(options, "zd_nightly", False)
                         or options.nightly_namespace is not None)))

    # ---- attached to an existing Service (a nightly run) -----------------------------------------
    def acquire(self, options: Any, run: Run, say: Say = print) -> ClusterSession:
        if options.nightly_namespace is None:
            return super().acquire(options, run, say)
        attached = {"namespace": options.nightly_namespace, "service": _service_name(options),
                    "allow_deploy": bool(options.nightly_allow_deploy),
                    "node_address": options.node_address}
        if attached["allow_deploy"]:  # allowed to change things: the ordinary sweep too
            base = super().acquire(options, run, say)
            return AttachedSession(base.cluster, base.run_id, base.prefix, attached=attached)
        cluster = self.acquire_cluster(options, run)  # the allow-list: before any API call
        say(f"zerodrop: attached read-only to {attached['namespace']}/{attached['service']} on "
            f"context {cluster.context}; run {run.run_id} changes nothing")
        return AttachedSession(cluster, run.run_id, options.namespace, attached=attached)

    def session_to_worker(self, session: ClusterSession) -> dict:
        data = super().session_to_worker(session)
        if isinstance(session, AttachedSession):
            data["attached"] = dict(session.attached)
        return data

    def session_from_worker(self, data: dict) -> ClusterSession:
        base = super().session_from_worker(data)
        if "attached" not in data:
            return base
        return AttachedSession(base.cluster, base.run_id, base.prefix, base.suite_target,
                               in_worker=True, attached=data["attached"])

    def target(self, session: ClusterSession, options: Any) -> Target:
        if not isinstance(session, AttachedSession):
            return super().target(session, options)
        if session.suite_target is None:
            platform = self.attached_platform(session, options)
            try:
                session.suite_target = asdict(platform.target())
            finally:
                platform.teardown()
        return Target(**session.suite_target)

    def attached_platform(self, session: AttachedSession, options: Any):
        """The existing Service as an ``AttachedPlatform`` (reads only, unless allowed)."""
        from zerodrop.platforms.kubernetes.attach import WriteGuard, attach
        a = session.attached
        host = a.get("node_address") or options.node_address
        return attach(session.cluster, a["namespace"], a["service"], token=options.token,
                      guard=WriteGuard(allow=bool(a.get("allow_deploy"))),
                      color_label=_profile_of(options).color_label,
                      address=lambda port: f"{host}:{port}")

    def platform(self, session: ClusterSession, options: Any, name: str,
                 **stand_up: Any) -> Platform:
        if isinstance(session, AttachedSession) and not session.attached.get("allow_deploy"):
            from zerodrop.platforms.kubernetes.attach import WriteGuard
            WriteGuard(allow=False).check(f"stand up a platform of its own for {name}")
        return super().platform(session, options, name, **stand_up)

    def release(self, session: ClusterSession, say: Say = print) -> None:
        if isinstance(session, AttachedSession) and not session.attached.get("allow_deploy"):
            return  # read-only: nothing was created, so nothing is deleted (or even listed)
        super().release(session, say)

    def environment(self, session: ClusterSession, options: Any) -> dict[str, str]:
        env = super().environment(session, options)
        if isinstance(session, AttachedSession):
            a = session.attached
            env["zerodrop.attached"] = (f"{a['namespace']}/{a['service']} "
                                        f"({'deploys allowed' if a.get('allow_deploy') else 'read-only'})")
        return env

    def release_cluster(self, cluster: Cluster, say: Say = print) -> None:
        pass  # never ours to delete

    def kill(self, platform: Any, replica: ReplicaInfo, sig: int) -> None:
        platform.events.emit(Source.FAULT, EventName.REPLICA_KILLED, color=replica.color,
                             replica=replica.name, signal=signals.Signals(sig).name,
                             via="pod delete")
        platform.api.call(f"delete pod {replica.name}", platform.core.delete_namespaced_pod,
                          replica.name, platform.namespace,
                          grace_period_seconds=0 if sig == signals.SIGKILL else None)


def acquire_existing(opts: ExistingOptions) -> Cluster:
    """An existing cluster through a kubeconfig; refuses unless its context is allow-listed."""
    from kubernetes import config as kconfig
    path = opts.kubeconfig or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    if not path:
        raise ProviderError("--target kubeconfig needs --kubeconfig FILE (or KUBECONFIG)")
    if not Path(path).is_file():
        raise ProviderError(f"--kubeconfig {path}: no such file")
    try:
        contexts, current = kconfig.list_kube_config_contexts(config_file=path)
    except (kconfig.ConfigException, OSError, ValueError, TypeError, AttributeError) as exc:
        raise ProviderError(f"bad kubeconfig {path}: {first_line(exc)}") from None
    names = [c["name"] for c in contexts or []]
    context = opts.context or (current or {}).get("name")
    if context not in names:
        raise ProviderError(f"context {context!r} is not in {path}; known: "
                            f"{', '.join(sorted(names)) or 'none'}")
    if context not in opts.allow_contexts and opts.nightly:
        raise ProviderError(f"refusing a nightly run against context {context!r}: it is not "
                            f"allow-listed (a read-only run needs it too); pass --allow-context "
                            f"{context} if this cluster is meant for it")
    if context not in opts.allow_contexts:
        raise ProviderError(f"refusing to change context {context!r}: a switch there is real; "
                            f"pass --allow-context {context} if this cluster is meant for it")
    if not opts.node_address:
        raise ProviderError("--target kubeconfig needs --node-address HOST: the address where "
                            "this machine reaches the cluster's NodePorts (e.g. 127.0.0.1 for "
                            "a kind cluster that publishes them under the same numbers)")
    ports = {str(p): f"{opts.node_address}:{p}" for p in opts.pool}
    return Cluster("kubeconfig", context, path, context, ports)


def _profile_of(options: Any):
    from zerodrop.profiles import profile as profiles
    found = getattr(options, "service_profile", None)
    return found if found is not None else profiles.load()


def _service_name(options: Any) -> str:
    """--nightly-service, else the Service the profile names."""
    if options.nightly_service:
        return options.nightly_service
    p = _profile_of(options)
    return p.kube_service or p.name


PROVIDER = KubeconfigProvider()
