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
from zerodrop.records.events import EventName
from zerodrop.scenarios.steps import Context, Scenario, Step, StepFailed
from zerodrop.checks import seed as checks
from zerodrop.checks import service as service_checks
from zerodrop.profiles import profile as profiles
from zerodrop.profiles.profile import Profile

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
    profile: Profile | None = None  # the service profile (checks, health path, version header)

    @property
    def service(self) -> Profile:
        return self.profile if self.profile is not None else profiles.load()

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


# ---- the step factories: each returns one named Step; a canary or chaos scenario reuses them --

def find_active(platform: Platform, old: str, new: str, new_version: str) -> Step:
    """The Service must select ``old``; the switch to ``new_version`` on ``new`` begins."""
    def run(ctx: Context) -> None:
        now = platform.active_color()
        if now != old:
            raise StepFailed(f"expected {old} to be active, the Service selects {now}")
        ctx.begin_cutover(old, new, platform.deployed_version(old) or "", new_version)
    return Step(f"find active colour ({old})", run)


def deploy(platform: Platform, color: str, version: str, faults: dict | None = None) -> Step:
    return Step(f"deploy {version} to {color}",
                lambda ctx: platform.deploy(color, version, faults=faults))


def scale(platform: Platform, color: str, replicas: int, verb: str = "scale up") -> Step:
    return Step(f"{verb} {color}", lambda ctx: platform.scale(color, replicas))


def wait_ready(platform: Platform, color: str, timeout: float) -> Step:
    return Step(f"wait for {color} ready", lambda ctx: platform.wait_ready(color, timeout))


def smoke_test(platform: Platform, color: str, token: str, verify_timeout: float,
               profile: Profile | None = None) -> Step:
    """The seed's smoke tests against ``color``'s own address, once it is routed there."""
    def run(ctx: Context) -> None:
        platform.wait_routed(color, verify_timeout)  # ready replicas are not yet routed
        _run_checks(platform.preview_url(color), token,
                    service_checks.smoke_checks(profile or profiles.load()), "smoke test")
    return Step(f"smoke test {color} preview", run)


def readiness_lint(platform: Platform, color: str) -> Step:
    def run(ctx: Context) -> None:
        ctx.findings.extend(platform.readiness_findings(color))
    return Step(f"readiness lint of {color}", run)


def route(platform: Platform, color: str) -> Step:
    """Replace the Service selector; the switch time is the platform's own event."""
    def run(ctx: Context) -> None:
        before = time.time()
        platform.route_to(color)
        patched = [e.t for e in platform.events.named(EventName.SELECTOR_PATCHED)
                   if e.t >= before]
        ctx.switched(patched[-1] if patched else before)
    return Step(f"switch traffic to {color}", run)


def set_weights(platform: Platform, weights: dict[str, int]) -> Step:
    """Split new connections by weight (a canary stage); the platform refuses what its
    routing cannot do, in one line."""
    shown = ", ".join(f"{c} {w}%" for c, w in sorted(weights.items()))
    return Step(f"set weights ({shown})", lambda ctx: platform.set_weights(dict(weights)))


def verify_serves(platform: Platform, color: str, timeout: float, answers: int,
                  profile: Profile | None = None) -> Step:
    """What clients get, not what the selector says: the Service is routed to ``color``'s
    ready replicas and fresh connections are answered only by the new version."""
    def run(ctx: Context) -> None:
        platform.wait_routed(None, timeout)
        version = ctx.cutover.new_version if ctx.cutover else platform.deployed_version(color)
        p = profile or profiles.load()
        _verify_serves(platform.service_url, version or "", answers, timeout,
                       path=p.health, header=p.version_header)
    return Step(f"verify {color} serves the Service", run)


def post_deploy(platform: Platform, token: str, payment_timeout: float,
                profile: Profile | None = None) -> Step:
    """The post-deploy checks the profile gives material for: the write flow, a credit that
    moves a balance exactly, the first invalid request refused."""
    p = profile or profiles.load()
    missing = service_checks.applicable(p)

    def write_flow(api: Api) -> None:
        service_checks.check_write_flow(api, p, payment_timeout)

    def data_consistency(api: Api) -> None:
        service_checks.check_data_consistency(api, p)

    def error_handling(api: Api) -> None:
        service_checks.check_invalid(api, p, p.invalid[0])

    to_run = [c for c, need in ((write_flow, "write_flow"), (data_consistency, "money"),
                                (error_handling, "invalid")) if need not in missing]

    def run(ctx: Context) -> None:
        _run_checks(platform.service_url, token, to_run, "post-deploy checks")
    return Step("post-deploy checks", run)


def drain(color: str, seconds: float) -> Step:
    """The drain window itself: the old colour must live through it."""
    return Step(f"drain {color} ({seconds:g} s)", lambda ctx: time.sleep(seconds))


