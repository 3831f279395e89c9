"""A scenario is a visible list of small named steps sharing a context, run in one loop.

Every step emits a timestamped ``scenario`` event when it starts (its name is what a verdict
cites: "412 connection resets ... after 'scale down blue'"; detail ``step="start"``) and one
when it ends (``"<name> done"`` or ``"<name> failed"``). A failing step stops the run; the
steps after it are reported as not run, and an ``on_failure`` step (e.g. the seed's "scale the
target back to 0") runs if the scenario has one.

What the steps learn for the verdict goes into the ``Context``'s typed fields, never into a
dict of keys: ``ctx.begin_cutover`` / ``ctx.switched`` / ``ctx.drained`` for each switch (a
scenario may hold several: canary stages, ten switches back and forth), ``ctx.findings`` for
the readiness lint, ``ctx.fault_on`` / ``ctx.fault_off`` for faults on purpose;
``ctx.facts()`` hands them over as one ``ScenarioFacts``.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import allure

from zerodrop.platforms.base import Platform, PlatformError
from zerodrop.records.events import STEP_DONE, STEP_FAILED, STEP_START, Source
from zerodrop.records.results import Cutover, FaultWindow, ScenarioFacts


class StepFailed(RuntimeError):
    """A step could not do what it says; the message is one line for a person."""


@dataclass
class _CutoverDraft:
    old_color: str
    new_color: str
    old_version: str
    new_version: str
    t_switch: float | None = None
    t_drained: float | None = None

    def freeze(self) -> Cutover:
        return Cutover(self.old_version, self.new_version, self.t_switch, self.t_drained,
                       self.old_color, self.new_color)


@dataclass
class Context:
    """What the steps of one scenario run share: the platform, and what they learn."""

    platform: Platform
    findings: list[str] = field(default_factory=list)
    # the run's ledger as it grows (load.ledger.LedgerTail: ``since(t)``), set by the proof when
    # the load writes it on this machine; what a canary stage judges while the load runs
    live: Any = None
    canary: dict[str, Any] | None = None  # a canary's analysis, for the verdict (canary.py)
    _cutovers: list[_CutoverDraft] = field(default_factory=list)
    _faults: list[FaultWindow] = field(default_factory=list)

    def emit(self, name: str, **detail: Any) -> float:
        return self.platform.events.emit(Source.SCENARIO, name, **detail).t

    # -- switches ------------------------------------------------------------------------------
    def begin_cutover(self, old_color: str, new_color: str, old_version: str,
                      new_version: str) -> None:
        """A switch from ``old_color`` to ``new_color`` is about to start."""
        self._cutovers.append(_CutoverDraft(old_color, new_color, old_version, new_version))

    @property
    def cutover(self) -> _CutoverDraft | None:
        """The switch under way (the last one begun), if any."""
        return self._cutovers[-1] if self._cutovers else None

    def switched(self, t: float) -> None:
        """The Service selector was replaced at ``t`` (traffic may move from here on)."""
        self._current("switched").t_switch = t

    def drained(self, t: float) -> None:
        """The old colour's last replica had ended at ``t``."""
        self._current("drained").t_drained = t

    @property
    def has_switched(self) -> bool:
        return self.cutover is not None and self.cutover.t_switch is not None

    def _current(self, what: str) -> _CutoverDraft:
        if not self._cutovers:
            raise StepFailed(f"{what} before any switch began (begin_cutover was not called)")
        return self._cutovers[-1]

    # -- faults --------------------------------------------------------------------------------
    def fault_on(self, name: str, t: float, target: str = "") -> None:
        self._faults.append(FaultWindow(name, t, None, target))

    def fault_off(self, name: str, t: float) -> None:
        for i in range(len(self._faults) - 1, -1, -1):
            f = self._faults[i]
            if f.name == name and f.t_end is None:
                self._faults[i] = FaultWindow(f.name, f.t_start, t, f.target)
                return

    def facts(self) -> ScenarioFacts:
        """Everything the steps learned, for the verdict."""
        return ScenarioFacts(tuple(c.freeze() for c in self._cutovers), tuple(self._faults),
                             tuple(self.findings), self.canary)


@dataclass(frozen=True)
class Step:
    name: str
    run: Callable[[Context], None]


@dataclass
class StepResult:
    name: str
    status: str  # passed | failed | not run
    t_start: float | None = None
    t_end: float | None = None
    error: str = ""


@dataclass
class ScenarioResult:
    name: str
    steps: list[StepResult]

    @property
    def ok(self) -> bool:
        return all(s.status == "passed" for s in self.steps)

    @property
    def failure(self) -> str:
        failed = [s for s in self.steps if s.status == "failed"]
        return f"step '{failed[0].name}' failed: {failed[0].error}" if failed else ""


@dataclass(frozen=True)
class Scenario:
    name: str
    steps: tuple[Step, ...]
    on_failure: Step | None = None

    def run(self, ctx: Context, progress: Callable[[str], None] | None = None) -> ScenarioResult:
        results = [StepResult(s.name, "not run") for s in self.steps]
        for step, result in zip(self.steps, results):
            if progress:
                progress(step.name)
            result.t_start = ctx.emit(step.name, step=STEP_START)
            try:
                with allure.step(step.name):
                    step.run(ctx)
            except Exception as exc:  # a step's failure is the scenario's result, not a crash
                result.status, result.error = "failed", _one_line(exc)
                result.t_end = ctx.emit(f"{step.name} failed", step=STEP_FAILED,
                                        error=result.error)
                if self.on_failure is not None:
                    self._cleanup(ctx)
                break
            result.status, result.t_end = "passed", time.time()
            ctx.emit(f"{step.name} done", step=STEP_DONE,
                     seconds=round(result.t_end - result.t_start, 3))
        return ScenarioResult(self.name, results)

    def _cleanup(self, ctx: Context) -> None:
        assert self.on_failure is not None
        ctx.emit(self.on_failure.name, step=STEP_START)
        try:
            self.on_failure.run(ctx)
        except Exception as exc:
            ctx.emit(f"{self.on_failure.name} failed", step=STEP_FAILED, error=_one_line(exc))
        else:
            ctx.emit(f"{self.on_failure.name} done", step=STEP_DONE)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().replace("\n", " ") or type(exc).__name__
    return text if isinstance(exc, (StepFailed, AssertionError, PlatformError)) else \
        f"{type(exc).__name__}: {text}"
