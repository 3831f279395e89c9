"""One replica of the service as a real OS process on 127.0.0.1 (a pod, locally).

The process is started by the ``--app-cmd`` template (platforms/local/command.py) on a port the
platform chose for it (as a container gets its containerPort); a replica that dies is started
again on a fresh port. It runs in its own session (a signal to the group reaches its children) and is
told by the kernel to die with the thread that spawned it (PR_SET_PDEATHSIG), so a harness
killed with SIGKILL leaves no orphan behind.
"""
from __future__ import annotations

import ctypes
import os
import shlex
import signal
import socket
import subprocess
import time
from collections import deque
from pathlib import Path

from zerodrop.platforms.local import command
from zerodrop.platforms.local.command import DEFAULT_APP_CMD

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


def pid_alive(pid: int) -> bool:
    """Whether a process of that id exists (one of another user's counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ReplicaProcess:
    """A started service process: its port, its log, and how to stop it."""

    def __init__(self, name: str, color: str, version: str, workdir: Path, env: dict[str, str],
                 app_cmd: str = DEFAULT_APP_CMD):
        self.name = name
        self.color = color
        self.version = version
        self.workdir = workdir
        self.app_cmd = app_cmd
        self.argv: list[str] = []
        self.log_path = workdir / f"{name}.log"
        self.port: int | None = None
        self.started_at = time.time()
        self.terminating = False
        self.sigterm_at: float | None = None   # time.time() when it was told to stop
        self.exited_at: float | None = None    # time.time() when its stop saw it exit
        self.held_at_sigterm: frozenset = frozenset()  # the client connections when told to stop
        # ... of which it still held this many at the last look in its drain
        self.open_at_drain_end: int | None = None
        self.ready = False
        self.restarts = 0
        self.last_exit_code: int | None = None  # of the previous run, kept across a restart
        self._env = env
        self._proc: subprocess.Popen | None = None

    def start(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            self.last_exit_code = self._proc.returncode
        self.port = free_port()
        self.ready = False
        self.started_at = time.time()
        self.argv = command.render(self.app_cmd, "--app-cmd", port=self.port, version=self.version,
                                   color=self.color, replica=self.name)
        env = {**os.environ, **self._env, "PORT": str(self.port), "APP_VERSION": self.version,
               "ZD_COLOR": self.color, "APP_COLOR": self.color, "REPLICA_NAME": self.name}
        with open(self.log_path, "ab") as log:
            try:
                self._proc = subprocess.Popen(
                    self.argv, cwd=self.workdir, env=env, stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=_die_with_parent)
            except OSError as exc:  # not found, not executable: as a container that cannot start
                log.write(f"--app-cmd {shlex.join(self.argv)!r} cannot run: {exc.strerror or exc}\n"
                          .encode())
                self._proc = subprocess.Popen(["false"], stdin=subprocess.DEVNULL, stdout=log,
                                              stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}" if self.port else ""

    def poll_port(self) -> int | None:
        """The port the replica was started on (its readiness probe says when it listens)."""
        return self.port

    def exit_code(self) -> int | None:
        return self._proc.poll() if self._proc else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def signal(self, sig: int) -> None:
        if self.alive():
            try:
                os.kill(self._proc.pid, sig)  # type: ignore[union-attr]
            except ProcessLookupError:
                pass

    def wait(self, timeout: float) -> int | None:
        if self._proc is None:
            return None
        try:
            return self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, grace: float) -> int | None:
        """SIGTERM, then SIGKILL to the whole group after ``grace`` seconds (kubelet's
        terminationGracePeriodSeconds). Returns the exit code."""
        if self._proc is None:
            return None
        self.signal(signal.SIGTERM)
        code = self.wait(grace)
        if code is None:
            self.kill_group()
            code = self.wait(5)
        self.exited_at = time.time()
        return code

    def kill_group(self) -> None:
        if self._proc is not None:
            try:
                os.killpg(self._proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    def log_tail(self, lines: int = 5) -> list[str]:
        try:
            with open(self.log_path, "rb") as f:
                f.seek(max(0, os.path.getsize(self.log_path) - 16384))
                tail = deque(f.read().decode("utf-8", "replace").splitlines(), maxlen=lines)
        except FileNotFoundError:
            return []
        return [line for line in tail if line.strip()]
