"""Allure steps around every call a suite makes, with the response attached (never the token)."""
from __future__ import annotations

import json
from typing import Any

import allure
import requests

from zerodrop.checks.api import Api, dumps


def call(api: Api, method: str, path: str, *, body: Any = None, raw: str | None = None,
         auth: bool = True, headers: dict[str, str] | None = None,
         title: str | None = None) -> requests.Response:
    with allure.step(title or f"{method} {path}"):
        if body is not None:
            allure.attach(dumps(body), "request body", allure.attachment_type.JSON)
        elif raw is not None:
            allure.attach(raw, "request body (raw)", allure.attachment_type.TEXT)
        resp = api.request(method, path, body=body, raw=raw, auth=auth, headers=headers)
        attach_response(resp)
        return resp


def attach_response(resp: requests.Response) -> None:
    served = {k: v for k, v in resp.headers.items()
              if k.lower() in ("x-app-version", "x-app-color", "x-replica", "x-request-id")}
    allure.attach(f"HTTP {resp.status_code}\n{json.dumps(served)}\n\n{resp.text[:4000]}",
                  f"response {resp.status_code}", allure.attachment_type.TEXT)


def labels(feature: str, story: str, severity=allure.severity_level.CRITICAL):
    """The Allure labels every suite test carries: epic, feature, story, severity."""
    def wrap(fn):
        for deco in (allure.epic("zerodrop"), allure.feature(feature), allure.story(story),
                     allure.severity(severity)):
            fn = deco(fn)
        return fn
    return wrap
