"""Fixtures for load/: a real payment-service replica, and a scan for leftover Locust processes."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
import requests

from tests.procs import stop_process, wait_until

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 20.0


def processes_mentioning(text: str) -> list[tuple[int, str]]:
    """Every live process whose command line contains ``text`` (our unique ledger dir)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            raw = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        cmd = raw.replace(b"\0", b" ").decode(errors="replace")
        if text in cmd and state != "Z":
            found.append((int(entry.name), cmd))
    return found


@dataclass
class Replica:
    url: str
    proc: subprocess.Popen
    log: Path
    version: str
    color: str
    name: str


@pytest.fixture(scope="module")
def replica(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replica]:
    """One real payment-service process on an ephemeral port with its own SQLite file."""
    work = tmp_path_factory.mktemp("replica")
    env = dict(os.environ, DATABASE_URL=f"sqlite:///{work / 'payments.db'}", AUTH_TOKEN="test-token",
               APP_VERSION="v1", APP_COLOR="blue", REPLICA_NAME="blue-0", DRAIN_SECONDS="0",
               PYTHONPATH=str(ROOT))
    migrate = subprocess.run([sys.executable, "-m", "zerodrop.payment_service", "migrate"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=60)
    assert migrate.returncode == 0, migrate.stderr
    port_file, log = work / "port", work / "stderr"
    with open(log, "wb") as err:
        proc = subprocess.Popen([sys.executable, "-m", "zerodrop.payment_service", "serve", "--host", "127.0.0.1",
                                 "--port", "0", "--port-file", str(port_file)],
                                cwd=ROOT, env=env, stdout=err, stderr=err)
    try:
        def up() -> str | None:
            if proc.poll() is not None:
                raise AssertionError(f"payment service exited {proc.returncode}: {log.read_text()[-2000:]}")
            if not port_file.exists() or not port_file.read_text().strip():
                return None
            url = f"http://127.0.0.1:{int(port_file.read_text())}"
            try:
                return url if requests.get(url + "/health", timeout=2).status_code == 200 else None
            except requests.RequestException:
                return None

        url = wait_until(up, START_TIMEOUT_S, "the payment service to answer /health")
        yield Replica(url, proc, log, "v1", "blue", "blue-0")
    finally:
        stop_process(proc)
