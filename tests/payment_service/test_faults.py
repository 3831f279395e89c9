"""Each fault knob: off by default, visible when on, settable at run time and through FAULTS."""
from __future__ import annotations

import time
from decimal import Decimal
from pathlib import Path

import pytest

from .conftest import ADMIN, Service, balance, fresh_db, pay, start_service, wait_settled, wait_until


def statuses(svc: Service, n: int, path: str = "/api/accounts/acc-001/balance") -> list[int]:
    return [svc.get(path).status_code for _ in range(n)]


def test_all_faults_off_by_default(svc: Service) -> None:
    body = svc.admin("GET").json()
    assert body["active"] == {}
    assert statuses(svc, 20) == [200] * 20


def test_admin_api_auth_and_validation(svc: Service) -> None:
    assert svc.http.get(svc.url + "/admin/faults", timeout=5).status_code == 401
    r = svc.http.put(svc.url + "/admin/faults", json={}, headers={"Authorization": "Bearer nope"}, timeout=5)
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
    r = svc.admin("PUT", {"error_rate": 2, "nonsense": True, "cache_down": "yes", "error_every": 1.5})
    assert r.status_code == 400
    assert sorted(e["field"] for e in r.json()["errors"]) == ["cache_down", "error_every", "error_rate", "nonsense"]
    assert svc.admin("PUT", [1]).status_code == 400
    assert svc.admin("GET").json()["active"] == {}            # a rejected change changes nothing


def test_put_replaces_patch_merges_delete_resets(svc: Service) -> None:
    assert svc.admin("PUT", {"cache_down": True, "latency_ms": 1}).json()["active"] == {
        "cache_down": True, "latency_ms": 1.0}
    assert svc.admin("PATCH", {"readiness_fail": True}).json()["active"] == {
        "cache_down": True, "latency_ms": 1.0, "readiness_fail": True}
    assert svc.admin("PUT", {"readiness_fail": True}).json()["active"] == {"readiness_fail": True}
    assert svc.admin("DELETE").json()["active"] == {}


def test_error_every_is_exact_and_route_scoped(svc: Service) -> None:
    svc.admin("PUT", {"error_every": 3})
    assert statuses(svc, 9) == [200, 200, 500] * 3
    assert statuses(svc, 3, "/health") == [200] * 3          # default error_routes is /api/
    r = [svc.get("/api/accounts/acc-001/balance") for _ in range(3)][-1]
    assert r.status_code == 500 and "error_every" in r.json()["errors"][0]["message"]
    assert r.headers["X-Replica"] == "blue-0"                 # injected errors still identify the replica
    svc.admin("PUT", {"error_every": 2, "error_routes": "/health/ready"})
    assert statuses(svc, 4, "/health/ready") == [200, 500] * 2
    assert statuses(svc, 4) == [200] * 4


def test_injected_errors_are_counted_under_the_route_template(svc: Service) -> None:
    svc.admin("PUT", {"error_every": 1})
    assert svc.get("/api/payments/pay_metrics_probe").status_code == 500
    svc.admin("DELETE")
    text = svc.get("/metrics").text
    assert 'http_requests_total{route="/api/payments/{id}",service="payment-service",status="500",version="blue"}' \
        in text


def test_error_rate(svc: Service) -> None:
    svc.admin("PUT", {"error_rate": 1.0})
    assert statuses(svc, 5) == [500] * 5
    svc.admin("PUT", {"error_rate": 0.5})
    codes = statuses(svc, 200)
    assert 40 < codes.count(500) < 160                         # p(outside) is astronomically small
    assert set(codes) == {200, 500}


def test_admin_and_liveness_never_get_faults(svc: Service) -> None:
    svc.admin("PUT", {"error_every": 1, "error_routes": "/", "latency_ms": 300, "latency_routes": "/"})
    assert svc.get("/health").status_code == 500
    started = time.monotonic()
    assert svc.get("/health/live").status_code == 200
    assert svc.admin("GET").status_code == 200
    assert time.monotonic() - started < 0.3                    # neither waited the injected latency


