"""The per-request ledger: every request Locust makes becomes one ``LedgerRecord`` on disk.

Three parts, kept apart so that the pure ones are testable without Locust or gevent:

- ``classify(status, exception)``: the outcome of one request (pure).
- ``LedgerListener``: an ``events.request`` listener that builds records, buffers them and
  streams them as JSON lines to ``<dir>/ledger-<role>-<pid>.jsonl``; it also keeps the live
  counters that it writes to ``<dir>/progress-<role>-<pid>.json`` for the runner.
  ``install(environment)`` wires it into a Locust process (imports gevent lazily).
- ``merge_ledgers(dir)``: one ``ledger.jsonl`` sorted by ``t_start`` (pure file work), and the
  run's load summary (``MergeSummary``) counted while it is written, so nothing re-reads it.

Nothing here imports Locust or gevent at module level: the runner imports ``merge_ledgers`` from
inside pytest, where gevent must never be imported (it monkey-patches the world when Locust runs).

Outcome classification (the order matters, the first match wins):

1. no exception -> ``ok``.
2. the locustfile's own verdicts: ``BadBody`` -> ``bad_body``; ``UnexpectedStatus`` ->
   ``http_error``.
3. the transport error, after unwrapping geventhttpclient's ``RetriesExceeded(original=...)``
   (with ``max_retries=0`` it wraps every timeout and reset): connection refused -> ``refused``;
   a socket/gevent timeout or ETIMEDOUT -> ``timeout``; reset, broken pipe, aborted, a connection
   closed before a full answer (``HTTPConnectionClosed``), an unparseable/truncated answer
   (``HTTPParseError``) or an empty answer -> ``reset``. A transport error wins over a status
   that may already have arrived (headers then a cut body is a ``reset``, not an ``ok``).
4. an answer arrived (status > 0): a bad status (``BadStatusCode``) -> ``http_error``; any other
   check that failed on a full answer (``CatchResponseError``) -> ``bad_body``.
5. no answer and an error we do not know: ``reset`` (no complete answer arrived); the class name
   and message are kept in ``error`` so nothing is hidden.
"""
from __future__ import annotations

import errno
import heapq
import math
import os
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from zerodrop.records.ledger import LedgerRecord, failed, line_summary
from zerodrop.records.progress import ProcessProgress, parse_many

ENV_LEDGER_DIR = "ZERODROP_LEDGER_DIR"
ENV_LEDGER_OFF = "ZERODROP_LEDGER_OFF"  # "1": count progress only, write no records (benchmarks)
ENV_ROLE = "ZERODROP_ROLE"
MERGED_NAME = "ledger.jsonl"
FLUSH_INTERVAL_S = 0.5  # records reach the disk at least this often (the brief asks <= 1 s)
MAX_BUFFER = 5000       # and whenever this many are waiting: memory stays bounded at any rate
ERROR_MAX_CHARS = 200
MERGE_CHUNK = 200_000   # records sorted in memory at once by merge_ledgers
LATENCY_SAMPLE = 200_000  # latencies kept by the merge summary: plenty for a median
NO_RECORD_OUTCOME = "failed"  # ledger off: only whether the request raised is known


class BadBody(Exception):
    """A full answer with the expected status whose body is wrong (raised via catch_response)."""


class UnexpectedStatus(Exception):
    """A full answer with a status other than the one the request expects."""


_REFUSED_ERRNOS = {errno.ECONNREFUSED}
_TIMEOUT_ERRNOS = {errno.ETIMEDOUT}
_RESET_ERRNOS = {errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED, errno.ENOTCONN, errno.ESHUTDOWN}
# geventhttpclient's classes, matched by name so this module never imports gevent
_RESET_CLASS_NAMES = {"HTTPConnectionClosed", "HTTPParseError", "HTTPProtocolViolationError", "EmptyResponse",
                      "ProtocolError"}
_TIMEOUT_CLASS_NAMES = {"Timeout"}  # gevent.Timeout is a BaseException, not a TimeoutError
_STATUS_CLASS_NAMES = {"BadStatusCode", "LocustBadStatusCode"}


