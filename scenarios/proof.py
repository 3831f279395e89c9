"""The zero-downtime proof, in the one direction data flows:

platform up -> load starts -> baseline -> scenario steps (events) -> tail -> load stops ->
one pass over the merged ledger (each record to its slice's judge and payment collector) ->
data check -> verdict (pure) -> evidence (renders) -> the caller asserts on the verdict.

Nothing flows back: the verdict never sees the platform, the evidence never decides.
"""
from __future__ import annotations

import bisect
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Callable, Sequence

from zerodrop.load.arrivals import MONEY_ACCOUNTS
from zerodrop.load.ledger import LedgerTail
from zerodrop.load.progress import TerminalProgress
from zerodrop.load.runner import LoadPlan, LoadResult, LoadRun
from zerodrop.platforms.base import Platform
from zerodrop.profiles import profile as profiles
from zerodrop.profiles.profile import Profile
from zerodrop.records.events import Event, EventName, Source
from zerodrop.records.ledger import LedgerRecord, read_records
from zerodrop.records.results import DataCheck, MoneyCheck
from zerodrop.reports.evidence import write_evidence
from zerodrop.reports.verdict import Judge, Policy, Verdict
from zerodrop.scenarios.integrity import PaymentAcks, lookup_payments
from zerodrop.scenarios.money import BalanceReadError, MoneyLedger, check_money_after, read_balances
from zerodrop.scenarios.steps import Context, Scenario, ScenarioResult


IDLE_PERIOD_DEFAULT_S = 3.0  # idle clients' period when the platform does not know its drain
IDLE_PERIOD_MAX_S = 4.5      # below the reference service's 5 s keep-alive idle timeout


@dataclass(frozen=True)
class ProofSettings:
    users: int = 20                # keep-alive connections opened before the schedule starts
    rate: float = 360.0            # requests per second STARTED on schedule (open model)
    workers: int = 0               # Locust worker processes (0: one process)
    arrivals: str = "constant"     # or "poisson"
    populations: dict[str, int] | None = None  # keepalive/fresh/retry weights; None: 60/15/25
    idle_clients: int = 8          # kept-alive clients idle longer than the drain between requests
    idle_period_s: float | None = None  # None: 1.5 x the platform's drain window + 0.5 s (max 4.5)
    max_inflight: int = 400        # the generator's concurrency cap per process
    money_accounts: tuple[str, ...] | None = None  # None: the profile's [money]; (): none judged
    profile: Profile | None = None  # the service profile; None: the payment-service default
    request_timeout: float = 5.0
    baseline_s: float = 2.0        # load before the first step: the "before" phase
    tail_s: float = 2.0            # load after the last step: the "after" phase
    max_duration: float = 120.0    # hard cap on the load run (the progress line shows it as planned)
    token: str = "test-token"
    policy: Policy = field(default_factory=Policy)
    show_progress: bool = True
    # the run the evidence names (target, command, commit, date, run_id, run_started...);
    # None: reports.evidence.run_context computes what it can
    run_context: dict | None = None

    def validate(self) -> None:
        if self.baseline_s < 0 or self.tail_s < 0:
            raise ValueError("baseline_s and tail_s must be >= 0")

    @property
    def service(self) -> Profile:
        return self.profile if self.profile is not None else profiles.load()

    @property
    def accounts(self) -> tuple[str, ...]:
        """The accounts whose money is judged: () when the profile has no [money] or the
        settings turned it off."""
        if self.money_accounts is not None:
            return self.money_accounts if self.service.money is not None else ()
        return self.service.money_accounts

    def idle_period_for(self, platform: Platform) -> float:
        """The idle clients' period: longer than the platform's drain window (so they never
        see an answer with Connection: close during it), shorter than the service's idle timeout."""
        if self.idle_period_s is not None:
            return self.idle_period_s
        drain = platform.drain_window_s()
        if drain is None:
            return IDLE_PERIOD_DEFAULT_S
        return min(IDLE_PERIOD_MAX_S, drain * 1.5 + 0.5)


