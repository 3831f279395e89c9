"""The money check: ``check_money`` on ledgers built in code, each invariant with the ledger
that breaks it, and the whole flow against a real payment-service (clean, then with the
balance_drift_minor fault that must make it fail)."""
from __future__ import annotations

import random
import time
import uuid
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from zerodrop.checks.api import dumps
from zerodrop.records.ledger import LedgerRecord
from zerodrop.scenarios.money import (NO_WRITES, BalanceReadError, MoneyLedger, check_money,
                                      check_money_after, read_balances)
from tests.payment_service.conftest import (  # noqa: F401 - template_db is a fixture
    ADMIN, AUTH, TOKEN, add_account, fresh_db, start_service, template_db, unique)

from .standins import closed_port

T0 = 1_700_000_000.0
A = "acct-1"


def write(kind: str, t: float, amount: str, key: str, *, account: str = A, outcome: str = "ok",
          status: int | None = None, latency: float = 0.01, attempt: int = 1) -> LedgerRecord:
    if status is None:
        status = 201 if outcome == "ok" else 0
    return LedgerRecord(t_start=T0 + t, t_end=T0 + t + latency, method="POST",
                        route="/api/transactions" if attempt == 1 else "/api/transactions (retry)",
                        status=status, outcome=outcome, request_id=f"{key}-{attempt}",
                        amount=amount, idempotency_key=key, kind=kind, account=account,
                        attempt=attempt, first_request_id=f"{key}-1" if attempt > 1 else "")


def credit(t: float, amount: str, key: str, **kw) -> LedgerRecord:
    return write("credit", t, amount, key, **kw)


def debit(t: float, amount: str, key: str, **kw) -> LedgerRecord:
    return write("debit", t, amount, key, **kw)


def read(t: float, value: str, *, account: str = A, latency: float = 0.01,
         rid: str = "") -> LedgerRecord:
    return LedgerRecord(t_start=T0 + t, t_end=T0 + t + latency, method="GET",
                        route=f"/api/accounts/{account}/balance", status=200, outcome="ok",
                        request_id=rid or f"read-{t}", kind="balance", account=account,
                        balance=value)


def check(records, start: str | dict = "100.00", final: str | dict = "100.00"):
    ledger = MoneyLedger()
    for r in records:
        ledger.add(r)
    as_map = lambda v: v if isinstance(v, dict) else {A: v}  # noqa: E731
    return check_money(as_map(start), as_map(final), ledger)


# ---------------------------------------------------------------- money adds up


def test_exact_balances_pass():
    m = check([credit(1, "150.01", "k1"), debit(2, "50.00", "k2"), credit(3, "0.99", "k3")],
              start="900.00", final="1001.00")
    assert m.judged and not m.mismatches and not m.stale_reads and not m.unchecked, m
    assert (m.credits_acked, m.debits_acked, m.unknown_writes) == (2, 1, 0)
    assert m.accounts == (A,)


def test_a_credit_drifting_by_one_minor_unit_fails():
    m = check([credit(1, "150.01", "k1"), debit(2, "50.00", "k2")],
              start="900.00", final="1000.02")
    [x] = m.mismatches
    assert (x.account, x.start, x.credits, x.debits, x.expected, x.final) == (
        A, "900.00", "150.01", "50.00", "1000.01", "1000.02")
    assert not m.unchecked


def test_values_of_different_scales_are_compared_exactly():
    # 0.1 + 0.2 is exactly 0.3 here (a float would say 0.30000000000000004)
    assert not check([credit(1, "0.1", "k1"), credit(2, "0.20", "k2")], "10", "10.300").mismatches
    assert check([credit(1, "0.1", "k1"), credit(2, "0.20", "k2")], "10", "10.301").mismatches


def test_a_retried_and_duplicated_credit_counts_once():
    records = [credit(1, "25.00", "k1", outcome="timeout"),
               credit(2, "25.00", "k1", attempt=2),          # the retry: 201
               credit(3, "25.00", "k1", attempt=3)]          # a deliberate duplicate: replayed
    m = check(records, final="125.00")
    assert not m.mismatches and m.credits_acked == 1, m
    assert check(records, final="175.00").mismatches  # counted three times it would "pass" here


