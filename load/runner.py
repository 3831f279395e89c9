"""Run Locust (load/locustfile.py) in its own process(es) and hand back the merged ledger.

Locust never runs inside the calling process: gevent monkey-patches sockets, threads and ssl,
which breaks pytest and most libraries. ``LoadRun`` starts ``python -m locust`` headless — one
standalone process, or ``--master --expect-workers N`` plus N ``--worker`` processes so the load
is not bound to one core — passes settings through environment variables (see locustfile.py),
watches the progress files the processes write, and on ``stop()`` ends them gracefully
(SIGTERM: Locust stops the users, letting an in-flight request finish within the request timeout,
fires test_stop, flushes the ledger, exits), kills what did not end in time, and merges the
per-process ledgers into one ``ledger.jsonl`` sorted by ``t_start``.

Every path out — a bad plan, an unreachable target, Locust failing to start, an exception in the
``with`` body, Ctrl-C — leaves no Locust process behind: each is started in its own session and
killed (by its process id) when it does not end. Each process also watches its parent and exits
when the harness is gone (ZERODROP_PARENT_PID).
"""
from __future__ import annotations

import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable
from urllib.parse import urlsplit

from zerodrop.load.arrivals import ARRIVALS, ENV_PROFILE, LATE_S, MONEY_ACCOUNTS, SCHEDULED_POPULATIONS
from zerodrop.profiles import profile as profiles
from zerodrop.profiles.profile import Profile
from zerodrop.load.ledger import (ENV_LEDGER_DIR, ENV_LEDGER_OFF, ENV_ROLE, MergeSummary,
                                  merge_ledgers, read_progress)
from zerodrop.records.progress import Progress
from zerodrop.records.results import LoadTarget

LOCUSTFILE = Path(__file__).resolve().with_name("locustfile.py")
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
LOG_TAIL_LINES = 30
SATURATION_CPU_SHARE = 0.9  # a generator process this busy sets the pace itself
SATURATION_SHORTFALL = 0.8  # below this share of the target, the result explains why
LATE_SHARE = 0.02  # more arrivals than this share started LATE_S late: the generator's CPU set the pace
MISSED_SHARE = 0.01  # more arrivals than this share skipped at the concurrency cap: the cap did


class LoadError(Exception):
    """A load run cannot start or went wrong; the message is one line for a person."""


