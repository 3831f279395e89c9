"""A small HTTP/1.1 client that tells the harness what happened on the wire.

Why not geventhttpclient (Locust's FastHttpUser)? The proof must know, for every request, whether
it went out on a new or a kept-alive connection and whether any byte of an answer came back before
the connection ended: that is what separates the HTTP/1.1 keep-alive race (the server closed an
idle connection as the client sent on it) from other resets. It must also never re-send anything
behind the harness's back. This client does exactly one send per call and says what it saw.

Plain ``socket`` calls only: under Locust, gevent's monkey-patching makes them cooperative; in
tests they are ordinary blocking sockets. One ``Connection`` is one TCP connection; a ``Pool``
keeps idle kept-alive connections and, like urllib3 and Go's transport, checks that an idle
connection is still open (no EOF waiting) before it hands it out again.
"""
from __future__ import annotations

import select
import socket
import time
from dataclasses import dataclass, field

# The keep-alive race ends at once: the server had closed the connection (its FIN still on the
# way) when the request went out, so its kernel answers the request with a reset or the EOF is
# already there. A connection that ends later held a request the server had taken (a kill, a
# shutdown that abandoned it): a reset, not the race.
RACE_S = 0.02
MAX_HEADER_BYTES = 64 * 1024
MAX_BODY_BYTES = 8 * 1024 * 1024


class ConnectionEnded(ConnectionResetError):
    """The connection ended (EOF or reset) before a full answer arrived.

    ``got_bytes``: bytes of the answer received before the end. ``reused``: the request went out
    on a connection that had already carried an answer. ``after_send_s``: from the send to the
    end. ``keepalive_race``: a reused connection that ended within ``RACE_S`` of the send with
    no byte back: the server closed the kept-alive connection as this request was sent."""

    def __init__(self, message: str, got_bytes: int, reused: bool, after_send_s: float = 0.0):
        super().__init__(message)
        self.got_bytes = got_bytes
        self.reused = reused
        self.after_send_s = after_send_s

    @property
    def keepalive_race(self) -> bool:
        return self.reused and self.got_bytes == 0 and self.after_send_s <= RACE_S


class ProtocolError(ConnectionError):
    """The bytes that came back are not an HTTP/1.1 answer (counted as a reset: no usable answer)."""


@dataclass
class Response:
    status: int
    headers: dict[str, str]  # lower-case names; the last value wins
    body: bytes
    will_close: bool  # the server said Connection: close, or HTTP/1.0 without keep-alive

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


