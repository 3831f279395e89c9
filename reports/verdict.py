"""The verdict: a pure function of (ledger, timeline, scenario facts, data check, load target).

``Judge`` is the single streaming pass made incremental: ``add(record)`` once per ledger record
(constant memory, see reports/tally.py), then ``finish(...)`` applies the rules of
reports/rules.py in order and assembles the ``Verdict``. ``judge(records, ...)`` is both in one
call. No I/O, no clock, no processes: everything it needs is an argument.

Outcomes (Argo's Successful / Failed / Error): PASS, FAIL, INCONCLUSIVE ("could not measure").
FAIL wins over INCONCLUSIVE (a failure is a fact even under short load), which wins over PASS.
The reasons read: the FAIL causes, then the inconclusive ones, then notes (the readiness lint);
a PASS gives what it saw. The upper bound on the failure rate is no reason but a figure
(``Verdict.figures``, and ``bound_95`` in the JSON): on a FAIL it would read like an excuse.

Latency percentiles are nearest-rank and exact up to ``Policy.exact_quantile_cap`` ok requests
per phase; past that a log-bucket histogram with <= 1% relative error takes over. Per-second p99
for the chart always comes from such a histogram (<= 1% error).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Iterable, Sequence

from zerodrop.records.events import Event
from zerodrop.records.ledger import LedgerRecord
from zerodrop.records.results import Cutover, DataCheck, LoadTarget, ScenarioFacts
from zerodrop.records.results import MoneyCheck
from zerodrop.reports.rules import (KIND_FAIL, KIND_INCONCLUSIVE, KIND_NOTE, RULES,
                                    FailureClass, Policy, Reason, Rule, VerdictFacts,
                                    failure_bound, failure_classes, figures,
                                    latency_summary, pass_reasons)
from zerodrop.reports.tally import NO_VERSION, PHASES, Series, SwitchTally, Tally

PASS, FAIL, INCONCLUSIVE = "PASS", "FAIL", "INCONCLUSIVE"
NO_SWITCH = {"t_switch": None, "t_first_new": None, "t_last_old": None, "window_s": None}

__all__ = ["PASS", "FAIL", "INCONCLUSIVE", "PHASES", "NO_VERSION", "Policy", "FailureClass",
           "Series", "Verdict", "Judge", "judge", "as_facts"]


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
    faults: list[dict[str, Any]] = field(default_factory=list)  # FaultWindows, for the evidence
    switches: list[dict[str, Any]] = field(default_factory=list)  # one ``switch`` per cutover
    money: dict[str, Any] | None = None  # the money check, when this verdict judged money
    populations: dict[str, dict[str, Any]] = field(default_factory=dict)  # per client population
    # what the verdict measured, beside its reasons (the bound on the failure rate): shown on a
    # PASS and a FAIL alike, never a cause
    figures: list[str] = field(default_factory=list)
    canary: dict[str, Any] | None = None  # a canary's stages and times, as the scenario saw them
    steady: bool = False  # a steady-load probe: no switch on purpose (``switches`` empty)

    def __repr__(self) -> str:  # short: pytest prints it under every failed assertion
        return (f"Verdict({self.verdict}, {self.requests_total:,} requests, "
                f"{self.requests_failed:,} failed, {len(self.reasons)} reasons)")

    @property
    def passed(self) -> bool:
        return self.verdict == PASS

    def summary(self) -> str:
        """The verdict and its reasons, one per line, then its figures on one line: the message a
        test asserts with (the Allure categories match against it)."""
        head = f"zero-downtime verdict: {self.verdict}"
        if self.scenario:
            head += f" ({self.scenario})"
        tail = [f"figures: {'; '.join(self.figures)}"] if self.figures else []
        return "\n".join([head] + [f"- {r}" for r in self.reasons] + tail)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "verdict": self.verdict,
            "reasons": list(self.reasons),
            "figures": list(self.figures),
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
            "faults": [dict(f) for f in self.faults],
        }
        if len(self.switches) > 1:  # one switch is ``switch`` alone, as it always was
            d["switches"] = [dict(s) for s in self.switches]
        if self.steady:  # no switch on purpose: said, never left to a None t_switch
            d["steady"], d["switches"] = True, []
        if self.scenario is not None:
            d["scenario"] = self.scenario
        if self.money is not None:
            d["money"] = dict(self.money)
        if self.populations:
            d["populations"] = {k: dict(v) for k, v in self.populations.items()}
        if self.canary is not None:
            d["canary"] = self.canary
        return d


def as_facts(cutover: Cutover | ScenarioFacts | Sequence[Cutover]) -> ScenarioFacts:
    """What ``judge`` accepts in place of the scenario's facts: one Cutover (a single-switch
    proof), several, or the ScenarioFacts themselves."""
    if isinstance(cutover, ScenarioFacts):
        return cutover
    if isinstance(cutover, Cutover):
        return ScenarioFacts(cutovers=(cutover,))
    return ScenarioFacts(cutovers=tuple(cutover))


class Judge:
    """One slice's verdict, built record by record: ``add`` each ledger record once (in any
    order), then ``finish``. ``rules`` defaults to ``RULES``."""

    def __init__(self, facts: Cutover | ScenarioFacts | Sequence[Cutover],
                 policy: Policy = Policy(), rules: Sequence[Rule] = RULES) -> None:
        self.facts = as_facts(facts)
        self.policy = policy
        self.rules = tuple(rules)
        self.tally = Tally(self.facts.cutovers, policy.exact_quantile_cap)

    def add(self, record: LedgerRecord) -> None:
        self.tally.add(record)

    def finish(self, timeline: Sequence[Event], data: DataCheck, load: LoadTarget, *,
               scenario: str | None = None, money: MoneyCheck | None = None) -> Verdict:
        events = sorted(timeline, key=lambda e: e.t)
        f = VerdictFacts(self.tally, events, failure_classes(self.tally, events),
                         latency_summary(self.tally), data, load, self.policy,
                         self.facts.faults, self.facts.readiness_findings,
                         money if money is not None else MoneyCheck(), self.facts.steady)
        upper = failure_bound(f)
        outcome, reasons = assemble([r for rule in self.rules for r in rule(f)], f)
        verdict = _verdict(f, outcome, reasons, upper, scenario)
        return verdict if self.facts.canary is None else replace(verdict, canary=self.facts.canary)


def judge(records: Iterable[LedgerRecord], timeline: Sequence[Event],
          cutover: Cutover | ScenarioFacts | Sequence[Cutover], data: DataCheck,
          load: LoadTarget, policy: Policy = Policy(), *,
          scenario: str | None = None, money: MoneyCheck | None = None) -> Verdict:
    """Judge one slice. ``records`` is consumed once (a generator is fine and is never turned
    into a list); ``timeline`` is the scenario/platform/fault/load events on the same clock;
    ``cutover`` is the switch, several switches in order, or the scenario's facts."""
    j = Judge(cutover, policy)
    for r in records:
        j.add(r)
    return j.finish(timeline, data, load, scenario=scenario, money=money)


