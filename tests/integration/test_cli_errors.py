"""Bad input to the suites: one clear line, said once, a non-zero exit, no traceback, nothing
left running.

Each case is a real pytest run of the suites in a subprocess with its own TMPDIR, so that every
process the run started (the shared platform, its replicas) carries that directory on its
command line and can be looked for afterwards."""
from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from tests.integration.conftest import pids_of, run_pytest

pytestmark = pytest.mark.slow


def run_isolated(tmp_path, *args: str):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    old = os.environ.get("TMPDIR")
    os.environ["TMPDIR"] = str(tmp)
    try:
        done = run_pytest(*args, "--alluredir", str(tmp_path / "allure"), timeout=120)
    finally:
        if old is None:
            del os.environ["TMPDIR"]
        else:
            os.environ["TMPDIR"] = old
    out = done.stdout + done.stderr
    assert "Traceback" not in out and "INTERNALERROR" not in out, out[-2000:]
    assert not pids_of(str(tmp)), f"processes left behind: {pids_of(str(tmp))}"
    assert not list(tmp.glob("zerodrop-session-*")), "the run's directory was left behind"
    return done.returncode, out


def said_once(out: str, message: str) -> None:
    """The message is there exactly once (pytest.exit in a session hook says it twice)."""
    assert out.count(message) == 1, f"{out.count(message)} times {message!r} in:\n{out[-2000:]}"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # nothing listens there once the socket is closed


@pytest.mark.parametrize("args, code, message", [
    (["--target", "bogus"], 4, "argument --target: invalid choice: 'bogus'"),
    (["--load-users", "0"], 4, "--load-users must be >= 1, got 0"),
    (["--load-rate", "-5"], 4, "--load-rate must be > 0 requests/s, got -5"),
    (["--latency-p50-ratio", "0.5"], 4, "--latency-p50-ratio must be above 1 (or 0: off), got 0.5"),
    (["--load-max-duration", "3"], 4, "--load-max-duration 3 s is shorter than the scenario"),
    (["--local-faults", "{nope"], 4, "--local-faults is not valid JSON"),
    (["--local-faults", '{"purple": {}}'], 4, '--local-faults takes {"blue"|"green"'),
    (["--local-faults", '{"blue": {"eror_rate": 0.1}}'], 4,
     "--local-faults blue: eror_rate: unknown fault; known: error_rate, error_every, "),
    (["--local-faults", '{"green": {"error_rate": 2}}'], 4,
     "--local-faults green: error_rate: must be between 0 and 1"),
    (["--target", "url", "--preview-url", "green"], 4, "--preview-url takes COLOR=URL"),
    (["--target", "url"], 3, "--target url needs --base-url"),
    (["--target", "url", "--base-url", "http://127.0.0.1:9"], 3,
     "cannot reach --base-url http://127.0.0.1:9 (connection refused)"),
    (["--target", "kind", "--kind-config", "/no/such/kind.yaml"], 4,
     "--kind-config /no/such/kind.yaml: no such file"),
    (["--target", "kind", "--kind-cluster", "Prod_Cluster"], 3,
     "--kind-cluster 'Prod_Cluster': use lowercase letters"),
    (["--target", "kubeconfig", "--kubeconfig", "/no/such/kubeconfig"], 3,
     "--kubeconfig /no/such/kubeconfig: no such file"),
    (["--target", "kind", "--namespace", "Team_A"], 4,
     "--namespace 'Team_A': use lowercase letters, digits and '-'"),
    (["--service-port", "8080", "-n", "2"], 4,
     "--service-port 8080 cannot be combined with pytest-xdist (-n)"),
    (["--profile", "/no/such/profile.toml"], 4, "profile /no/such/profile.toml: No such file or directory"),
    (["--profile", "examples/todo_service/todo.profile.toml", "--local-faults", '{"blue": {"error_rate": 0.1}}'],
     4, "--local-faults sets knobs of the reference payment-service; the profile todo-service"),
    (["--deploy-cmd", "./deploy.sh"], 4,
     "--deploy-cmd needs a platform your own command can switch; --target local gives none"),
    (["--target", "kind", "--deploy-cmd", "'unbalanced"], 4, "--deploy-cmd \"'unbalanced\": No closing quotation"),
])
def test_usage_and_target_errors_are_one_line(tmp_path, args, code, message):
    exit_code, out = run_isolated(tmp_path, "suites/smoke", *args)
    assert exit_code == code, out[-2000:]
    said_once(out, message)


TODO = Path(__file__).resolve().parents[2] / "examples" / "todo_service"


