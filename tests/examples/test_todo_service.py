"""The example to-do service (examples/todo_service/app.py): its API, its idempotency, its
readiness, its graceful drain and each of its fault knobs, on real processes and real sockets.

Every process is started in its own session and its group is killed at teardown, whatever
happened. Timings are asserted with generous bounds only (a shared, noisy machine).
"""
from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.procs import wait_until

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "examples" / "todo_service" / "app.py"
PY = sys.executable
TOKEN = "secret-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

pytestmark = pytest.mark.slow


# -- helpers -------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Service:
    def __init__(self, proc: subprocess.Popen, port: int, log: Path, db_url: str):
        self.proc, self.port, self.log, self.db_url = proc, port, log, db_url

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def call(self, method: str, path: str, body=None, headers=None, auth: bool = True,
             raw: bytes | None = None):
        """One request on a new connection: (status, headers, JSON body)."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            hdrs = {**(AUTH if auth else {}), **(headers or {})}
            data = raw if raw is not None else (json.dumps(body).encode() if body is not None
                                                else None)
            if data is not None:
                hdrs.setdefault("Content-Type", "application/json")
            conn.request(method, path, body=data, headers=hdrs)
            resp = conn.getresponse()
            payload = resp.read()
            return resp.status, resp.headers, json.loads(payload) if payload else None
        finally:
            conn.close()

    def create(self, title="buy milk", priority=3, key=None):
        return self.call("POST", "/v1/todos", {"title": title, "priority": priority},
                         headers={"Request-Key": key} if key else None)

    def signal(self, sig=signal.SIGTERM) -> float:
        os.kill(self.proc.pid, sig)
        return time.monotonic()

    def ready_reason(self):
        try:
            status, _, body = self.call("GET", "/readyz", auth=False)
        except OSError:
            return None
        return status, body


@pytest.fixture
def start(tmp_path):
    """start(*args, migrate=True, db=None, **env) -> a running Service; all killed at teardown."""
    procs: list[subprocess.Popen] = []
    counter = iter(range(1000))

    def _start(*args: str, migrate: bool = True, db: Path | None = None, ready: bool = True,
               **env: str) -> Service:
        n = next(counter)
        db = db or tmp_path / "todo.db"
        db_url = f"sqlite:///{db}"
        base = {k: v for k, v in os.environ.items() if k != "PORT"}
        full_env = {**base, "DATABASE_URL": db_url, "APP_VERSION": "v1", "ZD_COLOR": "blue",
                    "REPLICA_NAME": f"replica-{n}", "API_TOKEN": TOKEN, "DRAIN_SECONDS": "1.0",
                    **env}
        if migrate:
            subprocess.run([PY, str(APP), "migrate"], env=full_env, check=True, timeout=30,
                           capture_output=True)
        for _attempt in range(3):  # a free port can be taken between finding and binding it
            port = free_port()
            log = tmp_path / f"replica-{n}-{port}.log"
            with open(log, "wb") as out:
                proc = subprocess.Popen([PY, str(APP), "serve", "--port", str(port), *args],
                                        env=full_env, stdin=subprocess.DEVNULL, stdout=out,
                                        stderr=subprocess.STDOUT, start_new_session=True)
            procs.append(proc)
            svc = Service(proc, port, log, db_url)

            def up():
                if proc.poll() is not None:
                    return "exited"
                reason = svc.ready_reason()
                if reason is None:
                    return None
                return "up" if (reason[0] == 200 or not ready) else None

            state = wait_until(up, 20, f"replica-{n} to answer /readyz")
            if state == "up":
                return svc
            if "in use" not in svc.output():
                raise AssertionError(f"the service exited with {proc.returncode}: {svc.output()}")
        raise AssertionError("no free port after 3 attempts")

    yield _start
    for proc in procs:
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:  # pragma: no cover - a SIGKILLed process is reaped
            pass


class RawConn:
    """A kept-alive HTTP/1.1 connection on a raw socket: send requests, read answers, and see
    exactly when the server closes it."""

    def __init__(self, port: int):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buf = b""

    def send(self, method: str, path: str, headers=None, body: bytes = b"") -> None:
        self.sock.sendall(self.head(method, path, headers, body) + body)

    @staticmethod
    def head(method, path, headers=None, body=b""):
        lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1",
                 f"Content-Length: {len(body)}"]
        lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("the server closed the connection")
        self.buf += chunk

    def response(self):
        """(status, headers with lower-case names, JSON body)."""
        while b"\r\n\r\n" not in self.buf:
            self._fill()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        length = int(headers["content-length"])
        while len(self.buf) < length:
            self._fill()
        body, self.buf = self.buf[:length], self.buf[length:]
        return status, headers, json.loads(body) if body else None

    def request(self, method, path, headers=None, body=b""):
        self.send(method, path, headers, body)
        return self.response()

    def closed_within(self, timeout: float) -> float | None:
        """Seconds until the server closed the connection (EOF or reset), None if still open."""
        t0 = time.monotonic()
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return time.monotonic() - t0
                self.buf += chunk
                if time.monotonic() - t0 > timeout:  # pragma: no cover - unexpected data
                    return None
        except socket.timeout:
            return None
        except ConnectionResetError:
            return time.monotonic() - t0
        finally:
            self.sock.settimeout(10)

    def close(self) -> None:
        self.sock.close()


# -- the API -------------------------------------------------------------------------------------
@pytest.fixture
def svc(start):
    return start()


def test_create_get_done_stats_and_headers(svc):
    status, headers, todo = svc.call("POST", "/v1/todos", {"title": "write tests", "priority": 2},
                                     headers={"X-Request-Id": "req-42"})
    assert status == 201, todo
    assert headers["Content-Type"] == "application/json"
    assert (headers["X-Version"], headers["X-Color"], headers["X-Served-By"],
            headers["X-Request-Id"]) == ("v1", "blue", "replica-0", "req-42")
    assert todo["id"].startswith("t_") and len(todo["id"]) == 34
    int(todo["id"][2:], 16)
    assert (todo["title"], todo["priority"], todo["done"]) == ("write tests", 2, False)
    assert todo["created_at"]

    assert svc.call("GET", f"/v1/todos/{todo['id']}")[::2] == (200, todo)
    status, _, done = svc.call("POST", f"/v1/todos/{todo['id']}/done")
    assert status == 200 and done == {**todo, "done": True}
    assert svc.call("GET", f"/v1/todos/{todo['id']}")[2]["done"] is True
    assert svc.call("GET", "/v1/stats")[::2] == (200, {"count": 1})
    assert svc.call("GET", "/v1/todos?key=nothing")[::2] == (200, {"items": []})
    assert svc.call("GET", "/healthz", auth=False)[::2] == (200, {"ok": True})
    assert svc.call("GET", "/livez", auth=False)[::2] == (200, {"alive": True})
    assert svc.call("GET", "/readyz", auth=False)[::2] == (200, {"ready": True, "version": "v1"})
    _, headers, _ = svc.call("GET", "/healthz", auth=False)
    assert headers.get("X-Request-Id") is None


def test_auth_errors_and_validation(svc):
    assert svc.call("GET", "/v1/stats", auth=False)[::2] == (401, {"error": "unauthorized"})
    assert svc.call("GET", "/v1/stats", headers={"Authorization": "Bearer nope"})[0] == 401
    assert svc.call("GET", "/v1/nowhere", auth=False)[0] == 401
    assert svc.call("POST", "/v1/todos", auth=False,
                    body={"title": "x", "priority": 1})[0] == 401

    bad = [b"not json", b"", b"[1, 2]", b'"text"', b"{}", b'{"title": "x"}',
           b'{"title": "", "priority": 1}', json.dumps({"title": "x" * 201, "priority": 1}).encode(),
           b'{"title": 5, "priority": 1}', b'{"title": "x", "priority": true}',
           b'{"title": "x", "priority": "3"}', b'{"title": "x", "priority": 0}',
           b'{"title": "x", "priority": 6}', b'{"title": "x", "priority": 2.0}']
    for raw in bad:
        status, _, body = svc.call("POST", "/v1/todos", raw=raw)
        assert status == 422 and isinstance(body["error"], str), (raw, status, body)
    status, _, body = svc.create(key="k" * 101)
    assert status == 422 and "Request-Key" in body["error"]
    assert svc.create(title="x" * 200, priority=5)[0] == 201
    assert svc.call("GET", "/v1/stats")[2] == {"count": 1}  # nothing invalid was stored

    assert svc.call("GET", "/v1/todos/t_" + "0" * 32)[::2] == (404, {"error": "not found"})
    assert svc.call("POST", "/v1/todos/t_nope/done")[0] == 404
    assert svc.call("GET", "/nowhere", auth=False)[0] == 404
    assert svc.call("GET", "/v1/nowhere")[0] == 404
    status, headers, body = svc.call("DELETE", "/v1/todos")
    assert (status, body, headers["Allow"]) == (405, {"error": "method not allowed"}, "GET, POST")
    assert svc.call("POST", "/healthz", auth=False, body={})[0] == 405
    assert svc.call("GET", "/v1/todos/t_x/done")[0] == 405
    assert svc.call("PUT", "/v1/stats")[0] == 405


def test_http_keep_alive_close_and_chunked(svc):
    conn = RawConn(svc.port)
    try:
        for _ in range(3):  # HTTP/1.1 keeps the connection open by default
            status, headers, _ = conn.request("GET", "/healthz")
            assert status == 200 and headers.get("connection") != "close"
        status, headers, _ = conn.request("GET", "/healthz", {"Connection": "close"})
        assert status == 200 and headers["connection"] == "close"
        assert conn.closed_within(5) is not None
    finally:
        conn.close()

    conn = RawConn(svc.port)
    try:
        conn.sock.sendall(b"POST /v1/todos HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                          b"Authorization: Bearer " + TOKEN.encode() + b"\r\n\r\n"
                          b"5\r\nhello\r\n0\r\n\r\n")
        status, headers, body = conn.response()
        assert status == 411 and headers["connection"] == "close" and body["error"]
        assert conn.closed_within(5) is not None
    finally:
        conn.close()

    conn = RawConn(svc.port)
    try:
        conn.sock.sendall(b"NONSENSE\r\n\r\n")
        assert conn.response()[0] == 400
    finally:
        conn.close()


# -- idempotency ---------------------------------------------------------------------------------
def test_same_key_twice_is_the_same_todo(svc):
    status, _, first = svc.create(title="first", key="key-1")
    assert status == 201
    status, _, again = svc.create(title="another body", priority=5, key="key-1")
    assert status == 201 and again == first
    assert svc.call("GET", "/v1/todos?key=key-1")[2] == {"items": [first]}
    assert svc.call("GET", "/v1/stats")[2] == {"count": 1}


def test_concurrent_posts_with_one_key_make_one_row_across_two_processes(start, tmp_path):
    a = start()
    b = start(migrate=False, ZD_COLOR="green")
    rounds, per_round = 5, 6
    for r in range(rounds):
        key = f"race-{r}"
        barrier = threading.Barrier(per_round, timeout=10)
        results: list = [None] * per_round

        def post(i):
            target = (a, b)[i % 2]
            barrier.wait()
            results[i] = target.create(title=f"t{i}", key=key)

        threads = [threading.Thread(target=post, args=(i,)) for i in range(per_round)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert all(res is not None and res[0] == 201 for res in results), results
        assert len({res[2]["id"] for res in results}) == 1, results
        assert len(a.call("GET", f"/v1/todos?key={key}")[2]["items"]) == 1
    assert b.call("GET", "/v1/stats")[2] == {"count": rounds}


# -- readiness -----------------------------------------------------------------------------------
def test_readiness_503_until_the_schema_exists(start, tmp_path):
    db = tmp_path / "empty.db"
    sqlite3.connect(db).close()
    svc = start(migrate=False, db=db, ready=False)
    assert svc.call("GET", "/readyz", auth=False)[::2] == (
        503, {"ready": False, "reason": "database: schema missing"})
    assert svc.call("GET", "/healthz", auth=False)[0] == 200
    status, _, body = svc.create()
    assert status == 503 and body["error"].startswith("database: schema missing")
    assert svc.call("GET", "/v1/stats")[0] == 503
    with sqlite3.connect(db) as c:  # serve created nothing
        assert c.execute("SELECT count(*) FROM sqlite_master WHERE name = 'todos'").fetchone() \
            == (0,)

    subprocess.run([PY, str(APP), "migrate"], env={**os.environ, "DATABASE_URL": svc.db_url},
                   check=True, timeout=30, capture_output=True)
    wait_until(lambda: svc.call("GET", "/readyz", auth=False)[0] == 200, 10, "ready after migrate")
    assert svc.create()[0] == 201


def test_readiness_503_when_the_database_file_is_missing(start, tmp_path):
    svc = start(migrate=False, db=tmp_path / "absent" / "x.db", ready=False)
    status, _, body = svc.call("GET", "/readyz", auth=False)
    assert status == 503 and body["reason"].startswith("database: schema missing")
    assert not (tmp_path / "absent" / "x.db").exists()


# -- the drain -----------------------------------------------------------------------------------
def test_graceful_drain(start):
    drain = 2.5
    svc = start(DRAIN_SECONDS=str(drain))
    idle = RawConn(svc.port)                 # kept alive, then idle across SIGTERM
    inflight = RawConn(svc.port)             # a request half sent when SIGTERM arrives
    try:
        assert idle.request("GET", "/healthz")[0] == 200
        assert inflight.request("GET", "/healthz")[0] == 200
        body = json.dumps({"title": "in flight", "priority": 1}).encode()
        head = RawConn.head("POST", "/v1/todos", AUTH, body)
        inflight.sock.sendall(head[:20])

        sigterm = svc.signal()
        wait_until(lambda: svc.ready_reason() == (503, {"ready": False, "reason": "draining"}),
                   5, "readyz 503 draining")

        # the listener still accepts; a new connection gets its answer with Connection: close
        fresh = RawConn(svc.port)
        try:
            status, headers, _ = fresh.request("GET", "/v1/stats", AUTH)
            assert status == 200 and headers["connection"] == "close"
            assert fresh.closed_within(5) is not None
        finally:
            fresh.close()

        # the request in flight at SIGTERM is answered, with Connection: close, then closed
        inflight.sock.sendall(head[20:] + body)
        status, headers, todo = inflight.response()
        assert status == 201 and headers["connection"] == "close"
        assert inflight.closed_within(5) is not None

        # the idle kept-alive connection is closed by the server ~0.5 s after it went idle,
        # well before the drain window ends
        closed = idle.closed_within(drain + 5)
        assert closed is not None, "the idle connection was never closed"
        assert time.monotonic() - sigterm < 1.5 + 0.5, "idle connection closed too late"

        code = svc.proc.wait(drain + 15)
        elapsed = time.monotonic() - sigterm
        assert code == 0, svc.output()
        assert drain * 0.8 <= elapsed <= drain + 10, elapsed
    finally:
        idle.close()
        inflight.close()
    out = svc.output()
    assert "listening" in out and "draining" in out and "stopped" in out
    # the answer in flight was durable
    with sqlite3.connect(svc.db_url.removeprefix("sqlite:///")) as c:
        assert c.execute("SELECT title FROM todos WHERE id = ?", (todo["id"],)).fetchone() \
            == ("in flight",)


def test_sigint_drains_and_a_second_signal_cuts_the_drain_short(start):
    svc = start(DRAIN_SECONDS="60")
    t0 = svc.signal(signal.SIGINT)
    wait_until(lambda: svc.ready_reason() == (503, {"ready": False, "reason": "draining"}),
               5, "readyz 503 draining after SIGINT")
    assert svc.proc.poll() is None
    svc.signal(signal.SIGTERM)
    assert svc.proc.wait(15) == 0
    assert time.monotonic() - t0 < 15


# -- the fault knobs -----------------------------------------------------------------------------
def test_fault_lose_writes(start):
    svc = start("--fault", "lose_writes")
    made = []
    for i in range(10):
        status, _, todo = svc.create(title=f"todo {i}")
        assert status == 201
        made.append(todo)
    lost = [t for t in made if svc.call("GET", f"/v1/todos/{t['id']}")[0] == 404]
    assert len(lost) >= 1
    assert svc.call("GET", "/v1/stats")[2]["count"] == 10 - len(lost)


def test_fault_ignore_key(start):
    svc = start("--fault", "ignore_key")
    first, second = svc.create(key="dup")[2], svc.create(key="dup")[2]
    assert first["id"] != second["id"]
    items = svc.call("GET", "/v1/todos?key=dup")[2]["items"]
    assert sorted(t["id"] for t in items) == sorted([first["id"], second["id"]])


def test_fault_exit_on_sigterm(start):
    svc = start("--fault", "exit_on_sigterm", DRAIN_SECONDS="10")
    t0 = svc.signal()
    assert svc.proc.wait(10) == 0
    assert time.monotonic() - t0 < 1.5   # no drain at all (the drain would take 10 s)
    assert "stopped" not in svc.output()


def test_fault_abandon_idle(start):
    drain = 2.5
    svc = start("--fault", "abandon_idle", DRAIN_SECONDS=str(drain))
    idle = RawConn(svc.port)
    try:
        assert idle.request("GET", "/healthz")[0] == 200
        sigterm = svc.signal()
        wait_until(lambda: svc.ready_reason() == (503, {"ready": False, "reason": "draining"}),
                   5, "readyz 503 draining")
        assert idle.closed_within(1.2) is None, "the idle connection was closed in the drain"
        assert time.monotonic() - sigterm < drain, "the machine is too slow for this check"
        status, headers, _ = idle.request("GET", "/healthz")
        assert status == 200 and headers.get("connection") != "close"
        assert idle.closed_within(drain + 10) is not None   # the process goes, closing all
        assert svc.proc.wait(15) == 0
    finally:
        idle.close()


def test_fault_wrong_title(start):
    svc = start("--fault", "wrong_title")
    made = []
    for i in range(8):
        status, _, todo = svc.create(title=f"title {i}")
        assert status == 201 and todo["title"] == f"title {i}"
        made.append(todo)
    read = [svc.call("GET", f"/v1/todos/{t['id']}")[2]["title"] for t in made]
    wrong = [(t["title"], r) for t, r in zip(made, read) if t["title"] != r]
    assert wrong and all(r == f"{sent} (edited)" for sent, r in wrong)


def test_faults_only_for_their_color(start):
    svc = start("--fault", "ignore_key", "--fault", "lose_writes", "--fault", "wrong_title",
                "--fault-color", "green", ZD_COLOR="blue")
    assert svc.create(key="k")[2] == svc.create(key="k")[2]
    made = [svc.create(title=f"t{i}")[2] for i in range(10)]
    for t in made:
        assert svc.call("GET", f"/v1/todos/{t['id']}")[::2] == (200, t)
    assert "faults=none" in svc.output()

    green = start("--fault", "ignore_key", "--fault-color", "green", migrate=False,
                  ZD_COLOR="green")
    assert green.create(key="g")[2]["id"] != green.create(key="g")[2]["id"]


def test_unknown_fault_is_one_line_and_exit_2(tmp_path):
    result = subprocess.run([PY, str(APP), "serve", "--port", "0", "--fault", "melt"],
                            env={**os.environ, "DATABASE_URL": f"sqlite:///{tmp_path}/x.db"},
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert len(result.stderr.strip().splitlines()) == 1 and "melt" in result.stderr
