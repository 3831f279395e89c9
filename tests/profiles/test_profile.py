"""Service profiles: the shipped ones parse and say what the harness relies on; a bad profile
is one line naming the file, the line and the problem, before anything starts."""
from __future__ import annotations

import json
import random
import re
from decimal import Decimal
from pathlib import Path

import pytest

from zerodrop.profiles import profile as profiles
from zerodrop.profiles.profile import ProfileError, parse, render, render_request, same_value

ROOT = Path(__file__).resolve().parents[2]
TODO = ROOT / "examples" / "todo_service" / "todo.profile.toml"

MINIMAL = '''[service]
name = "mini"

[readback]
path = "/items/{id}"
by_key = "/items?key={key}"
by_key_ids = ".items[].id"

[[request]]
name = "create"
method = "POST"
path = "/items"
status = 201
values = { title = "text 2" }
headers = { Content-Type = "application/json" }
body = '{"title": "{title}"}'
idempotent = true
write = { id = ".id", value = "title", readback = ".title" }
weight = 1
'''


def test_the_default_profile_is_the_payment_service_and_matches_the_load_s_historic_mix():
    p = profiles.load()
    assert p.name == "payment-service" and p.source == str(profiles.DEFAULT_PATH)
    assert p.mix == {"health": 5, "balance": 30, "create_payment": 20, "payment_status": 20,
                     "replay_payment": 5, "credit": 12, "debit": 8}
    assert p.write_kinds == {"payment"} and p.money_accounts[0] == "load-account-0"
    assert p.readiness == "/health/ready" and p.version_header == "X-App-Version"
    assert p.money.check_account not in p.money_accounts
    assert [i.name for i in p.invalid][0] == "the seed's invalid payment"


def test_the_example_profile_describes_another_service():
    p = profiles.load(TODO)
    assert (p.name, p.version_header, p.idempotency_header, p.readiness) == \
        ("todo-service", "X-Version", "Request-Key", "/readyz")
    assert p.money is None and p.write_kinds == {"create_todo"}
    assert "{profile_dir}" in p.app_cmd and Path(p.profile_dir) == TODO.parent


def test_values_are_generated_exactly_and_templates_keep_json_braces():
    p = profiles.load()
    spec = p.request("create_payment")
    rng = random.Random(7)
    for _ in range(200):
        r = render_request(p, spec, rng)
        amount = Decimal(r.values["amount"])
        assert Decimal("0.01") <= amount <= Decimal("9999.99") and amount.as_tuple().exponent == -2
        body = json.loads(r.body)
        assert str(body["amount"]) == r.values["amount"] or Decimal(str(body["amount"])) == amount
        assert r.headers["Idempotency-Key"] == r.key and r.values["key"] == r.key
        assert body["from_account"] != body["to_account"]
    assert render('{"a": {x}, "b": "{y}"}', {"x": "1", "y": "z"}) == '{"a": 1, "b": "z"}'


def test_a_request_that_needs_a_saved_value_waits_for_one():
    p = profiles.load()
    status = p.request("payment_status")
    assert render_request(p, status, random.Random(1), saved={}) is None
    r = render_request(p, status, random.Random(1), saved={"payment_id": ["pay_1"]})
    assert r.path == "/api/payments/pay_1"
    assert p.saver_of("payment_id").name == "create_payment"


def test_values_compare_exactly_as_decimals_or_as_text():
    assert same_value(Decimal("10.50"), "10.5") and same_value("10.50", "10.5")
    assert not same_value(Decimal("10.51"), "10.5") and not same_value(None, "x")
    assert same_value("alpha bravo", "alpha bravo") and not same_value("alpha", "alpha ")
    assert not same_value(True, "1")


def test_a_minimal_profile_parses():
    p = parse(MINIMAL, "mini.toml")
    assert p.mix == {"create": 1} and p.readback.by_key_ids == ".items[].id"


