"""Judge a deploy someone else performs: the team's own deploy command (the seed's
blue-green-deploy.sh, a Helm upgrade, an Argo Rollouts promote) runs while the load flows, and
the switch it makes is judged exactly as zerodrop judges its own.

The scenario talks to the Platform interface only. It finds the active colour and versions
before the command, runs the command with the platform's environment (on a cluster: KUBECONFIG,
NAMESPACE, SERVICE_NAME; and the Service and preview URLs, the token), records every line it
prints as a timeline event, and afterwards reads from the platform's timeline when the Service
began to route to the other colour (the switch) and when the old colour's last replica ended
(the drain). A command that is not found, fails or times out is a failed step whose message
holds its exit status and its last lines, and the verdict names it.
"""
from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

from zerodrop.platforms.base import COLORS, Platform
from zerodrop.records.events import EventName, Source
from zerodrop.scenarios.steps import Context, Scenario, Step, StepFailed

LAST_LINES = 5
LINE_CHARS = 300


@dataclass(frozen=True)
class WatchSettings:
    command: tuple[str, ...]
    timeout: float = 600.0
    token: str = "test-token"
    workdir: Path | None = None  # where the command runs (default: the current directory)
    settle_s: float = 2.0        # after the command: the platform's watchers catch up
    drain_wait_s: float = 60.0   # how long the old colour's terminating replicas may take

    def validate(self) -> None:
        if not self.command:
            raise ValueError("the deploy command is empty: give it after --, e.g. "
                             "zerodrop watch --target kind -- ./deploy.sh")


def other(color: str) -> str:
    return next(c for c in COLORS if c != color)


def watched(platform: Platform, settings: WatchSettings, name: str = "watched-deploy") -> Scenario:
    settings.validate()
    state: dict = {}

    def find(ctx: Context) -> None:
        old = platform.active_color()
        if old not in COLORS:
            raise StepFailed(f"the Service selects {old!r}, not blue or green: there is no "
                             "switch to judge")
        new = other(old)
        state.update(old=old, new=new, t0=time.time())
        ctx.begin_cutover(old, new, platform.deployed_version(old) or "",
                          platform.deployed_version(new) or "")

    def run(ctx: Context) -> None:
        env = platform.command_env()
        if env is None:
            raise StepFailed("this platform cannot be switched by an outside command (zerodrop's "
                             "local platform lives in this process); use --target kind or kubeconfig")
        env = {**os.environ, **env, "ZD_TOKEN": settings.token, "ZD_PYTHON": sys.executable,
               "ZD_SERVICE_URL": platform.service_url,
               **{f"ZD_PREVIEW_URL_{c.upper()}": platform.preview_url(c) for c in COLORS}}
        _run_command(platform, settings, env)

    def observe(ctx: Context) -> None:
        time.sleep(settings.settle_s)
        old, new, t0 = state["old"], state["new"], state["t0"]
        cut = ctx.cutover
        cut.new_version = platform.deployed_version(new) or cut.new_version
        t_switch = first_routed(platform, new, t0)
        if t_switch is None:
            raise StepFailed(f"the deploy command ended, but the Service never routed to {new}: "
                             "no switch to judge")
        ctx.switched(t_switch)
        # a command that scaled the old colour down may end before its pods have drained:
        # wait while every old replica left is on its way out, until the platform saw the
        # last one end (an old colour the command kept running has no drain)
        deadline = time.monotonic() + settings.drain_wait_s
        while time.monotonic() < deadline:
            left = platform.replicas(old)
            if left and not all(r.terminating for r in left):
                return
            gone = [e.t for e in platform.events.named(EventName.REPLICA_TERMINATED)
                    if e.t >= t_switch and e.detail.get("color") == old]
            if not left and gone:
                ctx.drained(max(gone))
                return
            time.sleep(0.25)

    shown = " ".join(shlex.quote(a) for a in settings.command)
    return Scenario(name, (Step("find active colour", find), Step(f"run {shown[:80]}", run),
                           Step("read the switch from the timeline", observe)))


def first_routed(platform: Platform, color: str, since: float) -> float | None:
    """When the Service's own front (not a preview, not the canary) first listed a replica of
    ``color`` after ``since``: the moment traffic could move."""
    for e in platform.events.named(EventName.ENDPOINTS_CHANGED):
        front = str(e.detail.get("front", ""))
        if e.t < since or front.endswith(tuple(f"-{c}" for c in (*COLORS, "canary"))):
            continue
        if any(f"-{color}-" in str(name) for name in e.detail.get("endpoints", ())):
            return e.t
    return None


def _run_command(platform: Platform, settings: WatchSettings, env: dict[str, str]) -> None:
    command = list(settings.command)
    shown = shlex.join(command)
    last: deque[str] = deque(maxlen=LAST_LINES)
    try:
        proc = subprocess.Popen(command, cwd=settings.workdir, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                errors="replace", start_new_session=True)
    except OSError as exc:
        platform.events.emit(Source.SCENARIO, EventName.DEPLOY_EXITED, code=127, command=shown)
        raise StepFailed(f"the deploy command {shown!r} could not start: {exc.strerror or exc}") from None

    def pump() -> None:
        for raw in proc.stdout:
            line = raw.rstrip("\n")[:LINE_CHARS]
            last.append(line)
            platform.events.emit(Source.SCENARIO, EventName.DEPLOY_OUTPUT, line=line)

    reader = threading.Thread(target=pump, daemon=True, name="zd-deploy-output")
    reader.start()
    try:
        code = proc.wait(timeout=settings.timeout)
    except subprocess.TimeoutExpired:
        _kill(proc)
        code = None
    except BaseException:  # Ctrl-C: the command goes too, nothing is left running
        _kill(proc)
        raise
    reader.join(timeout=5)
    platform.events.emit(Source.SCENARIO, EventName.DEPLOY_EXITED,
                         code=code if code is not None else "timeout", command=shown)
    tail = " | ".join(last) or "(no output)"
    if code is None:
        raise StepFailed(f"the deploy command {shown!r} did not end within {settings.timeout:g} s "
                         f"and was stopped; its last lines: {tail}")
    if code != 0:
        raise StepFailed(f"the deploy command {shown!r} exited with status {code}; its last lines: {tail}")


def _kill(proc: subprocess.Popen) -> None:
    for sig, wait in ((signal.SIGTERM, 5), (signal.SIGKILL, 5)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


