"""The local platform: blue and green as real processes behind a kube-proxy-like front.

This module is the Platform API; the work is done by the supervisor (supervisor.py: the
kubelet that spawns, restarts, stops and probes replicas) and the endpoint propagation
(endpoints.py: selector -> endpoint sets -> fronts, after a delay). The pieces map onto
Kubernetes so that what is proven here means something there:

- ``Front`` (front.py)   ~ the Service's virtual IP (new connections only);
- endpoint sets applied after a delay  ~ EndpointSlice -> kube-proxy propagation;
- the schema migration before any replica  ~ the migration Job.
"""
from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import signal as signals
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from zerodrop.platforms.base import (COLORS, Platform, PlatformError, ReplicaInfo, Target,
                                     check_weights)
from zerodrop.platforms.local import command
from zerodrop.platforms.local.command import DEFAULT_APP_CMD, DEFAULT_MIGRATE_CMD
from zerodrop.platforms.local.endpoints import SERVICE, Endpoints, preview
from zerodrop.platforms.local.front import Front, FrontLoop, PortInUse
from zerodrop.platforms.local.replica import ReplicaProcess
from zerodrop.platforms.local.supervisor import SERVICE_NAME, Supervisor, http_call
from zerodrop.records.events import EventLog, EventName, Source

__all__ = ["LocalConfig", "LocalPlatform", "SERVICE_NAME", "stand_up"]


@dataclass(frozen=True)
class LocalConfig:
    """Knobs of the local platform; the defaults are tuned for fast, honest local runs."""

    replicas: int = 2
    probe_period: float = 0.25          # readinessProbe periodSeconds
    failure_threshold: int = 2          # readinessProbe failureThreshold
    success_threshold: int = 1          # readinessProbe successThreshold
    propagation_delay: float = 0.25     # endpoint change -> front, as EndpointSlice -> kube-proxy
    drain_seconds: float = 1.0          # the service's drain after SIGTERM (preStop-like)
    grace_seconds: float = 10.0         # terminationGracePeriodSeconds: SIGKILL after this
    ready_timeout: float = 60.0
    service_port: int = 0               # 0 = a free port
    token: str = "test-token"
    database_url: str | None = None     # None = one SQLite file in the workdir, shared
    processing_seconds: float = 0.5     # how long a payment stays pending
    restart_backoff: float = 0.5        # first restart delay; doubles up to 8 s (CrashLoopBackOff)
    keep_workdir: bool = False
    extra_env: dict[str, str] = field(default_factory=dict)
    app_cmd: str = DEFAULT_APP_CMD          # starts one replica (see platforms/local/command.py)
    migrate_cmd: str = DEFAULT_MIGRATE_CMD  # runs once, before any replica starts
    readiness_path: str = "/health/ready"   # the readinessProbe's path (the service profile's)
    service_name: str = SERVICE_NAME        # replicas are <service>-<colour>-<n>
    prometheus: bool = False            # a real Prometheus scrapes every replica (canary)
    scrape_interval: float = 1.0        # its scrape interval, seconds

    def validate(self) -> None:
        command.check(self.app_cmd, "--app-cmd")
        command.check(self.migrate_cmd, "--migrate-cmd", command.MIGRATE_PLACEHOLDERS)
        if self.replicas < 0:
            raise PlatformError(f"replicas must be >= 0, got {self.replicas}")
        if not 0 <= self.service_port <= 65535:
            raise PlatformError(f"service port must be 0..65535, got {self.service_port}")
        for name in ("probe_period", "propagation_delay", "drain_seconds", "grace_seconds",
                     "ready_timeout"):
            if getattr(self, name) < 0:
                raise PlatformError(f"{name} must be >= 0, got {getattr(self, name)}")