def test_a_write_rejected_with_a_4xx_was_not_applied():
    records = [debit(1, "500.00", "k1", outcome="http_error", status=422)]
    m = check(records, final="100.00")
    assert not m.mismatches and m.rejected_writes == 1 and m.unknown_writes == 0
    [x] = check(records, final="-400.00").mismatches  # applied after all: money lost
    assert x.unknown == 0


def test_an_unknown_credit_that_was_applied_explains_the_difference():
    records = [credit(1, "10.00", "k1"), credit(2, "5.00", "k2", outcome="timeout"),
               credit(3, "7.00", "k3", outcome="http_error", status=503)]
    for final in ("110.00", "115.00", "117.00", "122.00"):  # every subset
        m = check(records, final=final)
        assert not m.mismatches and not m.unchecked, (final, m)
        assert m.unknown_writes == 2
    [x] = check(records, final="113.00").mismatches  # no subset of {5, 7} makes 3
    assert x.unknown == 2 and x.expected == "110.00"


def test_more_unknown_writes_than_can_be_enumerated_is_unchecked():
    # 17 distinct amounts: 2**17 subset sums, past what the check enumerates
    records = [credit(i, str(Decimal(2 ** i) / 100), f"k{i}", outcome="reset")
               for i in range(17)]
    m = check(records, final="99.99")  # no subset of credits lowers a balance
    assert not m.mismatches
    assert "has 17 writes of unknown outcome" in m.unchecked, m.unchecked
    # 16 of them are always enumerated: the same impossible balance is a mismatch
    m16 = check(records[:16], final="99.99")
    assert len(m16.mismatches) == 1 and not m16.unchecked
    # many unknown writes of one amount make few sums: still exact
    same = [credit(i, "1.00", f"s{i}", outcome="timeout") for i in range(40)]
    assert not check(same, final="103.00").mismatches and not check(same, final="103.00").unchecked
    assert check(same, final="103.50").mismatches


def test_no_money_record_is_unchecked_not_a_pass():
    m = check([LedgerRecord(T0, T0 + 0.01, "GET", "/health", 200, "ok", kind="health")])
    assert m.judged and m.unchecked == NO_WRITES


def test_an_account_without_a_start_or_final_balance_is_unchecked():
    records = [credit(1, "1.00", "k1"), credit(2, "1.00", "k2", account="acct-2")]
    m = check(records, start={A: "0.00"}, final={A: "1.00", "acct-2": "1.00"})
    assert m.unchecked == "no start balance for: acct-2"
    m = check(records, start={A: "0.00", "acct-2": "0.00"}, final={A: "1.00"})
    assert m.unchecked == "no final balance for: acct-2"


def test_the_collector_ignores_other_kinds_and_failed_reads():
    ledger = MoneyLedger()
    for r in (LedgerRecord(T0, T0 + 1, "POST", "/api/payments", 201, "ok", kind="payment",
                           amount="5.00", idempotency_key="p1"),
              LedgerRecord(T0, T0 + 1, "GET", "/health", 200, "ok", kind="health"),
              LedgerRecord(T0, T0 + 1, "GET", "/api/accounts/a/balance", 0, "timeout",
                           kind="balance", account=A),
              credit(1, "1.00", "k1"), read(2, "101.00")):
        ledger.add(r)
    assert list(ledger.writes) == ["k1"] and len(ledger.reads) == 1


# ---------------------------------------------------------------- read-your-writes


def test_a_read_after_an_acknowledged_credit_that_shows_the_old_balance_is_stale():
    records = [credit(1.0, "50.00", "k1", latency=0.2),  # acknowledged at 1.2
               read(2.0, "100.00", rid="stale-1"), read(3.0, "150.00")]
    m = check(records, final="150.00")
    [s] = m.stale_reads
    assert (s.account, s.request_id, s.value, s.lower, s.upper) == (
        A, "stale-1", "100.00", "150.00", "150.00")
    assert s.t_start == T0 + 2.0 and m.reads_checked == 2


