"""The ``zerodrop`` command: a thin layer over pytest and the shipped report script.

    zerodrop verify [pytest args...]   python -m pytest --pyargs zerodrop.suites [pytest args...]
    zerodrop watch [pytest args...] -- CMD [ARGS...]
                                       your deploy command judged under load (--deploy-cmd)
    zerodrop report                    reports/out/allure-results -> reports/out/allure-report
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
COMMANDS = ("verify", "watch", "report")
WATCH_TEST = "zerodrop.suites.zero_downtime.test_watched_deploy"
SUITES = "zerodrop.suites"
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
  report                build the Allure HTML report of the last verify from
                        reports/out/allure-results into reports/out/allure-report
                        (offline; needs Node.js)
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
    p = _Parser(prog="zerodrop", usage="zerodrop {verify,watch,report} [args...]",
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


def report_command() -> list[str]:
    """The command line ``zerodrop report`` runs: the shipped build_html.sh, under bash. It
    writes one self-contained index.html (it opens from disk), takes the verdict from
    reports/out/verdicts.json beside the results and extends reports/out/allure-history.jsonl."""
    import zerodrop.reports
    script = Path(zerodrop.reports.__file__).resolve().parent / "build_html.sh"
    return ["bash", str(script), str(RESULTS_DIR), str(REPORT_DIR)]


def _run(cmd: list[str]) -> int:
    """Run ``cmd`` in the foreground and return its exit code. Ctrl-C reaches the child from
    the terminal too; it is waited for, so that it tears down what it started."""
    try:
        proc = subprocess.Popen(cmd)
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
        return _usage_error("no command given; use verify, watch or report")
    if ns.command == "verify":
        return _run(pytest_command(rest))
    if ns.command == "watch":
        try:
            return _run(watch_command(rest))
        except UsageError as exc:
            return _usage_error(str(exc))
    if ns.command == "report":
        if rest:
            return _usage_error(f"report takes no arguments, got {' '.join(rest)}")
        code = _run(report_command())
        if code == 0:
            print(f"zerodrop: report written to {REPORT_DIR / 'index.html'} "
                  "(one file: open it from disk)")
        return code
    return _usage_error(f"unknown command '{ns.command}'; use verify, watch or report")


if __name__ == "__main__":  # pragma: no cover - python -m zerodrop goes through __main__.py
    sys.exit(main())
