"""The local kubelet: one thread that keeps each colour's replicas as its template says.

Every probe period it reconciles (reap what exited, restart with back-off, replace replicas of
an old template, scale up and down) and then probes readiness. It owns the replicas; what it
changes about who is ready it reports through ``on_change``, and the endpoint propagation
(endpoints.py) takes it from there.

- a colour's template + desired count  ~ a Deployment (generation bumps on deploy());
- ``ReplicaProcess``                   ~ a pod (restarted here when it dies, CrashLoopBackOff);
- the probes                           ~ the kubelet's readinessProbe (period, thresholds);
- scale-down                           ~ pod deletion: SIGTERM at once, SIGKILL after the grace
                                         period, out of the endpoints after propagation.
"""
from __future__ import annotations

import http.client
import json
import shlex
import signal as signals
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from zerodrop.platforms.base import COLORS, PlatformError
from zerodrop.platforms.local.replica import ReplicaProcess
from zerodrop.records.events import EventLog, EventName, Source

SERVICE_NAME = "payment-service"
MAX_BACKOFF_S = 8.0
EXIT_SAMPLE_S = 0.05  # how often a stopping replica's connections are counted until it exits


@dataclass
class Template:
    version: str = ""
    faults: dict = field(default_factory=dict)
    generation: int = 0
    desired: int = 0


@dataclass
class _Probe:
    successes: int = 0
    failures: int = 0
    last: str = "not probed yet"