@dataclass(frozen=True)
class LoadPlan:
    """What load to put on which target.

    Open model (load/arrivals.py): ``rate`` requests/s are STARTED on a schedule (``arrivals``:
    constant or poisson) by the populations ``keepalive``/``fresh``/``retry`` (``populations``:
    weights), whatever the answers' latency; the ``idle`` population adds ``idle_clients``
    kept-alive clients that each send once every ``idle_period_s`` (set it above the target's
    drain window). ``max_inflight`` is the generator's concurrency cap per process; ``users`` is
    how many keep-alive connections are opened before the schedule starts (the pool grows on
    demand). ``max_duration`` is a hard cap (Locust --run-time); ``stop()`` usually ends the run
    earlier. ``workers`` > 0 splits the schedule over that many Locust worker processes."""

    host: str
    token: str = "test-token"
    users: int = 20
    rate: float = 200.0
    max_duration: float = 120.0
    workers: int = 0
    request_timeout: float = 5.0
    ledger_dir: Path | None = None  # None: a fresh temporary directory
    mix: dict[str, int] | None = None  # request kinds' weights, keys from TASKS; None: the default
    allow_hosts: tuple[str, ...] = ()  # non-loopback hosts allowed as targets (e.g. pod IPs)
    ledger: bool = True  # False: write no records (only the benchmark compares without)
    arrivals: str = "constant"
    populations: dict[str, int] | None = None  # None: keepalive 60, fresh 15, retry 25
    idle_clients: int = 8
    idle_period_s: float = 3.0
    max_inflight: int = 400
    max_attempts: int = 3
    accounts: tuple[str, ...] = MONEY_ACCOUNTS  # the accounts credits, debits and balance reads use
    profile: Profile | None = None  # the service profile (its requests are the mix); None: the default

    @property
    def service(self) -> Profile:
        return self.profile if self.profile is not None else profiles.load()

    def validate(self) -> None:
        """Raise ``LoadError`` with one line naming the bad setting and the fix."""
        if not isinstance(self.users, int) or isinstance(self.users, bool) or self.users <= 0:
            raise LoadError(f"load users must be a positive integer, got {self.users!r}")
        if not _positive(self.rate):
            raise LoadError(f"load rate must be > 0 requests/s, got {self.rate!r}")
        if not _positive(self.max_duration):
            raise LoadError(f"load max_duration must be > 0 seconds, got {self.max_duration!r}")
        if not _positive(self.request_timeout):
            raise LoadError(f"load request_timeout must be > 0 seconds, got {self.request_timeout!r}")
        if not isinstance(self.workers, int) or isinstance(self.workers, bool) or self.workers < 0:
            raise LoadError(f"load workers must be 0 (one process) or a positive number of worker processes, "
                            f"got {self.workers!r}")
        try:
            parts = urlsplit(self.host)
            hostname = parts.hostname
            parts.port  # noqa: B018 - raises on a bad port
        except (ValueError, TypeError, AttributeError):
            raise LoadError(f"load host {self.host!r} is not a URL; use e.g. http://127.0.0.1:8080")
        if parts.scheme not in ("http", "https") or not hostname:
            raise LoadError(f"load host {self.host!r} is not an http:// URL; use e.g. http://127.0.0.1:8080")
        if hostname not in LOOPBACK_HOSTS and hostname not in self.allow_hosts:
            raise LoadError(f"load host {hostname!r} is not loopback: this project only loads 127.0.0.1/localhost "
                            "(add it to LoadPlan.allow_hosts for a pod IP you own)")
        if self.mix is not None:
            known = [r.name for r in self.service.requests]
            unknown = sorted(set(self.mix) - set(known))
            if unknown:
                raise LoadError(f"load mix has unknown requests {unknown}; the profile "
                                f"{self.service.name} knows {known}")
            if any(not isinstance(v, int) or v < 0 for v in self.mix.values()) or sum(self.mix.values()) <= 0:
                raise LoadError(f"load mix weights must be integers >= 0 with at least one > 0, got {self.mix}")
        if self.arrivals not in ARRIVALS:
            raise LoadError(f"load arrivals must be one of {', '.join(ARRIVALS)}, got {self.arrivals!r}")
        if self.populations is not None:
            unknown = sorted(set(self.populations) - set(SCHEDULED_POPULATIONS))
            if unknown:
                raise LoadError(f"load populations has unknown {unknown}; known: {list(SCHEDULED_POPULATIONS)} "
                                "(the idle population is set by idle_clients)")
            if any(not isinstance(v, int) or isinstance(v, bool) or v < 0 for v in self.populations.values()):
                raise LoadError(f"load population weights must be integers >= 0, got {self.populations}")
            if sum(self.populations.values()) <= 0 and self.idle_clients <= 0:
                raise LoadError("load populations are all 0 and there are no idle clients: nothing would be sent")
        for name in ("idle_clients", "max_inflight", "max_attempts"):
            value = getattr(self, name)
            low = 0 if name == "idle_clients" else 1
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise LoadError(f"load {name} must be an integer >= {low}, got {value!r}")
        if not _positive(self.idle_period_s):
            raise LoadError(f"load idle_period_s must be > 0 seconds, got {self.idle_period_s!r}")
        if not self.accounts or not all(isinstance(a, str) and a and "," not in a for a in self.accounts):
            raise LoadError(f"load accounts must be non-empty names without commas, got {self.accounts!r}")

    @property
    def processes(self) -> int:
        """Locust processes that run the schedule (the master runs none)."""
        return max(1, self.workers)

    @property
    def rate_per_user(self) -> float:
        """The scheduled rate of each process (one Locust user per process runs it)."""
        return self.rate / self.processes

    @property
    def idle_rate(self) -> float:
        return self.idle_clients / self.idle_period_s

    @property
    def total_rate(self) -> float:
        """Every request the plan asks for per second: the schedule plus the idle clients."""
        scheduled = self.rate if self.populations is None or sum(self.populations.values()) > 0 else 0.0
        return scheduled + self.idle_rate


