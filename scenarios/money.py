"""The money check after a run: every account's balance against the credits and debits the load
sent, and every balance read against the writes around it.

Three parts, in the shape of the payment data check (scenarios/integrity.py): ``read_balances``
asks the Service for the balances (before the load and after it), ``MoneyLedger`` collects the
credits, debits and balance reads record by record (fed by whoever streams the ledger), and
``check_money`` is the pure judgement of the two. ``check_money_after`` reads the final balances
and judges, turning a Service that cannot answer into ``MoneyCheck.error``.

A write is one Idempotency-Key: its retries and deliberate duplicates are the same write. It is
acknowledged when one attempt got 201, rejected when every attempt got a 4xx (the Service did
not apply it), unknown otherwise (no answer, or a 5xx: it may have been applied). Amounts are
exact: every value becomes integer minor units at the finest scale any value of the run uses.
"""
from __future__ import annotations

import bisect
import decimal
from decimal import Decimal
from itertools import accumulate
from typing import Iterable
from urllib.parse import quote

import requests

from zerodrop.checks.expect import jq_all
from zerodrop.profiles import profile as profiles
from zerodrop.profiles.profile import Profile, plain_json
from zerodrop.records.ledger import LedgerRecord
from zerodrop.records.results import MoneyCheck, MoneyMismatch, StaleRead

WRITE_KINDS = ("credit", "debit")
MAX_EXACT_UNKNOWN = 16          # unknown writes per account always explained exactly
MAX_SUBSET_SUMS = 2 ** MAX_EXACT_UNKNOWN  # past this many distinct subset sums: unchecked
NO_WRITES = "the load made no credit or debit"

# trap every rounding: a value that does not convert exactly is an error, never a near miss
_EXACT = decimal.Context(prec=80, traps=[decimal.Inexact, decimal.InvalidOperation,
                                         decimal.Overflow])


class BalanceReadError(RuntimeError):
    """The Service did not answer a balance read with 200 and a decimal balance."""


def read_balances(base_url: str, token: str, accounts: Iterable[str],
                  timeout: float = 10.0, profile: Profile | None = None) -> dict[str, str]:
    """account -> its balance as the exact decimal string the Service answered, read as the
    profile's [money] says (no retries: a balance that cannot be read is reported, not guessed)."""
    profile = profile or profiles.load()
    if profile.money is None:
        raise BalanceReadError(f"the profile {profile.name} has no [money] section: no balance to read")
    out: dict[str, str] = {}
    with requests.Session() as http:
        http.mount("http://", requests.adapters.HTTPAdapter(max_retries=0))
        for account in accounts:
            path = profiles.render(profile.money.balance_path, {"account": quote(account, safe="")})
            resp = http.get(base_url.rstrip("/") + path, timeout=timeout,
                            headers=profile.auth_headers(token))
            if resp.status_code != 200:
                raise BalanceReadError(f"GET {path} answered {resp.status_code}: "
                                       f"{resp.text[:200]}")
            try:
                found = jq_all(profile.money.balance_jq, plain_json(resp.content))
                value = found[0] if found else None
                if isinstance(value, bool) or not isinstance(value, (str, int)):
                    raise TypeError(f"balance is {type(value).__name__}")
                number = Decimal(value)
                if not number.is_finite():
                    raise ValueError("balance is not finite")
            except (ValueError, TypeError, KeyError, decimal.InvalidOperation) as exc:
                raise BalanceReadError(f"GET {path} answered no decimal balance ({exc}): "
                                       f"{resp.text[:200]}") from None
            out[account] = str(number)
    return out


class _Write:
    """One Idempotency-Key: what it asked for and how its attempts ended."""

    __slots__ = ("account", "kind", "amount", "t_start", "t_ack", "all_4xx", "request_id")

    def __init__(self, r: LedgerRecord) -> None:
        self.account, self.kind, self.amount = r.account, r.kind, r.amount
        self.request_id = r.first_request_id or r.request_id
        self.t_start = r.t_start
        self.t_ack: float | None = None   # the first 201's t_end
        self.all_4xx = True

    def add(self, r: LedgerRecord) -> None:
        self.t_start = min(self.t_start, r.t_start)
        if r.outcome == "ok":
            self.t_ack = r.t_end if self.t_ack is None else min(self.t_ack, r.t_end)
        elif not 400 <= r.status <= 499:
            self.all_4xx = False

    @property
    def acked(self) -> bool:
        return self.t_ack is not None

    @property
    def unknown(self) -> bool:
        return self.t_ack is None and not self.all_4xx


