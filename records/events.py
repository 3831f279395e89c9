"""The timeline: one event shape, the catalogue of event names, the thread-safe log.

Every event a platform, a scenario, a fault or the load emits has a name from ``EventName``
(Locust's typed ``Events`` is the model: a listener can rely on the names listed here, and a
test checks that the code emits no name that is not listed and lists no name it never emits).
Scenario steps are the one open-ended family: a step's own name when it starts, with
``step="start"``, then the same name plus " done" or " failed" (``step="done" | "failed"``).

``describe(event)`` is the one way an event is named in reasons, charts and tables.

Everything shares one clock: ``time.time()`` (wall seconds with microseconds), so that a ledger
record and an event can be subtracted.
"""
from __future__ import annotations

import enum
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator


class Source(str, enum.Enum):
    SCENARIO = "scenario"
    PLATFORM = "platform"
    FAULT = "fault"
    LOAD = "load"

    def __str__(self) -> str:
        return self.value


class EventName(str, enum.Enum):
    """The catalogue. The value is the name on the timeline; ``CATALOGUE`` says what each
    means and which detail keys it carries."""

    # platform: what the platform did or saw
    MIGRATED = "migrated"
    DEPLOYED = "deployed"
    SCALED = "scaled"
    REPLICA_STARTED = "replica started"
    REPLICA_READY = "replica ready"
    REPLICA_UNREADY = "replica unready"
    REPLICA_TERMINATING = "replica terminating"
    REPLICA_TERMINATED = "replica terminated"
    SELECTOR_PATCHED = "selector patched"
    ENDPOINTS_CHANGED = "endpoints changed"
    READINESS_FINDING = "readiness finding"
    SUPERVISOR_ERROR = "supervisor error"
    NAMESPACE_DELETED = "namespace deleted"
    # fault: what was done on purpose
    REPLICA_KILLED = "replica killed"
    REPLICA_KILL_FAILED = "replica kill failed"
    FAULT_APPLIED = "fault applied"
    FAULT_REMOVED = "fault removed"
    REPLICA_DELETED = "replica deleted"
    # a deploy command the user runs (zerodrop watch): its lines and its end
    DEPLOY_OUTPUT = "deploy output"
    DEPLOY_EXITED = "deploy command exited"
    CANARY_MARGINAL = "canary stage marginal"
    # load: the generator's own moments
    LOAD_STARTED = "load started"
    LOAD_STOPPING = "load stopping"

    def __str__(self) -> str:
        return self.value


CATALOGUE: dict[EventName, str] = {
    EventName.MIGRATED: "a schema migration ran: before any replica, or a release's while the "
                        "replicas serve (Platform.migrate); detail: seconds, output [, version, env]",
    EventName.DEPLOYED: "a colour got a new template (version, faults); detail: color, version, "
                        "faults",
    EventName.SCALED: "desired replicas of a colour changed; detail: color, replicas",
    EventName.REPLICA_STARTED: "a replica process or pod appeared; detail: color, replica "
                               "[, pid, version, restart]",
    EventName.REPLICA_READY: "the readiness gate admitted a replica; detail: color, replica",
    EventName.REPLICA_UNREADY: "the readiness gate took a replica out; detail: color, replica, "
                               "reason",
    EventName.REPLICA_TERMINATING: "the replica was told to stop (SIGTERM on scale-down, a pod "
                                   "deletion); detail: color, replica",
    EventName.REPLICA_TERMINATED: "a replica ended; detail: color, replica [, code, expected, "
                                  "reason, last_log]",
    EventName.SELECTOR_PATCHED: "the Service now selects a colour (or weights); detail: "
                                "selector [, service, resource_version]",
    EventName.ENDPOINTS_CHANGED: "a proxy applied a new endpoint set; detail: front, endpoints "
                                 "[, weights, slice]",
    EventName.READINESS_FINDING: "the lint found a zero-downtime risk in the live objects; "
                                 "detail: rule, finding",
    EventName.SUPERVISOR_ERROR: "the local supervisor hit an error and kept going; detail: "
                                "error",
    EventName.NAMESPACE_DELETED: "a cluster platform's namespace was deleted; detail: namespace",
    EventName.REPLICA_KILLED: "a signal was sent to a replica on purpose; detail: color, "
                              "replica, signal [, via]",
    EventName.REPLICA_KILL_FAILED: "a signal could not be sent; detail: color, replica, error",
    EventName.FAULT_APPLIED: "fault knobs changed on a colour at run time; detail: color, faults",
    EventName.FAULT_REMOVED: "a fault on purpose was taken away again (a game day's rollback); "
                             "detail: color, fault",
    EventName.REPLICA_DELETED: "a replica deleted on purpose, as a pod deletion (its controller "
                               "replaces it); detail: color, replica",
    EventName.DEPLOY_OUTPUT: "a line the watched deploy command printed; detail: line",
    EventName.DEPLOY_EXITED: "the watched deploy command ended; detail: code, command",
    EventName.CANARY_MARGINAL: "a canary stage ended marginal against the stable version (noted, "
                               "not rolled back); detail: weight, checks",
    EventName.LOAD_STARTED: "the load generator's requests are flowing; detail: users, rate",
    EventName.LOAD_STOPPING: "the load generator is being stopped",
}

