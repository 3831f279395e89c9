"""The verdict's rules: each a small function ``(facts) -> list[Reason]`` over what the single
pass learned (``VerdictFacts``); ``RULES`` lists them in the order their reasons are read.

A ``Reason`` says what kind it is: ``fail`` (a fact: the switch dropped or lost something),
``inconclusive`` (the run could not show it either way) or ``note`` (context that decides
nothing, e.g. the readiness lint). The verdict puts FAIL causes first.

The wording is a contract: ``reports.allure_evidence.CATEGORIES`` matches it with regular
expressions (tested in tests/reports). Prefixes: dropped requests read "<n> connection
resets|connections refused|timeouts|bad or incomplete bodies|HTTP <s> answers from|at ...",
then the event before the first failure, then where they came from: ", on POST /api/payments
(green)" (a request with no answer has no known colour: only its route is known);
"data loss: ..."; "cutover: ..." / "unknown version: ..."; "latency regression: ...";
"inconclusive: ...". With one switch the reasons read exactly as they always have; with several,
a reason about one switch names it ("switch 2 of 3 (1.1.0 -> 1.0.0)").

The bound on the failure rate is not a reason (on a FAIL it would read like an excuse): it is a
figure of the verdict (``figures``), beside the reasons, on a PASS and a FAIL alike.
"""
from __future__ import annotations

import bisect
import math
from decimal import Decimal
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from zerodrop.records.events import Event, EventName, Source, describe
from zerodrop.records.results import Cutover, DataCheck, FaultWindow, LoadTarget
from zerodrop.records.results import MoneyCheck
from zerodrop.reports.stats import clopper_pearson_upper
from zerodrop.reports.tally import (NO_ANSWER, NO_COLOUR, NO_VERSION, PHASES, SwitchTally,
                                    Tally, round3)

KIND_FAIL, KIND_INCONCLUSIVE, KIND_NOTE = "fail", "inconclusive", "note"
_PHASE_WORDS = {"before": "before the switch", "during": "during the switch",
                "after": "after the drain"}


@dataclass(frozen=True)
class Policy:
    """What the verdict demands. Latency limits are off by default (None): the zero-drop claim
    is about answers and data; a team that also gates on latency sets them."""

    min_load_fraction: float = 0.9        # achieved_rps must reach this share of target_rps
    min_requests_in_window: int = 50      # requests that STARTED within [t_switch, t_drained]
    confidence: float = 0.95              # for the one-sided upper bound on the failure rate
    max_examples: int = 5                 # ids/keys quoted in a reason
    latency_p99_limit_ms: float | None = None  # any phase's p99 above this -> FAIL
    # The relative rule, on by default: during/after against the same run's baseline (the
    # phase before the switch). A percentile below its floor is noise on a shared machine and
    # is not judged; p99 gets the wider margin because one slow second moves it.
    latency_p50_ratio: float | None = 5.0     # during/after p50 above 5x the p50 before -> FAIL
    latency_p99_ratio: float | None = 10.0    # during/after p99 above 10x the p99 before -> FAIL
    latency_ratio_floor_ms: float = 50.0      # p50 below this is not judged
    latency_p99_floor_ms: float = 250.0       # p99 below this is not judged
    exact_quantile_cap: int = 50_000      # exact percentiles up to this many values per phase
    # a replica that exits before its drain window while holding client connections: FAIL
    # (False: a note only; it did not drop a request this time, but it will under other timing)
    early_exit_fails: bool = True
    # a replica that still held client connections when its drain window ended (it never
    # closed them while idle nor in-band: its exit closes them under clients that may send): FAIL
    open_at_drain_end_fails: bool = True
    # a keep-alive race (a reused connection that ended at once with no byte of an answer):
    # HTTP/1.1 lets a server close an idle connection at any time and asks clients to retry,
    # so no server can rule it out; shown as a note unless this is True
    keepalive_races_fail: bool = False


@dataclass(frozen=True)
class Reason:
    kind: str  # KIND_FAIL | KIND_INCONCLUSIVE | KIND_NOTE
    text: str


@dataclass(frozen=True)
class Where:
    """The failed requests of one class on one route from one colour (``NO_ANSWER``: no
    answer came, so the colour it was routed to is unknown)."""

    route: str
    colour: str
    count: int
    first_t: float
    last_t: float

    def as_dict(self) -> dict[str, Any]:
        return {"route": self.route, "colour": self.colour, "count": self.count,
                "first_t": self.first_t, "last_t": self.last_t}


@dataclass(frozen=True)
class FailureClass:
    """One class of dropped requests: same outcome and status."""

    outcome: str
    status: int
    count: int
    first_t: float
    last_t: float
    after_event: str | None   # the latest event of the scenario at or before first_t (first
    after_s: float | None     # seen), and first_t - its t; None: before the scenario began
    event: Event | None = field(default=None, compare=False, repr=False)
    populations: tuple[tuple[str, int], ...] = ()  # (client population, failed requests), most first
    where: tuple[Where, ...] = ()  # by route and colour, most first

    @property
    def label(self) -> str:
        return f"{self.outcome} {self.status}" if self.status else self.outcome

    @property
    def before_switch(self) -> bool:
        """The first failure came before the scenario's first event: before the switch."""
        return self.event is None

    @property
    def routes(self) -> dict[str, int]:
        return _totals((w.route, w.count) for w in self.where)

    @property
    def colours(self) -> dict[str, int]:
        return _totals((w.colour, w.count) for w in self.where)

    def as_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "status": self.status, "count": self.count,
                "first_t": self.first_t, "last_t": self.last_t,
                "after_event": self.after_event, "after_s": self.after_s,
                "before_switch": self.before_switch,
                "populations": dict(self.populations),
                "routes": self.routes, "colours": self.colours,
                "by_route_colour": [w.as_dict() for w in self.where]}


