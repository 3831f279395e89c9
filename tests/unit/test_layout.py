"""Where the service is in a manifest set (platforms/kubernetes/layout.py), on the two real
overlays this repository ships (the reference service's, and the to-do example's with its own
names and a `slot` label), rendered by the real ``kubectl kustomize``, and on broken copies of
them: each gap is one line that says what to name in the profile. Then what ``customize`` does
to another team's objects. Pure: no cluster involved."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest

from zerodrop.platforms.base import PlatformError
from zerodrop.platforms.kubernetes.layout import discover
from zerodrop.platforms.kubernetes.lint import lint
from zerodrop.platforms.kubernetes.render import (DEFAULT_OVERLAY, TOKEN_SECRET, customize,
                                                  images_of, render)
from zerodrop.profiles import profile as profiles

ROOT = Path(__file__).resolve().parents[2]
TODO_PROFILE = profiles.load(ROOT / "examples" / "todo_service" / "todo.profile.toml")


def todo() -> list[dict]:
    return copy.deepcopy(render(Path(TODO_PROFILE.kube_manifests)))


def todo_layout(objs: list[dict] | None = None):
    return discover(todo() if objs is None else objs, "todo", "slot")


def test_the_reference_overlay_gives_the_seed_names():
    layout = discover(render(DEFAULT_OVERLAY), "payment-service", "version")
    assert layout.selector("green") == {"app": "payment-service", "version": "green"}
    assert dict(layout.deployments) == {"blue": "payment-service-blue",
                                        "green": "payment-service-green"}
    assert dict(layout.previews) == {"blue": "payment-service-blue",
                                     "green": "payment-service-green"}
    assert layout.made_previews == () and layout.container == "payment-service"
    assert layout.services == ("payment-service", "payment-service-blue", "payment-service-green")


def test_another_teams_overlay_is_found_by_its_own_label_and_names():
    layout = todo_layout()
    assert layout.selector("blue") == {"app.kubernetes.io/name": "todo", "slot": "blue"}
    assert layout.label_selector() == "app.kubernetes.io/name=todo"
    assert dict(layout.deployments) == {"blue": "todo-api-blue", "green": "todo-api-green"}
    assert layout.container == "api" and layout.port == 8080
    assert layout.made_previews == ("todo-blue", "todo-green")  # its manifests have none
    assert layout.color_of({"app.kubernetes.io/name": "todo", "slot": "green", "x": "y"}) == "green"
    assert layout.color_of({"app.kubernetes.io/name": "other", "slot": "green"}) is None
    assert layout.color_of({"app.kubernetes.io/name": "todo", "slot": "canary"}) is None


def test_the_made_previews_select_one_colour_each_on_the_services_ports():
    objs = todo()
    previews = todo_layout(objs).preview_objects(objs)
    assert [p["metadata"]["name"] for p in previews] == ["todo-blue", "todo-green"]
    assert previews[1]["spec"] == {"selector": {"app.kubernetes.io/name": "todo", "slot": "green"},
                                   "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}


def _drop(objs, kind, name):
    return [o for o in objs if not (o["kind"] == kind and o["metadata"]["name"] == name)]


def _named(objs, kind, name):
    return next(o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name)


def broken_service_name(objs):
    return objs, {"service": "todo-service"}


def broken_label(objs):
    return objs, {"label": "version"}


def broken_no_green(objs):
    return _drop(objs, "Deployment", "todo-api-green"), {}


def broken_two_blues(objs):
    twin = copy.deepcopy(_named(objs, "Deployment", "todo-api-blue"))
    twin["metadata"]["name"] = "todo-api-blue-2"
    return objs + [twin], {}


def broken_sidecar(objs):
    for color in ("blue", "green"):
        spec = _named(objs, "Deployment", f"todo-api-{color}")["spec"]["template"]["spec"]
        spec["containers"].append({"name": "proxy", "image": "envoy"})
    return objs, {}


def broken_preview(objs):
    wrong = copy.deepcopy(_named(objs, "Service", "todo"))
    wrong["metadata"]["name"] = "todo-green"  # selects blue: not green's preview
    return objs + [wrong], {}


@pytest.mark.parametrize("breaks, message", [
    (broken_service_name, "no Service named todo-service (Services there: todo); name yours in "
                          "the profile's [kubernetes] service"),
    (broken_label, "Service todo selects app.kubernetes.io/name=todo,slot=blue, without the label "
                   "'version' that a switch would set to blue or green; name the label that does "
                   "in the profile's [kubernetes] color_label"),
    (broken_no_green, "no Deployment whose pods are labelled app.kubernetes.io/name=todo,"
                      "slot=green (the green colour of Service todo)"),
    (broken_two_blues, "2 Deployments have pods labelled app.kubernetes.io/name=todo,slot=blue "
                       "(todo-api-blue, todo-api-blue-2); a colour must be one Deployment"),
    (broken_sidecar, "Deployment todo-api-blue has containers api, proxy; name the app's in the "
                     "profile's [kubernetes] container"),
    (broken_preview, "Service todo-green is not the green preview of todo: it selects "
                     "app.kubernetes.io/name=todo,slot=blue, not app.kubernetes.io/name=todo,"
                     "slot=green"),
])
def test_a_manifest_set_without_what_a_switch_needs_is_one_line_naming_the_gap(breaks, message):
    objs, args = breaks(todo())
    with pytest.raises(PlatformError) as err:
        discover(objs, args.get("service", "todo"), args.get("label", "slot"), where="overlay x")
    assert str(err.value) == f"overlay x: {message}"


def test_a_named_container_resolves_the_sidecar_case():
    objs, _ = broken_sidecar(todo())
    assert discover(objs, "todo", "slot", container="api").container == "api"
    with pytest.raises(PlatformError, match="has no container web"):
        discover(objs, "todo", "slot", container="web")


def customized(objs, layout, reference=False, faults=None):
    return customize(objs, layout=layout, namespace="ns", labels={"run": "r"}, image=None,
                     versions={"blue": "v1", "green": "v2"}, replicas={"blue": 2, "green": 1},
                     token="s3cr3t-value", admin_token="adm", faults=faults or {}, reference=reference)


def test_customize_hands_another_teams_app_the_local_platforms_variables_and_no_faults():
    objs = todo()
    out = customized(objs, todo_layout(objs))
    by_name = {(o["kind"], o["metadata"]["name"]): o for o in out}
    green = by_name[("Deployment", "todo-api-green")]
    assert green["spec"]["replicas"] == 1 and green["metadata"]["namespace"] == "ns"
    env = {e["name"]: e for e in green["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["APP_VERSION"]["value"] == "v2" and env["ZD_COLOR"]["value"] == "green"
    assert env["ZD_TOKEN"] == {"name": "ZD_TOKEN", "valueFrom": {"secretKeyRef": {
        "name": TOKEN_SECRET, "key": "token"}}}  # the token is in a Secret, not the pod spec
    assert "FAULTS" not in env and "s3cr3t-value" not in str(green)
    assert env["DATABASE_URL"]["value"] == "sqlite:////data/todo.db"  # its own, kept
    assert by_name[("Secret", TOKEN_SECRET)]["stringData"] == {"token": "s3cr3t-value"}
    assert ("Service", "todo-green") in by_name and ("Job", "todo-migrate") in by_name


def test_the_reference_service_still_gets_its_faults_and_its_own_secret():
    objs = render(DEFAULT_OVERLAY)
    layout = discover(objs, "payment-service", "version")
    out = customized(objs, layout, reference=True, faults={"green": {"error_rate": 0.5}})
    green = next(o for o in out if o["metadata"]["name"] == "payment-service-green"
                 and o["kind"] == "Deployment")
    env = {e["name"]: e.get("value") for e in green["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["FAULTS"] == '{"error_rate": 0.5}'
    secret = next(o for o in out if o["kind"] == "Secret" and o["metadata"]["name"] == "payment-service")
    assert secret["stringData"]["auth-token"] == "s3cr3t-value" and secret["stringData"]["admin-token"] == "adm"


def test_the_images_to_load_are_the_manifests_own_unless_image_replaces_the_apps():
    objs = todo()
    layout = todo_layout(objs)
    assert images_of(objs, layout, None) == ["zerodrop-example/todo:dev"]
    assert images_of(objs, layout, "todo:v9") == ["todo:v9"]
    reference = render(DEFAULT_OVERLAY)
    ref_layout = discover(reference, "payment-service", "version")
    assert images_of(reference, ref_layout, "zerodrop/payment-service:dev") == [
        "zerodrop/payment-service:dev", "zerodrop/postgres:15"]


def test_the_readiness_lint_reads_the_layouts_label():
    """The to-do manifests pass the lint under their own label; without their preStop sleep,
    the lint says so (a check that could not see the `slot` Deployments would pass both)."""
    objs = todo()
    for o in objs:
        if o["kind"] == "Deployment":
            o["spec"]["replicas"] = 2
    assert lint(objs, "green", propagation_s=2.0, service="todo", label="slot") == []
    for o in objs:
        if o["kind"] == "Deployment":
            o["spec"]["template"]["spec"]["containers"][0].pop("lifecycle")
    found = lint(objs, "green", propagation_s=2.0, service="todo", label="slot")
    assert {f.rule for f in found} == {"prestop"} and len(found) == 2, found
