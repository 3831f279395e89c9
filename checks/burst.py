"""A brief, bounded burst of requests with an exact success rate.

The seed's smoke-tests.sh read a latency percentile of `ab` ("Percentage of the requests
served within ...") as if it were a success rate; this counts answers instead.
"""
from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Callable

import requests


@dataclass
class BurstResult:
    total: int
    ok: int
    outcomes: Counter = field(default_factory=Counter)  # "200", "503", "ConnectionError", ...

    @property
    def success_rate(self) -> float:
        return 100.0 * self.ok / self.total if self.total else 0.0

    def describe(self) -> str:
        parts = ", ".join(f"{k}: {v}" for k, v in sorted(self.outcomes.items()))
        return f"{self.ok}/{self.total} succeeded ({self.success_rate:.1f}%); {parts}"


def burst(send: Callable[[int], requests.Response], requests_n: int, workers: int) -> BurstResult:
    """Send ``requests_n`` requests over ``workers`` threads; every outcome is counted, an
    exception is a failure (the seed's version crashed on the first connection error)."""
    def one(i: int) -> str:
        try:
            return str(send(i).status_code)
        except requests.RequestException as exc:
            return type(exc).__name__

    with ThreadPoolExecutor(max_workers=workers) as pool:
        outcomes = Counter(pool.map(one, range(requests_n)))
    ok = sum(n for k, n in outcomes.items() if k.isdigit() and 200 <= int(k) < 300)
    return BurstResult(requests_n, ok, outcomes)
