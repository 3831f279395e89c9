"""The game-day part of the zerodrop plugin: ``--experiment NAME`` (what ``zerodrop gameday NAME``
passes) selects experiments from the library (scenarios/experiments.py); without it the chaos
suite is deselected, so that ``zerodrop verify`` never runs a game day by surprise.

Names and faults are checked before anything starts: an unknown experiment, or one whose
faults this target or service cannot do, is a one-line usage error (exit 4) listing what can
be used."""
from __future__ import annotations

import json

import pytest

from zerodrop.fixtures.session import provider_of
from zerodrop.plugin.core import deselect

gameday_key = pytest.StashKey[int]()
ALL = "all"


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("zerodrop")
    g.addoption("--experiment", action="append", default=[], metavar="NAME",
                help="chaos: run the game-day experiment NAME from suites/chaos (repeatable; "
                     "'all': every one this target can run); `zerodrop gameday --list` lists them")
    g.addoption("--gameday-param", action="append", default=[], metavar="FAULT:KEY=VALUE",
                help="chaos: change one parameter of a fault of the experiment, e.g. "
                     "latency:latency_ms=0 (VALUE is JSON, else a string); for negative controls")
    g.addoption("--gameday-release-faults", default=None, metavar="JSON",
                help="chaos: fault knobs the new release starts with besides the experiment's "
                     "(a negative control: a release that fails all along), e.g. "
                     "'{\"error_rate\": 0.05}'")
    g.addoption("--gameday-broken-switch", default=None, metavar="KNOB",
                help="chaos: break the experiment's switch on purpose (a negative control): "
                     "skip_ready_wait, no_drain or kill_old")


def selected(config: pytest.Config) -> list[str]:
    """The experiments to run, in the library's order ([] without --experiment)."""
    from zerodrop.scenarios.experiments import EXPERIMENTS, NAMES
    asked = list(config.option.experiment)
    if not asked:
        return []
    if ALL in asked:
        return [n for n in NAMES if not _cannot(config, EXPERIMENTS[n])]
    return [n for n in NAMES if n in asked]


def _cannot(config: pytest.Config, experiment) -> str:
    """Why this target or service cannot run ``experiment`` (one line), or ""."""
    from zerodrop.scenarios.faults import KINDS
    profile = getattr(config.option, "service_profile", None)
    reference = profile is None or profile.is_default
    for spec in experiment.faults:
        kind = KINDS[spec.kind]
        if kind.knobs and not reference:
            return (f"experiment {experiment.name!r} uses the fault {spec.kind!r}, a knob of the "
                    f"reference payment-service that {profile.name} does not have")
        if kind.network:
            missing = provider_of(config).network_faults_missing(config.option)
            if missing:
                return (f"experiment {experiment.name!r} needs network delay or loss (tc "
                        f"netem in a replica's network namespace): {missing}")
    return ""


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise pytest.UsageError(f"--gameday-release-faults {text!r}: not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise pytest.UsageError(f"--gameday-release-faults {text!r}: give a JSON object of knobs")
    return value


def parse_params(texts: list[str]) -> dict[str, dict]:
    """``FAULT:KEY=VALUE`` options as {fault: {key: value}}; a usage error names the bad one."""
    from zerodrop.scenarios.faults import KINDS
    out: dict[str, dict] = {}
    for text in texts:
        kind, sep, rest = text.partition(":")
        key, eq, value = rest.partition("=")
        if not sep or not eq or not key:
            raise pytest.UsageError(f"--gameday-param {text!r}: give FAULT:KEY=VALUE, e.g. "
                                    f"latency:latency_ms=0")
        if kind not in KINDS:
            raise pytest.UsageError(f"--gameday-param {text!r}: unknown fault {kind!r}; known: "
                                    f"{', '.join(KINDS)}")
        try:
            parsed = json.loads(value)
        except ValueError:
            parsed = value
        out.setdefault(kind, {})[key] = parsed
    return out


@pytest.hookimpl(trylast=True)  # after core's, which reads the service profile
def pytest_configure(config: pytest.Config) -> None:
    from zerodrop.scenarios.blue_green import BROKEN
    config.option.gameday_params = parse_params(config.option.gameday_param)
    release = config.option.gameday_release_faults
    if release is not None:
        from zerodrop.payment_service.faults import FaultError, validate
        try:
            validate(_json_object(release))
        except FaultError as exc:
            raise pytest.UsageError(f"--gameday-release-faults: {exc}") from None
        config.option.gameday_release = _json_object(release)
    else:
        config.option.gameday_release = None
    broken = config.option.gameday_broken_switch
    if broken is not None and broken not in BROKEN:
        raise pytest.UsageError(f"--gameday-broken-switch {broken!r}: one of "
                                f"{', '.join(BROKEN)}")
    asked = list(config.option.experiment)
    if not asked:
        return
    from zerodrop.scenarios.experiments import EXPERIMENTS, NAMES
    unknown = [n for n in asked if n != ALL and n not in EXPERIMENTS]
    if unknown:
        raise pytest.UsageError(f"unknown experiment {unknown[0]!r}; known: {', '.join(NAMES)}, "
                                f"or {ALL}")
    if not provider_of(config).can_switch:
        raise pytest.UsageError(f"a game day switches versions; --target {config.option.target} "
                                f"gives no platform that can: use local, kind or kubeconfig")
    for name in asked:
        if name != ALL and _cannot(config, EXPERIMENTS[name]):
            usable = [n for n in NAMES if not _cannot(config, EXPERIMENTS[n])]
            raise pytest.UsageError(f"{_cannot(config, EXPERIMENTS[name])}; usable here: "
                                    f"{', '.join(usable) or 'none'}")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.option.experiment:
        return
    config.stash[gameday_key] = deselect(
        config, items, lambda i: i.get_closest_marker("gameday") is not None)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    """``--experiment all`` runs what this target can; what it leaves out is said, with why."""
    if ALL not in config.option.experiment:
        return
    from zerodrop.scenarios.experiments import EXPERIMENTS
    for name, exp in EXPERIMENTS.items():
        why = _cannot(config, exp)
        if why:
            terminalreporter.write_line(f"zerodrop: game day {name} not run: {why}", yellow=True)
