"""Evidence a person reads in 30 seconds: which run it is, the failures by route and colour,
the ledger beside the page, an earlier run's files moved out of the way."""
from __future__ import annotations

import json
import os
import re
import time
from dataclasses import replace
from pathlib import Path

import zerodrop
from zerodrop.records.ledger import write_records
from zerodrop.reports.evidence import (REDACTED, STALE_DIR, git_commit, redact_argv,
                                       run_context, write_evidence)
from zerodrop.reports.verdict import judge

from .builders import clean, cutover, good_data, good_load, timeline

ROOT = Path(__file__).resolve().parents[2]


def verdict(failures: bool = True):
    recs = list(clean())
    if failures:
        for i in range(1200, 1260, 3):  # 500s from green on POST /api/payments
            recs[i] = replace(recs[i], method="POST", route="/api/payments", status=500,
                              outcome="http_error", version="1.1.0", color="green")
        for i in (1301, 1302):          # resets: no answer, no colour
            recs[i] = replace(recs[i], status=0, outcome="reset", version="", color="",
                              replica="")
    return judge(recs, timeline(), cutover(), good_data(), good_load(), scenario="switch")


def ledger_file(path: Path, n: int = 10) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as f:
        write_records(f, list(clean())[:n])
    return path


# ---------------------------------------------------------------- run context


CONTEXT = {"target": "kind", "command": "pytest suites/zero_downtime --target kind --token s3cr3t",
           "run_id": "run-42", "commit": "0123456789ab", "date": "2025-01-02 03:04:05 UTC"}


def test_the_page_and_the_json_name_the_run(tmp_path):
    paths = write_evidence(verdict(), timeline(), tmp_path, "switch", context=CONTEXT)
    page = paths.html.read_text()
    run = page.split("<h2>Run</h2>", 1)[1].split("<h2>", 1)[0]
    for label, value in (("target", "kind"), ("git commit", "0123456789ab"),
                         ("date (UTC)", "2025-01-02 03:04:05 UTC"), ("run id", "run-42"),
                         ("zerodrop version", zerodrop.__version__)):
        assert re.search(rf"<th>{re.escape(label)}</th><td>(<code>)?{re.escape(value)}", run), \
            (label, run)
    assert "pytest suites/zero_downtime --target kind --token [redacted]" in run
    assert "s3cr3t" not in page and "s3cr3t" not in paths.json.read_text()
    doc = json.loads(paths.json.read_text())
    assert doc["run"]["target"] == "kind" and doc["run"]["run_id"] == "run-42"
    # the run comes before the chart: read in the first screen, not at the bottom
    assert page.index("<h2>Run</h2>") < page.index("<h2>Timeline</h2>")


def test_without_a_context_the_page_says_what_it_can_find(tmp_path, monkeypatch):
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr("sys.argv", ["zerodrop", "verify", "--target", "local",
                                     "--token=abc123", "https://u:pw@host/x"])
    ctx = run_context()
    assert ctx["target"] == "local"
    assert ctx["command"] == f"zerodrop verify --target local --token={REDACTED} " \
                             f"https://{REDACTED}@host/x"
    assert ctx["zerodrop_version"] == zerodrop.__version__
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", ctx["date"])
    if (ROOT / ".git").exists():
        assert re.match(r"[0-9a-f]{12}( \(uncommitted changes\))?$", ctx["commit"]), ctx
    page = write_evidence(verdict(), timeline(), tmp_path, "switch").html.read_text()
    assert "abc123" not in page and "pw@" not in page
    assert "zerodrop verify --target local" in page


def test_a_folder_outside_git_has_no_commit(tmp_path):
    assert git_commit(tmp_path) is None
    assert run_context({}, cwd=tmp_path)["commit"] == "(not a git checkout)"


def test_secret_options_are_redacted_from_a_command_line():
    argv = ["pytest", "--token", "t0k", "--kubeconfig=/home/me/.kube/c", "DB_PASSWORD=pw9",
            "--target", "kind", "-H", "Authorization: Bearer zz.yy", "it's"]
    text = redact_argv(argv)
    for secret in ("t0k", "/home/me", "pw9", "zz.yy"):
        assert secret not in text
    assert text.startswith(f"pytest --token {REDACTED} --kubeconfig={REDACTED} "
                           f"DB_PASSWORD={REDACTED} --target kind -H ")
    assert text.endswith("'it'\"'\"'s'")  # still a command line a shell reads back