def _totals(pairs: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for key, n in pairs:
        out[key] = out.get(key, 0) + n
    return dict(sorted(out.items(), key=lambda kv: (-kv[1], kv[0])))


@dataclass(frozen=True)
class VerdictFacts:
    """Everything a rule may read: the pass's tally, the timeline (sorted), the scenario's
    facts, the data check, the load and the policy."""

    tally: Tally
    events: list[Event]
    classes: list[FailureClass]
    latency: dict[str, dict[str, float | None]]
    data: DataCheck
    load: LoadTarget
    policy: Policy
    faults: tuple[FaultWindow, ...] = ()
    readiness: tuple[str, ...] = ()
    money: MoneyCheck = MoneyCheck()  # not judged unless the proof checked money
    steady: bool = False  # no switch on purpose (a steady-load probe): no switch rule applies

    @property
    def switches(self) -> list[SwitchTally]:
        return [] if self.steady else self.tally.switches


Rule = Callable[[VerdictFacts], "list[Reason]"]


# --------------------------------------------------------------------------------------------
# Wording
# --------------------------------------------------------------------------------------------

def _n(count: int, singular: str, plural: str | None = None) -> str:
    return f"{count:,} {singular if count == 1 else (plural or singular + 's')}"


def _was(count: int) -> str:
    return "was" if count == 1 else "were"


def _dur(seconds: float) -> str:
    if abs(seconds) < 0.1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.1f} s"


def pct_up(rate: float) -> str:
    """A rate as a percentage with two significant digits, rounded UP (it is an upper bound:
    rounding down would claim more than the data shows)."""
    v = rate * 100.0
    if v <= 0.0:
        return "0%"
    digits = max(0, 1 - math.floor(math.log10(v)))
    scale = 10 ** digits
    up = math.ceil(v * scale - 1e-9) / scale
    text = f"{up:.{digits}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text + "%"


def _examples(items: Sequence[str], cap: int) -> str:
    shown = ", ".join(str(i) for i in items[:cap])
    if len(items) > cap:
        shown += f", ... ({len(items) - cap:,} more)"
    return shown


def _failure_noun(outcome: str, status: int, count: int) -> str:
    if outcome == "reset":
        return _n(count, "connection reset")
    if outcome == "refused":
        return _n(count, "connection refused", "connections refused")
    if outcome == "timeout":
        return _n(count, "timeout")
    if outcome == "keepalive_race":
        return _n(count, "keep-alive race")
    if outcome == "bad_body":
        return _n(count, "bad or incomplete body", "bad or incomplete bodies")
    if outcome == "http_error":
        return _n(count, f"HTTP {status or 'error'} answer")
    return _n(count, f"request with outcome '{outcome}'", f"requests with outcome '{outcome}'")


def _nth(i: int, n: int) -> str:
    """How a reason names one of several switches; nothing when there is only one."""
    return "" if n == 1 else f"switch {i + 1} of {n}"


def _which(c: Cutover, i: int, n: int) -> str:
    """``_nth`` with the switch's versions, where the reason does not name them itself."""
    return "" if n == 1 else f"{_nth(i, n)} ({c.old_version or '?'} -> {c.new_version or '?'})"


def _cutover_head(f: VerdictFacts, i: int) -> str:
    which = _which(f.switches[i].cutover, i, len(f.switches))
    return f"cutover: {which}: " if which else "cutover: "


# --------------------------------------------------------------------------------------------
# What the rules share: failure classes placed after the timeline's events
# --------------------------------------------------------------------------------------------

# a slice's scenario may emit its first step a moment before the slice's first request starts
SCENARIO_START_SLACK_S = 0.5


def scenario_events(events: Sequence[Event], t0: float | None) -> list[Event]:
    """The events a failure may be placed after: from the scenario's first event (a scenario
    step or a fault, at or after the slice's first request less ``SCENARIO_START_SLACK_S``) on.
    What came before (the platform's set-up, the load starting, an earlier slice's moves) is
    not what the failure followed: a failure before the scenario began is "before the switch".
    A timeline without any scenario or fault event keeps the events from the first request on."""
    lo = -math.inf if t0 is None else t0 - SCENARIO_START_SLACK_S
    late = [e for e in events if e.t >= lo]
    first = next((k for k, e in enumerate(late) if e.source in (Source.SCENARIO, Source.FAULT)),
                 None)
    return late if first is None else late[first:]


