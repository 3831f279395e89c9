#!/usr/bin/env python3
"""A small to-do API: another team's service, written with the standard library only.

It exists to show that zerodrop can judge a blue/green switch of an app that was not written
for zerodrop. It is a real service (HTTP/1.1 keep-alive, SQLite shared by several processes,
idempotent creates, a graceful drain on SIGTERM) with fault knobs that break it on purpose.

    python app.py migrate                      # create the schema (idempotent), exit 0
    python app.py serve --port 8123            # serve until SIGTERM/SIGINT, then drain, exit 0
    python app.py serve --port 8123 --fault lose_writes --fault-color green

Environment: PORT, APP_VERSION ("dev"), ZD_COLOR (""), REPLICA_NAME (hostname-pid),
DATABASE_URL (sqlite:///./todo.db; an absolute path is sqlite:////abs/path.db),
DRAIN_SECONDS (1.0), API_TOKEN (else ZD_TOKEN, the token zerodrop's local platform hands every
replica; else "test-token"). See README.md next to this file.
"""
from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import email.utils
import hmac
import json
import os
import signal
import socket
import sqlite3
import sys
import threading
import urllib.parse
import uuid
from datetime import datetime, timezone

FAULTS = {
    "lose_writes": "every 5th new todo is answered 201 but rolled back",
    "ignore_key": "the Request-Key is stored but not enforced: every POST makes a new row",
    "exit_on_sigterm": "SIGTERM exits at once, no drain",
    "abandon_idle": "the drain neither closes idle keep-alive connections nor sends Connection: close",
    "wrong_title": "every 4th new todo is stored with ' (edited)' appended to its title",
}

IDLE_CLOSE_S = 0.5          # during the drain, a connection idle this long is closed
INFLIGHT_WAIT_S = 10.0      # after the drain window, how long in-flight requests may take
READ_TIMEOUT_S = 30.0       # a started request must arrive completely within this
WRITE_TIMEOUT_S = 30.0
MAX_HEAD = 64 * 1024
MAX_BODY = 1024 * 1024
MAX_TITLE = 200
MAX_KEY = 100

REASONS = {100: "Continue", 200: "OK", 201: "Created", 400: "Bad Request", 401: "Unauthorized",
           404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
           411: "Length Required", 413: "Content Too Large", 422: "Unprocessable Content",
           431: "Request Header Fields Too Large", 500: "Internal Server Error",
           501: "Not Implemented", 503: "Service Unavailable",
           505: "HTTP Version Not Supported"}


def log(line: str) -> None:
    print(line, flush=True)


def die(message: str, code: int) -> None:
    print(message, file=sys.stderr, flush=True)
    sys.exit(code)


