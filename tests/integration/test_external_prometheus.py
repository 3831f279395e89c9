"""ExternalPrometheus.check(): a user's Prometheus is asked ``up`` once before it is trusted, so a
wrong URL fails at the start in one line instead of reading as "no data" at every canary stage.
Against real sockets and a real Prometheus (Debian's binary), no mocks."""
from __future__ import annotations

import http.server
import socket
import threading

import pytest

from zerodrop.platforms.base import PlatformError
from zerodrop.platforms.kubernetes.prometheus import ExternalPrometheus
from zerodrop.platforms.local.prometheus import LocalPrometheus
from tests.monitoring.conftest import require


def closed_port() -> int:
    """A port nothing listens on: bound, then closed (the kernel refuses connections to it)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_prometheus_is_one_line():
    url = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(PlatformError) as info:
        ExternalPrometheus(url).check()
    message = str(info.value)
    assert "\n" not in message and url in message and "cannot reach" in message, message


def test_something_that_is_not_prometheus_is_one_line():
    """Negative control for "reachable is enough": an HTTP server that answers, but not the
    query API (a 404 page, as a wrong path or another service gives), is refused too."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        with pytest.raises(PlatformError) as info:
            ExternalPrometheus(url).check()
    finally:
        server.shutdown()
        server.server_close()
    message = str(info.value)
    assert "\n" not in message and "not JSON" in message, message


@pytest.mark.slow
def test_a_real_prometheus_passes_the_check():
    require("prometheus")
    with LocalPrometheus() as prom:
        external = ExternalPrometheus(prom.url)
        external.check()  # raises on failure
        # and it is the same Prometheus: its query answers (no target yet: no data, not error)
        assert external.query("up").outcome in ("data", "no_data")
        assert external.query("sum(").outcome == "error"