def failure_classes(tally: Tally, events: Sequence[Event]) -> list[FailureClass]:
    """One class per (outcome, status) in order of first appearance, each placed after the
    latest event of the scenario at or before its FIRST failure (``events`` sorted by time).

    Before, every event of the timeline could be that event: a failure 0.2 s into the load
    read "1.5 s after 'endpoints changed'", an event of the platform's set-up before the load,
    and looked placed after an event that came later than it. Now the set-up and an earlier
    slice's events are off the list (``scenario_events``) and such a failure reads "before the
    switch"."""
    anchors = scenario_events(events, tally.t0)
    times = [e.t for e in anchors]
    out = []
    for (outcome, status), c in sorted(tally.classes.items(), key=lambda kv: kv[1].first_t):
        i = bisect.bisect_right(times, c.first_t) - 1
        ev = anchors[i] if i >= 0 else None
        pops = tuple(sorted(c.by_population.items(), key=lambda kv: (-kv[1], kv[0])))
        where = tuple(Where(r, col, x.count, x.first_t, x.last_t) for (r, col), x in
                      sorted(c.cells.items(), key=lambda kv: (-kv[1].count, kv[1].first_t)))
        out.append(FailureClass(outcome, status, c.count, c.first_t, c.last_t,
                                ev.name if ev is not None else None,
                                round(c.first_t - ev.t, 6) if ev is not None else None, ev, pops,
                                where))
    return out


def latency_summary(tally: Tally) -> dict[str, dict[str, float | None]]:
    return {p: {"p50": round3(tally.latency[p].quantile(0.50)),
                "p99": round3(tally.latency[p].quantile(0.99))} for p in PHASES}


# --------------------------------------------------------------------------------------------
# FAIL rules
# --------------------------------------------------------------------------------------------

def dropped_requests(f: VerdictFacts) -> list[Reason]:
    """One reason per class of failed requests: when (after the event of the scenario that
    preceded its first failure, or before the switch), and where (routes and colours)."""
    out = []
    for c in f.classes:
        text = f"{_failure_noun(c.outcome, c.status, c.count)} {_failure_when(f, c)}"
        if c.where:
            text += f", on {_failure_where(c.where)}"
        kind = KIND_FAIL
        if c.outcome == "keepalive_race":
            text += (" (the server closed a kept-alive connection as a request was sent on it, "
                     "before any byte of an answer)")
        named = [(p, k) for p, k in c.populations if p != "-"]
        if named:
            text += " [" + ", ".join(f"{p} {k:,}" for p, k in named) + "]"
        if c.outcome == "keepalive_race" and not f.policy.keepalive_races_fail:
            kind = KIND_NOTE
            text = (f"note: {text}: HTTP/1.1 clients must retry a request that fails this way on a "
                    "reused connection; not a FAIL unless --keepalive-races-fail")
        out.append(Reason(kind, text))
    return out


def _failure_when(f: VerdictFacts, c: FailureClass) -> str:
    """``from 0.2 s to 9.7 s after 'selector patched'``; before the scenario's first event,
    counted from the first request: ``at 0.5 s after the first request, before the switch``."""
    ref_t = c.event.t if c.event is not None else f.tally.t0
    a, b = c.first_t - ref_t, c.last_t - ref_t  # type: ignore[operator]
    when = (f"at {_dur(a)}" if c.count == 1 or _dur(b) == _dur(a)
            else f"from {_dur(a)} to {_dur(b)}")
    if c.event is not None:
        return f"{when} after {describe(c.event)}"
    if f.steady:
        return f"{when} after the first request (steady load, no switch)"
    anchors = scenario_events(f.events, f.tally.t0)
    all_before = not anchors or c.last_t < anchors[0].t
    return (f"{when} after the first request, "
            f"{'before' if all_before else 'starting before'} the switch")


MAX_ROUTES_NAMED = 3


def _failure_where(where: Sequence[Where]) -> str:
    """``POST /api/payments (green)``; several routes from one colour: ``POST /api/payments
    30, GET /api/balance 11 (green)``; one route from several: ``POST /api/payments (green 30,
    blue 2)``; else each route with its colours. Most first; a request with no answer reads
    "colour unknown: no answer" (only its route is known)."""
    by_route: dict[str, list[Where]] = {}
    for w in where:
        by_route.setdefault(w.route, []).append(w)
    routes = sorted(by_route.items(), key=lambda kv: -sum(w.count for w in kv[1]))
    shown, rest = routes[:MAX_ROUTES_NAMED], routes[MAX_ROUTES_NAMED:]
    more = ""
    if rest:
        n = sum(w.count for _, ws in rest for w in ws)
        more = f", {_n(len(rest), 'more route')} ({n:,})"
    colours = {w.colour for w in where}
    if len(colours) == 1:
        counts = "" if len(routes) == 1 else " "
        names = ", ".join(route + (f" {sum(w.count for w in ws):,}" if counts else "")
                          for route, ws in shown)
        return f"{names}{more} ({_colour_words(next(iter(colours)))})"
    parts = []
    for route, ws in shown:
        cols = ", ".join(f"{_colour_words(w.colour)} {w.count:,}" for w in ws)
        parts.append(f"{route} ({cols})")
    return ", ".join(parts) + more


def _colour_words(colour: str) -> str:
    if colour == NO_ANSWER:
        return "colour unknown: no answer"
    return "no colour header" if colour == NO_COLOUR else colour


