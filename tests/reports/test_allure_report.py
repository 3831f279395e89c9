"""reports/build_html.sh for real: real allure-results (a pytest session with allure-pytest),
the real Allure 3 (npm), the report opened from file:// in a real headless Chromium.

The report is one file that renders from disk with every host unresolvable (no server, no
network), shows the verdict on its front page (and does not without verdicts.json: the negative
control), carries the categories over, drops the analytics tag, and extends a history file that
the next report's trend reads.

Node.js/npm and Chromium are required: when one is missing the test FAILS with one line saying
which (no silent skip). Allure is installed once into .zerodrop/allure-<v> of the repository
(git-ignored, the same place ./zd report uses), so reruns need no network.
"""
from __future__ import annotations

import base64
import fcntl
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "reports" / "build_html.sh"
VERSION = os.environ.get("ALLURE_VERSION", "3.18.0")
ALLURE_HOME = Path(os.environ.get("ZERODROP_ALLURE_HOME")
                   or ROOT / ".zerodrop" / f"allure-{VERSION}")

TESTS = '''
import os

def test_passes():
    assert True

def test_fails():
    if os.environ.get("TINY_ALL_PASS"):
        return
    raise AssertionError("41 HTTP 500 answers from 1.5 s to 9.7 s after 'endpoints changed'")
'''

TITLE = "zerodrop: FAIL — switch-under-load FAIL, rollback-under-load PASS"
REASON = "41 HTTP 500 answers from 1.5 s to 9.7 s after 'endpoints changed' (GET /pay, green)"
VERDICTS = {
    "outcome": "FAIL", "exit": 1,
    "proofs": [
        {"name": "switch-under-load", "verdict": "FAIL", "scenario_failure": "",
         "requests_total": 1268, "requests_failed": 41, "failure_rate_upper": 0.0412,
         "reasons": [REASON, "data loss: 2 acknowledged payments missing",
                     "latency regression: p99 880 ms after the switch"],
         "evidence": {"html": "reports/out/switch-under-load.html"}},
        {"name": "rollback-under-load", "verdict": "PASS", "scenario_failure": "",
         "requests_total": 1302, "requests_failed": 0, "failure_rate_upper": 0.0023,
         "reasons": [], "evidence": {"html": "reports/out/rollback-under-load.html"}},
    ],
}


def need(tool: str, hint: str) -> str:
    path = shutil.which(tool)
    if not path:
        pytest.fail(f"{tool} is not installed: {hint}", pytrace=False)
    return path


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return need("chromium", "apt-get install -y chromium (Debian) to check the report renders")


def run_tiny_suite(where: Path, *, all_pass: bool = False) -> Path:
    """A real pytest session with allure-pytest (and zerodrop's plugin, which writes
    categories.json and environment.properties): one passing and one failing test."""
    where.mkdir(parents=True, exist_ok=True)
    (where / "test_tiny.py").write_text(TESTS, encoding="utf-8")
    results = where / "allure-results"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "TINY_"))}
    if all_pass:
        env["TINY_ALL_PASS"] = "1"
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "--alluredir", str(results), "test_tiny.py"],
                          cwd=where, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == (0 if all_pass else 1), done.stdout[-2000:] + done.stderr[-2000:]
    assert list(results.glob("*-result.json")), "allure-pytest wrote no results"
    return results


def write_verdicts(results: Path) -> Path:
    """verdicts.json and summary.md beside the results, written after them (as at session end)."""
    out = results.parent
    (out / "summary.md").write_text("## zerodrop: FAIL\n\n- " + REASON + "\n", encoding="utf-8")
    path = out / "verdicts.json"
    path.write_text(json.dumps(VERDICTS), encoding="utf-8")
    later = time.time() + 2
    os.utime(path, (later, later))
    return path


