"""The ledger: one record per request, its one writer and its one reader.

Pure data and (de)serialisation only: no I/O beyond reading/writing a given file object, no
Locust, no gevent. Times are ``time.time()`` seconds, the same clock as timeline events.
``failed(outcome)`` is the one place that decides whether a request failed.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, fields, replace
from typing import IO, Any, Iterable, Iterator

# keepalive_race: the request went out on a kept-alive connection that had served earlier
# requests and the connection ended (reset or closed) at once (within 20 ms) with no byte of an
# answer: the server had closed the idle connection as the client sent on it (the HTTP/1.1
# keep-alive race). A connection that ends later, after the server took the request, is a reset.
OUTCOMES = ("ok", "http_error", "refused", "reset", "timeout", "bad_body", "keepalive_race")
FAILED_OUTCOMES = OUTCOMES[1:]


def failed(outcome: str) -> bool:
    """The one predicate: a request failed unless its outcome is ``ok``."""
    return outcome != "ok"


@dataclass(frozen=True)
class LedgerRecord:
    """One request as the client saw it. ``status`` is 0 when no HTTP answer arrived.

    ``version``/``color``/``replica`` come from the X-App-Version / X-App-Color / X-Replica
    headers of the answer ("" when there was none). For payment creations, ``payment_id``,
    ``amount`` (exact decimal string, e.g. "150.00") and ``idempotency_key`` let the data check
    find every acknowledged payment afterwards.

    The open-model load adds:

    - ``population``: which kind of client sent it (``keepalive``, ``idle``, ``fresh``, ``retry``;
      "" in ledgers from before populations);
    - ``kind``: what the request does, for the data checks (``payment``, ``credit``, ``debit``,
      ``balance``, ``status``, ``health``);
    - ``attempt`` (1 for a first send) and ``first_request_id``: a retry, or a deliberate
      duplicate send, names the X-Request-Id of the first attempt it repeats;
    - ``planned``: when the schedule wanted it started (``t_start - planned`` is the generator's
      own lag; 0.0 when there was no schedule);
    - ``conn``: ``new`` (a connection opened for it) or ``reused`` (a kept-alive one);
    - ``account`` and ``balance``: the account a credit, debit or balance read is about, and the
      balance a read answered (exact decimal string).
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
    population: str = ""
    kind: str = ""
    attempt: int = 1
    first_request_id: str = ""
    planned: float = 0.0
    conn: str = ""
    account: str = ""
    balance: str = ""

    @property
    def failed(self) -> bool:
        return failed(self.outcome)

    @property
    def latency_ms(self) -> float:
        return (self.t_end - self.t_start) * 1000.0

    def to_json(self) -> str:
        # __dict__ holds the same fields as asdict() (all are plain values) at a fifth the cost
        return json.dumps(self.__dict__, separators=(",", ":"))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "LedgerRecord":
        return cls(**{k: v for k, v in d.items() if k in _FIELDS})

    @classmethod
    def from_json(cls, line: str) -> "LedgerRecord":
        """One ledger line; ValueError/TypeError when it is not a record (a torn last line)."""
        data = json.loads(line)
        if not isinstance(data, dict):
            raise ValueError("a ledger line must be a JSON object")
        return cls.from_dict(data)

    def shifted(self, seconds: float) -> "LedgerRecord":
        """The same request on another clock (``seconds`` added to both times)."""
        return replace(self, t_start=self.t_start + seconds, t_end=self.t_end + seconds)


_FIELDS = frozenset(f.name for f in fields(LedgerRecord))


def line_summary(line: str) -> tuple[float, float, bool]:
    """``(t_start, t_end, failed)`` of one ledger line without building its record: the merge
    sorts by ``t_start`` and counts the load summary from the same one parse of each line, and a
    record costs three times the parse.
    ValueError/TypeError/KeyError when the line is no record."""
    data = json.loads(line)
    return float(data["t_start"]), float(data["t_end"]), failed(str(data["outcome"]))


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
            yield LedgerRecord.from_json(line)
        except (ValueError, TypeError):
            continue
