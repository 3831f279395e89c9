"""The local platform: blue and green as real processes behind a kube-proxy-like front.

The pieces map onto Kubernetes so that what is proven here means something there:

- a colour's template + desired count  ~ a Deployment (generation bumps on deploy());
- ``ReplicaProcess``                   ~ a pod (restarted by the supervisor when it dies);
- the supervisor's probes              ~ the kubelet's readinessProbe (period, thresholds);
- endpoint sets applied after a delay  ~ EndpointSlice -> kube-proxy propagation;
- ``Front``                            ~ the Service's virtual IP (new connections only);
- scale-down                           ~ pod deletion: out of the endpoints (after the
                                         propagation delay) and SIGTERM at the same moment,
                                         SIGKILL after the grace period.
"""
from __future__ import annotations

import http.client
import json
import os
import secrets
import shutil
import signal as signals
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from zerodrop.platforms.local.front import Endpoint, Front, FrontLoop, PortInUse
from zerodrop.platforms.local.replica import ReplicaProcess, service_command
from zerodrop.platforms.base import COLORS, Platform, PlatformError, ReplicaInfo, Target
from zerodrop.records.events import EventLog

SERVICE_NAME = "payment-service"


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

    def validate(self) -> None:
        if self.replicas < 0:
            raise PlatformError(f"replicas must be >= 0, got {self.replicas}")
        if not 0 <= self.service_port <= 65535:
            raise PlatformError(f"service port must be 0..65535, got {self.service_port}")
        for name in ("probe_period", "propagation_delay", "drain_seconds", "grace_seconds",
                     "ready_timeout"):
            if getattr(self, name) < 0:
                raise PlatformError(f"{name} must be >= 0, got {getattr(self, name)}")


@dataclass
class _Template:
    version: str = ""
    faults: dict = field(default_factory=dict)
    generation: int = 0
    desired: int = 0


@dataclass
class _Probe:
    successes: int = 0
    failures: int = 0
    last: str = "not probed yet"


