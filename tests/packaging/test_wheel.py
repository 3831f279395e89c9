"""The wheel holds ``zerodrop`` and nothing else, with its data files and entry points, and
works installed on its own: a fresh venv, the wheel installed with ``pip install --no-deps``,
the dependencies made visible from the checkout's .venv through a plain path line in a .pth
file (a path line only, so the editable install's own .pth files in that directory are never
processed and ``zerodrop`` can only come from the wheel), and every command run from an empty
directory.

The wheel is built from a copy of the working tree (everything but .git, .venv, build output
and reports/out), so that setuptools' build/ and *.egg-info never land in the checkout.
"""
from __future__ import annotations

import configparser
import csv
import io
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
VENV_PYTHON = ROOT / ".venv" / "bin" / "python"
PYTHON = str(VENV_PYTHON) if VENV_PYTHON.exists() else sys.executable
with open(ROOT / "pyproject.toml", "rb") as _f:
    PYPROJECT = tomllib.load(_f)
VERSION = PYPROJECT["project"]["version"]
DIST_INFO = f"zerodrop-{VERSION}.dist-info"
MUST_SHIP = [
    "zerodrop/payment_service/manifests/overlays/kind/kustomization.yaml",
    "zerodrop/payment_service/monitoring/alert-rules.yaml",
    "zerodrop/payment_service/monitoring/dashboard.json",
    "zerodrop/suites/custom/payment-service.checks.toml",
    "zerodrop/load/locustfile.py",
    "zerodrop/reports/build_html.sh",
    "zerodrop/cli.py",
    "zerodrop/__main__.py",
    "zerodrop/plugin/__init__.py",
]


def run(*cmd: str | Path, cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    return subprocess.run([str(c) for c in cmd], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=timeout)


def _ignore(folder: str, names: list[str]) -> set[str]:
    skip = {n for n in names if n in {".git", ".venv", "build", "__pycache__", "node_modules",
                                       ".zerodrop"} or n.endswith(".egg-info")}
    if Path(folder).resolve() == ROOT / "reports":
        skip.add("out")
    return skip


def _build_isolation_flag() -> list[str]:
    """--no-build-isolation when .venv's setuptools satisfies [build-system] requires (no
    network); otherwise pip builds in isolation with a setuptools from the index."""
    from packaging.requirements import Requirement
    probe = ("import sys\nfrom importlib.metadata import version\nfrom packaging.requirements "
             "import Requirement\nreqs = [Requirement(r) for r in sys.argv[1:]]\n"
             "sys.exit(0 if all(r.specifier.contains(version(r.name), prereleases=True) "
             "for r in reqs) else 1)\n")
    requires = PYPROJECT["build-system"]["requires"]
    assert all(Requirement(r).name for r in requires)
    ok = run(PYTHON, "-c", probe, *requires, cwd=ROOT, timeout=60).returncode == 0
    return ["--no-build-isolation"] if ok else []


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    shutil.copytree(ROOT, src, ignore=_ignore, symlinks=True)
    out = tmp / "dist"
    done = run(PYTHON, "-m", "pip", "wheel", "--no-deps", "--disable-pip-version-check",
               *_build_isolation_flag(), "-w", out, src, cwd=tmp)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    wheels = list(out.glob("zerodrop-*.whl"))
    assert [w.name for w in wheels] == [f"zerodrop-{VERSION}-py3-none-any.whl"]
    return wheels[0]


def test_the_wheel_holds_only_the_package_with_its_data_and_entry_points(wheel):
    with zipfile.ZipFile(wheel) as z:
        record = [row[0] for row in csv.reader(io.StringIO(z.read(f"{DIST_INFO}/RECORD")
                                                            .decode())) if row]
        entry_points = configparser.ConfigParser()
        entry_points.read_string(z.read(f"{DIST_INFO}/entry_points.txt").decode())
        names = set(z.namelist())
    assert set(record) == names
    outside = sorted(p for p in record if p.split("/")[0] not in ("zerodrop", DIST_INFO))
    assert not outside, f"the wheel installs more than zerodrop: {outside}"
    missing = [p for p in MUST_SHIP if p not in names]
    assert not missing, f"the wheel lacks {missing}"
    assert dict(entry_points["pytest11"]) == {"zerodrop": "zerodrop.plugin"}
    assert dict(entry_points["console_scripts"]) == {"zerodrop": "zerodrop.cli:main"}


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel in it and the checkout's dependencies on its path."""
    venv = tmp_path_factory.mktemp("venv") / "venv"
    done = run(PYTHON, "-m", "venv", "--without-pip", venv, cwd=venv.parent)
    assert done.returncode == 0, done.stderr
    python = venv / "bin" / "python"

    def purelib(py) -> Path:
        got = run(py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                  cwd=venv.parent, timeout=60)
        assert got.returncode == 0, got.stderr
        return Path(got.stdout.strip())

    site, deps = purelib(python), purelib(PYTHON)
    assert site != deps and deps.is_dir()
    (site / "zerodrop-deps.pth").write_text(f"{deps}\n")  # a path line: no import is run
    done = run(python, "-m", "pip", "install", "--no-deps", "--disable-pip-version-check",
               wheel, cwd=venv.parent)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return venv


@pytest.fixture
def empty(tmp_path) -> Path:
    d = tmp_path / "empty"
    d.mkdir()
    return d


def test_zerodrop_comes_from_the_fresh_venv_not_the_checkout(installed, empty):
    done = run(installed / "bin" / "python", "-c",
               "import zerodrop, zerodrop.suites, zerodrop.plugin, sys\n"
               "print(zerodrop.__file__); print(zerodrop.suites.__file__)\n"
               "print(zerodrop.plugin.__file__)", cwd=empty, timeout=120)
    assert done.returncode == 0, done.stderr
    site = run(installed / "bin" / "python", "-c",
               "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=empty).stdout
    for path in done.stdout.split():
        assert Path(path).is_relative_to(Path(site.strip())), done.stdout
        assert not Path(path).resolve().is_relative_to(ROOT), done.stdout


def test_pytest_help_shows_the_plugins_options(installed, empty):
    done = run(installed / "bin" / "python", "-m", "pytest", "--help", cwd=empty, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    for option in ("zerodrop:", "--target", "--load-rate", "--base-url", "--kind-cluster"):
        assert option in done.stdout, option


def test_the_command_answers_help(installed, empty):
    done = run(installed / "bin" / "zerodrop", "--help", cwd=empty, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "verify" in done.stdout and "report" in done.stdout


def test_the_installed_command_verifies_a_real_local_platform(installed, empty):
    done = run(installed / "bin" / "zerodrop", "verify", "-m", "smoke", "--target", "local",
               "--replicas", "1", "-p", "no:cacheprovider", "-q", cwd=empty, timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out[-4000:]
    summary = done.stdout.strip().splitlines()[-1]
    assert re.search(r"\b[1-9]\d* passed\b", summary), out[-4000:]
    assert not re.search(r"\b\d+ (failed|errors?)\b", summary), out[-4000:]
    assert str(installed) in run(installed / "bin" / "python", "-c",
                                 "import zerodrop.platforms.local.platform as p; "
                                 "print(p.__file__)", cwd=empty).stdout
