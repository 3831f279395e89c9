"""Faults on purpose, through the Platform interface only: the catalogue a game day draws from.

A ``FaultSpec`` names a kind from ``KINDS``, the colour it hits (``old`` / ``new``: relative to
the switch, resolved when the experiment is built) and when it starts and ends, by the steps of
the method: ``at="deploy"`` (the new version starts with it: a bad release), ``at="before
<step>"`` / ``"after <step>"`` (a step whose name starts with ``<step>``), ``until`` the same
way, or empty (until the experiment's rollbacks). Each kind says what it needs; ``unusable``
gives the one line that lists what can be used instead.

The ``Injector`` applies faults and removes every one of them at the end: the last step, the
scenario's rollback on failure, and a ``with`` block around the whole run, so that a failure or
Ctrl-C leaves no fault behind. Each fault is a window on the timeline (``fault applied`` /
``fault removed``, and the scenario's ``FaultWindow`` for the verdict).
"""
from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable

from zerodrop.platforms.base import Platform, PlatformError
from zerodrop.records.events import EventName, Source

Remover = Callable[[], None]


@dataclass(frozen=True)
class FaultKind:
    name: str
    summary: str
    knobs: bool = False      # through the reference service's fault API (its FAULTS knobs)
    instant: bool = False    # a moment (a kill), not a window: nothing to remove
    deploy_only: bool = False  # only as a release's start faults (at="deploy")
    network: bool = False    # tc netem: only where the platform reaches a replica's netns


KINDS: dict[str, FaultKind] = {k.name: k for k in (
    FaultKind("sigterm", "SIGTERM to one replica (a graceful stop; it is restarted)", instant=True),
    FaultKind("sigkill", "SIGKILL to one replica (no drain; it is restarted)", instant=True),
    FaultKind("delete-pod", "delete one replica as a pod deletion (a replacement starts)",
              instant=True),
    FaultKind("latency", "added latency on the API (latency_ms)", knobs=True),
    FaultKind("error-rate", "a share of API answers become 500 (rate, 0..1)", knobs=True),
    FaultKind("db-unreachable", "the database unreachable: readiness and writes fail",
              knobs=True),
    FaultKind("flapping-readiness", "one replica's readiness fails and recovers every "
              "period_s", knobs=True),
    FaultKind("crash-on-start", "the release exits at start (a bad release)", knobs=True,
              deploy_only=True),
    FaultKind("fails-smoke", "the release is ready but every payment answers 500 (fails its "
              "smoke test)", knobs=True, deploy_only=True),
    FaultKind("network", "tc netem delay_ms / loss_pct on the replicas' network", network=True),
)}


@dataclass(frozen=True)
class FaultSpec:
    kind: str
    target: str = "new"          # old | new (relative to the switch) or blue | green
    params: dict[str, Any] = field(default_factory=dict)
    at: str = "deploy"           # deploy | before <step> | after <step>
    until: str = ""              # before <step> | after <step> | "" (the rollbacks)

    def label(self, color: str) -> str:
        shown = ", ".join(f"{k} {v}" for k, v in sorted(self.params.items()))
        return f"{self.kind}{f' ({shown})' if shown else ''} on {color}"


class FaultError(ValueError):
    """A fault that cannot be used here; the message is one line listing what can."""


def unusable(spec: FaultSpec, platform: Platform, reference_service: bool) -> str | None:
    """Why ``spec`` cannot run on ``platform`` (one line with what can), or None."""
    kind = KINDS.get(spec.kind)
    if kind is None:
        return f"unknown fault {spec.kind!r}; known: {', '.join(KINDS)}"
    usable = usable_kinds(platform, reference_service)
    if spec.kind not in usable:
        why = ("the fault knobs belong to the reference payment-service"
               if kind.knobs and not reference_service else
               "this platform cannot reach a replica's network namespace" if kind.network
               else "this platform cannot do it")
        return f"fault {spec.kind!r} cannot run here ({why}); usable: {', '.join(usable)}"
    if kind.deploy_only and spec.at != "deploy":
        return f"fault {spec.kind!r} is a release's own (at='deploy'), not {spec.at!r}"
    if kind.instant and spec.at == "deploy":
        return f"fault {spec.kind!r} hits a running replica: give at='before|after <step>'"
    return None


def usable_kinds(platform: Platform, reference_service: bool) -> list[str]:
    return [k.name for k in KINDS.values()
            if (reference_service or not k.knobs) and (not k.network or platform.network_faults)]


def start_faults(specs: list[FaultSpec]) -> dict[str, Any]:
    """The FAULTS knobs a release starts with, from the specs at="deploy"."""
    knobs: dict[str, Any] = {}
    for s in specs:
        knobs.update(_knobs(s, on=True))
    return knobs


def _knobs(spec: FaultSpec, on: bool) -> dict[str, Any]:
    p = spec.params
    if spec.kind == "latency":
        return {"latency_ms": float(p.get("latency_ms", 300)) if on else 0.0}
    if spec.kind == "error-rate":
        return {"error_rate": float(p.get("rate", 0.3)) if on else 0.0}
    if spec.kind == "db-unreachable":
        return {"db_unreachable": on}
    if spec.kind == "crash-on-start":
        return {"crash_on_start": on}
    if spec.kind == "fails-smoke":
        return ({"error_rate": 1.0, "error_routes": "/api/payments"} if on
                else {"error_rate": 0.0, "error_routes": "/api/"})
    if spec.kind == "flapping-readiness":
        return {"readiness_fail": on}
    return {}


