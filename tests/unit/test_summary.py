"""The run's closing summary (reports/summary.py, printed by plugin/summary.py), its pure parts: the exit status that tells a
weak run from a drop, the terminal block and the Markdown summary, from proof summaries as the
proof tests hand them over."""
from __future__ import annotations

from zerodrop.reports.summary import INCONCLUSIVE, exit_status, markdown, terminal_lines


def proof(name="switch-under-load", verdict="PASS", failed=0, reasons=(), failure=""):
    return {"name": name, "verdict": verdict, "scenario_failure": failure,
            "requests_total": 2300, "requests_failed": failed, "failure_rate_upper": 0.0013,
            "reasons": list(reasons),
            "figures": [f"{failed} of 2,300 requests failed; 95% upper bound on the failure rate: 0.13%"],
            "evidence": {"html": f"/out/{name}.html", "json": f"/out/{name}.json"}}


def test_only_inconclusive_proofs_make_the_inconclusive_exit():
    assert exit_status({"t::switch": "INCONCLUSIVE"}, 1) == INCONCLUSIVE == 6
    assert exit_status({"t::switch": "INCONCLUSIVE", "t::rollback": "INCONCLUSIVE"}, 1) == 6
    # a real drop, a failed scenario or any other failed test is never hidden behind it
    assert exit_status({"t::switch": "INCONCLUSIVE", "t::rollback": "FAIL"}, 1) == 1
    assert exit_status({"t::switch": "INCONCLUSIVE", "t::test_health": ""}, 1) == 1
    assert exit_status({}, 0) == 0 and exit_status({}, 3) == 3 and exit_status({}, 4) == 4
    assert exit_status({"t::switch": "INCONCLUSIVE"}, 2) == 2  # interrupted stays interrupted


def test_the_terminal_block_says_verdict_counts_causes_and_evidence():
    lines = terminal_lines([proof(), proof("rollback-under-load", "FAIL", 41,
                                           ["dropped: 41 HTTP 500 answers", "data loss: 2 missing"])])
    assert lines[0] == "switch-under-load: PASS  2,300 requests judged, 0 failed"
    assert lines[1] == ("  figures: 0 of 2,300 requests failed; 95% upper bound on the failure "
                        "rate: 0.13%")  # a figure, after the causes: never read as an excuse
    assert lines[2] == "  evidence: /out/switch-under-load.html (json switch-under-load.json)"
    assert lines[3] == "rollback-under-load: FAIL  2,300 requests judged, 41 failed"
    assert lines[4:7] == ["  - dropped: 41 HTTP 500 answers", "  - data loss: 2 missing",
                          "  figures: 41 of 2,300 requests failed; 95% upper bound on the failure "
                          "rate: 0.13%"]


def test_a_long_list_of_reasons_is_cut_with_a_count():
    lines = terminal_lines([proof(verdict="FAIL", reasons=[f"r{i}" for i in range(12)])])
    assert "  - r7" in lines and "  - r8" not in lines
    assert "  - ... 4 more in the evidence" in lines


def test_a_failed_scenario_is_said_before_the_reasons():
    lines = terminal_lines([proof(verdict="FAIL", failure="step 'route' failed: 503")])
    assert lines[1] == "  scenario: step 'route' failed: 503"


def test_the_markdown_summary_has_the_overall_outcome_a_table_and_each_proofs_reasons():
    text = markdown([proof(), proof("rollback-under-load", "INCONCLUSIVE",
                                     reasons=["inconclusive: the load reached 13%"])], INCONCLUSIVE)
    assert text.startswith("## zerodrop: INCONCLUSIVE\n")
    assert "| switch-under-load | ✅ PASS | 2,300 | 0 | < 0.13% | `/out/switch-under-load.html` |" in text
    assert "### rollback-under-load: INCONCLUSIVE\n\n- inconclusive: the load reached 13%\n- figures: " in text
    assert markdown([], 0).startswith("## zerodrop: PASS\n\nNo zero-downtime proof ran")


def test_a_canary_says_what_became_of_it_stage_by_stage():
    from zerodrop.reports.summary import canary_line
    facts = {"outcome": "rolled back", "prometheus": "http://127.0.0.1:9090",
             "stages": [{"weight": 5, "outcome": "fail"}], "t_fault_on": 1.02, "t_detected": 3.3}
    line = canary_line(facts)
    assert line == ("rolled back after 5 % fail; fault at 1.0 s, detected at 3.3 s; judged from "
                    "the ledger and Prometheus (http://127.0.0.1:9090)")
    block = terminal_lines([{**proof("canary-healthy"), "canary": line}])
    assert block[1] == f"  canary: {line}"
    assert canary_line(None) == ""  # a switch is no canary: no line
    assert not any(b.startswith("  canary:") for b in terminal_lines([proof()]))
