"""``--target kubeconfig``: an existing cluster (staging) through a kubeconfig file.

Never created or deleted. Any change is refused unless the context is allow-listed
(``--allow-context``): a harness must never be one typo away from switching production. Load
reaches the Services at ``--node-address``. A replica is "killed" by deleting its pod (at once
for SIGKILL): an existing cluster gives no way to signal a container from outside.
"""
from __future__ import annotations

import os
import signal as signals
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zerodrop.platforms.base import ReplicaInfo
from zerodrop.platforms.kubernetes.providers.base import DEFAULT_POOL, Cluster, ClusterProvider, ProviderError, first_line
from zerodrop.platforms.provider import Run, Say
from zerodrop.records.events import EventName, Source


@dataclass(frozen=True)
class ExistingOptions:
    kubeconfig: str = ""
    context: str | None = None
    allow_contexts: tuple[str, ...] = ()
    node_address: str | None = None  # where NodePorts answer from this machine
    pool: tuple[int, ...] = DEFAULT_POOL


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

    def describe(self, options: Any) -> str:
        return f"{options.kubeconfig} context {options.context or '(current)'}"

    def acquire_cluster(self, options: Any, run: Run) -> Cluster:
        return acquire_existing(ExistingOptions(
            kubeconfig=options.kubeconfig, context=options.context,
            allow_contexts=tuple(options.allow_context), node_address=options.node_address))

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
    if context not in opts.allow_contexts:
        raise ProviderError(f"refusing to change context {context!r}: a switch there is real; "
                            f"pass --allow-context {context} if this cluster is meant for it")
    if not opts.node_address:
        raise ProviderError("--target kubeconfig needs --node-address HOST: the address where "
                            "this machine reaches the cluster's NodePorts (e.g. 127.0.0.1 for "
                            "a kind cluster that publishes them under the same numbers)")
    ports = {str(p): f"{opts.node_address}:{p}" for p in opts.pool}
    return Cluster("kubeconfig", context, path, context, ports)


PROVIDER = KubeconfigProvider()