def test_latency(svc: Service) -> None:
    svc.admin("PUT", {"latency_ms": 400})
    started = time.monotonic()
    assert svc.get("/api/accounts/acc-001/balance").status_code == 200
    assert time.monotonic() - started >= 0.4
    started = time.monotonic()
    svc.get("/health")
    assert time.monotonic() - started < 0.4                    # default latency_routes is /api/


def test_readiness_fail(svc: Service) -> None:
    svc.admin("PUT", {"readiness_fail": True})
    r = svc.get("/health/ready")
    assert r.status_code == 503 and r.json()["status"] == "unhealthy"
    assert r.json()["components"]["database"]["status"] == "healthy"
    assert svc.get("/health/live").status_code == 200


def test_db_unreachable(svc: Service, account) -> None:
    acct = account()
    svc.admin("PUT", {"db_unreachable": True})
    r = svc.get("/health/ready")
    assert r.status_code == 503 and r.json()["status"] == "unhealthy"
    assert r.json()["components"]["database"]["status"] == "unhealthy"
    assert "db_unreachable" in r.json()["components"]["database"]["details"]
    assert pay(svc, "acc-001", "acc-002").status_code == 503
    assert svc.get(f"/api/accounts/{acct}/balance").status_code == 503
    assert svc.post("/api/transactions", json={"type": "credit", "amount": 1, "account_id": acct}).status_code == 503
    assert svc.get("/health/live").status_code == 200           # liveness never touches dependencies
    svc.admin("PATCH", {"readiness_lies": True})
    lie = svc.get("/health/ready")
    assert lie.status_code == 200 and lie.json()["components"]["database"]["status"] == "healthy"


def test_db_unreachable_holds_back_the_worker(svc: Service, account) -> None:
    src, dst = account(balance_minor=1000), account()
    created = pay(svc, src, dst, 1).json()
    svc.admin("PUT", {"db_unreachable": True})
    time.sleep(0.6)                                              # > PAYMENT_PROCESSING_SECONDS (0.2)
    svc.admin("DELETE")
    assert wait_settled(svc, created["id"])["status"] == "completed"
    assert balance(svc, dst) == Decimal("1.00")


def test_readiness_lies_hides_a_failure(svc: Service) -> None:
    svc.admin("PUT", {"readiness_fail": True, "readiness_lies": True})
    r = svc.get("/health/ready")
    assert r.status_code == 200 and r.json()["status"] == "healthy"


def test_cache_down_degrades_but_stays_ready(svc: Service, account) -> None:
    acct = account()
    svc.admin("PUT", {"cache_down": True})
    r = svc.get("/health/ready")
    assert r.status_code == 200 and r.json()["status"] == "degraded"
    assert r.json()["components"]["cache"]["status"] == "degraded"
    assert r.json()["components"]["database"]["status"] == "healthy"
    # the API still works without the cache
    assert svc.post("/api/transactions", json={"type": "credit", "amount": 1, "account_id": acct}).status_code == 201


def test_balance_drift_breaks_consistency(svc: Service, account) -> None:
    acct = account()
    svc.admin("PUT", {"balance_drift_minor": 1})
    r = svc.post("/api/transactions", json={"type": "credit", "amount": 1, "account_id": acct})
    assert r.status_code == 201
    assert balance(svc, acct) == Decimal("1.01")                 # the negative control: one cent too many
    src, dst = account(balance_minor=1000), account()
    done = wait_settled(svc, pay(svc, src, dst, 1).json()["id"])
    assert done["status"] == "completed"
    assert balance(svc, src) + balance(svc, dst) == Decimal("10.02")   # money created from nothing


def test_bad_input_500(svc: Service) -> None:
    svc.admin("PUT", {"bad_input_500": True})
    r = pay(svc, "acc-001", "", -1)
    assert r.status_code == 500 and "errors" in r.json()
    assert pay(svc, "acc-001", "acc-002").status_code == 201    # good input is unaffected


def test_lose_payment_every(svc: Service) -> None:
    svc.admin("PUT", {"lose_payment_every": 2})
    created = [pay(svc, "acc-001", "acc-002", 1) for _ in range(4)]
    assert [r.status_code for r in created] == [201] * 4
    found = [svc.get(f"/api/payments/{r.json()['id']}").status_code for r in created]
    assert found == [200, 404, 200, 404]                       # acknowledged, then gone


