"""Game-day experiments: a steady-state hypothesis, a method (a switch or a canary with faults on
a schedule), rollbacks that always run, and the outcome the experiment expects.

``EXPERIMENTS`` is the library (``zerodrop gameday NAME``); ``build`` turns one into a scenario
against the Platform interface:

    steady state before   the hypothesis over the load's baseline: when it does not hold, the
                          run stops here and nothing is touched (ABORTED)
    <the method's steps>  the switch or canary, a fault step inserted where the experiment says
    rollbacks             every fault removed (also on failure: the scenario's rollback step,
                          and the Injector's ``with`` block around the run for Ctrl-C)

The load's tail after the rollbacks is the "after" window, where the hypothesis must hold
again; ``reports.gameday.judge_experiment`` compares it all with the expectation.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

from zerodrop.platforms.base import Platform
from zerodrop.reports.gameday import Expected, Hypothesis, steady_state, window_stats
from zerodrop.scenarios.blue_green import SwitchSettings, other, switch
from zerodrop.scenarios.canary import CanarySettings, canary
from zerodrop.scenarios.faults import FaultError, FaultSpec, Injector, start_faults, unusable
from zerodrop.scenarios.steps import Context, Scenario, Step, StepFailed

NEW_VERSION = "v1.2.0"
# The abort experiments let latency rise while the method runs (latency_held=False): the bad
# release starts (and crashes, or waits for its database) on the same nodes as the old version,
# and on one machine (local, a one-node kind) its starts share the old version's CPU. What they
# prove is that no request fails and none reaches the new version; the hypothesis, latency
# included, must hold again after the rollbacks.
BEFORE_STEP = "steady state before the method"
ROLLBACK_STEP = "rollbacks: remove every fault"


@dataclass(frozen=True)
class Experiment:
    name: str
    title: str
    method: str                          # "switch" or "canary"
    faults: tuple[FaultSpec, ...]
    expected: Expected
    why: str                             # what a pass shows
    ready_timeout: float | None = None   # the switch's wait for ready (an abort comes after it)
    broken: str = "none"                 # a negative control: SwitchSettings.broken


EXPERIMENTS: dict[str, Experiment] = {e.name: e for e in (
    Experiment(
        "kill-old-during-switch", "delete the busiest old pod just before traffic moves",
        "switch",
        (FaultSpec("delete-pod", "old", {"index": "busiest"}, at="before switch traffic"),),
        Expected("completed", max_failed=0),
        "a pod of the old version deleted while it takes its full share (out of the endpoints "
        "and SIGTERM at once, as Kubernetes does) drains what it holds and what reaches it "
        "before the endpoints change: no request is lost"),
    Experiment(
        "sigkill-old-during-switch", "SIGKILL the busiest old replica while the switch drains",
        "switch",
        (FaultSpec("sigkill", "old", {"index": "busiest"}, at="before drain"),),
        Expected("completed", max_failed=60, failures_within_s=5.0),
        "a replica killed outright loses only what was in flight on its connections or sent "
        "on them after (within 5 s: the load's timeout, beyond an idle client's period), and "
        "the switch still completes"),
    Experiment(
        "db-outage-before-switch", "the new version cannot reach its database", "switch",
        (FaultSpec("db-unreachable", "new", at="deploy"),),
        Expected("aborted", max_failed=0, new_served=False, latency_held=False),
        "readiness fails, so the switch aborts before any traffic moves and blue keeps serving",
        ready_timeout=8.0),
    Experiment(
        "bad-release", "the new version crashes on start", "switch",
        (FaultSpec("crash-on-start", "new", at="deploy"),),
        Expected("aborted", max_failed=0, new_served=False, latency_held=False),
        "a release that never becomes ready is never routed to: no request is served by it",
        ready_timeout=8.0),
    Experiment(
        "bad-release-smoke", "the new version is ready but fails its smoke test", "switch",
        (FaultSpec("fails-smoke", "new", at="deploy"),),
        Expected("aborted", max_failed=0, new_served=False, latency_held=False),
        "the smoke test on the preview address stops the release before traffic moves"),
    Experiment(
        "latency-in-green", "the new version answers 800 ms slower (canary)", "canary",
        (FaultSpec("latency", "new", {"latency_ms": 800}, at="deploy"),),
        Expected("rolled back", max_failed=0, latency_held=False),
        "the canary's latency check rolls the slow version back before it gets all traffic, "
        "and no request fails meanwhile"),
    Experiment(
        "flapping-readiness", "an old replica's readiness flaps throughout the switch", "switch",
        # 5 s down, 5 s up: a kubelet probing every 2 s with failureThreshold 2 (the seed's
        # manifests) needs two failed probes in a row; a shorter flap may never be acted on
        # (the verdict then says "not measured")
        (FaultSpec("flapping-readiness", "old", {"period_s": 5.0, "index": "busiest"},
                   at="before find active", until="before scale down"),),
        # latency may rise: while the flapping replica is out of the endpoints the others take
        # its share (half the capacity with two replicas), and on one machine the new
        # version's start and the old one's exit take the CPU as well (on kind, 302 of 3,228
        # answers over 1 s, medians up to 660 ms in those seconds, none failed); the hypothesis,
        # latency included, must hold again after the rollbacks
        Expected("completed", max_failed=0, latency_held=False),
        "a replica going in and out of the endpoints costs no request"),
    Experiment(
        "network-delay-in-green", "200 ms of network delay on the new version's pods", "switch",
        (FaultSpec("network", "new", {"delay_ms": 200}, at="after switch traffic"),),
        Expected("completed", max_failed=0, latency_held=False),
        "a slower network on the new version slows answers but loses none (tc netem in the "
        "pods' network namespace: kind only)"),
)}
NAMES: tuple[str, ...] = tuple(EXPERIMENTS)


def lookup(name: str) -> Experiment:
    """The experiment called ``name``; ValueError with one line listing the names."""
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; known: {', '.join(NAMES)}")
    return EXPERIMENTS[name]


@dataclass
class GameDay:
    """What building an experiment hands the run: the scenario, its context, the faults."""

    experiment: Experiment
    scenario: Scenario
    ctx: Context
    injector: Injector
    old: str
    new: str
    new_version: str
    state: dict[str, Any] = field(default_factory=dict)  # started, t_method, t_rolled_back, ...


def build(exp: Experiment, platform: Platform, hypothesis: Hypothesis,
          switch_settings: SwitchSettings = SwitchSettings(),
          canary_settings: CanarySettings = CanarySettings(),
          reference_service: bool = True, params: dict[str, dict[str, Any]] | None = None,
          broken: str | None = None) -> GameDay:
    """The experiment as one scenario on ``platform``. FaultError (one line, listing what can
    be used) for a fault this platform or service cannot do, before anything is touched.
    ``params`` overrides a fault kind's parameters (negative controls); ``broken`` a switch's
    negative-control knob."""
    specs = [replace(s, params={**s.params, **(params or {}).get(s.kind, {})}) for s in exp.faults]
    for s in specs:
        why = unusable(s, platform, reference_service)
        if why:
            raise FaultError(why)
    old = platform.active_color()
    if old is None:
        raise FaultError("the Service selects no single colour: route it to one first")
    new = other(old)
    colour = {"old": old, "new": new, "blue": "blue", "green": "green"}
    deploy_faults = start_faults([s for s in specs if s.at == "deploy" and colour[s.target] == new])
    ctx = Context(platform)
    injector = Injector(platform, ctx)
    state: dict[str, Any] = {"started": False, "fault_starts": []}
    if exp.method == "canary":
        settings = replace(canary_settings, new_faults={**(canary_settings.new_faults or {}),
                                                        **deploy_faults})
        if exp.ready_timeout:
            settings = replace(settings, ready_timeout=exp.ready_timeout)
        method = canary(platform, NEW_VERSION, settings, name=exp.name)
    else:
        settings_s = replace(switch_settings, new_faults={**(switch_settings.new_faults or {}),
                                                          **deploy_faults},
                             broken=broken or exp.broken)
        if exp.ready_timeout:
            settings_s = replace(settings_s, ready_timeout=exp.ready_timeout)
        method = switch(platform, NEW_VERSION, settings_s, name=exp.name)
    steps = _with_faults(list(method.steps), specs, colour, injector, state,
                         release_faults=bool(deploy_faults))

    def before(ctx: Context) -> None:
        held = _steady_before(ctx, hypothesis)
        if held:
            state["aborted_before"] = held
            raise StepFailed(f"the steady state does not hold before the method: {held}")
        state["started"] = True
        state["t_method"] = time.time()

    def rollbacks(ctx: Context) -> None:
        injector.remove_all()  # a removal that fails is the verdict's ("every fault removed")
        state["t_rolled_back"] = time.time()

    def on_failure(ctx: Context) -> None:
        if not state["started"]:
            return  # the steady state did not hold: nothing was touched, nothing to undo
        state["method_failed"] = True
        try:
            if method.on_failure is not None:
                method.on_failure.run(ctx)
        finally:
            injector.remove_all()
            state["t_rolled_back"] = time.time()

    scenario = Scenario(exp.name, (Step(BEFORE_STEP, before), *steps,
                                   Step(ROLLBACK_STEP, rollbacks)),
                        on_failure=Step(f"rollbacks: undo {exp.method}, remove every fault",
                                        on_failure))
    return GameDay(exp, scenario, ctx, injector, old, new, NEW_VERSION, state)


def _with_faults(steps: list[Step], specs: list[FaultSpec], colour: dict[str, str],
                 injector: Injector, state: dict[str, Any], release_faults: bool) -> list[Step]:
    """The method's steps with a step that applies (or removes) each fault where its ``at``
    (``until``) says: before or after the first step whose name starts with the rest. With
    ``release_faults`` the deploy step marks when the release's own faults start."""
    out: list[Step] = []
    names: dict[int, str] = {}
    placed: set[int] = set()

    def apply_step(i: int, s: FaultSpec) -> Step:
        def run(ctx: Context) -> None:
            state["fault_starts"].append(time.time())
            names[i] = injector.apply(s, colour[s.target])
        placed.add(i)
        return Step(f"fault: {s.label(colour[s.target])}", run)

    def remove_step(i: int, s: FaultSpec) -> Step:
        return Step(f"remove fault: {s.label(colour[s.target])}",
                    lambda ctx: injector.remove(names.get(i, "")))

    def around(step: Step, when: str) -> list[Step]:
        return ([apply_step(i, s) for i, s in enumerate(specs)
                 if i not in placed and _at(s.at, when, step)]
                + [remove_step(i, s) for i, s in enumerate(specs) if _at(s.until, when, step)])

    for step in steps:
        out += around(step, "before")
        out.append(_mark_deploy(step, state) if release_faults and step.name.startswith("deploy ")
                   else step)
        out += around(step, "after")
    missing = [s for i, s in enumerate(specs) if s.at != "deploy" and i not in placed]
    if missing:
        raise FaultError(f"fault {missing[0].kind!r}: no step of the method matches "
                         f"{missing[0].at!r}; steps: {', '.join(s.name for s in steps)}")
    return out


