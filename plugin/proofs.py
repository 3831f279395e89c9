"""The zero-downtime part of the zerodrop plugin: the load's options, and the deselection of
proofs for targets that cannot switch (their fixtures are in fixtures/proofs.py)."""
from __future__ import annotations

import math
from pathlib import Path

import pytest

from zerodrop.fixtures.session import provider_of
from zerodrop.platforms import registry
from zerodrop.plugin.core import deselect, require_at_least

# requests/s started on schedule when --load-rate is not given: locally ~3,500 requests per
# proof (the 95% bound below 0.1% at zero failures); a kind node's PostgreSQL (20m CPU request,
# sharing 2 cores) answers "database unavailable" well before that
CLUSTER_RATE = 120.0
DEFAULT_RATES = {"local": 360.0}
MIN_SCENARIO_S = 10.0  # the quickest local switch: ready, smoke, verify, drain, stop
deselected_key = pytest.StashKey[int]()
watch_key = pytest.StashKey[int]()


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("zerodrop")
    g.addoption("--load-users", type=int, default=20,
                help="zero_downtime: kept-alive connections opened before the schedule starts "
                     "(default 20; the pool grows on demand)")
    g.addoption("--load-rate", type=float, default=None,
                help="zero_downtime: requests/s STARTED on schedule through the switch (open "
                     "model: a slow service shows as latency, never as a lower rate; default 360 "
                     "on the local platform, 120 on a cluster, whose in-cluster database is smaller)")
    g.addoption("--arrivals", choices=("constant", "poisson"), default="constant",
                help="zero_downtime: the schedule's arrivals: evenly spaced (default) or Poisson")
    g.addoption("--populations", default="keepalive=60,fresh=15,retry=25",
                help="zero_downtime: weights of the scheduled client populations: keepalive "
                     "(kept-alive, sending often), fresh (a new connection per request), retry "
                     "(retries a failed request with the same Idempotency-Key, sends some "
                     "payments twice at once); default keepalive=60,fresh=15,retry=25")
    g.addoption("--idle-clients", type=int, default=8,
                help="zero_downtime: kept-alive clients idle longer than the drain window between "
                     "requests (the keep-alive race); 0: none (default 8)")
    g.addoption("--idle-period", type=float, default=None,
                help="zero_downtime: seconds between an idle client's requests (default: 1.5 x "
                     "the platform's drain window + 0.5 s, at most 4.5; 3 when unknown)")
    g.addoption("--max-inflight", type=int, default=400,
                help="zero_downtime: the load generator's concurrency cap per process; arrivals "
                     "beyond it are skipped and counted (default 400)")
    g.addoption("--load-workers", type=int, default=0,
                help="zero_downtime: Locust worker processes besides a master (default 0: one "
                     "process); with --load-from cluster, a master pod and N worker pods "
                     "(20m CPU each) in the platform's namespace")
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
    g.addoption("--allow-open-at-drain-end", action="store_true",
                help="zero_downtime: a replica that still holds client connections when its drain "
                     "window ends (its exit closes them under clients) is a note, not a FAIL")
    g.addoption("--keepalive-races-fail", action="store_true",
                help="zero_downtime: a keep-alive race (a reused connection closed as a request was "
                     "sent on it, before any answer) FAILs the proof; by default it is a note, as "
                     "HTTP/1.1 asks clients to retry such requests")
    g.addoption("--deploy-cmd", default=None, metavar="CMD",
                help="kind/kubeconfig: judge YOUR deploy command instead of zerodrop's switch "
                     "(suites/zero_downtime/test_watched_deploy.py; `zerodrop watch -- CMD` "
                     "sets it): it runs under load with KUBECONFIG, NAMESPACE, SERVICE_NAME, "
                     "ZD_SERVICE_URL, ZD_PREVIEW_URL_BLUE/GREEN and ZD_TOKEN set, and its switch is "
                     "judged request by request")
    g.addoption("--deploy-timeout", type=float, default=600.0,
                help="seconds the --deploy-cmd may take before it is stopped (default 600)")
    g.addoption("--canary-load-rate", type=float, default=200.0,
                help="canary: requests/s started on schedule during a canary, each on a new "
                     "connection (the Service splits new connections; they cost more than "
                     "kept-alive ones, so this is its own rate; default 200)")
    g.addoption("--canary-stages", default="5,10,25,50,100",
                help="canary: percent of traffic the canary gets at each stage, growing, ending at "
                     "100 (the promotion); default the seed's 5,10,25,50,100")
    g.addoption("--canary-stage-seconds", type=float, default=None,
                help="canary: seconds each stage lasts (the seed's 300 in production; default: "
                     "long enough for 1.5 x --canary-min-requests at the first stage's share of "
                     "--load-rate, at least 5)")
    g.addoption("--canary-min-requests", type=int, default=50,
                help="canary: requests per version and stage before any judgement; fewer is "
                     "'no data', never a pass (default 50)")
    g.addoption("--canary-max-p99-ms", type=float, default=500.0,
                help="canary: the canary's p99 limit in ms, from the ledger and from Prometheus "
                     "(default the seed's 500)")
    g.addoption("--canary-max-error-rate", type=float, default=1.0,
                help="canary: the canary's error rate limit in %% (default the seed's 1)")
    g.addoption("--evidence-dir", type=Path, default=None,
                help="zero_downtime: where <scenario>.json/.html/.png go (default reports/out)")


