"""HTTP plumbing shared by the edge middleware and the handlers: JSON answers, a bounded body
reader, the Bearer check and the per-route method dispatcher.

Kept apart from the handlers so none of it touches app state: every answer, error or not, is built
here as JSON, and a body is never buffered past the configured limit.
"""
from __future__ import annotations

import hmac
from typing import Any, Awaitable, Callable

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from . import money

JSON = "application/json"
CLOSE_AFTER = "zd.close"      # scope flag: answer with Connection: close (unread request body)

Handler = Callable[[Request], Awaitable[Response]]


def json_response(status: int, body: Any, headers: dict[str, str] | None = None) -> Response:
    content = body if isinstance(body, str) else money.dumps(body)
    return Response(content, status_code=status, media_type=JSON, headers=headers)


def errors_response(status: int, errors: list[dict[str, str]], headers: dict[str, str] | None = None) -> Response:
    return json_response(status, {"errors": errors}, headers)


class BadBody(Exception):
    def __init__(self, message: str, close: bool = False):
        super().__init__(message)
        self.close = close


async def read_json(request: Request, limit: int) -> Any:
    """Read at most `limit` bytes; never buffers an unbounded body."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != JSON and not ctype.endswith("+json"):
        raise BadBody("Content-Type must be application/json")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BadBody(f"body is larger than {limit} bytes", close=True)
    chunks, size = [], 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise BadBody(f"body is larger than {limit} bytes", close=True)
            chunks.append(chunk)
    except ClientDisconnect:
        raise BadBody("client disconnected while sending the body", close=True) from None
    try:
        return money.loads(b"".join(chunks).decode("utf-8"))
    except UnicodeDecodeError:
        raise BadBody("body is not UTF-8") from None
    except (ValueError, RecursionError) as exc:
        raise BadBody(f"malformed JSON: {str(exc).splitlines()[0][:200]}") from None


def bearer_ok(request: Request, expected: str) -> bool:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not expected:
        return False
    return hmac.compare_digest(token.strip().encode("utf-8", "surrogateescape"), expected.encode())


def unauthorized() -> Response:
    return errors_response(401, [{"field": "authorization", "message": "missing or invalid Bearer token"}],
                           {"WWW-Authenticate": "Bearer"})


class methods:  # noqa: N801 - reads as a declaration in the route table
    """One route, several methods; anything else is a JSON 405. An ASGI app rather than a
    function endpoint, because starlette answers unlisted methods of those in plain text."""

    def __init__(self, **handlers: Handler):
        self.handlers = handlers
        self.allowed = ", ".join(sorted(handlers))

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        method = request.method
        handler = self.handlers.get(method) or (self.handlers.get("GET") if method == "HEAD" else None)
        if handler is None:
            response = errors_response(405, [{"field": "method", "message": f"{method} not allowed; use {self.allowed}"}],
                                       {"Allow": self.allowed})
        else:
            response = await handler(request)
        await response(scope, receive, send)
