"""The data check after a run: every payment acknowledged with 201 still exists, with the same
amount, and no Idempotency-Key produced two payments.

It reads the merged ledger once (streaming) and asks the Service, with bounded concurrency.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Iterable

import requests

from zerodrop.checks.api import loads
from zerodrop.records.results import DataCheck
from zerodrop.records.ledger import LedgerRecord, read_records

MAX_KEYS_CHECKED = 20000  # bounds the work; the count checked is reported


def acknowledged_payments(records: Iterable[LedgerRecord],
                          window: tuple[float, float] = (float("-inf"), float("inf")),
                          ) -> tuple[dict[str, str], set[str]]:
    """(payment id -> amount) of every 201 payment creation that started within ``window``,
    and every key that was sent there."""
    acked: dict[str, str] = {}
    keys: set[str] = set()
    for r in records:
        if r.method != "POST" or not r.idempotency_key or not window[0] <= r.t_start < window[1]:
            continue
        keys.add(r.idempotency_key)
        if r.outcome == "ok" and r.payment_id:
            acked[r.payment_id] = r.amount
    return acked, keys


def check_payments(base_url: str, token: str, ledger: Path,
                   window: tuple[float, float] = (float("-inf"), float("inf")),
                   workers: int = 8, timeout: float = 10.0) -> DataCheck:
    with open(ledger) as f:
        acked, keys = acknowledged_payments(read_records(f), window)
    http = requests.Session()
    http.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=workers, max_retries=0))
    headers = {"Authorization": f"Bearer {token}"}

    def lookup(item: tuple[str, str]) -> tuple[str, str]:
        payment_id, amount = item
        resp = http.get(f"{base_url}/api/payments/{payment_id}", headers=headers, timeout=timeout)
        if resp.status_code == 404:
            return payment_id, "missing"
        resp.raise_for_status()
        stored = loads(resp.content).get("amount")
        try:
            same = Decimal(str(stored)) == Decimal(amount)
        except InvalidOperation:
            same = False
        return payment_id, "ok" if same else "mismatched"

    def by_key(key: str) -> tuple[str, int]:
        resp = http.get(f"{base_url}/api/payments", params={"idempotency_key": key},
                        headers=headers, timeout=timeout)
        resp.raise_for_status()
        return key, len(loads(resp.content).get("payments", []))

    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            found = list(pool.map(lookup, sorted(acked.items())))
            counted = list(pool.map(by_key, sorted(keys)[:MAX_KEYS_CHECKED]))
    except (requests.RequestException, ValueError, AttributeError) as exc:
        return DataCheck(len(acked), error=f"the data check could not run: "
                                           f"{type(exc).__name__}: {str(exc)[:200]}")
    finally:
        http.close()
    return DataCheck(
        acknowledged=len(acked),
        missing=[p for p, state in found if state == "missing"],
        mismatched=[p for p, state in found if state == "mismatched"],
        duplicated_keys=[k for k, n in counted if n > 1],
    )
