"""Your own deploy command, judged: it runs while the load flows through the Service, every
line it prints goes on the timeline, and the switch it makes is judged request by request,
exactly as zerodrop judges its own (``zerodrop watch --target kind -- ./deploy.sh ARGS``, or
``--deploy-cmd``). Runs only with --deploy-cmd, on a platform an outside command can switch."""
from __future__ import annotations

import shlex
from dataclasses import replace

import allure
import pytest

from zerodrop.checks.steps import labels
from zerodrop.scenarios.proof import prove
from zerodrop.scenarios.steps import Context
from zerodrop.scenarios.watch import WatchSettings, watched

from .test_zero_downtime import load_errors_in_one_line

pytestmark = [pytest.mark.zero_downtime, pytest.mark.watched_deploy]
BLOCKER = allure.severity_level.BLOCKER


@labels("zero-downtime", "your deploy command under load", BLOCKER)
def test_your_deploy_under_load(zd_platform, zd_proof_settings, zd_evidence_dir, zd_terminal, zd_judged,
                                tmp_path, pytestconfig):
    """The deploy command ends with status 0, the Service moved to the other colour, and no
    request dropped, no acknowledged write lost."""
    o = pytestconfig.option
    settings = WatchSettings(tuple(shlex.split(o.deploy_cmd)), timeout=o.deploy_timeout, token=o.token)
    # the load outlasts the command: its own cap is the deploy's timeout plus the tail
    load = replace(zd_proof_settings, max_duration=max(zd_proof_settings.max_duration,
                                                       o.deploy_timeout + o.baseline + o.tail + 30))
    scenario = watched(zd_platform, settings, name="watched-deploy")
    with zd_terminal() as stream, load_errors_in_one_line():
        proof = prove(zd_platform, scenario, Context(zd_platform), load, zd_evidence_dir,
                      tmp_path / "ledger", progress_stream=stream)
    zd_judged(proof)