class MoneyLedger:
    """The credits, debits (one per Idempotency-Key) and balance reads of a run; every other
    record is ignored, so memory grows with the money records only."""

    def __init__(self) -> None:
        self.writes: dict[str, _Write] = {}
        # (account, t_start, t_end, value, request_id) of every balance read answered ok
        self.reads: list[tuple[str, float, float, str, str]] = []
        self.conflicted: set[str] = set()  # accounts of a key sent with two different bodies

    def add(self, r: LedgerRecord) -> None:
        if r.kind in WRITE_KINDS:
            # a write without a key is its own write (nothing can repeat it)
            key = r.idempotency_key or f"\0{r.request_id or len(self.writes)}"
            w = self.writes.get(key)
            if w is None:
                w = self.writes[key] = _Write(r)
            elif (w.account, w.kind, w.amount) != (r.account, r.kind, r.amount):
                self.conflicted.update((w.account, r.account))
            w.add(r)
        elif r.kind == "balance" and r.outcome == "ok" and r.balance and r.account:
            self.reads.append((r.account, r.t_start, r.t_end, r.balance, r.request_id))

    @property
    def accounts(self) -> set[str]:
        return {w.account for w in self.writes.values()} | {a for a, *_ in self.reads}


def check_money_after(base_url: str, token: str, start: dict[str, str], ledger: MoneyLedger,
                      timeout: float = 10.0, profile: Profile | None = None) -> MoneyCheck:
    """Read the final balances of the accounts ``start`` holds and judge them; a Service that
    cannot answer makes ``MoneyCheck.error`` (the cause only, no prefix)."""
    try:
        final = read_balances(base_url, token, sorted(start), timeout, profile)
    except (BalanceReadError, requests.RequestException) as exc:
        return MoneyCheck(accounts=tuple(sorted(set(start) | ledger.accounts)), judged=True,
                          error=f"{type(exc).__name__}: {str(exc)[:200]}")
    return check_money(start, final, ledger)


def check_money(start: dict[str, str], final: dict[str, str],
                ledger: MoneyLedger) -> MoneyCheck:
    """Judge the balances: per account, final == start + acknowledged credits - acknowledged
    debits (some subset of its unknown writes may explain a difference), and every balance read
    within the bounds of read-your-writes. Pure: no I/O, no clock."""
    accounts = sorted(set(start) | ledger.accounts)
    unchecked: list[str] = []
    skip: set[str] = set()

    def cannot(accounts_: Iterable[str], why: str) -> None:
        found = sorted(set(accounts_))
        if found:
            skip.update(found)
            unchecked.append(f"{why}: {_few([a or '(none)' for a in found])}")

    cannot((a for a in accounts if a not in start), "no start balance for")
    cannot((a for a in accounts if a not in final), "no final balance for")
    cannot(ledger.conflicted, "an Idempotency-Key was sent with two different bodies on")
    values = _Values()
    cannot([a for a in accounts if a not in skip and (values.bad(start[a]) | values.bad(final[a]))],
           "a balance that is no decimal number for")
    bad_amounts = [w for w in ledger.writes.values()
                   if w.account not in skip and (values.bad(w.amount) or Decimal(w.amount) <= 0)]
    cannot((w.account for w in bad_amounts), "a credit or debit with no positive amount on")
    reads = [r for r in ledger.reads if r[0] not in skip and not values.bad(r[3])]
    scale = values.scale

    def minor(text: str) -> int:
        return int(Decimal(text).scaleb(scale, context=_EXACT))

    def text(n: int) -> str:
        return format(Decimal(n).scaleb(-scale, context=_EXACT), "f")

    books = {a: _Book(minor(start[a])) for a in accounts if a not in skip}
    credits = debits = unknown = rejected = 0
    for w in ledger.writes.values():
        book = books.get(w.account)
        if book is None:
            continue
        book.add(w, minor(w.amount))
        credits += w.acked and w.kind == "credit"
        debits += w.acked and w.kind == "debit"
        unknown += w.unknown
        rejected += not w.acked and not w.unknown

    mismatches = []
    for a, book in books.items():
        got = minor(final[a])
        explained = book.explains(got - book.expected)
        if explained is None:
            unchecked.append(f"account {a} has {len(book.unknown):,} writes of unknown outcome "
                             f"and no subset of them could be enumerated to explain its final "
                             f"balance (at most {MAX_EXACT_UNKNOWN} are always checked)")
        elif not explained:
            mismatches.append(MoneyMismatch(a, str(start[a]), text(book.credits),
                                            text(book.debits), text(book.expected),
                                            str(final[a]), len(book.unknown)))

    stale = []
    for a, ts, te, value, request_id in reads:
        lower, upper = books[a].bounds(ts, te)
        if not lower <= minor(value) <= upper:
            stale.append(StaleRead(a, request_id, ts, value, text(lower), text(upper)))
    stale.sort(key=lambda s: s.t_start)

    if not ledger.writes:
        unchecked.append(NO_WRITES)
    return MoneyCheck(accounts=tuple(accounts), judged=True, credits_acked=credits,
                      debits_acked=debits, mismatches=tuple(mismatches), stale_reads=tuple(stale),
                      reads_checked=len(reads), unknown_writes=unknown, rejected_writes=rejected,
                      unchecked="; ".join(unchecked))


