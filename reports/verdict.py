"""The verdict: a pure function of (ledger, timeline, cutover, data check, load target).

``judge`` reads the ledger once, as a stream, keeping counters and bounded summaries only, so a
ledger of millions of lines is judged in constant memory (plus one small bucket per second of
run time for the chart). No I/O, no clock, no processes: everything it needs is an argument.

Outcomes (Argo's Successful / Failed / Error): PASS, FAIL, INCONCLUSIVE ("could not measure").
FAIL wins over INCONCLUSIVE (a failure is a fact even under short load), which wins over PASS.

The wording of the reasons is a contract: ``reports.allure_evidence.CATEGORIES`` matches it with
regular expressions (tested in tests/reports). Prefixes: dropped requests read
"<n> connection resets|connections refused|timeouts|bad or incomplete bodies|HTTP <s> answers
from|at ..."; "data loss: ..."; "cutover: ..." / "unknown version: ..."; "latency regression:
..."; "inconclusive: ...".

Latency percentiles are nearest-rank and exact up to ``Policy.exact_quantile_cap`` ok requests
per phase; past that a log-bucket histogram with <= 1% relative error takes over. Per-second p99
for the chart always comes from such a histogram (<= 1% error).
"""
from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

from zerodrop.records.events import Event
from zerodrop.records.results import Cutover, DataCheck, LoadTarget
from zerodrop.records.ledger import LedgerRecord
from zerodrop.reports.stats import LogHistogram, Quantiles, clopper_pearson_upper

PASS, FAIL, INCONCLUSIVE = "PASS", "FAIL", "INCONCLUSIVE"
PHASES = ("before", "during", "after")
NO_VERSION = "(none)"  # an answer without an X-App-Version header
_PHASE_WORDS = {"before": "before the switch", "during": "during the switch",
                "after": "after the drain"}
_MAX_VERSION_LABELS = 100  # distinct unknown versions tracked one by one; the rest are pooled
_DETAIL_KEYS = ("color", "replica", "signal", "version", "selector")


@dataclass(frozen=True)
class Policy:
    """What the verdict demands. Latency limits are off by default (None): the zero-drop claim
    is about answers and data; a team that also gates on latency sets them."""

    min_load_fraction: float = 0.9        # achieved_rps must reach this share of target_rps
    min_requests_in_window: int = 50      # requests that STARTED within [t_switch, t_drained]
    confidence: float = 0.95              # for the one-sided upper bound on the failure rate
    max_examples: int = 5                 # ids/keys quoted in a reason
    latency_p99_limit_ms: float | None = None  # any phase's p99 above this -> FAIL
    latency_p99_ratio: float | None = None     # during/after p99 over before p99 above -> FAIL
    latency_ratio_floor_ms: float = 50.0  # ratios below this absolute p99 are noise, not judged
    exact_quantile_cap: int = 50_000      # exact percentiles up to this many values per phase


@dataclass(frozen=True)
class FailureClass:
    """One class of dropped requests: same outcome and status."""

    outcome: str
    status: int
    count: int
    first_t: float
    last_t: float
    after_event: str | None   # the latest timeline event at or before first_t (first seen)
    after_s: float | None     # first_t - that event's t

    @property
    def label(self) -> str:
        return f"{self.outcome} {self.status}" if self.status else self.outcome

    def as_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "status": self.status, "count": self.count,
                "first_t": self.first_t, "last_t": self.last_t,
                "after_event": self.after_event, "after_s": self.after_s}


@dataclass(frozen=True)
class Series:
    """Per-second buckets for the chart, keyed by the whole second of t_start (absolute clock).
    Only seconds that saw a request are listed. ``ok_by_version`` counts ok answers."""

    t0: float | None                    # the first request's t_start
    seconds: list[int]
    ok_by_version: dict[str, list[int]]
    failed: list[int]
    p99_ms: list[float | None]