def _class_names(exc: BaseException) -> set[str]:
    return {k.__name__ for k in type(exc).__mro__}


def root_cause(exc: BaseException) -> BaseException:
    """Unwrap ``RetriesExceeded(original=...)`` (and chained causes) down to the transport error."""
    seen = 0
    while seen < 5:
        seen += 1
        inner = getattr(exc, "original", None)
        if isinstance(inner, BaseException):
            exc = inner
            continue
        break
    return exc


def transport_outcome(exc: BaseException) -> str | None:
    """``refused``/``timeout``/``reset`` when ``exc`` is a transport failure, else None."""
    names = _class_names(exc)
    code = getattr(exc, "errno", None)
    if getattr(exc, "keepalive_race", False) is True:  # load/http1.py's ConnectionEnded
        return "keepalive_race"
    if isinstance(exc, ConnectionRefusedError) or code in _REFUSED_ERRNOS:
        return "refused"
    if isinstance(exc, TimeoutError) or code in _TIMEOUT_ERRNOS or names & _TIMEOUT_CLASS_NAMES:
        return "timeout"
    if (isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError))
            or code in _RESET_ERRNOS or names & _RESET_CLASS_NAMES):
        return "reset"
    return None


def classify(status: int, exception: BaseException | None) -> str:
    """The outcome of one request; see the module docstring for the rules and their order."""
    if exception is None:
        return "ok" if status > 0 else "reset"
    if isinstance(exception, BadBody):
        return "bad_body"
    if isinstance(exception, UnexpectedStatus):
        return "http_error"
    root = root_cause(exception)
    outcome = transport_outcome(root)
    if outcome is not None:
        return outcome
    if status > 0:
        if _class_names(root) & _STATUS_CLASS_NAMES:
            return "http_error"
        return "bad_body"
    return "reset"


def describe(exception: BaseException | None) -> str:
    """``Class: message`` of the root cause, short enough for a ledger line."""
    if exception is None:
        return ""
    root = root_cause(exception)
    text = f"{type(root).__name__}: {root}" if str(root) else type(root).__name__
    if root is not exception:
        text = f"{type(exception).__name__} <- {text}"
    return text[:ERROR_MAX_CHARS]


def record_from_event(name: str, method: str, response_time: float, response: Any, context: dict | None,
                      exception: BaseException | None, start_time: float | None) -> LedgerRecord:
    """One ``LedgerRecord`` from the arguments of Locust's ``events.request``."""
    ctx = context or {}
    t_start = start_time if start_time is not None else time.time() - (response_time or 0) / 1000.0
    status = int(getattr(response, "status_code", 0) or 0)
    headers = getattr(response, "headers", None)
    if headers is not None:
        version = headers.get("X-App-Version") or ""
        color = headers.get("X-App-Color") or ""
        replica = headers.get("X-Replica") or ""
        request_id = headers.get("X-Request-Id") or ""
    else:
        version = color = replica = request_id = ""
    return LedgerRecord(
        t_start=t_start,
        t_end=t_start + (response_time or 0) / 1000.0,
        method=method,
        route=name,
        status=status,
        outcome=classify(status, exception),
        version=version,
        color=color,
        replica=replica,
        # the id we sent when no answer echoed it: still joins with the service's logs
        request_id=request_id or ctx.get("request_id", ""),
        error=describe(exception),
        payment_id=ctx.get("payment_id", ""),
        amount=ctx.get("amount", ""),
        idempotency_key=ctx.get("idempotency_key", ""),
        population=ctx.get("population", ""),
        kind=ctx.get("kind", ""),
        attempt=int(ctx.get("attempt", 1)),
        first_request_id=ctx.get("first_request_id", ""),
        planned=float(ctx.get("planned", 0.0)),
        conn=ctx.get("conn", ""),
        account=ctx.get("account", ""),
        balance=ctx.get("balance", ""),
    )


def record_line(record: LedgerRecord) -> str:
    """One ledger line: the record's own JSON (``LedgerRecord.to_json`` holds the format)."""
    return record.to_json()


