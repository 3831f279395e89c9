"""A game day's verdict: what the experiment expected against what the ledger shows, in the
manner of Chaos Toolkit (a steady-state hypothesis checked before and after the method, the
method's outcome compared with the experiment's expectation), judged request by request.

Pure: ledger records, windows and facts in; an ``ExperimentVerdict`` out. ``window_stats``
reads the records once; ``judge_experiment`` decides. Each check has three outcomes: held
(True), broken (False) and "could not be measured" (None: too few requests, a data check that
could not run), as every check of the harness.

- The **steady-state hypothesis** comes from the service profile's ``[steady_state]``: the
  share of requests that may fail (``error_budget``) and a latency most requests stay under
  (``slow_ms``, at most ``slow_share`` above it: by default 1 s for 95 % of requests). A count above a budget fails only when
  it could not come from a service at the budget (``reports.judge.above_limit``): one unlucky
  request is not a broken hypothesis, a stream of them is.
- The **expectation** is part of each experiment's definition: whether the switch completes,
  aborts before any traffic moves, or is rolled back; how many requests may fail while the
  method runs, and only how soon after a fault; whether the new version may answer anything;
  whether latency must hold during the method.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Sequence

from zerodrop.records.ledger import LedgerRecord
from zerodrop.reports.judge import FAIL as J_FAIL, JudgeSettings, above_limit

PASS, FAIL, INCONCLUSIVE, ABORTED = "PASS", "FAIL", "INCONCLUSIVE", "ABORTED"
SWITCH_OUTCOMES = ("completed", "aborted", "rolled back")
EXAMPLES = 5


@dataclass(frozen=True)
class Hypothesis:
    """The steady state: what the service does when nothing is wrong."""

    error_budget: float = 0.01   # share of requests that may fail
    slow_ms: float = 1000.0      # the latency limit ...
    slow_share: float = 0.05     # ... that at most this share may exceed (a p95): a shared
                                 # 2-core machine's own p99 under load reaches 500 ms
    min_requests: int = 30       # fewer in a window: it cannot be judged

    def describe(self) -> str:
        return (f"at most {self.error_budget:.2%} of requests fail and at most "
                f"{self.slow_share:.0%} take longer than {self.slow_ms:g} ms")


@dataclass(frozen=True)
class Expected:
    """The outcome an experiment expects; anything else is a deviation."""

    switch: str = "completed"               # one of SWITCH_OUTCOMES
    max_failed: int = 0                     # requests that may fail while the method runs
    failures_within_s: float | None = None  # ... and only this soon after a fault starts
    new_served: bool = True                 # False: the new version answers no request
    latency_held: bool = True               # the hypothesis' latency holds during the method

    def __post_init__(self) -> None:
        if self.switch not in SWITCH_OUTCOMES:
            raise ValueError(f"switch must be one of {', '.join(SWITCH_OUTCOMES)}")

    def describe(self) -> list[str]:
        failed = ("no request fails" if self.max_failed == 0 else
                  f"at most {self.max_failed} requests fail"
                  + (f", each within {self.failures_within_s:g} s of a fault"
                     if self.failures_within_s is not None else ""))
        lines = [f"the switch is {self.switch}", failed + " while the method runs"]
        if not self.new_served:
            lines.append("the new version answers no request")
        lines.append("latency holds during the method" if self.latency_held
                     else "latency may rise during the method")
        return lines


@dataclass
class WindowStats:
    """The requests that STARTED in one window of the run."""

    name: str
    t_from: float
    t_to: float
    total: int = 0
    failed: int = 0
    slow: int = 0
    # keep-alive races: the server closed an idle kept-alive connection as a request was sent
    # on it; HTTP/1.1 clients must retry those, so (as in the switch's verdict) a note, not a
    # failure, unless ``races_fail``
    races: int = 0
    by_outcome: dict[str, int] = field(default_factory=dict)
    by_version: dict[str, int] = field(default_factory=dict)
    by_population: dict[str, dict[str, int]] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)  # the first few, for reasons
    failed_times: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("failed_times")
        return d


def window_stats(records: Iterable[LedgerRecord], windows: Sequence[tuple[str, float, float]],
                 slow_ms: float, races_fail: bool = False) -> dict[str, WindowStats]:
    """One pass over ``records``: each to the window it started in (half-open, in order)."""
    stats = {name: WindowStats(name, t0, t1) for name, t0, t1 in windows}
    ordered = sorted(stats.values(), key=lambda w: w.t_from)
    for r in records:
        w = next((w for w in ordered if w.t_from <= r.t_start < w.t_to), None)
        if w is None:
            continue
        w.total += 1
        pop = w.by_population.setdefault(r.population or "-", {"total": 0, "failed": 0})
        pop["total"] += 1
        if r.outcome == "keepalive_race" and not races_fail:
            w.races += 1
        elif r.outcome != "ok":
            w.failed += 1
            pop["failed"] += 1
            w.by_outcome[r.outcome] = w.by_outcome.get(r.outcome, 0) + 1
            w.failed_times.append(r.t_start)
            if len(w.failures) < EXAMPLES:
                w.failures.append({"t": round(r.t_start, 3), "outcome": r.outcome,
                                   "status": r.status, "route": r.route,
                                   "version": r.version or "(no answer)",
                                   "population": r.population})
        if r.version:
            w.by_version[r.version] = w.by_version.get(r.version, 0) + 1
        if (r.t_end - r.t_start) * 1000.0 > slow_ms:
            w.slow += 1
    return stats


@dataclass(frozen=True)
class Check:
    name: str
    held: bool | None      # None: could not be measured
    expected: str
    observed: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ExperimentVerdict:
    experiment: str
    verdict: str                  # PASS | FAIL | INCONCLUSIVE | ABORTED
    reasons: list[str]
    checks: list[Check]
    switch: str                   # what the method did: completed | aborted | rolled back | not run

    def as_dict(self) -> dict[str, Any]:
        return {"experiment": self.experiment, "verdict": self.verdict,
                "reasons": list(self.reasons), "switch": self.switch,
                "checks": [c.as_dict() for c in self.checks]}


def steady_state(w: WindowStats | None, hyp: Hypothesis, name: str,
                 latency: bool = True) -> Check:
    """The hypothesis over one window: held, broken, or not measurable (too few requests)."""
    expected = hyp.describe() if latency else f"at most {hyp.error_budget:.2%} of requests fail"
    if w is None or w.total < hyp.min_requests:
        got = 0 if w is None else w.total
        return Check(name, None, expected, f"{got} requests: fewer than the "
                                           f"{hyp.min_requests} it takes to judge")
    s = JudgeSettings()
    errors, p_err = above_limit(w.failed, w.total, hyp.error_budget, s)
    slow, p_slow = above_limit(w.slow, w.total, hyp.slow_share, s) if latency else ("pass", 1.0)
    observed = (f"{w.failed} of {w.total} failed ({_outcomes(w)}), "
                f"{w.slow} slower than {hyp.slow_ms:g} ms")
    broken = []
    if errors == J_FAIL:
        broken.append(f"failures above the budget (p = {p_err:.2g})")
    if slow == J_FAIL:
        broken.append(f"slow answers above the budget (p = {p_slow:.2g})")
    return Check(name, not broken, expected, observed + (f": {'; '.join(broken)}" if broken else ""))


def _outcomes(w: WindowStats) -> str:
    return ", ".join(f"{n} {o}" for o, n in sorted(w.by_outcome.items())) or "none"


def judge_experiment(name: str, expected: Expected, hyp: Hypothesis,
                     stats: dict[str, WindowStats], *, switch: str, new_version: str,
                     fault_starts: Sequence[float] = (), aborted_before: str = "",
                     data: dict[str, Any] | None = None, removal_errors: Sequence[str] = (),
                     method_failure: str = "",
                     hits: Sequence[dict[str, Any]] = (),
                     flaps: Sequence[dict[str, Any]] = ()) -> ExperimentVerdict:
    """The experiment's verdict. ``stats`` has the windows ``before``, ``during`` and ``after``;
    ``switch`` what the method did; ``aborted_before`` the reason the steady state did not hold
    before the method (then nothing was touched: ABORTED); ``data`` the acknowledged-write
    check (``acknowledged``, ``lost``, ``error``); ``removal_errors`` faults that could not be
    taken away; ``hits`` each fault aimed at one replica (``replica``, ``requests`` it
    answered in the second before or had in flight): a kill that met no request proves
    nothing (not measured); ``flaps`` each readiness flap (``replica``, ``unready``: how
    often the platform took it out): a flap the platform never acted on proves nothing."""
    before = steady_state(stats.get("before"), hyp, "steady state before the method")
    if aborted_before:
        return ExperimentVerdict(name, ABORTED, [f"the steady state did not hold before the "
                                                 f"method, so nothing was touched: {aborted_before}"],
                                 [before], "not run")
    during = stats.get("during")
    checks = [before, _switch_check(expected, switch, method_failure),
              _failures_check(expected, during, fault_starts)]
    if hits:
        idle = [h for h in hits if not h.get("requests")]
        checks.append(Check("the fault met traffic", None if idle else True,
                            "each replica hit was serving requests",
                            "; ".join(f"{h['replica']}: {h.get('requests', 0)} requests in the "
                                      f"second before or in flight" for h in hits)))
    if flaps:
        still = [f for f in flaps if not f.get("unready")]
        checks.append(Check("the readiness flapped", None if still else True,
                            "the platform took each flapping replica out of its endpoints",
                            "; ".join(f"{f['replica']}: taken out {f.get('unready', 0)} times"
                                      for f in flaps)))
    if not expected.new_served:
        served = sum(w.by_version.get(new_version, 0) for w in stats.values())
        checks.append(Check("the new version answered nothing", served == 0,
                            f"no request answered by {new_version}",
                            f"{served} requests answered by {new_version}"))
    if expected.latency_held:
        lat = steady_state(during, hyp, "latency during the method")
        checks.append(Check(lat.name, lat.held, f"at most {hyp.slow_share:.0%} of requests "
                            f"slower than {hyp.slow_ms:g} ms", lat.observed))
    checks.append(steady_state(stats.get("after"), hyp, "steady state after the rollbacks"))
    checks.append(_data_check(data))
    checks.append(Check("every fault removed", not removal_errors, "every fault taken away",
                        "; ".join(removal_errors) or "all removed"))
    broken = [c for c in checks if c.held is False]
    unknown = [c for c in checks if c.held is None]
    verdict = FAIL if broken else INCONCLUSIVE if unknown else PASS
    reasons = [f"{c.name}: expected {c.expected}; observed {c.observed}" for c in broken + unknown]
    if not reasons:
        reasons = [f"held: {c.name} ({c.observed})" for c in checks]
    return ExperimentVerdict(name, verdict, reasons, checks, switch)


def _switch_check(expected: Expected, switch: str, failure: str) -> Check:
    observed = switch + (f" ({failure})" if failure and switch != "completed" else "")
    return Check("the switch", switch == expected.switch, expected.switch, observed)


def _failures_check(expected: Expected, w: WindowStats | None, fault_starts: Sequence[float]) -> Check:
    name = "failures while the method ran"
    want = expected.describe()[1]
    if w is None or w.total == 0:
        return Check(name, None, want, "no request started while the method ran")
    examples = "; ".join(f"{f['outcome']} {f['status']} {f['route']} ({f['version']}, "
                         f"{f['population']})" for f in w.failures)
    observed = f"{w.failed} of {w.total} failed" + (f" ({_outcomes(w)}: {examples})" if w.failed else "")
    if w.races:
        observed += (f"; and {w.races} keep-alive race{'s' if w.races > 1 else ''} (a note: the "
                     f"server closed an idle kept-alive connection as a request was sent on it)")
    held = w.failed <= expected.max_failed
    if held and w.failed and expected.failures_within_s is not None:
        late = [t for t in w.failed_times
                if not any(0 <= t - f <= expected.failures_within_s for f in fault_starts)]
        if late:
            held = False
            observed += f"; {len(late)} of them not within {expected.failures_within_s:g} s of a fault"
    return Check(name, held, want, observed)


def _data_check(data: dict[str, Any] | None) -> Check:
    name, want = "no acknowledged write lost", "every acknowledged write found again"
    if data is None:
        return Check(name, None, want, "not checked")
    if data.get("error"):
        return Check(name, None, want, f"the check could not run: {data['error']}")
    lost = int(data.get("lost", 0))
    return Check(name, lost == 0, want, f"{data.get('acknowledged', 0)} acknowledged, {lost} "
                                        f"lost, missing or duplicated")


__all__ = ["Hypothesis", "Expected", "WindowStats", "window_stats", "Check",
           "ExperimentVerdict", "steady_state", "judge_experiment",
           "PASS", "FAIL", "INCONCLUSIVE", "ABORTED", "SWITCH_OUTCOMES"]