class Supervisor:
    """Spawns, restarts, terminates and probes the replicas of both colours."""

    def __init__(self, config: Any, events: EventLog, workdir: Path, env: dict[str, str],
                 lock: threading.RLock, on_change: Callable[[], None],
                 connections_of: Callable[[str], frozenset | None] = lambda replica: None) -> None:
        self.config, self.events, self.workdir = config, events, workdir
        self._connections_of = connections_of  # the client connections a replica holds now
        self._env = env  # what every replica gets (database, tokens, drain, ...)
        self._lock = lock
        self._on_change = on_change
        self.templates = {c: Template() for c in COLORS}
        self.pods: dict[str, list[ReplicaProcess]] = {c: [] for c in COLORS}
        self._gen_of: dict[str, int] = {}
        self._probes: dict[str, _Probe] = {}
        self._next_index = {c: 0 for c in COLORS}
        self._restart_at: dict[str, float] = {}
        self._backoff: dict[str, float] = {}
        self._stopping = threading.Event()
        self._pool = ThreadPoolExecutor(max_workers=8, thread_name_prefix="zd-probe")
        self._thread: threading.Thread | None = None

    # ---- life cycle -------------------------------------------------------------------------
    def start(self) -> None:
        # this thread spawns every replica: PR_SET_PDEATHSIG ties them to it
        self._thread = threading.Thread(target=self._loop, name="zd-kubelet", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop supervising; the replicas are stopped by the supervising thread on its way out."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(30)
        self._pool.shutdown(wait=False, cancel_futures=True)

    # ---- what the platform asks ---------------------------------------------------------------
    def deploy(self, color: str, version: str, faults: dict | None) -> None:
        with self._lock:
            t = self.templates[color]
            t.version, t.faults, t.generation = version, dict(faults or {}), t.generation + 1

    def set_desired(self, color: str, replicas: int) -> None:
        with self._lock:
            t = self.templates[color]
            if replicas > 0 and not t.version:
                raise PlatformError(f"{color} has no version deployed; call deploy() first")
            t.desired = replicas

    def add_faults(self, color: str, faults: dict) -> list[ReplicaProcess]:
        """Remember ``faults`` for replicas started later; the running ones to patch now."""
        with self._lock:
            self.templates[color].faults.update(faults)
            return [p for p in self.pods[color] if p.alive() and p.port]

    def delete(self, color: str, index: int) -> ReplicaProcess:
        """A pod deletion: ``index`` of the live replicas terminates (out of the endpoints,
        SIGTERM, SIGKILL after the grace period); the next reconcile starts a replacement,
        as a ReplicaSet does, because the desired count is unchanged."""
        with self._lock:
            live = [p for p in self.pods[color] if not p.terminating and p.alive()]
            if not 0 <= index < len(live):
                raise PlatformError(f"{color} has {len(live)} running replicas; no index {index}")
            self._terminate(live[index])
        self._on_change()
        return live[index]

    def live(self, color: str) -> list[ReplicaProcess]:
        with self._lock:
            return [p for p in self.pods[color] if not p.terminating and p.alive()]

    def routable(self, colors: Iterable[str]) -> list[ReplicaProcess]:
        """The replicas of ``colors`` that belong in an endpoint set."""
        with self._lock:
            return [p for c in colors for p in self.pods[c]
                    if p.ready and not p.terminating and p.port]

    def rollout_problem(self, color: str) -> str | None:
        """None when observed generation is current and updated == available == desired."""
        with self._lock:
            t = self.templates[color]
            pods = [p for p in self.pods[color] if not p.terminating]
            updated = [p for p in pods if self._gen_of.get(p.name) == t.generation]
            ready = [p for p in updated if p.ready]
            old = [p for p in self.pods[color] if self._gen_of.get(p.name) != t.generation]
            if len(updated) == len(ready) == t.desired and not old:
                return None
            counts = (f"{len(ready)}/{t.desired} ready, {len(updated)} updated, "
                      f"{len(old)} old still running")
            waiting = next((p for p in updated if not p.ready), None)
            return f"{counts}; {waiting.name}: {self._why_not_ready(waiting)}" if waiting \
                else counts

    def _why_not_ready(self, pod: ReplicaProcess) -> str:
        code = pod.exit_code()
        if code is None:
            code = pod.last_exit_code  # restarted since: the reason is the previous exit
        tail = pod.log_tail(3)
        cmd = shlex.join(pod.argv) if pod.argv else pod.app_cmd
        if code is not None or pod.restarts:
            last = f"; last output: {' | '.join(tail)}" if tail else "; no output"
            relative = [w for w in (pod.argv or [])[1:] if not w.startswith(("/", "-")) and "/" in w]
            hint = (f" (it runs in the run's directory {self.workdir}: give {relative[0]!r} as an "
                    "absolute path, or as {profile_dir}/... with a profile)") if relative else ""
            return (f"--app-cmd {cmd!r} exited with code {code if code is not None else '?'} "
                    f"(restarts {pod.restarts}){last}{hint}")
        why = self._probes.get(pod.name, _Probe()).last
        if "refused" in why.lower():
            last = f"; last output: {' | '.join(tail)}" if tail else ""
            return f"--app-cmd {cmd!r} is not listening on port {pod.port} yet{last}"
        return f"readiness probe: {why}"

    # ---- the loop -------------------------------------------------------------------------------
    def _loop(self) -> None:
        try:
            while not self._stopping.is_set():
                started = time.monotonic()
                try:
                    self._reconcile()
                    self._probe_all()
                except Exception as exc:  # keep supervising; say what went wrong
                    self._emit(EventName.SUPERVISOR_ERROR, error=repr(exc))
                self._stopping.wait(
                    max(0.0, self.config.probe_period - (time.monotonic() - started)))
        finally:
            # Stop the replicas from this thread: they die with it (PR_SET_PDEATHSIG), so they
            # must be gone, gracefully, before it ends.
            self._stop_all()

    def _stop_all(self) -> None:
        with self._lock:
            pods = [p for ps in self.pods.values() for p in ps]
        # SIGTERM everything at once, then a second SIGTERM to cut the drain short
        stoppers = [threading.Thread(target=stop_fast, args=(p,)) for p in pods]
        for t in stoppers:
            t.start()
        for t in stoppers:
            t.join(15)

    def _reconcile(self) -> None:
        now = time.monotonic()
        with self._lock:
            changed = [self._reap(color, p, now) for color in COLORS
                       for p in list(self.pods[color]) if p.exit_code() is not None]
            changed += [self._roll(color) for color in COLORS]
        if any(changed):
            self._on_change()

    def _reap(self, color: str, p: ReplicaProcess, now: float) -> bool:
        """An exited replica: gone for good when it was told to stop, else restarted after
        a back-off that doubles (CrashLoopBackOff). Whether the endpoints changed."""
        code = p.exit_code()
        if p.terminating:
            self.pods[color].remove(p)
            self._forget(p)
            self._emit(EventName.REPLICA_TERMINATED, color=color, replica=p.name, code=code,
                       expected=True, **_shutdown_timing(p))
            return True
        if p.name not in self._restart_at:
            backoff = self._backoff.get(p.name, self.config.restart_backoff)
            self._restart_at[p.name] = now + backoff
            self._backoff[p.name] = min(backoff * 2, MAX_BACKOFF_S)
            tail = p.log_tail(1)
            self._emit(EventName.REPLICA_TERMINATED, color=color, replica=p.name, code=code,
                       expected=False, last_log=tail[-1] if tail else "")
            was_ready, p.ready = p.ready, False
            return was_ready
        if now >= self._restart_at[p.name]:
            del self._restart_at[p.name]
            p.restarts += 1
            self._probes[p.name] = _Probe()
            p.start()
            self._emit(EventName.REPLICA_STARTED, color=color, replica=p.name, pid=p.pid,
                       restart=p.restarts)
        return False

    def _roll(self, color: str) -> bool:
        """Old template out, new one in (Recreate, for the idle colour), then the count."""
        t = self.templates[color]
        live = [p for p in self.pods[color] if not p.terminating]
        stale = [p for p in live if self._gen_of.get(p.name) != t.generation]
        for p in stale:
            self._terminate(p)
        current = [p for p in live if p not in stale]
        for _ in range(t.desired - len(current)):
            self._spawn(color, t)
        # scale down: unready replicas first, then the newest
        victims = sorted(current, key=lambda p: (p.ready, -p.started_at))
        extra = victims[:max(0, len(current) - t.desired)]
        for p in extra:
            self._terminate(p)
        return bool(stale or extra)

    def _spawn(self, color: str, t: Template) -> None:
        index = self._next_index[color]
        self._next_index[color] += 1
        service = getattr(self.config, "service_name", SERVICE_NAME)
        name = f"{service}-{color}-{index}"
        env = {"APP_VERSION": t.version, "APP_COLOR": color, "REPLICA_NAME": name,
               "SERVICE_NAME": service, "FAULTS": json.dumps(t.faults), **self._env}
        pod = ReplicaProcess(name, color, t.version, self.workdir, env, self.config.app_cmd)
        pod.start()
        self.pods[color].append(pod)
        self._gen_of[name] = t.generation
        self._probes[name] = _Probe()
        self._emit(EventName.REPLICA_STARTED, color=color, replica=name, pid=pod.pid,
                   version=t.version)

    def _terminate(self, pod: ReplicaProcess) -> None:
        """Pod deletion: out of the endpoints and SIGTERM at the same moment (as Kubernetes
        does), SIGKILL after the grace period."""
        pod.terminating = True
        pod.sigterm_at = time.time()
        self._restart_at.pop(pod.name, None)
        held = self._connections_of(pod.name)
        pod.held_at_sigterm = held or frozenset()
        self._emit(EventName.REPLICA_TERMINATING, color=pod.color, replica=pod.name,
                   drain_window_s=self.config.drain_seconds,
                   **({} if held is None else {"connections": len(held)}))
        threading.Thread(target=self._stop_watching, args=(pod,),
                         name=f"zd-stop-{pod.name}", daemon=True).start()

    def _stop_watching(self, pod: ReplicaProcess) -> None:
        """Stop the replica, looking every 50 ms while it lives at the client connections the
        front still holds to it: those it already held when told to stop and still holds at the
        last look before its drain window ends are what it never closed during the whole drain,
        neither with an answer nor while idle for at least half the window (shutdown evidence:
        its exit closes them, under clients that may be sending on them). A connection that
        came after the SIGTERM (the endpoint removal propagating), or was busy late in the
        window, is not counted: on a busy machine those are late, not left open."""
        stopper = threading.Thread(target=pod.stop, args=(self.config.grace_seconds,),
                                   name=f"zd-sigterm-{pod.name}", daemon=True)
        stopper.start()
        drain_end = (pod.sigterm_at or time.time()) + self.config.drain_seconds
        while stopper.is_alive():
            held = self._connections_of(pod.name)
            if held is not None and pod.alive() and time.time() < drain_end:
                # left open: held since the SIGTERM and idle for half the window or more (a
                # server that closes idle connections has had its chance; one busy or just
                # used at the end is a busy machine's lateness)
                idle_before = time.monotonic() - self.config.drain_seconds / 2
                pod.open_at_drain_end = sum(
                    1 for c in held & pod.held_at_sigterm
                    if getattr(c, "last_active", 0.0) <= idle_before and c.quiet_and_open())
            stopper.join(EXIT_SAMPLE_S)

    def _forget(self, pod: ReplicaProcess) -> None:
        for table in (self._gen_of, self._probes, self._backoff, self._restart_at):
            table.pop(pod.name, None)

    # ---- readiness probes -------------------------------------------------------------------
    def _probe_all(self) -> None:
        with self._lock:
            pods = [p for ps in self.pods.values() for p in ps
                    if not p.terminating and p.alive() and p.name not in self._restart_at]
        for p in pods:
            p.poll_port()
        path = getattr(self.config, "readiness_path", READINESS_PATH)
        probed = [(p, self._pool.submit(probe, p.port, path)) for p in pods if p.port]
        changed = [self._admit(pod, *future.result()) for pod, future in probed]
        if any(changed):
            self._on_change()

    def _admit(self, pod: ReplicaProcess, ok: bool, why: str) -> bool:
        """Apply one probe result to the thresholds; whether the replica's readiness flipped."""
        with self._lock:
            if pod.terminating:
                return False
            p = self._probes.setdefault(pod.name, _Probe())
            p.last = why
            if ok:
                p.successes, p.failures = p.successes + 1, 0
                if pod.ready or p.successes < self.config.success_threshold:
                    return False
                pod.ready = True
                self._backoff.pop(pod.name, None)
                self._emit(EventName.REPLICA_READY, color=pod.color, replica=pod.name)
                return True
            p.failures, p.successes = p.failures + 1, 0
            if not pod.ready or p.failures < self.config.failure_threshold:
                return False
            pod.ready = False
            self._emit(EventName.REPLICA_UNREADY, color=pod.color, replica=pod.name, reason=why)
            return True

    def _emit(self, name: EventName, **detail: Any) -> None:
        self.events.emit(Source.PLATFORM, name, **detail)


def _shutdown_timing(pod: ReplicaProcess) -> dict[str, float]:
    """Seconds from SIGTERM to exit, as precise as the stop thread saw it (else now)."""
    if pod.sigterm_at is None:
        return {}
    exited = pod.exited_at if pod.exited_at is not None else time.time()
    timing: dict[str, float | int] = {"seconds_after_sigterm": round(max(0.0, exited - pod.sigterm_at), 3)}
    if pod.open_at_drain_end is not None:
        timing["connections_at_drain_end"] = pod.open_at_drain_end
    return timing


def stop_fast(pod: ReplicaProcess) -> None:
    pod.signal(signals.SIGTERM)
    if pod.wait(0.2) is None:
        pod.signal(signals.SIGTERM)
        if pod.wait(5) is None:
            pod.kill_group()
            pod.wait(5)


READINESS_PATH = "/health/ready"  # the payment-service's; a profile names any other


def probe(port: int, path: str = READINESS_PATH) -> tuple[bool, str]:
    """The readinessProbe: GET the readiness path (2xx/3xx: ready); why not, in a few words."""
    status, body = http_call("GET", port, path, None, {}, timeout=1.0)
    if status is None:
        return False, body
    if 200 <= status < 400:
        return True, f"HTTP {status}"
    return False, f"HTTP {status} {_summary(body)[:300]}".strip()


def _summary(body: str) -> str:
    try:
        data = json.loads(body)
        if not isinstance(data, dict) or "status" not in data:  # another service's readiness
            return json.dumps(data)[:160] if data is not None else ""
        summary = str(data.get("status", ""))
        bad = [f"{name}: {c.get('status')}" + (f" ({c['details']})" if c.get("details") else "")
               for name, c in (data.get("components") or {}).items()
               if isinstance(c, dict) and c.get("status") not in ("healthy", None)]
        return summary + (f" [{'; '.join(bad)}]" if bad else "")
    except (ValueError, AttributeError):
        return body[:80]


def http_call(method: str, port: int, path: str, body: str | None, headers: dict,
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
