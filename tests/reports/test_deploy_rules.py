"""A watched deploy command on the verdict: its failure is a cause of a FAIL with its exit
status and last lines; its success is a line of a PASS (no process runs)."""
from __future__ import annotations

import re

from zerodrop.records.events import Event, EventName, Source
from zerodrop.reports.allure_evidence import CATEGORIES
from zerodrop.reports.verdict import FAIL, PASS, judge

from .builders import T0, clean, cutover, good_data, good_load, timeline


def deploy_events(code, lines=("Switching traffic to green...", "ERROR: Traffic switch failed")):
    out = [Event(T0 + 1 + i * 0.1, str(Source.SCENARIO), str(EventName.DEPLOY_OUTPUT), {"line": x})
           for i, x in enumerate(lines)]
    out.append(Event(T0 + 2, str(Source.SCENARIO), str(EventName.DEPLOY_EXITED),
                     {"code": code, "command": "./blue-green-deploy.sh payment-service img"}))
    return out


def run(events):
    return judge(clean(), timeline() + events, cutover(), good_data(), good_load(), scenario="watched")


def test_a_failed_deploy_command_fails_the_verdict_with_its_status_and_last_lines():
    v = run(deploy_events(1))
    assert v.verdict == FAIL and v.requests_failed == 0
    assert v.reasons[0] == ("deploy command: './blue-green-deploy.sh payment-service img' exited with "
                            "status 1; its last lines: Switching traffic to green... | ERROR: Traffic "
                            "switch failed")
    category = next(c["name"] for c in CATEGORIES if re.fullmatch(c["messageRegex"], v.summary()))
    assert category == "Deploy command failed"


def test_a_stopped_or_unstartable_command_says_so():
    stopped = run(deploy_events("timeout", lines=("waiting...",)))
    assert stopped.verdict == FAIL
    assert "did not end in time and was stopped; its last lines: waiting..." in stopped.reasons[0]
    missing = run(deploy_events(127, lines=()))
    assert "could not start; its last lines: (no output)" in missing.reasons[0]


def test_a_deploy_command_that_ended_well_is_a_line_of_the_pass():
    v = run(deploy_events(0, lines=("a", "b", "c")))
    assert v.verdict == PASS, v.reasons
    assert any(r == "deploy command './blue-green-deploy.sh payment-service img' exited 0; its 3 lines "
               "are on the timeline" for r in v.reasons), v.reasons


def test_no_deploy_command_no_line():
    v = run([])
    assert v.verdict == PASS and not any("deploy command" in r for r in v.reasons)