def test_a_read_concurrent_with_a_credit_may_show_either_balance():
    credit_ = credit(1.0, "50.00", "k1", latency=0.2)  # sent at 1.0, acknowledged at 1.2
    for value in ("100.00", "150.00"):
        assert not check([credit_, read(1.1, value)], final="150.00").stale_reads
        assert not check([credit_, read(0.95, value, latency=0.1)], final="150.00").stale_reads
    # a read that ended before the credit was sent cannot show it
    assert check([credit_, read(0.5, "150.00", latency=0.1)], final="150.00").stale_reads


def test_debits_are_symmetric():
    debit_ = debit(1.0, "30.00", "k1", latency=0.2)
    stale = check([debit_, read(2.0, "100.00")], final="70.00").stale_reads
    assert [(s.value, s.lower, s.upper) for s in stale] == [("100.00", "70.00", "70.00")]
    for value in ("100.00", "70.00"):
        assert not check([debit_, read(1.1, value)], final="70.00").stale_reads
    assert check([debit_, read(0.5, "70.00", latency=0.1)], final="70.00").stale_reads
    # an unknown debit may or may not be seen, by a read after it too
    unknown = debit(1.0, "30.00", "k1", outcome="timeout", latency=0.2)
    for value in ("100.00", "70.00"):
        assert not check([unknown, read(2.0, value)], final=value).stale_reads
    assert check([unknown, read(2.0, "40.00")], final="70.00").stale_reads


def test_read_bounds_agree_with_the_definition_on_a_random_ledger():
    """The sorted prefix sums against the definition computed naively, read by read."""
    rnd = random.Random(7)
    writes, reads = [], []
    for i in range(300):
        kind = rnd.choice(["credit", "debit"])
        outcome = rnd.choice(["ok", "ok", "ok", "timeout", "http_error"])
        status = {"ok": 201, "timeout": 0, "http_error": rnd.choice([422, 503])}[outcome]
        writes.append(write(kind, rnd.uniform(0, 30), f"{rnd.randint(1, 5000) / 100:.2f}",
                            f"k{i}", outcome=outcome, status=status, latency=rnd.uniform(0, 1)))
    start = Decimal("1000.00")
    for i in range(300):
        t, lat = rnd.uniform(0, 31), rnd.uniform(0, 1)
        lower = upper = start
        for w in writes:
            amount, acked = Decimal(w.amount), w.outcome == "ok"
            maybe = acked or not 400 <= w.status < 500
            sign = 1 if w.kind == "credit" else -1
            if acked and w.t_end < T0 + t:
                (lower, upper) = (lower + amount, upper) if sign > 0 else (lower, upper - amount)
            if maybe and w.t_start < T0 + t + lat:
                (lower, upper) = (lower, upper + amount) if sign > 0 else (lower - amount, upper)
        reads.append((read(t, str(lower), latency=lat, rid=f"lo{i}"), lower, upper))
        reads.append((read(t, str(lower - Decimal("0.01")), latency=lat, rid=f"below{i}"), 0, 0))
        reads.append((read(t, str(upper + Decimal("0.01")), latency=lat, rid=f"above{i}"), 0, 0))
    m = check(writes + [r for r, _, _ in reads], start=str(start), final=str(start))
    stale = {s.request_id: (Decimal(s.lower), Decimal(s.upper)) for s in m.stale_reads}
    assert m.reads_checked == 900
    assert not any(rid.startswith("lo") for rid in stale)
    for r, lower, upper in reads:
        if r.request_id.startswith("lo"):
            continue
        assert r.request_id in stale


# ---------------------------------------------------------------- against a real service


