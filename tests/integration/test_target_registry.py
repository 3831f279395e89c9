"""``--target`` is resolved through the registry only: a stand-in provider registered from a
plugin (tests/integration/standin_target.py) is a working target with no other change, with
its own options, usage errors, session hand-over to xdist workers and release; and the
option's choices and help are the registry's."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.integration.conftest import ROOT
from zerodrop.platforms import registry

pytestmark = pytest.mark.slow
STANDIN = ["-p", "tests.integration.standin_target"]
TESTS = '''
def test_the_suites_target(target, zd_run_session):
    assert target.kind == "fake" and target.base_url == "http://fake.invalid/7"
    assert zd_run_session["answer"] == "7"

def test_a_proof_platform(zd_platform):
    assert zd_platform.service_url.startswith("http://fake.invalid/")
'''


def pytest_run(tmp_path, *args: str) -> tuple[int, str, list[str]]:
    """pytest in tmp_path (its own rootdir) with zerodrop's plugin from the installed entry
    point; the stand-in's log lines (without pids) and the output."""
    log = tmp_path / "standin.log"
    (tmp_path / "test_standin.py").write_text(TESTS)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:randomly", "-p", "no:cacheprovider",
         "-p", "no:locust", *args],
        cwd=tmp_path, capture_output=True, text=True, timeout=120,
        env={**os.environ, "PYTHONPATH": str(ROOT), "ZD_STANDIN_LOG": str(log)})
    lines = log.read_text().splitlines() if log.exists() else []
    return done.returncode, done.stdout + done.stderr, lines


def test_a_registered_stand_in_target_runs_with_no_other_change(tmp_path):
    code, out, calls = pytest_run(tmp_path, *STANDIN, "--target", "fake", "--fake-answer", "7")
    assert code == 0, out[-2000:]
    assert [c.split()[0] for c in calls] == ["acquire", "platform", "teardown", "release"], calls
    assert calls[1].startswith("platform c-1 idle_replicas=0"), calls


def test_the_stand_in_session_reaches_xdist_workers_as_a_dict(tmp_path):
    code, out, calls = pytest_run(tmp_path, *STANDIN, "--target", "fake", "--fake-answer", "7",
                                  "-n", "2")
    assert code == 0, out[-2000:]
    names = [c.split()[0] for c in calls]
    assert names.count("acquire") == 1 and names.count("release") == 1, calls
    assert names.count("from_worker") == 2, calls
    controller = calls[names.index("acquire")].split()[-1]
    assert calls[names.index("release")].split()[-1] == controller  # only the controller


def test_the_stand_in_refuses_its_own_bad_option_as_a_usage_error(tmp_path):
    code, out, calls = pytest_run(tmp_path, *STANDIN, "--target", "fake", "--fake-answer", "bad")
    assert code == 4, out[-2000:]
    assert out.count("--fake-answer bad: the stand-in refuses it") == 1, out[-2000:]
    assert calls == []  # refused before anything was acquired


def test_target_choices_and_help_come_from_the_registry(tmp_path):
    code, out, _ = pytest_run(tmp_path, *STANDIN, "--help")
    assert code == 0, out[-2000:]
    flat = " ".join(out.split())
    assert "--target={local,url,kind,kubeconfig,fake}" in flat, flat[:3000]
    for name in registry.names():
        assert f"{name}: {registry.get(name).summary}" in flat or \
            f"{name} (default): {registry.get(name).summary}" in flat, name
    assert "fake: a test-only stand-in target" in flat and "--fake-answer" in flat
    code, out, _ = pytest_run(tmp_path, "--target", "fake")  # not registered: not a choice
    assert code == 4, out
    assert "invalid choice: 'fake' (choose from 'local', 'url', 'kind', 'kubeconfig')" in out, out