def unknown_versions(f: VerdictFacts) -> list[Reason]:
    """Answers from a version the switch of their segment neither left nor went to."""
    out = []
    n = len(f.switches)
    for (i, label), s in sorted(f.tally.unknown.items(), key=lambda kv: -kv[1].count):
        c = f.switches[i].cutover
        what = "without a version header" if label == NO_VERSION else f"from version '{label}'"
        ex = f" (e.g. replica {s.replica})" if s.replica else ""
        of = f" ({_nth(i, n)})" if n > 1 else ""
        out.append(Reason(KIND_FAIL, f"unknown version: {_n(s.count, 'answer')} came {what}{ex}, "
                                     f"neither old {c.old_version} nor new {c.new_version}{of}"))
    return out


def old_after_drain(f: VerdictFacts) -> list[Reason]:
    """A request that started after a switch's old colour drained, answered by the old version."""
    out = []
    for i, sw in enumerate(f.switches):
        b, c = sw.old_after_drain, sw.cutover
        if b.count:
            out.append(Reason(KIND_FAIL, (
                f"{_cutover_head(f, i)}{_n(b.count, 'request')} that started after the old "
                f"colour drained {_was(b.count)} answered by old version {c.old_version} "
                f"(e.g. replica {b.replica or '?'}, started {_dur(b.t - c.t_drained)} "
                f"after the drain)")))
    return out


def new_before_switch(f: VerdictFacts) -> list[Reason]:
    """A request that started before a switch, answered by that switch's new version."""
    out = []
    for i, sw in enumerate(f.switches):
        b, c = sw.new_before_switch, sw.cutover
        if b.count:
            out.append(Reason(KIND_FAIL, (
                f"{_cutover_head(f, i)}{_n(b.count, 'request')} that started before the switch "
                f"{_was(b.count)} answered by new version {c.new_version} "
                f"(e.g. replica {b.replica or '?'}, started {_dur(c.t_switch - b.t)} "
                f"before the switch)")))
    return out


def new_never_answered(f: VerdictFacts) -> list[Reason]:
    """After a switch, requests were answered, but never by the new version."""
    return [Reason(KIND_FAIL, f"{_cutover_head(f, i)}new version {sw.cutover.new_version} "
                              f"answered none of the {sw.answered_after_switch:,} requests "
                              f"answered after the switch")
            for i, sw in enumerate(f.switches)
            if sw.answered_after_switch and not sw.new_after_switch and sw.versions_differ]


def data_loss(f: VerdictFacts) -> list[Reason]:
    """Acknowledged payments missing, or come back with another amount."""
    d, cap = f.data, f.policy.max_examples
    of_acked = f"of {_n(d.acknowledged, 'acknowledged ' + d.noun)}"
    out = []
    if d.missing:
        out.append(f"data loss: {len(d.missing):,} {of_acked} "
                   f"{'is' if len(d.missing) == 1 else 'are'} missing: "
                   f"{_examples(d.missing, cap)}")
    if d.mismatched:
        out.append(f"data loss: {len(d.mismatched):,} {of_acked} came back with another "
                   f"{d.value}: {_examples(d.mismatched, cap)}")
    return [Reason(KIND_FAIL, text) for text in out]


def key_loss(f: VerdictFacts) -> list[Reason]:
    """An Idempotency-Key that paid twice, was answered with two payments, finds nothing, or
    leads to another payment than the one acknowledged for it."""
    d, cap = f.data, f.policy.max_examples

    def keys(found: list[str], one: str, many: str, what: str) -> list[str]:
        if not found:
            return []
        verb = one if len(found) == 1 else many
        return [f"data loss: {_n(len(found), 'idempotency key')} {verb}{what}: "
                f"{_examples(found, cap)}"]

    noun = d.noun
    out = keys(d.duplicated_keys, "", "", f"produced more than one {noun}")
    out += keys(d.keys_answered_twice, "was ", "were ", f"answered with more than one {noun} "
                f"id (a replay with the same key got another {noun})")
    out += keys(d.key_leads_elsewhere, "leads ", "lead ", f"to another {noun} than the one "
                "acknowledged for it")
    if d.not_found_by_key:
        out.append(f"data loss: {len(d.not_found_by_key):,} of "
                   f"{_n(d.acknowledged, 'acknowledged ' + noun)} cannot be found by the "
                   f"{d.key_name} they were created with (the lookup by key returned "
                   f"nothing): {_examples(d.not_found_by_key, cap)}")
    return [Reason(KIND_FAIL, text) for text in out]


def latency(f: VerdictFacts) -> list[Reason]:
    """p99 above the policy's limit in any phase, or above its ratio to the p99 before."""
    return [Reason(KIND_FAIL, t) for t in _latency_limit(f) + _latency_ratio(f)]


def _latency_limit(f: VerdictFacts) -> list[str]:
    limit = f.policy.latency_p99_limit_ms
    if limit is None:
        return []
    return [f"latency regression: p99 {_PHASE_WORDS[p]} was {p99:,.0f} ms, above the "
            f"{limit:,.0f} ms limit"
            for p in PHASES if (p99 := f.latency[p]["p99"]) is not None and p99 > limit]


def _ratio_limits(policy: Policy) -> list[tuple[str, float, float]]:
    """(percentile, ratio, floor) of each relative latency rule the policy switches on."""
    return [(q, ratio, floor) for q, ratio, floor in (
        ("p50", policy.latency_p50_ratio, policy.latency_ratio_floor_ms),
        ("p99", policy.latency_p99_ratio, policy.latency_p99_floor_ms)) if ratio is not None]


