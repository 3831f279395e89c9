"""The ledger's pure parts: classification, record lines, the listener's buffer and progress
file, and the merge (torn lines, unsorted files, spilling to keep memory bounded)."""
from __future__ import annotations

import io
import random
import socket
import struct
import threading
from pathlib import Path

import pytest

from zerodrop.load import ledger
from zerodrop.load.ledger import (BadBody, LedgerListener, MergeSummary, UnexpectedStatus, classify,
                                  merge_ledgers, read_progress)
from zerodrop.records.ledger import LedgerRecord, failed, read_records, write_records
from zerodrop.records.progress import ProcessProgress

from .standins import closed_port


# -- classification with real socket errors -----------------------------------------------------------

def test_real_refused_connection_is_refused():
    with pytest.raises(OSError) as info:
        socket.create_connection(("127.0.0.1", closed_port()), timeout=2)
    assert classify(0, info.value) == "refused"
    assert ledger.describe(info.value).startswith("ConnectionRefusedError")


def _server(action):
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)

    def run():
        conn, _ = srv.accept()
        conn.recv(1024)
        action(conn)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    return srv, t


def test_real_reset_by_peer_is_reset():
    def rst(conn):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()

    srv, t = _server(rst)
    c = socket.create_connection(srv.getsockname(), timeout=2)
    c.sendall(b"GET / HTTP/1.1\r\n\r\n")
    t.join(2)
    with pytest.raises(OSError) as info:
        c.recv(1024)
        c.sendall(b"x" * 100000)  # in case recv saw a FIN first
        c.recv(1024)
    c.close()
    srv.close()
    assert classify(0, info.value) == "reset"


def test_real_socket_timeout_is_timeout():
    held = []
    srv, t = _server(held.append)
    c = socket.create_connection(srv.getsockname(), timeout=2)
    c.sendall(b"GET / HTTP/1.1\r\n\r\n")
    c.settimeout(0.2)
    with pytest.raises(OSError) as info:
        c.recv(1024)
    c.close()
    srv.close()
    assert classify(0, info.value) == "timeout"


def test_own_verdicts_and_status_rules():
    assert classify(200, None) == "ok"
    assert classify(0, None) == "reset"  # no answer and no error cannot be a success
    assert classify(201, BadBody("wrong amount")) == "bad_body"
    assert classify(503, UnexpectedStatus("HTTP 503, expected 200")) == "http_error"
    # a transport error wins over a status that had already arrived (headers, then a cut body)
    assert classify(200, ConnectionResetError(104, "Connection reset by peer")) == "reset"
    assert classify(0, BrokenPipeError(32, "Broken pipe")) == "reset"
    # an unknown failure on a full answer is a failed body check, never ok
    assert classify(200, ValueError("check failed")) == "bad_body"
    assert classify(0, RuntimeError("who knows")) == "reset"


def test_wrapped_transport_errors_are_unwrapped():
    class RetriesExceeded(Exception):  # geventhttpclient's wrapper carries the cause in .original
        def __init__(self, original):
            super().__init__("retries exceeded")
            self.original = original

    assert classify(0, RetriesExceeded(TimeoutError("timed out"))) == "timeout"
    assert classify(0, RetriesExceeded(ConnectionRefusedError(111, "refused"))) == "refused"
    assert ledger.describe(RetriesExceeded(TimeoutError("timed out"))) == "RetriesExceeded <- TimeoutError: timed out"


# -- records --------------------------------------------------------------------------------------

def _rec(t: float, **kw) -> LedgerRecord:
    base = dict(t_start=t, t_end=t + 0.01, method="GET", route="/health", status=200, outcome="ok")
    base.update(kw)
    return LedgerRecord(**base)


def test_record_line_is_exactly_to_json():
    r = _rec(1795684656.7682579, version="v1", color="blue", replica="r0", request_id="abc", error="e: x\"y",
             payment_id="pay_1", amount="12.30", idempotency_key="k")
    assert ledger.record_line(r) == r.to_json()
    assert list(read_records([ledger.record_line(r)])) == [r]


class _Resp:
    def __init__(self, status: int, headers: dict | None):
        self.status_code = status
        self.headers = headers


