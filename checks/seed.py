"""What is left of the seed's scripts as plain helpers: polling with a deadline, the brief load
(``ab -n 100 -c 10``) with a real success rate, and running checks for a scenario step. The
checks themselves are in checks/service.py, asked in the words of the service profile.

Fixed from the seed: polling with deadlines instead of fixed sleeps, and a real success rate
for the brief load (the seed read an `ab` latency percentile as a success rate).
"""
from __future__ import annotations

import time
from typing import Callable, TypeVar

import allure
import requests

from zerodrop.checks.api import Api
from zerodrop.checks.burst import BurstResult, burst
from zerodrop.checks.expect import ExpectationFailed

T = TypeVar("T")


def poll(deadline_s: float, interval: float, fn: Callable[[], T | None]) -> T | None:
    """Call ``fn`` until it returns something other than None, or the deadline passes."""
    deadline = time.monotonic() + deadline_s
    while True:
        value = fn()
        if value is not None:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def brief_load(api: Api, requests_n: int, concurrency: int, path: str = "/health") -> BurstResult:
    """ab -n 100 -c 10 on the health path, counting answers (not latency percentiles)."""
    with allure.step(f"{requests_n} requests, concurrency {concurrency}, GET {path}"):
        result = burst(lambda i: api.get(path), requests_n, concurrency)
        allure.attach(result.describe(), "brief load result", allure.attachment_type.TEXT)
    return result


def run_checks(api: Api, checks) -> list[str]:
    """Run checks in order; the failures, one line each (for a scenario step)."""
    failures = []
    for check in checks:
        name = getattr(check, "__name__", "check")
        try:
            check(api)
        except ExpectationFailed as exc:
            failures.append(f"{name}: {exc}")
        except requests.RequestException as exc:
            failures.append(f"{name}: no answer from {api.base_url} ({type(exc).__name__})")
    return failures