class LocalPlatform(Platform):
    def __init__(self, config: LocalConfig | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.config = config or LocalConfig()
        self.config.validate()
        self.events = EventLog(clock)
        self.admin_token = secrets.token_urlsafe(18)
        self.workdir = Path(tempfile.mkdtemp(prefix="zerodrop-local-"))
        self._lock = threading.RLock()
        self._templates = {c: _Template() for c in COLORS}
        self._pods: dict[str, list[ReplicaProcess]] = {c: [] for c in COLORS}
        self._gen_of: dict[str, int] = {}
        self._probes: dict[str, _Probe] = {}
        self._next_index = {c: 0 for c in COLORS}
        self._restart_at: dict[str, float] = {}
        self._backoff: dict[str, float] = {}
        self._selector: dict[str, int] = {}
        self._scheduled: dict[str, tuple] = {}
        self._stopping = threading.Event()
        self._closed = False
        self._front_loop: FrontLoop | None = None
        self.fronts: dict[str, Front] = {}
        self._probe_pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="zd-probe")
        self._kubelet: threading.Thread | None = None
        try:
            self._start()
        except BaseException:
            self.teardown()
            raise

    # ---- lifecycle -------------------------------------------------------------------------
    def _start(self) -> None:
        self.database_url = self.config.database_url or f"sqlite:///{self.workdir / 'payments.db'}"
        self._migrate()
        self._front_loop = FrontLoop()
        for name in ("service", *(f"preview-{c}" for c in COLORS)):
            self.fronts[name] = Front(name, self._front_loop)
        try:
            self.fronts["service"].start(self.config.service_port)
        except PortInUse:
            raise PlatformError(
                f"port {self.config.service_port} on 127.0.0.1 is already in use; "
                f"free it or choose another with --service-port (0 picks a free one)") from None
        for c in COLORS:
            self.fronts[f"preview-{c}"].start(0)
        # the kubelet thread spawns every replica: PR_SET_PDEATHSIG ties them to it
        self._kubelet = threading.Thread(target=self._kubelet_loop, name="zd-kubelet",
                                         daemon=True)
        self._kubelet.start()

    def _migrate(self) -> None:
        """The seed's migration Job: its own step, before any replica starts."""
        env = {"DATABASE_URL": self.database_url}
        started = time.time()
        try:
            done = subprocess.run(service_command("migrate"), cwd=self.workdir, capture_output=True,
                                  text=True, timeout=120,
                                  env={**os.environ, **env})
        except subprocess.TimeoutExpired:
            raise PlatformError("schema migration did not finish within 120 s") from None
        if done.returncode != 0:
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            raise PlatformError(f"schema migration failed (exit {done.returncode}): {last[0]}")
        self.events.emit("platform", "migrated", seconds=round(time.time() - started, 3),
                         output=done.stdout.strip().splitlines())

    def teardown(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._stopping.set()
        if self._kubelet is not None:
            self._kubelet.join(30)  # it stops the replicas on its way out
        for front in self.fronts.values():
            try:
                front.stop()
            except Exception:
                pass
        if self._front_loop is not None:
            self._front_loop.stop()
        self._probe_pool.shutdown(wait=False, cancel_futures=True)
        if not self.config.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    @staticmethod
    def _stop_fast(pod: ReplicaProcess) -> None:
        pod.signal(signals.SIGTERM)
        if pod.wait(0.2) is None:
            pod.signal(signals.SIGTERM)
            if pod.wait(5) is None:
                pod.kill_group()
                pod.wait(5)

    # ---- the Platform interface --------------------------------------------------------------
    @property
    def service_url(self) -> str:
        return self.fronts["service"].url

    def preview_url(self, color: str) -> str:
        _check_color(color)
        return self.fronts[f"preview-{color}"].url

    def deploy(self, color: str, version: str, *, faults: dict | None = None) -> None:
        _check_color(color)
        with self._lock:
            t = self._templates[color]
            t.version, t.faults, t.generation = version, dict(faults or {}), t.generation + 1
        self.events.emit("platform", "deployed", color=color, version=version,
                         faults=dict(faults or {}))

    def scale(self, color: str, replicas: int) -> None:
        _check_color(color)
        if replicas < 0:
            raise PlatformError(f"cannot scale {color} to {replicas} replicas")
        with self._lock:
            t = self._templates[color]
            if replicas > 0 and not t.version:
                raise PlatformError(f"{color} has no version deployed; call deploy() first")
            t.desired = replicas
        self.events.emit("platform", "scaled", color=color, replicas=replicas)

    def wait_ready(self, color: str, timeout: float | None = None) -> None:
        _check_color(color)
        timeout = self.config.ready_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            problem = self._rollout_problem(color)
            if problem is None:
                return
            if time.monotonic() >= deadline:
                raise PlatformError(f"{color} not ready after {timeout:g} s: {problem}")
            if self._closed:
                raise PlatformError("platform was torn down while waiting")
            time.sleep(min(0.05, self.config.probe_period))

    def _rollout_problem(self, color: str) -> str | None:
        """None when observed generation is current and updated == available == desired."""
        with self._lock:
            t = self._templates[color]
            pods = [p for p in self._pods[color] if not p.terminating]
            updated = [p for p in pods if self._gen_of.get(p.name) == t.generation]
            ready = [p for p in updated if p.ready]
            old = [p for p in self._pods[color] if self._gen_of.get(p.name) != t.generation]
            if len(updated) == len(ready) == t.desired and not old:
                return None
            counts = (f"{len(ready)}/{t.desired} ready, {len(updated)} updated, "
                      f"{len(old)} old still running")
            for p in updated:
                if not p.ready:
                    return f"{counts}; {p.name}: {self._why_not_ready(p)}"
            return counts

    def _why_not_ready(self, pod: ReplicaProcess) -> str:
        code = pod.exit_code()
        if code is None:
            code = pod.last_exit_code  # restarted since: the reason is the previous exit
        tail = pod.log_tail(3)
        last_log = f"; last log: {tail[-1]}" if tail else ""
        if code is not None or pod.restarts:
            return (f"exited with code {code if code is not None else '?'} "
                    f"(restarts {pod.restarts}){last_log}")
        if pod.port is None:
            return f"not listening yet{last_log}"
        return f"readiness probe: {self._probes.get(pod.name, _Probe()).last}"

    def deployed_version(self, color: str) -> str | None:
        _check_color(color)
        with self._lock:
            return self._templates[color].version or None

    @property
    def propagation_hint(self) -> float:
        return self.config.propagation_delay

    def active_color(self) -> str | None:
        with self._lock:
            live = [c for c, w in self._selector.items() if w > 0]
            return live[0] if len(live) == 1 else None

    def route_to(self, color: str) -> None:
        _check_color(color)
        self._set_selector({color: 100})

    def set_weights(self, weights: dict[str, int]) -> None:
        for c, w in weights.items():
            _check_color(c)
            if not isinstance(w, int) or w < 0:
                raise PlatformError(f"weight of {c} must be a whole percent >= 0, got {w!r}")
        if sum(weights.values()) != 100:
            raise PlatformError(f"weights must sum to 100, got {sum(weights.values())}")
        self._set_selector(dict(weights))

    def _set_selector(self, selector: dict[str, int]) -> None:
        with self._lock:
            self._selector = selector  # replaced whole, never merged
        self.events.emit("platform", "selector patched", selector=dict(selector))
        self._publish_endpoints()

    def replicas(self, color: str) -> list[ReplicaInfo]:
        _check_color(color)
        with self._lock:
            return [_info(p) for p in self._pods[color]]

    def kill_replica(self, color: str, sig: int, index: int = 0) -> ReplicaInfo:
        with self._lock:
            live = [p for p in self._pods[color] if not p.terminating and p.alive()]
            if not 0 <= index < len(live):
                raise PlatformError(f"{color} has {len(live)} running replicas; no index {index}")
            pod = live[index]
        pod.signal(sig)
        self.events.emit("fault", "replica killed", color=color, replica=pod.name,
                         signal=signals.Signals(sig).name)
        return _info(pod)

    def apply_fault(self, color: str, faults: dict) -> None:
        _check_color(color)
        with self._lock:
            self._templates[color].faults.update(faults)  # replicas started later get them too
            pods = [p for p in self._pods[color] if p.alive() and p.port]
        for pod in pods:
            status, body = _http("PATCH", pod.port, "/admin/faults", json.dumps(faults),
                                 {"Authorization": f"Bearer {self.admin_token}",
                                  "Content-Type": "application/json"}, timeout=5)
            if status != 200:
                raise PlatformError(f"{pod.name} refused fault {faults}: HTTP {status} {body[:200]}")
        self.events.emit("fault", "fault applied", color=color, faults=dict(faults))

    def target(self) -> Target:
        return Target("local", self.service_url, self.config.token,
                      {c: self.preview_url(c) for c in COLORS}, self.admin_token,
                      self.active_color())

    # ---- the kubelet: spawn, restart, terminate, probe ----------------------------------------
    def _kubelet_loop(self) -> None:
        try:
            while not self._stopping.is_set():
                started = time.monotonic()
                try:
                    self._reconcile()
                    self._probe_all()
                except Exception as exc:  # keep supervising; say what went wrong
                    self.events.emit("platform", "supervisor error", error=repr(exc))
                self._stopping.wait(
                    max(0.0, self.config.probe_period - (time.monotonic() - started)))
        finally:
            # Stop the replicas from this thread: they die with it (PR_SET_PDEATHSIG), so they
            # must be gone, gracefully, before it ends.
            self._stop_all()

    def _stop_all(self) -> None:
        with self._lock:
            pods = [p for ps in self._pods.values() for p in ps]
        # SIGTERM everything at once, then a second SIGTERM to cut the drain short
        stoppers = [threading.Thread(target=self._stop_fast, args=(p,)) for p in pods]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join(15)

    def _reconcile(self) -> None:
        changed = False
        now = time.monotonic()
        with self._lock:
            for color in COLORS:
                t = self._templates[color]
                pods = self._pods[color]
                for p in list(pods):
                    code = p.exit_code()
                    if code is None:
                        continue
                    if p.terminating:
                        pods.remove(p)
                        self._forget(p)
                        self.events.emit("platform", "replica terminated", color=color,
                                         replica=p.name, code=code, expected=True)
                        changed = True
                    elif p.name not in self._restart_at:
                        backoff = self._backoff.get(p.name, self.config.restart_backoff)
                        self._restart_at[p.name] = now + backoff
                        self._backoff[p.name] = min(backoff * 2, 8.0)
                        tail = p.log_tail(1)
                        self.events.emit("platform", "replica terminated", color=color,
                                         replica=p.name, code=code, expected=False,
                                         last_log=tail[-1] if tail else "")
                        if p.ready:
                            p.ready = False
                            changed = True
                    elif now >= self._restart_at[p.name]:
                        del self._restart_at[p.name]
                        p.restarts += 1
                        self._probes[p.name] = _Probe()
                        p.start()
                        self.events.emit("platform", "replica started", color=color,
                                         replica=p.name, pid=p.pid, restart=p.restarts)
                live = [p for p in pods if not p.terminating]
                stale = [p for p in live if self._gen_of.get(p.name) != t.generation]
                # Recreate strategy for the idle colour: old template out, new one in
                for p in stale:
                    self._terminate(p)
                    changed = True
                current = [p for p in live if p not in stale]
                if len(current) < t.desired:
                    for _ in range(t.desired - len(current)):
                        self._spawn(color, t)
                elif len(current) > t.desired:
                    # scale down: unready replicas first, then the newest
                    victims = sorted(current, key=lambda p: (p.ready, -p.started_at))
                    for p in victims[: len(current) - t.desired]:
                        self._terminate(p)
                        changed = True
        if changed:
            self._publish_endpoints()

    def _spawn(self, color: str, t: _Template) -> None:
        index = self._next_index[color]
        self._next_index[color] += 1
        name = f"{SERVICE_NAME}-{color}-{index}"
        env = {
            "APP_VERSION": t.version, "APP_COLOR": color, "REPLICA_NAME": name,
            "SERVICE_NAME": SERVICE_NAME, "DATABASE_URL": self.database_url,
            "AUTH_TOKEN": self.config.token, "ADMIN_TOKEN": self.admin_token,
            "DRAIN_SECONDS": str(self.config.drain_seconds),
            "PAYMENT_PROCESSING_SECONDS": str(self.config.processing_seconds),
            "FAULTS": json.dumps(t.faults), **self.config.extra_env,
        }
        pod = ReplicaProcess(name, color, t.version, self.workdir, env)
        pod.start()
        self._pods[color].append(pod)
        self._gen_of[name] = t.generation
        self._probes[name] = _Probe()
        self.events.emit("platform", "replica started", color=color, replica=name, pid=pod.pid,
                         version=t.version)

    def _terminate(self, pod: ReplicaProcess) -> None:
        """Pod deletion: out of the endpoints and SIGTERM at the same moment (as Kubernetes
        does), SIGKILL after the grace period."""
        pod.terminating = True
        self._restart_at.pop(pod.name, None)
        self.events.emit("platform", "replica terminating", color=pod.color, replica=pod.name)
        threading.Thread(target=pod.stop, args=(self.config.grace_seconds,),
                         name=f"zd-stop-{pod.name}", daemon=True).start()

    def _forget(self, pod: ReplicaProcess) -> None:
        for table in (self._gen_of, self._probes, self._backoff, self._restart_at):
            table.pop(pod.name, None)

    def _probe_all(self) -> None:
        with self._lock:
            pods = [p for ps in self._pods.values() for p in ps
                    if not p.terminating and p.alive() and p.name not in self._restart_at]
        for p in pods:
            p.poll_port()
        probed = [(p, self._probe_pool.submit(_probe, p.port)) for p in pods if p.port]
        changed = False
        for pod, future in probed:
            ok, why = future.result()
            with self._lock:
                if pod.terminating:
                    continue
                probe = self._probes.setdefault(pod.name, _Probe())
                probe.last = why
                if ok:
                    probe.successes, probe.failures = probe.successes + 1, 0
                    if not pod.ready and probe.successes >= self.config.success_threshold:
                        pod.ready, changed = True, True
                        self._backoff.pop(pod.name, None)
                        self.events.emit("platform", "replica ready", color=pod.color,
                                         replica=pod.name)
                else:
                    probe.failures, probe.successes = probe.failures + 1, 0
                    if pod.ready and probe.failures >= self.config.failure_threshold:
                        pod.ready, changed = False, True
                        self.events.emit("platform", "replica unready", color=pod.color,
                                         replica=pod.name, reason=why)
        if changed:
            self._publish_endpoints()

    # ---- endpoints -> fronts, after the propagation delay -------------------------------------
    def _publish_endpoints(self) -> None:
        with self._lock:
            def ready_of(colors) -> list[Endpoint]:
                return [Endpoint("127.0.0.1", p.port, p.color, p.name)
                        for p in self._routable(colors)]
            selector = dict(self._selector)
            live_colors = [c for c, w in selector.items() if w > 0]
            plan = {"service": (ready_of(live_colors),
                                selector if len(live_colors) > 1 else None)}
            for c in COLORS:
                plan[f"preview-{c}"] = (ready_of([c]), None)
            if self._front_loop is None:
                return
            for name, (eps, weights) in plan.items():
                key = (tuple(eps), tuple(sorted((weights or {}).items())))
                if self._scheduled.get(name) == key:
                    continue
                self._scheduled[name] = key
                front = self.fronts[name]
                self._front_loop.call_later(
                    self.config.propagation_delay,
                    _applier(front, eps, weights, self.events))

    def _routable(self, colors) -> list[ReplicaProcess]:
        """The replicas of ``colors`` that belong in an endpoint set (caller holds the lock)."""
        return [p for c in colors for p in self._pods[c]
                if p.ready and not p.terminating and p.port]

    def front_endpoints(self, name: str = "service") -> list[str]:
        """Replica names the front sends new connections to right now."""
        return [e.replica for e in self.fronts[name].endpoints()]

    def wait_routed(self, color: str | None = None, timeout: float | None = None) -> None:
        if color is not None:
            _check_color(color)
        front = "service" if color is None else f"preview-{color}"
        timeout = self.config.ready_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                colors = [c for c, w in self._selector.items() if w > 0] if color is None \
                    else [color]
                want = sorted(p.name for p in self._routable(colors))
            have = sorted(self.front_endpoints(front))
            if have == want and want:
                return
            if time.monotonic() >= deadline:
                if not want:
                    raise PlatformError(f"{front} selects {'/'.join(colors) or 'no colour'}, "
                                        f"which has no ready replica after {timeout:g} s")
                raise PlatformError(f"{front} routes to {have or 'nothing'} after {timeout:g} s, "
                                    f"expected the ready replicas {want}")
            time.sleep(0.02)


def _info(p: ReplicaProcess) -> ReplicaInfo:
    return ReplicaInfo(p.name, p.color, p.version, p.url, p.pid if p.alive() else None,
                       p.ready, p.terminating, p.restarts)


def _applier(front: Front, eps: list[Endpoint], weights, events: EventLog):
    def apply() -> None:
        front.set_endpoints(eps, weights, on_applied=lambda: events.emit(
            "platform", "endpoints changed", front=front.name,
            endpoints=[e.replica for e in eps], weights=weights))
    return apply


def _probe(port: int) -> tuple[bool, str]:
    status, body = _http("GET", port, "/health/ready", None, {}, timeout=1.0)
    if status is None:
        return False, body
    if 200 <= status < 400:
        return True, f"HTTP {status}"
    try:
        data = json.loads(body)
        summary = str(data.get("status", ""))
        bad = [f"{name}: {c.get('status')}" + (f" ({c['details']})" if c.get("details") else "")
               for name, c in (data.get("components") or {}).items()
               if isinstance(c, dict) and c.get("status") not in ("healthy", None)]
        if bad:
            summary += f" [{'; '.join(bad)}]"
    except (ValueError, AttributeError):
        summary = body[:80]
    return False, f"HTTP {status} {summary[:300]}".strip()


def _http(method: str, port: int, path: str, body: str | None, headers: dict,
          timeout: float) -> tuple[int | None, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read().decode("utf-8", "replace")
    except (OSError, http.client.HTTPException) as exc:
        return None, f"{type(exc).__name__}: {exc}"
    finally:
        conn.close()


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
        cfg = platform.config
        idle = next(c for c in COLORS if c != active)
        platform.deploy(active, versions[active], faults=faults.get(active))
        platform.scale(active, cfg.replicas)
        n_idle = cfg.replicas if idle_replicas is None else idle_replicas
        if n_idle:
            platform.deploy(idle, versions[idle], faults=faults.get(idle))
            platform.scale(idle, n_idle)
        platform.wait_ready(active)
        platform.route_to(active)
        if n_idle:
            platform.wait_ready(idle)
        # ready is not yet routed: every address handed out must already reach its replicas
        if cfg.replicas:
            platform.wait_routed()
            platform.wait_routed(active)
        if n_idle:
            platform.wait_routed(idle)
        return platform
    except BaseException:
        platform.teardown()
        raise


