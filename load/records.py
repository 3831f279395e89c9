"""The shapes that cross the seams of a zero-downtime run: ledger records (load -> verdict),
the cutover a scenario reports, the data-integrity check, and the load target.

Pure data and (de)serialisation only: no I/O beyond reading/writing a given file object, no
Locust, no gevent. Times are ``time.time()`` seconds, the same clock as timeline events.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import IO, Any, Iterable, Iterator

OUTCOMES = ("ok", "http_error", "refused", "reset", "timeout", "bad_body")
FAILED_OUTCOMES = OUTCOMES[1:]


@dataclass(frozen=True)
class LedgerRecord:
    """One request as the client saw it. ``status`` is 0 when no HTTP answer arrived.

    ``version``/``color``/``replica`` come from the X-App-Version / X-App-Color / X-Replica
    headers of the answer ("" when there was none). For payment creations, ``payment_id``,
    ``amount`` (exact decimal string, e.g. "150.00") and ``idempotency_key`` let the data check
    find every acknowledged payment afterwards.
    """

    t_start: float
    t_end: float
    method: str
    route: str
    status: int
    outcome: str
    version: str = ""
    color: str = ""
    replica: str = ""
    request_id: str = ""
    error: str = ""
    payment_id: str = ""
    amount: str = ""
    idempotency_key: str = ""

    @property
    def failed(self) -> bool:
        return self.outcome != "ok"

    @property
    def latency_ms(self) -> float:
        return (self.t_end - self.t_start) * 1000.0

    def to_json(self) -> str:
        # __dict__ holds the same fields as asdict() (all are plain values) at a fifth the cost
        return json.dumps(self.__dict__, separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LedgerRecord":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


def write_records(out: IO[str], records: Iterable[LedgerRecord]) -> int:
    n = 0
    for r in records:
        out.write(r.to_json())
        out.write("\n")
        n += 1
    return n


def read_records(lines: Iterable[str]) -> Iterator[LedgerRecord]:
    """Stream records from JSON lines; a torn last line (a killed writer) is skipped."""
    for line in lines:
        line = line.strip()
        if not line:
            continue
        try:
            yield LedgerRecord.from_dict(json.loads(line))
        except (ValueError, TypeError):
            continue


@dataclass(frozen=True)
class Cutover:
    """What the scenario did, for the verdict: the versions on each side and when.

    ``t_switch``: the Service selector was replaced (traffic may move from here on).
    ``t_drained``: the old colour's last replica had ended; every request that STARTS after
    this must be answered by the new version. None when the scenario never got that far.
    """

    old_version: str
    new_version: str
    t_switch: float | None
    t_drained: float | None


@dataclass(frozen=True)
class DataCheck:
    """After the run: every payment acknowledged with 201 looked up again."""

    acknowledged: int
    missing: list[str] = field(default_factory=list)        # payment ids not found
    mismatched: list[str] = field(default_factory=list)     # found with another amount
    duplicated_keys: list[str] = field(default_factory=list)  # a key that produced two payments
    error: str = ""  # set when the check itself could not run (-> INCONCLUSIVE)


@dataclass(frozen=True)
class LoadTarget:
    """What the load generator was asked for and what it managed."""

    target_rps: float
    achieved_rps: float
    saturated: bool = False  # the generator itself ran out of CPU (its numbers are suspect)
    detail: str = ""