def _flow(url: str, accounts: list[str]) -> MoneyLedger:
    """Real credits and debits (one retried, one duplicated, one refused) and balance reads,
    each recorded from the real answer as the load records it."""
    ledger, http = MoneyLedger(), requests.Session()

    def send(kind: str, account: str, amount: str, key: str, attempt: int = 1) -> None:
        t0 = time.time()
        r = http.post(f"{url}/api/transactions", data=dumps(
            {"account_id": account, "amount": Decimal(amount), "type": kind}),
            headers={**AUTH, "Idempotency-Key": key, "Content-Type": "application/json"},
            timeout=10)
        ledger.add(LedgerRecord(t0, time.time(), "POST", "/api/transactions", r.status_code,
                                "ok" if r.status_code == 201 else "http_error",
                                request_id=uuid.uuid4().hex, amount=amount,
                                idempotency_key=key, kind=kind, account=account,
                                attempt=attempt))

    def balance(account: str) -> None:
        t0 = time.time()
        r = http.get(f"{url}/api/accounts/{account}/balance", headers=AUTH, timeout=10)
        value = str(r.json(parse_float=Decimal)["balance"]) if r.status_code == 200 else ""
        ledger.add(LedgerRecord(t0, time.time(), "GET", "/api/accounts/{id}/balance",
                                r.status_code, "ok" if value else "http_error",
                                request_id=uuid.uuid4().hex, kind="balance", account=account,
                                balance=value))

    a, b = accounts
    send("credit", a, "150.01", f"{a}-1")
    balance(a)
    send("credit", a, "150.01", f"{a}-1", attempt=2)    # the same key again: replayed
    send("debit", a, "50.00", f"{a}-2")
    send("credit", b, "0.99", f"{b}-1")
    send("debit", b, "1000000.00", f"{b}-2")             # insufficient funds: 422
    balance(a)
    balance(b)
    http.close()
    return ledger


@pytest.fixture(scope="module")
def service(template_db: Path, tmp_path_factory: pytest.TempPathFactory):  # noqa: F811
    work = tmp_path_factory.mktemp("money")
    with start_service(work, fresh_db(template_db, work), name="money",
                       ADMIN_TOKEN=ADMIN) as svc:
        yield svc


def _accounts(svc) -> list[str]:
    return [add_account(svc.db_url, unique("money"), balance_minor=90000) for _ in range(2)]


def test_real_credits_and_debits_add_up(service):
    accounts = _accounts(service)
    start = read_balances(service.url, TOKEN, accounts)
    assert start == {a: "900.00" for a in accounts}
    ledger = _flow(service.url, accounts)
    m = check_money(start, read_balances(service.url, TOKEN, accounts), ledger)
    assert m.judged and not m.mismatches and not m.stale_reads and not m.unchecked, m
    assert (m.credits_acked, m.debits_acked, m.rejected_writes, m.reads_checked) == (2, 1, 1, 3)


def test_real_balance_drift_fails_with_the_mismatch(service):
    accounts = _accounts(service)
    start = read_balances(service.url, TOKEN, accounts)
    assert service.admin("PUT", {"balance_drift_minor": 1}).status_code == 200
    try:
        ledger = _flow(service.url, accounts)
    finally:
        assert service.admin("DELETE").status_code == 200
    m = check_money_after(service.url, TOKEN, start, ledger)
    assert not m.error and not m.unchecked, m
    by_account = {x.account: x for x in m.mismatches}
    a, b = accounts
    # a: +150.01 and -50.00 each one cent off; b: +0.99 one cent off (the refused debit is not)
    assert (by_account[a].expected, by_account[a].final) == ("1000.01", "1000.03")
    assert (by_account[b].expected, by_account[b].final) == ("900.99", "901.00")
    assert m.stale_reads  # the reads saw the cents no acknowledged write made


def test_a_balance_that_cannot_be_read_is_an_error_not_a_pass(service):
    with pytest.raises(BalanceReadError, match="answered 404"):
        read_balances(service.url, TOKEN, ["no-such-account"])
    m = check_money_after(f"http://127.0.0.1:{closed_port()}", TOKEN, {A: "1.00"}, MoneyLedger(),
                          timeout=2)
    assert m.judged and m.error.startswith("ConnectionError: ")
