"""The command that starts one replica (``--app-cmd``) and the one that migrates the database
before any replica starts (``--migrate-cmd``): templates with placeholders, checked before
anything starts.

A template is split like a shell command line (``shlex``), then each word gets its
placeholders: ``{port}`` (the port the platform chose for the replica; also ``PORT``),
``{version}`` (also ``APP_VERSION``), ``{color}`` (also ``ZD_COLOR``), ``{replica}`` (also
``REPLICA_NAME``) and ``{python}`` (this interpreter). No shell runs it: a word is one argument.
The reference payment-service is the default, written as any other app would be.
"""
from __future__ import annotations

import shlex
import string
import sys

from zerodrop.platforms.base import PlatformError

DEFAULT_APP_CMD = "{python} -m zerodrop.payment_service serve --host 127.0.0.1 --port {port}"
DEFAULT_MIGRATE_CMD = "{python} -m zerodrop.payment_service migrate"
APP_PLACEHOLDERS = ("port", "version", "color", "replica", "python")
MIGRATE_PLACEHOLDERS = ("python",)


def check(template: str, option: str, allowed: tuple[str, ...] = APP_PLACEHOLDERS) -> list[str]:
    """The template's words; PlatformError (one line) for an empty command, unbalanced quotes,
    a bad brace or a placeholder that does not exist."""
    try:
        words = shlex.split(template)
    except ValueError as exc:
        raise PlatformError(f"{option} {template!r}: {exc}") from None
    if not words:
        raise PlatformError(f"{option} is empty: give the command that starts the app")
    for word in words:
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(word) if f is not None]
        except ValueError as exc:
            raise PlatformError(f"{option} {template!r}: {exc} (write a literal brace as {{{{ or }}}})") \
                from None
        unknown = [f for f in fields if f not in allowed]
        if unknown:
            raise PlatformError(f"{option} {template!r}: unknown placeholder {{{unknown[0]}}}; "
                                f"use {', '.join('{' + a + '}' for a in allowed)}")
    return words


def render(template: str, option: str, **values: object) -> list[str]:
    """The argument list for one run: the template's words with their placeholders filled."""
    values.setdefault("python", sys.executable)
    allowed = APP_PLACEHOLDERS if option == "--app-cmd" else MIGRATE_PLACEHOLDERS
    return [w.format(**values) for w in check(template, option, allowed)]
