"""The API clients of one Kubernetes platform (one namespace), and the one way they are
called: every error becomes a one-line PlatformError that says what was being done."""
from __future__ import annotations

import json
from typing import Any, Callable

from zerodrop.platforms.base import PlatformError

REQUEST_TIMEOUT_S = 30


class KubeApi:
    """CoreV1, AppsV1, BatchV1 and DiscoveryV1 over one ApiClient, for one namespace."""

    def __init__(self, api_client: Any, namespace: str) -> None:
        from kubernetes import client
        self.client, self.namespace = api_client, namespace
        self.core = client.CoreV1Api(api_client)
        self.apps = client.AppsV1Api(api_client)
        self.batch = client.BatchV1Api(api_client)
        self.discovery = client.DiscoveryV1Api(api_client)

    def call(self, what: str, fn: Callable, *args, **kwargs):
        """``fn(*args, **kwargs)`` with a request timeout; PlatformError in one line."""
        from kubernetes.client.rest import ApiException
        from urllib3.exceptions import HTTPError
        try:
            return fn(*args, _request_timeout=REQUEST_TIMEOUT_S, **kwargs)
        except ApiException as exc:
            raise PlatformError(f"{what} in {self.namespace}: {api_reason(exc)}") from None
        except (HTTPError, OSError) as exc:
            raise PlatformError(f"{what}: the API server did not answer "
                                f"({type(exc).__name__})") from None

    def serialize(self, obj: Any) -> Any:
        return self.client.sanitize_for_serialization(obj)

    def close(self) -> None:
        try:
            self.client.close()
        except Exception:
            pass


def api_reason(exc: Any) -> str:
    """An ApiException as 'HTTP <status> <the server's message>', cut to 300 characters."""
    try:
        message = json.loads(exc.body).get("message", "")
    except (TypeError, ValueError, AttributeError):
        message = ""
    return f"HTTP {exc.status} {message or exc.reason}"[:300]
