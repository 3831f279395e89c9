"""The nightly trend page (reports/trend.py) renders stored runs and decides nothing: its rows
come from each run's summary and stored comparison; the PNG is a real PNG; a regression is
marked where, and only where, the stored comparison says so."""
from __future__ import annotations

from pathlib import Path

from zerodrop.reports.history import Run
from zerodrop.reports.trend import render_html, trend_rows, write_trend


def run(name: str, p50: float, p99: float, count: int = 1000, failed: int = 0,
        comparison: dict | None = None, verdict: str = "PASS") -> Run:
    return Run(Path(name), {"stored": f"{name}-date"}, {"steady": {"verdict": verdict}},
               {"overall": {"count": count, "failed": failed, "p50": p50, "p95": p99 * 0.8,
                            "p99": p99, "sample_ms": [p50] * 10}}, comparison)


RUNS = [
    run("20261201T010000Z-a", 5.0, 20.0, comparison={"outcome": "no history", "regressions": []}),
    run("20261202T010000Z-b", 5.2, 21.0, comparison={"outcome": "pass", "regressions": []}),
    run("20261203T010000Z-c", 60.0, 95.0, failed=12, comparison={
        "outcome": "fail", "regressions": ["latency regression: median 60.0 ms tonight vs 5.1 ms"],
        "marginal": [], "no_data": []}),
]


def test_rows_come_from_the_stored_runs():
    rows = trend_rows(RUNS)
    assert [r.name for r in rows] == [r.name for r in RUNS]
    assert [r.regressed for r in rows] == [False, False, True]
    assert rows[2].error_rate == 0.012 and rows[0].error_rate == 0.0
    assert rows[2].p50 == 60.0 and rows[2].p99 == 95.0
    assert rows[0].comparison == "no history"


def test_the_page_marks_the_regression_and_only_it(tmp_path):
    paths = write_trend(RUNS, tmp_path)
    png = paths["png"].read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    page = paths["html"].read_text()
    assert page.count('<tr class="bad">') == 1
    assert "latency regression: median 60.0 ms tonight vs 5.1 ms" in page
    assert "no history yet" in page and "REGRESSION" in page and "1.20%" in page
    assert 'src="data:image/png;base64,' in page  # one file: it opens from disk


def test_a_page_without_any_regression_marks_none():
    """Negative control: the same runs, the third one stored as no regression."""
    calm = RUNS[:2] + [run("20261203T010000Z-c", 5.1, 20.0,
                           comparison={"outcome": "pass", "regressions": []})]
    page = render_html(trend_rows(calm), None)
    assert '<tr class="bad">' not in page and "REGRESSION" not in page
    assert "(no chart" in page


def test_a_run_not_compared_yet_reads_so():
    page = render_html(trend_rows([run("20261204T010000Z-d", 5.0, 20.0)]), None)
    assert "not compared" in page
