"""LoadPlan validation (one clear line each), the preflight, and the progress line."""
from __future__ import annotations

import io
import socket
import time
from pathlib import Path

import pytest

from zerodrop.load.progress import ProgressMonitor, TerminalProgress, format_line
from zerodrop.load.runner import LoadError, LoadPlan, LoadRun, preflight_check
from zerodrop.records.progress import Progress

from .conftest import processes_mentioning

HOST = "http://127.0.0.1:8080"


@pytest.mark.parametrize("changes, words", [
    (dict(users=0), "users must be a positive integer"),
    (dict(users=-3), "users must be a positive integer"),
    (dict(users=2.5), "users must be a positive integer"),
    (dict(rate=0), "rate must be > 0"),
    (dict(rate=-1.0), "rate must be > 0"),
    (dict(rate=float("nan")), "rate must be > 0"),
    (dict(max_duration=0), "max_duration must be > 0"),
    (dict(request_timeout=0), "request_timeout must be > 0"),
    (dict(workers=-1), "workers must be 0"),
    (dict(arrivals="bursty"), "arrivals must be one of constant, poisson"),
    (dict(populations={"idle": 1}), "unknown ['idle']"),
    (dict(populations={"keepalive": 0}, idle_clients=0), "nothing would be sent"),
    (dict(max_inflight=0), "max_inflight must be an integer >= 1"),
    (dict(idle_period_s=0), "idle_period_s must be > 0"),
    (dict(accounts=()), "accounts must be non-empty"),
    (dict(host="127.0.0.1:8080"), "is not an http:// URL"),
    (dict(host="ftp://127.0.0.1/"), "is not an http:// URL"),
    (dict(host="http://10.0.0.7:8080"), "is not loopback"),
    (dict(host="http://example.com"), "is not loopback"),
    (dict(host="http://127.0.0.1:99999"), "is not a URL"),
    (dict(mix={"health": 1, "shopping": 2}), "unknown requests ['shopping']; the profile payment-service knows"),
    (dict(mix={"health": 0}), "at least one > 0"),
    (dict(mix={"health": -1, "balance": 2}), "weights must be integers >= 0"),
])
def test_bad_plans_fail_with_one_line(changes, words):
    plan = LoadPlan(**{"host": HOST, **changes})
    with pytest.raises(LoadError) as info:
        plan.validate()
    msg = str(info.value)
    assert words in msg
    assert "\n" not in msg


def test_good_plans_validate():
    LoadPlan(host=HOST).validate()
    LoadPlan(host="http://localhost:1", users=1, rate=0.5, workers=1, mix={"health": 1}).validate()
    LoadPlan(host="http://10.0.0.7:8080", allow_hosts=("10.0.0.7",)).validate()
    # one Locust user per process runs that process's share of the schedule
    assert LoadPlan(host=HOST, users=20, rate=200).rate_per_user == 200.0
    assert LoadPlan(host=HOST, users=20, rate=200, workers=4).rate_per_user == 50.0
    assert LoadPlan(host=HOST, rate=200, idle_clients=6, idle_period_s=3.0).total_rate == 202.0


def test_invalid_plan_starts_nothing(tmp_path: Path):
    led = tmp_path / "never-created-ledger"
    with pytest.raises(LoadError, match="rate must be > 0"):
        with LoadRun(LoadPlan(host=HOST, rate=0, ledger_dir=led)) as run:
            run.start()
    assert not led.exists()
    assert processes_mentioning(str(led)) == []


