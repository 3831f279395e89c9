"""Allure: categories that match the verdict's wording, environment.properties without
secrets, attachments on a real Allure test run (pytester + allure-pytest)."""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from zerodrop.records.results import DataCheck, LoadTarget
from zerodrop.reports.allure_evidence import CATEGORIES, write_categories, write_environment
from zerodrop.reports.verdict import Policy, judge

from .builders import (NEW, OLD, clean, cutover, early_exit_timeline, good_data, good_load,
                       record, timeline, with_failures)

pytest_plugins = ["pytester"]
ROOT = Path(__file__).resolve().parents[2]


def category_of(message: str) -> str | None:
    """The first category whose pattern matches, as Allure 2 (whole message) files it; the
    JavaScript search of Allure 3 agrees because every pattern starts and ends with [\\s\\S]*."""
    for c in CATEGORIES:
        if re.fullmatch(c["messageRegex"], message) and re.search(c["messageRegex"], message):
            return c["name"]
    return None


def verdict_of(**kw):
    args = dict(records=clean(), timeline=timeline(), cutover=cutover(), data=good_data(),
                load=good_load())
    args.update(kw)
    return judge(**args)


SITUATIONS = {
    "Dropped requests": [
        verdict_of(records=with_failures(clean(), lambda i, r: i % 97 == 0,
                                         outcome="http_error", status=500)),
        verdict_of(records=with_failures(clean(), lambda i, r: i == 1300, outcome="reset")),
        verdict_of(records=with_failures(clean(), lambda i, r: i in (5, 6), outcome="refused",
                                         status=0)),
        verdict_of(records=with_failures(clean(), lambda i, r: i == 9, outcome="timeout")),
        verdict_of(records=with_failures(clean(), lambda i, r: i == 9, outcome="bad_body")),
        # failures under short load are still filed as dropped requests, not inconclusive
        verdict_of(records=with_failures(clean(), lambda i, r: i == 9, outcome="reset"),
                   load=LoadTarget(100, 10)),
    ],
    "Data loss": [
        verdict_of(data=DataCheck(100, missing=["p1"])),
        verdict_of(data=DataCheck(100, mismatched=["p1", "p2"])),
        verdict_of(data=DataCheck(100, duplicated_keys=["k"])),
    ],
    "Cutover not seen": [
        verdict_of(records=with_failures(clean(), lambda i, r: i == 2000, version=OLD)),
        verdict_of(records=with_failures(clean(), lambda i, r: i == 10, version=NEW)),
        verdict_of(records=with_failures(clean(), lambda i, r: i == 10, version="9.9")),
    ],
    "Latency regression": [
        verdict_of(records=(record(i / 100, latency_s=0.8 if 1000 <= i <= 1500 else 0.01, i=i)
                            for i in range(3000)),
                   policy=Policy(latency_p99_limit_ms=500)),
    ],
    "Shutdown without drain": [
        verdict_of(timeline=early_exit_timeline()),
    ],
    "Inconclusive load": [
        verdict_of(load=LoadTarget(100, 50)),
        verdict_of(load=LoadTarget(100, 100, saturated=True)),
        verdict_of(cutover=cutover(switch=None, drained=None)),
        verdict_of(records=clean(rps=5)),
        verdict_of(data=DataCheck(0, error="db down")),
        verdict_of(records=iter(())),
    ],
}


@pytest.mark.parametrize("category, index", [
    (c, i) for c, vs in SITUATIONS.items() for i in range(len(vs))])
def test_each_category_matches_the_verdict_wording_of_its_situation(category, index):
    v = SITUATIONS[category][index]
    assert v.verdict in ("FAIL", "INCONCLUSIVE")
    message = "AssertionError: " + v.summary()  # what pytest puts in statusDetails.message
    assert category_of(message) == category, message


def test_a_pass_matches_no_category():
    v = verdict_of()
    assert v.verdict == "PASS"
    assert category_of(v.summary()) is None


def test_every_category_regex_is_valid_for_javascript_too():
    # no inline flags, lookbehinds or possessive quantifiers that Allure 3's RegExp lacks
    for c in CATEGORIES:
        assert "(?" not in c["messageRegex"].replace("(?:", "")
        assert c["messageRegex"].startswith("[\\s\\S]*") and c["messageRegex"].endswith("[\\s\\S]*")


