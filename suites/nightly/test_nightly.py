"""The nightly regression: is tonight worse than the nights before?

A steady-load probe holds the load on the Service as it is (nothing deployed, scaled or
patched: scenarios/steady.py) and is judged by the ordinary verdict (every request answered,
every acknowledged write found). The run is stored in the history (reports/history.py: one
directory per run with the verdict JSON and the ledger summary), compared with the earlier
good runs (latency: Mann-Whitney; error rate: Fisher), and the trend page is redrawn. The test
fails with the verdict's reasons and each regression (its size and confidence), one a line.

It runs only in a nightly run (``zerodrop nightly``, or ``--nightly``); plain ``zerodrop
verify`` deselects it (plugin/nightly.py).
"""
from __future__ import annotations

import pytest

from zerodrop.checks.steps import labels
from zerodrop.fixtures.proofs import load_errors_in_one_line

pytestmark = [pytest.mark.nightly, pytest.mark.xdist_group("zero_downtime")]
PROOF = "nightly-steady-load"


@labels("nightly", "steady load against earlier runs")
def test_nightly_regression(zd_nightly_platform, zd_nightly_settings, zd_nightly, zd_terminal,
                            zd_evidence_dir, tmp_path, request):
    """Tonight's steady load: every request answered, and no slower or more failing than the
    nights before it."""
    import allure

    from zerodrop.records.ledger import read_records
    from zerodrop.reports.allure_evidence import attach_proof
    from zerodrop.reports.history import (baseline, compare, load_runs, save_comparison,
                                          store_run, summarize_ledger)
    from zerodrop.reports.summary import PROPERTY_ATTR, summary_of
    from zerodrop.reports.trend import write_trend
    from zerodrop.scenarios.proof import prove
    from zerodrop.scenarios.steady import steady_probe

    platform = zd_nightly_platform
    scenario, ctx = steady_probe(platform, zd_nightly.hold_s, name=PROOF)
    with zd_terminal() as stream, load_errors_in_one_line():
        proof = prove(platform, scenario, ctx, zd_nightly_settings, zd_evidence_dir,
                      tmp_path / "ledger", name=PROOF, progress_stream=stream)
    attach_proof(proof)
    setattr(request.node, PROPERTY_ATTR, summary_of(proof))

    with open(proof.load.ledger_path, encoding="utf-8") as f:
        summary = summarize_ledger(read_records(f))
    history = zd_nightly.history_dir
    before = baseline(load_runs(history), zd_nightly.last)
    run = store_run(history, zd_nightly.run_id, {PROOF: proof.verdict.to_dict()}, summary,
                    zd_nightly.context)
    comparison = compare(summary, [r.summary for r in before], [r.name for r in before])
    save_comparison(run, comparison)
    trend = write_trend(load_runs(history), history)

    against = {"fail": "REGRESSION against earlier runs", "marginal": "marginal against earlier "
               "runs", "no data": "no data to compare (not a pass)", "pass": "no regression "
               "against earlier runs"}.get(comparison.outcome, "no history yet")
    lines = [f"zerodrop nightly: {PROOF} {proof.verdict.verdict}, {against}; run stored in "
             f"{run.path}",
             *[f"  - {x}" for x in comparison.lines],
             f"  trend: {trend['html']}" + (f" (png {trend['png'].name})" if "png" in trend else "")]
    zd_nightly.report.extend(lines)
    allure.attach("\n".join(lines), "against earlier runs", allure.attachment_type.TEXT)
    if "png" in trend:
        allure.attach.file(str(trend["png"]), "trend", allure.attachment_type.PNG)

    problems = []
    if not (proof.scenario.ok and proof.verdict.verdict == "PASS"):
        problems.append(proof.explain())
    problems += [f"regression against earlier runs: {x}" for x in comparison.regressions]
    problems += [f"against earlier runs: {x}" for x in comparison.no_data]
    if problems:
        pytest.fail("\n".join(problems + [f"history: {run.path}"]), pytrace=False)
