"""``--target url``: any running deployment, reached at ``--base-url``. Checked for
reachability and the token before any test; it gives no platform, so no proof runs on it."""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from typing import Any

from zerodrop.platforms.base import COLORS, Platform, PlatformError, Target
from zerodrop.platforms.provider import Provider, Run, Say, TargetError


@dataclass
class UrlSession:
    resolved: Target | None = None  # the checked target, once checked


class UrlProvider(Provider):
    name = "url"
    summary = "a running deployment, with --base-url"
    can_switch = False

    def add_options(self, group: Any) -> None:
        group.addoption("--base-url", default=os.environ.get("ZERODROP_BASE_URL", ""),
                        help="--target url: the Service address, e.g. http://127.0.0.1:8080 "
                             "[env ZERODROP_BASE_URL]")
        group.addoption("--preview-url", action="append", default=[], metavar="COLOR=URL",
                        help="--target url: the address of one colour only (repeatable), "
                             "for --preview")

    def check_options(self, options: Any, parallel: bool = False) -> None:
        for item in options.preview_url:
            if "=" not in item:
                raise ValueError(f"--preview-url takes COLOR=URL, got {item!r}")

    def describe(self, options: Any) -> str:
        return options.base_url

    def acquire(self, options: Any, run: Run, say: Say = print) -> UrlSession:
        return UrlSession()

    def session_to_worker(self, session: UrlSession) -> dict:
        return {"resolved": asdict(session.resolved) if session.resolved else None}

    def session_from_worker(self, data: dict) -> UrlSession:
        resolved = data.get("resolved")
        return UrlSession(Target(**resolved) if resolved else None)

    def target(self, session: UrlSession, options: Any) -> Target:
        if session.resolved is None:
            previews = dict(item.split("=", 1) for item in options.preview_url)
            session.resolved = url_target(options.base_url, options.token, previews,
                                          timeout=options.request_timeout,
                                          profile=getattr(options, "service_profile", None))
        return session.resolved

    def platform(self, session: Any, options: Any, name: str, **stand_up: Any) -> Platform:
        raise PlatformError("--target url gives no platform to switch; use a target that "
                            "stands one up")

    def release(self, session: Any, say: Say = print) -> None:
        pass


def url_target(base_url: str, token: str, preview_urls: dict[str, str],
               timeout: float = 5.0, profile=None) -> Target:
    """A running deployment; refuses early, in one line, when it cannot be used. The token is
    tried on the profile's first authenticated GET (the payment-service's: a balance read)."""
    import requests

    from zerodrop.profiles import profile as profiles
    profile = profile or profiles.load()
    if not base_url:
        raise TargetError("--target url needs --base-url, e.g. --base-url http://127.0.0.1:8080")
    if not base_url.startswith(("http://", "https://")):
        raise TargetError(f"--base-url must start with http:// or https://, got {base_url!r}")
    base_url = base_url.rstrip("/")
    for color in preview_urls:
        if color not in COLORS:
            raise TargetError(f"--preview-url colour must be blue or green, got {color!r}")
    try:
        requests.get(f"{base_url}{profile.health}", timeout=timeout)
    except requests.RequestException as exc:
        raise TargetError(f"cannot reach --base-url {base_url} ({_reason(exc)}); is the "
                          f"service running and the address right?") from None
    probe = _token_probe(profile)
    if probe is None:
        return Target("url", base_url, token, {c: u.rstrip("/") for c, u in preview_urls.items()})
    try:
        resp = requests.get(f"{base_url}{probe}", headers=profile.auth_headers(token), timeout=timeout)
    except requests.RequestException as exc:
        raise TargetError(f"{base_url} stopped answering ({_reason(exc)})") from None
    if resp.status_code in (401, 403):
        raise TargetError(f"{base_url} rejected the token (HTTP {resp.status_code}); pass the "
                          f"right one with --token or ZERODROP_TOKEN")
    return Target("url", base_url, token, {c: u.rstrip("/") for c, u in preview_urls.items()})


def _token_probe(profile) -> str | None:
    """A path the token is tried on: the profile's first authenticated GET that needs no saved
    value (None: the service takes no token, or the profile has no such request)."""
    import random

    from zerodrop.profiles.profile import render_request
    if profile.auth != "bearer":
        return None
    for spec in profile.requests:
        if spec.method == "GET" and spec.auth and not spec.replay and \
                not any(g.kind == "saved" for g in spec.values.values()):
            return render_request(profile, spec, random.Random(0)).path
    return None


def _reason(exc: Exception) -> str:
    text = str(exc)
    for marker in ("Connection refused", "timed out", "Name or service not known",
                   "No route to host"):
        if marker in text:
            return marker.lower()
    return type(exc).__name__


PROVIDER = UrlProvider()
