"""A real Prometheus scraping real payment-service replicas on the local platform, after a few
seconds of client requests; shared by the tests of this folder (one stand-up for all).

What happened, in order (the tests read the snapshots):
1. blue (active, answering every 5th /api/payments with an injected 500) gets requests through
   the Service; green gets only its readiness probes and Prometheus' scrapes;
2. ``green_idle``: what the fixed and the seed's queries answer for green at that moment;
3. green gets requests through its preview address (healthy: no 5xx at all).
"""
from __future__ import annotations

import shutil
import time
from collections import Counter
from dataclasses import dataclass, field

import pytest
import requests

from zerodrop.payment_service.monitoring import ALERT_RULES, queries
from zerodrop.platforms.base import COLORS
from zerodrop.platforms.local.platform import LocalConfig, LocalPlatform, stand_up
from zerodrop.platforms.local.prometheus import INSTALL_HINT, LocalPrometheus, QueryResult

WINDOW = "1m"        # spans the whole run: every request is in it
TOKEN = "test-token"


def require(tool: str) -> str:
    """The tool's path, or this test FAILS (never skips) with one line saying how to get it."""
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not installed (Debian's prometheus package brings prometheus and "
                    f"promtool); install it with: {INSTALL_HINT}", pytrace=False)
    return path


def drive(url: str, seconds: float, per_second: float = 50) -> Counter:
    """Client requests, one at a time, paced and bounded in count and time: status -> how many.
    Paced, because a burst that falls between two scrapes is invisible to rate(): the series
    appears at its final value and never moves in Prometheus' eyes."""
    seen: Counter = Counter()
    start = time.monotonic()
    limit = int(seconds * per_second)
    with requests.Session() as s:
        s.headers["Authorization"] = f"Bearer {TOKEN}"
        for n in range(limit):
            if time.monotonic() - start >= seconds:
                break
            r = s.get(f"{url}/api/payments", params={"idempotency_key": "k-monitoring"}, timeout=5)
            seen[r.status_code] += 1
            time.sleep(max(0.0, start + (n + 1) / per_second - time.monotonic()))
    return seen


def seed_reading(result: QueryResult) -> float:
    """What the seed's canary-controller.py made of an answer: the first value, else 0.0."""
    return result.samples[0].value if result.has_data else 0.0


def seed_error_rate(version: str) -> str:
    """canary-controller.py's get_error_rate query, verbatim but for the window."""
    return (f'sum(rate(http_requests_total{{service="payment-service", version="{version}", '
            f'status=~"5.."}}[{WINDOW}])) / sum(rate(http_requests_total{{service="payment-service", '
            f'version="{version}"}}[{WINDOW}])) * 100')


def seed_p99(version: str) -> str:
    return (f'histogram_quantile(0.99, sum(rate(http_request_duration_seconds_bucket{{'
            f'service="payment-service", version="{version}"}}[{WINDOW}])) by (le)) * 1000')


@dataclass
class Observed:
    platform: LocalPlatform
    prom: LocalPrometheus
    sent: dict[str, Counter] = field(default_factory=dict)
    green_idle: dict[str, QueryResult] = field(default_factory=dict)


@pytest.fixture(scope="package")
def observed():
    require("prometheus")
    # Prometheus first: its discovery hands new targets to the scrapers on a 5 s tick, which
    # then runs while the platform comes up
    with LocalPrometheus(scrape_interval=1.0, rule_files=[ALERT_RULES]) as prom:
        platform = stand_up(LocalConfig(replicas=1, token=TOKEN),
                            faults={"blue": {"error_every": 5, "error_routes": "/api/payments"}})
        try:
            targets = {c: [r.url for r in platform.replicas(c)] for c in COLORS}
            prom.set_targets(targets)
            prom.wait_scraped([u for urls in targets.values() for u in urls])
            seen = Observed(platform, prom)
            seen.sent["blue"] = drive(platform.service_url, seconds=3.0)
            prom.wait_for_data(queries.error_rate("blue", WINDOW))
            prom.wait_for_data(queries.p99_ms("blue", WINDOW))
            prom.wait_for_data(seed_p99("green"))  # green's probes are scraped too
            seen.green_idle = {
                "error_rate": prom.query(queries.error_rate("green", WINDOW)),
                "p99_ms": prom.query(queries.p99_ms("green", WINDOW)),
                "requests": prom.query(queries.requests("green", WINDOW)),
                "seed_error_rate": prom.query(seed_error_rate("green")),
                "seed_p99": prom.query(seed_p99("green")),
            }
            seen.sent["green"] = drive(platform.preview_url("green"), seconds=2.0)
            prom.wait_for_data(queries.error_rate("green", WINDOW))
            prom.wait_for_data(queries.p99_ms("green", WINDOW))
            yield seen
        finally:
            platform.teardown()
