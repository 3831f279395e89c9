"""ClusterPrometheus on a REAL kind cluster: a Prometheus in the run's namespace scrapes the
app's pods, and the canary's queries (payment_service/monitoring/queries.py) answer per version
through it: data for the colour that served client requests, "no data" (never 0) for a colour
whose pods answered only probes, an error (neither data nor no data) for bad PromQL. Beside it
kube-state-metrics, limited to the namespace's pods, gives the dashboard's "Pod Status by
Version" panel (``kube_pod_status_phase``) its data, so every panel of the shipped dashboard
answers after traffic.

One platform for the module (standing one up costs a minute on this machine): blue serves,
green runs one pod behind its preview Service that no client reaches, so green's only series
are its readiness probes', which the queries leave out of traffic."""
from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest
import requests

from zerodrop.payment_service.monitoring import queries
from zerodrop.payment_service.monitoring.dashboard import check_dashboard, dashboard_queries
from zerodrop.platforms.base import PlatformError
from zerodrop.platforms.kubernetes.platform import (KubeConfig, KubernetesPlatform,
                                                    new_namespace, stand_up)
from zerodrop.platforms.kubernetes.prometheus import (KUBE_STATE, KUBE_STATE_JOB,
                                                      KUBE_STATE_PORT, KUBE_STATE_VERSION, NAME,
                                                      ClusterPrometheus)
from zerodrop.platforms.local.prometheus import DATA, ERROR, NO_DATA, QueryResult

pytestmark = pytest.mark.slow
WINDOW = "30s"
# a real API route of the load's mix (load/arrivals.py's "balance"); a missing account is a
# 404, which is client traffic all the same and not an error (5xx)
ROUTE = "/api/accounts/load-account-0/balance"
ROOT = Path(__file__).resolve().parents[2]
POD_PANEL = "Pod Status by Version"


def wait_for(prom: ClusterPrometheus, promql: str, good, timeout: float = 45.0) -> QueryResult:
    """Poll until ``good(result)``; an error answer ends the wait at once. The timeout says
    what the query last answered."""
    deadline = time.monotonic() + timeout
    while True:
        result = prom.query(promql)
        if result.outcome == ERROR or good(result):
            return result
        if time.monotonic() >= deadline:
            pytest.fail(f"{promql!r} still answers {result.describe()} "
                        f"({[s.value for s in result.samples]}) after {timeout:g} s", pytrace=False)
        time.sleep(0.5)


def send(platform, n: int) -> dict[int, int]:
    """``n`` real API requests through the Service (new connections, as clients come);
    status -> count."""
    seen: dict[int, int] = {}
    headers = {"Authorization": f"Bearer {platform.config.token}", "Connection": "close"}
    for _ in range(n):
        r = requests.get(f"{platform.service_url}{ROUTE}", headers=headers, timeout=5)
        seen[r.status_code] = seen.get(r.status_code, 0) + 1
        time.sleep(0.02)  # spread over scrapes: a burst inside one scrape shows no increase
    return seen


# first: it needs a NodePort of its own, before the module's platform holds four of the ten
def test_an_image_the_node_lacks_fails_in_one_line_and_remove_frees_everything(cluster, run_id):
    """Negative control for wait_ready: no registry, so an image never loaded into the node
    cannot start; the timeout says why (the pod's pull state), and remove() deletes every object
    install made, the NodePort with it. A bare namespace: no app is needed to see this."""
    platform = KubernetesPlatform(cluster, new_namespace(run_id, "prom-noimage"),
                                  KubeConfig(run_id=run_id))
    try:
        platform._create_namespace()
        prom = ClusterPrometheus(image="zerodrop/no-such-prometheus:dev")
        prom.install(platform)
        with pytest.raises(PlatformError) as info:
            prom.wait_ready(timeout=20)
        message = str(info.value)
        assert "\n" not in message and "not ready after 20 s" in message, message
        assert "ImagePull" in message or "ErrImage" in message, message
        prom.remove()
        ns = platform.namespace
        assert platform.core.list_namespaced_service(ns).items == []
        assert platform.core.list_namespaced_config_map(
            ns, label_selector=f"app.kubernetes.io/name={NAME}").items == []
        assert platform.apps.list_namespaced_deployment(ns).items == []
        names = {a.metadata.name for a in platform.core.list_namespaced_service_account(ns).items}
        assert NAME not in names and KUBE_STATE not in names, names
        rbac = _rbac(platform)
        assert rbac.list_namespaced_role(ns).items == []
        assert rbac.list_namespaced_role_binding(ns).items == []
        with pytest.raises(PlatformError, match="no NodePort"):
            prom.url
    finally:
        platform.teardown()