def test_ignore_idempotency_key(svc: Service) -> None:
    """The negative control of the data check's lookup by key: the key is neither replayed
    nor stored, so a retry pays twice and a lookup by the key finds nothing."""
    svc.admin("PUT", {"ignore_idempotency_key": True})
    first = pay(svc, "acc-001", "acc-002", 1, key="same-key")
    again = pay(svc, "acc-001", "acc-002", 1, key="same-key")
    assert [first.status_code, again.status_code] == [201, 201]
    assert first.json()["id"] != again.json()["id"]             # paid twice
    found = svc.get("/api/payments", params={"idempotency_key": "same-key"})
    assert found.status_code == 200 and found.json()["payments"] == []


def test_faults_from_env_and_slow_start(tmp_path: Path, template_db: Path) -> None:
    with start_service(tmp_path, fresh_db(template_db, tmp_path), wait_ready=False, ADMIN_TOKEN=ADMIN,
                       FAULTS='{"slow_start_s": 1.5, "error_every": 2}') as s:
        # a list, because a 503 Response is falsy and wait_until would keep polling
        r = wait_until(lambda: [s.get("/health/ready", timeout=2)], 10, "the first readiness answer")[0]
        assert r.status_code == 503 and r.json()["status"] == "starting"
        assert s.get("/health/live").status_code == 200
        wait_until(lambda: s.get("/health/ready").status_code == 200, 10, "readiness after slow start")
        assert s.admin("GET").json()["active"] == {"slow_start_s": 1.5, "error_every": 2}
        assert statuses(s, 4) == [200, 500, 200, 500]


@pytest.mark.parametrize("faults, message", [
    ("{not json", "FAULTS"), ('{"nope": 1}', "nope"), ('{"error_rate": "high"}', "error_rate"), ("[1]", "object")])
def test_bad_faults_env_is_a_one_line_usage_error(tmp_path: Path, faults: str, message: str) -> None:
    from .conftest import base_env, cli
    result = cli("serve", "--port", "0", env=base_env(f"sqlite:///{tmp_path}/x.db", FAULTS=faults))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in result.stderr


def test_drain_and_stale_read_knobs_are_validated(svc: Service) -> None:
    r = svc.admin("PUT", {"abandon_idle_on_drain": 1, "draining_latency_ms": -5, "stale_balance_reads": "yes"})
    assert r.status_code == 400
    assert sorted(e["field"] for e in r.json()["errors"]) == [
        "abandon_idle_on_drain", "draining_latency_ms", "stale_balance_reads"]
    defaults = svc.admin("GET").json()["faults"]
    assert (defaults["abandon_idle_on_drain"], defaults["draining_latency_ms"], defaults["stale_balance_reads"]) \
        == (False, 0.0, False)
    r = svc.admin("PUT", {"abandon_idle_on_drain": True, "draining_latency_ms": 250, "stale_balance_reads": True})
    assert r.status_code == 200 and r.json()["active"] == {
        "abandon_idle_on_drain": True, "draining_latency_ms": 250.0, "stale_balance_reads": True}
    started = time.monotonic()
    assert svc.get("/api/accounts/acc-001/balance").status_code == 200
    assert time.monotonic() - started < 0.25                 # not draining: no added latency


@pytest.mark.parametrize("stale", [False, True])
def test_stale_balance_reads(svc: Service, account, stale: bool) -> None:
    acct = account(balance_minor=100)
    if stale:
        svc.admin("PUT", {"stale_balance_reads": True})
    assert balance(svc, acct) == Decimal("1.00")
    r = svc.post("/api/transactions", json={"account_id": acct, "amount": 2, "type": "credit"})
    assert r.status_code == 201
    assert r.json(parse_float=Decimal)["balance_after"] == Decimal("3.00")   # the write is unaffected
    # the read after the acknowledged credit: the old balance with the knob, the new one without
    assert balance(svc, acct) == (Decimal("1.00") if stale else Decimal("3.00"))
    svc.admin("DELETE")
    assert balance(svc, acct) == Decimal("3.00")              # knob off: the database again
