"""The steady-load probe: the Service as it is, under load for a while, judged by the ordinary
verdict (every request must get a complete, expected answer; every acknowledged write must be
found again). Nothing is deployed, scaled, patched or deleted: the only step holds the load.

It is what a nightly run measures (suites/nightly): tonight's latencies and failures, stored
and compared with the nights before (reports/history.py). Its verdict has no switch on purpose
(``ScenarioFacts.steady``): zero cutovers are the plan, not a switch that never happened.
"""
from __future__ import annotations

import time
from dataclasses import replace

from zerodrop.platforms.base import Platform
from zerodrop.records.results import ScenarioFacts
from zerodrop.scenarios.steps import Context, Scenario, Step

STEP = "hold steady load"
MIN_HOLD_S = 1.0


class SteadyContext(Context):
    """A context whose facts say "no switch on purpose"."""

    def facts(self) -> ScenarioFacts:
        return replace(super().facts(), steady=True)


def steady(hold_s: float, name: str = "steady-load") -> Scenario:
    """One step: hold the load for ``hold_s`` seconds (a measured phase, not a wait)."""
    if not hold_s >= MIN_HOLD_S:
        raise ValueError(f"the steady load must hold at least {MIN_HOLD_S:g} s, got {hold_s:g}")

    def hold(ctx: Context) -> None:
        time.sleep(hold_s)  # the load runs meanwhile: this is the phase being measured

    return Scenario(name, (Step(STEP, hold),))


def steady_probe(platform: Platform, hold_s: float,
                 name: str = "steady-load") -> tuple[Scenario, SteadyContext]:
    """The scenario and its context for ``scenarios.proof.prove``."""
    return steady(hold_s, name), SteadyContext(platform)
