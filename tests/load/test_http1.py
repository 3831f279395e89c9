"""The load's HTTP/1.1 client against real sockets: what it reads, and what it says about a
connection that ended (the keep-alive race vs a reset after the server took the request)."""
from __future__ import annotations

import socket
import threading
import time

import pytest

from zerodrop.load.http1 import Connection, ConnectionEnded, Pool, ProtocolError


class Server:
    """A one-connection-at-a-time server on 127.0.0.1 answering with ``script(n, request)``."""

    def __init__(self, script):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.script = script
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._conn, args=(conn,), daemon=True).start()

    def _conn(self, conn):
        n = 0
        with conn:
            buf = b""
            while True:
                try:
                    data = conn.recv(65536)
                except OSError:
                    return
                if not data:
                    return
                buf += data
                while b"\r\n\r\n" in buf:
                    head, _, buf = buf.partition(b"\r\n\r\n")
                    if not self.script(n, conn):
                        return
                    n += 1

    def close(self):
        self.sock.close()


OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-App-Version: v1\r\n\r\nok"


def test_content_length_chunked_and_close_delimited_bodies():
    answers = [OK, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n1;x\r\nc\r\n0\r\n\r\n",
               b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nrest"]
    srv = Server(lambda n, c: c.sendall(answers[n]) or n < 2)
    conn = Connection("127.0.0.1", srv.port, 2.0)
    first = conn.request("GET", "/a", {})
    assert (first.status, first.body, first.headers["x-app-version"], conn.reused) == (200, b"ok", "v1", True)
    assert conn.request("GET", "/b", {}).body == b"abc"
    last = conn.request("GET", "/c", {})
    assert last.body == b"rest" and last.will_close and conn.sock is None
    srv.close()


def test_a_close_as_the_request_arrives_on_a_reused_connection_is_the_race():
    """The second request on a kept-alive connection is read and the connection closed at once,
    with no answer: a reused connection, no byte back, ended at once."""
    srv = Server(lambda n, c: c.sendall(OK) or True if n == 0 else False)
    conn = Connection("127.0.0.1", srv.port, 2.0)
    conn.request("GET", "/", {})
    with pytest.raises(ConnectionEnded) as info:
        conn.request("GET", "/", {})
    assert info.value.reused and info.value.got_bytes == 0 and info.value.keepalive_race
    srv.close()


def test_a_request_held_then_dropped_is_a_reset_not_the_race():
    """Negative control: the server takes the request and drops the connection 0.3 s later:
    the same reused connection, but the end came long after the send."""
    srv = Server(lambda n, c: c.sendall(OK) or True if n == 0 else time.sleep(0.3))
    conn = Connection("127.0.0.1", srv.port, 2.0)
    conn.request("GET", "/", {})
    with pytest.raises(ConnectionEnded) as info:
        conn.request("GET", "/", {})
    assert info.value.reused and info.value.after_send_s >= 0.25 and not info.value.keepalive_race
    srv.close()


def test_a_first_request_that_ends_is_never_the_race():
    srv = Server(lambda n, c: False)
    conn = Connection("127.0.0.1", srv.port, 2.0)
    with pytest.raises(ConnectionEnded) as info:
        conn.request("GET", "/", {})
    assert not info.value.reused and not info.value.keepalive_race
    srv.close()


def test_garbage_is_a_protocol_error_and_silence_a_timeout():
    srv = Server(lambda n, c: c.sendall(b"SSH-2.0-nope\r\n\r\n") or True)
    with pytest.raises(ProtocolError):
        Connection("127.0.0.1", srv.port, 2.0).request("GET", "/", {})
    srv.close()
    quiet = Server(lambda n, c: time.sleep(1.0) or True)
    with pytest.raises(TimeoutError):
        Connection("127.0.0.1", quiet.port, 0.2).request("GET", "/", {})
    quiet.close()


def test_the_pool_discards_a_connection_the_server_closed_while_idle():
    srv = Server(lambda n, c: c.sendall(OK + b"") or False)  # answer, then close the connection
    pool = Pool("127.0.0.1", srv.port, 2.0)
    conn = pool.acquire()
    conn.request("GET", "/", {})
    pool.release(conn)
    time.sleep(0.2)  # the server's close has arrived
    again = pool.acquire()
    assert again is not conn and pool.discarded_closed == 1 and not again.reused
    srv.close()
