"""Money is exact end to end: Decimal on the way in, integer minor units stored, JSON numbers out."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from zerodrop.payment_service import money

from .conftest import AUTH, Service, balance, pay, wait_settled


def credit(svc: Service, acct: str, raw_amount: str) -> int:
    body = f'{{"type":"credit","amount":{raw_amount},"account_id":"{acct}"}}'.encode()
    return svc.post("/api/transactions", data=body, headers={**AUTH, "Content-Type": "application/json"}).status_code


def test_point_one_plus_point_two_is_exactly_point_three(svc: Service, account) -> None:
    acct = account()
    assert credit(svc, acct, "0.10") == 201 and credit(svc, acct, "0.20") == 201
    assert balance(svc, acct) == Decimal("0.30")          # 0.1 + 0.2 == 0.30000000000000004 in floats
    assert b'"balance":0.30' in svc.get(f"/api/accounts/{acct}/balance").content


def test_a_hundred_concurrent_cents(svc: Service, account) -> None:
    acct = account()
    with ThreadPoolExecutor(max_workers=10) as pool:
        assert list(pool.map(lambda _: credit(svc, acct, "0.01"), range(100))) == [201] * 100
    assert balance(svc, acct) == Decimal("1.00")


def test_jpy_has_no_decimals(svc: Service, account) -> None:
    src, dst = account("JPY", 1000), account("JPY", 0)
    r = pay(svc, src, dst, 150, currency="JPY")
    assert r.status_code == 201 and b'"amount":150,' in r.content
    bad = pay(svc, src, dst, Decimal("1.5"), currency="JPY")
    assert bad.status_code == 400 and bad.json()["errors"][0]["field"] == "amount"
    assert wait_settled(svc, r.json()["id"])["status"] == "completed"
    assert b'"balance":850,' in svc.get(f"/api/accounts/{src}/balance").content
    assert balance(svc, dst) == 150


def test_three_decimal_currency(svc: Service, account) -> None:
    src, dst = account("BHD", 1000), account("BHD", 0)   # BHD 1.000
    r = pay(svc, src, dst, Decimal("0.125"), currency="BHD")
    assert r.status_code == 201 and b'"amount":0.125,' in r.content
    assert wait_settled(svc, r.json()["id"])["status"] == "completed"
    assert b'"balance":0.875,' in svc.get(f"/api/accounts/{src}/balance").content


def test_amount_is_written_with_the_currency_decimals(svc: Service) -> None:
    for raw, written in ((b"150", b"150.00"), (b"150.0", b"150.00"), (b"1.5E+2", b"150.00"), (b"0.1", b"0.10")):
        body = b'{"amount":%s,"currency":"EUR","from_account":"acc-001","to_account":"acc-002"}' % raw
        r = svc.post("/api/payments", data=body, headers={**AUTH, "Content-Type": "application/json"})
        assert r.status_code == 201 and b'"amount":' + written + b"," in r.content, r.content


def test_payment_moves_money_exactly_once(svc: Service, account) -> None:
    src, dst = account(balance_minor=100_000), account()
    ids = [pay(svc, src, dst, Decimal("0.01") * (i + 1)).json()["id"] for i in range(10)]
    assert all(wait_settled(svc, i)["status"] == "completed" for i in ids)
    moved = sum(Decimal("0.01") * (i + 1) for i in range(10))          # 0.55
    assert balance(svc, src) == Decimal("1000.00") - moved
    assert balance(svc, dst) == moved


def test_long_amounts_are_never_rounded_into_validity(svc: Service) -> None:
    sneaky = b"1." + b"0" * 40 + b"1"                        # beyond the default 28-digit context
    harmless = b"1." + b"0" * 40                               # exactly 1.00
    for raw, expected in ((sneaky, 400), (harmless, 201)):
        body = b'{"amount":%s,"currency":"EUR","from_account":"acc-001","to_account":"acc-002"}' % raw
        r = svc.post("/api/payments", data=body, headers={**AUTH, "Content-Type": "application/json"})
        assert r.status_code == expected, r.text


def test_money_module_round_trips() -> None:
    assert money.to_minor(Decimal("150.00"), "EUR") == 15000
    assert money.dumps({"a": money.from_minor(15000, "EUR")}) == '{"a":150.00}'
    assert money.dumps({"a": money.from_minor(5, "JPY")}) == '{"a":5}'
    assert money.dumps({"a": money.from_minor(1, "KWD")}) == '{"a":0.001}'
    assert money.canonical(money.loads('{"a":150.0}')) == money.canonical(money.loads('{"a":150.00}'))
    assert (money.MINOR_UNITS["JPY"], money.MINOR_UNITS["EUR"], money.MINOR_UNITS["BHD"]) == (0, 2, 3)
    long_a, long_b = "1." + "0" * 70 + "1", "1." + "0" * 70 + "2"
    assert money.canonical(money.loads(long_a)) != money.canonical(money.loads(long_b))