def _latency_ratio(f: VerdictFacts) -> list[str]:
    out = []
    for q, ratio, floor in _ratio_limits(f.policy):
        base = f.latency["before"][q]
        out += [f"latency regression: {q} {_PHASE_WORDS[p]} was {v / base:.1f}x the {q} before "
                f"the switch ({v:,.0f} ms vs {base:,.0f} ms), above the {ratio:g}x limit"
                for p in ("during", "after")
                if base and (v := f.latency[p][q]) is not None and v >= floor and v > ratio * base]
    return out


def latency_compared(f: VerdictFacts) -> list[str]:
    """What the relative latency rule saw, for a PASS: each phase against the baseline (a
    steady-load probe has one phase: its percentiles, compared with earlier runs elsewhere)."""
    lat, limits = f.latency, _ratio_limits(f.policy)
    if f.steady:
        steady = lat["before"]
        return ([] if steady["p50"] is None else
                [f"latency under steady load: p50 {steady['p50']:,.0f} ms, p99 "
                 f"{steady['p99']:,.0f} ms"])
    if not limits or not lat["before"]["p50"]:
        return []
    def ms(v: float | None) -> str:
        return "-" if v is None else f"{v:,.0f}"
    seen = "; ".join(f"{q} {ms(lat['before'][q])} / {ms(lat['during'][q])} / "
                     f"{ms(lat['after'][q])} ms" for q, _, _ in limits)
    rule = ", ".join(f"{q} {ratio:g}x above {floor:g} ms" for q, ratio, floor in limits)
    return [f"latency within the relative rule: {seen} (before / during / after the switch; "
            f"the limits: {rule})"]


# --------------------------------------------------------------------------------------------
# INCONCLUSIVE rules: could the run show anything?
# --------------------------------------------------------------------------------------------

def ledger_empty(f: VerdictFacts) -> list[Reason]:
    return ([Reason(KIND_INCONCLUSIVE, "inconclusive: the ledger holds no request")]
            if f.tally.total == 0 else [])


def load_short(f: VerdictFacts) -> list[Reason]:
    """The generator did not reach the share of its target the policy needs."""
    load, need = f.load, f.policy.min_load_fraction
    if not (load.target_rps > 0 and load.achieved_rps < need * load.target_rps):
        return []
    return [Reason(KIND_INCONCLUSIVE,
                   f"inconclusive: the load reached {load.achieved_rps:,.1f} req/s of the "
                   f"{load.target_rps:,.1f} targeted ({load.achieved_rps / load.target_rps:.0%};"
                   f" the policy needs {need:.0%})")]


def generator_saturated(f: VerdictFacts) -> list[Reason]:
    """The generator could not keep its own schedule; the reason names which limit it hit
    (its concurrency cap, its own CPU, or a worker process or pod it lost). A slow service is
    never this: an open model keeps starting requests on schedule, and the slowness shows as
    latency."""
    if not f.load.saturated:
        return []
    why = {"cap": "its concurrency cap", "cpu": "its own CPU",
           "lost": "it lost a load worker"}.get(f.load.shortfall, "its own CPU")
    return [Reason(KIND_INCONCLUSIVE,
                   f"inconclusive: the load generator could not keep its schedule ({why}), so its "
                   "timings and rate are suspect" + (f": {f.load.detail}" if f.load.detail else ""))]


def idle_unexercised(f: VerdictFacts) -> list[Reason]:
    """The idle population ran, but none of its requests started within a switch window: the
    path it exists for (a kept-alive connection idle across a shutdown) was not exercised."""
    if "idle" not in f.tally.populations:
        return []
    n = len(f.switches)
    return [Reason(KIND_INCONCLUSIVE,
                   f"inconclusive: no request of the idle keep-alive clients started within "
                   f"{'the switch window' if n == 1 else 'the window of ' + _nth(i, n)}: an idle "
                   f"connection across a shutdown was not exercised (shorten their period)")
            for i, sw in enumerate(f.switches)
            if sw.cutover.t_switch is not None and sw.cutover.t_drained is not None
            and sw.idle_in_window == 0]


def _population_line(f: VerdictFacts) -> str:
    """Each client population's requests and failures, and the failures a retry recovered."""
    pops = f.tally.populations
    parts = []
    for name in ("keepalive", "idle", "fresh", "retry", "-"):
        p = pops.get(name)
        if p is None:
            continue
        label = name if name != "-" else "no population"
        failed = (f"{p.failed:,} failed (" + ", ".join(
            f"{_failure_noun(o, 0, k)}" for o, k in sorted(p.by_outcome.items())) + ")"
            if p.failed else "none failed")
        parts.append(f"{label} {p.requests:,} ({failed})")
    recovered = sum(p.recovered for p in pops.values())
    line = "by client population: " + "; ".join(parts)
    if "retry" in pops:
        key = getattr(f.data, "key_name", "") or "idempotency key"
        line += (f"; {_n(recovered, 'failure')} of retrying clients then recovered by a retry "
                 f"with the same {key} (still counted as failures)")
    return line


def populations_seen(f: VerdictFacts) -> list[Reason]:
    """When requests failed: which populations lost what (a note beside the causes)."""
    if not f.tally.failed or not f.tally.populations or set(f.tally.populations) == {"-"}:
        return []
    return [Reason(KIND_NOTE, _population_line(f))]