def build(results: Path, out: Path, *extra: str, history: Path | None = None):
    """build_html.sh RESULTS OUT [VERDICTS]; the first call installs Allure (under a lock, so that
    xdist workers do not install it twice at once)."""
    need("node", "install Node.js 20 or newer (it brings npm)")
    env = {**os.environ, "ZERODROP_ALLURE_HOME": str(ALLURE_HOME)}
    if history is not None:
        env["ZERODROP_ALLURE_HISTORY"] = str(history)
    ALLURE_HOME.parent.mkdir(parents=True, exist_ok=True)
    with open(ALLURE_HOME.parent / f".allure-{VERSION}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (ALLURE_HOME / "node_modules" / ".bin" / "allure").exists():
            need("npm", "install it with Node.js 20 or newer")
        done = subprocess.run(["bash", str(SCRIPT), str(results), str(out), *extra],
                              cwd=results.parent, env=env, capture_output=True, text=True,
                              timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert done.stdout == f"build_html: {out}/index.html\n"
    return out / "index.html"


def report_data(html: str) -> dict[str, object]:
    """The data the single-file report inlines: d("widgets/x.json", "<base64>") calls."""
    data = {}
    for name, value in re.findall(r'd\(("[^"]*"),("[^"]*")\)', html):
        raw = base64.b64decode(json.loads(value))
        name = json.loads(name)
        data[name] = json.loads(raw) if name.endswith(".json") else raw
    return data


def rendered_text(index: Path, tmp_path: Path) -> str:
    """The text a person sees: Chromium's DOM after the report's scripts ran, from file://, with
    every host name unresolvable (nothing may be fetched), without scripts and styles."""
    done = subprocess.run([chromium(), "--headless", "--no-sandbox", "--disable-gpu",
                           f"--user-data-dir={tmp_path / 'chromium-profile'}",
                           "--host-resolver-rules=MAP * ~NOTFOUND",
                           "--virtual-time-budget=10000", "--dump-dom", index.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    assert 'id="allure-app-loader"' not in dom, "the report still shows its loading spinner"
    assert '<div id="app"></div>' not in dom, "the report rendered nothing"
    dom = re.sub(r"<(script|style)\b[\s\S]*?</\1>", " ", dom)
    text = re.sub(r"<[^>]+>", " ", dom).replace("&nbsp;", " ").replace("&#39;", "'")
    return re.sub(r"\s+", " ", text)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """allure-results of a real run, and the verdicts of that run beside them."""
    results = run_tiny_suite(tmp_path_factory.mktemp("run") / "out")
    write_verdicts(results)
    return results


def test_the_report_is_one_file_that_opens_from_disk_with_the_verdict(tiny, tmp_path):
    index = build(tiny, tmp_path / "report", history=tmp_path / "history.jsonl")
    # one file: no scripts, styles or data beside it (only Allure's small machine-readable
    # summaries), and nothing it loads from the network
    assert sorted(p.name for p in index.parent.iterdir()) == [
        "artifacts.json", "index.html", "summary.json", "test-results.json"]
    html = index.read_text(encoding="utf-8")
    assert "googletagmanager" not in html and "dataLayer" not in html
    assert not re.search(r"<(script|link|img|iframe)\b[^>]*\b(src|href)=[\"']?(https?:)?//", html)
    assert f"<title> {TITLE} </title>" in html.replace("&#x27;", "'")

    text = rendered_text(index, tmp_path)
    assert "test_fails" in text and "test_passes" in text  # the report rendered its tree
    assert TITLE in text  # the title: the outcome and every proof's verdict
    assert "zerodrop verdict FAIL (exit 1)" in text
    assert ("switch-under-load FAIL: 41 of 1,268 requests failed (failure rate below 4.2%, "
            "95% confidence)") in text
    assert f"switch-under-load · reason 1 {REASON}" in text
    assert "data loss: 2 acknowledged payments missing (+1 more in summary.md)" in text
    assert "rollback-under-load PASS: 0 of 1,302 requests failed" in text
    assert "reports/out/switch-under-load.html" in text

    data = report_data(html)
    # categories.json of the results (zerodrop's plugin wrote it) reached Allure 3's config:
    # the failure is filed under "Dropped requests", not Allure's default "Product errors"
    nodes = data["widgets/categories.json"]["nodes"].values()
    assert [n["name"] for n in nodes if n["type"] == "category"] == ["Dropped requests"]
    # summary.md travels as the report's global attachment
    attached = data["widgets/globals.json"]["attachments"]
    assert [a["originalFileName"] for a in attached] == ["summary.md"]


def test_without_verdicts_the_front_page_claims_no_verdict(tiny, tmp_path):
    """The negative control: the same results, no verdicts.json beside them."""
    results = tmp_path / "out" / "allure-results"
    shutil.copytree(tiny, results)
    index = build(results, tmp_path / "report", history=tmp_path / "history.jsonl")
    text = rendered_text(index, tmp_path)
    assert "test_fails" in text  # rendered
    assert "zerodrop: FAIL" not in text and "switch-under-load" not in text
    assert "Variables" not in text and REASON not in text
    assert "<title> zerodrop </title>" in index.read_text(encoding="utf-8")


def test_a_stale_verdicts_file_is_left_out_unless_named(tiny, tmp_path):
    results = tmp_path / "out" / "allure-results"
    shutil.copytree(tiny, results)
    stale = write_verdicts(results)
    earlier = min(p.stat().st_mtime for p in results.glob("*-result.json")) - 60
    os.utime(stale, (earlier, earlier))  # from a run before these results
    index = build(results, tmp_path / "report", history=tmp_path / "history.jsonl")
    assert "<title> zerodrop </title>" in index.read_text(encoding="utf-8")
    index = build(results, tmp_path / "report", str(stale), history=tmp_path / "history.jsonl")
    assert "zerodrop: FAIL" in index.read_text(encoding="utf-8").split("</title>")[0]


def test_unreadable_verdicts_fail_in_one_line(tiny, tmp_path):
    bad = tmp_path / "verdicts.json"
    bad.write_text('{"outcome": "FAIL", ', encoding="utf-8")  # cut short
    need("node", "install Node.js 20 or newer (it brings npm)")
    build(tiny, tmp_path / "warm")  # Allure installed, so the failure below is the verdicts'
    done = subprocess.run(["bash", str(SCRIPT), str(tiny), str(tmp_path / "report"), str(bad)],
                          env={**os.environ, "ZERODROP_ALLURE_HOME": str(ALLURE_HOME)},
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 3
    assert done.stderr.startswith(f"build_html: could not read the verdicts in {bad}: ")
    assert done.stderr.count("\n") == 1
    assert not (tmp_path / "report").exists()


def test_history_carries_the_trend_from_one_report_to_the_next(tmp_path):
    history = tmp_path / "reports-out" / "allure-history.jsonl"
    first = run_tiny_suite(tmp_path / "night1" / "out")
    write_verdicts(first)
    second = run_tiny_suite(tmp_path / "night2" / "out", all_pass=True)

    build(first, tmp_path / "report1", history=history)
    assert len(history.read_text(encoding="utf-8").splitlines()) == 1
    index = build(second, tmp_path / "report2", history=history)
    runs = [json.loads(line) for line in history.read_text(encoding="utf-8").splitlines()]
    assert len(runs) == 2
    assert runs[0]["name"] == TITLE and runs[1]["name"] == "zerodrop"
    assert [r["status"] for r in runs[0]["testResults"].values()].count("failed") == 1
    assert [r["status"] for r in runs[1]["testResults"].values()].count("failed") == 0

    # the second report's trend chart has the first night and this one
    charts = report_data(index.read_text(encoding="utf-8"))["widgets/charts.json"]
    dynamics = [c for c in charts["general"].values() if c["type"] == "statusDynamics"][0]
    points = {p["id"]: p for p in dynamics["data"]}
    assert points["current"]["statistic"] == {"total": 2, "passed": 2}
    earlier = [p for i, p in points.items() if i != "current"]
    assert [(p["name"], p["statistic"]["failed"]) for p in earlier] == [(TITLE, 1)]

    # the same results built again (./zd report twice): the run is not counted twice, and
    # the rebuilt report still shows the night before as its history
    index = build(second, tmp_path / "report2", history=history)
    assert len(history.read_text(encoding="utf-8").splitlines()) == 2
    charts = report_data(index.read_text(encoding="utf-8"))["widgets/charts.json"]
    dynamics = [c for c in charts["general"].values() if c["type"] == "statusDynamics"][0]
    assert sorted(p["id"] != "current" for p in dynamics["data"]) == [False, True]
