"""Response assertions in jq, the seed's own idiom (``jq -e '.status == "healthy"'``).

A failing expectation says what was expected, the value it saw and an excerpt of the
response, so a red gate is readable without re-running anything.
"""
from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import requests

from zerodrop.checks.api import loads
from zerodrop.profiles.profile import compile_jq

EXCERPT = 400


class ExpectationFailed(AssertionError):
    pass


_compiled = compile_jq  # one compile cache, one message for a bad expression

def jq_all(expression: str, data: Any) -> list[Any]:
    return _compiled(expression).input_value(data).all()


def jq_value(expression: str, data: Any) -> Any:
    """The first output of ``expression`` (``jq -r`` reads the same value)."""
    out = jq_all(expression, data)
    return out[0] if out else None


def jq_true(value: Any) -> bool:
    """jq -e semantics: anything but false and null passes."""
    return value is not None and value is not False


def excerpt(resp: requests.Response) -> str:
    text = resp.text
    if len(text) > EXCERPT:
        text = text[:EXCERPT] + f"... ({len(resp.text)} chars)"
    return f"{resp.request.method} {resp.url} -> HTTP {resp.status_code}: {text}"


def body_of(resp: requests.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        raise ExpectationFailed(f"response is not JSON; {excerpt(resp)}") from None


def exact_number(resp: requests.Response, key: str) -> Decimal | None:
    """A top-level JSON number of the body, exactly as written (150.00 -> Decimal('150.00')).
    None when absent; a failed expectation when present but not a number."""
    try:
        data = loads(resp.content)
    except ValueError:
        raise ExpectationFailed(f"response is not JSON; {excerpt(resp)}") from None
    if not isinstance(data, dict) or key not in data:
        return None
    value = data[key]
    if not isinstance(value, Decimal):
        raise ExpectationFailed(f"{key} is not a JSON number: {json.dumps(value)}; "
                                f"{excerpt(resp)}")
    return value


def expect_status(resp: requests.Response, *statuses: int) -> None:
    if resp.status_code not in statuses:
        want = " or ".join(str(s) for s in statuses)
        raise ExpectationFailed(f"expected HTTP {want}, got {resp.status_code}; {excerpt(resp)}")


def expect_jq(resp: requests.Response, expression: str, *, show: str | None = None) -> Any:
    """Assert ``expression`` holds on the JSON body, as ``jq -e`` would.

    ``show`` is a jq path whose value is reported on failure (for ``.status == "healthy"`` the
    interesting value is ``.status``); by default the value of the whole expression is shown.
    """
    data = body_of(resp)
    try:
        result = jq_value(expression, data)
    except ValueError as exc:  # a runtime jq error (e.g. indexing a string) is a failed check
        raise ExpectationFailed(f"jq `{expression}` failed: {exc}; {excerpt(resp)}") from None
    if not jq_true(result):
        seen = jq_value(show, data) if show else result
        raise ExpectationFailed(
            f"expected jq `{expression}` to hold; saw {_short(show or expression)} = "
            f"{json.dumps(seen, default=str)}; {excerpt(resp)}")
    return result


def _short(expression: str) -> str:
    return expression if len(expression) <= 60 else expression[:57] + "..."
