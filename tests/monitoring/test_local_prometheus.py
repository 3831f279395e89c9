"""LocalPrometheus: a real Prometheus scraping real replicas of the local platform, the seed's
canary queries (fixed) answering per version, no data as its own outcome, errors with
Prometheus' text, and nothing left behind."""
from __future__ import annotations

import math
import socket
import tempfile
from pathlib import Path

import pytest

from zerodrop.payment_service.monitoring import queries
from zerodrop.platforms.local.prometheus import (DATA, ERROR, INSTALL_HINT, NO_DATA,
                                                 LocalPrometheus, PrometheusError, classify)
from tests.integration.conftest import port_open
from tests.monitoring.conftest import WINDOW, require, seed_error_rate, seed_reading

pytestmark = pytest.mark.slow


# -- against the replicas ---------------------------------------------------------------------
def test_the_fixed_queries_answer_error_rate_and_p99_per_version(observed):
    prom, sent = observed.prom, observed.sent
    blue_errors = sent["blue"][500] / sum(sent["blue"].values())
    assert 0.15 < blue_errors < 0.25 and sent["green"].keys() == {200}, sent  # the fault's 1 in 5
    blue = prom.query(queries.error_rate("blue", WINDOW))
    green = prom.query(queries.error_rate("green", WINDOW))
    assert blue.outcome == DATA and abs(blue.value - 100 * blue_errors) < 5, (blue, sent)
    # green answered no 5xx at all: no 5xx series exists, and the answer is 0 %, not "nothing"
    assert green.outcome == DATA and green.value == 0.0, green
    assert prom.query(seed_error_rate("green")).outcome == NO_DATA  # where the seed had nothing
    for color in ("blue", "green"):
        p99 = prom.query(queries.p99_ms(color, WINDOW))
        assert p99.outcome == DATA and 0 < p99.value < 10_000, (color, p99)
        counted = prom.query(queries.requests(color, WINDOW))
        # increase() extrapolates to the window's edges: close to what was sent, not equal
        assert counted.outcome == DATA and counted.value > 0.5 * sum(sent[color].values()), counted


def test_a_version_without_traffic_is_no_data_where_the_seed_read_zero(observed):
    idle = observed.green_idle
    for name in ("error_rate", "p99_ms", "requests"):
        assert idle[name].outcome == NO_DATA, (name, idle[name])
        with pytest.raises(PrometheusError, match="no value"):
            idle[name].value
    # negative control: the seed's queries and its `return 0.0` on the same Prometheus at the same
    # moment: 0 % errors (a pass) and a p99 made of readiness probes, for a colour no client reached
    assert seed_reading(idle["seed_error_rate"]) == 0.0
    assert idle["seed_p99"].outcome == DATA and idle["seed_p99"].value > 0
    # and the fixed queries are not simply blind to green: with traffic they answer (test above)


def test_a_malformed_query_is_an_error_with_prometheus_text(observed):
    bad = observed.prom.query("sum(rate(http_requests_total[1m]")
    assert bad.outcome == ERROR and bad.error_type == "bad_data", bad
    assert "parse error" in bad.error
    with pytest.raises(PrometheusError, match="parse error"):
        bad.value
    # an error at evaluation (not at parsing) is an error too, never an empty answer
    clash = observed.prom.query("http_requests_total / on () http_requests_total")
    assert clash.outcome == ERROR and "many-to-many" in clash.error, clash


def test_scraped_series_carry_the_colour_label_and_keep_the_service_labels(observed):
    prom = observed.prom
    up = prom.query("up")
    assert up.by("color") == {"blue": 1.0, "green": 1.0}, up
    mixed = prom.query('http_requests_total{color="green", version!="green"}')
    assert mixed.outcome == NO_DATA, "a target label renamed the service's version label"
    assert prom.query('{__name__=~".+", exported_version=~".+"}').outcome == NO_DATA
    with pytest.raises(PrometheusError, match="clash with the service's own labels"):
        prom.set_targets({"blue": ["127.0.0.1:1"]}, labels={"blue": {"version": "v1"}})


