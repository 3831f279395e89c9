"""The ``zerodrop`` command (``python -m zerodrop``, run from an empty temporary directory, so
only the installed package can answer) and the ``./zd`` wrapper's usage and delegation."""
from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from zerodrop import cli

ROOT = Path(__file__).resolve().parents[2]
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
PYTHON = str(VENV_PYTHON) if VENV_PYTHON.exists() else sys.executable


def zerodrop(tmp_path: Path, *args: str, env: dict | None = None, timeout: float = 120):
    base = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.run([PYTHON, "-m", "zerodrop", *args], cwd=tmp_path, text=True,
                          capture_output=True, timeout=timeout, env={**base, **(env or {})})


def one_error_line(done: subprocess.CompletedProcess, prefix: str) -> str:
    """The usage error's own line: exactly one line with ``prefix``, no traceback, and
    nothing on stdout."""
    assert "Traceback" not in done.stderr, done.stderr
    assert done.stdout == "", done.stdout
    lines = [line for line in done.stderr.splitlines() if line.startswith(prefix)]
    assert len(lines) == 1, done.stderr
    assert done.stderr.splitlines()[-1] == lines[0], done.stderr
    return lines[0]


# -- zerodrop: usage ---------------------------------------------------------------------------
@pytest.mark.parametrize("args, message", [
    ([], "zerodrop: no command given; use verify, watch, report, nightly or gameday"),
    (["bogus"], "zerodrop: unknown command 'bogus'; use verify, watch, report, nightly or gameday"),
    (["--bogus", "verify"], "zerodrop: unrecognized arguments: --bogus"),
    (["report", "extra"], "zerodrop: report takes no arguments but --nightly [--history-dir DIR], "
                          "got extra"),
    (["report", "--nightly", "--history-dir", "nowhere"],
     "zerodrop: report --nightly: no nightly run in nowhere; run zerodrop nightly first"),
    (["gameday", "--list", "x"], "zerodrop: gameday --list takes no arguments, got x"),
    (["watch", "--target", "kind"], "zerodrop: watch needs the deploy command after --, e.g. "
                                    "zerodrop watch --target kind -- ./blue-green-deploy.sh payment-service IMAGE"),
    (["watch", "--target", "kind", "--"], "zerodrop: watch: the deploy command after -- is empty"),
])
def test_usage_errors_exit_4_with_one_line(tmp_path, args, message):
    done = zerodrop(tmp_path, *args)
    assert done.returncode == 4, done.stderr
    assert one_error_line(done, "zerodrop:") == message
    assert done.stderr.startswith("usage: zerodrop"), done.stderr


@pytest.mark.parametrize("flag", ["--help", "-h", "help"])
def test_help_lists_exactly_the_commands(tmp_path, flag):
    done = zerodrop(tmp_path, flag)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    section = done.stdout.split("commands:\n", 1)[1].split("\n\n", 1)[0]
    listed = {line.split()[0] for line in section.splitlines() if line[:3].strip()}
    assert listed == {"verify", "watch", "report", "nightly", "gameday"} == set(cli.COMMANDS), \
        done.stdout
    assert "exit codes:" in done.stdout and "4 a usage error" in done.stdout


def test_version_is_the_package_version(tmp_path):
    done = zerodrop(tmp_path, "--version")
    with open(ROOT / "pyproject.toml", "rb") as f:
        version = tomllib.load(f)["project"]["version"]
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"zerodrop {version}\n"


# -- zerodrop verify: pytest, arguments untouched, pytest's exit code --------------------------
def test_verify_passes_its_arguments_to_pytest_and_collects_the_smoke_suite(tmp_path):
    done = zerodrop(tmp_path, "verify", "--co", "-q", "-m", "smoke", "-p", "no:cacheprovider")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    ids = [line for line in done.stdout.splitlines() if "::" in line]
    assert ids, done.stdout
    assert all("smoke/test_smoke.py::test_" in i for i in ids), ids
    assert "deselected" in done.stdout  # -m smoke reached pytest: the other suites were left


