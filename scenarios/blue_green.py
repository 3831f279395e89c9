"""The seed's blue-green-deploy.sh as named steps against the Platform interface, and the
rollback (switch back under load) built from the same steps.

Fixed from the seed:
- "ready" is the rollout predicate (observed generation current, updated == available ==
  desired), not readyReplicas == replicas, which old pods satisfy mid-rollout;
- the switch is verified by asking the Service itself, on fresh connections, until only the
  new colour answers (the seed only re-read the selector it had just written);
- the old colour lives through a drain window (endpoint propagation plus margin) before it is
  scaled down; the seed scaled it down at once, cutting keep-alive connections;
- a failure after the switch routes traffic back instead of "consider manual rollback".

Negative-control knobs (``SwitchSettings.broken``) break the switch on purpose, so that
tests can show the verdict catches each way a switch goes wrong: ``skip_ready_wait`` routes to
the new colour without waiting for ready replicas; ``no_drain`` scales the old colour down
right after the selector patch (no verification, no drain), as the seed did; ``kill_old``
ends the old replicas with SIGKILL right after the switch instead of draining them.
"""
from __future__ import annotations

import signal
import time
from dataclasses import dataclass
from typing import Callable

import requests

from zerodrop.checks.api import Api
from zerodrop.platforms.base import COLORS, Platform
from zerodrop.scenarios.steps import Context, Scenario, Step, StepFailed
from zerodrop.checks import seed as checks

BROKEN = ("none", "skip_ready_wait", "no_drain", "kill_old")


@dataclass(frozen=True)
class SwitchSettings:
    token: str = "test-token"
    replicas: int = 2
    ready_timeout: float = 60.0
    verify_timeout: float = 10.0
    verify_answers: int = 10       # consecutive answers from the new colour on fresh connections
    drain_seconds: float | None = None  # None: 2 x the platform's propagation hint + 1 s
    smoke: bool = True
    post_deploy: bool = True
    payment_timeout: float = 30.0
    broken: str = "none"  # a negative control: one of BROKEN
    new_faults: dict | None = None  # fault knobs the new version starts with (chaos, controls)

    def validate(self) -> None:
        if self.broken not in BROKEN:
            raise ValueError(f"broken must be one of {', '.join(BROKEN)}, got {self.broken!r}")
        if self.replicas < 1:
            raise ValueError(f"replicas must be >= 1, got {self.replicas}")
        if self.drain_seconds is not None and self.drain_seconds < 0:
            raise ValueError(f"drain_seconds must be >= 0, got {self.drain_seconds}")

    def drain_for(self, platform: Platform) -> float:
        if self.broken in ("no_drain", "kill_old"):
            return 0.0
        if self.drain_seconds is not None:
            return self.drain_seconds
        return 2 * platform.propagation_hint + 1.0


def other(color: str) -> str:
    return next(c for c in COLORS if c != color)


def switch(platform: Platform, new_version: str, settings: SwitchSettings = SwitchSettings(),
           name: str = "switch") -> Scenario:
    """Deploy ``new_version`` to the idle colour and move the Service to it."""
    settings.validate()
    old = _active(platform)
    return _cutover(platform, old, other(old), settings, name, deploy_version=new_version)


def rollback(platform: Platform, settings: SwitchSettings = SwitchSettings(),
             name: str = "rollback") -> Scenario:
    """Switch back under load to the colour that served before, with the version it kept."""
    settings.validate()
    current = _active(platform)
    previous = other(current)
    if not platform.deployed_version(previous):
        raise StepFailed(f"nothing to roll back to: {previous} was never deployed")
    return _cutover(platform, current, previous, settings, name, deploy_version=None)


def _active(platform: Platform) -> str:
    active = platform.active_color()
    if active is None:
        raise StepFailed("the Service selects no single colour (weights or nothing); "
                         "route it to one colour first")
    return active


