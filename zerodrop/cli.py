"""The ``zerodrop`` command: a thin layer over pytest and the shipped report script.

    zerodrop verify [pytest args...]   python -m pytest --pyargs zerodrop.suites [pytest args...]
    zerodrop watch [pytest args...] -- CMD [ARGS...]
                                       your deploy command judged under load (--deploy-cmd)
    zerodrop report [--nightly]        reports/out/allure-results -> reports/out/allure-report
    zerodrop nightly [pytest args...]  python -m pytest --pyargs zerodrop.suites.smoke
                                       zerodrop.suites.nightly --nightly [pytest args...]
    zerodrop gameday NAME|all [pytest args...]
                                       python -m pytest --pyargs zerodrop.suites.chaos
                                       --experiment NAME [pytest args...]
    zerodrop gameday --list            the experiments' names
    zerodrop --help | -h | help        this usage
    zerodrop --version                 the installed version

Only the top level is parsed here (argparse); everything after the command goes to pytest
untouched, so ``zerodrop verify -k smoke --target url`` hands ``-k smoke --target url`` to
pytest. Both commands run from the current directory, which is pytest's invocation directory
and where ``reports/out`` lives, so they work from any directory once zerodrop is installed.

Exit codes are pytest's (and the report script's): 0 passed, 1 a check failed, 3 the target
could not be used, 4 a usage error, 5 no tests were collected; and zerodrop's own 6: only
INCONCLUSIVE proofs failed (a run too weak to judge, not a drop; plugin/summary.py).
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path
from typing import Sequence

import zerodrop

USAGE_ERROR = 4
COMMANDS = ("verify", "watch", "report", "nightly", "gameday")
WATCH_TEST = "zerodrop.suites.zero_downtime.test_watched_deploy"
SUITES = "zerodrop.suites"
NIGHTLY_SUITES = ("zerodrop.suites.smoke", "zerodrop.suites.nightly")
CHAOS_SUITE = "zerodrop.suites.chaos"
HISTORY_DIR = Path("reports") / "history"
RESULTS_DIR = Path("reports") / "out" / "allure-results"
REPORT_DIR = Path("reports") / "out" / "allure-report"

_DESCRIPTION = """\
zerodrop proves that a blue-green switch drops no request and loses no data.

commands:
  verify [pytest args]  run the verification suites (smoke, post-deploy, custom, and the
                        switch and rollback under load) with pytest, from this directory:
                        python -m pytest --pyargs zerodrop.suites [pytest args]; when the
                        arguments name their own test paths (suites/smoke, a file, a
                        path::test) or pass --pyargs with modules, only those run.
                        `zerodrop verify --help` lists every option (group "zerodrop")
  watch [pytest args] -- CMD [ARGS]
                        judge YOUR deploy command: it runs under load on a fresh platform
                        (--target kind or kubeconfig) with KUBECONFIG, NAMESPACE, SERVICE_NAME,
                        ZD_SERVICE_URL, ZD_PREVIEW_URL_BLUE/GREEN and ZD_TOKEN set; every line
                        it prints goes on the timeline and the switch it makes is judged
                        request by request (its exit status too)
  report [--nightly [--history-dir DIR]]
                        build the Allure HTML report of the last verify from
                        reports/out/allure-results into reports/out/allure-report
                        (offline; needs Node.js); --nightly: with the Allure history
                        carried in the last nightly run's directory (reports/history/...),
                        so the report's trend shows the nights
  nightly [pytest args] the nightly regression: the smoke suite, then a steady-load probe
                        of the Service as it is, stored in reports/history/ (one directory
                        per run) and compared with the earlier runs; fails with each
                        regression's size and confidence. With --target kubeconfig it is
                        read-only (--nightly-namespace NS, an allow-listed --allow-context)
                        unless --nightly-allow-deploy
  gameday NAME [pytest args]
                        a game-day experiment from the library: python -m pytest --pyargs
                        zerodrop.suites.chaos --experiment NAME [pytest args];
                        `zerodrop gameday --list` prints the names
"""

_EPILOG = """\
exit codes: 0 every check passed, 1 a check failed, 3 the target could not be used,
4 a usage error, 5 no tests were collected, 6 only INCONCLUSIVE proofs failed (a run
too weak to judge: retry it; not a drop).
"""


class UsageError(Exception):
    """A command line the ``zerodrop`` command cannot run; the message is one line."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would exit 2; a usage error here is 4
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="zerodrop", usage="zerodrop {verify,watch,report,nightly,gameday} [args...]",
                description=_DESCRIPTION, epilog=_EPILOG, add_help=False,
                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-h", "--help", action="store_true", help="show this help and exit")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    p.add_argument("command", nargs="?", help=argparse.SUPPRESS)
    return p


