"""The zero-downtime proof, in the one direction data flows:

platform up -> load starts -> baseline -> scenario steps (events) -> tail -> load stops ->
data check -> verdict (pure) -> evidence (renders) -> the caller asserts on the verdict.

Nothing flows back: the verdict never sees the platform, the evidence never decides.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable, Sequence

from zerodrop.records.events import Event
from zerodrop.platforms.base import Platform
from zerodrop.records.results import Cutover, DataCheck
from zerodrop.records.ledger import read_records
from zerodrop.load.progress import TerminalProgress
from zerodrop.load.runner import LoadPlan, LoadResult, LoadRun
from zerodrop.reports.evidence import write_evidence
from zerodrop.reports.verdict import Policy, Verdict, judge
from zerodrop.scenarios.integrity import check_payments
from zerodrop.scenarios.steps import Context, Scenario, ScenarioResult


@dataclass(frozen=True)
class ProofSettings:
    users: int = 20
    rate: float = 100.0            # total requests per second the generator must hold
    workers: int = 0               # Locust worker processes (0: one process)
    request_timeout: float = 5.0
    baseline_s: float = 2.0        # load before the first step: the "before" phase
    tail_s: float = 2.0            # load after the last step: the "after" phase
    max_duration: float = 120.0    # hard cap on the load run (the progress line shows it as planned)
    token: str = "test-token"
    policy: Policy = field(default_factory=Policy)
    show_progress: bool = True

    def validate(self) -> None:
        if self.baseline_s < 0 or self.tail_s < 0:
            raise ValueError("baseline_s and tail_s must be >= 0")


@dataclass
class Proof:
    name: str
    verdict: Verdict
    scenario: ScenarioResult
    load: LoadResult
    data: DataCheck
    evidence: dict[str, Path]
    timeline: list[Event]

    def explain(self) -> str:
        """Everything a failed assertion should say, one reason a line."""
        lines = [f"{self.name}: {self.verdict.verdict}"]
        if not self.scenario.ok:
            lines.append(f"scenario: {self.scenario.failure}")
        lines += [f"- {r}" for r in self.verdict.reasons]
        lines.append(f"evidence: {self.evidence.get('html', '')}")
        return "\n".join(lines)


def prove(platform: Platform, scenario: Scenario, ctx: Context, settings: ProofSettings,
          out_dir: Path, ledger_dir: Path, name: str | None = None,
          progress: Callable[[str], None] | None = None,
          progress_stream: IO[str] | None = None) -> Proof:
    """Run ``scenario`` under load through the platform's Service and judge every request."""
    proofs = prove_sequence(platform, [lambda p: (scenario, ctx)], settings, out_dir,
                            ledger_dir, [name or scenario.name], progress, progress_stream)
    return proofs[0]


Builder = Callable[[Platform], "tuple[Scenario, Context]"]


def prove_sequence(platform: Platform, builders: Sequence[Builder], settings: ProofSettings,
                   out_dir: Path, ledger_dir: Path, names: Sequence[str] | None = None,
                   progress: Callable[[str], None] | None = None,
                   progress_stream: IO[str] | None = None) -> list[Proof]:
    """Several scenarios one after another under ONE load run (e.g. ten switches back and
    forth), each judged on the requests that started in its own slice of the run.

    A builder is called when its turn comes, so it sees the platform as the previous scenario
    left it. The sequence stops at the first scenario that fails; later ones are not run.
    """
    settings.validate()
    plan = LoadPlan(host=platform.service_url, token=settings.token, users=settings.users,
                    rate=settings.rate, max_duration=settings.max_duration,
                    workers=settings.workers, request_timeout=settings.request_timeout,
                    ledger_dir=ledger_dir)
    plan.validate()
    ran: list[tuple[Scenario, Context, ScenarioResult, float]] = []
    current = {"step": "baseline"}

    def on_step(name: str) -> None:
        current["step"] = name
        if progress is not None:
            progress(name)

    terminal = TerminalProgress(progress_stream, step=lambda: current["step"]) \
        if settings.show_progress and progress_stream is not None else None
    try:
        make_run = platform.load_generator() or LoadRun
        with make_run(plan, progress=terminal) as run:
            run.start()
            platform.events.emit("load", "load started", users=settings.users,
                                 rate=settings.rate)
            time.sleep(settings.baseline_s)  # the "before" phase is measured load, not a wait
            for build in builders:
                scenario, ctx = build(platform)
                # the first slice owns every request from the very first one on, also those
                # sent while the run was starting: none may fall outside a verdict
                slice_start = float("-inf") if not ran else time.time()
                result = scenario.run(ctx, on_step)
                ran.append((scenario, ctx, result, slice_start))
                if not result.ok:
                    break
            current["step"] = "tail"
            time.sleep(settings.tail_s)      # the "after" phase
            platform.events.emit("load", "load stopping")
            load = run.stop()
    finally:
        if terminal is not None:
            terminal.close()
    timeline = platform.events.snapshot()
    target = load.load_target()
    names = list(names or [s.name for s, *_ in ran])
    proofs = []
    for i, (scenario, ctx, result, t_from) in enumerate(ran):
        t_to = ran[i + 1][3] if i + 1 < len(ran) else float("inf")
        name = names[i] if i < len(names) else f"{scenario.name}-{i + 1}"
        window = (t_from, t_to)
        data = check_payments(platform.service_url, settings.token, load.ledger_path, window)
        cutover = ctx.facts().cutover
        with open(load.ledger_path) as f:
            records = (r for r in read_records(f) if t_from <= r.t_start < t_to)
            verdict = judge(records, timeline, cutover, data, target, settings.policy,
                            scenario=name)
        evidence = write_evidence(verdict, timeline, out_dir, name, load.ledger_path)
        proofs.append(Proof(name, verdict, result, load, data, evidence, timeline))
    return proofs
