"""The seed's canary PromQL (canary-controller.py: error rate and p99 by version), fixed.

The seed's queries read every request a replica counted, so kubelet probes and Prometheus' own
scrapes made a colour that no client reached look busy and healthy (a version with no traffic
answered 0 % errors); its error rate was empty, not 0, when a version had never answered a 5xx
(no ``status=~"5.."`` series exists yet); and 0/0 was NaN, which its ``return 0.0`` read as a pass.
Fixed here:

- requests to ``NOT_TRAFFIC`` routes (probes, scrapes, the harness's fault API) are left out;
- the error rate's numerator falls back to 0 x the traffic when there is traffic but no 5xx series,
  and its denominator keeps only traffic > 0: no traffic is an empty answer (``no_data``), never 0;
- the p99 of no observations is NaN, which the caller reads as ``no_data``.

Builders only: they return PromQL text and ask no one. ``window`` is a PromQL duration ("30s",
"5m") or seconds; it must span at least two scrapes, or ``rate()`` is empty.
"""
from __future__ import annotations

import json

SERVICE = "payment-service"
# route templates that are not client traffic (payment_service/app.py's route table)
NOT_TRAFFIC = "/health.*|/metrics|/admin/.*"


def _literal(value: str) -> str:
    return json.dumps(str(value))  # a double-quoted PromQL string with \" and \\ escaped


def _window(window: str | float) -> str:
    if isinstance(window, (int, float)):
        if window <= 0:
            raise ValueError(f"window must be > 0 s, got {window}")
        ms = round(window * 1000)
        return f"{ms // 1000}s" if ms % 1000 == 0 else f"{ms}ms"
    return window


def selector(service: str = SERVICE, version: str | None = None, extra: str = "") -> str:
    """The label matchers of a service's client traffic (optionally one version)."""
    parts = [f"service={_literal(service)}"]
    if version is not None:
        parts.append(f"version={_literal(version)}")
    parts.append(f"route!~{_literal(NOT_TRAFFIC)}")
    if extra:
        parts.append(extra)
    return "{" + ", ".join(parts) + "}"


def error_rate(version: str, window: str | float = "5m", service: str = SERVICE) -> str:
    """Percent of one version's client requests answered 5xx; empty when it had no traffic."""
    w = _window(window)
    total = f"sum(rate(http_requests_total{selector(service, version)}[{w}]))"
    five_xx = selector(service, version, 'status=~"5.."')
    errors = f"sum(rate(http_requests_total{five_xx}[{w}]))"
    return f"({errors} or {total} * 0) / ({total} > 0) * 100"


def p99_ms(version: str, window: str | float = "5m", service: str = SERVICE) -> str:
    """One version's 99th percentile latency of client requests, in ms; NaN when none."""
    w = _window(window)
    return (f"histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket"
            f"{selector(service, version)}[{w}]))) * 1000")


def requests(version: str, window: str | float = "5m", service: str = SERVICE) -> str:
    """How many client requests one version answered in the window (extrapolated by increase())."""
    return f"sum(increase(http_requests_total{selector(service, version)}[{_window(window)}]))"


def errors(version: str, window: str | float = "5m", service: str = SERVICE) -> str:
    """How many of one version's client requests were answered 5xx in the window; 0 (not empty)
    when it had traffic but no 5xx series exists yet, empty when it had no traffic."""
    w = _window(window)
    five_xx = selector(service, version, 'status=~"5.."')
    return (f"sum(increase(http_requests_total{five_xx}[{w}])) or "
            f"sum(increase(http_requests_total{selector(service, version)}[{w}])) * 0")


def bucket_at_or_above(seconds: float) -> float | None:
    """The smallest histogram bucket bound >= ``seconds`` (None: above every bound)."""
    from ..metrics import BUCKETS
    return next((b for b in BUCKETS if b >= seconds), None)


def slower_than(version: str, seconds: float, window: str | float = "5m",
                service: str = SERVICE) -> str:
    """How many of one version's client requests took longer than the histogram bucket bound
    at or above ``seconds`` (so never more than really took longer than ``seconds``: a count
    that errs towards passing); ValueError when ``seconds`` is above every bound."""
    from prometheus_client.utils import floatToGoString
    bound = bucket_at_or_above(seconds)
    if bound is None:
        raise ValueError(f"no histogram bucket at or above {seconds:g} s")
    w = _window(window)
    le = selector(service, version, f'le={_literal(floatToGoString(bound))}')
    return (f"sum(increase(http_request_duration_seconds_count{selector(service, version)}[{w}]))"
            f" - sum(increase(http_request_duration_seconds_bucket{le}[{w}]))")