class LedgerListener:
    """Buffers records and live counters for one Locust process; thread/greenlet-agnostic.

    ``on_request`` is the ``events.request`` listener. ``flush()`` appends the buffer to the
    process's ledger file; ``write_progress()`` atomically replaces the progress file. Both are
    called by a periodic greenlet (see ``install``) and on test_stop / quitting / exit.
    """

    def __init__(self, directory: Path | None, role: str, pid: int | None = None, write_records: bool = True):
        self.directory = directory
        self.role = role
        self.pid = pid if pid is not None else os.getpid()
        self.write_records = write_records and directory is not None
        self.ledger_path = directory / f"ledger-{role}-{self.pid}.jsonl" if directory else None
        self.progress_path = directory / f"progress-{role}-{self.pid}.json" if directory else None
        self._buffer: list[str] = []
        self._lock = threading.Lock()  # only contended when flushed from an atexit hook
        self.started = time.time()
        self.requests = 0
        self.failures = 0
        self.by_outcome: Counter[str] = Counter()
        self._buckets: dict[int, Counter[str]] = {}  # 100 ms bucket of t_end -> answers by colour
        self.cpu_warning = False
        self.cpu_usage = 0.0
        self.written = 0
        self._closed = False
        # the open-model schedule's own counters (load/locustfile.py's Engine keeps them here):
        # scheduled, late, missed_cap, max_inflight
        self.schedule: dict[str, int] = {}

    # -- the hot path -------------------------------------------------------------------------

    def on_request(self, request_type: str, name: str, response_time: float, response_length: int = 0,
                   response: Any = None, context: dict | None = None, exception: BaseException | None = None,
                   start_time: float | None = None, url: str | None = None, **_kw: Any) -> None:
        if not self.write_records:
            self._count_only(response, exception, start_time, response_time)
            return
        try:
            rec = record_from_event(name, request_type, response_time, response, context, exception, start_time)
        except Exception as exc:  # noqa: BLE001 - a listener fails soft but never loses the request
            rec = LedgerRecord(t_start=start_time or time.time(), t_end=time.time(), method=str(request_type),
                               route=str(name), status=0, outcome="reset",
                               error=f"ledger could not read the answer: {exc!r}"[:ERROR_MAX_CHARS])
        self._count(rec.outcome, rec.t_end, rec.color)
        buf = self._buffer
        buf.append(record_line(rec))
        if len(buf) >= MAX_BUFFER:
            self.flush()

    def _count_only(self, response: Any, exception: BaseException | None, start_time: float | None,
                    response_time: float) -> None:
        """Ledger off (benchmarks): the live counters only, no record built."""
        t_end = (start_time or time.time()) + (response_time or 0) / 1000.0
        headers = getattr(response, "headers", None)
        color = (headers.get("X-App-Color") if headers is not None else "") or ""
        self._count(outcome_without_record(exception), t_end, color)

    def _count(self, outcome: str, t_end: float, color: str) -> None:
        """The live counters behind the progress file: totals and answers by colour per 100 ms.
        ``failed(outcome)`` decides a failure, here as everywhere."""
        self.requests += 1
        if failed(outcome):
            self.failures += 1
        self.by_outcome[outcome] += 1
        key = int(t_end * 10)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = Counter()
        bucket[color or "-"] += 1

    # -- the periodic part --------------------------------------------------------------------

    def flush(self) -> int:
        """Append the buffered records to the ledger file; returns how many were written."""
        if not self.write_records:
            return 0
        with self._lock:
            if not self._buffer:
                return 0
            lines, self._buffer = self._buffer, []
            with open(self.ledger_path, "a", encoding="utf-8") as out:
                out.write("\n".join(lines))
                out.write("\n")
            self.written += len(lines)
            return len(lines)

    def last_second(self, now: float | None = None) -> tuple[int, dict[str, int]]:
        """Requests that ended in the last second, and by colour ("-": no answer)."""
        now = time.time() if now is None else now
        lo, hi = int((now - 1.0) * 10), int(now * 10)
        for key in [k for k in self._buckets if k < lo - 10]:  # keep 1 s of history beyond the window
            del self._buckets[key]
        total: Counter[str] = Counter()
        for key, counts in list(self._buckets.items()):
            if lo <= key < hi:
                total.update(counts)
        return sum(total.values()), dict(total)

    def progress(self, now: float | None = None) -> ProcessProgress:
        now = time.time() if now is None else now
        n_1s, by_color = self.last_second(now)
        return ProcessProgress(role=self.role, pid=self.pid, t=now, started=self.started,
                               requests=self.requests, failures=self.failures,
                               by_outcome=dict(self.by_outcome), last_second=n_1s,
                               last_second_by_color=by_color, written=self.written,
                               cpu_warning=self.cpu_warning, cpu_usage=self.cpu_usage,
                               scheduled=self.schedule.get("scheduled", 0),
                               late=self.schedule.get("late", 0),
                               missed_cap=self.schedule.get("missed_cap", 0),
                               missed_late=self.schedule.get("missed_late", 0),
                               max_inflight=self.schedule.get("max_inflight", 0))

    def write_progress(self) -> None:
        if self.progress_path is None:
            return
        tmp = self.progress_path.with_suffix(".tmp")
        tmp.write_text(self.progress().to_json(), encoding="utf-8")
        os.replace(tmp, self.progress_path)

    def tick(self) -> None:
        self.flush()
        self.write_progress()

    def close(self) -> None:
        """Final flush (idempotent; called from test_stop, quitting and atexit)."""
        try:
            self.tick()
        except OSError:
            pass