@dataclass(repr=False)
class Verdict:
    verdict: str
    reasons: list[str]
    requests_total: int
    requests_failed: int
    failures_by_outcome: dict[str, int]
    served_by_version: dict[str, int]
    switch: dict[str, float | None]
    latency_ms: dict[str, dict[str, float | None]]
    integrity: dict[str, int]
    load: dict[str, Any]
    bound_95: dict[str, float | None]
    failure_classes: list[FailureClass] = field(default_factory=list)
    requests_in_window: int = 0
    scenario: str | None = None
    series: Series | None = None

    def __repr__(self) -> str:  # short: pytest prints it under every failed assertion
        return (f"Verdict({self.verdict}, {self.requests_total:,} requests, "
                f"{self.requests_failed:,} failed, {len(self.reasons)} reasons)")

    @property
    def passed(self) -> bool:
        return self.verdict == PASS

    def summary(self) -> str:
        """The verdict and its reasons, one per line: the message a test asserts with (the
        Allure categories match against it)."""
        head = f"zero-downtime verdict: {self.verdict}"
        if self.scenario:
            head += f" ({self.scenario})"
        return "\n".join([head] + [f"- {r}" for r in self.reasons])

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "requests_total": self.requests_total,
            "requests_failed": self.requests_failed,
            "failures_by_outcome": dict(self.failures_by_outcome),
            "served_by_version": dict(self.served_by_version),
            "switch": dict(self.switch),
            "latency_ms": {p: dict(v) for p, v in self.latency_ms.items()},
            "integrity": dict(self.integrity),
            "load": dict(self.load),
            "bound_95": dict(self.bound_95),
            "failure_classes": [c.as_dict() for c in self.failure_classes],
        }
        if self.scenario is not None:
            d["scenario"] = self.scenario
        return d


# --------------------------------------------------------------------------------------------
# Wording
# --------------------------------------------------------------------------------------------

def _n(count: int, singular: str, plural: str | None = None) -> str:
    return f"{count:,} {singular if count == 1 else (plural or singular + 's')}"


def _dur(seconds: float) -> str:
    if abs(seconds) < 0.1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.1f} s"


def _pct_up(rate: float) -> str:
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
    if outcome == "bad_body":
        return _n(count, "bad or incomplete body", "bad or incomplete bodies")
    if outcome == "http_error":
        return _n(count, f"HTTP {status or 'error'} answer")
    return _n(count, f"request with outcome '{outcome}'", f"requests with outcome '{outcome}'")


def _event_phrase(event: Event) -> str:
    detail = event.detail if isinstance(event.detail, dict) else {}
    bits = [f"{k} {detail[k]}" for k in _DETAIL_KEYS if k in detail and detail[k] not in ("", None)]
    return f"'{event.name}'" + (f" ({', '.join(bits)})" if bits else "")


# --------------------------------------------------------------------------------------------
# The single pass
# --------------------------------------------------------------------------------------------

class _Second:
    __slots__ = ("ok_by_version", "failed", "hist")

    def __init__(self) -> None:
        self.ok_by_version: dict[str, int] = {}
        self.failed = 0
        self.hist = LogHistogram()