def test_the_corrected_alert_rules_evaluate_on_the_real_series(observed):
    groups = observed.prom.api("rules")["groups"]
    rules = [r for g in groups for r in g["rules"]]
    assert len(rules) == 4 and all(r["health"] == "ok" for r in rules), rules
    # blue answers 20 % 5xx: the error-rate alert is pending (for: 1m) with the real labels
    pending = [a["labels"] for a in observed.prom.api("alerts")["alerts"]
               if a["labels"]["alertname"] == "BlueGreenHighErrorRate"]
    assert pending == [{"alertname": "BlueGreenHighErrorRate", "service": "payment-service",
                        "version": "blue", "severity": "critical"}], pending


# -- lifecycle and bad input ------------------------------------------------------------------
def test_stop_leaves_no_process_port_or_directory():
    require("prometheus")
    with LocalPrometheus() as prom:
        pid, port, workdir = prom.pid, prom.port, prom.workdir
        assert Path(f"/proc/{pid}").exists() and port_open(port) and workdir.is_dir()
        assert prom.query("vector(1)").value == 1.0
    assert not Path(f"/proc/{pid}").exists() and not port_open(port) and not workdir.exists()
    # an exception inside the block stops it too
    with pytest.raises(RuntimeError, match="boom"):
        with LocalPrometheus() as prom:
            pid, port, workdir = prom.pid, prom.port, prom.workdir
            raise RuntimeError("boom")
    assert not Path(f"/proc/{pid}").exists() and not port_open(port) and not workdir.exists()
    assert prom.query("vector(1)").outcome == ERROR  # stopped: it says so, it does not hang


@pytest.fixture
def own_tmp(tmp_path, monkeypatch):
    """Temporary directories of LocalPrometheus land here, so a leftover one can be seen."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    return tmp_path


def test_a_port_in_use_is_one_line_and_leaves_nothing(own_tmp):
    require("prometheus")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(PrometheusError) as err:
            LocalPrometheus(port=port).__enter__()
    msg = str(err.value)
    assert f"port {port} on 127.0.0.1 is already in use" in msg and "\n" not in msg, msg
    assert list(own_tmp.iterdir()) == []


def test_a_prometheus_that_exits_at_once_names_its_error(own_tmp, tmp_path_factory):
    require("prometheus")
    bad = tmp_path_factory.mktemp("rules") / "bad.yaml"
    bad.write_text("groups:\n  - name: x\n    rules:\n      - alert: A\n        expr: sum(rate(x[5m]\n")
    with pytest.raises(PrometheusError) as err:
        LocalPrometheus(rule_files=[bad]).__enter__()
    msg = str(err.value)
    assert msg.startswith("prometheus exited at once with code 1") and "\n" not in msg, msg
    assert "parse error: unclosed left parenthesis" in msg and str(bad) in msg, msg
    assert list(own_tmp.iterdir()) == []


def test_prometheus_not_installed_names_the_apt_get_command(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(PrometheusError) as err:
        LocalPrometheus().__enter__()
    assert str(err.value).endswith(f"install it with: {INSTALL_HINT}"), err.value


# -- the answer's three outcomes (pure) -------------------------------------------------------
def _vector(*rows):
    return {"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": labels, "value": [1.0, value]} for labels, value in rows]}}


def test_nan_and_empty_are_no_data_never_zero():
    assert classify("q", _vector()).outcome == NO_DATA
    only_nan = classify("q", _vector(({"version": "green"}, "NaN")))
    assert only_nan.outcome == NO_DATA and only_nan.nan_dropped == 1
    mixed = classify("q", _vector(({"version": "blue"}, "2.5"), ({"version": "green"}, "NaN")))
    assert mixed.outcome == DATA and mixed.by("version") == {"blue": 2.5}
    assert mixed.where(version="green").outcome == NO_DATA
    assert mixed.where(version="blue").value == 2.5
    assert math.isinf(classify("q", _vector(({}, "+Inf"))).value)  # a real (if alarming) answer
    err = classify("q", {"status": "error", "errorType": "bad_data", "error": "parse error"})
    assert (err.outcome, err.error_type, err.error) == (ERROR, "bad_data", "parse error")
    assert err.where(version="blue").outcome == ERROR
