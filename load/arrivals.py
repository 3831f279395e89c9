"""The open-model schedule and the settings of the load generator, as pure code (no gevent, no
Locust): when each request is due, which client population sends it, and what it asks for.

Open model, as k6's constant-arrival-rate executor: requests are STARTED at planned times at the
target arrival rate, whatever the service's latency. A slow service then shows as latency and as
more requests in flight, never as a lower rate. The generator falls behind its schedule only for
its own reasons, and it says which: arrivals skipped because ``max_inflight`` requests were
already in flight (its concurrency cap), or requests started late (its own CPU).

Client populations (each request's ``population`` in the ledger):

- ``keepalive``: clients that keep connections alive and send often (a pool, most recently used
  first, checked for a server close before reuse, as urllib3 and Go do);
- ``idle``: kept-alive clients that stay idle LONGER than the drain window between requests, so
  they never see ``Connection: close`` on an answer; their phases are spread evenly over the
  period, so any window of ``period / clients`` seconds holds one of their sends;
- ``fresh``: a new connection for every request (``Connection: close``);
- ``retry``: clients that, on a connection error or a timeout, send the same request again with
  the same Idempotency-Key (bounded attempts, backoff), as a payment client must; some of their
  payments are sent twice at once on two connections on purpose (concurrent duplicates).
"""
from __future__ import annotations

import bisect
import json
import math
import random
from dataclasses import dataclass, field
from typing import Iterator, Mapping

from zerodrop.profiles import profile as profiles

POPULATIONS = ("keepalive", "idle", "fresh", "retry")
SCHEDULED_POPULATIONS = ("keepalive", "fresh", "retry")  # idle has its own fixed schedule
DEFAULT_POPULATIONS = {"keepalive": 60, "fresh": 15, "retry": 25}
# the request kinds and their weights come from the service profile; these are the default
# (payment-service) profile's, for callers that name them
KINDS = ("health", "balance", "create_payment", "payment_status", "replay_payment", "credit", "debit")
DEFAULT_MIX = {"health": 5, "balance": 30, "create_payment": 20, "payment_status": 20,
               "replay_payment": 5, "credit": 12, "debit": 8}
ENV_PROFILE = "ZERODROP_PROFILE"  # the profile's TOML text (not a path: it also reaches pods)
ARRIVALS = ("constant", "poisson")
MONEY_ACCOUNTS = tuple(f"load-account-{i}" for i in range(4))
LATE_S = 0.2  # a request started this long after its planned time was late (the generator's lag)
# an arrival skipped at the concurrency cap while already this late: the cap filled with the
# burst that follows a stall of the generator (its CPU), not with a slow service's requests
STALL_S = 0.01


class SettingsError(ValueError):
    """A setting of the load generator is invalid; the message names it and what is allowed."""