def test_listener_builds_records_from_request_events(tmp_path: Path):
    lst = LedgerListener(tmp_path, "standalone", pid=1)
    lst.on_request("POST", "/api/payments", 12.5,
                   response=_Resp(201, {"X-App-Version": "v2", "X-App-Color": "green", "X-Replica": "g-1",
                                        "X-Request-Id": "rid-1"}),
                   context={"request_id": "rid-1", "amount": "12.30", "idempotency_key": "key-1",
                            "payment_id": "pay_1"},
                   exception=None, start_time=1000.0)
    lst.on_request("POST", "/api/payments", 3.0, response=_Resp(0, None),
                   context={"request_id": "rid-2", "amount": "5.00", "idempotency_key": "key-2"},
                   exception=ConnectionRefusedError(111, "Connection refused"), start_time=1000.5)
    assert lst.flush() == 2
    a, b = list(read_records((tmp_path / "ledger-standalone-1.jsonl").read_text().splitlines()))
    assert (a.outcome, a.version, a.color, a.replica, a.request_id) == ("ok", "v2", "green", "g-1", "rid-1")
    assert (a.payment_id, a.amount, a.idempotency_key) == ("pay_1", "12.30", "key-1")
    assert a.t_start == 1000.0 and a.t_end == pytest.approx(1000.0125)
    # a failed creation keeps its key and amount (the payment may exist) and the id we sent
    assert (b.outcome, b.status, b.idempotency_key, b.amount, b.request_id) == ("refused", 0, "key-2", "5.00", "rid-2")
    assert b.error.startswith("ConnectionRefusedError")


