"""Tiny real-socket HTTP servers that stand in for a BROKEN payment service.

They run on plain threads in the test process (no gevent here) and speak just enough HTTP/1.1
for geventhttpclient: read a request head (+ Content-Length body), then do what the behaviour
says — answer, answer wrongly, reset, close mid-answer, or hang. Each counts the requests it
read, so a test can compare what the server saw with what the ledger recorded.
"""
from __future__ import annotations

import socket
import struct
import threading
from typing import Callable

HEADERS = "X-App-Version: v9\r\nX-App-Color: green\r\nX-Replica: standin-0\r\n"


def answer(status: int, body: bytes = b"", reason: str = "X", request_id: str = "", close: bool = False,
           content_type: str = "application/json") -> bytes:
    head = (f"HTTP/1.1 {status} {reason}\r\n{HEADERS}Content-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n")
    if request_id:
        head += f"X-Request-Id: {request_id}\r\n"
    if close:
        head += "Connection: close\r\n"
    return head.encode() + b"\r\n" + body


class Request:
    def __init__(self, method: str, path: str, headers: dict[str, str], body: bytes, index_on_conn: int):
        self.method, self.path, self.headers, self.body = method, path, headers, body
        self.index_on_conn = index_on_conn  # 0 for the first request on a connection

    @property
    def request_id(self) -> str:
        return self.headers.get("x-request-id", "")


# A behaviour gets the socket and the parsed request and returns False to end the connection.
Behaviour = Callable[[socket.socket, Request], bool]


class StandIn:
    """``with StandIn(behaviour) as s: s.url`` — a listening server on 127.0.0.1, stopped on exit."""

    def __init__(self, behaviour: Behaviour):
        self.behaviour = behaviour
        self.requests = 0
        self.connections = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._conns: list[socket.socket] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "StandIn":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()
        with self._lock:
            for c in self._conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv
                except OSError:
                    pass
                try:
                    c.close()
                except OSError:
                    pass

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                self.connections += 1
                self._conns.append(conn)
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        buf = b""
        index = 0
        conn.settimeout(0.5)
        try:
            while not self._stop.is_set():
                while b"\r\n\r\n" not in buf:
                    try:
                        chunk = conn.recv(65536)
                    except socket.timeout:
                        if self._stop.is_set():
                            return
                        continue
                    if not chunk:
                        return
                    buf += chunk
                head, _, buf = buf.partition(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _version = lines[0].split(" ", 2)
                headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
                length = int(headers.get("content-length", "0") or 0)
                while len(buf) < length:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                body, buf = buf[:length], buf[length:]
                with self._lock:
                    self.requests += 1
                if not self.behaviour(conn, Request(method, path, headers, body, index)):
                    return
                index += 1
        except OSError:
            return
        finally:
            try:
                conn.close()
            except OSError:
                pass


# -- behaviours -------------------------------------------------------------------------------------

def healthy(conn: socket.socket, req: Request) -> bool:
    conn.sendall(answer(200, b'{"status":"ok"}', "OK", req.request_id))
    return True


def reset(conn: socket.socket, req: Request) -> bool:
    """Read the request, then close with SO_LINGER 0: the kernel sends RST, no answer."""
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    return False


def close_mid_answer(conn: socket.socket, req: Request) -> bool:
    """Headers promise 100 bytes, 10 arrive, then a clean close (FIN): a cut answer."""
    conn.sendall(answer(200, b"", "OK", req.request_id).replace(b"Content-Length: 0", b"Content-Length: 100")
                 + b"0123456789")
    return False


def hang(conn: socket.socket, req: Request) -> bool:
    """Read the request and never answer (the connection stays open until the server stops)."""
    conn.settimeout(None)
    try:
        conn.recv(1)  # returns when the client gives up (closes) or the server stops
    except OSError:
        pass
    return False


def server_error(conn: socket.socket, req: Request) -> bool:
    conn.sendall(answer(500, b'{"errors":[{"message":"boom"}]}', "Internal Server Error", req.request_id))
    return True


def wrong_amount(conn: socket.socket, req: Request) -> bool:
    """A 201 whose body has an id and status pending but NOT the amount that was sent."""
    conn.sendall(answer(201, b'{"id":"pay_wrong","status":"pending","amount":0.01,"currency":"EUR"}', "Created",
                        req.request_id))
    return True


def not_json(conn: socket.socket, req: Request) -> bool:
    conn.sendall(answer(201, b"<html>created</html>", "Created", req.request_id, content_type="text/html"))
    return True


def closes_kept_alive(conn: socket.socket, req: Request) -> bool:
    """Answer the first request on a connection (keep-alive), then close the connection when the
    second arrives, without answering it: the race a draining server wins against a client."""
    if req.index_on_conn == 0:
        conn.sendall(answer(200, b'{"status":"ok"}', "OK", req.request_id))
        return True
    return False


def closed_port() -> int:
    """A loopback port nothing listens on (bound, then released): connecting is refused."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port
