"""The verdicts where reviewers look: a closing block in the terminal, a Markdown summary (for a
CI job summary), and an exit code that tells a weak run from a drop.

Each proof test hands its verdict's summary (reports/summary.py) over through the ``zd_judged``
fixture; it travels as an attribute of the test's call report, so that it reaches the pytest
controller from xdist workers too (and stays out of the JUnit XML). The controller collects them (``pytest_runtest_logreport``), prints one
block per proof at the end (``pytest_terminal_summary``), writes ``summary.md`` beside the
evidence and to ``$GITHUB_STEP_SUMMARY`` when set, and, when every failed test of the run is a
proof whose verdict is INCONCLUSIVE, exits with ``INCONCLUSIVE`` (6) instead of 1.

Nothing here judges: the verdicts are reports/verdict.py's, their rendering reports/summary.py's.
"""
from __future__ import annotations

from pathlib import Path
import pytest

from zerodrop.reports.summary import (INCONCLUSIVE, PROPERTY_ATTR, exit_status, terminal_lines,
                                      write_markdown)

proofs_key = pytest.StashKey[list]()
failed_key = pytest.StashKey[dict]()  # nodeid -> the verdict of its proof, or "" (not a proof)


class Collector:
    """Registered on the controller: gathers the proofs' summaries and the failed tests."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        proof = getattr(report, PROPERTY_ATTR, None)
        proofs = [dict(proof)] if proof else []
        if report.when == "call":
            self.config.stash[proofs_key].extend(proofs)
        if report.failed:
            verdict = proofs[0]["verdict"] if proofs and not proofs[0]["scenario_failure"] else ""
            self.config.stash[failed_key][report.nodeid] = verdict


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call):
    """The call report carries the proof's summary the test left on its item: an attribute of
    the report (pytest serialises a report's attributes for xdist), not a user property, so it
    reaches the controller but stays out of the JUnit XML."""
    report = yield
    proof = getattr(item, PROPERTY_ATTR, None)
    if proof is not None and report.when == "call":
        setattr(report, PROPERTY_ATTR, proof)
    return report


@pytest.hookimpl(tryfirst=True)  # before junitxml's own pytest_configure reads --junitxml
def pytest_configure(config: pytest.Config) -> None:
    from zerodrop.fixtures.session import is_worker
    from zerodrop.plugin.core import _runs_suites
    config.stash[proofs_key] = []
    config.stash[failed_key] = {}
    if is_worker(config):
        return
    config.pluginmanager.register(Collector(config), "zerodrop-summary-collector")
    if _runs_suites(config) and getattr(config.option, "xmlpath", "missing") is None:
        config.option.xmlpath = str(out_dir(config) / "junit.xml")
    # the suites' JUnit properties (the target each test used) are written under pytest's
    # default junit_family as well; its warning that they might not be would only be noise
    config.addinivalue_line("filterwarnings",
                            "ignore:record_property is incompatible:pytest.PytestWarning")


def out_dir(config: pytest.Config) -> Path:
    from zerodrop.plugin.core import OUT_DIR
    return Path(config.option.evidence_dir or config.rootpath / OUT_DIR)


def pytest_sessionfinish(session: pytest.Session) -> None:
    from zerodrop.fixtures.session import is_worker
    from zerodrop.plugin.core import _runs_suites
    config = session.config
    if is_worker(config) or proofs_key not in config.stash:
        return
    session.exitstatus = exit_status(config.stash[failed_key], session.exitstatus)
    if _runs_suites(config):
        write_markdown(config.stash[proofs_key], session.exitstatus, out_dir(config))


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    proofs = config.stash.get(proofs_key, [])
    if not proofs:
        return
    terminalreporter.write_sep("=", "zerodrop verdicts")
    colours = {"PASS": {"green": True}, "FAIL": {"red": True}, "INCONCLUSIVE": {"yellow": True}}
    heads = {f"{p['name']}: {p['verdict']} ": p["verdict"] for p in proofs}
    for line in terminal_lines(proofs):
        verdict = next((v for h, v in heads.items() if line.startswith(h)), None)
        terminalreporter.write_line(line, bold=verdict is not None, **colours.get(verdict, {}))
    if exit_status(config.stash.get(failed_key, {}), exitstatus) == INCONCLUSIVE:
        terminalreporter.write_line(
            f"zerodrop: INCONCLUSIVE, not a drop: the run was too weak to judge (exit "
            f"{INCONCLUSIVE}); retry it, on a quieter machine or with a lower --load-rate",
            yellow=True)