def _split(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """The top-level part (options up to and including the command) and the rest, which is
    the command's own and is never parsed here."""
    for i, arg in enumerate(argv):
        if not arg.startswith("-"):
            return list(argv[:i + 1]), list(argv[i + 1:])
    return list(argv), []


# pytest options that take no value, so that a path right after one is still a test path
_FLAGS = {"-q", "-v", "-x", "-s", "-l", "-vv", "-qq", "--quiet", "--verbose", "--exitfirst",
          "--co", "--collect-only", "--collectonly", "--lf", "--last-failed", "--ff",
          "--failed-first", "--nf", "--new-first", "--sw", "--stepwise", "--pdb",
          "--setup-only", "--setup-plan", "--setup-show", "--showlocals", "--strict-markers",
          "--keep-cluster", "--runxfail", "--fixtures", "--markers", "--trace",
          "--cache-clear", "--disable-warnings", "--no-header", "--no-summary"}


def _is_value_option(arg: str) -> bool:
    """Whether the next argument is probably ``arg``'s value (``--target url``, ``-m smoke``).
    Unknown long options are taken to have a value, so an option's directory value is never
    mistaken for a test path."""
    if not arg.startswith("-") or arg == "-" or "=" in arg or arg in _FLAGS:
        return False
    if arg.startswith("--"):
        return True
    # a short option: -k EXPR, -m MARK, -p NAME, -c FILE, -o INI, -W ARG, -r CHARS, -n NUM
    # take a value unless it is attached (-kfoo); -q, -vv, -x, -s ... do not
    return len(arg) == 2 and arg[1] in "kmpcoWrn"


def names_own_tests(args: Sequence[str]) -> bool:
    """Whether pytest ``args`` say what to run: ``--pyargs`` with its modules, or a positional
    argument that is a test path (``suites/smoke``, ``a/test_x.py``, ``a/test_x.py::test``)."""
    if "--pyargs" in args:
        return True
    previous = ""
    for arg in args:
        if not arg.startswith("-") and not _is_value_option(previous):
            path = arg.split("::", 1)[0]
            if "::" in arg or path.endswith(".py") or Path(path).is_dir():
                return True
        previous = arg
    return False


def pytest_command(args: Sequence[str]) -> list[str]:
    """The pytest command line ``zerodrop verify args`` runs."""
    where = [] if names_own_tests(args) else ["--pyargs", SUITES]
    return [sys.executable, "-m", "pytest", *where, *args]


def watch_command(args: Sequence[str]) -> list[str]:
    """The pytest command line ``zerodrop watch args -- CMD`` runs; UsageError without a CMD."""
    import shlex
    if "--" not in args:
        raise UsageError("watch needs the deploy command after --, e.g. "
                         "zerodrop watch --target kind -- ./blue-green-deploy.sh payment-service IMAGE")
    i = list(args).index("--")
    options, command = list(args[:i]), list(args[i + 1:])
    if not command:
        raise UsageError("watch: the deploy command after -- is empty")
    return [sys.executable, "-m", "pytest", "--pyargs", WATCH_TEST, *options,
            "--deploy-cmd", shlex.join(command)]


def nightly_command(args: Sequence[str]) -> list[str]:
    """The pytest command line ``zerodrop nightly args`` runs: the smoke suite and the nightly
    suite (unless the arguments name their own tests), as a nightly run (``--nightly``)."""
    where = [] if names_own_tests(args) else ["--pyargs", *NIGHTLY_SUITES]
    return [sys.executable, "-m", "pytest", *where, "--nightly", *args]


def experiment_names() -> tuple[str, ...]:
    """The game-day experiments' names (``zerodrop.scenarios.experiments.NAMES``), imported
    only when asked; () when the library is not there yet."""
    try:
        from zerodrop.scenarios.experiments import NAMES
    except ImportError:
        return ()
    return tuple(NAMES)


def gameday_command(args: Sequence[str]) -> list[str]:
    """The pytest command line ``zerodrop gameday NAME args`` runs; UsageError (one line that
    lists the known names) without a NAME or for an unknown one."""
    known = experiment_names()
    listed = (", ".join(known) + ", or all (every one this target can run)") if known \
        else "none yet (no experiments in this zerodrop)"
    if not args or args[0].startswith("-"):
        raise UsageError(f"gameday needs an experiment's name first, e.g. zerodrop gameday "
                         f"{known[0] if known else 'NAME'} --target local; known: {listed}")
    name, rest = args[0], list(args[1:])
    if name not in known and not (name == "all" and known):
        raise UsageError(f"unknown experiment {name!r}; known: {listed}")
    return [sys.executable, "-m", "pytest", "--pyargs", CHAOS_SUITE, "--experiment", name, *rest]


def latest_nightly_run(history_dir: Path = HISTORY_DIR) -> Path | None:
    """The last run directory of a nightly history (their names sort by time), or None."""
    from zerodrop.reports.history import list_runs
    runs = list_runs(history_dir)
    return runs[-1] if runs else None


def _report_args(rest: Sequence[str]) -> dict[str, str] | None:
    """``report``'s own arguments: none, or ``--nightly [--history-dir DIR]``; the environment
    the report script gets (ZERODROP_ALLURE_HISTORY for a nightly one)."""
    rest = list(rest)
    if not rest:
        return None
    if rest[0] != "--nightly" or len(rest) not in (1, 3) or (len(rest) == 3 and rest[1] != "--history-dir"):
        raise UsageError(f"report takes no arguments but --nightly [--history-dir DIR], got "
                         f"{' '.join(rest)}")
    where = Path(rest[2]) if len(rest) == 3 else HISTORY_DIR
    run = latest_nightly_run(where)
    if run is None:
        raise UsageError(f"report --nightly: no nightly run in {where}; run zerodrop nightly first")
    from zerodrop.reports.history import ALLURE_HISTORY
    return {"ZERODROP_ALLURE_HISTORY": str(run / ALLURE_HISTORY)}


def report_command() -> list[str]:
    """The command line ``zerodrop report`` runs: the shipped build_html.sh, under bash. It
    writes one self-contained index.html (it opens from disk), takes the verdict from
    reports/out/verdicts.json beside the results and extends reports/out/allure-history.jsonl."""
    import zerodrop.reports
    script = Path(zerodrop.reports.__file__).resolve().parent / "build_html.sh"
    return ["bash", str(script), str(RESULTS_DIR), str(REPORT_DIR)]


def _run(cmd: list[str], env: dict[str, str] | None = None) -> int:
    """Run ``cmd`` in the foreground and return its exit code. Ctrl-C reaches the child from
    the terminal too; it is waited for, so that it tears down what it started."""
    import os
    try:
        proc = subprocess.Popen(cmd, env={**os.environ, **env} if env else None)
    except OSError as exc:
        print(f"zerodrop: cannot run {cmd[0]}: {exc.strerror or exc}", file=sys.stderr)
        return 3
    while True:
        try:
            code = proc.wait()
        except KeyboardInterrupt:
            continue
        return code if code >= 0 else 128 - code


def _usage_error(message: str) -> int:
    _parser().print_usage(sys.stderr)
    print(f"zerodrop: {message}", file=sys.stderr)
    return USAGE_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    top, rest = _split(argv)
    try:
        ns = _parser().parse_args(top)
    except UsageError as exc:
        return _usage_error(str(exc))
    if ns.help or ns.command == "help":
        _parser().print_help()
        return 0
    if ns.version:
        print(f"zerodrop {zerodrop.__version__}")
        return 0
    if ns.command is None:
        return _usage_error("no command given; use verify, watch, report, nightly or gameday")
    if ns.command == "verify":
        return _run(pytest_command(rest))
    if ns.command == "watch":
        try:
            return _run(watch_command(rest))
        except UsageError as exc:
            return _usage_error(str(exc))
    if ns.command == "nightly":
        return _run(nightly_command(rest))
    if ns.command == "gameday":
        if rest[:1] == ["--list"]:
            if len(rest) > 1:
                return _usage_error(f"gameday --list takes no arguments, got {' '.join(rest[1:])}")
            names = experiment_names()
            print("\n".join(names) if names else "no experiments yet")
            return 0
        try:
            return _run(gameday_command(rest))
        except UsageError as exc:
            return _usage_error(str(exc))
    if ns.command == "report":
        try:
            env = _report_args(rest)
        except UsageError as exc:
            return _usage_error(str(exc))
        code = _run(report_command(), env)
        if code == 0:
            print(f"zerodrop: report written to {REPORT_DIR / 'index.html'} "
                  "(one file: open it from disk)")
        return code
    return _usage_error(f"unknown command '{ns.command}'; use verify, watch, report, nightly "
                        f"or gameday")


if __name__ == "__main__":  # pragma: no cover - python -m zerodrop goes through __main__.py
    sys.exit(main())
