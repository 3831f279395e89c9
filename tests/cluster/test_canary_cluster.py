"""The canary suite on the kind cluster, as a user starts it: a Prometheus URL that does not
answer stops the run in one line with exit 3 before anything is created on the cluster (the
seed's controller would have read its empty answers as 0.0 and promoted)."""
from __future__ import annotations

import pytest

from tests.cluster.conftest import CLUSTER
from tests.integration.conftest import run_pytest

pytestmark = pytest.mark.slow


def test_an_unreachable_prometheus_url_stops_the_canary_before_anything_is_created(cluster,
                                                                                 tmp_path):
    before = {n.metadata.name for n in _namespaces(cluster)}
    done = run_pytest("suites/canary", "--target", "kind", "--kind-cluster", CLUSTER,
                      "--keep-cluster", "--prometheus-url", "http://127.0.0.1:9",
                      "--alluredir", str(tmp_path / "allure"),
                      "--evidence-dir", str(tmp_path / "out"), timeout=300)
    assert done.returncode == 3, done.stdout[-3000:] + done.stderr[-2000:]
    out = done.stdout + done.stderr
    assert "Prometheus at http://127.0.0.1:9 cannot be used" in out, out[-3000:]
    assert "Traceback" not in out
    assert not list((tmp_path / "out").glob("canary-*.json")), "a canary ran without Prometheus"
    assert {n.metadata.name for n in _namespaces(cluster)} <= before, "a namespace was created"


def _namespaces(cluster):
    from kubernetes import client
    return client.CoreV1Api(cluster.api_client()).list_namespace().items

