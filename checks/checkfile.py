"""Extra checks a team lists in a file, to gate its own service without writing Python.

TOML (or JSON with the same shape)::

    [[check]]
    name   = "readiness reports healthy"     # required, unique
    method = "GET"                           # default GET
    path   = "/health/ready"                 # required, starts with /
    status = 200                             # expected HTTP status (default 200)
    jq     = '.status == "healthy"'          # optional; must hold, as `jq -e`
    auth   = false                           # send the bearer token (default true)
    body   = { amount = "1.00" }             # optional JSON body (TOML has no exact decimal:
                                             # write money as a string if your API takes one)
    headers = { X-Trace = "on" }             # optional
"""
from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zerodrop.checks.expect import _compiled

METHODS = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"}
KNOWN = {"name", "method", "path", "status", "jq", "auth", "body", "headers"}


class CheckFileError(ValueError):
    pass


@dataclass(frozen=True)
class Check:
    name: str
    path: str
    method: str = "GET"
    status: int = 200
    jq: str | None = None
    auth: bool = True
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)


def load_checks(path: Path) -> list[Check]:
    try:
        text = path.read_text()
    except OSError as exc:
        raise CheckFileError(f"checks file {path}: {exc.strerror}") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise CheckFileError(f"checks file {path}: not valid {path.suffix[1:] or 'TOML'}: {exc}") from None
    entries = data.get("check") if isinstance(data, dict) else None
    if not isinstance(entries, list) or not entries:
        raise CheckFileError(f"checks file {path}: no [[check]] entries")
    checks, names = [], set()
    for i, entry in enumerate(entries, 1):
        where = f"checks file {path}: check #{i}"
        if not isinstance(entry, dict):
            raise CheckFileError(f"{where}: must be a table")
        unknown = set(entry) - KNOWN
        if unknown:
            raise CheckFileError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; "
                                 f"allowed: {', '.join(sorted(KNOWN))}")
        name = entry.get("name")
        if not isinstance(name, str) or not name.strip():
            raise CheckFileError(f"{where}: needs a name")
        where = f"checks file {path}: check {name!r}"
        if name in names:
            raise CheckFileError(f"{where}: duplicate name")
        names.add(name)
        p = entry.get("path")
        if not isinstance(p, str) or not p.startswith("/"):
            raise CheckFileError(f"{where}: path must be a string starting with /")
        method = str(entry.get("method", "GET")).upper()
        if method not in METHODS:
            raise CheckFileError(f"{where}: method {method} not one of {', '.join(sorted(METHODS))}")
        status = entry.get("status", 200)
        if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
            raise CheckFileError(f"{where}: status must be an HTTP status code, got {status!r}")
        expr = entry.get("jq")
        if expr is not None:
            if not isinstance(expr, str):
                raise CheckFileError(f"{where}: jq must be a string")
            try:
                _compiled(expr)
            except ValueError as exc:
                raise CheckFileError(f"{where}: {exc}") from None
        auth = entry.get("auth", True)
        if not isinstance(auth, bool):
            raise CheckFileError(f"{where}: auth must be true or false")
        headers = entry.get("headers", {})
        if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
            raise CheckFileError(f"{where}: headers must be a table of strings")
        checks.append(Check(name, p, method, status, expr, auth, entry.get("body"), headers))
    return checks