def pytest_configure(config: pytest.Config) -> None:
    opts = config.option
    require_at_least(opts, load_users=1, load_workers=0, idle_clients=0, max_inflight=1)
    if opts.deploy_cmd is not None:
        import shlex
        try:
            words = shlex.split(opts.deploy_cmd)
        except ValueError as exc:
            raise pytest.UsageError(f"--deploy-cmd {opts.deploy_cmd!r}: {exc}") from None
        if not words:
            raise pytest.UsageError("--deploy-cmd is empty: give the command that deploys")
        if not provider_of(config).outside_commands:
            raise pytest.UsageError(f"--deploy-cmd needs a platform your own command can switch; "
                                    f"--target {opts.target} gives none: use --target kind or kubeconfig")
        if not opts.deploy_timeout > 0:
            raise pytest.UsageError(f"--deploy-timeout must be > 0 seconds, got {opts.deploy_timeout:g}")
    opts.canary_settings = canary_settings(opts)
    opts.populations_table = parse_populations(opts.populations)
    if opts.idle_period is not None and not opts.idle_period > 0:
        raise pytest.UsageError(f"--idle-period must be > 0 seconds, got {opts.idle_period:g}")
    if not any(opts.populations_table.values()) and opts.idle_clients == 0:
        raise pytest.UsageError("--populations are all 0 and --idle-clients is 0: the load would send nothing")
    if opts.load_rate is None:
        opts.load_rate = DEFAULT_RATES.get(opts.target, CLUSTER_RATE)
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


def canary_settings(opts):
    """--canary-* as CanarySettings (the scenario's own checks), or a one-line usage error."""
    from zerodrop.scenarios.canary import CanarySettings
    try:
        stages = tuple(int(w) for w in opts.canary_stages.split(","))
    except ValueError:
        raise pytest.UsageError(f"--canary-stages {opts.canary_stages!r}: give whole percents "
                                f"separated by commas, e.g. 5,10,25,50,100") from None
    if not opts.canary_load_rate > 0:
        raise pytest.UsageError(f"--canary-load-rate must be > 0 requests/s, got "
                                f"{opts.canary_load_rate:g}")
    if not 0 <= opts.canary_max_error_rate <= 100 or not opts.canary_max_p99_ms > 0:
        raise pytest.UsageError("--canary-max-error-rate must be in 0..100 % and "
                                "--canary-max-p99-ms > 0")
    if opts.canary_stage_seconds is None:  # enough requests at the smallest share to judge
        rate = min(opts.canary_load_rate, opts.load_rate or DEFAULT_RATES.get(opts.target,
                                                                             CLUSTER_RATE))
        opts.canary_stage_seconds = max(5.0, math.ceil(
            1.5 * opts.canary_min_requests / (rate * stages[0] / 100)))
    settings = CanarySettings(stages=stages, stage_s=opts.canary_stage_seconds,
                              min_requests=opts.canary_min_requests,
                              max_error_rate=opts.canary_max_error_rate / 100,
                              max_p99_ms=opts.canary_max_p99_ms)
    try:
        settings.validate()
    except ValueError as exc:
        raise pytest.UsageError(f"--canary-*: {exc}") from None
    return settings


def parse_populations(text: str) -> dict[str, int]:
    """``keepalive=60,fresh=15,retry=25`` -> weights; a usage error names what is wrong."""
    known = ("keepalive", "fresh", "retry")
    table: dict[str, int] = {}
    for part in [p.strip() for p in text.split(",") if p.strip()]:
        name, sep, weight = part.partition("=")
        name = name.strip()
        if not sep or name not in known or not weight.strip().isdigit():
            raise pytest.UsageError(f"--populations {text!r}: use name=weight pairs with names from "
                                    f"{', '.join(known)} and whole-number weights, e.g. "
                                    "keepalive=60,fresh=15,retry=25")
        table[name] = int(weight)
    return table


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A zero-downtime proof needs a platform zerodrop can switch; some targets give none. The
    watched-deploy proof runs only with --deploy-cmd, and then alone (it is the user's switch
    that is judged, not zerodrop's)."""
    watching = config.option.deploy_cmd is not None
    config.stash[watch_key] = deselect(
        config, items, lambda i: (i.get_closest_marker("watched_deploy") is not None) != watching
        and (i.get_closest_marker("zero_downtime") is not None))
    if provider_of(config).can_switch:
        return
    config.stash[deselected_key] = deselect(
        config, items, lambda i: i.get_closest_marker("zero_downtime") is not None)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    watched = config.stash.get(watch_key, 0)
    if watched:
        what = ("zerodrop's own switch and rollback not run: --deploy-cmd judges your deploy instead"
                if config.option.deploy_cmd is not None else
                "the watched-deploy proof not run: it judges your own deploy command "
                "(zerodrop watch -- CMD, or --deploy-cmd)")
        terminalreporter.write_line(f"zerodrop: {watched} test(s) deselected: {what}", yellow=True)
    n = config.stash.get(deselected_key, 0)
    if n:
        able = registry.switchable()
        listed = " or ".join([", ".join(able[:-1]), able[-1]] if len(able) > 1 else able)
        terminalreporter.write_line(
            f"zerodrop: {n} zero-downtime test(s) not run: --target {config.option.target} "
            f"gives no platform to switch; use --target {listed}", yellow=True)
