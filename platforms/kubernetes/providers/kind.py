"""``--target kind``: a kind cluster on this machine.

Reused when one of that name exists (idempotent), created otherwise from a config that
publishes the NodePort pool on 127.0.0.1 only; deleted at the end only if this run created it
and ``--keep-cluster`` was not given. Its own kubeconfig file (never ~/.kube/config). The
payment-service image is loaded into the nodes. A replica is killed with a real signal, sent
from the node outside the pod's PID namespace (``ctr task kill``).
"""
from __future__ import annotations

import functools
import json
import os
import re
import shutil
import signal as signals
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zerodrop.platforms.base import PlatformError, ReplicaInfo
from zerodrop.platforms.kubernetes.providers.base import (DEFAULT_POOL, Cluster, ClusterProvider, ProviderError, gopath_bin,
                                                          last_line, run_cmd)
from zerodrop.platforms.provider import Run, Say
from zerodrop.records.events import EventName, Source

CLUSTER_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$")
POSTGRES_IMAGE = "zerodrop/postgres:15"


@dataclass(frozen=True)
class KindOptions:
    name: str = "zerodrop"
    keep: bool = False
    node_image: str | None = None    # e.g. zerodrop/kind-node:v1.34.12 (offline build)
    config: Path | None = None       # a kind config; default: generated (one node, the pool)
    images: tuple[str, ...] = ("zerodrop/payment-service:dev", POSTGRES_IMAGE)
    kubeconfig_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))
    pool: tuple[int, ...] = DEFAULT_POOL
    create_timeout: str = "180s"


class KindProvider(ClusterProvider):
    name = "kind"
    summary = "a kind cluster on this machine, reused or created"

    def add_own_options(self, group: Any) -> None:
        group.addoption("--kind-cluster", default="zerodrop",
                        help="--target kind: the cluster name; reused when it exists, else "
                             "created (default zerodrop)")
        group.addoption("--keep-cluster", action="store_true",
                        help="--target kind: keep a cluster this run created (reused clusters "
                             "are always kept)")
        group.addoption("--kind-node-image", default=None,
                        help="--target kind: node image for a new cluster (default: kind's own)")
        group.addoption("--kind-config", type=Path, default=None,
                        help="--target kind: kind config for a new cluster (default: one node "
                             "that publishes NodePorts 30080-30089 on 127.0.0.1)")

    def check_options(self, options: Any, parallel: bool = False) -> None:
        if options.kind_config is not None and not options.kind_config.is_file():
            raise ValueError(f"--kind-config {options.kind_config}: no such file")
        super().check_options(options, parallel)

    def describe(self, options: Any) -> str:
        return f"kind cluster {options.kind_cluster}, {options.replicas} replicas/colour"

    def acquire_cluster(self, options: Any, run: Run) -> Cluster:
        from zerodrop.platforms.kubernetes.platform import layout_of
        from zerodrop.platforms.kubernetes.render import images_of, render
        harness = (options.harness_image,) if options.load_from == "cluster" else ()
        config = self.kube_config(options, run.run_id)
        wanted = images_of(render(config.overlay), layout_of(config), config.image)
        return acquire_kind(KindOptions(
            name=options.kind_cluster, keep=options.keep_cluster,
            node_image=options.kind_node_image, config=options.kind_config,
            images=tuple(wanted) + harness, kubeconfig_dir=run.workdir))

    def release_cluster(self, cluster: Cluster, say: Say = print) -> None:
        done = release_kind(cluster)
        if done:
            say(f"zerodrop: {done}")

    @property
    def network_faults(self) -> bool:
        return not netem_missing()

    def network_faults_missing(self, options: Any) -> str:
        missing = netem_missing()
        return f"{missing}: network delay or loss cannot be injected here" if missing else ""

    def netem(self, platform: Any, replica: ReplicaInfo, qdisc: list[str] | None) -> None:
        missing = netem_missing() if qdisc else ""
        if missing:
            raise PlatformError(f"network delay or loss cannot be injected: {missing}")
        try:
            netem_container(platform.cluster, _container_id(platform, replica), qdisc)
        except ProviderError as exc:
            raise PlatformError(str(exc)) from None

    def kill(self, platform: Any, replica: ReplicaInfo, sig: int) -> None:
        name = signals.Signals(sig).name
        container_id = _container_id(platform, replica)
        # stamped as it is sent: `docker exec` returns tens of ms after the signal lands
        platform.events.emit(Source.FAULT, EventName.REPLICA_KILLED, color=replica.color,
                             replica=replica.name, signal=name)
        try:
            signal_container(platform.cluster, container_id, name)
        except ProviderError as exc:
            platform.events.emit(Source.FAULT, EventName.REPLICA_KILL_FAILED,
                                 color=replica.color, replica=replica.name, error=str(exc))
            raise PlatformError(str(exc)) from None


