"""Every endpoint's shape, as the seed's smoke-tests.sh and post-deployment-tests.py use it."""
from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from .conftest import AUTH, Service, balance, pay, unique, wait_settled

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


def test_identity_headers_on_every_kind_of_response(svc: Service) -> None:
    responses = [
        svc.get("/health"), svc.get("/health/ready"), svc.get("/health/live"), svc.get("/metrics"),
        svc.get("/nope"), svc.get("/api/payments/pay_unknown"), svc.get("/api/accounts/x/balance", headers={}),
        svc.post("/api/payments", data=b"{", headers={**AUTH, "Content-Type": "application/json"}),
        svc.http.delete(svc.url + "/health"),
    ]
    assert [r.status_code for r in responses] == [200, 200, 200, 200, 404, 404, 401, 400, 405]
    for r in responses:
        assert r.headers["X-App-Version"] == "v1.2.3"
        assert r.headers["X-App-Color"] == "blue"
        assert r.headers["X-Replica"] == "blue-0"
        assert re.fullmatch(r"[0-9a-f]{32}", r.headers["X-Request-Id"])
    for r in responses[4:]:
        assert r.headers["Content-Type"] == "application/json" and "errors" in r.json()


def test_request_id_is_echoed(svc: Service) -> None:
    assert svc.get("/health", headers={"X-Request-Id": "req-42"}).headers["X-Request-Id"] == "req-42"


def test_health_and_liveness(svc: Service) -> None:
    assert svc.get("/health").json() == {"status": "ok", "version": "v1.2.3"}
    live = svc.get("/health/live").json()
    assert live["status"] == "alive" and ISO.match(live["timestamp"]) and re.fullmatch(r"\d+\.\d{3}s", live["uptime"])


def test_readiness_shape_like_the_seed(svc: Service) -> None:
    response = svc.get("/health/ready")
    body = response.json()
    assert response.status_code == 200
    assert body["status"] == "healthy"                       # smoke test 2: jq '.status == "healthy"'
    assert body["components"]["database"]["status"] == "healthy"   # smoke test 4
    assert body["components"]["cache"]["status"] == "healthy"
    assert (body["version"], body["color"], body["replica"]) == ("v1.2.3", "blue", "blue-0")
    assert ISO.match(body["timestamp"]) and body["uptime"].endswith("s")
    for component in body["components"].values():
        assert ISO.match(component["last_checked"]) and component["response_time"].endswith("ms")