def database_path(url: str) -> str:
    """``sqlite:///PATH`` -> PATH (``sqlite:////abs/x.db`` is absolute, ``sqlite:///x.db`` relative)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or len(url) == len(prefix):
        raise ValueError(f"DATABASE_URL={url!r} is not sqlite:///PATH")
    return os.path.abspath(url[len(prefix):])


# -- the database --------------------------------------------------------------------------------
SCHEMA = """
CREATE TABLE IF NOT EXISTS todos (
    id          TEXT PRIMARY KEY,
    title       TEXT NOT NULL,
    priority    INTEGER NOT NULL,
    done        INTEGER NOT NULL DEFAULT 0,
    idem_key    TEXT UNIQUE NULL,      -- the enforced idempotency key
    request_key TEXT NULL,             -- the Request-Key as sent (what ?key= searches)
    created_at  TEXT NOT NULL
)"""
COLUMNS = "id, title, priority, done, created_at"


class SchemaMissing(Exception):
    pass


def connect(path: str, create: bool) -> sqlite3.Connection:
    if create:
        conn = sqlite3.connect(path, timeout=5.0, isolation_level=None, check_same_thread=False)
    else:  # serve never creates the file: a missing file is a missing schema
        if not os.path.exists(path):
            raise SchemaMissing(f"no database file at {path}")
        uri = "file:" + urllib.parse.quote(path) + "?mode=rw"
        conn = sqlite3.connect(uri, uri=True, timeout=5.0, isolation_level=None,
                               check_same_thread=False)
    try:
        conn.execute("PRAGMA busy_timeout = 5000")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = FULL")   # a commit is on disk before 201 is sent
    except BaseException:
        conn.close()
        raise
    return conn


def migrate(path: str) -> None:
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    conn = connect(path, create=True)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(SCHEMA)
        columns = {row[1] for row in conn.execute("PRAGMA table_info(todos)")}
        if "request_key" not in columns:
            conn.execute("ALTER TABLE todos ADD COLUMN request_key TEXT NULL")
        conn.execute("CREATE INDEX IF NOT EXISTS todos_request_key ON todos (request_key)")
        conn.execute("COMMIT")
        count = conn.execute("SELECT count(*) FROM todos").fetchone()[0]
    finally:
        conn.close()
    log(f"migrate: table todos ready in {path} ({count} rows, journal_mode=wal)")


def todo_json(row) -> dict:
    return {"id": row[0], "title": row[1], "priority": row[2], "done": bool(row[3]),
            "created_at": row[4]}


class Store:
    """The todos table. Each DB worker thread has its own connection; writes take the write
    lock up front (BEGIN IMMEDIATE) and commit before the answer is sent."""

    def __init__(self, path: str, faults: set[str]):
        self.path = path
        self.faults = faults
        self.local = threading.local()
        self.executor = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="db")
        self.new_count = 0
        self.count_lock = threading.Lock()

    async def run(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = connect(self.path, create=False)
        return conn

    def _write(self, fn):
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            return fn(conn)
        finally:
            if conn.in_transaction:
                conn.execute("ROLLBACK")

    def check(self) -> None:
        self._conn().execute("SELECT 1 FROM todos LIMIT 1").fetchall()

    def create(self, title: str, priority: int, key: str | None) -> dict:
        def work(conn):
            tid = "t_" + uuid.uuid4().hex
            now = datetime.now(timezone.utc).isoformat(timespec="microseconds")
            enforced = None if "ignore_key" in self.faults else key
            cur = conn.execute(
                "INSERT INTO todos (id, title, priority, done, idem_key, request_key, created_at)"
                " VALUES (?, ?, ?, 0, ?, ?, ?) ON CONFLICT (idem_key) DO NOTHING",
                (tid, title, priority, enforced, key, now))
            if cur.rowcount == 0:  # the key is taken: answer with the todo it made first
                row = conn.execute(f"SELECT {COLUMNS} FROM todos WHERE idem_key = ?",
                                   (key,)).fetchone()
                conn.execute("COMMIT")
                return todo_json(row)
            with self.count_lock:
                self.new_count += 1
                n = self.new_count
            if "wrong_title" in self.faults and n % 4 == 0:
                conn.execute("UPDATE todos SET title = title || ' (edited)' WHERE id = ?", (tid,))
            if "lose_writes" in self.faults and n % 5 == 0:
                conn.execute("ROLLBACK")
            else:
                conn.execute("COMMIT")
            return {"id": tid, "title": title, "priority": priority, "done": False,
                    "created_at": now}
        return self._write(work)

    def get(self, tid: str) -> dict | None:
        row = self._conn().execute(f"SELECT {COLUMNS} FROM todos WHERE id = ?", (tid,)).fetchone()
        return todo_json(row) if row else None

    def by_key(self, key: str) -> list[dict]:
        rows = self._conn().execute(
            f"SELECT {COLUMNS} FROM todos WHERE request_key = ? ORDER BY created_at, rowid",
            (key,)).fetchall()
        return [todo_json(r) for r in rows]

    def mark_done(self, tid: str) -> dict | None:
        def work(conn):
            if conn.execute("UPDATE todos SET done = 1 WHERE id = ?", (tid,)).rowcount == 0:
                return None
            row = conn.execute(f"SELECT {COLUMNS} FROM todos WHERE id = ?", (tid,)).fetchone()
            conn.execute("COMMIT")
            return todo_json(row)
        return self._write(work)

    def stats(self) -> dict:
        return {"count": self._conn().execute("SELECT count(*) FROM todos").fetchone()[0]}

    def close(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)


def database_problem(exc: BaseException) -> str | None:
    """The reason for a 503 when the database is the problem; None when it is not."""
    if isinstance(exc, SchemaMissing):
        return f"database: schema missing ({exc})"
    if isinstance(exc, sqlite3.OperationalError):
        if "no such table" in str(exc):
            return "database: schema missing"
        return f"database: {exc}"
    if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.IntegrityError):
        return f"database: {exc}"
    return None


# -- HTTP ----------------------------------------------------------------------------------------
class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


class Request:
    def __init__(self, method: str, target: str, version: str, headers: dict[str, str],
                 body: bytes):
        self.method, self.version, self.headers, self.body = method, version, headers, body
        split = urllib.parse.urlsplit(target)
        self.path = split.path
        self.query = urllib.parse.parse_qs(split.query, keep_blank_values=True)
        tokens = {t.strip().lower() for t in headers.get("connection", "").split(",")}
        if version == "HTTP/1.1":
            self.keep_alive = "close" not in tokens
        else:
            self.keep_alive = "keep-alive" in tokens


class Response:
    def __init__(self, status: int, body: dict, headers: dict[str, str] | None = None):
        self.status, self.body, self.headers = status, body, headers or {}


def parse_head(head: bytes) -> tuple[str, str, str, dict[str, str]]:
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
        raise BadRequest(400, "bad request head") from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[0].isalpha() or not parts[1]:
        raise BadRequest(400, "bad request line")
    method, target, version = parts
    if version not in ("HTTP/1.1", "HTTP/1.0"):
        raise BadRequest(505, f"unsupported protocol {version[:20]!r}")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t":
            raise BadRequest(400, "folded header lines are not accepted")
        name, sep, value = line.partition(":")
        name = name.strip().lower()
        if not sep or not name or name != name.split()[0]:
            raise BadRequest(400, "bad header line")
        value = value.strip()
        if name == "content-length" and name in headers and headers[name] != value:
            raise BadRequest(400, "conflicting Content-Length headers")
        headers[name] = f"{headers[name]}, {value}" if name in headers and name != "content-length" \
            else value
    return method, target, version, headers


class Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, now: float):
        self.reader, self.writer = reader, writer
        self.idle_since = now   # when it last became idle (accepted, or its last answer sent)
        self.busy = False

    def request_waiting(self) -> bool:
        """Whether bytes of a next request have already arrived (in the reader's buffer, or in
        the socket not yet read on a busy machine): such a connection is not idle, and closing
        it would reset a request the client has sent."""
        if len(getattr(self.reader, "_buffer", b"")):
            return True
        sock = self.writer.get_extra_info("socket")
        if sock is None:
            return False
        try:
            with socket.fromfd(sock.fileno(), socket.AF_INET, socket.SOCK_STREAM) as dup:
                return bool(dup.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT))
        except (BlockingIOError, OSError):
            return False


class App:
    def __init__(self, args, env: dict[str, str]):
        self.host = args.host
        self.port = args.port
        self.version = env.get("APP_VERSION") or "dev"
        self.color = env.get("ZD_COLOR", "")
        self.replica = env.get("REPLICA_NAME") or f"{socket.gethostname()}-{os.getpid()}"
        self.token = env.get("API_TOKEN") or env.get("ZD_TOKEN") or "test-token"
        self.drain_seconds = args.drain_seconds
        wanted = set(args.fault or [])
        active = args.fault_color is None or args.fault_color == self.color
        self.faults = wanted if active else set()
        self.store = Store(args.db_path, self.faults)
        self.conns: dict[Conn, asyncio.Task] = {}
        self.draining = False
        self.stopping = False
        self.signals = 0
        self.loop: asyncio.AbstractEventLoop | None = None
        self.changed: asyncio.Future | None = None
        self.stop_now: asyncio.Event | None = None
        self.drain_timer: asyncio.TimerHandle | None = None

    # lifecycle -----------------------------------------------------------------------------
    def notify(self) -> None:
        """Wake every connection waiting for its next request: the state has changed."""
        fut, self.changed = self.changed, self.loop.create_future()
        if fut is not None and not fut.done():
            fut.set_result(None)

    def on_signal(self, name: str) -> None:
        self.signals += 1
        if "exit_on_sigterm" in self.faults:
            log(f"{name}: exiting at once (fault exit_on_sigterm)")
            os._exit(0)
        if self.signals == 1:
            self.draining = True
            self.notify()
            log(f"draining ({name}): readiness 503, Connection: close on every answer, "
                f"idle connections closed; stop listening in {self.drain_seconds:g}s"
                + (" [fault abandon_idle: idle connections kept]"
                   if "abandon_idle" in self.faults else ""))
            self.drain_timer = self.loop.call_later(self.drain_seconds, self.stop_now.set)
        else:
            log(f"{name} again: cutting the drain window short")
            self.stop_now.set()

    async def serve(self) -> int:
        self.loop = asyncio.get_running_loop()
        self.stop_now = asyncio.Event()
        self.notify()
        for sig, name in ((signal.SIGTERM, "SIGTERM"), (signal.SIGINT, "SIGINT")):
            self.loop.add_signal_handler(sig, self.on_signal, name)
        try:
            server = await asyncio.start_server(self.handle, self.host, self.port, limit=MAX_HEAD,
                                                backlog=128, reuse_address=True)
        except OSError as exc:
            print(f"serve: cannot listen on {self.host}:{self.port}: {exc.strerror or exc}",
                  file=sys.stderr, flush=True)
            return 1
        port = server.sockets[0].getsockname()[1]
        faults = ",".join(sorted(self.faults)) or "none"
        log(f"listening on http://{self.host}:{port} version={self.version} "
            f"color={self.color or '-'} replica={self.replica} faults={faults}")
        await self.stop_now.wait()

        # the drain window is over: stop listening, close the idle, let the in-flight finish
        self.stopping = True
        server.close()
        self.notify()
        tasks = list(self.conns.values())
        inflight = sum(1 for c in self.conns if c.busy)
        finished = True
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=INFLIGHT_WAIT_S)
            finished = not pending
            for conn, task in list(self.conns.items()):
                conn.writer.transport.abort()
        log(f"stopped: listener closed, {len(tasks)} connection(s) closed "
            f"({inflight} in flight at the end of the drain"
            f"{'' if finished else ', some cut after ' + format(INFLIGHT_WAIT_S, 'g') + 's'})")
        self.store.close()
        if not finished:  # a DB thread may still be busy: do not wait for it
            sys.stdout.flush()
            os._exit(0)
        return 0

    # connections -----------------------------------------------------------------------------
    def close_after_answer(self, req: Request | None) -> bool:
        if self.stopping or req is None or not req.keep_alive:
            return True
        return self.draining and "abandon_idle" not in self.faults

    async def next_byte(self, conn: Conn) -> bytes:
        """The first byte of the next request, or b"" when the connection is to be closed: the
        client closed it, it sat idle too long in the drain, or the listener is closing."""
        read = asyncio.ensure_future(conn.reader.read(1))
        try:
            while not read.done():
                timeout = None
                if self.stopping:
                    return b""
                if self.draining and "abandon_idle" not in self.faults:
                    timeout = conn.idle_since + IDLE_CLOSE_S - self.loop.time()
                    if timeout <= 0 and not conn.request_waiting():
                        return b""
                    timeout = max(timeout, 0.01)  # a request is here: let the read take it
                await asyncio.wait({read, self.changed}, timeout=timeout,
                                   return_when=asyncio.FIRST_COMPLETED)
            return read.result()
        except (ConnectionError, OSError):
            return b""
        finally:
            if not read.done():
                read.cancel()

    async def read_request(self, conn: Conn, first: bytes) -> Request:
        reader = conn.reader
        try:
            head = first + await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT_S)
        except asyncio.LimitOverrunError:
            raise BadRequest(431, "request head too large") from None
        except asyncio.TimeoutError:
            raise BadRequest(408, "request head incomplete") from None
        head = head.lstrip(b"\r\n")   # stray empty lines between requests are ignored
        method, target, version, headers = parse_head(head[:-4])
        if "transfer-encoding" in headers:
            raise BadRequest(411, "Transfer-Encoding is not supported; send Content-Length")
        raw = headers.get("content-length", "0")
        if not raw.isdigit() or not raw.isascii():
            raise BadRequest(400, "bad Content-Length")
        length = int(raw)
        if length > MAX_BODY:
            raise BadRequest(413, f"body larger than {MAX_BODY} bytes")
        body = b""
        if length:
            if headers.get("expect", "").lower() == "100-continue":
                conn.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            try:
                body = await asyncio.wait_for(reader.readexactly(length), READ_TIMEOUT_S)
            except asyncio.TimeoutError:
                raise BadRequest(408, "request body incomplete") from None
        return Request(method, target, version, headers, body)

    async def send(self, conn: Conn, req: Request | None, resp: Response, close: bool) -> None:
        body = json.dumps(resp.body, ensure_ascii=False).encode("utf-8")
        headers = {"Content-Type": "application/json", "Content-Length": str(len(body)),
                   "Date": email.utils.formatdate(usegmt=True), "X-Version": self.version,
                   "X-Color": self.color, "X-Served-By": self.replica, **resp.headers}
        if req is not None:
            rid = req.headers.get("x-request-id")
            if rid is not None and rid.isprintable():
                headers["X-Request-Id"] = rid
        if close:
            headers["Connection"] = "close"
        elif req is not None and req.version == "HTTP/1.0":
            headers["Connection"] = "keep-alive"
        lines = [f"HTTP/1.1 {resp.status} {REASONS.get(resp.status, 'Unknown')}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        conn.writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1", "replace") + body)
        await asyncio.wait_for(conn.writer.drain(), WRITE_TIMEOUT_S)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Conn(reader, writer, self.loop.time())
        self.conns[conn] = asyncio.current_task()
        try:
            while True:
                first = await self.next_byte(conn)
                if not first:
                    break
                conn.busy = True
                req = None
                try:
                    req = await self.read_request(conn, first)
                except BadRequest as exc:
                    await self.send(conn, None, Response(exc.status, {"error": str(exc)}), True)
                    break
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                resp = await self.dispatch(req)
                close = self.close_after_answer(req)
                await self.send(conn, req, resp, close)
                conn.busy = False
                conn.idle_since = self.loop.time()
                if close:
                    break
        except (ConnectionError, asyncio.TimeoutError, OSError):
            pass
        finally:
            self.conns.pop(conn, None)
            try:
                writer.close()
                await asyncio.wait_for(writer.wait_closed(), 5.0)
            except (ConnectionError, OSError, asyncio.TimeoutError):
                pass

    # the API ---------------------------------------------------------------------------------
    async def dispatch(self, req: Request) -> Response:
        try:
            return await self.route(req)
        except Exception as exc:  # a handler failure is an answer, never a dropped connection
            reason = database_problem(exc)
            if reason is not None:
                return Response(503, {"error": reason})
            log(f"error: {req.method} {req.path}: {type(exc).__name__}: {exc}")
            return Response(500, {"error": f"internal error: {type(exc).__name__}"})

    async def route(self, req: Request) -> Response:
        path, method = req.path, req.method
        if path in ("/healthz", "/livez", "/readyz"):
            if method != "GET":
                return not_allowed("GET")
            if path == "/healthz":
                return Response(200, {"ok": True})
            if path == "/livez":
                return Response(200, {"alive": True})
            return await self.readiness()
        if not path.startswith("/v1/"):
            return Response(404, {"error": "not found"})
        auth = req.headers.get("authorization", "")
        scheme, _, token = auth.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(),
                                                                 self.token.encode()):
            return Response(401, {"error": "unauthorized"})
        parts = path.split("/")[2:]   # "/v1/todos/x/done" -> ["todos", "x", "done"]
        if parts == ["todos"]:
            if method == "POST":
                return await self.create(req)
            if method == "GET":
                keys = req.query.get("key")
                if not keys or not keys[0]:
                    return Response(422, {"error": "the query parameter key is required"})
                return Response(200, {"items": await self.store.run(self.store.by_key, keys[0])})
            return not_allowed("GET, POST")
        if len(parts) == 2 and parts[0] == "todos" and parts[1]:
            if method != "GET":
                return not_allowed("GET")
            todo = await self.store.run(self.store.get, parts[1])
            return Response(200, todo) if todo else Response(404, {"error": "not found"})
        if len(parts) == 3 and parts[0] == "todos" and parts[1] and parts[2] == "done":
            if method != "POST":
                return not_allowed("POST")
            todo = await self.store.run(self.store.mark_done, parts[1])
            return Response(200, todo) if todo else Response(404, {"error": "not found"})
        if parts == ["stats"]:
            if method != "GET":
                return not_allowed("GET")
            return Response(200, await self.store.run(self.store.stats))
        return Response(404, {"error": "not found"})

    async def readiness(self) -> Response:
        if self.draining:
            return Response(503, {"ready": False, "reason": "draining"})
        try:
            await self.store.run(self.store.check)
        except Exception as exc:
            reason = database_problem(exc) or f"database: {type(exc).__name__}: {exc}"
            return Response(503, {"ready": False, "reason": reason})
        return Response(200, {"ready": True, "version": self.version})

    async def create(self, req: Request) -> Response:
        key = req.headers.get("request-key")
        if key is not None and not 1 <= len(key) <= MAX_KEY:
            return Response(422, {"error": f"Request-Key must be 1..{MAX_KEY} characters"})
        try:
            data = json.loads(req.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            return Response(422, {"error": "the body is not valid JSON"})
        problem = validate(data)
        if problem:
            return Response(422, {"error": problem})
        todo = await self.store.run(self.store.create, data["title"], data["priority"], key)
        return Response(201, todo)


def validate(data) -> str | None:
    if not isinstance(data, dict):
        return "the body must be a JSON object"
    title, priority = data.get("title"), data.get("priority")
    if not isinstance(title, str):
        return "title must be a string"
    if not 1 <= len(title) <= MAX_TITLE:
        return f"title must be 1..{MAX_TITLE} characters"
    try:
        title.encode("utf-8")
    except UnicodeEncodeError:
        return "title must be valid Unicode text"
    if isinstance(priority, bool) or not isinstance(priority, int):
        return "priority must be an integer"
    if not 1 <= priority <= 5:
        return "priority must be 1..5"
    return None


def not_allowed(allow: str) -> Response:
    return Response(405, {"error": "method not allowed"}, {"Allow": allow})


# -- the command line ----------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="app.py", description="A small to-do API (stdlib only).")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="create the schema (idempotent)")
    serve = sub.add_parser("serve", help="serve the API until SIGTERM, then drain")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=None, help="default: env PORT, else 8123")
    serve.add_argument("--fault", action="append", metavar="NAME",
                       help="break the service on purpose (repeatable): " + ", ".join(FAULTS))
    serve.add_argument("--fault-color", default=None, metavar="COLOR",
                       help="apply the faults only when ZD_COLOR is COLOR (default: always)")
    args = parser.parse_args(argv)
    env = dict(os.environ)

    try:
        args.db_path = database_path(env.get("DATABASE_URL") or "sqlite:///./todo.db")
    except ValueError as exc:
        die(f"app.py: {exc}", 2)

    if args.command == "migrate":
        try:
            migrate(args.db_path)
        except (sqlite3.Error, OSError) as exc:
            die(f"migrate: {args.db_path}: {exc}", 1)
        return 0

    unknown = [f for f in args.fault or [] if f not in FAULTS]
    if unknown:
        die(f"app.py: unknown fault {unknown[0]!r} (known: {', '.join(FAULTS)})", 2)
    if args.port is None:
        raw = env.get("PORT") or "8123"
        if not raw.isdigit():
            die(f"app.py: PORT={raw!r} is not a port number", 2)
        args.port = int(raw)
    if not 0 <= args.port <= 65535:
        die(f"app.py: port {args.port} is out of range", 2)
    try:
        args.drain_seconds = float(env.get("DRAIN_SECONDS") or "1.0")
        if not 0 <= args.drain_seconds < 3600:
            raise ValueError
    except ValueError:
        die(f"app.py: DRAIN_SECONDS={env.get('DRAIN_SECONDS')!r} is not 0..3600 seconds", 2)
    return asyncio.run(App(args, env).serve())


if __name__ == "__main__":
    sys.exit(main())
