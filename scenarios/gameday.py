"""A game day, run: the experiment's scenario under load (scenarios/proof.py), then its verdict
against the expectation (reports/gameday.py, pure), then the report (renders).

platform up -> load -> steady state before -> method with faults -> rollbacks -> tail (the
"after" window) -> load stops -> windows from the ledger -> experiment verdict -> report.

Every fault is removed: by the scenario's last step, by its rollback step on failure, and by
the Injector's ``with`` block here, which also runs on an exception or Ctrl-C.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from zerodrop.records.events import EventName
from zerodrop.records.ledger import read_records
from zerodrop.reports.gameday import (ExperimentVerdict, Hypothesis, judge_experiment,
                                      window_stats)
from zerodrop.reports.gameday_report import impact_by_population, report_data, steps_of, write_gameday
from zerodrop.scenarios.experiments import GameDay
from zerodrop.scenarios.proof import Proof, ProofSettings, prove

INF = float("inf")


@dataclass
class GameDayResult:
    verdict: ExperimentVerdict
    proof: Proof
    report: dict[str, Path]

    def explain(self) -> str:
        lines = [f"game day {self.verdict.experiment}: {self.verdict.verdict} "
                 f"(the switch: {self.verdict.switch})"]
        lines += [f"- {r}" for r in self.verdict.reasons]
        lines.append(f"report: {self.report.get('html', '')}")
        return "\n".join(lines)


def run_gameday(gd: GameDay, hypothesis: Hypothesis, settings: ProofSettings, out_dir: Path,
                ledger_dir: Path, progress_stream: IO[str] | None = None,
                target: str = "") -> GameDayResult:
    platform, state = gd.ctx.platform, gd.state
    with gd.injector:
        proof = prove(platform, gd.scenario, gd.ctx, settings, out_dir, ledger_dir,
                      name=f"gameday-{gd.experiment.name}-requests",
                      progress_stream=progress_stream)
    t_method = state.get("t_method")
    t_back = state.get("t_rolled_back")
    windows = [("before", -INF, t_method if t_method is not None else INF)]
    if t_method is not None:
        windows += [("during", t_method, t_back if t_back is not None else INF)]
        if t_back is not None:
            windows += [("after", t_back, INF)]
    with open(proof.load.ledger_path, encoding="utf-8") as f:
        records = list(read_records(f))
    stats = window_stats(records, windows, hypothesis.slow_ms,
                         races_fail=settings.policy.keepalive_races_fail)
    t0 = min((r.t_start for r in records), default=t_method or 0.0)
    d = proof.data
    lost = (len(d.missing) + len(d.mismatched) + len(d.duplicated_keys)
            + len(d.not_found_by_key) + len(d.key_leads_elsewhere))
    verdict = judge_experiment(
        gd.experiment.name, gd.experiment.expected, hypothesis, stats,
        switch=_switch_outcome(gd, proof), new_version=gd.new_version,
        fault_starts=state["fault_starts"],
        aborted_before=state.get("aborted_before", ""),
        data={"acknowledged": d.acknowledged, "lost": lost, "error": d.error},
        removal_errors=gd.injector.errors,
        method_failure=proof.scenario.failure,
        hits=[{"t": round(t - t0, 3), "replica": name,
               "requests": sum(1 for r in records if r.replica == name and
                               (t - 1.0 <= r.t_end <= t or r.t_start <= t <= r.t_end))}
              for t, name in gd.injector.hits],
        flaps=[{"t": round(t - t0, 3), "replica": name,
                "unready": sum(1 for e in proof.timeline if e.name == EventName.REPLICA_UNREADY
                               and e.t >= t and e.detail.get("replica") == name)}
               for t, name in gd.injector.flaps])
    info: dict[str, Any] = {
        "title": gd.experiment.title, "why": gd.experiment.why, "method": gd.experiment.method,
        "expected": gd.experiment.expected.describe(), "hypothesis": hypothesis.describe(),
        "target": target, "old": gd.old, "new": gd.new, "new_version": gd.new_version,
        "faults_applied": gd.injector.applied,
        "steps_run": [{"name": s.name, "status": s.status, "error": s.error}
                      for s in proof.scenario.steps],
        "evidence": str(proof.evidence.get("html", "")),
    }
    faults = [{"name": w.name, "target": w.target, "t_start": round(w.t_start - t0, 3),
               "t_end": None if w.t_end is None else round(w.t_end - t0, 3)}
              for w in gd.ctx.facts().faults]
    data = report_data(verdict, info, stats, impact_by_population(records, t0), faults,
                       steps_of(proof.timeline, t0), t0)
    return GameDayResult(verdict, proof, write_gameday(data, out_dir))


def _switch_outcome(gd: GameDay, proof: Proof) -> str:
    """What the method did to traffic: completed, aborted (no traffic moved), rolled back."""
    if not gd.state.get("started"):
        return "not run"
    if gd.ctx.canary is not None:
        outcome = gd.ctx.canary.get("outcome")
        if outcome == "promoted":
            return "completed"
        return "rolled back" if gd.ctx.has_switched else "aborted"
    if gd.state.get("method_failed"):
        return "rolled back" if gd.ctx.has_switched else "aborted"
    return "completed" if gd.ctx.has_switched else "aborted"


__all__ = ["GameDayResult", "run_gameday"]
