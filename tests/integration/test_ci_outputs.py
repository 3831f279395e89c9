"""What a reviewer of a CI run sees, from real runs of the suites on the local platform: the
closing block of verdicts, the exit code that tells a weak run (INCONCLUSIVE, 6) from a drop
(FAIL, 1), summary.md, the job summary ($GITHUB_STEP_SUMMARY) and the JUnit XML written by
default beside the evidence."""
from __future__ import annotations

import os
import xml.etree.ElementTree as ET

import pytest

from tests.integration.conftest import run_pytest

pytestmark = pytest.mark.slow


def run_switch(tmp_path, *args: str):
    step_summary = tmp_path / "github-step-summary.md"
    step_summary.write_text("earlier step\n")
    os.environ["GITHUB_STEP_SUMMARY"] = str(step_summary)
    try:
        done = run_pytest("suites/zero_downtime", "-k", "test_switch_under_load", "--replicas", "1",
                          "--baseline", "1", "--tail", "1", "--alluredir", str(tmp_path / "allure"),
                          "--evidence-dir", str(tmp_path / "out"), *args, timeout=300)
    finally:
        del os.environ["GITHUB_STEP_SUMMARY"]
    return done, done.stdout + done.stderr, step_summary.read_text()


def test_a_load_that_cannot_reach_its_rate_is_inconclusive_with_its_own_exit_code(tmp_path):
    """The generator's concurrency cap (2 in flight) cannot carry 3,000 req/s: a weak run,
    not a drop, so a CI job can retry it without retrying real failures."""
    done, out, step = run_switch(tmp_path, "--load-rate", "3000", "--max-inflight", "2",
                                 "-n", "2")  # the verdict travels from an xdist worker
    assert done.returncode == 6, out[-3000:]
    block = out[out.index("= zerodrop verdicts ="):]
    assert block.splitlines()[1].startswith("switch-under-load: INCONCLUSIVE  "), block
    assert "concurrency cap" in block and "evidence: " in block
    assert "zerodrop: INCONCLUSIVE, not a drop" in block and "(exit 6)" in block
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert summary.startswith("## zerodrop: INCONCLUSIVE") and "switch-under-load" in summary
    assert step == "earlier step\n" + summary  # appended to the job summary, never replacing it
    import json
    verdicts = json.loads((tmp_path / "out" / "verdicts.json").read_text())
    assert verdicts["outcome"] == "INCONCLUSIVE" and verdicts["exit"] == 6
    assert [p["verdict"] for p in verdicts["proofs"]] == ["INCONCLUSIVE"]
    cases = list(ET.parse(tmp_path / "out" / "junit.xml").getroot().iter("testcase"))
    assert [c.get("name") for c in cases] == ["test_switch_under_load"]
    assert not [p for c in cases for p in c.iter("property") if "proof" in (p.get("name") or "")]
    assert "PytestWarning" not in out


def test_a_drop_fails_with_exit_1_its_causes_first_and_no_object_dump(tmp_path):
    """Blue answers a third of its requests with a 500: a FAIL (exit 1), the causes in the closing
    block, and pytest's dump of the proof's objects nowhere."""
    done, out, _ = run_switch(tmp_path, "--local-faults", '{"blue": {"error_rate": 0.3}}')
    assert done.returncode == 1, out[-3000:]
    block = out[out.index("= zerodrop verdicts ="):]
    assert block.splitlines()[1].startswith("switch-under-load: FAIL  "), block
    assert any("HTTP 500 answers" in ln for ln in block.splitlines()[2:9]), block
    assert "ScenarioResult(" not in out and "Verdict(" not in out and "assert " not in out
    assert (tmp_path / "out" / "summary.md").read_text().startswith("## zerodrop: FAIL")