@dataclass
class Proof:
    name: str
    verdict: Verdict
    scenario: ScenarioResult
    load: LoadResult
    data: DataCheck
    evidence: dict[str, Path]
    timeline: list[Event]
    money: MoneyCheck = field(default_factory=MoneyCheck)

    def explain(self) -> str:
        """Everything a failed assertion should say, one reason a line."""
        lines = [f"{self.name}: {self.verdict.verdict}"]
        if not self.scenario.ok:
            lines.append(f"scenario: {self.scenario.failure}")
        lines += [f"- {r}" for r in self.verdict.reasons]
        lines += [f"figures: {f}" for f in self.verdict.figures]
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
Ran = list[tuple[Scenario, Context, ScenarioResult, float]]  # each with its slice's start


def prove_sequence(platform: Platform, builders: Sequence[Builder], settings: ProofSettings,
                   out_dir: Path, ledger_dir: Path, names: Sequence[str] | None = None,
                   progress: Callable[[str], None] | None = None,
                   progress_stream: IO[str] | None = None) -> list[Proof]:
    """Several scenarios one after another under ONE load run (e.g. ten switches back and
    forth), each judged on the requests that started in its own slice of the run.

    A builder is called when its turn comes, so it sees the platform as the previous scenario
    left it. The sequence stops at the first scenario that fails; later ones are not run.
    The merged ledger is read once for all slices (``read_slices``).
    """
    settings.validate()
    plan = load_plan(platform, settings, ledger_dir)
    plan.validate()
    start = _start_balances(platform, settings)
    ran, load = _run_under_load(platform, builders, settings, plan, progress, progress_stream)
    names = list(names or [s.name for s, *_ in ran])
    slices = [Slice(names[i] if i < len(names) else f"{scenario.name}-{i + 1}", result, t_from,
                    Judge(ctx.facts(), settings.policy), PaymentAcks(settings.service.write_kinds))
              for i, (scenario, ctx, result, t_from) in enumerate(ran)]
    ledger = MoneyLedger()
    read_slices(load.ledger_path, slices, ledger)
    money = _money(platform, settings, start, ledger)
    timeline = platform.events.snapshot()
    # money is judged over the whole run (balances exist only at its start and its end): by
    # the last slice; the others do not judge it
    return [s.prove(platform, settings, load, timeline, out_dir,
                    money if i == len(slices) - 1 else None) for i, s in enumerate(slices)]


def load_plan(platform: Platform, settings: ProofSettings, ledger_dir: Path) -> LoadPlan:
    """The load of a proof: the settings' schedule and populations, the idle clients' period
    set from the platform's drain window, the money accounts."""
    service = settings.service
    mix = None
    if not settings.accounts and service.money is not None:  # money off: its requests are not sent
        mix = {r.name: 0 if r.money else r.weight for r in service.requests}
        if not any(mix.values()):
            mix = None
    return LoadPlan(host=platform.service_url, token=settings.token, users=settings.users,
                    rate=settings.rate, max_duration=settings.max_duration,
                    workers=settings.workers, request_timeout=settings.request_timeout,
                    ledger_dir=ledger_dir, arrivals=settings.arrivals,
                    populations=settings.populations, idle_clients=settings.idle_clients,
                    idle_period_s=settings.idle_period_for(platform),
                    max_inflight=settings.max_inflight,
                    accounts=settings.accounts or service.money_accounts or MONEY_ACCOUNTS, mix=mix,
                    profile=settings.profile)


def _start_balances(platform: Platform, settings: ProofSettings) -> dict[str, str] | str:
    """The money accounts' balances before any load: the start of "money adds up" (or why
    they could not be read: the money check then says so, INCONCLUSIVE)."""
    if not settings.accounts:
        return {}
    try:
        return read_balances(platform.service_url, settings.token, settings.accounts,
                             profile=settings.service)
    except (BalanceReadError, OSError, ValueError) as exc:
        return f"the start balances could not be read: {exc}"[:300]


def _money(platform: Platform, settings: ProofSettings, start: dict[str, str] | str,
           ledger: MoneyLedger) -> MoneyCheck | None:
    if not settings.accounts:
        return None
    if isinstance(start, str):
        return MoneyCheck(accounts=tuple(settings.accounts), judged=True, error=start)
    return check_money_after(platform.service_url, settings.token, start, ledger,
                             profile=settings.service)