def inflight_at_sigterm(f: VerdictFacts) -> list[str]:
    """How many requests were in flight at each SIGTERM of a switch (10 ms resolution)."""
    terms = _sigterms(f)
    if not terms:
        return []
    counts = [f.tally.inflight_at(e.t) for e in terms]
    line = (f"requests in flight at each SIGTERM ({len(terms)} replicas): "
            + ", ".join(f"{e.detail.get('replica', '?')} {k:,}" for e, k in zip(terms, counts)))
    if 0 in counts:
        line += " (a shutdown with nothing in flight shows nothing about in-flight requests)"
    return [line]


def switch_missing(f: VerdictFacts) -> list[Reason]:
    """A switch the scenario began but never made (no t_switch)."""
    n = len(f.switches)
    return [Reason(KIND_INCONCLUSIVE,
                   f"inconclusive: {_which(sw.cutover, i, n) or 'the switch'} never happened "
                   f"(the scenario reported no t_switch)")
            for i, sw in enumerate(f.switches) if sw.cutover.t_switch is None]


def window_thin(f: VerdictFacts) -> list[Reason]:
    """Too few requests started within a switch window to show anything about it."""
    out, n, need = [], len(f.switches), f.policy.min_requests_in_window
    for i, sw in enumerate(f.switches):
        c = sw.cutover
        if c.t_switch is None or sw.in_window >= need:
            continue
        which = "the switch window" if n == 1 else f"the window of {_nth(i, n)}"
        span = (f"{which} ({_dur(c.t_drained - c.t_switch)})" if c.t_drained is not None
                else f"{which} (after the switch)")
        out.append(Reason(KIND_INCONCLUSIVE,
                          f"inconclusive: only {_n(sw.in_window, 'request')} started within "
                          f"{span}; the policy needs {need:,}"))
    return out


def data_check_error(f: VerdictFacts) -> list[Reason]:
    """The data check itself could not run; ``DataCheck.error`` holds the cause only."""
    if not f.data.error:
        return []
    return [Reason(KIND_INCONCLUSIVE, f"inconclusive: the data check could not run: {f.data.error}")]


def keys_unchecked(f: VerdictFacts) -> list[Reason]:
    """Idempotency-Keys past the data check's bound were never looked up: not a pass."""
    n = f.data.keys_unchecked
    if not n:
        return []
    return [Reason(KIND_INCONCLUSIVE, f"inconclusive: {_n(n, 'idempotency key')} sent in this "
                                      f"run {'was' if n == 1 else 'were'} not looked up (the "
                                      f"data check's bound), so no claim is made about them")]


def versions_unnamed(f: VerdictFacts) -> list[Reason]:
    n = len(f.switches)
    out = []
    for i, sw in enumerate(f.switches):
        if sw.named:
            continue
        c = sw.cutover
        of = f" for {_nth(i, n)}" if n > 1 else ""
        out.append(Reason(KIND_INCONCLUSIVE,
                          f"inconclusive: the scenario did not name both versions{of} (old "
                          f"{c.old_version or '?'}, new {c.new_version or '?'}), so no answer "
                          f"can be attributed to a side of the switch"))
    return out


# --------------------------------------------------------------------------------------------
# Notes
# --------------------------------------------------------------------------------------------

def _stops(f: VerdictFacts) -> list[tuple[Event, Event]]:
    """(replica terminating, replica terminated) of every replica told to stop within one of
    this slice's switches, in the order they ended: what the shutdown rules judge."""
    told = {e.detail.get("replica"): e for e in _sigterms(f)}
    return [(told[e.detail.get("replica")], e) for e in f.events
            if e.name == EventName.REPLICA_TERMINATED and e.detail.get("replica") in told]


def _sigterms(f: VerdictFacts) -> list[Event]:
    return [e for e in f.events if e.name == EventName.REPLICA_TERMINATING and _in_a_switch(f, e.t)]


def early_exit(f: VerdictFacts) -> list[Reason]:
    """A replica told to stop (SIGTERM) that exited before its drain window ended while it
    still held client connections: it closed them instead of draining, even when no request
    happened to be in flight (the platform's events carry the evidence)."""
    kind = KIND_FAIL if f.policy.early_exit_fails else KIND_NOTE
    out = []
    for term, e in _stops(f):
        secs = e.detail.get("seconds_after_sigterm")
        window, held = term.detail.get("drain_window_s"), term.detail.get("connections")
        if secs is None or window is None or not held or secs >= window:
            continue
        out.append(Reason(kind, f"shutdown: replica {e.detail.get('replica')} exited "
                                f"{_dur(secs)} after SIGTERM, before its {window:g} s drain "
                                f"window ended, while it held {_n(held, 'client connection')}"
                                f": it closed them instead of draining"))
    return out