def test_a_secret_in_a_given_context_is_redacted_too():
    ctx = run_context({"command": "deploy.sh --password hunter2", "api_token": "x",
                       "target": "https://admin:pw@cluster"})
    assert ctx["command"] == f"deploy.sh --password {REDACTED}"
    assert ctx["api_token"] == REDACTED and ctx["target"] == f"https://{REDACTED}@cluster"


# ---------------------------------------------------------------- failures by route and colour


def test_the_failure_table_names_route_and_colour(tmp_path):
    page = write_evidence(verdict(), timeline(), tmp_path, "switch").html.read_text()
    table = page.split("<h2>Failures by route and colour</h2>", 1)[1].split("<h2>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", table)
    cells = [re.findall(r"<td>(.*?)</td>", r) for r in rows[1:]]
    assert ["HTTP 500", "<code>POST /api/payments</code>", "green", "20"] == cells[0][:4]
    assert ["connection reset", "<code>GET /api/balance</code>", "unknown (no answer)",
            "2"] == cells[1][:4]
    assert "on POST /api/payments (green)" in page  # and the reason says so too


def test_a_clean_run_has_no_failure_rows(tmp_path):
    page = write_evidence(verdict(failures=False), timeline(), tmp_path, "switch").html.read_text()
    table = page.split("<h2>Failures by route and colour</h2>", 1)[1].split("<h2>", 1)[0]
    assert "no failed request" in table and "<td>" not in table


def test_the_figures_are_shown_apart_from_the_reasons(tmp_path):
    page = write_evidence(verdict(), timeline(), tmp_path, "switch").html.read_text()
    why = page.split('<ul class="reasons">', 1)[1].split("</ul>", 1)[0]
    figures = page.split('<ul class="figures">', 1)[1].split("</ul>", 1)[0]
    assert "upper bound" not in why and "confidence" not in why
    assert "22 of 3,000 requests failed (0.73%); 95% upper bound on the failure rate: 1.1%" \
        in figures


# ---------------------------------------------------------------- the ledger beside the page


def test_the_ledger_is_copied_beside_the_evidence_and_linked_by_its_name(tmp_path):
    source = ledger_file(tmp_path / "pytest-tmp" / "load" / "ledger.jsonl")
    out = tmp_path / "out"
    paths = write_evidence(verdict(), timeline(), out, "switch", source)
    copy = out / "switch.ledger.jsonl"
    assert paths.ledger == copy and paths["ledger"] == copy
    assert copy.read_bytes() == source.read_bytes()
    doc = json.loads(paths.json.read_text())
    assert doc["ledger"] == str(copy) and doc["ledger_file"] == "switch.ledger.jsonl"
    page = paths.html.read_text()
    assert '<a href="switch.ledger.jsonl">' in page
    assert "pytest-tmp" not in page and "pytest-tmp" not in paths.json.read_text()
    source.unlink()  # the temp folder goes; the evidence keeps its ledger
    assert copy.read_text().count("\n") == 10


def test_a_missing_ledger_is_said_and_never_linked(tmp_path):
    gone = tmp_path / "pytest-tmp" / "ledger.jsonl"
    paths = write_evidence(verdict(), timeline(), tmp_path / "out", "switch", gone)
    assert paths.ledger is None and not (tmp_path / "out" / "switch.ledger.jsonl").exists()
    assert json.loads(paths.json.read_text())["ledger"] is None
    page = paths.html.read_text()
    assert "the ledger was not found" in page and "<a href=" not in page