class _Tally:
    """Everything judge() keeps while streaming: counters and bounded summaries."""

    def __init__(self, cutover: Cutover, policy: Policy) -> None:
        self.c = cutover
        self.known = {cutover.old_version, cutover.new_version}
        # without both names no answer can be attributed: judged INCONCLUSIVE, not "unknown"
        self.versions_named = bool(cutover.old_version and cutover.new_version)
        self.versions_differ = self.versions_named and cutover.old_version != cutover.new_version
        self.total = 0
        self.failed = 0
        self.t0: float | None = None
        self.by_outcome: dict[str, int] = {}
        self.classes: dict[tuple[str, int], list[float]] = {}  # -> [count, first_t, last_t]
        self.served: dict[str, int] = {}
        self.unknown: dict[str, list[Any]] = {}  # label -> [count, first_t, example replica]
        self.old_after_drain: list[Any] = [0, None, ""]  # count, earliest t_start, replica
        self.new_before_switch: list[Any] = [0, None, ""]
        self.answered_after_switch = 0
        self.new_after_switch = 0
        self.in_window = 0
        self.t_first_new: float | None = None
        self.t_last_old: float | None = None
        self.latency = {p: Quantiles(policy.exact_quantile_cap) for p in PHASES}
        self.seconds: dict[int, _Second] = {}

    def phase(self, t: float) -> str:
        ts, td = self.c.t_switch, self.c.t_drained
        if ts is None or t < ts:
            return "before"
        if td is None or t <= td:
            return "during"
        return "after"

    def add(self, r: LedgerRecord) -> None:
        c = self.c
        self.total += 1
        t = r.t_start
        if self.t0 is None or t < self.t0:
            self.t0 = t
        phase = self.phase(t)
        if phase == "during":
            self.in_window += 1
        sec = self.seconds.get(math.floor(t))
        if sec is None:
            sec = self.seconds[math.floor(t)] = _Second()

        ok = r.outcome == "ok"
        if ok:
            ms = r.latency_ms
            self.latency[phase].add(ms)
            sec.hist.add(ms)
            label = r.version or NO_VERSION
            sec.ok_by_version[label] = sec.ok_by_version.get(label, 0) + 1
        else:
            self.failed += 1
            sec.failed += 1
            self.by_outcome[r.outcome] = self.by_outcome.get(r.outcome, 0) + 1
            key = (r.outcome, int(r.status or 0))
            # A failure is placed when it was SEEN (t_end): a request in flight when a replica
            # was killed started before the kill but failed because of it. A timeout's t_end is
            # only the client's deadline, so it is placed where it went unanswered: t_start.
            seen = r.t_start if r.outcome == "timeout" else r.t_end
            cls = self.classes.get(key)
            if cls is None:
                self.classes[key] = [1, seen, seen]
            else:
                cls[0] += 1
                if seen < cls[1]:
                    cls[1] = seen
                if seen > cls[2]:
                    cls[2] = seen

        if r.status or r.version:
            label = r.version or NO_VERSION
            self.served[label] = self.served.get(label, 0) + 1
            if c.t_switch is not None and t >= c.t_switch:
                self.answered_after_switch += 1
                if r.version == c.new_version:
                    self.new_after_switch += 1

        v = r.version
        if not self.versions_named:
            return
        if (v and v not in self.known) or (not v and ok):
            self._note(self.unknown, v or NO_VERSION, t, r.replica)
        elif v == c.new_version:
            if self.t_first_new is None or r.t_end < self.t_first_new:
                self.t_first_new = r.t_end
            if self.versions_differ and c.t_switch is not None and t < c.t_switch:
                self._count(self.new_before_switch, t, r.replica, keep_latest=True)
        elif v == c.old_version:
            if self.t_last_old is None or r.t_end > self.t_last_old:
                self.t_last_old = r.t_end
            if self.versions_differ and c.t_drained is not None and t > c.t_drained:
                self._count(self.old_after_drain, t, r.replica, keep_latest=False)

    @staticmethod
    def _count(slot: list[Any], t: float, replica: str, keep_latest: bool) -> None:
        slot[0] += 1
        # the example quoted is the one closest to the boundary the rule is about
        if slot[1] is None or (t > slot[1] if keep_latest else t < slot[1]):
            slot[1], slot[2] = t, replica

    @staticmethod
    def _note(table: dict[str, list[Any]], label: str, t: float, replica: str) -> None:
        entry = table.get(label)
        if entry is None:
            if len(table) >= _MAX_VERSION_LABELS:
                label = "(other versions)"
                entry = table.get(label)
            if entry is None:
                table[label] = [1, t, replica]
                return
        entry[0] += 1
        if t < entry[1]:
            entry[1], entry[2] = t, replica


# --------------------------------------------------------------------------------------------
# judge()
# --------------------------------------------------------------------------------------------