def _at(where: str, when: str, step: Step) -> bool:
    """Whether ``where`` ("before <step>" / "after <step>") names ``step`` for ``when``."""
    prefix = f"{when} "
    return where.startswith(prefix) and step.name.startswith(where[len(prefix):])


def _mark_deploy(step: Step, state: dict[str, Any]) -> Step:
    """The deploy step of a release with start faults: the faults start when it runs."""
    def run(ctx: Context) -> None:
        state["fault_starts"].append(time.time())
        step.run(ctx)
    return Step(step.name, run)


def _steady_before(ctx: Context, hypothesis: Hypothesis, settle_s: float = 0.7) -> str:
    """The hypothesis over the baseline the load has run so far: "" when it holds, else why
    (also when it cannot be judged: an experiment never starts on a state it cannot see)."""
    if ctx.live is None:
        return ("the load keeps its ledger elsewhere until it stops, so the steady state "
                "cannot be seen before the method (run the load here: --load-from here)")
    time.sleep(settle_s)  # the load flushes its ledger every ~0.5 s: let the baseline land
    records = ctx.live.since(float("-inf"))
    now = time.time()
    stats = window_stats(records, [("before", float("-inf"), now)], hypothesis.slow_ms)
    check = steady_state(stats["before"], hypothesis, BEFORE_STEP)
    if check.held:
        return ""
    return check.observed if check.held is False else f"it cannot be judged: {check.observed}"


__all__ = ["Experiment", "EXPERIMENTS", "NAMES", "GameDay", "build", "lookup", "NEW_VERSION",
           "BEFORE_STEP", "ROLLBACK_STEP"]
