"""Cluster providers: where a Kubernetes platform runs, behind one shape (``Cluster``).

- ``kind``: a kind cluster on this machine. Reused when one of that name exists (idempotent),
  created otherwise from a config that publishes the NodePort pool on 127.0.0.1 only; deleted
  at the end only if this run created it and ``--keep-cluster`` was not given. Its own
  kubeconfig file (never ~/.kube/config). The payment-service image is loaded into the nodes.
- ``kubeconfig``: an existing cluster (staging). Never created or deleted. Any change is
  refused unless the context is allow-listed (``--allow-context``): a harness must never be one
  typo away from switching production.

Only the pytest controller acquires a cluster; xdist workers get the resolved ``Cluster`` (a
plain dataclass) and build their own API clients from it. Load reaches Services only through
addresses on this machine: kind's port mappings on 127.0.0.1, or ``--node-address``.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_POOL = tuple(range(30080, 30090))  # NodePorts the platform allocates Services from
CLUSTER_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$")


class ProviderError(Exception):
    """A cluster cannot be used; one line for a person, with the fix."""


@dataclass(frozen=True)
class Cluster:
    """A cluster the harness may change, as every process of a run needs it."""

    kind: str                        # "kind" | "kubeconfig"
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
            raise ProviderError(f"bad kubeconfig {self.kubeconfig}: {_first_line(exc)}") from None

    def redacted(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "context": self.context,
                "node_ports": dict(self.node_ports)}


# ---- kind -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class KindOptions:
    name: str = "zerodrop"
    keep: bool = False
    node_image: str | None = None    # e.g. zerodrop/kind-node:v1.34.12 (offline build)
    config: Path | None = None       # a kind config; default: generated (one node, the pool)
    images: tuple[str, ...] = ("zerodrop/payment-service:dev", "zerodrop/postgres:15")
    kubeconfig_dir: Path = field(default_factory=lambda: Path(tempfile.gettempdir()))
    pool: tuple[int, ...] = DEFAULT_POOL
    create_timeout: str = "180s"


def kind_binary() -> str:
    found = shutil.which("kind") or _gopath_bin("kind")
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


def acquire_kind(opts: KindOptions) -> Cluster:
    """The named kind cluster, reused or created, with the images loaded."""
    if not CLUSTER_NAME.match(opts.name):
        raise ProviderError(f"--kind-cluster {opts.name!r}: use lowercase letters, digits and "
                            f"'-' (at most 32)")
    kind, docker = kind_binary(), docker_binary()
    env = {**os.environ, "PATH": f"{Path(docker).parent}:{os.environ.get('PATH', '')}"}
    info = _run([docker, "version", "--format", "{{.Server.Version}}"], env, timeout=30)
    if info.returncode != 0:
        raise ProviderError(f"Docker is not running ({_last_line(info.stderr)}); start it "
                            f"(infra/cluster/start-docker.sh on a machine without systemd)")
    for image in opts.images:
        if _run([docker, "image", "inspect", image], env, timeout=30).returncode != 0:
            raise ProviderError(f"image {image} is not built on this machine; build it first "
                                f"(infra/cluster/build-app-image.sh, build-postgres-image.sh)")
    existing = _run([kind, "get", "clusters"], env, timeout=30).stdout.split()
    kubeconfig = Path(opts.kubeconfig_dir) / f"zerodrop-kind-{opts.name}.kubeconfig"
    created = False
    if opts.name not in existing:
        config = opts.config or _write_kind_config(opts)
        args = [kind, "create", "cluster", "--name", opts.name, "--config", str(config),
                "--kubeconfig", str(kubeconfig), "--wait", opts.create_timeout]
        if opts.node_image:
            args += ["--image", opts.node_image]
        made = _run(args, env, timeout=900)
        if made.returncode != 0:
            _run([kind, "delete", "cluster", "--name", opts.name], env, timeout=300)
            raise ProviderError(f"kind create cluster {opts.name} failed: "
                                f"{_last_line(made.stderr)}")
        created = True
    else:
        got = _run([kind, "get", "kubeconfig", "--name", opts.name], env, timeout=30)
        if got.returncode != 0:
            raise ProviderError(f"kind get kubeconfig --name {opts.name}: {_last_line(got.stderr)}")
        kubeconfig.write_text(got.stdout)
    os.chmod(kubeconfig, 0o600)
    node = f"{opts.name}-control-plane"
    try:
        ports = _published_ports(docker, node, env, opts.pool)
        if not ports:
            raise ProviderError(f"kind cluster {opts.name} publishes none of the NodePorts "
                                f"{opts.pool[0]}-{opts.pool[-1]} on this machine; recreate it with "
                                f"extraPortMappings for them (see infra/cluster/kind-config.yaml)")
        for image in opts.images:
            if _node_has(docker, node, image, env):
                continue  # kind would load it again: its own check needs crictl in the node
            loaded = _run([kind, "load", "docker-image", image, "--name", opts.name], env,
                          timeout=600)
            if loaded.returncode != 0:
                raise ProviderError(f"kind could not load {image} into {opts.name}: "
                                    f"{_last_line(loaded.stderr)}")
    except BaseException:
        if created and not opts.keep:
            _run([kind, "delete", "cluster", "--name", opts.name], env, timeout=300)
        raise
    return Cluster("kind", opts.name, str(kubeconfig), f"kind-{opts.name}", ports, node,
                   created=created, kept=opts.keep)


def release_kind(cluster: Cluster) -> str | None:
    """Delete the cluster if this run created it and it is not kept; returns what was done."""
    Path(cluster.kubeconfig).unlink(missing_ok=True)
    if not cluster.created or cluster.kept:
        return None
    env = {**os.environ, "PATH": f"{Path(docker_binary()).parent}:{os.environ.get('PATH', '')}"}
    _run([kind_binary(), "delete", "cluster", "--name", cluster.name], env, timeout=300)
    return f"deleted kind cluster {cluster.name}"


def signal_container(cluster: Cluster, container_id: str, signame: str) -> None:
    """Send a real signal to a container from outside its PID namespace (kind only): a pod's
    PID 1 ignores SIGKILL sent from inside, and a pod delete is a graceful stop, not a kill."""
    if not cluster.node_container:
        raise ProviderError(f"cannot signal containers on a {cluster.kind} cluster")
    cid = container_id.split("://", 1)[-1]
    done = _run([docker_binary(), "exec", cluster.node_container, "ctr", "-n", "k8s.io",
                 "task", "kill", "-s", signame, cid], None, timeout=30)
    if done.returncode != 0:
        raise ProviderError(f"could not send {signame} to container {cid[:12]}: "
                            f"{_last_line(done.stderr)}")


def _node_has(docker: str, node: str, image: str, env: dict) -> bool:
    """Whether the node's containerd already holds ``image`` with the same config digest as
    the local Docker image (the image ID), so that loading it again can be skipped."""
    local = _run([docker, "image", "inspect", "-f", "{{.Id}}", image], env, timeout=30)
    first = image.split("/", 1)[0]
    ref = image if "/" in image and ("." in first or ":" in first or first == "localhost") \
        else f"docker.io/{image if '/' in image else 'library/' + image}"
    listed = _run([docker, "exec", node, "ctr", "-n", "k8s.io", "images", "ls",
                   f"name=={ref}"], env, timeout=30)
    rows = listed.stdout.splitlines()[1:]
    if local.returncode != 0 or listed.returncode != 0 or not rows:
        return False
    manifest = _run([docker, "exec", node, "ctr", "-n", "k8s.io", "content", "get",
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
    out = _run([docker, "port", node], env, timeout=30)
    if out.returncode != 0:
        raise ProviderError(f"docker port {node}: {_last_line(out.stderr)}")
    ports: dict[str, str] = {}
    for line in out.stdout.splitlines():  # "30080/tcp -> 127.0.0.1:30080"
        m = re.match(r"^(\d+)/tcp -> (127\.0\.0\.1|\[::1\]):(\d+)$", line.strip())
        if m and int(m.group(1)) in pool:
            ports[m.group(1)] = f"127.0.0.1:{m.group(3)}"
    return ports


# ---- an existing cluster ------------------------------------------------------------------------

@dataclass(frozen=True)
class ExistingOptions:
    kubeconfig: str = ""
    context: str | None = None
    allow_contexts: tuple[str, ...] = ()
    node_address: str | None = None  # where NodePorts answer from this machine
    pool: tuple[int, ...] = DEFAULT_POOL


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
        raise ProviderError(f"bad kubeconfig {path}: {_first_line(exc)}") from None
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


def _run(args: list[str], env: dict | None, timeout: float) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return subprocess.CompletedProcess(args, 124, "", f"timed out after {timeout:g} s")
    except OSError as exc:
        return subprocess.CompletedProcess(args, 127, "", str(exc))


def _last_line(text: str) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1][:300] if lines else "no output"


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def _gopath_bin(name: str) -> str | None:
    for root in (os.environ.get("GOPATH", ""), str(Path.home() / "go")):
        if root and os.access(Path(root) / "bin" / name, os.X_OK):
            return str(Path(root) / "bin" / name)
    return None
