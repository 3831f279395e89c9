"""The payment-service's monitoring, shipped beside its manifests: the seed's alert rules and
Grafana dashboard, corrected, and the PromQL its canary analysis reads.

=========================  ======================================================================
file                       what it holds
=========================  ======================================================================
alert-rules.yaml           the three blue-green alerts (``promtool check rules``)
alert-rules.test.yaml      their unit tests (``promtool test rules alert-rules.test.yaml``)
dashboard.json             the Grafana dashboard (the bare dashboard model: import it, or
                           provision it from a file or a ConfigMap)
queries.py                 the seed's canary queries (error rate, p99 by version), fixed
dashboard.py               every panel query of dashboard.json, and ``check_dashboard``: run them
                           against a Prometheus and report errors and empty answers
=========================  ======================================================================

They live with the service, not in the harness, because they describe this service's metrics
(names and labels from payment_service/metrics.py) and ship with it; like the rest of
``payment_service`` they import nothing of zerodrop, so ``check_dashboard`` takes any object with
a ``query(promql)`` method (``zerodrop.platforms.local.prometheus.LocalPrometheus``) or a URL.
"""
from __future__ import annotations

from pathlib import Path

HERE = Path(__file__).resolve().parent
ALERT_RULES = HERE / "alert-rules.yaml"
ALERT_RULES_TEST = HERE / "alert-rules.test.yaml"
DASHBOARD = HERE / "dashboard.json"