class Injector:
    """Applies faults on purpose and takes every one of them away again (``remove_all``), also
    when used as a context manager around a run that fails or is interrupted."""

    def __init__(self, platform: Platform, ctx: Any = None) -> None:
        self.platform, self.ctx = platform, ctx
        self._active: dict[str, tuple[str, Remover]] = {}  # name -> (colour, remover)
        self.errors: list[str] = []   # removals that failed: the report says so
        self.applied: list[str] = []  # every fault that was applied, in order
        # (t, replica) of each fault aimed at one replica: did it meet traffic? (the verdict)
        self.hits: list[tuple[float, str]] = []
        # (t, replica) of each readiness flap: did the platform take it out? (the verdict)
        self.flaps: list[tuple[float, str]] = []

    def apply(self, spec: FaultSpec, color: str) -> str:
        """Apply ``spec`` to ``color`` now; the fault's name on the timeline."""
        name = spec.label(color)
        kind = KINDS[spec.kind]
        t = time.time()
        remover = self._apply(spec, kind, color)
        self.applied.append(name)
        if self.ctx is not None:
            self.ctx.fault_on(name, t, color)
            if kind.instant:
                self.ctx.fault_off(name, t)
        if remover is not None:
            self._active[name] = (color, remover)
        return name

    def remove(self, name: str) -> None:
        active = self._active.pop(name, None)
        if active is None:
            return
        color, remover = active
        try:
            remover()
        except (PlatformError, OSError) as exc:
            self.errors.append(f"{name}: {str(exc).splitlines()[0] if str(exc) else exc}")
            return
        t = self.platform.events.emit(Source.FAULT, EventName.FAULT_REMOVED,
                                      color=color, fault=name).t
        if self.ctx is not None:
            self.ctx.fault_off(name, t)

    def remove_all(self) -> list[str]:
        """Every fault still on, removed (latest first); the removals that failed."""
        for name in reversed(list(self._active)):
            self.remove(name)
        return list(self.errors)

    @property
    def active(self) -> list[str]:
        return list(self._active)

    def __enter__(self) -> "Injector":
        return self

    def __exit__(self, *exc: object) -> None:
        self.remove_all()

    # -- the kinds -------------------------------------------------------------------------------
    def _apply(self, spec: FaultSpec, kind: FaultKind, color: str) -> Remover | None:
        p, platform = spec.params, self.platform
        if spec.kind in ("sigterm", "sigkill"):
            sig = signal.SIGTERM if spec.kind == "sigterm" else signal.SIGKILL
            t = time.time()
            self.hits.append((t, platform.kill_replica(color, sig, self._index(color, p)).name))
            return None
        if spec.kind == "delete-pod":
            t = time.time()
            self.hits.append((t, platform.delete_replica(color, self._index(color, p)).name))
            return None
        if spec.kind == "network":
            platform.network_fault(color, int(p.get("delay_ms", 0)), int(p.get("loss_pct", 0)))
            return lambda: platform.clear_network_fault(color)
        if spec.kind == "flapping-readiness":
            index = self._index(color, p)
            live = [r.name for r in platform.replicas(color) if not r.terminating]
            self.flaps.append((time.time(), live[index] if index < len(live) else "?"))
            return self._flap(color, index, float(p.get("period_s", 0.5)),
                              bool(p.get("errors_when_unready", False)))
        platform.apply_fault(color, _knobs(spec, on=True))
        return lambda: platform.apply_fault(color, _knobs(spec, on=False))

    def _index(self, color: str, params: dict[str, Any]) -> int:
        """The replica a fault hits: ``index`` among the running ones, or ``"busiest"``: the
        one that answered most of the load's requests in the last 2 s (a kill that meets no
        request proves nothing), read from the live ledger when there is one."""
        index = params.get("index", 0)
        if index != "busiest":
            return int(index)
        live = [r.name for r in self.platform.replicas(color) if not r.terminating]
        tail = getattr(self.ctx, "live", None)
        if tail is None or not live:
            return 0
        served = Counter(r.replica for r in tail.since(time.time() - 2.0))
        return max(range(len(live)), key=lambda i: served.get(live[i], 0))

    def _flap(self, color: str, index: int, period: float, errors_when_unready: bool) -> Remover:
        """Readiness of ``color``'s replica ``index`` fails and recovers every ``period`` seconds until removed.
        ``errors_when_unready``: the replica also answers 500 while unready (a negative
        control: a service whose readiness and behaviour fail together)."""
        stop = threading.Event()
        problems: list[str] = []

        def knobs(on: bool) -> dict[str, Any]:
            k: dict[str, Any] = {"readiness_fail": on}
            if errors_when_unready:
                k["error_rate"] = 1.0 if on else 0.0
            return k

        def flap() -> None:
            on = True
            while not stop.is_set():
                try:
                    self.platform.apply_fault(color, knobs(on), index)
                except (PlatformError, OSError) as exc:  # a replica replaced meanwhile
                    problems.append(str(exc))
                on = not on
                stop.wait(period)

        thread = threading.Thread(target=flap, name=f"zd-flap-{color}", daemon=True)
        thread.start()

        def remove() -> None:
            stop.set()
            thread.join(timeout=10)
            self.platform.apply_fault(color, knobs(False), index)
        return remove


__all__ = ["KINDS", "FaultKind", "FaultSpec", "FaultError", "Injector", "unusable",
           "usable_kinds", "start_faults"]