def _rbac(platform):
    from kubernetes import client
    return client.RbacAuthorizationV1Api(platform.core.api_client)


def test_prometheus_does_not_wait_on_a_kube_state_metrics_that_cannot_start(cluster, run_id):
    """Negative control for wait_kube_state, and the reason Prometheus does not depend on it: an
    exporter image the node lacks leaves Prometheus ready and serving, and wait_kube_state
    fails in one line that says why (the exporter's pull state), not "no data" alone."""
    platform = KubernetesPlatform(cluster, new_namespace(run_id, "prom-noksm"),
                                  KubeConfig(run_id=run_id))
    try:
        platform._create_namespace()
        prom = ClusterPrometheus(kube_state_image="zerodrop/no-such-kube-state-metrics:v0")
        prom.install(platform)
        prom.wait_ready(timeout=120)
        # Prometheus serves and scrapes; the exporter's target is there, and down
        up = wait_for(prom, f'up{{job="{KUBE_STATE_JOB}"}}', lambda r: r.has_data)
        assert up.outcome == DATA and up.value == 0, up
        with pytest.raises(PlatformError) as info:
            prom.wait_kube_state(timeout=15)
        message = str(info.value)
        assert "\n" not in message and "after 15 s" in message, message
        assert "none exists" in message, message  # a bare namespace: no app pod to describe
        assert "ImagePull" in message or "ErrImage" in message, message
        # the dashboard check names the missing exporter for the pod panel
        pod_panel = [p for p in check_dashboard(SimpleNamespace(query=prom.query))
                     if p.query.panel == POD_PANEL]
        assert [p.kind for p in pod_panel] == ["no_data"], pod_panel
        assert "needs kube-state-metrics" in str(pod_panel[0]), pod_panel
    finally:
        platform.teardown()


@pytest.fixture(scope="module")
def observed(cluster, run_id):
    """The platform, its Prometheus scraping every app pod, and ~100 requests to blue counted
    by it; everything deleted with the namespace at the end, on failure too."""
    platform = stand_up(cluster, KubeConfig(replicas=1, run_id=run_id, ready_timeout=150),
                        new_namespace(run_id, "prom"), idle_replicas=1)
    try:
        prom = ClusterPrometheus()
        prom.install(platform)
        prom.wait_scraped(timeout=120)
        # the series must exist before the bulk of the requests, or increase() sees one value
        sent = send(platform, 5)
        traffic = f'http_requests_total{queries.selector(version="blue")}'
        wait_for(prom, traffic, lambda r: r.has_data)
        sent = {k: sent.get(k, 0) + v for k, v in send(platform, 95).items()}
        wait_for(prom, queries.requests("blue", WINDOW), lambda r: r.has_data and r.value > 50)
        yield platform, prom, sent
    finally:
        platform.teardown()


