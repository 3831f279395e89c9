"""reports/build_html.sh fails in one clear line when it cannot work (no network needed)."""
from __future__ import annotations

import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "reports" / "build_html.sh"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["/bin/bash", str(SCRIPT), *args], capture_output=True, text=True,
                          env=env, timeout=60)


USAGE = "build_html: usage: reports/build_html.sh RESULTS_DIR OUT_DIR [VERDICTS_JSON]\n"


def test_usage_error_is_one_line_exit_4(tmp_path):
    p = run()
    assert p.returncode == 4
    assert p.stderr == USAGE
    p = run(str(tmp_path), str(tmp_path / "out"), str(tmp_path / "v.json"), "extra")
    assert (p.returncode, p.stderr) == (4, USAGE)


def test_a_named_verdicts_file_that_is_missing_is_a_usage_error(tmp_path):
    (tmp_path / "results").mkdir()
    p = run(str(tmp_path / "results"), str(tmp_path / "out"), str(tmp_path / "verdicts.json"))
    assert p.returncode == 4
    assert p.stderr == f"build_html: no verdicts file at {tmp_path / 'verdicts.json'}\n"
    assert not (tmp_path / "out").exists()


def test_missing_results_dir_names_the_fix(tmp_path):
    p = run(str(tmp_path / "nope"), str(tmp_path / "out"))
    assert p.returncode == 4
    assert p.stderr.strip().endswith(f"run pytest with --alluredir {tmp_path / 'nope'} first")
    assert p.stderr.count("\n") == 1


def test_missing_node_is_one_line_exit_3(tmp_path):
    (tmp_path / "results").mkdir()
    p = run(str(tmp_path / "results"), str(tmp_path / "out"), env={"PATH": str(tmp_path)})
    assert p.returncode == 3
    assert p.stderr == ("build_html: node is not installed; install Node.js 20 or newer (it "
                        "brings npm) and run again\n")
    assert not (tmp_path / "out").exists()
