"""Helpers for tests that start real platforms and real pytest runs."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from zerodrop.platforms.local.platform import LocalConfig, LocalPlatform, stand_up

ROOT = Path(__file__).resolve().parents[2]


def pids_of(marker: str) -> list[int]:
    """Live processes whose command line mentions ``marker`` (a workdir, a state file), or
    that run in it (the local platform starts its replicas in its workdir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            state = (entry / "stat").read_text().split(")")[-1].split()[0]
        except OSError:
            continue
        try:
            cwd = str((entry / "cwd").resolve())
        except OSError:
            cwd = ""
        if (marker in cmdline or (cwd and cwd == str(Path(marker).resolve()))) and state != "Z":
            found.append(int(entry.name))
    return found


def port_open(port: int) -> bool:
    import socket
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def platform():
    """A fresh local platform, one replica per colour, blue active; always torn down."""
    p = stand_up(LocalConfig(replicas=1))
    try:
        yield p
    finally:
        p.teardown()


@pytest.fixture
def bare_platform():
    """A local platform with nothing deployed (the test deploys what it needs)."""
    p = LocalPlatform(LocalConfig(replicas=1, ready_timeout=20))
    try:
        yield p
    finally:
        p.teardown()


def run_pytest(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    """A real, separate pytest run of the suites, as a user would start it."""
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:randomly", "-q", "-rfE",
         "-o", "addopts=-p no:cacheprovider -p no:locust", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT)})
