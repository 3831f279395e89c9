"""Helpers the harness's own tests share."""
from __future__ import annotations

import subprocess
import time


def stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM, then SIGKILL if it is still there after 15 s; always reaped."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):
    """Poll until predicate() is truthy and return it; the timeout names what it waited for."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}")