# step markers of scenario events (detail key "step")
STEP_START, STEP_DONE, STEP_FAILED = "start", "done", "failed"

# the detail keys worth quoting when an event is named, in this order
_DESCRIBE_KEYS = ("color", "replica", "signal", "version", "selector")
_MAX_VALUE_CHARS = 40


@dataclass(frozen=True)
class Event:
    """One timeline event: when (``time.time()``), who (a ``Source``), what (a catalogue
    name, or a scenario step's name) and a detail dict."""

    t: float
    source: str
    name: str
    detail: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"t": self.t, "source": str(self.source), "name": str(self.name),
                "detail": self.detail}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Event":
        return cls(float(d["t"]), str(d["source"]), str(d["name"]), dict(d.get("detail") or {}))

    @property
    def is_step_start(self) -> bool:
        return self.source == Source.SCENARIO and self.detail.get("step") == STEP_START


def describe(event: Event) -> str:
    """How an event is named wherever a person reads it: ``'name' (color green, replica x)``.
    Values are cut to 40 characters; secrets never reach an event's described keys."""
    detail = event.detail if isinstance(event.detail, dict) else {}
    bits = []
    for key in _DESCRIBE_KEYS:
        value = detail.get(key)
        if value in ("", None):
            continue
        text = str(value)
        if len(text) > _MAX_VALUE_CHARS:
            text = text[:_MAX_VALUE_CHARS - 1] + "~"
        bits.append(f"{key} {text}")
    return f"'{event.name}'" + (f" ({', '.join(bits)})" if bits else "")


class EventLog:
    """Thread-safe, append-only timeline. Listeners fail soft: one that raises breaks
    nothing; its error is counted."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._events: list[Event] = []
        self._lock = threading.Lock()
        self._listeners: list[Callable[[Event], None]] = []
        self.listener_errors = 0

    def emit(self, source: Source | str, name: EventName | str, **detail: Any) -> Event:
        event = Event(self._clock(), str(source), str(name), detail)
        with self._lock:
            self._events.append(event)
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(event)
            except Exception:  # a broken listener must never break the platform
                self.listener_errors += 1
        return event

    def subscribe(self, listener: Callable[[Event], None]) -> None:
        with self._lock:
            self._listeners.append(listener)

    def snapshot(self) -> list[Event]:
        with self._lock:
            return list(self._events)

    def __iter__(self) -> Iterator[Event]:
        return iter(self.snapshot())

    def named(self, name: EventName | str) -> list[Event]:
        return [e for e in self.snapshot() if e.name == str(name)]
