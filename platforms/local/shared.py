"""One local platform per pytest session, shared by every pytest-xdist worker: the first
process to need it starts ``python -m zerodrop.platforms.local serve`` under a file lock, the
others read its state file, and only the controller stops it at the end of the session (or
before a proof that needs its Service port)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock

from zerodrop.platforms.base import Target
from zerodrop.platforms.local.command import DEFAULT_APP_CMD, DEFAULT_MIGRATE_CMD
from zerodrop.platforms.provider import TargetError

STATE = "local-platform.json"


@dataclass(frozen=True)
class LocalOptions:
    replicas: int = 2
    service_port: int = 0
    token: str = "test-token"
    ready_timeout: float = 60.0
    faults: str = "{}"  # JSON: {"blue": {knob: value}, ...}
    app_cmd: str = DEFAULT_APP_CMD
    migrate_cmd: str = DEFAULT_MIGRATE_CMD
    readiness_path: str = "/health/ready"
    service_name: str = "payment-service"

    def argv(self) -> list[str]:
        return ["--replicas", str(self.replicas), "--service-port", str(self.service_port),
                "--token", self.token, "--ready-timeout", str(self.ready_timeout),
                "--faults", self.faults, "--app-cmd", self.app_cmd, "--migrate-cmd", self.migrate_cmd,
                "--readiness-path", self.readiness_path, "--service-name", self.service_name]


def acquire_local(shared_dir: Path, owner_pid: int, options: LocalOptions) -> Target:
    """The session's local platform, started by whichever process asks first."""
    state_file = shared_dir / STATE
    with FileLock(str(shared_dir / "local-platform.lock")):
        if not state_file.exists():
            _start_server(state_file, owner_pid, options)
        state = json.loads(state_file.read_text())
    if "error" in state:
        raise TargetError(f"the local platform could not start: {state['error']}")
    return Target("local", state["base_url"], state["token"], state["preview_urls"],
                  state["admin_token"], state["active_color"])


def _start_server(state_file: Path, owner_pid: int, options: LocalOptions) -> None:
    log = state_file.with_suffix(".log")
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "zerodrop.platforms.local", "serve", "--state-file",
             str(state_file), "--owner-pid", str(owner_pid), *options.argv()],
            cwd=state_file.parent, env=dict(os.environ),
            stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)  # Ctrl-C goes to pytest, which stops it in order
    deadline = time.monotonic() + options.ready_timeout * 2 + 30
    while not state_file.exists():
        code = proc.poll()
        if code is not None and not state_file.exists():
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["no output"]
            state_file.write_text(json.dumps({"error": f"exited with {code}: {tail[0]}"}))
            return
        if time.monotonic() > deadline:
            proc.kill()
            state_file.write_text(json.dumps({"error": "did not come up in time"}))
            return
        time.sleep(0.1)


def release_local(shared_dir: Path, timeout: float = 30.0) -> None:
    """Stop the session's local platform, if one was started, and wait until it is gone; its
    state file goes too, so that the next ``acquire_local`` starts a new one."""
    state_file = shared_dir / STATE
    if not shared_dir.is_dir():
        return
    with FileLock(str(shared_dir / "local-platform.lock")):
        try:
            state = json.loads(state_file.read_text())
        except (FileNotFoundError, ValueError):
            return
        if state.get("pid"):
            _stop(state["pid"], timeout)
        state_file.unlink(missing_ok=True)


def _stop(pid: int, timeout: float) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            # reap it if it is our child (no xdist); otherwise just watch it go
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass
        except ProcessLookupError:
            return
        time.sleep(0.1)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