def _run_under_load(platform: Platform, builders: Sequence[Builder], settings: ProofSettings,
                    plan: LoadPlan, progress: Callable[[str], None] | None,
                    progress_stream: IO[str] | None) -> tuple[Ran, LoadResult]:
    """Load starts, baseline, each scenario in turn, tail, load stops: the scenarios that ran
    and the load's result."""
    current = {"step": "baseline"}

    def on_step(name: str) -> None:
        current["step"] = name
        if progress is not None:
            progress(name)

    intro = (f"load: {settings.baseline_s:g} s baseline, then the scenario's steps, then "
             f"{settings.tail_s:g} s tail (the load stops by {plan.max_duration:g} s at the latest)")
    terminal = TerminalProgress(progress_stream, step=lambda: current["step"], intro=intro) \
        if settings.show_progress and progress_stream is not None else None
    try:
        make_run = platform.load_generator() or LoadRun
        with make_run(plan, progress=terminal) as run:
            run.start()
            platform.events.emit(Source.LOAD, EventName.LOAD_STARTED, users=settings.users,
                                 rate=settings.rate, arrivals=plan.arrivals,
                                 idle_clients=plan.idle_clients, idle_period_s=plan.idle_period_s)
            time.sleep(settings.baseline_s)  # the "before" phase is measured load, not a wait
            # the ledger as it grows, for steps that judge while the load runs (a canary stage):
            # only where the load writes it here (a cluster's comes back at the stop)
            live = LedgerTail(run.ledger_dir) if isinstance(run, LoadRun) and run.ledger_dir else None
            ran = _run_scenarios(platform, builders, on_step, live)
            current["step"] = "tail"
            time.sleep(settings.tail_s)      # the "after" phase
            platform.events.emit(Source.LOAD, EventName.LOAD_STOPPING)
            return ran, run.stop()
    finally:
        if terminal is not None:
            terminal.close()


def _run_scenarios(platform: Platform, builders: Sequence[Builder],
                   on_step: Callable[[str], None], live: LedgerTail | None = None) -> Ran:
    """Each scenario in turn, with the start of its slice; stops at the first that fails."""
    ran: Ran = []
    for build in builders:
        scenario, ctx = build(platform)
        if ctx.live is None:
            ctx.live = live
        # the first slice owns every request from the very first one on, also those sent
        # while the run was starting: none may fall outside a verdict
        slice_start = float("-inf") if not ran else time.time()
        result = scenario.run(ctx, on_step)
        ran.append((scenario, ctx, result, slice_start))
        if not result.ok:
            break
    return ran


@dataclass
class Slice:
    """One scenario's share of the run: the requests that started from ``t_from`` until the
    next slice's ``t_from``, judged as they stream by, and the payments they acknowledged."""

    name: str
    result: ScenarioResult
    t_from: float
    judge: Judge
    acks: PaymentAcks = field(default_factory=PaymentAcks)

    def add(self, record: LedgerRecord) -> None:
        self.judge.add(record)
        self.acks.add(record)

    def prove(self, platform: Platform, settings: ProofSettings, load: LoadResult,
              timeline: list[Event], out_dir: Path, money: MoneyCheck | None = None) -> Proof:
        """The data check of this slice's payments, the verdict, the evidence."""
        data = lookup_payments(platform.service_url, settings.token, self.acks,
                               profile=settings.service)
        verdict = self.judge.finish(timeline, data, load.load_target(), scenario=self.name,
                                    money=money)
        evidence = write_evidence(verdict, timeline, out_dir, self.name, load.ledger_path,
                                  context=settings.run_context)
        return Proof(self.name, verdict, self.result, load, data, evidence, timeline,
                     money if money is not None else MoneyCheck())


def read_slices(ledger_path: Path, slices: Sequence[Slice], money: MoneyLedger | None = None) -> int:
    """Read the merged ledger ONCE, handing each record to the slice it started in (slices in
    order; a record before the first slice's start belongs to none) and to the money check
    (every record: balances are judged over the whole run). Returns the records read."""
    starts = [s.t_from for s in slices]
    n = 0
    with open(ledger_path, encoding="utf-8") as f:
        for r in read_records(f):
            n += 1
            i = bisect.bisect_right(starts, r.t_start) - 1
            if i >= 0:
                slices[i].add(r)
            if money is not None:
                money.add(r)
    return n
