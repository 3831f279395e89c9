"""The offline cluster build's shell scripts share one preamble (infra/cluster/lib.sh) instead
of a copy in each, and every script parses. Nothing here runs a build: the build itself runs
in .ci/run (infra/cluster/up.sh) and its steps are timed in infra/cluster/README.md."""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parents[2] / "infra" / "cluster"
SCRIPTS = sorted(p for p in HERE.glob("*.sh") if p.name != "lib.sh")
SOURCE = '. "$(dirname "$0")/lib.sh"'
# what lib.sh defines: a script that sets one of these again is a copy of the preamble
PREAMBLE = re.compile(r'^(HERE|ROOT|CACHE|DOCKER)=|^die\(\)|^set -euo pipefail$', re.M)


def first_command(text: str) -> str:
    return next(line for line in text.splitlines()
                if line.strip() and not line.startswith("#"))


@pytest.mark.parametrize("script", SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_each_script_sources_the_one_preamble_first_and_repeats_none_of_it(script):
    text = script.read_text()
    assert first_command(text) == SOURCE, f"{script.name} must start with {SOURCE}"
    again = PREAMBLE.findall(text)
    assert not again, f"{script.name} repeats the preamble: {again}"


@pytest.mark.parametrize("script", [*SCRIPTS, HERE / "lib.sh"], ids=lambda p: p.name)
def test_each_script_parses(script):
    done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_the_checker_sees_a_copied_preamble(tmp_path):
    """Negative control: a script with its own CACHE= and die() is caught."""
    copy = tmp_path / "copy.sh"
    copy.write_text(f"#!/usr/bin/env bash\n{SOURCE}\nCACHE=/tmp/x\ndie() {{ exit 1; }}\n")
    found = [m.group(0) for m in PREAMBLE.finditer(copy.read_text())]
    assert found == ["CACHE=", "die()"]
    wrong_first = tmp_path / "late.sh"
    wrong_first.write_text("#!/usr/bin/env bash\nset -e\n" + SOURCE + "\n")
    assert first_command(wrong_first.read_text()) != SOURCE


def test_lib_gives_what_the_scripts_use(tmp_path):
    """lib.sh, sourced by a script elsewhere, sets strict mode and the shared names."""
    probe = tmp_path / "probe.sh"
    probe.write_text(f'. "{HERE}/lib.sh"\necho "$CACHE|$DOCKER|$SELF|$-"\n'
                     'die "stopped here"\n')
    done = subprocess.run(["bash", str(probe)], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "ZD_CLUSTER_CACHE": "/tmp/zd-cache"})
    cache, docker, self_name, flags = done.stdout.strip().split("|")
    assert (cache, docker, self_name) == ("/tmp/zd-cache", "/usr/bin/docker", "probe")
    assert "e" in flags and "u" in flags
    assert done.returncode == 1 and done.stderr.strip() == "probe: stopped here"