@pytest.mark.parametrize("change, message", [
    (("color_label = \"slot\"", "color_label = \"version\""),
     "Service todo selects app.kubernetes.io/name=todo,slot=blue, without the label 'version' "
     "that a switch would set to blue or green; name the label that does in the profile's "
     "[kubernetes] color_label"),
    (("service = \"todo\"", "service = \"todo-api\""),
     "no Service named todo-api (Services there: todo); name yours in the profile's "
     "[kubernetes] service"),
    (("manifests = \"k8s/overlays/kind\"\n", ""),
     "todo-service has no [kubernetes] manifests and no --manifests was given"),
])
def test_a_profile_that_does_not_match_its_manifests_stops_before_any_cluster_work(
        tmp_path, change, message):
    """Checked at configuration: no cluster is looked for (the kind cluster named here does
    not exist), no namespace is created."""
    text = (TODO / "todo.profile.toml").read_text()
    assert change[0] in text
    text = text.replace(*change).replace('manifests = "k8s/', f'manifests = "{TODO}/k8s/')
    profile = tmp_path / "todo.profile.toml"
    profile.write_text(text)
    exit_code, out = run_isolated(tmp_path, "suites/smoke", "--target", "kind", "--kind-cluster",
                                  "no-such-cluster", "--profile", str(profile))
    assert exit_code == 4, out[-2000:]
    said_once(out, message)
    assert "no-such-cluster" not in out


def test_a_misspelt_fault_knob_is_refused_before_anything_starts(tmp_path):
    """Named with the knobs the service knows, at once: not after the replicas crashed on it
    until the ready timeout."""
    exit_code, out = run_isolated(tmp_path, "suites/smoke", "--ready-timeout", "5",
                                  "--local-faults", '{"blue": {"crash_on_strat": true}}')
    assert exit_code == 4, out[-2000:]
    said_once(out, "--local-faults blue: crash_on_strat: unknown fault; known: ")
    assert "crash_on_start" in out and "not ready after" not in out


def test_an_unreachable_api_server_is_one_line_with_exit_3(tmp_path):
    """An allow-listed context whose API server does not answer: the sweep, the run's first
    API call, says so in one line (it was a 112-line INTERNALERROR)."""
    from tests.integration.test_kube_providers import KUBECONFIG
    port = closed_port()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG.replace("https://127.0.0.1:9", f"https://127.0.0.1:{port}"))
    exit_code, out = run_isolated(tmp_path, "suites", "-m", "smoke", "--target", "kubeconfig",
                                  "--kubeconfig", str(kubeconfig), "--allow-context",
                                  "production", "--node-address", "127.0.0.1")
    assert exit_code == 3, out[-2000:]
    said = [line for line in out.splitlines() if line.startswith("zerodrop:")]
    assert said == [f"zerodrop: cannot reach the API server of kubeconfig cluster production at "
                    f"https://127.0.0.1:{port} (connection refused); is the cluster up and the "
                    f"kubeconfig current?"], out[-2000:]
    assert "secret-token" not in out


def test_a_context_that_is_not_allow_listed_is_refused_before_any_change(tmp_path):
    from tests.integration.test_kube_providers import KUBECONFIG
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(KUBECONFIG)
    exit_code, out = run_isolated(tmp_path, "suites/smoke", "--target", "kubeconfig",
                                  "--kubeconfig", str(kubeconfig), "--allow-context", "staging")
    assert exit_code == 3, out[-2000:]
    said_once(out, "zerodrop: refusing to change context 'production'")
    assert "secret-token" not in out


def test_a_bad_checks_file_names_the_check(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[[check]]\nname = 'no path'\n")
    exit_code, out = run_isolated(tmp_path, "suites/custom", "--checks", str(bad))
    assert exit_code == 4
    assert f"checks file {bad}: check 'no path': path must be a string starting with /" in out


def test_a_wrong_token_is_refused_before_any_test(tmp_path, platform):
    exit_code, out = run_isolated(tmp_path, "suites/smoke", "--target", "url", "--base-url",
                                  platform.service_url, "--token", "not-the-token")
    assert exit_code == 3
    said_once(out, f"{platform.service_url} rejected the token (HTTP 401)")


def test_a_port_in_use_stops_the_run_and_leaves_nothing(tmp_path, platform):
    busy = platform.fronts["service"].port
    exit_code, out = run_isolated(tmp_path, "suites/smoke", "--service-port", str(busy))
    assert exit_code == 3
    said_once(out, f"port {busy} on 127.0.0.1 is already in use")


def test_a_service_that_never_gets_ready_is_named_with_its_reason(tmp_path):
    exit_code, out = run_isolated(tmp_path, "suites/smoke", "--replicas", "1",
                                  "--local-faults", '{"blue": {"crash_on_start": true}}',
                                  "--ready-timeout", "3")
    assert exit_code == 3
    said_once(out, "blue not ready after 3 s")
    assert "exited with code 3" in out and "crashing on start" in out


def test_zero_downtime_tests_are_deselected_out_loud_for_a_url_target(tmp_path, platform):
    exit_code, out = run_isolated(tmp_path, "suites/zero_downtime", "suites/smoke", "--target",
                                  "url", "--base-url", platform.service_url)
    assert exit_code == 0, out[-2000:]
    # the switch, the rollback, the migration, and the watched deploy (no --deploy-cmd)
    assert "4 deselected" in out
    assert "zerodrop: 3 zero-downtime test(s) not run: --target url gives no platform" in out
    assert "zerodrop: 1 test(s) deselected: the watched-deploy proof not run" in out