def _positive(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and x > 0


@dataclass(frozen=True)
class LoadResult:
    """The outcome of one run. ``requests``/``failures``/``duration_s`` come from the merged
    ledger (exact), ``duration_s`` being first start to last end. ``saturated``: see
    ``LoadRun.stop``; ``detail`` says why. ``locust_exit_code`` is the master's/standalone's
    (1 when any request failed — expected during a fault; -9 when it had to be killed)."""

    ledger_path: Path
    requests: int
    failures: int
    duration_s: float
    achieved_rps: float
    target_rps: float
    saturated: bool
    locust_exit_code: int
    log_tail: list[str]
    detail: str = ""
    shortfall: str = ""  # "cap" | "cpu": why the generator could not keep its schedule
    scheduled: int = 0
    late: int = 0
    missed_cap: int = 0
    max_inflight: int = 0

    def load_target(self) -> LoadTarget:
        return LoadTarget(self.target_rps, self.achieved_rps, self.saturated, self.detail,
                          shortfall=self.shortfall, scheduled=self.scheduled, late=self.late,
                          missed_cap=self.missed_cap, max_inflight=self.max_inflight)


@dataclass
class _Proc:
    role: str
    popen: subprocess.Popen
    log: Path
    out: Path


class GeneratorRun:
    """What every load generator shares as a context manager: leaving the block stops a run
    still going (a stop failure is raised only when nothing else is) and always cleans up."""

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self._running():
                try:
                    self.stop()
                except LoadError:
                    if exc[0] is None:
                        raise
        finally:
            self._cleanup()

    def _running(self) -> bool:
        raise NotImplementedError

    def _cleanup(self) -> None:
        raise NotImplementedError

    def stop(self, timeout: float = 20.0) -> "LoadResult":
        raise NotImplementedError


class LoadRun(GeneratorRun):
    """One load run, as a context manager: ``with LoadRun(plan) as run: ...; result = run.stop()``.

    ``__exit__`` always stops everything (and merges the ledger when it can); ``result`` holds
    the ``LoadResult`` of the last ``stop()``.
    """

    def __init__(self, plan: LoadPlan, progress: Callable[[Progress], None] | None = None):
        self.plan = plan
        self.on_progress = progress
        self.ledger_dir = Path(plan.ledger_dir) if plan.ledger_dir else None
        self._procs: list[_Proc] = []
        self._t0: float | None = None
        self._monitor = None
        self._cpu0: dict[int, float | None] = {}
        self._cpu0_t = 0.0
        self.result: LoadResult | None = None

    # -- lifecycle ------------------------------------------------------------------------------

    def _running(self) -> bool:
        return bool(self._procs)

    def _cleanup(self) -> None:
        self._kill_all()

    def start(self, ready_timeout: float = 20.0, preflight: bool = True) -> "LoadRun":
        """Validate, check the target answers GET /health (``preflight``), start Locust and return
        once requests are flowing. Raises ``LoadError`` (one line; with Locust's last log lines
        when Locust was the problem) and leaves nothing running."""
        if self._procs:
            raise LoadError("this LoadRun is already started; use a new LoadRun for another run")
        self.plan.validate()
        if preflight:
            preflight_check(self.plan.host, self.plan.token, path=self.plan.service.health)

        def launch(directory: Path) -> None:
            self.ledger_dir = directory
            self._launch()
            self._wait_flowing(ready_timeout)

        self.ledger_dir, self._monitor = begin_run(self.plan, self.ledger_dir, launch,
                                                   self._kill_all, self.progress, self.on_progress)
        return self

    def _env(self, role: str) -> dict[str, str]:
        env = dict(os.environ)
        for name in [k for k in env if k.startswith("ZERODROP_")]:
            env.pop(name, None)  # only the plan speaks to the locustfile
        index = sum(p.role == "worker" for p in self._procs) if role == "worker" else 0
        env.update(locust_env(self.plan, str(self.ledger_dir), role, index))
        env.update({
            "ZERODROP_PARENT_PID": str(os.getpid()),
        })
        return env

    def _spawn(self, role: str, args: list[str]) -> None:
        assert self.ledger_dir is not None
        tag = role if role != "worker" else f"worker-{sum(p.role == 'worker' for p in self._procs)}"
        log = self.ledger_dir / f"locust-{tag}.log"
        out = self.ledger_dir / f"locust-{tag}.out"
        cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--logfile", str(log),
               "--loglevel", "INFO", *args]
        with open(out, "wb") as out_f:
            popen = subprocess.Popen(cmd, cwd=self.ledger_dir, env=self._env(role), stdin=subprocess.DEVNULL,
                                     stdout=out_f, stderr=subprocess.STDOUT, start_new_session=True)
        self._procs.append(_Proc(role, popen, log, out))

    def _launch(self) -> None:
        p = self.plan
        common = locust_args(p)
        self._t0 = time.time()
        if p.workers == 0:
            self._spawn("standalone", common)
            return
        port = _free_port()
        self._spawn("master", [*common, "--master", "--expect-workers", str(p.workers),
                               "--expect-workers-max-wait", "30",
                               "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port)])
        for _ in range(p.workers):
            self._spawn("worker", ["--worker", "--master-host", "127.0.0.1", "--master-port", str(port)])

    def _wait_flowing(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = [p for p in self._procs if p.popen.poll() is not None]
            if dead:
                d = dead[0]
                raise LoadError(f"Locust {d.role} exited with code {d.popen.returncode} before requests flowed; "
                                f"last log lines: {' | '.join(self.log_tail()[-8:])}")
            if self.progress().requests > 0:
                self._cpu0 = {p.popen.pid: cpu_demand(p.popen.pid) for p in self._procs}
                self._cpu0_t = time.monotonic()
                return
            time.sleep(0.1)
        raise LoadError(f"no request completed within {timeout:.0f}s of starting Locust against {self.plan.host}; "
                        f"last log lines: {' | '.join(self.log_tail()[-8:])}")

    # -- while running --------------------------------------------------------------------------

    def progress(self) -> Progress:
        """Counters summed over the processes' progress files (they are replaced every ~0.5 s)."""
        processes = read_progress(self.ledger_dir) if self.ledger_dir is not None else []
        elapsed = time.time() - self._t0 if self._t0 else 0.0
        return Progress.summed(processes, elapsed, float(self.plan.max_duration))

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> list[str]:
        """The last lines of the Locust logs (the master's/standalone's first, then workers')."""
        tail: list[str] = []
        for p in self._procs:
            for path in (p.log, p.out):
                try:
                    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
                except OSError:
                    continue
                tail.extend(f"[{p.role}] {line}" for line in text[-lines:] if line.strip())
        return tail  # at most `lines` per process, the head's first: workers cannot crowd them out

    @property
    def pids(self) -> list[int]:
        return [p.popen.pid for p in self._procs]

    # -- stopping -------------------------------------------------------------------------------

    def stop(self, timeout: float = 20.0) -> LoadResult:
        """SIGTERM the master/standalone (workers get Locust's quit message, then SIGTERM too),
        wait up to ``timeout`` for every process, kill what remains, merge the ledgers.

        ``saturated`` is True when the generator itself set the pace, so its rate and latencies
        are suspect: one Locust process demanded >= 90 % of a core between the first request and
        the stop (CPU time + time runnable but waiting, from /proc/PID/schedstat — waiting counts,
        because on a shared machine a starved generator falls behind like a busy one), or Locust
        logged its own "CPU usage above 90%" warning. Not from latency: in a closed loop a saturated
        client inflates its own measured latency, so a "fast target but low rate" rule cannot see
        it. A shortfall below 80 % of the target without saturation is explained in ``detail``
        (the target's latency or too few users) and is not called saturation.
        """
        if self._monitor is not None:
            self._monitor.stop()
            self._monitor = None
        if not self._procs:
            if self.result is not None:
                return self.result
            raise LoadError("LoadRun.stop() called before start()")
        demand = self._cpu_share()
        head = [p for p in self._procs if p.role != "worker"]
        workers = [p for p in self._procs if p.role == "worker"]
        # a worker that ended while its master still ran took its share of the schedule (and
        # its unflushed ledger lines) with it: never a silent pass
        lost = [(f"worker-{i}", p.popen.returncode) for i, p in enumerate(workers)
                if p.popen.poll() is not None] if all(h.popen.poll() is None for h in head) else []
        for p in head:
            _signal(p.popen, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        _wait_all(head, deadline)
        # the master told its workers to quit; they let in-flight requests end (--stop-timeout =
        # request timeout + 1 s) before they flush and exit. One that missed it gets SIGTERM.
        _wait_all(workers, min(deadline, time.monotonic() + self.plan.request_timeout + 3.0))
        for p in workers:
            _signal(p.popen, signal.SIGTERM)
        _wait_all(workers, deadline)
        killed = self._kill_all(keep=True)
        log_tail = self.log_tail()
        exit_code = head[0].popen.returncode if head[0].popen.returncode is not None else -9
        self._procs = []
        assert self.ledger_dir is not None
        merged = merge_ledgers(self.ledger_dir)
        last = self.progress()
        cpu_warning = any("CPU usage above" in line for line in log_tail) or last.saturated
        result = _result(merged, self.plan, exit_code, log_tail, killed, cpu_warning, demand, last)
        if lost:
            named = ", ".join(f"{tag} (exited with {code} while the master ran)" for tag, code in lost)
            why = f"lost load worker{'s' if len(lost) > 1 else ''} {named}: the ledger is incomplete"
            result = replace(result, saturated=True, shortfall=result.shortfall or "lost",
                             detail="; ".join(d for d in (why, result.detail) if d))
        self.result = result
        return self.result

    def _cpu_share(self) -> float | None:
        """The highest CPU demand of one Locust process since requests began to flow, as a share
        of one core: (time on a CPU + time runnable but waiting for one) / wall time. Waiting
        counts because on a shared machine a starved generator falls behind just like a busy one."""
        wall = time.monotonic() - self._cpu0_t
        if not self._cpu0 or wall < 0.5:
            return None
        shares = []
        for p in self._procs:
            before, after = self._cpu0.get(p.popen.pid), cpu_demand(p.popen.pid)
            if before is not None and after is not None:
                shares.append((after - before) / wall)
        return max(shares) if shares else None

    def _kill_all(self, keep: bool = False) -> list[str]:
        """SIGKILL every process (group) still alive; returns the roles that had to be killed."""
        killed = []
        for p in self._procs:
            if p.popen.poll() is None:
                killed.append(p.role)
                try:
                    os.killpg(p.popen.pid, signal.SIGKILL)  # its own session: the group is just it
                except (ProcessLookupError, PermissionError):
                    pass
                try:
                    p.popen.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    pass
        if not keep:
            self._procs = []
        return killed


def begin_run(plan: LoadPlan, ledger_dir: Path | None, launch: Callable[[Path], None],
              abort: Callable[[], object], progress: Callable[[], Progress],
              on_progress: Callable[[Progress], None] | None):
    """The start every load generator shares: a valid plan, a fresh ledger directory, the
    launch (``abort`` on any failure, so nothing is left running), then the progress monitor.
    Returns (ledger directory, monitor or None)."""
    plan.validate()
    directory = _prepare_dir(ledger_dir)
    try:
        launch(directory)
    except BaseException:
        abort()
        raise
    monitor = None
    if on_progress is not None:
        from zerodrop.load.progress import ProgressMonitor
        monitor = ProgressMonitor(progress, on_progress)
        monitor.start()
    return directory, monitor


def locust_args(plan: LoadPlan) -> list[str]:
    """Locust's command line for a plan: headless, ONE Locust user per process (it runs that
    process's share of the open-model schedule), the hard cap, and a stop timeout that lets the
    requests in flight end."""
    run_time = f"{max(1, math.ceil(plan.max_duration))}s"
    users = str(plan.processes)
    return ["--headless", "--host", plan.host, "-u", users, "-r", users,
            "--run-time", run_time, "--only-summary",
            "--stop-timeout", str(math.ceil(plan.request_timeout + 2))]


def locust_env(plan: LoadPlan, ledger_dir: str, role: str, index: int = 0) -> dict[str, str]:
    """The locustfile's settings (see load/locustfile.py) for one process of a plan; ``index``
    is a worker's number (its share of the idle clients)."""
    env = {
        ENV_LEDGER_DIR: ledger_dir,
        ENV_ROLE: role,
        "ZERODROP_TOKEN": plan.token,
        "ZERODROP_RATE": repr(plan.rate_per_user),
        "ZERODROP_ARRIVALS": plan.arrivals,
        "ZERODROP_IDLE_CLIENTS": str(plan.idle_clients),
        "ZERODROP_IDLE_PERIOD": repr(float(plan.idle_period_s)),
        "ZERODROP_MAX_INFLIGHT": str(plan.max_inflight),
        "ZERODROP_MAX_ATTEMPTS": str(plan.max_attempts),
        "ZERODROP_WARM_CONNECTIONS": str(max(1, plan.users // plan.processes)),
        "ZERODROP_MONEY_ACCOUNTS": ",".join(plan.accounts),
        "ZERODROP_PROCESS_INDEX": str(index),
        "ZERODROP_PROCESSES": str(plan.processes),
        "ZERODROP_REQUEST_TIMEOUT": repr(float(plan.request_timeout)),
        "PYTHONUNBUFFERED": "1",
    }
    if plan.mix is not None:
        env["ZERODROP_MIX"] = json.dumps(plan.mix)
    if plan.profile is not None:
        env[ENV_PROFILE] = plan.profile.text
    if plan.populations is not None:
        env["ZERODROP_POPULATIONS"] = json.dumps(plan.populations)
    if not plan.ledger:
        env[ENV_LEDGER_OFF] = "1"
    return env


def cpu_demand(pid: int) -> float | None:
    """Seconds process ``pid`` has run on a CPU plus waited runnable for one (/proc/PID/schedstat);
    None when the kernel does not say."""
    try:
        run_ns, wait_ns, _slices = Path(f"/proc/{pid}/schedstat").read_text().split()[:3]
        return (int(run_ns) + int(wait_ns)) / 1e9
    except (OSError, ValueError):
        return None


def _signal(popen: subprocess.Popen, sig: int) -> None:
    if popen.poll() is None:
        try:
            popen.send_signal(sig)
        except ProcessLookupError:
            pass


def _wait_all(procs: Iterable[_Proc], deadline: float) -> None:
    for p in procs:
        try:
            p.popen.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            pass


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _prepare_dir(directory: Path | None) -> Path:
    if directory is None:
        return Path(tempfile.mkdtemp(prefix="zerodrop-ledger-"))
    directory.mkdir(parents=True, exist_ok=True)
    leftovers = sorted(p.name for p in directory.iterdir()
                       if p.name.startswith(("ledger", "progress-")))
    if leftovers:
        raise LoadError(f"ledger dir {directory} already holds {leftovers[0]} from another run; "
                        "give each run a fresh directory")
    return directory


def preflight_check(host: str, token: str, timeout: float = 3.0, path: str = "/health") -> None:
    """The target must answer GET on its health path with 2xx before any load starts."""
    import requests

    url = host.rstrip("/") + path
    try:
        resp = requests.get(url, timeout=timeout, headers={"Authorization": f"Bearer {token}"})
    except requests.RequestException as exc:
        reason = type(exc).__name__
        if isinstance(exc, requests.ConnectionError):
            reason = "connection refused or unreachable"
        elif isinstance(exc, requests.Timeout):
            reason = f"no answer within {timeout:.0f}s"
        raise LoadError(f"load target {host} does not answer GET {path} ({reason}); "
                        "start the service or fix the host before starting load") from None
    if not 200 <= resp.status_code < 300:
        raise LoadError(f"load target {host} answered GET {path} with HTTP {resp.status_code}; "
                        "it must be healthy before load starts")


def _result(merged: MergeSummary, plan: LoadPlan, exit_code: int, log_tail: list[str],
            killed: list[str], cpu_warning: bool, cpu_share: float | None,
            schedule: Progress | None = None) -> LoadResult:
    """The run's result from the merge's summary (the ledger is not read again), the processes'
    last schedule counters, and the judgement whether the GENERATOR kept its schedule (see
    ``LoadRun.stop``).

    The achieved rate counts requests over the span in which they were STARTED: an open model
    starts them on schedule whatever the answers' latency, so a slow service lowers no rate.
    The generator fell short of its schedule for one of two reasons, and ``shortfall`` says
    which: ``cap`` (more than 1 % of the arrivals were skipped because ``max_inflight``
    requests were already in flight) or ``cpu`` (more than 2 % of the arrivals started over
    0.2 s late, or most skipped arrivals were already late when skipped: a stall's burst filled
    the cap, or a Locust process demanded >= 90 % of a core, or Locust warned of its CPU).
    """
    span = merged.start_span_s
    achieved = merged.requests / span if span > 0 else 0.0
    detail: list[str] = []
    shortfall = ""
    scheduled = schedule.scheduled if schedule is not None else 0
    late = schedule.late if schedule is not None else 0
    missed = schedule.missed_cap if schedule is not None else 0
    missed_late = schedule.missed_late if schedule is not None else 0
    if scheduled and missed > MISSED_SHARE * scheduled:
        if missed_late * 2 > missed:
            # the cap filled with the burst of arrivals that were due while the generator
            # stalled: the stall (its CPU) is the cause, the cap only where it showed
            shortfall = "cpu"
            detail.append(f"the generator's own CPU: it stalled, and the arrivals due meanwhile filled its "
                          f"concurrency cap ({plan.max_inflight} in flight per process): {missed:,} of "
                          f"{scheduled:,} scheduled requests were never sent")
        else:
            shortfall = "cap"
            detail.append(f"the generator's concurrency cap ({plan.max_inflight} in flight per process) was "
                          f"reached: {missed:,} of {scheduled:,} scheduled requests were never sent")
    if scheduled and late > LATE_SHARE * scheduled:
        shortfall = shortfall or "cpu"
        detail.append(f"the generator's own CPU: {late:,} of {scheduled:,} requests started more than "
                      f"{LATE_S * 1000:.0f} ms after their planned time")
    if cpu_share is not None and cpu_share >= SATURATION_CPU_SHARE:
        shortfall = shortfall or "cpu"
        detail.append(f"a Locust process demanded {cpu_share:.0%} of a core (on it or waiting for it): "
                      "the generator, not the target, set the pace")
    if cpu_warning:
        shortfall = shortfall or "cpu"
        detail.append("Locust reported CPU usage above 90%")
    if killed:
        detail.append(f"killed after the stop timeout: {', '.join(killed)}")
    return LoadResult(ledger_path=merged.path, requests=merged.requests, failures=merged.failures,
                      duration_s=merged.duration_s, achieved_rps=achieved, target_rps=float(plan.total_rate),
                      saturated=bool(shortfall), locust_exit_code=exit_code, log_tail=log_tail,
                      detail="; ".join(detail), shortfall=shortfall, scheduled=scheduled, late=late,
                      missed_cap=missed, max_inflight=schedule.max_inflight if schedule is not None else 0)
