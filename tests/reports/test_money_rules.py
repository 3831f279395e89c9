"""The money rules: their texts and kinds from MoneyCheck values, and what they do to a verdict
whose requests all succeeded (no process runs)."""
from __future__ import annotations

import re

from zerodrop.records.results import MoneyCheck
from zerodrop.reports.allure_evidence import CATEGORIES
from zerodrop.reports.rules import KIND_FAIL, KIND_INCONCLUSIVE, Policy
from zerodrop.reports.verdict import FAIL, INCONCLUSIVE, PASS, Judge, judge

from .builders import (clean, cutover, good_data, good_load, good_money, money_mismatch,
                       stale_read, timeline)


def run(money: MoneyCheck | None, policy: Policy = Policy()):
    return judge(clean(), timeline(), cutover(), good_data(), good_load(), policy,
                 scenario="switch", money=money)


def money_reasons(v) -> list[str]:
    return [r for r in v.reasons if "money" in r or "stale read" in r]


def category_of(message: str) -> str | None:
    for c in CATEGORIES:
        if re.fullmatch(c["messageRegex"], message):
            return c["name"]
    return None


def test_a_money_mismatch_fails_even_when_no_request_failed():
    v = run(good_money(mismatches=(money_mismatch(),)))
    assert v.requests_failed == 0
    assert v.verdict == FAIL
    assert v.reasons[0] == (
        "data loss: money: account load-account-1 holds 1,000.01, but 900.00 at the start + "
        "150.01 acknowledged credits - 50.00 acknowledged debits = 1,000.00 (0.01 more)")
    assert v.to_dict()["money"]["mismatched_accounts"] == 1
    assert category_of("AssertionError: " + v.summary()) == "Data loss"


def test_a_mismatch_with_unknown_writes_says_none_explains_it():
    v = run(good_money(mismatches=(money_mismatch(final="999.98", unknown=3),)))
    assert v.reasons[0].endswith("= 1,000.00 (0.02 less); no subset of its 3 writes of unknown "
                                 "outcome explains the difference"), v.reasons[0]


def test_mismatches_past_the_cap_are_named_in_one_line():
    many = tuple(money_mismatch(f"load-account-{i}") for i in range(1, 5))
    v = run(good_money(mismatches=many), Policy(max_examples=2))
    lines = money_reasons(v)
    assert [line.split(" holds")[0] for line in lines[:2]] == [
        "data loss: money: account load-account-1", "data loss: money: account load-account-2"]
    assert lines[2] == ("data loss: money: 2 more accounts do not add up: load-account-3, "
                        "load-account-4")
    assert len(lines) == 3


def test_stale_reads_fail_with_an_example_placed_after_the_timeline():
    low = (stale_read(14.3, request_id="9f1c"), stale_read(20.0), stale_read(21.0))
    v = run(good_money(stale_reads=low))
    assert v.verdict == FAIL and v.requests_failed == 0
    assert v.reasons[0] == (
        "data loss: stale read: 3 balance reads showed less than the writes acknowledged "
        "before they started (read-your-writes), e.g. load-account-2 read 100.00 at 2.2 s "
        "after 'replica terminating' (color blue, replica blue-0), at least 150.00 was due "
        "(request 9f1c)")
    high = stale_read(5.0, value="1200.00", lower="900.00", upper="1100.00", request_id="a7")
    v = run(good_money(stale_reads=(high,)))
    assert v.reasons[0] == (
        "data loss: stale read: 1 balance read showed more than the writes sent before it "
        "ended can make, e.g. load-account-2 read 1,200.00 at 3.0 s after 'deploy green' "
        "(color green, version 1.1.0), at most 1,100.00 was possible (request a7)")
    assert category_of(v.summary()) == "Data loss"


def test_unchecked_and_error_are_inconclusive():
    v = run(good_money(unchecked="the load made no credit or debit"))
    assert v.verdict == INCONCLUSIVE
    assert money_reasons(v) == ["inconclusive: money could not be checked: the load made no "
                                "credit or debit"]
    v = run(good_money(error="BalanceReadError: GET /api/accounts/a/balance answered 503: x"))
    assert v.verdict == INCONCLUSIVE
    assert money_reasons(v) == ["inconclusive: money could not be checked: BalanceReadError: "
                                "GET /api/accounts/a/balance answered 503: x"]
    assert category_of(v.summary()) == "Inconclusive load"


def test_a_fail_wins_over_an_unchecked_money_invariant():
    v = run(good_money(mismatches=(money_mismatch(),), unchecked="no final balance for: x"))
    assert v.verdict == FAIL
    assert v.reasons[0].startswith("data loss: money: ")
    assert "inconclusive: money could not be checked: no final balance for: x" in v.reasons


def test_a_money_check_that_is_not_judged_is_silent():
    broken = MoneyCheck(judged=False, mismatches=(money_mismatch(),),
                        stale_reads=(stale_read(),), unchecked="x", error="y")
    for money in (None, broken):
        v = run(money)
        assert v.verdict == PASS, v.summary()
        assert money_reasons(v) == []
        assert "money" not in v.to_dict()


def test_a_pass_says_what_the_money_check_saw():
    v = run(good_money())
    assert v.verdict == PASS
    assert ("money adds up on 4 accounts: 312 credits and 280 debits acknowledged, every final "
            "balance exact; 1,203 balance reads within read-your-writes bounds") in v.reasons
    assert v.to_dict()["money"] == {
        "accounts": 4, "credits_acked": 312, "debits_acked": 280, "mismatched_accounts": 0,
        "reads_checked": 1203, "stale_reads": 0, "unknown_writes": 0, "rejected_writes": 0,
        "unchecked": "", "error": ""}
    v = run(good_money(unknown_writes=2))
    assert any("; 2 writes of unknown outcome explained;" in r for r in v.reasons)


def test_judge_finish_takes_the_money_check():
    j = Judge(cutover())
    for r in clean():
        j.add(r)
    v = j.finish(timeline(), good_data(), good_load(), money=good_money(
        mismatches=(money_mismatch(),)))
    assert v.verdict == FAIL and v.reasons[0].startswith("data loss: money: account ")


def test_each_rule_has_its_kind():
    from zerodrop.reports import rules
    assert {rules.money_adds_up, rules.stale_reads, rules.money_unchecked} <= set(rules.RULES)
    f = _facts(good_money(mismatches=(money_mismatch(),), stale_reads=(stale_read(),),
                          unchecked="u", error="e"))
    assert [r.kind for r in rules.money_adds_up(f)] == [KIND_FAIL]
    assert [r.kind for r in rules.stale_reads(f)] == [KIND_FAIL]
    assert [r.kind for r in rules.money_unchecked(f)] == [KIND_INCONCLUSIVE] * 2


def _facts(money: MoneyCheck):
    """The facts a rule sees, built the way the Judge builds them."""
    from zerodrop.reports.rules import VerdictFacts, failure_classes, latency_summary
    j = Judge(cutover())
    for r in clean(seconds=1):
        j.add(r)
    events = timeline()
    return VerdictFacts(j.tally, events, failure_classes(j.tally, events),
                        latency_summary(j.tally), good_data(), good_load(), Policy(),
                        money=money)