def test_listener_buffer_is_bounded_and_progress_is_atomic(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(ledger, "MAX_BUFFER", 100)
    lst = LedgerListener(tmp_path, "worker", pid=7)
    for i in range(250):
        lst.on_request("GET", "/health", 1.0, response=_Resp(200, {"X-App-Color": "blue" if i % 5 else "green"}),
                       start_time=2000.0 + i / 1000)
        assert len(lst._buffer) < 100  # flushed whenever it fills: memory bounded at any rate
    assert lst.written == 200
    n, by_color = lst.last_second(now=2000.0 + 0.25 + 0.5)
    assert n == 250 and by_color == {"blue": 200, "green": 50}
    assert lst.last_second(now=2010.0) == (0, {})
    assert lst._buckets == {}  # old buckets are dropped: bounded too
    lst.write_progress()
    prog = ProcessProgress.from_json((tmp_path / "progress-worker-7.json").read_text())
    assert (prog.role, prog.pid, prog.requests, prog.failures, prog.written) == ("worker", 7, 250, 0, 200)
    assert not list(tmp_path.glob("*.tmp"))
    assert read_progress(tmp_path) == [prog]  # the one reader the runner and the pod use


def test_listener_without_records_still_counts(tmp_path: Path):
    lst = LedgerListener(tmp_path, "standalone", pid=3, write_records=False)
    lst.on_request("GET", "/health", 1.0, response=_Resp(500, {}), exception=UnexpectedStatus("HTTP 500"),
                   start_time=1.0)
    lst.on_request("GET", "/health", 1.0, response=_Resp(200, {"X-App-Color": "blue"}), start_time=1.0)
    lst.close()
    assert lst.requests == 2 and lst.failures == 1
    assert dict(lst.by_outcome) == {"failed": 1, "ok": 1}
    assert not list(tmp_path.glob("ledger-*"))


def test_live_counters_count_a_failure_exactly_as_failed_decides(tmp_path: Path):
    """Every outcome but ok is a failure in the progress file, as in the verdict."""
    lst = LedgerListener(tmp_path, "standalone", pid=4)
    for outcome_status, exc in ((200, None), (503, UnexpectedStatus("HTTP 503")),
                                (200, BadBody("wrong")), (0, ConnectionRefusedError(111, "refused"))):
        lst.on_request("GET", "/health", 1.0, response=_Resp(outcome_status, {}), exception=exc,
                       start_time=5.0)
    snapshot = lst.progress(now=5.5)
    assert isinstance(snapshot, ProcessProgress)
    assert snapshot.requests == 4
    assert snapshot.failures == sum(n for o, n in snapshot.by_outcome.items() if failed(o)) == 3
    assert snapshot.by_outcome == {"ok": 1, "http_error": 1, "bad_body": 1, "refused": 1}


# -- merge ------------------------------------------------------------------------------------------

def _write(path: Path, records, torn: str = "") -> None:
    buf = io.StringIO()
    write_records(buf, records)
    path.write_text(buf.getvalue() + torn)


def _t_starts(path: Path) -> list[float]:
    return [r.t_start for r in read_records(path.read_text().splitlines())]


def test_merge_sorts_unsorted_files_and_drops_torn_lines(tmp_path: Path):
    rng = random.Random(7)
    a = [_rec(100 + rng.random() * 10, replica="a") for _ in range(300)]
    b = [_rec(100 + rng.random() * 10, replica="b") for _ in range(200)]
    _write(tmp_path / "ledger-worker-1.jsonl", a, torn='{"t_start":105.0,"t_end":1')  # killed writer
    _write(tmp_path / "ledger-worker-2.jsonl", b, torn="not json at all\n\n")
    (tmp_path / "progress-worker-1.json").write_text("{}")  # not a ledger: ignored
    merged = merge_ledgers(tmp_path)
    out = merged.path
    assert out == tmp_path / "ledger.jsonl"
    starts = _t_starts(out)
    assert len(starts) == 500
    assert starts == sorted(starts)
    assert sorted(starts) == sorted(r.t_start for r in a + b)
    assert not (tmp_path / "ledger.jsonl.part").exists()
    assert not list(tmp_path.glob("merge-*"))
    # merging again (ledger.jsonl is not an input) gives the same file
    assert merge_ledgers(tmp_path).path.read_text() == out.read_text()


def test_merge_spills_runs_so_memory_stays_bounded(tmp_path: Path):
    rng = random.Random(11)
    files = []
    for w in range(3):
        recs = sorted((_rec(rng.random() * 100, replica=f"w{w}") for _ in range(1000)), key=lambda r: r.t_end)
        _write(tmp_path / f"ledger-worker-{w}.jsonl", recs)
        files.append(recs)
    runs = ledger._Runs(tmp_path, chunk=64)
    for w in range(3):
        runs.add_file(tmp_path / f"ledger-worker-{w}.jsonl")
    assert runs.in_memory <= 64 and len(runs.runs) >= 3 * (1000 // 64)
    out = merge_ledgers(tmp_path, chunk=64).path
    starts = _t_starts(out)
    assert len(starts) == 3000 and starts == sorted(starts)


def test_merge_of_empty_dir_gives_empty_ledger(tmp_path: Path):
    merged = merge_ledgers(tmp_path)
    assert merged.path.read_text() == ""
    assert (merged.requests, merged.duration_s, merged.median_latency_s) == (0, 0.0, None)


def test_merge_keeps_file_order_for_equal_starts(tmp_path: Path):
    _write(tmp_path / "ledger-worker-1.jsonl", [_rec(5.0, replica="first"), _rec(5.0, replica="second")])
    out = merge_ledgers(tmp_path).path
    assert [r.replica for r in read_records(out.read_text().splitlines())] == ["first", "second"]


def test_merge_counts_the_load_summary_while_it_writes(tmp_path: Path):
    """What the run's result needs comes out of the merge: no second read of the ledger."""
    a = [_rec(10.0, t_end=10.5), _rec(12.0, t_end=12.1, outcome="reset", status=0)]
    b = [_rec(11.0, t_end=13.0, outcome="http_error", status=503), _rec(9.0, t_end=9.2)]
    _write(tmp_path / "ledger-worker-1.jsonl", a)
    _write(tmp_path / "ledger-worker-2.jsonl", b, torn='{"t_start": 20.0}\n')  # a key, no record
    merged = merge_ledgers(tmp_path)
    assert isinstance(merged, MergeSummary)
    assert (merged.requests, merged.failures, merged.dropped_lines) == (4, 2, 1)
    assert (merged.t_first, merged.t_last) == (9.0, 13.0)
    assert merged.duration_s == pytest.approx(4.0)
    assert merged.median_latency_s == pytest.approx(0.5)  # of 0.2, 0.5, 2.0, 0.1
    assert len(_t_starts(merged.path)) == 4
    with open(merged) as f:  # os.fspath: still usable where the merged file's path was
        assert len(f.readlines()) == 4


def test_merge_summary_sample_is_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(ledger, "LATENCY_SAMPLE", 10)
    _write(tmp_path / "ledger-worker-1.jsonl", [_rec(float(i)) for i in range(50)])
    merged = merge_ledgers(tmp_path)
    assert merged.requests == 50 and len(merged.latency_sample) == 10