@dataclass
class Connection:
    host: str
    port: int
    timeout: float
    sock: socket.socket | None = None
    answers: int = 0          # answers read on this connection
    _sent_at: float = 0.0     # monotonic time the current request went out
    _buf: bytearray = field(default_factory=bytearray)

    def open(self) -> None:
        s = socket.create_connection((self.host, self.port), timeout=self.timeout)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = s

    @property
    def reused(self) -> bool:
        return self.answers > 0

    def still_open(self) -> bool:
        """An idle connection is usable when nothing is waiting to be read on it: a readable
        idle socket holds an EOF (the server closed it) or bytes nobody asked for."""
        if self.sock is None:
            return False
        try:
            readable, _, _ = select.select([self.sock], [], [], 0)
        except (OSError, ValueError):
            return False
        return not readable

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    def request(self, method: str, path: str, headers: dict[str, str], body: bytes = b"") -> Response:
        """Send one request and read its answer. Raises ``ConnectionEnded``, ``ProtocolError``,
        ``ConnectionRefusedError``, ``TimeoutError`` or another ``OSError``; never re-sends."""
        reused = self.reused
        if self.sock is None:
            self.open()
        assert self.sock is not None
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self._sent_at = time.monotonic()
        try:
            self.sock.sendall(head + body if body else head)
        except (BrokenPipeError, ConnectionResetError) as exc:
            self.close()
            raise ConnectionEnded(f"{type(exc).__name__} while sending", 0, reused) from None
        try:
            resp = self._read_response(reused, method)
        except BaseException:
            self.close()
            raise
        self.answers += 1
        if resp.will_close:
            self.close()
        return resp

    # -- reading ------------------------------------------------------------------------------

    def _recv(self, got: int, reused: bool) -> bytes:
        assert self.sock is not None
        try:
            chunk = self.sock.recv(65536)
        except ConnectionResetError:
            raise ConnectionEnded("connection reset by peer", got, reused,
                                  time.monotonic() - self._sent_at) from None
        if not chunk:
            raise ConnectionEnded("connection closed before a full answer", got, reused,
                                  time.monotonic() - self._sent_at)
        return chunk

    def _read_response(self, reused: bool, method: str) -> Response:
        buf = self._buf
        buf.clear()
        while True:
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(buf) > MAX_HEADER_BYTES:
                raise ProtocolError("answer headers longer than 64 KiB")
            buf += self._recv(len(buf), reused)
        head = bytes(buf[:end]).decode("latin-1")
        rest = bytes(buf[end + 4:])
        status_line, _, header_text = head.partition("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            raise ProtocolError(f"not an HTTP/1.x status line: {status_line[:60]!r}")
        status = int(parts[1])
        headers: dict[str, str] = {}
        for line in header_text.split("\r\n"):
            name, sep, value = line.partition(":")
            if sep:
                headers[name.strip().lower()] = value.strip()
        conn_tokens = headers.get("connection", "").lower()
        will_close = "close" in conn_tokens or (parts[0] == "HTTP/1.0" and "keep-alive" not in conn_tokens)
        got = len(buf)
        if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
            body = b""
        elif "chunked" in headers.get("transfer-encoding", "").lower():
            body = self._read_chunked(rest, got, reused)
        elif "content-length" in headers:
            try:
                length = int(headers["content-length"])
            except ValueError:
                raise ProtocolError("bad Content-Length") from None
            if length > MAX_BODY_BYTES:
                raise ProtocolError("answer body larger than 8 MiB")
            chunks, have = [rest], len(rest)
            while have < length:
                chunk = self._recv(got + have, reused)
                chunks.append(chunk)
                have += len(chunk)
            body = b"".join(chunks)[:length]
        else:  # the body runs to the end of the connection
            chunks = [rest]
            while True:
                try:
                    chunks.append(self._recv(got, reused))
                except ConnectionEnded:
                    break
            body, will_close = b"".join(chunks), True
        return Response(status, headers, body, will_close)

    def _read_chunked(self, data: bytes, got: int, reused: bool) -> bytes:
        buf = bytearray(data)
        out = bytearray()
        while True:
            while b"\r\n" not in buf:
                buf += self._recv(got + len(out), reused)
            line, _, tail = bytes(buf).partition(b"\r\n")
            try:
                size = int(line.split(b";")[0], 16)
            except ValueError:
                raise ProtocolError("bad chunk size") from None
            buf = bytearray(tail)
            while len(buf) < size + 2:
                buf += self._recv(got + len(out), reused)
            out += buf[:size]
            buf = buf[size + 2:]
            if size == 0:
                return bytes(out)
            if len(out) > MAX_BODY_BYTES:
                raise ProtocolError("answer body larger than 8 MiB")


class Pool:
    """Idle kept-alive connections to one host, handed out most recently used first (as
    urllib3 and Go do), each checked for an EOF before reuse. Unbounded: the caller's own
    concurrency cap bounds how many are open."""

    def __init__(self, host: str, port: int, timeout: float):
        self.host, self.port, self.timeout = host, port, timeout
        self._idle: list[Connection] = []
        self.discarded_closed = 0  # idle connections found closed by the server before reuse

    def acquire(self) -> Connection:
        while self._idle:
            conn = self._idle.pop()
            if conn.still_open():
                return conn
            self.discarded_closed += 1
            conn.close()
        return Connection(self.host, self.port, self.timeout)

    def release(self, conn: Connection) -> None:
        if conn.sock is not None:
            self._idle.append(conn)

    def close(self) -> None:
        for conn in self._idle:
            conn.close()
        self._idle.clear()
