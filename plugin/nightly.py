"""The nightly part of the zerodrop plugin: its options, and the nightly suite deselected
unless the run is a nightly one (``--nightly``, which ``zerodrop nightly`` passes). A plain
``zerodrop verify`` never runs it: a nightly run stores history and compares it with earlier
nights, which only a nightly job should do (its fixtures are in fixtures/nightly.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from zerodrop.plugin.core import deselect

MARKER = "nightly: the nightly regression (suites/nightly); runs only with --nightly (zerodrop nightly)"
deselected_key = pytest.StashKey[int]()


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("zerodrop")
    g.addoption("--nightly", action="store_true", dest="zd_nightly",
                help="a nightly run: run suites/nightly (a steady-load probe, stored in "
                     "--history-dir and compared with earlier runs); `zerodrop nightly` sets it. "
                     "With --target kubeconfig it is read-only unless --nightly-allow-deploy")
    g.addoption("--history-dir", type=Path, default=None,
                help="--nightly: where each run's directory and the trend page go (default "
                     "reports/history)")
    g.addoption("--nightly-hold", type=float, default=10.0,
                help="--nightly: seconds the steady-load probe holds its load (default 10), at "
                     "--load-rate")
    g.addoption("--nightly-compare-last", type=int, default=5,
                help="--nightly: how many earlier good runs (passed, no regression) are pooled "
                     "as the baseline (default 5)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER)
    o = config.option
    if not o.nightly_hold >= 1:
        raise pytest.UsageError(f"--nightly-hold must be >= 1 second, got {o.nightly_hold:g}")
    if o.nightly_compare_last < 1:
        raise pytest.UsageError(f"--nightly-compare-last must be >= 1, got {o.nightly_compare_last}")
    if o.zd_nightly and o.nightly_hold + 2 > o.load_max_duration:
        raise pytest.UsageError(f"--nightly-hold {o.nightly_hold:g} s does not fit in "
                                f"--load-max-duration {o.load_max_duration:g} s (with 2 s to spare)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.option.zd_nightly:
        return
    config.stash[deselected_key] = deselect(
        config, items, lambda i: i.get_closest_marker("nightly") is not None)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    n = config.stash.get(deselected_key, 0)
    if n:
        terminalreporter.write_line(f"zerodrop: {n} nightly test(s) deselected: they run with "
                                    f"`zerodrop nightly` (or --nightly)", yellow=True)
    from zerodrop.fixtures.nightly import report_key  # late: the fixture plugin imports it first
    for line in config.stash.get(report_key, []):
        terminalreporter.write_line(line)