def kill_all(platform: Platform, color: str, sig: int = signal.SIGKILL) -> Step:
    """End every replica of ``color`` with ``sig`` (a negative control), then scale it to 0."""
    def run(ctx: Context) -> None:
        live = [r for r in platform.replicas(color) if not r.terminating]
        for index in reversed(range(len(live))):  # valid whether or not a killed one leaves
            platform.kill_replica(color, sig, index)
        platform.scale(color, 0)
    return Step(f"kill {color} with {signal.Signals(sig).name}", run)


def wait_gone(platform: Platform, color: str, timeout: float) -> Step:
    """Until no replica of ``color`` is left; the switch is then drained."""
    def run(ctx: Context) -> None:
        deadline = time.monotonic() + timeout
        while platform.replicas(color):
            if time.monotonic() > deadline:
                left = [r.name for r in platform.replicas(color)]
                raise StepFailed(f"{color} replicas still running after {timeout:g} s: "
                                 f"{', '.join(left)}")
            time.sleep(0.05)
        ctx.drained(time.time())
    return Step(f"wait for {color} to stop", run)


def undo_switch(platform: Platform, old: str, new: str) -> Step:
    """On failure: traffic back to what worked after the switch, or (the seed) the new
    colour scaled back to 0 before it."""
    def run(ctx: Context) -> None:
        if ctx.has_switched and platform.replicas(old):
            platform.route_to(old)
        else:
            platform.scale(new, 0)
    return Step(f"roll back to {old}", run)


def _cutover(platform: Platform, old: str, new: str, settings: SwitchSettings, name: str,
             deploy_version: str | None) -> Scenario:
    """The seed's blue-green-deploy.sh as a list of named steps (see the module docstring
    for what the negative-control knobs leave out)."""
    return Scenario(name, tuple(switch_steps(platform, old, new, settings, deploy_version)),
                    on_failure=undo_switch(platform, old, new))


def switch_steps(platform: Platform, old: str, new: str, settings: SwitchSettings,
                 deploy_version: str | None) -> list[Step]:
    """The switch from ``old`` to ``new`` (``deploy_version`` there, or None: the version it
    kept) as its list of named steps, for a scenario that does something first (a migration);
    its failure step is ``undo_switch(platform, old, new)``."""
    new_version = deploy_version or platform.deployed_version(new) or ""
    drain_s = settings.drain_for(platform)
    broken = settings.broken
    steps: list[Step] = [find_active(platform, old, new, new_version)]
    if deploy_version is not None:
        steps.append(deploy(platform, new, new_version, settings.new_faults))
    steps.append(scale(platform, new, settings.replicas))
    if broken != "skip_ready_wait":
        steps.append(wait_ready(platform, new, settings.ready_timeout))
        if settings.smoke:
            steps.append(smoke_test(platform, new, settings.token, settings.verify_timeout,
                                    settings.profile))
    steps += [readiness_lint(platform, new), route(platform, new)]
    if broken != "no_drain":  # the seed's race: scale down while the switch propagates
        steps.append(verify_serves(platform, new, settings.verify_timeout,
                                   settings.verify_answers, settings.profile))
        if settings.post_deploy:
            steps.append(post_deploy(platform, settings.token, settings.payment_timeout,
                                     settings.profile))
    if drain_s > 0:
        steps.append(drain(old, drain_s))
    steps.append(kill_all(platform, old) if broken == "kill_old"
                 else scale(platform, old, 0, verb="scale down"))
    steps.append(wait_gone(platform, old, settings.ready_timeout))
    return steps


def _run_checks(url: str, token: str, to_run, what: str) -> None:
    api = Api(url, token)
    try:
        failures = checks.run_checks(api, to_run)
    finally:
        api.close()
    if failures:
        raise StepFailed(f"{what} failed: {'; '.join(failures)}")


def _verify_serves(url: str, version: str, answers: int, timeout: float,
                   get: Callable[..., requests.Response] = requests.get, path: str = "/health",
                   header: str = "X-App-Version") -> None:
    """Ask the Service itself, on fresh connections, until ``answers`` in a row come from
    ``version`` (the profile's version header): what clients get, not what the selector says."""
    deadline = time.monotonic() + timeout
    in_a_row, seen = 0, "nothing"
    while in_a_row < answers:
        if time.monotonic() > deadline:
            raise StepFailed(f"the Service still does not answer only from {version} after "
                             f"{timeout:g} s; last answer from {seen}")
        try:
            resp = get(f"{url}{path}", headers={"Connection": "close"}, timeout=2)
            seen = resp.headers.get(header, "") or f"an answer without {header}"
        except requests.RequestException as exc:
            seen = f"no answer ({type(exc).__name__})"
        in_a_row = in_a_row + 1 if seen == version else 0
        if seen != version:
            time.sleep(0.02)
