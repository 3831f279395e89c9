"""load/pod.py, the load generator's side inside a pod, run here as the pod runs it: a real
``python -m zerodrop.load.pod run`` process with real Locust against a real payment-service, driven
only through the same commands the cluster load Job gets by exec."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from zerodrop.load.runner import LOCUSTFILE, LoadPlan, locust_args, locust_env
from zerodrop.records.ledger import LedgerRecord
from zerodrop.records.progress import parse_many
from tests.load.conftest import ROOT
from tests.load.standins import closed_port
from tests.procs import stop_process, wait_until


def pod(*args: str, env=None, timeout: float = 60) -> str:
    done = subprocess.run([sys.executable, "-m", "zerodrop.load.pod", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def start(tmp_path: Path, host: str) -> tuple[subprocess.Popen, Path]:
    directory = tmp_path / "ledger"
    plan = LoadPlan(host=host, users=4, rate=40.0, max_duration=60)
    env = {**os.environ, **locust_env(plan, str(directory), "standalone"),
           "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-m", "zerodrop.load.pod", "run", "--dir", str(directory),
                             "--linger", "30", "--host", host, "--", "-f", str(LOCUSTFILE),
                             "--logfile", str(directory / "locust.log"), *locust_args(plan)],
                            cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return proc, directory


def test_run_progress_stop_dump(tmp_path, replica):
    proc, directory = start(tmp_path, replica.url)
    try:
        wait_until(lambda: sum(p.requests for p in parse_many(
            pod("progress", "--dir", str(directory)).splitlines())) > 0 or None, 30, "requests to flow")
        assert pod("stop", "--dir", str(directory)).strip() in ("0", "1")
        dumped = pod("dump", "--dir", str(directory)).splitlines()
        assert dumped[0].startswith("### ledger-standalone-") and dumped[0].endswith(".jsonl")
        records = [LedgerRecord.from_json(line) for line in dumped[1:]]
        assert records and not any(r.failed for r in records)
        assert (directory / "collected").exists()
        proc.wait(timeout=10)  # it lingered only until the dump
        assert proc.returncode == 0
    finally:
        stop_process(proc)


def test_a_target_that_never_answers_is_reported_not_loaded(tmp_path, monkeypatch):
    """Negative control: the preflight inside the pod refuses, with the reason in the error
    file (what the harness shows) and exit 3, and Locust never starts."""
    import zerodrop.load.pod as pod_module
    monkeypatch.setattr(pod_module, "PREFLIGHT_S", 1.0)
    directory = tmp_path / "ledger"
    host = f"http://127.0.0.1:{closed_port()}"
    assert pod_module.run(directory, 0.1, host, ["-f", str(LOCUSTFILE)]) == 0
    assert (directory / "exit").read_text() == "3"
    assert "does not answer GET /health from inside the cluster" in (directory / "error").read_text()
    assert not (directory / "locust.pid").exists()