class _Values:
    """Parses the decimal strings of one check and learns the finest scale among them."""

    def __init__(self) -> None:
        self.scale = 0

    def bad(self, text: object) -> bool:
        if not isinstance(text, (str, Decimal)):
            return True
        try:
            d = Decimal(text)
        except (decimal.InvalidOperation, TypeError, ValueError):
            return True
        if not d.is_finite():
            return True
        self.scale = max(self.scale, -int(d.as_tuple().exponent))
        return False


class _Book:
    """One account in minor units: its acknowledged sums, its unknown writes, and the sorted
    prefix sums that bound a read in O(log n)."""

    def __init__(self, start: int) -> None:
        self.start = start
        self.credits = self.debits = 0
        self.unknown: list[int] = []   # signed: + a credit, - a debit
        # kind -> (t, amount) of the writes acknowledged (by ack time) / maybe applied (by start)
        self._acked: dict[str, list[tuple[float, int]]] = {k: [] for k in WRITE_KINDS}
        self._sent: dict[str, list[tuple[float, int]]] = {k: [] for k in WRITE_KINDS}
        self._index: dict[tuple[str, str], tuple[list[float], list[int]]] | None = None

    @property
    def expected(self) -> int:
        return self.start + self.credits - self.debits

    def add(self, w: _Write, amount: int) -> None:
        if w.acked:
            if w.kind == "credit":
                self.credits += amount
            else:
                self.debits += amount
            self._acked[w.kind].append((w.t_ack, amount))  # type: ignore[arg-type]
        elif w.unknown:
            self.unknown.append(amount if w.kind == "credit" else -amount)
        if w.acked or w.unknown:
            self._sent[w.kind].append((w.t_start, amount))

    def explains(self, diff: int) -> bool | None:
        """Whether some subset of the unknown writes sums to ``diff``; None when the subset
        sums grow past MAX_SUBSET_SUMS before an answer (never for <= MAX_EXACT_UNKNOWN)."""
        sums = {0}
        for v in self.unknown:
            if diff in sums:
                return True
            sums |= {s + v for s in sums}
            if len(sums) > MAX_SUBSET_SUMS:
                return True if diff in sums else None
        return diff in sums

    def bounds(self, ts: float, te: float) -> tuple[int, int]:
        """What a read started at ``ts`` and ended at ``te`` may show: at least every credit
        acknowledged before it started less every debit sent before it ended; at most every
        credit sent before it ended less every debit acknowledged before it started."""
        if self._index is None:
            self._index = {}
            for name, book in (("acked", self._acked), ("sent", self._sent)):
                for kind, items in book.items():
                    items.sort()
                    self._index[name, kind] = ([t for t, _ in items],
                                               [0, *accumulate(v for _, v in items)])

        def total(name: str, kind: str, before: float) -> int:
            times, sums = self._index[name, kind]  # type: ignore[index]
            return sums[bisect.bisect_left(times, before)]

        lower = self.start + total("acked", "credit", ts) - total("sent", "debit", te)
        upper = self.start + total("sent", "credit", te) - total("acked", "debit", ts)
        return lower, upper


def _few(items: list[str], cap: int = 5) -> str:
    shown = ", ".join(items[:cap])
    return shown + (f", ... ({len(items) - cap:,} more)" if len(items) > cap else "")