@pytest.mark.parametrize("args, code, says", [
    (["--version"], 0, "pytest "),  # not zerodrop's --version: everything after verify is pytest's
    (["--co", "-q", "-m", "no_such_marker"], 5, "deselected"),
    (["--target", "bogus"], 4, "argument --target: invalid choice: 'bogus'"),
])
def test_verify_exits_with_pytests_code(tmp_path, args, code, says):
    done = zerodrop(tmp_path, "verify", "-p", "no:cacheprovider", *args)
    assert done.returncode == code, done.stdout[-2000:] + done.stderr[-2000:]
    assert says in done.stdout + done.stderr
    assert "Traceback" not in done.stdout + done.stderr


def test_which_arguments_name_their_own_tests(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "mine").mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "smoke").mkdir()
    assert not cli.names_own_tests([])
    assert not cli.names_own_tests(["-k", "smoke", "--target", "url", "--base-url", "http://x"])
    assert not cli.names_own_tests(["-m", "smoke"])  # a value, though ./smoke exists
    assert not cli.names_own_tests(["--evidence-dir", "out"])  # an option's directory
    assert not cli.names_own_tests(["nowhere"])  # no such path: a value or a typo
    assert cli.names_own_tests(["mine"])
    assert cli.names_own_tests(["-q", "mine", "--target", "local"])
    assert cli.names_own_tests(["--evidence-dir=out", "mine"])
    assert cli.names_own_tests(["elsewhere/test_a.py"])
    assert cli.names_own_tests(["suites/smoke/test_smoke.py::test_health"])
    assert cli.names_own_tests(["--pyargs", "zerodrop.suites.smoke"])
    args = ["-k", "smoke", "--target", "url"]
    assert cli.pytest_command(args) == [sys.executable, "-m", "pytest", "--pyargs",
                                        "zerodrop.suites", *args]
    assert cli.pytest_command(["mine", "-x"]) == [sys.executable, "-m", "pytest", "mine", "-x"]


# -- zerodrop report ---------------------------------------------------------------------------
def test_report_runs_the_shipped_script_on_this_directory(tmp_path):
    done = zerodrop(tmp_path, "report")
    assert done.returncode == 4, done.stderr  # build_html.sh's usage error: nothing to build
    assert "no allure results at reports/out/allure-results" in done.stderr
    # with results but no node on PATH, the script gets as far as looking for node
    (tmp_path / "reports" / "out" / "allure-results").mkdir(parents=True)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "bash").symlink_to(shutil.which("bash"))
    done = zerodrop(tmp_path, "report", env={"PATH": str(bin_dir)})
    assert done.returncode == 3, done.stderr
    assert "build_html: node is not installed" in done.stderr
    assert not (tmp_path / "reports" / "out" / "allure-report").exists()
    script = Path(cli.report_command()[1])
    assert script.name == "build_html.sh" and script.is_file()