def _cutover(platform: Platform, old: str, new: str, settings: SwitchSettings, name: str,
             deploy_version: str | None) -> Scenario:
    old_version = platform.deployed_version(old) or ""
    new_version = deploy_version or platform.deployed_version(new) or ""
    drain = settings.drain_for(platform)

    def find_active(ctx: Context) -> None:
        now = platform.active_color()
        if now != old:
            raise StepFailed(f"expected {old} to be active, the Service selects {now}")
        ctx.values.update(old=old, new=new, old_version=old_version, new_version=new_version)

    def deploy(ctx: Context) -> None:
        platform.deploy(new, new_version, faults=settings.new_faults)

    def scale_up(ctx: Context) -> None:
        platform.scale(new, settings.replicas)

    def wait_ready(ctx: Context) -> None:
        platform.wait_ready(new, settings.ready_timeout)

    def smoke(ctx: Context) -> None:
        platform.wait_routed(new, settings.verify_timeout)  # ready replicas are not yet routed
        _run_checks(platform.preview_url(new), settings.token, checks.SMOKE, "smoke test")

    def route(ctx: Context) -> None:
        before = time.time()
        platform.route_to(new)
        patched = [e.t for e in platform.events.named("selector patched") if e.t >= before]
        ctx.values["t_switch"] = patched[-1] if patched else before
        ctx.values["switched"] = True

    def verify(ctx: Context) -> None:
        platform.wait_routed(None, settings.verify_timeout)
        _verify_serves(platform.service_url, new_version, settings.verify_answers,
                       settings.verify_timeout)

    def post_deploy(ctx: Context) -> None:
        timeout = settings.payment_timeout
        _run_checks(platform.service_url, settings.token, (
            lambda api: checks.check_payment_flow(api, timeout),
            checks.check_data_consistency, checks.check_error_handling), "post-deploy checks")

    def drain_old(ctx: Context) -> None:
        time.sleep(drain)  # the drain window itself: the old colour must live through it

    def scale_down(ctx: Context) -> None:
        platform.scale(old, 0)

    def kill_old(ctx: Context) -> None:
        live = [r for r in platform.replicas(old) if not r.terminating]
        for index in reversed(range(len(live))):  # valid whether or not a killed one leaves
            platform.kill_replica(old, signal.SIGKILL, index)
        platform.scale(old, 0)

    def lint(ctx: Context) -> None:
        ctx.values["readiness_findings"] = platform.readiness_findings(new)

    def wait_gone(ctx: Context) -> None:
        deadline = time.monotonic() + settings.ready_timeout
        while platform.replicas(old):
            if time.monotonic() > deadline:
                left = [r.name for r in platform.replicas(old)]
                raise StepFailed(f"{old} replicas still running after "
                                 f"{settings.ready_timeout:g} s: {', '.join(left)}")
            time.sleep(0.05)
        ctx.values["t_drained"] = time.time()

    steps: list[Step] = [Step(f"find active colour ({old})", find_active)]
    if deploy_version is not None:
        steps.append(Step(f"deploy {new_version} to {new}", deploy))
    steps.append(Step(f"scale up {new}", scale_up))
    if settings.broken != "skip_ready_wait":
        steps.append(Step(f"wait for {new} ready", wait_ready))
        if settings.smoke:
            steps.append(Step(f"smoke test {new} preview", smoke))
    steps.append(Step(f"readiness lint of {new}", lint))
    steps.append(Step(f"switch traffic to {new}", route))
    if settings.broken != "no_drain":  # the seed's race: scale down while the switch propagates
        steps.append(Step(f"verify {new} serves the Service", verify))
        if settings.post_deploy:
            steps.append(Step("post-deploy checks", post_deploy))
    if drain > 0:
        steps.append(Step(f"drain {old} ({drain:g} s)", drain_old))
    if settings.broken == "kill_old":
        steps.append(Step(f"kill {old} with SIGKILL", kill_old))
    else:
        steps.append(Step(f"scale down {old}", scale_down))
    steps.append(Step(f"wait for {old} to stop", wait_gone))

    def undo(ctx: Context) -> None:
        if ctx.values.get("switched") and platform.replicas(old):
            platform.route_to(old)  # traffic back to what worked
        else:
            platform.scale(new, 0)  # the seed: scale the target back to 0

    return Scenario(name, tuple(steps), on_failure=Step(f"roll back to {old}", undo))


def _run_checks(url: str, token: str, to_run, what: str) -> None:
    api = Api(url, token)
    try:
        failures = checks.run_checks(api, to_run)
    finally:
        api.close()
    if failures:
        raise StepFailed(f"{what} failed: {'; '.join(failures)}")


def _verify_serves(url: str, version: str, answers: int, timeout: float,
                   get: Callable[..., requests.Response] = requests.get) -> None:
    """Ask the Service itself, on fresh connections, until ``answers`` in a row come from
    ``version`` (the X-App-Version header): what clients get, not what the selector says."""
    deadline = time.monotonic() + timeout
    in_a_row, seen = 0, "nothing"
    while in_a_row < answers:
        if time.monotonic() > deadline:
            raise StepFailed(f"the Service still does not answer only from {version} after "
                             f"{timeout:g} s; last answer from {seen}")
        try:
            resp = get(f"{url}/health", headers={"Connection": "close"}, timeout=2)
            seen = resp.headers.get("X-App-Version", "") or "an answer without X-App-Version"
        except requests.RequestException as exc:
            seen = f"no answer ({type(exc).__name__})"
        in_a_row = in_a_row + 1 if seen == version else 0
        if seen != version:
            time.sleep(0.02)