def judge(records: Iterable[LedgerRecord], timeline: Sequence[Event], cutover: Cutover,
          data: DataCheck, load: LoadTarget, policy: Policy = Policy(), *,
          scenario: str | None = None) -> Verdict:
    """Judge one switch. ``records`` is consumed once (a generator is fine and is never turned
    into a list); ``timeline`` is the scenario/platform/fault/load events on the same clock."""
    tally = _Tally(cutover, policy)
    for r in records:
        tally.add(r)

    events = sorted(timeline, key=lambda e: e.t)
    event_times = [e.t for e in events]
    fail: list[str] = []
    inconclusive: list[str] = []

    # -- dropped requests, one reason per (outcome, status), in order of first appearance
    classes: list[FailureClass] = []
    for (outcome, status), (count, first_t, last_t) in sorted(
            tally.classes.items(), key=lambda kv: kv[1][1]):
        i = bisect.bisect_right(event_times, first_t) - 1
        ev = events[i] if i >= 0 else None
        ref_t = ev.t if ev is not None else tally.t0
        ref = f"after {_event_phrase(ev)}" if ev is not None else "after the first request"
        a, b = first_t - ref_t, last_t - ref_t  # type: ignore[operator]
        noun = _failure_noun(outcome, status, int(count))
        when = f"at {_dur(a)}" if count == 1 or b == a else f"from {_dur(a)} to {_dur(b)}"
        fail.append(f"{noun} {when} {ref}")
        classes.append(FailureClass(outcome, status, int(count), first_t, last_t,
                                    ev.name if ev is not None else None,
                                    round(a, 6) if ev is not None else None))

    # -- versions and the cutover
    known = f"neither old {cutover.old_version} nor new {cutover.new_version}"
    for label, (count, _t, replica) in sorted(tally.unknown.items(), key=lambda kv: -kv[1][0]):
        what = "without a version header" if label == NO_VERSION else f"from version '{label}'"
        ex = f" (e.g. replica {replica})" if replica else ""
        fail.append(f"unknown version: {_n(count, 'answer')} came {what}{ex}, {known}")
    n, t_ex, replica = tally.old_after_drain
    if n:
        fail.append(
            f"cutover: {_n(n, 'request')} that started after the old colour drained "
            f"{'was' if n == 1 else 'were'} answered by old version {cutover.old_version} "
            f"(e.g. replica {replica or '?'}, started {_dur(t_ex - cutover.t_drained)} "
            f"after the drain)")
    n, t_ex, replica = tally.new_before_switch
    if n:
        fail.append(
            f"cutover: {_n(n, 'request')} that started before the switch "
            f"{'was' if n == 1 else 'were'} answered by new version {cutover.new_version} "
            f"(e.g. replica {replica or '?'}, started {_dur(cutover.t_switch - t_ex)} "
            f"before the switch)")
    if tally.answered_after_switch and not tally.new_after_switch and tally.versions_differ:
        fail.append(
            f"cutover: new version {cutover.new_version} answered none of the "
            f"{tally.answered_after_switch:,} requests answered after the switch")

    # -- data
    ack = data.acknowledged
    cap = policy.max_examples
    if data.missing:
        fail.append(f"data loss: {len(data.missing):,} of {_n(ack, 'acknowledged payment')} "
                    f"{'is' if len(data.missing) == 1 else 'are'} missing: "
                    f"{_examples(data.missing, cap)}")
    if data.mismatched:
        fail.append(f"data loss: {len(data.mismatched):,} of {_n(ack, 'acknowledged payment')} "
                    f"came back with another amount: {_examples(data.mismatched, cap)}")
    if data.duplicated_keys:
        fail.append(f"data loss: {_n(len(data.duplicated_keys), 'idempotency key')} produced "
                    f"more than one payment: {_examples(data.duplicated_keys, cap)}")

    # -- latency
    latency = {p: {"p50": _r3(q.quantile(0.50)), "p99": _r3(q.quantile(0.99))}
               for p, q in tally.latency.items()}
    fail.extend(_latency_reasons(latency, policy))

    # -- could we measure at all?
    if tally.total == 0:
        inconclusive.append("inconclusive: the ledger holds no request")
    if load.target_rps > 0 and load.achieved_rps < policy.min_load_fraction * load.target_rps:
        inconclusive.append(
            f"inconclusive: the load reached {load.achieved_rps:,.1f} req/s of the "
            f"{load.target_rps:,.1f} targeted ({load.achieved_rps / load.target_rps:.0%}; the "
            f"policy needs {policy.min_load_fraction:.0%})")
    if load.saturated:
        inconclusive.append("inconclusive: the load generator was saturated (it ran out of CPU, "
                            "so its timings and rate are suspect)"
                            + (f": {load.detail}" if load.detail else ""))
    if cutover.t_switch is None:
        inconclusive.append("inconclusive: the switch never happened (the scenario reported "
                            "no t_switch)")
    elif tally.in_window < policy.min_requests_in_window:
        span = (f"the switch window ({_dur(cutover.t_drained - cutover.t_switch)})"
                if cutover.t_drained is not None else "the switch window (after the switch)")
        inconclusive.append(
            f"inconclusive: only {_n(tally.in_window, 'request')} started within {span}; "
            f"the policy needs {policy.min_requests_in_window:,}")
    if data.error:
        inconclusive.append(f"inconclusive: the data check could not run: {data.error}")
    if not tally.versions_named:
        inconclusive.append(
            f"inconclusive: the scenario did not name both versions (old "
            f"{cutover.old_version or '?'}, new {cutover.new_version or '?'}), so no answer can "
            f"be attributed to a side of the switch")

    # -- the bound on the failure rate
    upper = clopper_pearson_upper(tally.failed, tally.total, policy.confidence)
    bound_reason = None
    if upper is not None:
        bound_reason = (f"{_n(tally.failed, 'failure')} in {_n(tally.total, 'request')}: the "
                        f"failure rate is below {_pct_up(upper)} with "
                        f"{policy.confidence:.0%} confidence")

    if fail:
        outcome, reasons = FAIL, fail + inconclusive
    elif inconclusive:
        outcome, reasons = INCONCLUSIVE, list(inconclusive)
    else:
        outcome, reasons = PASS, _pass_reasons(tally, cutover, data, latency)
    if bound_reason:
        if outcome == PASS:
            reasons.insert(0, bound_reason)
        else:
            reasons.append(bound_reason)
    # what the readiness lint found in the live objects before the switch: it explains a FAIL
    # and warns on a PASS (a risk that did not bite this time)
    reasons += [f"readiness lint: {e.detail.get('finding', e.detail)}" for e in events
                if e.name == "readiness finding" and isinstance(e.detail, dict)]

    t_switch = cutover.t_switch
    window = (tally.t_last_old - t_switch
              if tally.t_last_old is not None and t_switch is not None else None)
    return Verdict(
        verdict=outcome,
        reasons=reasons,
        requests_total=tally.total,
        requests_failed=tally.failed,
        failures_by_outcome=dict(sorted(tally.by_outcome.items())),
        served_by_version=dict(sorted(tally.served.items(), key=lambda kv: -kv[1])),
        switch={"t_switch": t_switch, "t_first_new": tally.t_first_new,
                "t_last_old": tally.t_last_old, "window_s": window},
        latency_ms=latency,
        integrity={"acknowledged": ack, "missing": len(data.missing),
                   "mismatched": len(data.mismatched),
                   "duplicated": len(data.duplicated_keys)},
        load={"target_rps": load.target_rps, "achieved_rps": load.achieved_rps,
              "saturated": load.saturated},
        bound_95={"failure_rate_upper": upper},
        failure_classes=classes,
        requests_in_window=tally.in_window,
        scenario=scenario,
        series=_series(tally),
    )


