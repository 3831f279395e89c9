"""The shipped alert rules and dashboard (payment_service/monitoring/): promtool's syntax check
and unit tests, the seed's original rules failing the same unit tests where they are wrong, and
every dashboard query answering data from a real Prometheus after real traffic."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from zerodrop.payment_service.monitoring import ALERT_RULES, ALERT_RULES_TEST, DASHBOARD
from zerodrop.payment_service.monitoring.dashboard import check_dashboard, dashboard_queries
from tests.monitoring.conftest import require

HERE = Path(__file__).resolve().parent
SEED_RULES = HERE / "seed-alert-rules.yaml"
SEED_DASHBOARD = HERE / "seed-dashboard.json"


def promtool(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([require("promtool"), *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=60)


def failures(output: str) -> dict[tuple[str, str, str], dict[str, list[str]]]:
    """promtool test rules' FAILED blocks: (test name, alertname, eval time) -> the label sets
    it expected and the ones it got."""
    found = {}
    for block in re.split(r"\n\s*name: ", output)[1:]:
        head = re.match(r"(.*),\n\s*alertname: (\w+), time: (\S+),", block)
        assert head, f"unexpected promtool output: {block[:300]!r}"
        exp, _, got = block.partition("got:")
        labels = lambda text: re.findall(r"Labels:\{(.*?)\}", text)  # noqa: E731
        found[head.groups()] = {"exp": labels(exp), "got": labels(got)}
    return found


# -- the corrected rules ------------------------------------------------------------------------
def test_promtool_check_rules_passes_on_the_corrected_rules():
    done = promtool("check", "rules", ALERT_RULES, cwd=ALERT_RULES.parent)
    assert done.returncode == 0 and "SUCCESS: 4 rules found" in done.stdout, done.stdout + done.stderr


def test_promtool_unit_tests_pass_on_the_corrected_rules():
    done = promtool("test", "rules", ALERT_RULES_TEST.name, cwd=ALERT_RULES_TEST.parent)
    assert done.returncode == 0 and "SUCCESS" in done.stdout, done.stdout + done.stderr


def test_every_alert_is_tested_firing_and_silent():
    rules = yaml.safe_load(ALERT_RULES.read_text())
    names = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    firing, silent = set(), set()
    for t in yaml.safe_load(ALERT_RULES_TEST.read_text())["tests"]:
        for case in t.get("alert_rule_test", []):
            for exp in case["exp_alerts"] or [None]:
                if exp is None:
                    silent.add(case["alertname"])
                else:
                    firing.add((case["alertname"], exp["exp_labels"].get("anomaly")))
    assert names == {"BlueGreenDeploymentFailed", "BlueGreenTrafficSwitchAnomaly",
                     "BlueGreenHighErrorRate"}
    assert silent == names
    assert firing == {("BlueGreenDeploymentFailed", None), ("BlueGreenHighErrorRate", None),
                      ("BlueGreenTrafficSwitchAnomaly", "split"),
                      ("BlueGreenTrafficSwitchAnomaly", "no_traffic")}


# -- negative control: the seed's rules under the same unit tests -----------------------------
# test name (its start), alert, time -> what the seed did wrong there
SEED_WRONG = {
    ("unavailable replicas of payment-service-blue", "BlueGreenDeploymentFailed", "10m"):
        "its regex .-blue matches one character before -blue: silent",
    ("all traffic on one colour", "BlueGreenTrafficSwitchAnomaly", "10m"):
        "fires in the normal state",
    ("all traffic on one colour", "BlueGreenTrafficSwitchAnomaly", "50m"):
        "fires in the normal state",
    ("a switch from blue to green", "BlueGreenTrafficSwitchAnomaly", "55m"):
        "fires once the switch is done (all on green)",
    ("both colours serving half", "BlueGreenTrafficSwitchAnomaly", "45m"):
        "silent when both serve (|rate - rate| = 0)",
    ("traffic that stops reaching", "BlueGreenTrafficSwitchAnomaly", "15m"):
        "fires before, in the normal state",
    ("traffic that stops reaching", "BlueGreenTrafficSwitchAnomaly", "30m"):
        "silent when nothing gets traffic",
    ("10% 5xx on green", "BlueGreenHighErrorRate", "10m"):
        "fires without the service label",
    ("readiness probes answered 503", "BlueGreenHighErrorRate", "10m"):
        "counts probe 503s as client errors",
}


@pytest.fixture(scope="module")
def seed_failures(tmp_path_factory) -> dict:
    tests = yaml.safe_load(ALERT_RULES_TEST.read_text())
    tests["rule_files"] = [str(SEED_RULES)]
    run_dir = tmp_path_factory.mktemp("seed-rules")
    (run_dir / "seed.test.yaml").write_text(yaml.safe_dump(tests, sort_keys=False))
    done = promtool("test", "rules", "seed.test.yaml", cwd=run_dir)
    output = done.stdout + done.stderr  # promtool prints FAILED on stderr, the cases on stdout
    assert done.returncode == 1 and "FAILED" in output, output
    found = failures(output)
    return {next((k for k in SEED_WRONG if name.startswith(k[0]) and k[1:] == (alert, at)),
                 (name, alert, at)): got for (name, alert, at), got in found.items()}


def test_the_seed_rules_pass_promtool_check_so_only_unit_tests_catch_them():
    done = promtool("check", "rules", SEED_RULES, cwd=HERE)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_seed_rules_fail_exactly_where_they_are_wrong(seed_failures):
    assert set(seed_failures) == set(SEED_WRONG), (
        f"unexpected: {sorted(set(seed_failures) - set(SEED_WRONG))}; "
        f"not failed: {sorted(set(SEED_WRONG) - set(seed_failures))}")


def test_the_seed_regex_misses_payment_service_blue(seed_failures):
    case = seed_failures[("unavailable replicas of payment-service-blue",
                          "BlueGreenDeploymentFailed", "10m")]
    assert case["got"] == [] and 'deployment="payment-service-blue"' in case["exp"][0]


def test_the_seed_anomaly_fires_when_all_traffic_is_on_one_colour(seed_failures):
    for at in ("10m", "50m"):
        case = seed_failures[("all traffic on one colour", "BlueGreenTrafficSwitchAnomaly", at)]
        assert case["exp"] == [] and len(case["got"]) == 1, case
    split = seed_failures[("both colours serving half", "BlueGreenTrafficSwitchAnomaly", "45m")]
    assert split["got"] == [] and 'anomaly="split"' in split["exp"][0]


def test_the_seed_error_rate_lacks_the_service_and_counts_probes(seed_failures):
    labelled = seed_failures[("10% 5xx on green", "BlueGreenHighErrorRate", "10m")]
    assert "service=" not in labelled["got"][0] and 'service="payment-service"' in labelled["exp"][0]
    probes = seed_failures[("readiness probes answered 503", "BlueGreenHighErrorRate", "10m")]
    assert probes["exp"] == [] and 'version="blue"' in probes["got"][0]


# -- the dashboard ------------------------------------------------------------------------------
def test_the_dashboard_is_a_grafana_dashboard_model():
    model = json.loads(DASHBOARD.read_text())
    assert model["uid"] and model["title"] and model["schemaVersion"] >= 36
    panels = model["panels"]
    assert len({p["id"] for p in panels}) == len(panels) == 5
    assert [v["name"] for v in model["templating"]["list"]] == ["datasource"]
    for p in panels:
        assert p["type"] in {"stat", "timeseries", "table"}, p["type"]  # "graph" is gone from Grafana
        assert set(p["gridPos"]) == {"x", "y", "w", "h"} and p["description"]
        for t in p["targets"]:
            assert t["refId"] and t["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    queries = dashboard_queries()
    assert len(queries) == 5
    assert [q.panel for q in queries if q.needs] == ["Pod Status by Version"]


def test_every_dashboard_query_answers_data_after_traffic(observed):
    """Only the kube-state-metrics panel answers nothing on the local platform, and it is
    reported as such (not skipped): on a cluster with kube-state-metrics it must have data."""
    for prom in (observed.prom, observed.prom.url):  # the object and a plain URL agree
        problems = check_dashboard(prom)
        assert [(p.query.panel, p.kind, p.query.needs) for p in problems] == [
            ("Pod Status by Version", "no_data", "kube-state-metrics")], [str(p) for p in problems]
        assert "needs kube-state-metrics" in str(problems[0])


def test_the_dashboard_check_reports_queries_that_match_nothing_or_break(observed):
    broken = {"panels": [
        {"title": "wrong label", "targets": [
            {"refId": "A", "expr": 'sum(rate(http_requests_total{app="payment-service"}[1m]))'}]},
        {"title": "typo", "targets": [{"refId": "B", "expr": "sum(rate(http_requests_total[1m])"}]},
        {"type": "row", "title": "a collapsed row", "panels": [
            {"title": "nested", "targets": [{"refId": "C", "expr": "vector(1)"}]}]},
    ]}
    problems = check_dashboard(observed.prom, broken)
    assert [(p.query.panel, p.kind) for p in problems] == [("wrong label", "no_data"),
                                                          ("typo", "error")], problems
    assert "parse error" in problems[1].detail
    assert [q.panel for q in dashboard_queries(broken)] == ["wrong label", "typo", "nested"]
    # the seed's dashboard: its Active Version reads kube_service_labels, which nothing here
    # (nor a default kube-state-metrics) exposes with a version label
    seed = [(p.query.panel, p.kind, p.query.needs) for p in check_dashboard(observed.prom, SEED_DASHBOARD)]
    assert ("Active Version", "no_data", "kube-state-metrics") in seed, seed
