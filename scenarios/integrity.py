"""The data check after a run: every payment acknowledged with 201 still exists, with the same
amount; the lookup by its Idempotency-Key finds exactly that payment (an empty lookup for an
acknowledged key is a payment the key cannot find, never "no key paid twice"); and no key
produced two payments.

Two parts, so that the proof reads the merged ledger once for every slice: ``PaymentAcks``
collects the acknowledged payments record by record (fed by whoever streams the ledger), and
``lookup_payments`` asks the Service about what was collected, with bounded concurrency.
``check_payments`` is both for one ledger file.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import quote
from typing import Iterable

import requests

from zerodrop.checks.expect import jq_all
from zerodrop.profiles import profile as profiles
from zerodrop.profiles.profile import Profile, plain_json, same_value
from zerodrop.records.ledger import LedgerRecord, read_records
from zerodrop.records.results import DataCheck

MAX_KEYS_CHECKED = 20000  # bounds the work; the count checked is reported
EVERYTHING = (float("-inf"), float("inf"))


class PaymentAcks:
    """The writes of one slice (the profile's requests with ``write``; payment creations for
    the payment-service): (id -> the value sent) of every one acknowledged, and every
    idempotency key sent (a failed write may still have been made)."""

    def __init__(self, write_kinds: frozenset[str] | None = None) -> None:
        self.write_kinds = write_kinds if write_kinds is not None else profiles.load().write_kinds
        self.acked: dict[str, str] = {}
        self.keys: set[str] = set()
        self.acked_for_key: dict[str, str] = {}  # key -> the payment id acknowledged for it
        self.ids_of_key: dict[str, set[str]] = {}  # key -> every id its answers named

    def add(self, r: LedgerRecord) -> None:
        if r.kind not in self.write_kinds and not (r.kind == "" and r.method == "POST" and r.idempotency_key):
            return  # not a write (a ledger from before kinds: its keyed POSTs were the writes)
        if r.idempotency_key:
            self.keys.add(r.idempotency_key)
        if not r.failed and r.payment_id:
            self.acked[r.payment_id] = r.amount
            if r.idempotency_key:
                self.acked_for_key.setdefault(r.idempotency_key, r.payment_id)
                self.ids_of_key.setdefault(r.idempotency_key, set()).add(r.payment_id)


def acknowledged_payments(records: Iterable[LedgerRecord],
                          window: tuple[float, float] = EVERYTHING,
                          ) -> tuple[dict[str, str], set[str]]:
    """(payment id -> amount) of every 201 payment creation that started within ``window``,
    and every key that was sent there."""
    acks = PaymentAcks()
    for r in records:
        if window[0] <= r.t_start < window[1]:
            acks.add(r)
    return acks.acked, acks.keys


def check_payments(base_url: str, token: str, ledger: Path,
                   window: tuple[float, float] = EVERYTHING,
                   workers: int = 8, timeout: float = 10.0, profile: Profile | None = None) -> DataCheck:
    """The data check of one ledger file (or of the records in ``window``)."""
    profile = profile or profiles.load()
    acks = PaymentAcks(profile.write_kinds)
    with open(ledger, encoding="utf-8") as f:
        for r in read_records(f):
            if window[0] <= r.t_start < window[1]:
                acks.add(r)
    return lookup_payments(base_url, token, acks, workers, timeout, profile)


def lookup_payments(base_url: str, token: str, acks: PaymentAcks, workers: int = 8,
                    timeout: float = 10.0, profile: Profile | None = None) -> DataCheck:
    """Look every acknowledged write up again (the profile's [readback]) and count the writes
    the service holds for every key sent. When the lookups themselves fail,
    ``DataCheck.error`` holds the cause (no prefix: the verdict says "the data check could not
    run")."""
    service = _Lookups(base_url, token, workers, timeout, profile or profiles.load())
    # acknowledged keys first: when the bound cuts, it cuts keys whose creation failed
    keys = sorted(acks.keys, key=lambda k: (k not in acks.acked_for_key, k))
    checked = keys[:MAX_KEYS_CHECKED]
    try:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            found = list(pool.map(service.state_of, sorted(acks.acked.items())))
            by_key = dict(pool.map(service.payments_for, checked))
    except (requests.RequestException, ValueError, AttributeError) as exc:
        return DataCheck(len(acks.acked), error=f"{type(exc).__name__}: {str(exc)[:200]}",
                         **_words(profile or profiles.load()))
    finally:
        service.close()
    acked_for = acks.acked_for_key
    words = _words(profile or profiles.load())
    return DataCheck(
        acknowledged=len(acks.acked),
        missing=[p for p, state in found if state == "missing"],
        mismatched=[p for p, state in found if state == "mismatched"],
        duplicated_keys=[k for k in checked if len(by_key[k]) > 1],
        not_found_by_key=[acked_for[k] for k in checked if k in acked_for and not by_key[k]],
        key_leads_elsewhere=[k for k in checked if k in acked_for
                             and by_key[k] and acked_for[k] not in by_key[k]],
        keys_unchecked=len(keys) - len(checked),
        keys_answered_twice=sorted(k for k, ids in acks.ids_of_key.items() if len(ids) > 1),
        **words,
    )


def _words(profile: Profile) -> dict[str, str]:
    rb = profile.readback
    return {"noun": rb.noun if rb else "write", "value": rb.value if rb else "value",
            "key_name": profile.idempotency_header}


class _Lookups:
    """The two questions the data check asks the Service, on one pooled session (no retries:
    a failed lookup is reported, not hidden), in the words of the profile's [readback]."""

    def __init__(self, base_url: str, token: str, workers: int, timeout: float, profile: Profile) -> None:
        self.base_url, self.timeout = base_url.rstrip("/"), timeout
        self.headers = profile.auth_headers(token)
        self.readback = profile.readback
        # where a read-back shows the value written (one [readback] path: one place for all)
        self.value_jq = next((r.write.readback_jq for r in profile.requests
                              if r.write is not None and r.write.readback_jq), "")
        self.http = requests.Session()
        self.http.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=workers,
                                                                 max_retries=0))

    def state_of(self, item: tuple[str, str]) -> tuple[str, str]:
        """``ok``, ``missing`` or ``mismatched`` for one acknowledged (payment id, amount)."""
        payment_id, amount = item
        path = profiles.render(self.readback.path, {"id": quote(payment_id, safe="")})
        resp = self.http.get(self.base_url + path, headers=self.headers, timeout=self.timeout)
        if resp.status_code == 404:
            return payment_id, "missing"
        resp.raise_for_status()
        if not self.value_jq or not amount:
            return payment_id, "ok"  # found; the profile compares no value
        seen = jq_all(self.value_jq, plain_json(resp.content))
        return payment_id, "ok" if seen and same_value(seen[0], amount) else "mismatched"

    def payments_for(self, key: str) -> tuple[str, list[str]]:
        """The ids of the writes the Service holds for one idempotency key."""
        path = profiles.render(self.readback.by_key, {"key": quote(key, safe="")})
        resp = self.http.get(self.base_url + path, headers=self.headers, timeout=self.timeout)
        resp.raise_for_status()
        return key, [str(i) for i in jq_all(self.readback.by_key_ids, plain_json(resp.content))]

    def close(self) -> None:
        self.http.close()