@dataclass(frozen=True)
class Settings:
    rate: float = 100.0                 # this process's scheduled arrivals per second
    arrivals: str = "constant"
    populations: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_POPULATIONS))
    mix: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_MIX))
    idle_clients: int = 8               # over all processes
    idle_period_s: float = 3.0
    max_inflight: int = 400             # the generator's concurrency cap (per process)
    max_attempts: int = 3               # retry population: attempts per request
    duplicate_share: float = 0.2        # retry population: payments sent twice at once
    warm_connections: int = 20          # keep-alive connections opened before the schedule starts
    request_timeout: float = 5.0
    token: str = "test-token"
    accounts: tuple[str, ...] = MONEY_ACCOUNTS
    process_index: int = 0
    processes: int = 1
    profile: profiles.Profile = field(default_factory=profiles.load)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> "Settings":
        """Settings from ZERODROP_* variables (load/runner.py sets them); SettingsError names
        the bad one."""
        def num(name: str, default: float, minimum: float = 0.0, integer: bool = False) -> float:
            raw = env.get(name, "")
            if not raw:
                return default
            try:
                value = int(raw) if integer else float(raw)
            except ValueError:
                raise SettingsError(f"{name}={raw!r} is not {'an integer' if integer else 'a number'}") from None
            if not math.isfinite(value) or value < minimum:
                raise SettingsError(f"{name}={raw!r} must be >= {minimum:g}")
            return value

        arrivals = env.get("ZERODROP_ARRIVALS", "") or "constant"
        if arrivals not in ARRIVALS:
            raise SettingsError(f"ZERODROP_ARRIVALS={arrivals!r}: use one of {', '.join(ARRIVALS)}")
        rate = num("ZERODROP_RATE", 100.0)
        if rate <= 0:
            raise SettingsError("ZERODROP_RATE must be > 0 requests/s")
        try:
            text = env.get(ENV_PROFILE, "")
            profile = profiles.from_text(text, "ZERODROP_PROFILE") if text else profiles.load()
        except profiles.ProfileError as exc:
            raise SettingsError(str(exc)) from None
        accounts = tuple(a for a in env.get("ZERODROP_MONEY_ACCOUNTS", "").split(",") if a) \
            or profile.money_accounts or MONEY_ACCOUNTS
        names = tuple(r.name for r in profile.requests)
        return cls(
            rate=rate, arrivals=arrivals,
            populations=weights(env.get("ZERODROP_POPULATIONS", ""), SCHEDULED_POPULATIONS,
                                DEFAULT_POPULATIONS, "ZERODROP_POPULATIONS", allow_all_zero=True),
            mix=weights(env.get("ZERODROP_MIX", ""), names, profile.mix, "ZERODROP_MIX"),
            idle_clients=int(num("ZERODROP_IDLE_CLIENTS", 8, 0, integer=True)),
            idle_period_s=num("ZERODROP_IDLE_PERIOD", 3.0, 0.1),
            max_inflight=int(num("ZERODROP_MAX_INFLIGHT", 400, 1, integer=True)),
            max_attempts=int(num("ZERODROP_MAX_ATTEMPTS", 3, 1, integer=True)),
            duplicate_share=min(1.0, num("ZERODROP_DUPLICATE_SHARE", 0.2)),
            warm_connections=int(num("ZERODROP_WARM_CONNECTIONS", 20, 0, integer=True)),
            request_timeout=num("ZERODROP_REQUEST_TIMEOUT", 5.0, 0.001),
            token=env.get("ZERODROP_TOKEN", "") or "test-token",
            accounts=accounts,
            process_index=int(num("ZERODROP_PROCESS_INDEX", 0, 0, integer=True)),
            processes=max(1, int(num("ZERODROP_PROCESSES", 1, 1, integer=True))),
            profile=profile,
        )

    def idle_offsets(self) -> list[float]:
        """This process's idle clients, as the offset of each one's first send within the
        period: client i of all ``idle_clients`` starts at i * period / clients, and process
        p runs the clients i with i % processes == p (the phases stay spread over processes)."""
        n = self.idle_clients
        return [i * self.idle_period_s / n for i in range(n) if i % self.processes == self.process_index]


def weights(raw: str, known: tuple[str, ...], default: Mapping[str, int], name: str,
            allow_all_zero: bool = False) -> dict[str, int]:
    """Integer weights from a JSON object; unknown keys, negative weights and (unless
    ``allow_all_zero``) an all-zero table are refused."""
    if not raw:
        return dict(default)
    try:
        table = json.loads(raw)
        if not isinstance(table, dict):
            raise ValueError
        table = {str(k): int(v) for k, v in table.items()}
    except (ValueError, TypeError):
        raise SettingsError(f"{name}={raw!r} is not a JSON object of integer weights") from None
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise SettingsError(f"{name}: unknown {unknown}; known: {list(known)}")
    if any(v < 0 for v in table.values()) or (not allow_all_zero and sum(table.values()) <= 0):
        raise SettingsError(f"{name}={raw!r}: weights must be >= 0" + ("" if allow_all_zero else ", at least one > 0"))
    return table


def schedule(rate: float, start: float, arrivals: str = "constant",
             rng: random.Random | None = None) -> Iterator[float]:
    """Planned start times from ``start`` on: every 1/rate seconds (constant), or with
    exponential gaps of mean 1/rate (Poisson). Each time is computed from the start, never by
    adding to the previous one, so a constant schedule does not drift."""
    if arrivals == "constant":
        i = 0
        while True:
            yield start + i / rate
            i += 1
    rng = rng or random.Random()
    t = start
    while True:
        t += rng.expovariate(rate)
        yield t


class Chooser:
    """A weighted choice over a table, by a cumulative table and bisect (cheap per request)."""

    def __init__(self, table: Mapping[str, int], rng: random.Random):
        self.names = [k for k, v in table.items() if v > 0]
        total, self.cum = 0, []
        for k in self.names:
            total += table[k]
            self.cum.append(total)
        self.total = total
        self.rng = rng

    def __bool__(self) -> bool:
        return self.total > 0

    def pick(self) -> str:
        return self.names[bisect.bisect_right(self.cum, self.rng.random() * self.total)]
