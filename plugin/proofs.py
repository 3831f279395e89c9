"""The zero-downtime part of the zerodrop plugin: the load's options, and the deselection of
proofs for targets that cannot switch (their fixtures are in fixtures/proofs.py)."""
from __future__ import annotations

from pathlib import Path

import pytest

from zerodrop.fixtures.session import provider_of
from zerodrop.platforms import registry
from zerodrop.plugin.core import deselect, require_at_least

MIN_SCENARIO_S = 10.0  # the quickest local switch: ready, smoke, verify, drain, stop
deselected_key = pytest.StashKey[int]()


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("zerodrop")
    g.addoption("--load-users", type=int, default=20,
                help="zero_downtime: simulated users (default 20)")
    g.addoption("--load-rate", type=float, default=100.0,
                help="zero_downtime: total requests/s the load must hold through the switch "
                     "(default 100); below 90%% of it the verdict is INCONCLUSIVE")
    g.addoption("--load-workers", type=int, default=0,
                help="zero_downtime: Locust worker processes (default 0: one process)")
    g.addoption("--baseline", type=float, default=2.0,
                help="zero_downtime: seconds of load before the switch starts (default 2)")
    g.addoption("--tail", type=float, default=2.0,
                help="zero_downtime: seconds of load after the switch ends (default 2)")
    g.addoption("--load-max-duration", type=float, default=120.0,
                help="zero_downtime: hard cap on one load run in seconds (default 120); it must "
                     "cover the baseline, the whole scenario and the tail")
    g.addoption("--latency-p50-ratio", type=float, default=5.0,
                help="zero_downtime: FAIL when p50 during or after the switch exceeds this many "
                     "times the p50 before it (and 50 ms); 0 turns the rule off (default 5)")
    g.addoption("--latency-p99-ratio", type=float, default=10.0,
                help="zero_downtime: the same for p99 (above 250 ms); 0 turns it off "
                     "(default 10)")
    g.addoption("--allow-early-exit", action="store_true",
                help="zero_downtime: a replica that exits before its drain window while it holds "
                     "client connections is a note, not a FAIL (default: FAIL)")
    g.addoption("--evidence-dir", type=Path, default=None,
                help="zero_downtime: where <scenario>.json/.html/.png go (default reports/out)")


def pytest_configure(config: pytest.Config) -> None:
    opts = config.option
    require_at_least(opts, load_users=1, load_workers=0)
    if opts.load_rate <= 0:
        raise pytest.UsageError(f"--load-rate must be > 0 requests/s, got {opts.load_rate:g}")
    if opts.baseline < 0 or opts.tail < 0:
        raise pytest.UsageError("--baseline and --tail must be >= 0 seconds")
    for name in ("latency_p50_ratio", "latency_p99_ratio"):
        value = getattr(opts, name)
        if value != 0 and not value > 1:
            raise pytest.UsageError(f"--{name.replace('_', '-')} must be above 1 (or 0: off), "
                                    f"got {value:g}")
    shortest = opts.baseline + opts.tail + MIN_SCENARIO_S
    if opts.load_max_duration < shortest:
        raise pytest.UsageError(
            f"--load-max-duration {opts.load_max_duration:g} s is shorter than the scenario: "
            f"baseline {opts.baseline:g} s + a switch (at least {MIN_SCENARIO_S:g} s) + tail "
            f"{opts.tail:g} s = {shortest:g} s")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A zero-downtime proof needs a platform zerodrop can switch; some targets give none."""
    if provider_of(config).can_switch:
        return
    config.stash[deselected_key] = deselect(
        config, items, lambda i: i.get_closest_marker("zero_downtime") is not None)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    n = config.stash.get(deselected_key, 0)
    if n:
        able = registry.switchable()
        listed = " or ".join([", ".join(able[:-1]), able[-1]] if len(able) > 1 else able)
        terminalreporter.write_line(
            f"zerodrop: {n} zero-downtime test(s) not run: --target {config.option.target} "
            f"gives no platform to switch; use --target {listed}", yellow=True)