def open_at_drain_end(f: VerdictFacts) -> list[Reason]:
    """A replica that still held client connections when its drain window ended: it closed
    them neither in-band (Connection: close on an answer) nor while they were idle, so they
    are closed by its exit, under clients that may be sending on them (the keep-alive race,
    made certain for every client idle across the drain). Decided from the platform's counts,
    whatever the requests' luck this time."""
    kind = KIND_FAIL if f.policy.open_at_drain_end_fails else KIND_NOTE
    out = []
    for term, e in _stops(f):
        held = e.detail.get("connections_at_drain_end")
        window = term.detail.get("drain_window_s")
        if not held or window is None:
            continue
        out.append(Reason(kind, f"shutdown: replica {e.detail.get('replica')} still held "
                                f"{_n(held, 'client connection')} when its {window:g} s drain window "
                                f"ended: it closed them neither with its answers (Connection: close) "
                                f"nor while they were idle, so its exit closes them under clients "
                                f"that may be sending (the keep-alive race)"))
    return out


def _in_a_switch(f: VerdictFacts, t: float) -> bool:
    """Whether ``t`` falls within one of this slice's switches (switch to drained)."""
    return any(c.t_switch is not None and c.t_switch <= t
               and (c.t_drained is None or t <= c.t_drained)
               for c in (sw.cutover for sw in f.switches))


def readiness_findings(f: VerdictFacts) -> list[Reason]:
    """What the readiness lint found in the live objects before the switch: it explains a FAIL
    and warns on a PASS (a risk that did not bite this time)."""
    found = [str(e.detail.get("finding", e.detail)) for e in f.events
             if e.name == EventName.READINESS_FINDING and isinstance(e.detail, dict)]
    found += [x for x in f.readiness if x not in found]  # the events already carry most
    return [Reason(KIND_NOTE, f"readiness lint: {x}") for x in found]


# --------------------------------------------------------------------------------------------
# Money: the balances after the run against the credits and debits acknowledged
# (scenarios/money.py); silent unless this verdict judges money
# --------------------------------------------------------------------------------------------

def _amount(text: str) -> str:
    """An exact decimal string with thousands separators (never through a float)."""
    return format(Decimal(text), ",f")


def _when(f: VerdictFacts, t: float) -> str:
    """``at <dur> after <event>``, placed after the latest timeline event at or before ``t``."""
    i = bisect.bisect_right([e.t for e in f.events], t) - 1
    if i >= 0:
        return f"at {_dur(t - f.events[i].t)} after {describe(f.events[i])}"
    t0 = f.tally.t0 if f.tally.t0 is not None else t
    return f"at {_dur(t - t0)} after the first request"


def money_adds_up(f: VerdictFacts) -> list[Reason]:
    """An account whose final balance is not start + acknowledged credits - acknowledged
    debits (and no subset of its writes of unknown outcome explains the difference)."""
    m, cap = f.money, f.policy.max_examples
    if not m.judged:
        return []
    out = []
    for x in m.mismatches[:cap]:
        diff = Decimal(x.final) - Decimal(x.expected)
        unknown = (f"; no subset of its {_n(x.unknown, 'write')} of unknown outcome explains "
                   f"the difference" if x.unknown else "")
        out.append(f"data loss: money: account {x.account} holds {_amount(x.final)}, but "
                   f"{_amount(x.start)} at the start + {_amount(x.credits)} acknowledged "
                   f"credits - {_amount(x.debits)} acknowledged debits = "
                   f"{_amount(x.expected)} ({_amount(str(abs(diff)))} "
                   f"{'more' if diff > 0 else 'less'}){unknown}")
    if len(m.mismatches) > cap:
        more = m.mismatches[cap:]
        out.append(f"data loss: money: {_n(len(more), 'more account')} "
                   f"{'does' if len(more) == 1 else 'do'} not add up: "
                   f"{_examples([x.account for x in more], cap)}")
    return [Reason(KIND_FAIL, text) for text in out]


def stale_reads(f: VerdictFacts) -> list[Reason]:
    """Balance reads below what the writes acknowledged before them make (read-your-writes),
    or above what every write sent before they ended can make."""
    m = f.money
    if not m.judged:
        return []
    low = [s for s in m.stale_reads if Decimal(s.value) < Decimal(s.lower)]
    high = [s for s in m.stale_reads if Decimal(s.value) > Decimal(s.upper)]
    out = []
    if low:
        s = low[0]
        out.append(f"data loss: stale read: {_n(len(low), 'balance read')} showed less than "
                   f"the writes acknowledged before {'it' if len(low) == 1 else 'they'} "
                   f"started (read-your-writes), e.g. {s.account} read {_amount(s.value)} "
                   f"{_when(f, s.t_start)}, at least {_amount(s.lower)} was due "
                   f"(request {s.request_id or '?'})")
    if high:
        s = high[0]
        out.append(f"data loss: stale read: {_n(len(high), 'balance read')} showed more than "
                   f"the writes sent before {'it' if len(high) == 1 else 'they'} ended can "
                   f"make, e.g. {s.account} read {_amount(s.value)} {_when(f, s.t_start)}, at "
                   f"most {_amount(s.upper)} was possible (request {s.request_id or '?'})")
    return [Reason(KIND_FAIL, text) for text in out]


def money_unchecked(f: VerdictFacts) -> list[Reason]:
    """The money check could not run, or an invariant could not be checked: not a pass."""
    m = f.money
    if not m.judged:
        return []
    return [Reason(KIND_INCONCLUSIVE, f"inconclusive: money could not be checked: {why}")
            for why in (m.error, m.unchecked) if why]