BAD = [
    # (what to change in MINIMAL, the message, what the line it names holds)
    (("weight = 1", "weight = 1\ncolour = 'red'"), "unknown key 'colour'", "colour = 'red'"),
    (("[service]", "[servise]"), "unknown section or key 'servise'", "[servise]"),
    (('body = \'{"title": "{title}"}\'', 'body = \'{"title": "{titel}"}\''),
     "the placeholder {titel}, which does not exist", "body = "),
    (('by_key_ids = ".items[].id"', 'by_key_ids = ".items[.id"'), "bad jq expression", "by_key_ids"),
    (('values = { title = "text 2" }', 'values = { title = "txt 2" }'), "the generator is one of", "values ="),
    (('values = { title = "text 2" }', 'values = { title = "int 5 1" }'), "is not a valid int generator",
     "values ="),
    (('body = \'{"title": "{title}"}\'', 'body = \'{"title": {title}}\''), "the body is not JSON once filled",
     "body = "),
    (('by_key = "/items?key={key}"\nby_key_ids = ".items[].id"\n', ''),
     "idempotent write, but [readback] has no by_key", "write = "),
    (('path = "/items/{id}"', 'path = "items/{id}"'), "path must be a path starting with /", "path = "),
    (("weight = 1", "weight = 0"), "every [[request]] has weight 0", None),
    (("[service]", "[kubernetes]\ncolor_label = 'slot colour'\n[service]"),
     "color_label 'slot colour' is not a Kubernetes label key", "color_label"),
    (("[service]", "[kubernetes]\nservice = 'Todo_API'\n[service]"),
     "[kubernetes] service 'Todo_API' is not a Kubernetes name", "service = "),
    (("[service]", "[kubernetes]\nselector = 'slot'\n[service]"),
     "[kubernetes] has an unknown key 'selector'", "selector"),
    (("[service]", "[steady_state]\nerror_budget = 1.5\n[service]"),
     "[steady_state] error_budget must be a number from 0 to 1", "error_budget"),
    (("[service]", "[steady_state]\nslow_ms = '500'\n[service]"),
     "[steady_state] slow_ms must be a number from 1 to 600000", "slow_ms"),
]


def test_the_steady_state_section_sets_a_game_days_hypothesis():
    text = MINIMAL.replace("[service]", "[steady_state]\nerror_budget = 0.002\nslow_ms = 250\n"
                                        "slow_share = 0.01\n[service]")
    p = parse(text, "mini.toml")
    assert (p.error_budget, p.slow_ms, p.slow_share) == (0.002, 250.0, 0.01)
    d = parse(MINIMAL, "mini.toml")
    assert (d.error_budget, d.slow_ms, d.slow_share) == (0.01, 1000.0, 0.05)


def test_the_kubernetes_section_is_resolved_against_the_profiles_folder(tmp_path, monkeypatch):
    """The profile works from any working directory: its manifests are found beside it."""
    text = MINIMAL.replace("[service]", "[kubernetes]\nmanifests = 'k8s/kind'\n"
                                        "color_label = 'app.example.com/slot'\n[service]")
    (tmp_path / "svc.toml").write_text(text)
    monkeypatch.chdir("/")
    p = profiles.load(tmp_path / "svc.toml")
    assert p.kube_manifests == str(tmp_path / "k8s" / "kind")
    assert p.color_label == "app.example.com/slot" and p.kube_service == ""
    assert parse(MINIMAL, "mini.toml").color_label == "version"  # the seed's, by default


@pytest.mark.parametrize("change, message, line", BAD, ids=[b[1][:40] for b in BAD])
def test_a_bad_profile_is_one_line_with_the_file_and_the_line(change, message, line):
    text = MINIMAL.replace(*change)
    assert text != MINIMAL
    with pytest.raises(ProfileError) as err:
        parse(text, "mini.toml")
    msg = str(err.value)
    assert "\n" not in msg and message in msg, msg
    where = re.match(r"mini\.toml(?::(\d+))?: ", msg)
    assert where, msg
    if line is not None:
        assert where.group(1), msg
        named = text.splitlines()[int(where.group(1)) - 1]
        assert named.lstrip().startswith(line), (msg, named)


def test_a_saved_value_nobody_saves_and_a_write_without_readback_are_refused():
    text = MINIMAL + '''
[[request]]
name = "get"
path = "/items/{item}"
values = { item = "saved item_id" }
'''
    with pytest.raises(ProfileError, match="'saved item_id' is saved by no request"):
        parse(text, "mini.toml")
    no_readback = re.sub(r"\[readback\].*?\n\n", "", MINIMAL, flags=re.S)
    with pytest.raises(ProfileError, match="is a write, but there is no \\[readback\\]"):
        parse(no_readback, "mini.toml")


def test_a_missing_profile_file_is_one_line(tmp_path):
    with pytest.raises(ProfileError, match=r"^profile .*nope\.toml: No such file or directory$"):
        profiles.load(tmp_path / "nope.toml")
