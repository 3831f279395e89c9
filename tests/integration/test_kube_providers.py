"""Bad input to the cluster providers: one clear line, before anything is changed. These run
without a cluster: the kubeconfig files are real files the real client parses, and the
refusals happen before any API call."""
from __future__ import annotations

import pytest

from zerodrop.platforms.kubernetes.providers.base import ProviderError
from zerodrop.platforms.kubernetes.providers.kind import KindOptions, acquire_kind, kind_binary
from zerodrop.platforms.kubernetes.providers.kubeconfig import ExistingOptions, acquire_existing

KUBECONFIG = """apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:9"}
users:
- name: u
  user: {token: secret-token-never-printed}
contexts:
- name: staging
  context: {cluster: c, user: u}
- name: production
  context: {cluster: c, user: u}
current-context: production
"""


@pytest.fixture
def kubeconfig(tmp_path):
    path = tmp_path / "kubeconfig"
    path.write_text(KUBECONFIG)
    return str(path)


def refused(**kwargs) -> str:
    with pytest.raises(ProviderError) as err:
        acquire_existing(ExistingOptions(**kwargs))
    message = str(err.value)
    assert "\n" not in message and "secret-token" not in message
    return message


def test_a_context_that_is_not_allow_listed_is_refused(kubeconfig):
    message = refused(kubeconfig=kubeconfig, allow_contexts=("staging",),
                      node_address="127.0.0.1")
    assert "refusing to change context 'production'" in message
    assert "--allow-context production" in message


def test_an_allow_listed_context_is_accepted(kubeconfig):
    cluster = acquire_existing(ExistingOptions(kubeconfig=kubeconfig, context="staging",
                                               allow_contexts=("staging",),
                                               node_address="127.0.0.1"))
    assert cluster.context == "staging" and cluster.address(30080) == "127.0.0.1:30080"
    assert "secret" not in str(cluster.redacted())


def test_an_unknown_context_names_the_known_ones(kubeconfig):
    message = refused(kubeconfig=kubeconfig, context="prod", allow_contexts=("prod",))
    assert "context 'prod' is not in" in message and "production, staging" in message


def test_a_missing_or_broken_kubeconfig(tmp_path):
    assert "no such file" in refused(kubeconfig=str(tmp_path / "nope"))
    broken = tmp_path / "broken"
    broken.write_text("::: not yaml [")
    assert "bad kubeconfig" in refused(kubeconfig=str(broken))


def test_node_address_is_required_to_reach_nodeports(kubeconfig):
    message = refused(kubeconfig=kubeconfig, context="staging", allow_contexts=("staging",))
    assert "--node-address" in message


def test_kind_not_installed(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("GOPATH", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ProviderError, match="kind is not installed"):
        kind_binary()


def test_a_bad_kind_cluster_name_is_refused_before_anything_runs():
    with pytest.raises(ProviderError, match="--kind-cluster 'Bad_Name'"):
        acquire_kind(KindOptions(name="Bad_Name"))