def test_write_categories(tmp_path):
    path = write_categories(tmp_path / "results")
    data = json.loads(path.read_text())
    assert [c["name"] for c in data] == ["Data loss", "Dropped requests", "Cutover not seen",
                                         "Latency regression", "Shutdown without drain",
                                         "Deploy command failed", "Inconclusive load"]


def test_write_environment_redacts_secrets(tmp_path):
    path = write_environment(tmp_path, {
        "target": "local", "base_url": "http://u:pw9@127.0.0.1:8080", "ZERODROP_TOKEN": "t0k",
        "kubeconfig": "/root/.kube/config", "note": "a=b: c\nnext", "admin token": "x1"})
    text = path.read_text()
    for secret in ("pw9", "t0k", "/root/.kube", "x1"):
        assert secret not in text
    assert "ZERODROP_TOKEN=[redacted]" in text
    assert "base_url=http\\://" not in text  # values keep ':' (only keys are escaped)
    assert "note=a=b: c\\nnext" in text
    assert "admin\\ token=[redacted]" in text


ATTACHING_TEST = """
from pathlib import Path
from types import SimpleNamespace
from zerodrop.reports.allure_evidence import attach_evidence, attach_proof
from zerodrop.reports.evidence import write_evidence
from zerodrop.reports.verdict import judge
from tests.reports.builders import clean, cutover, good_data, good_load, timeline
from zerodrop.records.ledger import write_records

def test_switch(tmp_path):
    ledger = tmp_path / "ledger.jsonl"
    with ledger.open("w") as f:
        write_records(f, clean())
    v = judge(clean(), timeline(), cutover(), good_data(), good_load())
    paths = write_evidence(v, timeline(), tmp_path, "switch", ledger)
    if "{via}" == "proof":
        proof = SimpleNamespace(evidence=paths, load=SimpleNamespace(ledger_path=ledger),
                                explain=lambda: "switch: PASS\\n- " + v.reasons[0])
        attach_proof(proof, max_ledger_bytes={cap})
    else:
        attach_evidence(paths.as_dict(), ledger, max_ledger_bytes={cap})
"""


@pytest.mark.parametrize("via, cap, truncated", [
    ("evidence", 10**9, False), ("evidence", 20_000, True), ("proof", 10**9, False)])
def test_attachments_land_on_the_allure_test(pytester, tmp_path, monkeypatch, via, cap,
                                             truncated):
    # a subprocess: matplotlib cannot be imported twice in one process, which an in-process
    # pytester run would do once it restores sys.modules
    monkeypatch.setenv("PYTHONPATH", str(ROOT))
    pytester.makepyfile(test_attach=ATTACHING_TEST.format(cap=cap, via=via))
    results = tmp_path / "allure-results"
    outcome = pytester.runpytest_subprocess("-p", "allure_pytest", "--alluredir", str(results),
                                           "-p", "no:cacheprovider", "-p", "no:locust")
    outcome.assert_outcomes(passed=1)
    [result_file] = results.glob("*-result.json")
    result = json.loads(result_file.read_text())
    by_name = {a["name"]: a for a in result["attachments"]}
    assert by_name["verdict.json"]["type"] == "application/json"
    assert by_name["switch report (html)"]["type"] == "text/html"
    assert by_name["switch timeline (png)"]["type"] == "image/png"
    ledger = [a for n, a in by_name.items() if n.startswith("ledger.jsonl")]
    assert len(ledger) == 1
    body = (results / ledger[0]["source"]).read_bytes()
    if truncated:
        assert body.startswith(b"# truncated: the first ")
        assert len(body) <= 20_000 + 200 and body.endswith(b"}\n")
    else:
        assert body.count(b"\n") == 3000
    assert json.loads((results / by_name["verdict.json"]["source"]).read_text())["verdict"] == "PASS"
    if via == "proof":
        text = (results / by_name["verdict"]["source"]).read_text()
        assert text.startswith("switch: PASS\n- cutover seen: old version 1.0.0")