# -- ./zd --------------------------------------------------------------------------------------
def zd(*args: str, script: Path = ROOT / "zd", env: dict | None = None):
    return subprocess.run(["bash", str(script), *args], text=True, capture_output=True,
                          timeout=120, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("args, message", [
    ([], "zd: no command given; use verify, test, report, nightly or gameday"),
    (["bogus"], "zd: unknown command 'bogus'; use verify, test, report, nightly or gameday"),
])
def test_zd_usage_errors_exit_4(args, message):
    done = zd(*args)
    assert done.returncode == 4, done.stderr
    assert one_error_line(done, "zd:") == message
    assert "./zd verify" in done.stderr  # the usage came first


def test_zd_help_names_its_commands_honestly():
    done = zd("--help")
    assert done.returncode == 0, done.stderr
    text = " ".join(done.stdout.split())
    assert "The two commands of the README are verify and test; report builds the HTML" in text
    listed = [line.split()[1] for line in done.stdout.splitlines()
              if line.strip().startswith("./zd ")]
    assert listed == ["verify", "test", "report", "nightly", "gameday", "help"], done.stdout
    assert "set -e" not in done.stdout  # only the comment block


@pytest.fixture
def zd_copy(tmp_path):
    """./zd in a directory of its own, with a fake .venv: bin/python answers pip with a noisy
    log (exit $FAKE_PIP_EXIT), bin/zerodrop records the arguments it got."""
    shutil.copy(ROOT / "zd", tmp_path / "zd")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    venv_bin = tmp_path / ".venv" / "bin"
    venv_bin.mkdir(parents=True)
    (venv_bin / "python").write_text(
        '#!/usr/bin/env bash\necho "pip $*"\n'
        'echo "NOISE: Editable installation of this project"\nexit "${FAKE_PIP_EXIT:-0}"\n')
    (venv_bin / "zerodrop").write_text(
        '#!/usr/bin/env bash\nprintf "%s\\n" "$@" > "$(dirname "$0")/../zerodrop-args"\nexit 7\n')
    for f in venv_bin.iterdir():
        f.chmod(0o755)
    return tmp_path


def test_zd_verify_delegates_to_the_installed_command_on_suites(zd_copy):
    stamp = zd_copy / ".venv" / ".zerodrop-installed"
    stamp.write_text(hashlib.sha256((zd_copy / "pyproject.toml").read_bytes()).hexdigest() + "\n")
    results = zd_copy / "reports" / "out" / "allure-results"
    results.mkdir(parents=True)
    done = zd("verify", "-k", "smoke", "--target", "url", script=zd_copy / "zd")
    assert done.returncode == 7, done.stderr  # the command's exit code, through exec
    args = (zd_copy / ".venv" / "zerodrop-args").read_text().splitlines()
    assert args == ["verify", "suites", "-k", "smoke", "--target", "url"]
    assert not results.exists()  # ./zd verify starts from fresh Allure results, as before
    assert "installing" not in done.stderr  # the stamp matched: no install
    done = zd("verify", "suites/smoke", "-q", script=zd_copy / "zd")
    assert (zd_copy / ".venv" / "zerodrop-args").read_text().splitlines() == [
        "verify", "suites/smoke", "-q"]


def test_zd_install_is_quiet_unless_pip_fails(zd_copy):
    log = zd_copy / ".venv" / "zerodrop-install.log"
    done = zd("verify", script=zd_copy / "zd")
    assert done.returncode == 7, done.stderr
    assert "NOISE" not in done.stdout + done.stderr
    assert "NOISE: Editable installation" in log.read_text()
    want = hashlib.sha256((zd_copy / "pyproject.toml").read_bytes()).hexdigest()
    assert (zd_copy / ".venv" / ".zerodrop-installed").read_text().strip() == want

    (zd_copy / ".venv" / ".zerodrop-installed").unlink()
    (zd_copy / ".venv" / "zerodrop-args").unlink()
    done = zd("verify", script=zd_copy / "zd", env={"FAKE_PIP_EXIT": "3"})
    assert done.returncode == 3, done.stderr
    assert f"zd: installing into .venv failed (exit 3); the end of .venv/zerodrop-install.log:" \
        in done.stderr
    assert "NOISE: Editable installation" in done.stderr
    assert not (zd_copy / ".venv" / ".zerodrop-installed").exists()
    assert not (zd_copy / ".venv" / "zerodrop-args").exists()  # stopped before verify


def test_watch_hands_the_deploy_command_to_its_proof_as_one_option():
    """Everything before -- goes to pytest; the command after it becomes --deploy-cmd, quoted
    so that it splits back into the same words."""
    import shlex
    cmd = cli.watch_command(["--target", "kind", "-x", "--", "./deploy.sh", "payment service", "img:1"])
    assert cmd[:5] == [sys.executable, "-m", "pytest", "--pyargs", cli.WATCH_TEST]
    assert cmd[5:8] == ["--target", "kind", "-x"] and cmd[8] == "--deploy-cmd"
    assert shlex.split(cmd[9]) == ["./deploy.sh", "payment service", "img:1"]


# -- zerodrop nightly ---------------------------------------------------------------------------
def test_nightly_runs_smoke_and_the_nightly_suite_as_a_nightly_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["--target", "url", "--base-url", "http://127.0.0.1:1"]
    assert cli.nightly_command(args) == [sys.executable, "-m", "pytest", "--pyargs",
                                         "zerodrop.suites.smoke", "zerodrop.suites.nightly",
                                         "--nightly", *args]
    (tmp_path / "mine").mkdir()  # arguments that name their own tests keep them
    assert cli.nightly_command(["mine", "-x"]) == [sys.executable, "-m", "pytest", "--nightly",
                                                   "mine", "-x"]


def test_nightly_collects_the_nightly_test_and_verify_does_not(tmp_path):
    """The nightly suite runs under `zerodrop nightly` only; plain verify deselects it and
    says so (the negative control: the same collection without --nightly)."""
    done = zerodrop(tmp_path, "nightly", "--co", "-q", "-p", "no:cacheprovider")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    ids = [line for line in done.stdout.splitlines() if "::" in line]
    assert any("test_nightly.py::test_nightly_regression" in i for i in ids), ids
    assert any("test_smoke.py::" in i for i in ids), ids
    done = zerodrop(tmp_path, "verify", "--co", "-q", "-p", "no:cacheprovider")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    ids = [line for line in done.stdout.splitlines() if "::" in line]
    assert ids and not any("test_nightly" in i for i in ids), ids
    assert "nightly test(s) deselected: they run with `zerodrop nightly`" in done.stdout


def test_report_nightly_builds_with_the_last_runs_allure_history(tmp_path, monkeypatch):
    history = tmp_path / "h"
    for name in ("20261201T010000Z-a", "20261202T010000Z-b"):
        (history / name).mkdir(parents=True)
    assert cli.latest_nightly_run(history) == history / "20261202T010000Z-b"
    env = cli._report_args(["--nightly", "--history-dir", str(history)])
    assert env == {"ZERODROP_ALLURE_HISTORY": str(history / "20261202T010000Z-b" /
                                                  "allure-history.jsonl")}
    assert cli._report_args([]) is None


# -- zerodrop gameday ---------------------------------------------------------------------------
def test_gameday_runs_the_chaos_suite_with_the_experiment():
    names = cli.experiment_names()
    assert names, "the experiment library names no experiment"
    cmd = cli.gameday_command([names[0], "--target", "local", "-x"])
    assert cmd == [sys.executable, "-m", "pytest", "--pyargs", "zerodrop.suites.chaos",
                   "--experiment", names[0], "--target", "local", "-x"]


def test_gameday_all_runs_every_experiment_the_target_can():
    cmd = cli.gameday_command(["all", "--target", "kind"])
    assert cmd[-4:] == ["--experiment", "all", "--target", "kind"]


def test_gameday_list_prints_the_names(tmp_path):
    done = zerodrop(tmp_path, "gameday", "--list")
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == list(cli.experiment_names())


@pytest.mark.parametrize("args, start", [
    (["gameday", "no-such-experiment"], "zerodrop: unknown experiment 'no-such-experiment'; known: "),
    (["gameday"], "zerodrop: gameday needs an experiment's name first"),
    (["gameday", "--target", "local"], "zerodrop: gameday needs an experiment's name first"),
])
def test_gameday_refuses_an_unknown_or_missing_name_in_one_line(tmp_path, args, start):
    done = zerodrop(tmp_path, *args)
    assert done.returncode == 4, done.stderr
    line = one_error_line(done, "zerodrop:")
    assert line.startswith(start), line
    assert all(n in line for n in cli.experiment_names()), line  # it lists what can be used


def test_gameday_without_an_experiment_library_says_none_yet(monkeypatch):
    """An ImportError of the library is "no experiments yet", never a traceback."""
    import builtins
    real = builtins.__import__

    def no_library(name, *a, **k):
        if name == "zerodrop.scenarios.experiments":
            raise ImportError("not there")
        return real(name, *a, **k)
    monkeypatch.setattr(builtins, "__import__", no_library)
    assert cli.experiment_names() == ()
    with pytest.raises(cli.UsageError, match="unknown experiment 'x'; known: none yet"):
        cli.gameday_command(["x"])


def test_zd_nightly_and_gameday_delegate_to_the_installed_command(zd_copy):
    stamp = zd_copy / ".venv" / ".zerodrop-installed"
    stamp.write_text(hashlib.sha256((zd_copy / "pyproject.toml").read_bytes()).hexdigest() + "\n")
    done = zd("nightly", "--target", "url", script=zd_copy / "zd")
    assert done.returncode == 7, done.stderr
    assert (zd_copy / ".venv" / "zerodrop-args").read_text().splitlines() == [
        "nightly", "--target", "url"]
    done = zd("gameday", "bad-release", "-x", script=zd_copy / "zd")
    assert done.returncode == 7, done.stderr
    assert (zd_copy / ".venv" / "zerodrop-args").read_text().splitlines() == [
        "gameday", "bad-release", "-x"]
