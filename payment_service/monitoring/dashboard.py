"""Every panel query of a Grafana dashboard, and a check that runs them against a Prometheus.

A dashboard whose queries match nothing is a defect (the seed's read labels its service never
exposed), so ``check_dashboard`` reports each query that errors or answers nothing. An answer of
only NaN counts as nothing. Queries on ``kube_*`` series need kube-state-metrics; when they answer
nothing, the problem says so (``needs``), so a caller can tell "no exporter here" from "wrong
query" without the query being skipped.

``prom`` is either a Prometheus base URL (asked here with the standard library) or any object with
``query(promql)`` answering an object with ``outcome`` ("data", "no_data" or "error") and ``error``,
as ``zerodrop.platforms.local.prometheus.LocalPrometheus`` does.
"""
from __future__ import annotations

import json
import math
import re
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Mapping

from . import DASHBOARD

# Grafana's own variables, given the values a check needs to run the text as PromQL
DEFAULT_VARIABLES = {"__rate_interval": "1m", "__interval": "15s", "__range": "1h"}
_EXPORTERS = (("kube_", "kube-state-metrics"), ("node_", "node-exporter"))


@dataclass(frozen=True)
class PanelQuery:
    panel: str
    ref_id: str
    expr: str
    needs: str | None = None  # the exporter its series come from, when not the service itself


@dataclass(frozen=True)
class Problem:
    query: PanelQuery
    kind: str          # "error" or "no_data"
    detail: str = ""

    def __str__(self) -> str:
        q = self.query
        text = f"panel {q.panel!r} query {q.ref_id}: {self.kind}"
        if self.detail:
            text += f": {self.detail}"
        if self.kind == "no_data" and q.needs:
            text += f" (needs {q.needs}, which this Prometheus does not scrape)"
        return text


def load(path: str | Path = DASHBOARD) -> dict:
    with open(path, encoding="utf-8") as f:
        model = json.load(f)
    return model.get("dashboard", model)  # the seed's API form wraps the model


def _panels(panels: list[dict]):
    for p in panels:
        yield p
        yield from _panels(p.get("panels") or [])  # a collapsed row holds its panels


def dashboard_queries(dashboard: Mapping | str | Path | None = None,
                      variables: Mapping[str, str] | None = None) -> list[PanelQuery]:
    """Every Prometheus query of every panel, in panel order; Grafana variables substituted."""
    model = load(dashboard or DASHBOARD) if not isinstance(dashboard, Mapping) else \
        dashboard.get("dashboard", dashboard)
    values = {**DEFAULT_VARIABLES, **(variables or {})}
    found = []
    for panel in _panels(model.get("panels") or []):
        for t in panel.get("targets") or []:
            expr = t.get("expr")
            if not expr:
                continue
            expr = re.sub(r"\$\{(\w+)\}|\$(\w+)",
                          lambda m: values.get(m.group(1) or m.group(2), m.group(0)), expr)
            needs = next((who for prefix, who in _EXPORTERS
                          if re.search(rf"\b{prefix}\w+", expr)), None)
            found.append(PanelQuery(panel.get("title", f"panel {panel.get('id')}"),
                                    t.get("refId", "?"), expr, needs))
    return found


def check_dashboard(prom: Any, dashboard: Mapping | str | Path | None = None,
                    variables: Mapping[str, str] | None = None) -> list[Problem]:
    """Run every panel query; one Problem per query that errors or answers no data."""
    asker = _UrlPrometheus(prom) if isinstance(prom, str) else prom
    problems = []
    for q in dashboard_queries(dashboard, variables):
        if "$" in q.expr:
            problems.append(Problem(q, "error", f"unknown Grafana variable in {q.expr!r}"))
            continue
        answer = asker.query(q.expr)
        if answer.outcome == "error":
            problems.append(Problem(q, "error", answer.error))
        elif answer.outcome != "data":
            problems.append(Problem(q, "no_data", "an empty result or only NaN"))
    return problems


class _UrlPrometheus:
    """/api/v1/query with the standard library (payment_service depends on no HTTP client)."""

    def __init__(self, url: str, timeout: float = 10.0):
        self.url, self.timeout = url.rstrip("/"), timeout

    def query(self, promql: str) -> SimpleNamespace:
        data = urllib.parse.urlencode({"query": promql}).encode()
        try:
            with urllib.request.urlopen(f"{self.url}/api/v1/query", data, self.timeout) as r:
                body = json.load(r)
        except urllib.error.HTTPError as exc:  # 400/422/503 carry Prometheus' JSON error
            try:
                body = json.load(exc)
            except ValueError:
                return SimpleNamespace(outcome="error", error=f"HTTP {exc.code}")
        except (OSError, ValueError) as exc:
            return SimpleNamespace(outcome="error", error=f"cannot ask {self.url}: {exc}")
        if body.get("status") != "success":
            return SimpleNamespace(outcome="error", error=str(body.get("error")))
        data = body["data"]
        result = data["result"]
        if data["resultType"] in ("scalar", "string"):
            values = [result[1]]
        elif data["resultType"] == "matrix":
            values = [r["values"][-1][1] for r in result if r.get("values")]
        else:
            values = [r["value"][1] for r in result]
        real = [v for v in values if not math.isnan(float(v))]
        return SimpleNamespace(outcome="data" if real else "no_data", error="")