def test_it_scrapes_every_app_pod_and_nothing_else(observed):
    platform, prom, _ = observed
    assert prom.url == platform._url(NAME) and prom.url.startswith("http://")
    # every app pod (blue's and green's) is a target of the app's job, up; nothing else is (not
    # Prometheus itself, not PostgreSQL); the one other target is kube-state-metrics' Service
    prom.wait_kube_state(timeout=60)  # its target is scraped: health known
    targets = prom.active_targets()
    app = [t for t in targets if t["labels"]["job"] != KUBE_STATE_JOB]
    pods = prom.app_pod_addresses()
    assert len(pods) == 2 and {t["labels"]["instance"] for t in app} == pods, (targets, pods)
    kube_state = [t["labels"]["instance"] for t in targets
                  if t["labels"]["job"] == KUBE_STATE_JOB]
    assert kube_state == [f"{KUBE_STATE}.{platform.namespace}.svc:{KUBE_STATE_PORT}"], targets
    assert all(t["health"] == "up" for t in targets), targets
    # Prometheus reads no API: its pod has no ServiceAccount token
    sa = platform.core.read_namespaced_service_account(NAME, platform.namespace)
    assert sa.automount_service_account_token is False


def test_kube_state_metrics_may_only_list_and_watch_pods_in_the_namespace(observed):
    """kube-state-metrics has a token (it watches pods) and a Role that grants exactly list and
    watch on pods, bound to its ServiceAccount only; nothing cluster-scoped is created for it."""
    platform, _, _ = observed
    ns = platform.namespace
    sa = platform.core.read_namespaced_service_account(KUBE_STATE, ns)
    assert sa.automount_service_account_token is True
    rbac = _rbac(platform)
    [role] = rbac.list_namespaced_role(ns).items
    assert role.metadata.name == KUBE_STATE
    assert [(r.api_groups, r.resources, sorted(r.verbs)) for r in role.rules] == [
        ([""], ["pods"], ["list", "watch"])]
    [binding] = rbac.list_namespaced_role_binding(ns).items
    assert (binding.role_ref.kind, binding.role_ref.name) == ("Role", KUBE_STATE)
    assert [(s.kind, s.name, s.namespace) for s in binding.subjects] == [
        ("ServiceAccount", KUBE_STATE, ns)]
    run = f"zerodrop.io/run={platform.config.run_id}"
    assert rbac.list_cluster_role_binding(label_selector=run).items == []
    [pod] = platform.core.list_namespaced_pod(
        ns, label_selector=f"app.kubernetes.io/name={KUBE_STATE}").items
    args = pod.spec.containers[0].args
    assert f"--namespaces={ns}" in args and "--resources=pods" in args, args
    assert pod.spec.security_context.run_as_non_root is True


def test_pod_status_panel_has_one_current_phase_per_app_pod(observed):
    """The dashboard's pod panel query, through the cluster Prometheus: one sample per app pod
    (blue's and green's, by the API's own list), each Running; and kube-state-metrics sees
    only its own namespace (--namespaces), though other runs' pods share the cluster."""
    platform, prom, _ = observed
    prom.wait_kube_state(timeout=60)
    [panel] = [q for q in dashboard_queries() if q.panel == POD_PANEL]
    result = prom.query(panel.expr)
    assert result.outcome == DATA, result
    # blue's and green's pods: the layout's selector also picks the finished migration Job's
    # pod, which the panel's pod-name regex leaves out
    pods = {p.metadata.name for p in platform.core.list_namespaced_pod(
        platform.namespace, label_selector=platform.layout.label_selector()).items
        if platform.layout.color_of(p.metadata.labels)}
    names = [s.labels["pod"] for s in result.samples]
    assert len(pods) == 2 and sorted(names) == sorted(pods), (names, pods)
    assert {s.labels["phase"] for s in result.samples} == {"Running"}, result.samples
    assert all(s.value == 1 for s in result.samples)
    by_ns = prom.query("count by (namespace) (kube_pod_status_phase)")
    assert set(by_ns.by("namespace")) == {platform.namespace}, by_ns
    # negative control: the same query for a service that does not exist matches no pod
    nobody = prom.query(panel.expr.replace("payment-service", "no-such-service"))
    assert "no-such-service" in nobody.query and nobody.outcome == NO_DATA, nobody


