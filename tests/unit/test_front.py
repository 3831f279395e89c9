"""The kube-proxy-like front, on real sockets, in front of two tiny real HTTP servers.

The upstreams here are plain http.server instances that name themselves: the front is a TCP
proxy and does not care what it proxies; the payment-service behind it is covered in
tests/integration.
"""
from __future__ import annotations

import http.client
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from zerodrop.platforms.local.front import Endpoint, Front, FrontLoop, PortInUse


class _Named(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as real clients use

    def do_GET(self):
        body = self.server.name.encode()  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def upstreams():
    servers = []
    for name in ("a", "b"):
        srv = ThreadingHTTPServer(("127.0.0.1", 0), _Named)
        srv.name = name  # type: ignore[attr-defined]
        srv.daemon_threads = True
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        servers.append(srv)
    yield {s.name: Endpoint("127.0.0.1", s.server_address[1], "blue" if s.name == "a" else "green",
                            s.name) for s in servers}
    for s in servers:
        s.shutdown()
        s.server_close()


@pytest.fixture
def front():
    loop = FrontLoop()
    f = Front("service", loop)
    f.start(0)
    yield f
    f.stop()
    loop.stop()


def _applied(front: Front, endpoints, weights=None) -> None:
    done = threading.Event()
    front.set_endpoints(endpoints, weights, on_applied=done.set)
    assert done.wait(5), "the front never applied the endpoint set"


def _get(conn: http.client.HTTPConnection) -> str:
    conn.request("GET", "/")
    return conn.getresponse().read().decode()


def test_new_connections_go_to_the_current_endpoints(front, upstreams):
    _applied(front, [upstreams["a"]])
    assert {_get(http.client.HTTPConnection("127.0.0.1", front.port, timeout=5))
            for _ in range(5)} == {"a"}
    _applied(front, [upstreams["b"]])
    assert {_get(http.client.HTTPConnection("127.0.0.1", front.port, timeout=5))
            for _ in range(5)} == {"b"}
    assert front.stats["accepted"] == 10


def test_established_connection_stays_on_its_endpoint_after_a_switch(front, upstreams):
    """conntrack: a keep-alive connection is not moved by a selector change."""
    _applied(front, [upstreams["a"]])
    kept = http.client.HTTPConnection("127.0.0.1", front.port, timeout=5)
    assert _get(kept) == "a"
    _applied(front, [upstreams["b"]])
    assert [_get(kept) for _ in range(3)] == ["a", "a", "a"]
    fresh = http.client.HTTPConnection("127.0.0.1", front.port, timeout=5)
    assert _get(fresh) == "b"


def test_no_endpoints_means_the_connection_is_reset(front, upstreams):
    _applied(front, [])
    conn = http.client.HTTPConnection("127.0.0.1", front.port, timeout=5)
    with pytest.raises((ConnectionResetError, http.client.RemoteDisconnected, BrokenPipeError)):
        _get(conn)
    assert front.stats["rejected"] == 1


def test_weights_split_new_connections_by_colour(front, upstreams):
    _applied(front, [upstreams["a"], upstreams["b"]], {"blue": 0, "green": 100})
    assert {_get(http.client.HTTPConnection("127.0.0.1", front.port, timeout=5))
            for _ in range(10)} == {"b"}
    _applied(front, [upstreams["a"], upstreams["b"]], {"blue": 50, "green": 50})
    seen = [_get(http.client.HTTPConnection("127.0.0.1", front.port, timeout=5))
            for _ in range(60)]
    assert seen.count("a") > 5 and seen.count("b") > 5, seen  # 60 draws at 50/50


def test_an_upstream_that_vanished_resets_the_client(front):
    dead = socket.socket()
    dead.bind(("127.0.0.1", 0))
    port = dead.getsockname()[1]
    dead.close()  # nothing listens there now
    _applied(front, [Endpoint("127.0.0.1", port, "blue", "gone")])
    conn = http.client.HTTPConnection("127.0.0.1", front.port, timeout=5)
    with pytest.raises((ConnectionResetError, http.client.RemoteDisconnected, BrokenPipeError)):
        _get(conn)
    assert front.stats["upstream_failed"] == 1


def test_a_port_in_use_is_reported(front):
    other = Front("other", front._loop)
    with pytest.raises(PortInUse, match=f"port {front.port} on 127.0.0.1 is already in use"):
        other.start(front.port)