def money_seen(f: VerdictFacts) -> list[str]:
    """What a PASS saw of money (nothing when this verdict does not judge it)."""
    m = f.money
    if not m.judged:
        return []
    unknown = (f"; {_n(m.unknown_writes, 'write')} of unknown outcome explained"
               if m.unknown_writes else "")
    return [f"money adds up on {_n(len(m.accounts), 'account')}: {_n(m.credits_acked, 'credit')}"
            f" and {_n(m.debits_acked, 'debit')} acknowledged, every final balance exact"
            f"{unknown}; {_n(m.reads_checked, 'balance read')} within read-your-writes bounds"]


def deploy_command(f: VerdictFacts) -> list[Reason]:
    """A watched deploy command (zerodrop watch) that failed, was stopped or could not start:
    its exit status and its last lines are a cause of the verdict."""
    out = []
    for e in f.events:
        if e.name != EventName.DEPLOY_EXITED or e.detail.get("code") == 0:
            continue
        lines = [str(x.detail.get("line", "")) for x in f.events
                 if x.name == EventName.DEPLOY_OUTPUT and x.t <= e.t][-5:]
        code = e.detail.get("code")
        how = "did not end in time and was stopped" if code == "timeout" else \
            "could not start" if code == 127 and not lines else f"exited with status {code}"
        out.append(Reason(KIND_FAIL, f"deploy command: {e.detail.get('command', '?')!r} {how}; its "
                                     f"last lines: {' | '.join(lines) or '(no output)'}"))
    return out


def deploy_seen(f: VerdictFacts) -> list[str]:
    """What a PASS saw of a watched deploy command."""
    out = []
    for e in f.events:
        if e.name == EventName.DEPLOY_EXITED and e.detail.get("code") == 0:
            n = sum(1 for x in f.events if x.name == EventName.DEPLOY_OUTPUT and x.t <= e.t)
            out.append(f"deploy command {e.detail.get('command', '?')!r} exited 0; its "
                       f"{_n(n, 'line')} are on the timeline")
    return out


RULES: tuple[Rule, ...] = (
    deploy_command, dropped_requests, unknown_versions, old_after_drain, new_before_switch, new_never_answered,
    data_loss, key_loss, money_adds_up, stale_reads, latency, early_exit, open_at_drain_end,
    ledger_empty, load_short, generator_saturated, switch_missing, window_thin, idle_unexercised,
    data_check_error, keys_unchecked, money_unchecked, versions_unnamed,
    readiness_findings, populations_seen,
)


# --------------------------------------------------------------------------------------------
# The figures (the bound on the failure rate), and what a PASS saw
# --------------------------------------------------------------------------------------------

def failure_bound(f: VerdictFacts) -> float | None:
    return clopper_pearson_upper(f.tally.failed, f.tally.total, f.policy.confidence)


def figures(f: VerdictFacts, upper: float | None) -> list[str]:
    """The verdict's figures, shown beside its reasons on a PASS and a FAIL alike: how many
    requests failed and the upper bound on the failure rate. A figure, never a reason: on a
    FAIL "the failure rate is below 4.2%" would read like an excuse for the failures."""
    if upper is None:
        return []
    t = f.tally
    seen = f" ({pct(t.failed / t.total)})" if t.failed else ""
    return [f"{t.failed:,} of {_n(t.total, 'request')} failed{seen}; "
            f"{f.policy.confidence:.0%} upper bound on the failure rate: {pct_up(upper)}"]


def pct(rate: float) -> str:
    """A rate as a percentage with two significant digits (an observed rate, rounded)."""
    v = rate * 100.0
    if v <= 0.0:
        return "0%"
    digits = max(0, 1 - math.floor(math.log10(v)))
    text = f"{v:.{digits}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text + "%"


def pass_reasons(f: VerdictFacts) -> list[str]:
    """What a PASS saw: each switch happen, and every acknowledged payment kept."""
    n = len(f.switches)
    out = [_cutover_seen(sw, i, n) for i, sw in enumerate(f.switches)
           if sw.cutover.t_switch is not None]
    if f.steady:
        out.append(f"steady load, no switch: every one of the {_n(f.tally.total, 'request')} "
                   f"got a complete, expected answer")
    d = f.data
    out.append(f"no data lost: all {_n(d.acknowledged, 'acknowledged ' + d.noun)} found "
               f"with their {d.value}s and by their {d.key_name}s, no idempotency key "
               f"{'paid' if d.noun == 'payment' else 'written'} twice")
    out += money_seen(f)
    out += deploy_seen(f)
    if f.tally.populations and set(f.tally.populations) != {"-"}:
        out.append(_population_line(f))
    out += inflight_at_sigterm(f)
    return out + latency_compared(f)


def _cutover_seen(sw: SwitchTally, i: int, n: int) -> str:
    c = sw.cutover
    old_for = (f"old version {c.old_version} answered until {_dur(sw.t_last_old - c.t_switch)} "
               f"after the switch" if sw.t_last_old is not None
               else f"old version {c.old_version} answered nothing after the switch")
    new_for = (f"new version {c.new_version} answered every request that started after the "
               f"drain" if c.t_drained is not None
               else f"new version {c.new_version} answered after the switch")
    head = "cutover seen" if n == 1 else f"cutover seen ({_which(c, i, n)})"
    return (f"{head}: {old_for}; {new_for}; {_n(sw.in_window, 'request')} started within the "
            f"switch window")
