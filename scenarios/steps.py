"""A scenario is a visible list of small named steps sharing a context, run in one loop.

Every step emits a timestamped ``scenario`` event when it starts (its name is what a verdict
cites: "412 connection resets ... after 'scale down blue'") and one when it ends. A failing
step stops the run; the steps after it are reported as not run, and an ``on_failure`` step
(e.g. the seed's "scale the target back to 0") runs if the scenario has one.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import allure

from zerodrop.platforms.base import Platform, PlatformError


class StepFailed(RuntimeError):
    """A step could not do what it says; the message is one line for a person."""


@dataclass
class Context:
    platform: Platform
    values: dict[str, Any] = field(default_factory=dict)

    def emit(self, name: str, **detail: Any) -> float:
        return self.platform.events.emit("scenario", name, **detail).t


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
            result.t_start = ctx.emit(step.name)
            try:
                with allure.step(step.name):
                    step.run(ctx)
            except Exception as exc:  # a step's failure is the scenario's result, not a crash
                result.status, result.error = "failed", _one_line(exc)
                result.t_end = ctx.emit(f"{step.name} failed", error=result.error)
                if self.on_failure is not None:
                    self._cleanup(ctx)
                break
            result.status, result.t_end = "passed", time.time()
            ctx.emit(f"{step.name} done", seconds=round(result.t_end - result.t_start, 3))
        return ScenarioResult(self.name, results)

    def _cleanup(self, ctx: Context) -> None:
        assert self.on_failure is not None
        ctx.emit(self.on_failure.name)
        try:
            self.on_failure.run(ctx)
        except Exception as exc:
            ctx.emit(f"{self.on_failure.name} failed", error=_one_line(exc))


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().replace("\n", " ") or type(exc).__name__
    return text if isinstance(exc, (StepFailed, AssertionError, PlatformError)) else \
        f"{type(exc).__name__}: {text}"
