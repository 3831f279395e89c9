"""Endpoint propagation, locally: the Service's selector and the endpoint set each front gets.

When the selector or a replica's readiness changes, the new set for every front (the Service
and each colour's preview) reaches that front only after the propagation delay, as an
EndpointSlice change reaches kube-proxy; a front applies it to NEW connections only.
"""
from __future__ import annotations

import threading
from typing import Callable, Iterable

from zerodrop.platforms.base import COLORS
from zerodrop.platforms.local.front import Endpoint, Front, FrontLoop
from zerodrop.platforms.local.replica import ReplicaProcess
from zerodrop.records.events import EventLog, EventName, Source

SERVICE = "service"


def preview(color: str) -> str:
    return f"preview-{color}"


class Endpoints:
    """The selector (replaced whole, never merged) and what each front should route to."""

    def __init__(self, loop: FrontLoop, fronts: dict[str, Front], events: EventLog,
                 delay: float, lock: threading.RLock,
                 routable: Callable[[Iterable[str]], list[ReplicaProcess]]) -> None:
        self._loop, self._fronts, self._events = loop, fronts, events
        self._delay, self._lock, self._routable = delay, lock, routable
        self._selector: dict[str, int] = {}
        self.canary: str | None = None  # where requests with ``canary: true`` go (None: no rule)
        self._scheduled: dict[str, tuple] = {}

    def selected(self) -> list[str]:
        """The colours the Service selects with a weight above 0."""
        with self._lock:
            return [c for c, w in self._selector.items() if w > 0]

    def select(self, selector: dict[str, int], canary: str | None = None) -> None:
        """Replace the selector ({colour: percent}) and propagate the change; ``canary``: the
        colour that requests with the header ``canary: true`` go to (None: no header rule)."""
        with self._lock:
            self._selector = dict(selector)
            self.canary = canary
        extra = {"canary_header": canary} if canary else {}
        self._events.emit(Source.PLATFORM, EventName.SELECTOR_PATCHED, selector=dict(selector),
                          **extra)
        self.publish()

    def wanted(self, front: str) -> tuple[list[str], list[str]]:
        """(colours, ready replica names) that ``front`` should route to now."""
        colors = self.selected() if front == SERVICE else [front.removeprefix("preview-")]
        if front == SERVICE and self.canary is not None and self.canary not in colors:
            colors = colors + [self.canary]  # reached through the header rule
        return colors, sorted(p.name for p in self._routable(colors))

    def routed(self, front: str) -> list[str]:
        """Replica names the front sends new connections to right now."""
        return [e.replica for e in self._fronts[front].endpoints()]

    def publish(self) -> None:
        """Schedule each front's new endpoint set, once per change, after the delay."""
        with self._lock:
            for name, (eps, weights, canary) in self._plan().items():
                key = (tuple(eps), tuple(sorted((weights or {}).items())), canary)
                if self._scheduled.get(name) == key:
                    continue
                self._scheduled[name] = key
                self._loop.call_later(self._delay, _applier(self._fronts[name], eps, weights,
                                                            canary, self._events))

    def _plan(self) -> dict[str, tuple[list[Endpoint], dict[str, int] | None, str | None]]:
        selector = dict(self._selector)
        live = [c for c, w in selector.items() if w > 0]
        canary = self.canary
        if canary is not None:  # its endpoints too, for the header rule, at its own weight
            colors = live + ([canary] if canary not in live else [])
            plan = {SERVICE: (self._endpoints(colors), {c: selector.get(c, 0) for c in colors},
                              canary)}
        else:
            plan = {SERVICE: (self._endpoints(live), selector if len(live) > 1 else None, None)}
        for c in COLORS:
            plan[preview(c)] = (self._endpoints([c]), None, None)
        return plan

    def _endpoints(self, colors: list[str]) -> list[Endpoint]:
        return [Endpoint("127.0.0.1", p.port, p.color, p.name) for p in self._routable(colors)]


def _applier(front: Front, eps: list[Endpoint], weights, canary: str | None, events: EventLog):
    def apply() -> None:
        extra = {"canary_header": canary} if canary else {}
        front.set_endpoints(eps, weights, canary=canary, on_applied=lambda: events.emit(
            Source.PLATFORM, EventName.ENDPOINTS_CHANGED, front=front.name,
            endpoints=[e.replica for e in eps], weights=weights, **extra))
    return apply