def assemble(reasons: Sequence[Reason], f: VerdictFacts) -> tuple[str, list[str]]:
    """The outcome and its reasons in reading order: FAIL causes first (a stable sort keeps
    the rules' order within a kind), then inconclusive ones, then notes; a PASS gives what it
    saw, then notes. The bound on the failure rate is not among them (``figures``)."""
    causes = sorted((r for r in reasons if r.kind != KIND_NOTE), key=lambda r: r.kind != KIND_FAIL)
    notes = [r.text for r in reasons if r.kind == KIND_NOTE]
    if any(r.kind == KIND_FAIL for r in causes):
        outcome = FAIL
    elif any(r.kind == KIND_INCONCLUSIVE for r in causes):
        outcome = INCONCLUSIVE
    else:
        return PASS, pass_reasons(f) + notes
    return outcome, [r.text for r in causes] + notes


def _verdict(f: VerdictFacts, outcome: str, reasons: list[str], upper: float | None,
             scenario: str | None) -> Verdict:
    t, d = f.tally, f.data
    # a steady-load probe has no switch: ``switch`` keeps its shape with every time None (what
    # every reader of the JSON expects) and ``switches`` is empty, which the JSON then says
    switches = [_switch_dict(sw) for sw in f.switches]
    return Verdict(
        verdict=outcome,
        reasons=reasons,
        requests_total=t.total,
        requests_failed=t.failed,
        failures_by_outcome=dict(sorted(t.by_outcome.items())),
        served_by_version=dict(sorted(t.served.items(), key=lambda kv: -kv[1])),
        switch=switches[-1] if switches else dict(NO_SWITCH),  # the last: a single switch's
        latency_ms=f.latency,
        integrity={"acknowledged": d.acknowledged, "missing": len(d.missing),
                   "mismatched": len(d.mismatched), "duplicated": len(d.duplicated_keys),
                   "not_found_by_key": len(d.not_found_by_key),
                   "key_leads_elsewhere": len(d.key_leads_elsewhere),
                   "keys_unchecked": d.keys_unchecked,
                   "keys_answered_twice": len(d.keys_answered_twice)},
        load={"target_rps": f.load.target_rps, "achieved_rps": f.load.achieved_rps,
              "saturated": f.load.saturated, "shortfall": f.load.shortfall,
              "scheduled": f.load.scheduled, "late": f.load.late,
              "missed_cap": f.load.missed_cap, "max_inflight": f.load.max_inflight},
        bound_95={"failure_rate_upper": upper, "failed": t.failed, "requests": t.total,
                  "confidence": f.policy.confidence},
        failure_classes=f.classes,
        requests_in_window=sum(sw.in_window for sw in f.switches),
        scenario=scenario,
        series=t.series(),
        faults=[asdict(w) for w in f.faults],
        switches=switches,
        money=_money_dict(f.money) if f.money.judged else None,
        populations={k: p.as_dict() for k, p in sorted(t.populations.items()) if k != "-"},
        figures=figures(f, upper),
        steady=f.steady,
    )


def _money_dict(m: MoneyCheck) -> dict[str, Any]:
    return {"accounts": len(m.accounts), "credits_acked": m.credits_acked,
            "debits_acked": m.debits_acked, "mismatched_accounts": len(m.mismatches),
            "reads_checked": m.reads_checked, "stale_reads": len(m.stale_reads),
            "unknown_writes": m.unknown_writes, "rejected_writes": m.rejected_writes,
            "unchecked": m.unchecked, "error": m.error}


def _switch_dict(sw: SwitchTally) -> dict[str, float | None]:
    t_switch = sw.cutover.t_switch
    window = (sw.t_last_old - t_switch
              if sw.t_last_old is not None and t_switch is not None else None)
    return {"t_switch": t_switch, "t_first_new": sw.t_first_new, "t_last_old": sw.t_last_old,
            "window_s": window}