def outcome_without_record(exception: BaseException | None) -> str:
    """The outcome counted when no record is built (ledger off): a request failed when it
    raised; which way is not classified (that needs the record)."""
    return "ok" if exception is None else NO_RECORD_OUTCOME


def read_progress(directory: Path) -> list[ProcessProgress]:
    """Every Locust process's progress file in ``directory``; one replaced while read is
    skipped (the next poll reads it)."""
    texts = []
    for path in sorted(directory.glob("progress-*.json")):
        try:
            texts.append(path.read_text(encoding="utf-8"))
        except OSError:
            continue
    return parse_many(texts)


class LedgerTail:
    """The ledger of a run that is still going, read as it grows: every process's
    ``ledger-*.jsonl`` in ``directory`` from where the last read stopped, whole lines only (a
    line being appended is left for the next read). The processes flush every ~0.5 s, so a
    request is seen about that long after it ended. For judging while the load runs (a canary
    stage); the verdict itself reads the merged ledger at the end."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)
        self._offsets: dict[Path, int] = {}
        self.records: list[LedgerRecord] = []

    def read(self) -> list[LedgerRecord]:
        """The records appended since the last read (also kept in ``records``)."""
        new: list[LedgerRecord] = []
        for path in sorted(self.directory.glob("ledger-*.jsonl")):
            start = self._offsets.get(path, 0)
            try:
                with open(path, "rb") as f:
                    f.seek(start)
                    chunk = f.read()
            except OSError:
                continue
            end = chunk.rfind(b"\n") + 1
            for line in chunk[:end].splitlines():
                try:
                    new.append(LedgerRecord.from_json(line.decode("utf-8")))
                except (ValueError, TypeError, UnicodeDecodeError):
                    continue
            self._offsets[path] = start + end
        self.records.extend(new)
        return new

    def since(self, t: float) -> list[LedgerRecord]:
        """Every record so far that started at or after ``t`` (reads what is new first)."""
        self.read()
        return [r for r in self.records if r.t_start >= t]


def role_of(environment: Any) -> str:
    kind = type(getattr(environment, "runner", None)).__name__
    return {"MasterRunner": "master", "WorkerRunner": "worker", "LocalRunner": "standalone"}.get(
        kind, os.environ.get(ENV_ROLE, "standalone"))


def install(environment: Any, directory: Path | None) -> LedgerListener:
    """Wire a ``LedgerListener`` into a running Locust process (call from ``events.init``)."""
    import atexit

    import gevent

    role = role_of(environment)
    off = os.environ.get(ENV_LEDGER_OFF, "") == "1"
    if directory is not None:
        directory.mkdir(parents=True, exist_ok=True)
    listener = LedgerListener(directory, role, write_records=not off)
    events = environment.events
    if role != "master":  # the master makes no requests; its request events are worker summaries
        events.request.add_listener(listener.on_request)

    def on_cpu_warning(environment: Any = None, cpu_usage: float = 0.0, **_kw: Any) -> None:
        listener.cpu_warning = True
        listener.cpu_usage = max(listener.cpu_usage, float(cpu_usage or 0.0))

    events.cpu_warning.add_listener(on_cpu_warning)
    events.test_stop.add_listener(lambda **_kw: listener.close())
    events.quitting.add_listener(lambda **_kw: listener.close())
    atexit.register(listener.close)

    def periodic() -> None:
        while True:
            gevent.sleep(FLUSH_INTERVAL_S)
            try:
                listener.tick()
            except OSError as exc:  # a full disk must be loud, not a silent hole in the ledger
                environment.process_exit_code = 3
                import logging
                logging.getLogger("zerodrop.ledger").error("ledger write failed: %s", exc)

    if role != "master" or directory is not None:
        gevent.spawn(periodic)
    return listener


# -- merging --------------------------------------------------------------------------------


# a line on its way through the merge: (t_start, the line, t_end, failed), parsed once
_Parsed = tuple[float, str, float, bool]


def _parse(line: str) -> _Parsed | None:
    line = line.strip()
    if not line:
        return None
    try:
        t_start, t_end, is_failure = line_summary(line)
    except (ValueError, TypeError, KeyError):
        return None  # a torn last line (a killed writer) or garbage: not a record
    return t_start, line, t_end, is_failure


@dataclass(frozen=True)
class MergeSummary:
    """The merged ledger and what the load run's result needs from it, counted while the merge
    wrote it: requests, failures (``failed()``), first start, last end and a bounded sample
    of latencies (the first ``LATENCY_SAMPLE`` by start) for the median.

    ``os.fspath(summary)`` is the merged file's path, so ``open(merge_ledgers(d))`` works."""

    path: Path
    requests: int = 0
    failures: int = 0
    t_first: float | None = None   # the first request's t_start
    t_last: float | None = None    # the last request's t_end
    latency_sample: tuple[float, ...] = field(default=(), repr=False)  # seconds
    dropped_lines: int = 0         # torn or non-record lines left out of the merge
    t_last_start: float | None = None  # the last request's t_start

    def __fspath__(self) -> str:
        return str(self.path)

    @property
    def duration_s(self) -> float:
        """First start to last end; 0 without requests."""
        if not self.requests or self.t_first is None or self.t_last is None:
            return 0.0
        return self.t_last - self.t_first

    @property
    def start_span_s(self) -> float:
        """First start to last start: the span over which requests were SENT, which an open
        model holds to its schedule whatever the answers' latency; 0 with under 2 requests."""
        if self.requests < 2 or self.t_first is None or self.t_last_start is None:
            return 0.0
        return self.t_last_start - self.t_first

    @property
    def median_latency_s(self) -> float | None:
        if not self.latency_sample:
            return None
        ordered = sorted(self.latency_sample)
        return ordered[len(ordered) // 2]


class _SummaryTally:
    """Counts the merged records one by one for ``MergeSummary``; memory bounded by the sample."""

    def __init__(self) -> None:
        self.requests = self.failures = self.dropped = 0
        self.first, self.last, self.last_start = math.inf, -math.inf, -math.inf
        self.latencies: list[float] = []

    def add(self, t_start: float, t_end: float, is_failure: bool) -> None:
        self.requests += 1
        if is_failure:
            self.failures += 1
        if t_start < self.first:
            self.first = t_start
        if t_end > self.last:
            self.last = t_end
        if t_start > self.last_start:
            self.last_start = t_start
        if len(self.latencies) < LATENCY_SAMPLE:
            self.latencies.append(t_end - t_start)

    def summary(self, path: Path) -> MergeSummary:
        if not self.requests:
            return MergeSummary(path, dropped_lines=self.dropped)
        return MergeSummary(path, self.requests, self.failures, self.first, self.last,
                            tuple(self.latencies), self.dropped, self.last_start)


class _Runs:
    """Sorted runs of records for ``heapq.merge``, holding at most ``chunk`` records in memory
    across ALL files: a run that would exceed that is spilled, sorted, to a temporary file (an
    external sort, so memory stays bounded whatever the disorder or the size)."""

    def __init__(self, tmpdir: Path, chunk: int):
        self.tmpdir = tmpdir
        self.chunk = chunk
        self.in_memory = 0
        self.runs: list[Iterator[_Parsed]] = []
        self.dropped = 0  # torn or non-record lines of the processes' files
        self._n = 0

    def _spill(self, batch: list[_Parsed]) -> None:
        batch.sort(key=lambda x: x[0])
        self._n += 1
        p = self.tmpdir / f"run-{self._n}.jsonl"
        with open(p, "w", encoding="utf-8") as out:
            for parsed in batch:
                out.write(parsed[1])
                out.write("\n")
        self.runs.append(_read_run(p))

    def add_file(self, path: Path) -> None:
        batch: list[_Parsed] = []
        spilled = False
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                parsed = _parse(line)
                if parsed is None:
                    self.dropped += bool(line.strip())
                else:
                    batch.append(parsed)
                    if len(batch) >= self.chunk:
                        self._spill(batch)
                        batch = []
                        spilled = True
        if not batch:
            return
        if spilled or self.in_memory + len(batch) > self.chunk:
            self._spill(batch)
        else:
            batch.sort(key=lambda x: x[0])
            self.in_memory += len(batch)
            self.runs.append(iter(batch))


def _read_run(path: Path) -> Iterator[_Parsed]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            parsed = _parse(line)
            if parsed is not None:
                yield parsed


def merge_ledgers(directory: Path | str, chunk: int = MERGE_CHUNK) -> MergeSummary:
    """Merge ``ledger-*.jsonl`` of every Locust process into ``<dir>/ledger.jsonl``, sorted by
    ``t_start`` (ties keep file order). Returns the merged file's path (``.path``) with the load
    summary counted while writing it, so the run's result never reads the ledger again.

    Each per-process file is written in completion order, so it is only *nearly* sorted by start
    (a slow request lands after faster ones that started later). Chosen: an external sort —
    each file is cut into runs of at most ``chunk`` records, each run sorted in memory (spilled
    to a temp file when the file holds more than one run), and all runs of all files are merged
    with ``heapq.merge``. Memory is bounded by ``chunk`` records (~200k lines, ~60 MB) whatever
    the disorder or the size; a million records merge in ~11 s with ~100 MB peak RSS on the
    2-core dev machine (benchmarks/RESULTS.md). The one parse of each line that gives its sort
    key also gives the summary's fields, so counting the summary costs no second parse.
    Torn or non-JSON lines, and lines without the summary's fields, are dropped (and counted).
    Written to a temp file and renamed: a reader never sees half a merge.
    """
    directory = Path(directory)
    files = sorted(p for p in directory.glob("ledger-*.jsonl") if p.is_file())
    out_path = directory / MERGED_NAME
    with tempfile.TemporaryDirectory(prefix="merge-", dir=directory) as tmp:
        tmpdir = Path(tmp)
        runs = _Runs(tmpdir, chunk)
        for p in files:
            runs.add_file(p)
        partial = directory / (MERGED_NAME + ".part")
        with open(partial, "w", encoding="utf-8") as out:
            tally = _write_merged(out, heapq.merge(*runs.runs, key=lambda x: x[0]))
            tally.dropped = runs.dropped
        os.replace(partial, out_path)
    return tally.summary(out_path)


def _write_merged(out: Any, lines: Iterator[_Parsed]) -> _SummaryTally:
    """Write the merged lines, counting each record as it goes by from the fields its one
    parse already gave."""
    tally = _SummaryTally()
    for t_start, line, t_end, is_failure in lines:
        tally.add(t_start, t_end, is_failure)
        out.write(line)
        out.write("\n")
    return tally
