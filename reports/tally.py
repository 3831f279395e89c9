"""The verdict's single streaming pass: ``Tally.add(record)`` once per ledger record, counters
and bounded summaries only, so a ledger of millions of lines is judged in constant memory (plus
one small bucket per second of run time for the chart).

A slice may hold several switches (``Cutover``s, in order: ten switches back and forth, canary
stages). The switches cut the run into segments: before the first switch, then from each
switch to the next. A request belongs to the segment its ``t_start`` falls in, and its phase is
``before`` (no switch yet), ``during`` (within the segment's switch window, up to that switch's
drain) or ``after`` (past that drain). Versions are judged per switch: the old version may
answer until its drain, the new version from its switch on; in a segment only that switch's
versions and the next switch's are expected, anything else is an unknown version there.
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Sequence

from zerodrop.records.ledger import LedgerRecord
from zerodrop.records.results import Cutover
from zerodrop.reports.stats import LogHistogram, Quantiles

PHASES = ("before", "during", "after")
NO_VERSION = "(none)"  # an answer without an X-App-Version header
OTHER_VERSIONS = "(other versions)"
MAX_VERSION_LABELS = 100  # distinct unknown versions tracked one by one; the rest are pooled
NO_CUTOVER = Cutover("", "", None, None)
# Where a failure came from: its route, and the colour that answered it. A request that got no
# answer (refused, reset, timeout) carries no colour header: which colour it was routed to is
# unknown, only its route is known.
NO_ANSWER = "(no answer)"
NO_COLOUR = "(no colour header)"
OTHER_ROUTES = "(other routes)"
MAX_FAILURE_CELLS = 50  # distinct (route, colour) pairs tracked per failure class; the rest pooled
INFLIGHT_SLOTS_MAX = 1000  # a request longer than 10 s is not spread over slots (timeouts)


@dataclass(frozen=True)
class Series:
    """Per-second buckets for the chart, keyed by the whole second of t_start (absolute clock).
    Only seconds that saw a request are listed. ``ok_by_version`` counts ok answers."""

    t0: float | None                    # the first request's t_start
    seconds: list[int]
    ok_by_version: dict[str, list[int]]
    failed: list[int]
    p99_ms: list[float | None]
    t_last: float | None = None         # the last request's t_start: where the last second ends


@dataclass
class Breach:
    """Requests that crossed a switch boundary: how many, and the one closest to the boundary
    (the example a reason quotes)."""

    count: int = 0
    t: float | None = None
    replica: str = ""

    def add(self, t: float, replica: str, closest_is_latest: bool) -> None:
        self.count += 1
        if self.t is None or (t > self.t if closest_is_latest else t < self.t):
            self.t, self.replica = t, replica


@dataclass
class Cell:
    """Failed requests of one class on one route from one colour: count, first and last seen."""

    count: int
    first_t: float
    last_t: float

    def add(self, seen: float) -> None:
        self.count += 1
        self.first_t = min(self.first_t, seen)
        self.last_t = max(self.last_t, seen)


@dataclass
class FailureTally:
    """One class of failed requests (same outcome and status): count, first and last seen, how
    many each client population lost, and where they came from (route and colour, bounded)."""

    count: int
    first_t: float
    last_t: float
    by_population: dict[str, int] = field(default_factory=dict)
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)  # (route, colour) -> ...

    def add(self, seen: float) -> None:
        self.count += 1
        self.first_t = min(self.first_t, seen)
        self.last_t = max(self.last_t, seen)

    def add_cell(self, route: str, colour: str, seen: float) -> None:
        key = (route, colour)
        cell = self.cells.get(key)
        if cell is None and len(self.cells) >= MAX_FAILURE_CELLS:
            key = (OTHER_ROUTES, colour)
            cell = self.cells.get(key)
        if cell is None:
            self.cells[key] = Cell(1, seen, seen)
        else:
            cell.add(seen)


def route_label(r: LedgerRecord) -> str:
    """``POST /api/payments``: the method and the route name the load gave the request."""
    return f"{r.method} {r.route}".strip() or "?"


def colour_label(r: LedgerRecord) -> str:
    """The colour that answered (its X-App-Color header); an answer without that header is
    named by its version; a request with no answer has no known colour."""
    if not r.status and not r.version and not r.color:
        return NO_ANSWER
    if r.color:
        return r.color
    return f"version {r.version}" if r.version else NO_COLOUR


@dataclass
class PopulationTally:
    """One client population (load/arrivals.py): its requests, its failures by outcome, and
    (retrying clients) the failures a later attempt with the same key recovered."""

    requests: int = 0
    failed: int = 0
    by_outcome: dict[str, int] = field(default_factory=dict)
    recovered: int = 0  # first attempts that failed and a retry then got answered

    def as_dict(self) -> dict[str, object]:
        return {"requests": self.requests, "failed": self.failed,
                "by_outcome": dict(sorted(self.by_outcome.items())), "recovered": self.recovered}


@dataclass
class Sighting:
    """Answers from a version not expected where they came: count, earliest, an example."""

    count: int
    t: float
    replica: str


@dataclass
class SwitchTally:
    """What the pass learns about one switch."""

    cutover: Cutover
    in_window: int = 0              # requests that started within [t_switch, t_drained]
    idle_in_window: int = 0         # ... of them, sent by the idle population
    answered_after_switch: int = 0  # answered requests of this switch's segment
    new_after_switch: int = 0       # ... answered by its new version
    t_first_new: float | None = None
    t_last_old: float | None = None
    old_after_drain: Breach = field(default_factory=Breach)
    new_before_switch: Breach = field(default_factory=Breach)

    @property
    def named(self) -> bool:
        return bool(self.cutover.old_version and self.cutover.new_version)

    @property
    def versions_differ(self) -> bool:
        return self.named and self.cutover.old_version != self.cutover.new_version

    def saw_new(self, t_end: float) -> None:
        if self.t_first_new is None or t_end < self.t_first_new:
            self.t_first_new = t_end

    def saw_old(self, t_end: float) -> None:
        if self.t_last_old is None or t_end > self.t_last_old:
            self.t_last_old = t_end


class _Second:
    __slots__ = ("ok_by_version", "failed", "hist")

    def __init__(self) -> None:
        self.ok_by_version: dict[str, int] = {}
        self.failed = 0
        self.hist = LogHistogram()


class Tally:
    """Everything the verdict keeps while streaming; ``add`` each record once, in any order."""

    def __init__(self, cutovers: Sequence[Cutover], exact_quantile_cap: int = 50_000) -> None:
        self.cutovers = tuple(cutovers) or (NO_CUTOVER,)
        self.switches = [SwitchTally(c) for c in self.cutovers]
        # without both names no answer can be attributed: judged INCONCLUSIVE, not "unknown"
        self.versions_named = all(s.named for s in self.switches)
        self._switched = [i for i, c in enumerate(self.cutovers) if c.t_switch is not None]
        self._switch_ts = [self.cutovers[i].t_switch for i in self._switched]
        self.total = 0
        self.failed = 0
        self.t0: float | None = None
        self.t_last: float | None = None
        self.by_outcome: dict[str, int] = {}
        self.classes: dict[tuple[str, int], FailureTally] = {}
        self.served: dict[str, int] = {}
        self.unknown: dict[tuple[int, str], Sighting] = {}  # (switch index, version) -> ...
        self.latency = {p: Quantiles(exact_quantile_cap) for p in PHASES}
        self.seconds: dict[int, _Second] = {}
        self.populations: dict[str, PopulationTally] = {}
        self._unrecovered: set[str] = set()  # request ids of failed first attempts of retrying clients
        # requests in flight per 10 ms slot (bounded: slots of run time), to say what was in
        # flight at each SIGTERM
        self.inflight_slots: dict[int, int] = {}

    # -- where a request falls ----------------------------------------------------------------

    def segment(self, t: float) -> int:
        """The index of the last switch at or before ``t``; -1 before the first switch."""
        k = bisect.bisect_right(self._switch_ts, t)
        return self._switched[k - 1] if k else -1

    def phase(self, segment: int, t: float) -> str:
        if segment < 0:
            return "before"
        drained = self.cutovers[segment].t_drained
        return "during" if drained is None or t <= drained else "after"

    # -- the pass -------------------------------------------------------------------------------

    def add(self, r: LedgerRecord) -> None:
        t = r.t_start
        self.total += 1
        if self.t0 is None or t < self.t0:
            self.t0 = t
        if self.t_last is None or t > self.t_last:
            self.t_last = t
        seg = self.segment(t)
        phase = self.phase(seg, t)
        if phase == "during":
            sw = self.switches[seg]
            sw.in_window += 1
            if r.population == "idle":
                sw.idle_in_window += 1
        sec = self._second(t)
        ok = not r.failed
        if ok:
            self._add_ok(r, phase, sec)
        else:
            self._add_failure(r, sec)
        self._add_population(r, ok)
        first_slot, last_slot = int(t * 100), int(r.t_end * 100)
        if last_slot - first_slot <= INFLIGHT_SLOTS_MAX:
            slots = self.inflight_slots
            for k in range(first_slot, last_slot + 1):
                slots[k] = slots.get(k, 0) + 1
        if r.status or r.version:
            self._add_answer(r, seg)
        if self.versions_named:
            self._check_version(r, seg, ok)

    def _second(self, t: float) -> _Second:
        key = math.floor(t)
        sec = self.seconds.get(key)
        if sec is None:
            sec = self.seconds[key] = _Second()
        return sec

    def _add_ok(self, r: LedgerRecord, phase: str, sec: _Second) -> None:
        ms = r.latency_ms
        self.latency[phase].add(ms)
        sec.hist.add(ms)
        label = r.version or NO_VERSION
        sec.ok_by_version[label] = sec.ok_by_version.get(label, 0) + 1

    def _add_failure(self, r: LedgerRecord, sec: _Second) -> None:
        self.failed += 1
        sec.failed += 1
        self.by_outcome[r.outcome] = self.by_outcome.get(r.outcome, 0) + 1
        # A failure is placed when it was SEEN (t_end): a request in flight when a replica was
        # killed started before the kill but failed because of it. A timeout's t_end is only
        # the client's deadline, so it is placed where it went unanswered: t_start.
        seen = r.t_start if r.outcome == "timeout" else r.t_end
        key = (r.outcome, int(r.status or 0))
        cls = self.classes.get(key)
        if cls is None:
            cls = self.classes[key] = FailureTally(1, seen, seen)
        else:
            cls.add(seen)
        label = r.population or "-"
        cls.by_population[label] = cls.by_population.get(label, 0) + 1
        cls.add_cell(route_label(r), colour_label(r), seen)

    def _add_population(self, r: LedgerRecord, ok: bool) -> None:
        pop = self.populations.get(r.population or "-")
        if pop is None:
            pop = self.populations[r.population or "-"] = PopulationTally()
        pop.requests += 1
        if not ok:
            pop.failed += 1
            pop.by_outcome[r.outcome] = pop.by_outcome.get(r.outcome, 0) + 1
            if r.population == "retry" and r.attempt == 1:
                self._unrecovered.add(r.request_id)
        elif r.attempt > 1 and r.first_request_id in self._unrecovered and r.route.endswith("(retry)"):
            self._unrecovered.discard(r.first_request_id)
            pop.recovered += 1

    def inflight_at(self, t: float) -> int:
        """Requests in flight at ``t`` (10 ms resolution: those that overlapped its slot)."""
        return self.inflight_slots.get(int(t * 100), 0)

    def _add_answer(self, r: LedgerRecord, seg: int) -> None:
        label = r.version or NO_VERSION
        self.served[label] = self.served.get(label, 0) + 1
        if seg >= 0:
            sw = self.switches[seg]
            sw.answered_after_switch += 1
            if r.version == sw.cutover.new_version:
                sw.new_after_switch += 1

    def _check_version(self, r: LedgerRecord, seg: int, ok: bool) -> None:
        """Attribute the answering version to this segment's switch (after it) or the next one
        (before it); an answer neither expects is an unknown version here."""
        if not r.version:
            if ok:  # an ok answer must say who gave it
                self._note_unknown(max(seg, 0), NO_VERSION, r)
            return
        here = self.switches[seg] if seg >= 0 else None
        ahead = self.switches[seg + 1] if seg + 1 < len(self.switches) else None
        if here is not None and _after_switch(here, r):
            return
        if ahead is not None and _before_switch(ahead, r):
            return
        self._note_unknown(max(seg, 0), r.version, r)

    def _note_unknown(self, switch: int, label: str, r: LedgerRecord) -> None:
        key = (switch, label)
        seen = self.unknown.get(key)
        if seen is None and len(self.unknown) >= MAX_VERSION_LABELS:
            key = (switch, OTHER_VERSIONS)
            seen = self.unknown.get(key)
        if seen is None:
            self.unknown[key] = Sighting(1, r.t_start, r.replica)
            return
        seen.count += 1
        if r.t_start < seen.t:
            seen.t, seen.replica = r.t_start, r.replica

    # -- results ----------------------------------------------------------------------------------

    def series(self) -> Series:
        secs = sorted(self.seconds)
        versions = sorted({v for s in self.seconds.values() for v in s.ok_by_version})
        return Series(
            t0=self.t0,
            seconds=secs,
            ok_by_version={v: [self.seconds[s].ok_by_version.get(v, 0) for s in secs]
                           for v in versions},
            failed=[self.seconds[s].failed for s in secs],
            p99_ms=[round3(self.seconds[s].hist.quantile(0.99)) for s in secs],
            t_last=self.t_last,
        )


def _after_switch(sw: SwitchTally, r: LedgerRecord) -> bool:
    """A request of ``sw``'s segment: its new version is expected, its old one until the drain."""
    c = sw.cutover
    if r.version == c.new_version:
        sw.saw_new(r.t_end)
        return True
    if r.version != c.old_version:
        return False
    sw.saw_old(r.t_end)
    if sw.versions_differ and c.t_drained is not None and r.t_start > c.t_drained:
        sw.old_after_drain.add(r.t_start, r.replica, closest_is_latest=False)
    return True


def _before_switch(sw: SwitchTally, r: LedgerRecord) -> bool:
    """A request before ``sw``'s switch: its old version is expected, its new one is early."""
    c = sw.cutover
    if r.version == c.new_version:
        sw.saw_new(r.t_end)
        if sw.versions_differ and c.t_switch is not None and r.t_start < c.t_switch:
            sw.new_before_switch.add(r.t_start, r.replica, closest_is_latest=True)
        return True
    if r.version != c.old_version:
        return False
    sw.saw_old(r.t_end)
    return True


def round3(x: float | None) -> float | None:
    return None if x is None else round(x, 3)
