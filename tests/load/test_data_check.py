"""The data check's two parts, and what the verdict makes of a check that could not run."""
from __future__ import annotations

from dataclasses import replace

from zerodrop.records.ledger import LedgerRecord, write_records
from zerodrop.reports.verdict import INCONCLUSIVE, judge
from zerodrop.scenarios.integrity import PaymentAcks, acknowledged_payments, check_payments
from tests.reports.builders import T0, clean, cutover, good_load, timeline

from .standins import closed_port

PREFIX = "the data check could not run"


def _payment(t: float, key: str, outcome: str = "ok", payment_id: str = "",
             amount: str = "150.00") -> LedgerRecord:
    return LedgerRecord(t_start=T0 + t, t_end=T0 + t + 0.01, method="POST", route="/api/payments",
                        status=201 if outcome == "ok" else 0, outcome=outcome,
                        payment_id=payment_id, amount=amount, idempotency_key=key)


def test_the_collector_keeps_acknowledged_payments_and_every_key_sent():
    acks = PaymentAcks()
    for r in (_payment(1, "k1", payment_id="pay_1"), _payment(2, "k2", outcome="reset"),
              replace(_payment(3, "k3", payment_id="pay_3"), method="GET"),
              _payment(4, "", payment_id="pay_4")):
        acks.add(r)
    assert acks.acked == {"pay_1": "150.00"}
    assert acks.keys == {"k1", "k2"}  # a reset creation may still have paid: its key is checked
    window = acknowledged_payments([_payment(1, "k1", payment_id="pay_1"),
                                    _payment(9, "k9", payment_id="pay_9")], (T0, T0 + 5))
    assert window == ({"pay_1": "150.00"}, {"k1"})


def test_a_data_check_that_cannot_run_is_said_once(tmp_path):
    """The real check against a port nobody listens on, its DataCheck fed to the verdict: the
    reason says "the data check could not run" once (the check used to prefix its error too)."""
    ledger = tmp_path / "ledger.jsonl"
    with open(ledger, "w", encoding="utf-8") as out:
        write_records(out, [_payment(1, "k1", payment_id="pay_1")])
    data = check_payments(f"http://127.0.0.1:{closed_port()}", "test-token", ledger, timeout=2)
    assert data.acknowledged == 1
    assert data.error.startswith("ConnectionError: ")  # the cause only
    v = judge(clean(), timeline(), cutover(), data, good_load())
    assert v.verdict == INCONCLUSIVE
    text = "\n".join(v.reasons)
    assert text.count(PREFIX) == 1, text
    assert f"inconclusive: {PREFIX}: ConnectionError: " in text



def test_the_collector_holds_every_id_a_key_was_answered_with():
    """A replay answered with the first payment adds nothing; one answered with another
    payment leaves the key with two ids (the data check reports it)."""
    acks = PaymentAcks()
    for r in (_payment(1, "k1", payment_id="pay_1"), _payment(2, "k1", payment_id="pay_1"),
              _payment(3, "k2", payment_id="pay_2"), _payment(4, "k2", payment_id="pay_3")):
        acks.add(r)
    assert acks.ids_of_key == {"k1": {"pay_1"}, "k2": {"pay_2", "pay_3"}}
    assert acks.acked_for_key == {"k1": "pay_1", "k2": "pay_2"}  # the first answer counts