def test_slices_of_one_load_share_one_ledger_copy_and_a_later_run_never_writes_through_it(
        tmp_path):
    source = ledger_file(tmp_path / "load" / "ledger.jsonl", n=5)
    out = tmp_path / "out"
    early = {"run_started": str(time.time() - 100)}
    a = write_evidence(verdict(), timeline(), out, "switch", source, context=early)
    b = write_evidence(verdict(), timeline(), out, "rollback", source, context=early)
    assert a.ledger.samefile(b.ledger)  # a hard link, not a second copy
    old = b.ledger.read_bytes()
    _age(out, 50)
    source2 = ledger_file(tmp_path / "load2" / "ledger.jsonl", n=7)
    write_evidence(verdict(), timeline(), out, "switch", source2,
                   context={"run_started": str(time.time() - 10)})
    assert (out / "switch.ledger.jsonl").read_text().count("\n") == 7
    assert (out / STALE_DIR / "rollback.ledger.jsonl").read_bytes() == old


# ---------------------------------------------------------------- an earlier run's files


def _age(folder: Path, seconds: float) -> None:
    then = time.time() - seconds
    for f in folder.iterdir():
        if f.is_file():
            os.utime(f, (then, then))


def test_an_earlier_runs_evidence_is_moved_aside_and_this_runs_stays(tmp_path):
    out = tmp_path / "out"
    source = ledger_file(tmp_path / "ledger.jsonl")
    write_evidence(verdict(), timeline(), out, "rollback-under-load", source,
                   context={"run_started": str(time.time() - 100)})
    (out / "summary.md").write_text("not evidence")
    (out / "other.json").write_text('{"not": "evidence"}')
    _age(out, 50)  # that run ended 50 s ago
    started = {"run_started": str(time.time() - 10), "run_id": "this run"}
    first = write_evidence(verdict(), timeline(), out, "switch-under-load", source,
                           context=started)
    assert sorted(p.name for p in first.stale) == [
        "rollback-under-load.html", "rollback-under-load.json",
        "rollback-under-load.ledger.jsonl", "rollback-under-load.png"]
    assert sorted(p.name for p in (out / STALE_DIR).iterdir()) == sorted(
        p.name for p in first.stale)
    # a second proof of the SAME run: the first one's files are this run's and stay
    second = write_evidence(verdict(), timeline(), out, "canary", source, context=started)
    assert second.stale == ()
    assert sorted(p.name for p in out.iterdir()) == sorted([
        "canary.html", "canary.json", "canary.ledger.jsonl", "canary.png", "other.json",
        "stale", "summary.md", "switch-under-load.html", "switch-under-load.json",
        "switch-under-load.ledger.jsonl", "switch-under-load.png"])
    # the moved page still reads whole: its chart is embedded, its ledger link is relative
    moved = (out / STALE_DIR / "rollback-under-load.html").read_text()
    assert 'href="rollback-under-load.ledger.jsonl"' in moved


def test_a_run_that_started_before_the_files_were_written_moves_nothing(tmp_path):
    """Negative control: the same files, written after the run began, are this run's."""
    out = tmp_path / "out"
    started = {"run_started": str(time.time() - 100)}
    write_evidence(verdict(), timeline(), out, "rollback-under-load", context=started)
    paths = write_evidence(verdict(), timeline(), out, "switch-under-load", context=started)
    assert paths.stale == () and not (out / STALE_DIR).exists()
    assert (out / "rollback-under-load.json").exists()


def test_run_started_reads_the_text_the_page_shows(tmp_path):
    out = tmp_path / "out"
    write_evidence(verdict(), timeline(), out, "old")
    _age(out, 3600)
    shown = run_context()["run_started"]  # "YYYY-MM-DD HH:MM:SS UTC", this process's start
    paths = write_evidence(verdict(), timeline(), out, "new",
                           context={"run_started": time.strftime("%Y-%m-%d %H:%M:%S UTC",
                                                                 time.gmtime(time.time() - 5))})
    assert [p.name for p in paths.stale if p.suffix == ".json"] == ["old.json"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", shown)


def test_across_filesystems_the_ledger_is_copied(tmp_path, monkeypatch):
    """No hard link possible (another filesystem): a real copy, still beside the page."""
    def no_link(*args, **kwargs):
        raise OSError(18, "Invalid cross-device link")
    monkeypatch.setattr("zerodrop.reports.evidence.os.link", no_link)
    source = ledger_file(tmp_path / "load" / "ledger.jsonl", n=3)
    paths = write_evidence(verdict(), timeline(), tmp_path / "out", "switch", source)
    assert paths.ledger.read_bytes() == source.read_bytes()
    assert not paths.ledger.samefile(source)