def test_unreachable_host_fails_before_any_load(tmp_path: Path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    led = tmp_path / "unreachable-ledger"
    t0 = time.monotonic()
    with pytest.raises(LoadError) as info:
        with LoadRun(LoadPlan(host=f"http://127.0.0.1:{port}", ledger_dir=led)) as run:
            run.start()
    msg = str(info.value)
    assert f"http://127.0.0.1:{port} does not answer GET /health (connection refused or unreachable)" in msg
    assert "\n" not in msg
    assert time.monotonic() - t0 < 5
    assert not led.exists()  # Locust never started: not even its log files exist
    assert processes_mentioning(str(led)) == []


def test_preflight_rejects_an_unhealthy_target():
    from .standins import StandIn, server_error

    with StandIn(server_error) as srv:
        with pytest.raises(LoadError, match=r"answered GET /health with HTTP 500"):
            preflight_check(srv.url, "test-token")
        assert srv.requests == 1


def test_a_used_ledger_dir_is_refused(tmp_path: Path):
    from zerodrop.load.runner import _prepare_dir

    (tmp_path / "ledger-worker-1.jsonl").write_text("")
    with pytest.raises(LoadError, match="already holds ledger-worker-1.jsonl"):
        _prepare_dir(tmp_path)


# -- the progress line ---------------------------------------------------------------------------------

def _p(**kw) -> Progress:
    base = dict(elapsed=12.34, planned=60, requests=5000, rps=412.4, failures=0,
                by_color={"green": 98, "blue": 2, "-": 7})
    base.update(kw)
    return Progress(**base)


def test_format_line():
    assert format_line(_p()) == "load 12.3 s  412 req/s  failures 0  active: green (98%)"
    assert format_line(_p(by_color={"-": 3}, failures=3)) == "load 12.3 s  412 req/s  failures 3  active: none"
    assert "60" not in format_line(_p())  # the cap is not the planned length: it is not shown as one
    assert format_line(_p(saturated=True)).endswith("[generator CPU > 90%]")
    assert format_line(_p(), "drain blue (1.5 s)").endswith("active: green (98%)  step: drain blue (1.5 s)")


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_progress_redraws_on_a_tty_and_prints_every_5s_otherwise():
    tty = _Tty()
    out = TerminalProgress(tty)
    out(_p(rps=1000))
    out(_p(rps=5))
    out.close()
    out.close()  # LoadRun.stop closes it and so may the caller: one newline
    text = tty.getvalue()
    assert text.startswith("\n")  # off the line pytest was writing
    assert text.count("\r") == 2 and text.endswith("\n") and text.count("\n") == 2
    # the shorter second line blanks what is left of the longer first one
    assert len(text.split("\r")[2].rstrip("\n")) == len(text.split("\r")[1])

    now = [0.0]
    plain = io.StringIO()
    out = TerminalProgress(plain, clock=lambda: now[0], intro="load: the plan")
    for i in range(21):  # 10 s of polls every 0.5 s
        now[0] = i * 0.5
        out(_p(elapsed=now[0]))
    lines = plain.getvalue().splitlines()
    assert lines[:2] == ["", "load: the plan"]  # a line of its own, then the plan, once
    assert [ln.split()[1] for ln in lines[2:]] == ["0.0", "5.0", "10.0"]
    assert "\r" not in plain.getvalue()


def test_progress_monitor_polls_and_stops():
    seen: list[Progress] = []
    mon = ProgressMonitor(lambda: _p(requests=len(seen)), seen.append, interval=0.02).start()
    deadline = time.monotonic() + 5
    while len(seen) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    mon.stop()
    assert len(seen) >= 3 and not mon.alive
    n = len(seen)
    time.sleep(0.1)
    assert len(seen) == n and mon.error is None


def test_progress_monitor_survives_a_broken_sink():
    def boom(_p):
        raise RuntimeError("terminal gone")

    mon = ProgressMonitor(_p, boom, interval=0.01).start()
    deadline = time.monotonic() + 5
    while mon.alive and time.monotonic() < deadline:
        time.sleep(0.01)
    assert isinstance(mon.error, RuntimeError)
    mon.stop()


# -- saturation is judged from the generator's CPU, not from latency ---------------------------------

def _ledger(directory: Path, n: int, latency: float, span: float):
    """One process's ledger in ``directory``, merged: the summary the runner's result uses."""
    from zerodrop.load.ledger import merge_ledgers
    from zerodrop.records.ledger import LedgerRecord, write_records

    directory.mkdir()
    with open(directory / "ledger-standalone-1.jsonl", "w") as out:
        write_records(out, (LedgerRecord(t_start=1000 + i * span / n, t_end=1000 + i * span / n + latency,
                                         method="GET", route="/health", status=200, outcome="ok")
                            for i in range(n)))
    return merge_ledgers(directory)


def test_a_busy_generator_is_saturated(tmp_path: Path):
    from zerodrop.load.runner import _result

    plan = LoadPlan(host=HOST, users=10, rate=5000)
    merged = _ledger(tmp_path / "l", 1000, 0.001, 1.0)
    res = _result(merged, plan, 0, [], [], False, cpu_share=0.97)
    assert res.saturated and "97% of a core" in res.detail
    assert res.requests == 1000 and res.achieved_rps == pytest.approx(1000, rel=0.01)
    assert res.ledger_path == tmp_path / "l" / "ledger.jsonl"
    assert res.load_target().saturated and res.load_target().target_rps == plan.total_rate
    res = _result(merged, plan, 0, ["[standalone] CPU usage above 90%! ..."], [], True, cpu_share=None)
    assert res.saturated and "CPU usage above 90%" in res.detail


def test_a_slow_target_is_not_generator_saturation(tmp_path: Path):
    """Negative control: answers of 100 ms each, sent on schedule by an idle generator. The open
    model's rate counts starts, so the slow answers lower no rate and nothing blames the load."""
    from zerodrop.load.runner import _result

    plan = LoadPlan(host=HOST, users=10, rate=100, idle_clients=0)
    on_time = Progress(elapsed=1.0, planned=1.0, requests=100, rps=100, failures=0, scheduled=100)
    res = _result(_ledger(tmp_path / "l", 100, 0.1, 1.0), plan, 0, [], ["worker"], False, 0.2, on_time)
    assert not res.saturated and res.shortfall == ""
    assert res.achieved_rps == pytest.approx(100, rel=0.02)
    assert res.detail == "killed after the stop timeout: worker"


def test_the_schedule_names_why_the_generator_fell_short(tmp_path: Path):
    """Skipped arrivals at the concurrency cap say "cap"; late starts say "cpu"; within the
    tolerances (1 % skipped, 2 % late) the schedule counts as kept."""
    from zerodrop.load.runner import _result

    plan = LoadPlan(host=HOST, rate=100, max_inflight=7, idle_clients=0)
    merged = _ledger(tmp_path / "l", 100, 0.001, 1.0)
    capped = _result(merged, plan, 0, [], [], False, 0.3, Progress(1, 1, 100, 100, 0, scheduled=1000, missed_cap=50))
    assert capped.shortfall == "cap" and capped.saturated
    assert "concurrency cap (7 in flight per process)" in capped.detail and "50 of 1,000" in capped.detail
    assert capped.load_target().shortfall == "cap" and capped.load_target().missed_cap == 50
    late = _result(merged, plan, 0, [], [], False, 0.3, Progress(1, 1, 100, 100, 0, scheduled=1000, late=30))
    assert late.shortfall == "cpu" and "own CPU: 30 of 1,000" in late.detail
    stalled = _result(merged, plan, 0, [], [], False, 0.3,
                      Progress(1, 1, 100, 100, 0, scheduled=1000, missed_cap=50, missed_late=40))
    assert stalled.shortfall == "cpu" and "it stalled" in stalled.detail
    kept = _result(merged, plan, 0, [], [], False, 0.3,
                   Progress(1, 1, 100, 100, 0, scheduled=1000, late=20, missed_cap=10))
    assert kept.shortfall == "" and not kept.saturated and kept.detail == ""


def test_the_result_does_not_read_the_ledger_again(tmp_path: Path):
    """The merge's summary is the whole input: the merged file may be gone."""
    from zerodrop.load.runner import _result

    merged = _ledger(tmp_path / "l", 100, 0.001, 1.0)
    merged.path.unlink()
    res = _result(merged, LoadPlan(host=HOST, rate=100), 0, [], [], False, 0.1)
    assert res.requests == 100 and res.failures == 0