def _r3(x: float | None) -> float | None:
    return None if x is None else round(x, 3)


def _latency_reasons(latency: dict[str, dict[str, float | None]], policy: Policy) -> list[str]:
    out = []
    if policy.latency_p99_limit_ms is not None:
        for p in PHASES:
            p99 = latency[p]["p99"]
            if p99 is not None and p99 > policy.latency_p99_limit_ms:
                out.append(f"latency regression: p99 {_PHASE_WORDS[p]} was {p99:,.0f} ms, "
                           f"above the {policy.latency_p99_limit_ms:,.0f} ms limit")
    base = latency["before"]["p99"]
    if policy.latency_p99_ratio is not None and base:
        for p in ("during", "after"):
            p99 = latency[p]["p99"]
            if (p99 is not None and p99 >= policy.latency_ratio_floor_ms
                    and p99 > policy.latency_p99_ratio * base):
                out.append(f"latency regression: p99 {_PHASE_WORDS[p]} was {p99 / base:.1f}x "
                           f"the p99 before the switch ({p99:,.0f} ms vs {base:,.0f} ms), above "
                           f"the {policy.latency_p99_ratio:g}x limit")
    return out


def _pass_reasons(tally: _Tally, c: Cutover, data: DataCheck,
                  latency: dict[str, dict[str, float | None]]) -> list[str]:
    out = []
    if c.t_switch is not None:
        old_for = (f"old version {c.old_version} answered until {_dur(tally.t_last_old - c.t_switch)} "
                   f"after the switch" if tally.t_last_old is not None
                   else f"old version {c.old_version} answered nothing after the switch")
        new_for = (f"new version {c.new_version} answered every request that started after the "
                   f"drain" if c.t_drained is not None
                   else f"new version {c.new_version} answered after the switch")
        out.append(f"cutover seen: {old_for}; {new_for}; {_n(tally.in_window, 'request')} "
                   f"started within the switch window")
    out.append(f"no data lost: all {_n(data.acknowledged, 'acknowledged payment')} found with "
               f"their amounts, no idempotency key paid twice")
    return out


def _series(tally: _Tally) -> Series:
    secs = sorted(tally.seconds)
    versions = sorted({v for s in tally.seconds.values() for v in s.ok_by_version})
    return Series(
        t0=tally.t0,
        seconds=secs,
        ok_by_version={v: [tally.seconds[s].ok_by_version.get(v, 0) for s in secs]
                       for v in versions},
        failed=[tally.seconds[s].failed for s in secs],
        p99_ms=[_r3(tally.seconds[s].hist.quantile(0.99)) for s in secs],
    )
