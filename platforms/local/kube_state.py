"""A kube-state-metrics stand-in for the local platform: ``kube_pod_status_phase`` of its replicas.

The seed's Grafana dashboard has a "Pod Status by Version" panel on kube-state-metrics'
``kube_pod_status_phase{pod=~"payment-service-(blue|green)-.+"}``. On a cluster that series
comes from kube-state-metrics reading the API server; the local platform has no API server, so
this small HTTP endpoint, scraped by the platform's Prometheus, serves the same series from the
platform's own state (its replicas are its pods): one sample per replica and phase, 1 for the
phase it is in and 0 for the others, as kube-state-metrics does. It is a stand-in, named as such
wherever it is used; the series it serves are real for what they describe (a replica that was
stopped is gone from them, one that is starting is Pending).
"""
from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Iterable

PHASES = ("Pending", "Running", "Succeeded", "Failed", "Unknown")
NAMESPACE = "local"


def exposition(pods: Iterable[tuple[str, str]]) -> str:
    """Prometheus' text format for (pod name, phase) pairs."""
    lines = ["# HELP kube_pod_status_phase The pods current phase (zerodrop local stand-in).",
             "# TYPE kube_pod_status_phase gauge"]
    for name, phase in pods:
        for p in PHASES:
            lines.append(f'kube_pod_status_phase{{namespace="{NAMESPACE}",pod="{name}",'
                         f'phase="{p}"}} {1 if p == phase else 0}')
    return "\n".join(lines) + "\n"


class KubeStateStandIn:
    """``/metrics`` on 127.0.0.1 (a free port), answering ``exposition(pods())``."""

    def __init__(self, pods: Callable[[], Iterable[tuple[str, str]]]) -> None:
        self._pods = pods
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404)
                    return
                body = exposition(outer._pods()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:  # quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.address = f"127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="zd-kube-state",
                                        daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