class LocalPlatform(Platform):
    def __init__(self, config: LocalConfig | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config or LocalConfig()
        self.config.validate()
        self.events = EventLog(clock)
        self.admin_token = secrets.token_urlsafe(18)
        self.workdir = Path(tempfile.mkdtemp(prefix="zerodrop-local-"))
        self.database_url = self.config.database_url or f"sqlite:///{self.workdir / 'payments.db'}"
        self._lock = threading.RLock()
        self._closed = False
        self._front_loop: FrontLoop | None = None
        self.fronts: dict[str, Front] = {}
        self._endpoints: Endpoints | None = None
        self._prometheus = None  # LocalPrometheus when config.prometheus ...
        self._kube_state = None  # ... and the kube-state-metrics stand-in it scrapes
        self._supervisor = Supervisor(self.config, self.events, self.workdir, self._replica_env(),
                                      self._lock, self._publish, self._connections_of)
        try:
            self._start()
        except BaseException:
            self.teardown()
            raise

    # ---- lifecycle -------------------------------------------------------------------------
    def _replica_env(self) -> dict[str, str]:
        c = self.config
        return {"DATABASE_URL": self.database_url, "AUTH_TOKEN": c.token, "ZD_TOKEN": c.token,
                "ADMIN_TOKEN": self.admin_token, "DRAIN_SECONDS": str(c.drain_seconds),
                "PAYMENT_PROCESSING_SECONDS": str(c.processing_seconds), **c.extra_env}

    def _start(self) -> None:
        if self.config.prometheus:  # first: a Prometheus that cannot start costs no replica
            from zerodrop.platforms.local.prometheus import LocalPrometheus
            self._prometheus = LocalPrometheus(scrape_interval=self.config.scrape_interval,
                                               job=self.config.service_name)
            self._prometheus.start()
            self._prometheus.wait_ready()
            from zerodrop.platforms.local.kube_state import KubeStateStandIn
            self._kube_state = KubeStateStandIn(self._pod_phases)
        self._migrate()
        self._front_loop = FrontLoop()
        for name in (SERVICE, *(preview(c) for c in COLORS)):
            self.fronts[name] = Front(name, self._front_loop)
        try:
            self.fronts[SERVICE].start(self.config.service_port)
        except PortInUse:
            raise PlatformError(
                f"port {self.config.service_port} on 127.0.0.1 is already in use; "
                f"free it or choose another with --service-port (0 picks a free one)") from None
        for c in COLORS:
            self.fronts[preview(c)].start(0)
        self._endpoints = Endpoints(self._front_loop, self.fronts, self.events,
                                    self.config.propagation_delay, self._lock,
                                    self._supervisor.routable)
        self._supervisor.start()

    def _migrate(self) -> None:
        """The seed's migration Job: its own step, before any replica starts."""
        started = time.time()
        done = self._run_migrate("", {})
        self.events.emit(Source.PLATFORM, EventName.MIGRATED,
                         seconds=round(time.time() - started, 3),
                         output=done.stdout.strip().splitlines())

    def _run_migrate(self, of: str, extra: dict[str, str]) -> subprocess.CompletedProcess:
        """The migrate command in the replicas' environment (plus ``extra``); PlatformError in
        one line, with its output's tail, when it cannot run or fails."""
        argv = command.render(self.config.migrate_cmd, "--migrate-cmd")
        shown = f"--migrate-cmd {shlex.join(argv)!r}{of}"
        try:
            done = subprocess.run(argv, cwd=self.workdir, capture_output=True, text=True,
                                  timeout=120, stdin=subprocess.DEVNULL,
                                  env={**os.environ, **self._replica_env(), **extra})
        except subprocess.TimeoutExpired:
            raise PlatformError(f"{shown} did not finish within 120 s") from None
        except OSError as exc:
            raise PlatformError(f"{shown} cannot run: {exc.strerror or exc}") from None
        if done.returncode != 0:
            last = (done.stderr or done.stdout).strip().splitlines()[-3:] or ["no output"]
            raise PlatformError(f"{shown} failed (exit {done.returncode}): {' | '.join(last)}")
        return done

    def _publish(self) -> None:
        if self._endpoints is not None:
            self._endpoints.publish()
        if self._prometheus is not None and not self._closed:
            self._prometheus.set_targets(self._scrape_targets())

    def _scrape_targets(self) -> dict[str, list[str]]:
        """Every live replica's address, by colour (Prometheus' file_sd targets), and the
        kube-state-metrics stand-in's (as colour "platform")."""
        with self._lock:
            targets = {c: [p.url for p in self._supervisor.pods[c] if p.alive() and p.port]
                       for c in COLORS}
        if self._kube_state is not None:
            targets["platform"] = [self._kube_state.address]
        return targets

    def _pod_phases(self) -> list[tuple[str, str]]:
        """(replica, phase) as kube-state-metrics would say of pods: Running once it listens
        (ready or not, as a pod's phase is), Pending before, a stopped replica gone."""
        with self._lock:
            return [(p.name, "Running" if p.alive() and p.port else "Pending")
                    for c in COLORS for p in self._supervisor.pods[c]]

    def _connections_of(self, replica: str) -> frozenset:
        """The client connections every front (Service and previews) holds to ``replica``."""
        return frozenset().union(*(front.connections_to(replica)
                                   for front in list(self.fronts.values())))

    def teardown(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._supervisor.stop()  # it stops the replicas on its way out
        for front in self.fronts.values():
            try:
                front.stop()
            except Exception:
                pass
        if self._front_loop is not None:
            self._front_loop.stop()
        if self._prometheus is not None:
            self._prometheus.stop()
        if self._kube_state is not None:
            self._kube_state.stop()
        if not self.config.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # ---- the Platform interface --------------------------------------------------------------
    @property
    def service_url(self) -> str:
        return self.fronts[SERVICE].url

    def preview_url(self, color: str) -> str:
        _check_color(color)
        return self.fronts[preview(color)].url

    @property
    def metrics_url(self) -> str | None:
        return self._prometheus.url if self._prometheus is not None else None

    def query_metrics(self, promql: str):
        if self._prometheus is None:
            raise PlatformError("no Prometheus scrapes this platform (LocalConfig.prometheus)")
        return self._prometheus.query(promql)

    def wait_scraped(self, color: str, timeout: float | None = None) -> None:
        _check_color(color)
        if self._prometheus is None:
            raise PlatformError("no Prometheus scrapes this platform (LocalConfig.prometheus)")
        self._publish()  # the targets file names every live replica now
        with self._lock:
            ready = [p.url for p in self._supervisor.pods[color] if p.ready and not p.terminating]
        self._prometheus.wait_scraped(ready, 15.0 if timeout is None else timeout)

    def deploy(self, color: str, version: str, *, faults: dict | None = None) -> None:
        _check_color(color)
        self._supervisor.deploy(color, version, faults)
        self.events.emit(Source.PLATFORM, EventName.DEPLOYED, color=color, version=version,
                         faults=dict(faults or {}))

    def scale(self, color: str, replicas: int) -> None:
        _check_color(color)
        if replicas < 0:
            raise PlatformError(f"cannot scale {color} to {replicas} replicas")
        self._supervisor.set_desired(color, replicas)
        self.events.emit(Source.PLATFORM, EventName.SCALED, color=color, replicas=replicas)

    def wait_ready(self, color: str, timeout: float | None = None) -> None:
        _check_color(color)
        timeout = self.config.ready_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while (problem := self._supervisor.rollout_problem(color)) is not None:
            if time.monotonic() >= deadline:
                raise PlatformError(f"{color} not ready after {timeout:g} s: {problem}")
            if self._closed:
                raise PlatformError("platform was torn down while waiting")
            time.sleep(min(0.05, self.config.probe_period))

    def wait_routed(self, color: str | None = None, timeout: float | None = None) -> None:
        if color is not None:
            _check_color(color)
        front = SERVICE if color is None else preview(color)
        timeout = self.config.ready_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            colors, want = self._endpoints.wanted(front)
            have = sorted(self._endpoints.routed(front))
            if have == want and want:
                return
            if time.monotonic() >= deadline:
                if not want:
                    raise PlatformError(f"{front} selects {'/'.join(colors) or 'no colour'}, "
                                        f"which has no ready replica after {timeout:g} s")
                raise PlatformError(f"{front} routes to {have or 'nothing'} after {timeout:g} s, "
                                    f"expected the ready replicas {want}")
            time.sleep(0.02)

    def front_endpoints(self, name: str = SERVICE) -> list[str]:
        """Replica names the front sends new connections to right now."""
        return self._endpoints.routed(name)

    def deployed_version(self, color: str) -> str | None:
        _check_color(color)
        with self._lock:
            return self._supervisor.templates[color].version or None

    @property
    def propagation_hint(self) -> float:
        return self.config.propagation_delay

    def active_color(self) -> str | None:
        live = self._endpoints.selected()
        return live[0] if len(live) == 1 else None

    def route_to(self, color: str) -> None:
        _check_color(color)
        self._endpoints.select({color: 100})

    def set_weights(self, weights: dict[str, int], canary: str | None = None) -> None:
        self._endpoints.select(check_weights(weights, canary), canary)

    def replicas(self, color: str) -> list[ReplicaInfo]:
        _check_color(color)
        with self._lock:
            return [_info(p) for p in self._supervisor.pods[color]]

    def kill_replica(self, color: str, sig: int, index: int = 0) -> ReplicaInfo:
        live = self._supervisor.live(color)
        if not 0 <= index < len(live):
            raise PlatformError(f"{color} has {len(live)} running replicas; no index {index}")
        pod = live[index]
        pod.signal(sig)
        self.events.emit(Source.FAULT, EventName.REPLICA_KILLED, color=color, replica=pod.name,
                         signal=signals.Signals(sig).name)
        return _info(pod)

    def apply_fault(self, color: str, faults: dict, index: int | None = None) -> None:
        _check_color(color)
        if index is None:
            pods = self._supervisor.add_faults(color, faults)  # later replicas get them too
        else:
            live = self._supervisor.live(color)
            if not 0 <= index < len(live):
                raise PlatformError(f"{color} has {len(live)} running replicas; no index {index}")
            pods = [live[index]]
        for pod in pods:
            status, body = http_call("PATCH", pod.port, "/admin/faults", json.dumps(faults),
                                     {"Authorization": f"Bearer {self.admin_token}",
                                      "Content-Type": "application/json"}, timeout=5)
            if status != 200:
                raise PlatformError(f"{pod.name} refused fault {faults}: HTTP {status} "
                                    f"{body[:200]}")
        self.events.emit(Source.FAULT, EventName.FAULT_APPLIED, color=color,
                         faults=dict(faults), **({} if index is None else {"replica": pods[0].name}))

    def delete_replica(self, color: str, index: int = 0) -> ReplicaInfo:
        _check_color(color)
        pod = self._supervisor.delete(color, index)
        self.events.emit(Source.FAULT, EventName.REPLICA_DELETED, color=color, replica=pod.name)
        return _info(pod)

    def network_fault(self, color: str, delay_ms: int = 0, loss_pct: int = 0) -> None:
        raise PlatformError("the local platform cannot add network delay or loss: its replicas "
                            "share this machine's loopback, with no network namespace of their "
                            "own to put tc netem in; use --target kind")

    def drain_window_s(self) -> float | None:
        return float(self.config.drain_seconds)

    def migrate(self, version: str, env: dict[str, str] | None = None) -> None:
        """The migrate command (--migrate-cmd, the profile's) once more, against the shared
        database, with APP_VERSION=version and ``env``, while the replicas keep serving."""
        started = time.time()
        done = self._run_migrate(f" of {version}", {"APP_VERSION": version, **(env or {})})
        self.events.emit(Source.PLATFORM, EventName.MIGRATED, version=version,
                         env=dict(env or {}), seconds=round(time.time() - started, 3),
                         output=[*done.stdout.strip().splitlines(),  # as a pod's log: both
                                 *done.stderr.strip().splitlines()])

    def target(self) -> Target:
        return Target("local", self.service_url, self.config.token,
                      {c: self.preview_url(c) for c in COLORS}, self.admin_token,
                      self.active_color())


def _info(p: ReplicaProcess) -> ReplicaInfo:
    return ReplicaInfo(p.name, p.color, p.version, p.url, p.pid if p.alive() else None,
                       p.ready, p.terminating, p.restarts)


def _check_color(color: str) -> None:
    if color not in COLORS:
        raise PlatformError(f"unknown colour {color!r}; use one of: {', '.join(COLORS)}")


def stand_up(config: LocalConfig | None = None, *, active: str = "blue",
             versions: dict[str, str] | None = None, idle_replicas: int | None = None,
             faults: dict[str, dict] | None = None) -> LocalPlatform:
    """Blue and green as a blue-green deployment starts: the active colour routed, the idle one
    running its own version behind its preview address. Torn down if anything fails."""
    versions = versions or {"blue": "v1.0.0", "green": "v1.1.0"}
    faults = faults or {}
    platform = LocalPlatform(config)
    try:
        replicas = platform.config.replicas
        idle = next(c for c in COLORS if c != active)
        n_idle = replicas if idle_replicas is None else idle_replicas
        platform.deploy(active, versions[active], faults=faults.get(active))
        platform.scale(active, replicas)
        if n_idle:
            platform.deploy(idle, versions[idle], faults=faults.get(idle))
            platform.scale(idle, n_idle)
        platform.wait_ready(active)
        platform.route_to(active)
        if n_idle:
            platform.wait_ready(idle)
        # ready is not yet routed: every address handed out must already reach its replicas
        for color in ([None, active] if replicas else []) + ([idle] if n_idle else []):
            platform.wait_routed(color)
        return platform
    except BaseException:
        platform.teardown()
        raise