@functools.lru_cache(maxsize=1)
def netem_missing() -> str:
    """Why this machine's kernel cannot run tc netem (kind's nodes share it), or "" when it
    can or cannot be told. Probed in a network namespace of its own: nothing here changes."""
    import subprocess
    tc, unshare = shutil.which("tc"), shutil.which("unshare")
    if not tc or not unshare:
        return ""
    try:
        done = subprocess.run([unshare, "-n", tc, "qdisc", "add", "dev", "lo", "root", "netem",
                               "delay", "1ms"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    if done.returncode != 0 and "qdisc kind is unknown" in done.stderr:
        return ("this machine's kernel has no netem qdisc (CONFIG_NET_SCH_NETEM is not set), "
                "and kind's nodes share that kernel")
    return ""


def netem_container(cluster: Cluster, container_id: str, qdisc: list[str] | None) -> None:
    """tc in a container's network namespace, entered from the node through its task's PID
    (the pod's eth0 is its own: only this replica's packets are delayed or lost)."""
    if not cluster.node_container:
        raise ProviderError(f"cannot reach pod network namespaces on a {cluster.kind} cluster")
    cid = container_id.split("://", 1)[-1]
    docker = docker_binary()
    listed = run_cmd([docker, "exec", cluster.node_container, "ctr", "-n", "k8s.io", "task",
                      "ls"], None, timeout=30)
    pid = next((line.split()[1] for line in listed.stdout.splitlines()
                if line.startswith(cid)), None)
    if listed.returncode != 0 or pid is None:
        raise ProviderError(f"container {cid[:12]} has no running task on the node")
    action = ["replace", "dev", "eth0", "root", *qdisc] if qdisc else ["del", "dev", "eth0", "root"]
    done = run_cmd([docker, "exec", cluster.node_container, "nsenter", "-t", pid, "-n", "tc",
                    "qdisc", *action], None, timeout=30)
    if done.returncode != 0 and qdisc:  # deleting what is not there is fine
        raise ProviderError(f"tc netem in container {cid[:12]}: {last_line(done.stderr)}")


def _container_id(platform: Any, replica: ReplicaInfo) -> str:
    """The ID of ``replica``'s app container, read from its pod's status; PlatformError when
    it has no running one."""
    container = platform.layout.container
    pod = platform.api.call(f"read pod {replica.name}", platform.core.read_namespaced_pod,
                            replica.name, platform.namespace)
    status = next((s for s in pod.status.container_statuses or [] if s.name == container), None)
    if status is None or not status.container_id:
        raise PlatformError(f"{replica.name} has no running {container} container")
    return status.container_id


def kind_binary() -> str:
    found = shutil.which("kind") or gopath_bin("kind")
    if not found:
        raise ProviderError("kind is not installed: go install sigs.k8s.io/kind@v0.30.0 "
                            "(or see https://kind.sigs.k8s.io/docs/user/quick-start/)")
    return found


def docker_binary() -> str:
    # Debian's client first: on some machines /usr/local/bin/docker is an unrelated newer one
    for candidate in ("/usr/bin/docker", shutil.which("docker")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise ProviderError("docker is not installed (kind runs its nodes as Docker containers)")


def _env(docker: str) -> dict:
    return {**os.environ, "PATH": f"{Path(docker).parent}:{os.environ.get('PATH', '')}"}


def acquire_kind(opts: KindOptions) -> Cluster:
    """The named kind cluster, reused or created, with the images loaded."""
    if not CLUSTER_NAME.match(opts.name):
        raise ProviderError(f"--kind-cluster {opts.name!r}: use lowercase letters, digits and "
                            f"'-' (at most 32)")
    kind, docker = kind_binary(), docker_binary()
    env = _env(docker)
    _check_docker(docker, env, opts.images)
    kubeconfig = Path(opts.kubeconfig_dir) / f"zerodrop-kind-{opts.name}.kubeconfig"
    created = _create_or_reuse(kind, env, opts, kubeconfig)
    os.chmod(kubeconfig, 0o600)
    node = f"{opts.name}-control-plane"
    try:
        ports = _published_ports(docker, node, env, opts.pool)
        if not ports:
            raise ProviderError(f"kind cluster {opts.name} publishes none of the NodePorts "
                                f"{opts.pool[0]}-{opts.pool[-1]} on this machine; recreate it with "
                                f"extraPortMappings for them (see infra/cluster/kind-config.yaml)")
        _load_images(kind, docker, node, env, opts)
    except BaseException:
        if created and not opts.keep:
            run_cmd([kind, "delete", "cluster", "--name", opts.name], env, timeout=300)
        raise
    return Cluster("kind", opts.name, str(kubeconfig), f"kind-{opts.name}", ports, node,
                   created=created, kept=opts.keep)


def _check_docker(docker: str, env: dict, images: tuple[str, ...]) -> None:
    info = run_cmd([docker, "version", "--format", "{{.Server.Version}}"], env, timeout=30)
    if info.returncode != 0:
        raise ProviderError(f"Docker is not running ({last_line(info.stderr)}); start it "
                            f"(infra/cluster/start-docker.sh on a machine without systemd)")
    for image in images:
        if run_cmd([docker, "image", "inspect", image], env, timeout=30).returncode != 0:
            raise ProviderError(f"image {image} (of the manifests, or --image) is not built on "
                                f"this machine; build it first (the bundled ones: "
                                f"infra/cluster/up.sh builds them)")


def _create_or_reuse(kind: str, env: dict, opts: KindOptions, kubeconfig: Path) -> bool:
    """Create the cluster (True) or write the existing one's kubeconfig (False)."""
    existing = run_cmd([kind, "get", "clusters"], env, timeout=30).stdout.split()
    if opts.name in existing:
        got = run_cmd([kind, "get", "kubeconfig", "--name", opts.name], env, timeout=30)
        if got.returncode != 0:
            raise ProviderError(f"kind get kubeconfig --name {opts.name}: "
                                f"{last_line(got.stderr)}")
        kubeconfig.write_text(got.stdout)
        return False
    config = opts.config or _write_kind_config(opts)
    args = [kind, "create", "cluster", "--name", opts.name, "--config", str(config),
            "--kubeconfig", str(kubeconfig), "--wait", opts.create_timeout]
    if opts.node_image:
        args += ["--image", opts.node_image]
    made = run_cmd(args, env, timeout=900)
    if made.returncode != 0:
        run_cmd([kind, "delete", "cluster", "--name", opts.name], env, timeout=300)
        raise ProviderError(f"kind create cluster {opts.name} failed: {last_line(made.stderr)}")
    return True


def _load_images(kind: str, docker: str, node: str, env: dict, opts: KindOptions) -> None:
    for image in opts.images:
        if _node_has(docker, node, image, env):
            continue  # kind would load it again: its own check needs crictl in the node
        loaded = run_cmd([kind, "load", "docker-image", image, "--name", opts.name], env,
                         timeout=600)
        if loaded.returncode != 0:
            raise ProviderError(f"kind could not load {image} into {opts.name}: "
                                f"{last_line(loaded.stderr)}")


def release_kind(cluster: Cluster) -> str | None:
    """Delete the cluster if this run created it and it is not kept; returns what was done."""
    Path(cluster.kubeconfig).unlink(missing_ok=True)
    if not cluster.created or cluster.kept:
        return None
    run_cmd([kind_binary(), "delete", "cluster", "--name", cluster.name],
            _env(docker_binary()), timeout=300)
    return f"deleted kind cluster {cluster.name}"


def signal_container(cluster: Cluster, container_id: str, signame: str) -> None:
    """Send a real signal to a container from outside its PID namespace: a pod's PID 1
    ignores SIGKILL sent from inside, and a pod delete is a graceful stop, not a kill."""
    if not cluster.node_container:
        raise ProviderError(f"cannot signal containers on a {cluster.kind} cluster")
    cid = container_id.split("://", 1)[-1]
    done = run_cmd([docker_binary(), "exec", cluster.node_container, "ctr", "-n", "k8s.io",
                    "task", "kill", "-s", signame, cid], None, timeout=30)
    if done.returncode != 0:
        raise ProviderError(f"could not send {signame} to container {cid[:12]}: "
                            f"{last_line(done.stderr)}")


def _node_has(docker: str, node: str, image: str, env: dict) -> bool:
    """Whether the node's containerd already holds ``image`` with the same config digest as
    the local Docker image (the image ID), so that loading it again can be skipped."""
    local = run_cmd([docker, "image", "inspect", "-f", "{{.Id}}", image], env, timeout=30)
    first = image.split("/", 1)[0]
    ref = image if "/" in image and ("." in first or ":" in first or first == "localhost") \
        else f"docker.io/{image if '/' in image else 'library/' + image}"
    listed = run_cmd([docker, "exec", node, "ctr", "-n", "k8s.io", "images", "ls",
                      f"name=={ref}"], env, timeout=30)
    rows = listed.stdout.splitlines()[1:]
    if local.returncode != 0 or listed.returncode != 0 or not rows:
        return False
    manifest = run_cmd([docker, "exec", node, "ctr", "-n", "k8s.io", "content", "get",
                        rows[0].split()[2]], env, timeout=30)
    try:
        config = json.loads(manifest.stdout)["config"]["digest"]
    except (ValueError, KeyError, TypeError):
        return False
    return config == local.stdout.strip()


def _write_kind_config(opts: KindOptions) -> Path:
    lines = ["kind: Cluster", "apiVersion: kind.x-k8s.io/v1alpha4", "networking:",
             "  apiServerAddress: 127.0.0.1", "nodes:", "  - role: control-plane",
             "    extraPortMappings:"]
    lines += [f"      - {{containerPort: {p}, hostPort: 0, listenAddress: 127.0.0.1}}"
              for p in opts.pool]
    path = Path(opts.kubeconfig_dir) / f"zerodrop-kind-{opts.name}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def _published_ports(docker: str, node: str, env: dict, pool: tuple[int, ...]) -> dict[str, str]:
    out = run_cmd([docker, "port", node], env, timeout=30)
    if out.returncode != 0:
        raise ProviderError(f"docker port {node}: {last_line(out.stderr)}")
    ports: dict[str, str] = {}
    for line in out.stdout.splitlines():  # "30080/tcp -> 127.0.0.1:30080"
        m = re.match(r"^(\d+)/tcp -> (127\.0\.0\.1|\[::1\]):(\d+)$", line.strip())
        if m and int(m.group(1)) in pool:
            ports[m.group(1)] = f"127.0.0.1:{m.group(3)}"
    return ports


PROVIDER = KindProvider()