def test_seed_smoke_payment_is_pending(svc: Service) -> None:
    # smoke test 3, byte for byte: a curl body with 100.00 and test-account-1 -> test-account-2
    raw = b'{\n"amount": 100.00,\n"currency": "EUR",\n"from_account": "test-account-1",\n"to_account": "test-account-2"\n}'
    r = svc.post("/api/payments", data=raw, headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 201 and r.json()["status"] == "pending"


def test_seed_end_to_end_payment_shape(svc: Service) -> None:
    r = pay(svc, "acc-001", "acc-002", 150.00, description="Test payment")
    assert r.status_code == 201
    body = r.json()
    assert set(body) >= {"id", "status", "amount", "currency", "from_account", "to_account", "description",
                         "created_at", "updated_at", "failure_reason"}
    assert re.fullmatch(r"pay_[0-9a-f]{24}", body["id"])
    assert (body["status"], body["currency"], body["description"], body["failure_reason"]) == (
        "pending", "EUR", "Test payment", None)
    assert b'"amount":150.00' in r.content                     # a JSON number with the currency's decimals
    assert ISO.match(body["created_at"]) and body["created_at"] == body["updated_at"]
    done = wait_settled(svc, body["id"])
    assert done["status"] == "completed" and done["failure_reason"] is None
    assert done["updated_at"] >= done["created_at"]


def test_unknown_payment_is_404(svc: Service) -> None:
    r = svc.get("/api/payments/pay_doesnotexist")
    assert r.status_code == 404 and r.json()["errors"][0]["field"] == "id"


def test_balance_on_both_seed_routes(svc: Service) -> None:
    a = svc.get("/api/accounts/test-account-3/balance")
    b = svc.get("/api/accounts/balance/test-account-3")
    assert a.status_code == b.status_code == 200
    assert a.json()["account_id"] == b.json()["account_id"] == "test-account-3"
    assert a.json()["currency"] == "EUR" and ISO.match(a.json()["updated_at"])
    assert b'"balance":1000000.00' in svc.get("/api/accounts/balance/test-account-9").content
    for path in ("/api/accounts/nobody/balance", "/api/accounts/balance/nobody"):
        r = svc.get(path)
        assert r.status_code == 404 and r.json()["errors"][0]["field"] == "account_id"


def test_reference_accounts_exist(svc: Service) -> None:
    for account_id in [f"test-account-{i}" for i in range(10)] + ["acc-001", "acc-002", "acc-test-001"]:
        assert svc.get(f"/api/accounts/{account_id}/balance").status_code == 200


def test_seed_concurrent_balance_reads(svc: Service) -> None:
    def read(i: int) -> int:
        return svc.get(f"/api/accounts/balance/test-account-{i % 10}").status_code
    with ThreadPoolExecutor(max_workers=10) as pool:
        assert list(pool.map(read, range(50))) == [200] * 50


def test_seed_data_consistency_transaction(svc: Service, account) -> None:
    acct = account(balance_minor=1_000_000_00)
    r = svc.post("/api/transactions", json={"type": "credit", "amount": 50.00, "account_id": acct,
                                           "reference": "consistency-test"})
    assert r.status_code == 201
    body = r.json(parse_float=Decimal)
    assert re.fullmatch(r"txn_[0-9a-f]{24}", body["id"])
    assert (body["type"], body["amount"], body["account_id"], body["reference"]) == (
        "credit", Decimal("50.00"), acct, "consistency-test")
    assert body["balance_after"] == Decimal("1000050.00") == balance(svc, acct)
    assert b'"balance_after":1000050.00' in r.content and ISO.match(body["created_at"])


def test_debit_beyond_balance_is_422_and_changes_nothing(svc: Service, account) -> None:
    acct = account(balance_minor=500)
    r = svc.post("/api/transactions", json={"type": "debit", "amount": "5.01", "account_id": acct})
    assert r.status_code == 400  # a string amount is a type error, not a debit
    r = svc.post("/api/transactions", json={"type": "debit", "amount": 5.01, "account_id": acct})
    assert r.status_code == 422
    assert r.json() == {"errors": [{"field": "amount", "message": "insufficient funds"}]}
    assert balance(svc, acct) == Decimal("5.00")
    assert svc.post("/api/transactions", json={"type": "debit", "amount": 5, "account_id": acct}).status_code == 201
    assert balance(svc, acct) == Decimal("0.00")


def test_transaction_on_unknown_account_is_404(svc: Service) -> None:
    r = svc.post("/api/transactions", json={"type": "credit", "amount": 1, "account_id": unique("ghost")})
    assert r.status_code == 404 and r.json()["errors"][0]["field"] == "account_id"


def test_payments_by_idempotency_key(svc: Service) -> None:
    key = unique("key")
    assert svc.get("/api/payments", params={"idempotency_key": key}).json() == {"payments": []}
    created = pay(svc, "acc-001", "acc-002", 1, key=key).json()
    listed = svc.get("/api/payments", params={"idempotency_key": key}).json()["payments"]
    assert [p["id"] for p in listed] == [created["id"]]
    r = svc.get("/api/payments")
    assert r.status_code == 400 and r.json()["errors"][0]["field"] == "idempotency_key"


def test_unknown_route_and_wrong_method_are_json(svc: Service) -> None:
    r = svc.get("/api/nothing-here")
    assert r.status_code == 404 and r.json()["errors"][0]["field"] == "path"
    r = svc.http.put(svc.url + "/api/payments", headers=AUTH)
    assert r.status_code == 405 and r.headers["Allow"] == "GET, POST"


def test_metrics_labels_follow_the_seed_promql(svc: Service) -> None:
    svc.get("/api/payments/pay_x1")
    svc.get("/api/payments/pay_x2")
    svc.get("/does/not/exist")
    text = svc.get("/metrics").text
    # version = APP_COLOR (the seed's pods carry version: blue|green); route = the template
    assert re.search(r'http_requests_total\{route="/api/payments/\{id\}",service="payment-service",'
                     r'status="404",version="blue"\} [1-9]', text)
    assert 'route="unmatched"' in text and "pay_x1" not in text
    assert re.search(r'http_request_duration_seconds_bucket\{le="0.005",route="/api/payments/\{id\}",'
                     r'service="payment-service",version="blue"\}', text)
    assert "payments_created_total" in text


def test_replica_without_colour_or_admin_token(tmp_path, template_db) -> None:
    from .conftest import fresh_db, start_service
    with start_service(tmp_path, fresh_db(template_db, tmp_path), APP_VERSION="v9", APP_COLOR="") as s:
        s.get("/health")
        assert 'version="v9"' in s.get("/metrics").text       # no colour: the release is the version label
        assert s.get("/health").headers["X-App-Color"] == ""
        r = s.http.get(s.url + "/admin/faults", headers={"Authorization": "Bearer "}, timeout=5)
        assert r.status_code == 404                            # no ADMIN_TOKEN: no admin API at all