def test_every_dashboard_panel_answers_after_traffic(observed):
    """check_dashboard finds no problem in any panel of the shipped dashboard: the traffic
    panels (1 m rates) after fresh requests, the pod panel from kube-state-metrics."""
    platform, prom, _ = observed
    prom.wait_kube_state(timeout=60)
    sent = send(platform, 40)
    assert all(s < 500 for s in sent), sent
    # the dashboard's own window: wait until its rate has moved, so no panel is only NaN
    one_minute = f"sum(rate(http_requests_total{queries.selector(version='blue')}[1m]))"
    wait_for(prom, one_minute, lambda r: r.has_data and r.value > 0)
    problems = check_dashboard(SimpleNamespace(query=prom.query))
    assert problems == [], [str(p) for p in problems]
    assert any(q.panel == POD_PANEL for q in dashboard_queries())  # the panel was checked


def test_the_kube_state_metrics_image_is_the_one_the_build_script_makes():
    """The module names the image as a constant (it may be installed away from this checkout);
    the build script reads infra/cluster/kube-state-metrics-build/VERSION: the two agree."""
    version = (ROOT / "infra/cluster/kube-state-metrics-build/VERSION").read_text().strip()
    assert KUBE_STATE_VERSION == version


def test_blue_has_data_and_green_without_traffic_has_no_data(observed):
    platform, prom, sent = observed
    assert sum(sent.values()) == 100 and all(s < 500 for s in sent), sent
    blue = prom.query(queries.requests("blue", WINDOW))
    assert blue.outcome == DATA and blue.value > 0, blue
    # green's pod is scraped (its probes are series) but no client reached it: no data, not 0
    green = prom.query(queries.requests("green", WINDOW))
    assert green.outcome == NO_DATA, green
    assert prom.query('http_requests_total{version="green"}').outcome == DATA  # it is scraped
    rate = prom.query(queries.error_rate("blue", WINDOW))
    assert rate.outcome == DATA and rate.value == 0.0, rate
    assert prom.query(queries.error_rate("green", WINDOW)).outcome == NO_DATA
    p99 = prom.query(queries.p99_ms("blue", WINDOW))
    assert p99.outcome == DATA and 0 < p99.value < 60_000, p99


def test_the_version_label_is_the_apps_own(observed):
    """honor_labels: the scraped ``version`` is the app's colour, and no target label renamed
    it (a clash would leave ``exported_version`` behind)."""
    _, prom, _ = observed
    by_version = prom.query(f'sum by (version) (http_requests_total{queries.selector()})')
    assert set(by_version.by("version")) == {"blue"}, by_version
    assert prom.query('{__name__=~"http_.+", exported_version=~".+"}').outcome == NO_DATA


def test_negative_controls_no_data_and_error_are_their_own_outcomes(observed):
    _, prom, _ = observed
    nobody = prom.query(queries.requests("purple", WINDOW))  # a version no pod has
    assert nobody.outcome == NO_DATA, nobody
    with pytest.raises(PlatformError, match="no value"):
        nobody.value
    broken = prom.query("sum(rate(http_requests_total[30s]")
    assert broken.outcome == ERROR and broken.error_type == "bad_data", broken
    assert "parse error" in broken.error
    assert not broken.has_data


def test_a_prometheus_that_is_not_installed_says_so_in_one_line():
    with pytest.raises(PlatformError, match="not installed; call install"):
        ClusterPrometheus().url


def test_a_second_install_fails_in_one_line_and_leaves_the_first_alone(observed):
    """Cleanup on failure deletes only what that install created: the clash is on its first
    object, so the running Prometheus keeps answering."""
    platform, prom, _ = observed
    with pytest.raises(PlatformError) as info:
        ClusterPrometheus().install(platform)
    message = str(info.value)
    assert "\n" not in message and "create ServiceAccount prometheus" in message, message
    assert "409" in message, message
    assert prom.query("up").has_data  # the first one still serves
