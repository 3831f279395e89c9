"""Evidence renders the verdict: the JSON shape, no secrets, a readable HTML page, a real PNG."""
from __future__ import annotations

import base64
import json
import struct

from zerodrop.records.events import Event
from zerodrop.reports.evidence import REDACTED, redact, write_evidence
from zerodrop.reports.verdict import judge

from .builders import T0, clean, cutover, good_data, good_load, timeline, with_failures

SECRET_EVENTS = [
    Event(T0 + 1, "platform", "deployed",
          {"color": "green", "token": "tok-123", "Authorization": "Bearer abc.def",
           "db": "postgresql://app:hunter2@db:5432/pay", "nested": {"kubeconfig": "/home/k"},
           "admin_password": "pw-1-qq", "client_secret": "sec-3-qq"}),
    Event(T0 + 2, "scenario", "called the api", {"header": "Authorization: Bearer xyz789"}),
]
SECRETS = ("tok-123", "abc.def", "hunter2", "/home/k", "pw-1-qq", "sec-3-qq", "xyz789")


def failing_verdict():
    recs = with_failures(clean(), lambda i, r: 1210 <= i < 1240, outcome="reset", status=0)
    return judge(recs, timeline() + SECRET_EVENTS, cutover(), good_data(), good_load(),
                 scenario="switch")


def test_json_has_the_verdict_shape_plus_the_timeline(tmp_path):
    v = failing_verdict()
    ledger = tmp_path / "load" / "ledger.jsonl"
    ledger.parent.mkdir()
    ledger.write_text('{"t_start": 1}\n')
    paths = write_evidence(v, timeline(), tmp_path / "out", "switch", ledger)
    assert paths.json == tmp_path / "out" / "switch.json"
    doc = json.loads(paths.json.read_text())
    assert set(doc) == {"verdict", "reasons", "figures", "requests_total", "requests_failed",
                        "failures_by_outcome", "served_by_version", "switch", "latency_ms",
                        "integrity", "load", "bound_95", "failure_classes", "faults", "scenario",
                        "timeline", "run", "ledger", "ledger_file"}
    assert {k: doc[k] for k in v.to_dict()} == json.loads(json.dumps(v.to_dict()))
    assert doc["verdict"] == "FAIL" and doc["requests_failed"] == 30
    assert [e["name"] for e in doc["timeline"]][:2] == ["load started", "deploy green"]
    assert set(doc["timeline"][0]) == {"t", "source", "name", "detail"}


def test_no_secret_reaches_any_file(tmp_path):
    v = failing_verdict()
    paths = write_evidence(v, timeline() + SECRET_EVENTS, tmp_path, "switch")
    for path in (paths.json, paths.html):
        text = path.read_text()
        for secret in SECRETS:
            assert secret not in text, f"{secret!r} leaked into {path.name}"
        assert REDACTED in text or "[redacted]" in text.replace("&#x27;", "'")
    doc = json.loads(paths.json.read_text())
    detail = next(e["detail"] for e in doc["timeline"] if e["name"] == "deployed")
    assert detail["token"] == detail["Authorization"] == REDACTED
    assert detail["nested"]["kubeconfig"] == REDACTED
    assert detail["color"] == "green"
    assert detail["db"] == "postgresql://[redacted]@db:5432/pay"


def test_redaction_keeps_harmless_values():
    assert redact({"replicas": 2, "ok": True, "x": None, "list": ["a", {"secret": 1}]}) == \
        {"replicas": 2, "ok": True, "x": None, "list": ["a", {"secret": REDACTED}]}


def test_data_check_error_text_is_scrubbed_too(tmp_path):
    from zerodrop.records.results import DataCheck
    v = judge(clean(), timeline(), cutover(),
              DataCheck(0, error="cannot connect to postgresql://u:topsecret@h/db"),
              good_load())
    paths = write_evidence(v, timeline(), tmp_path, "switch")
    assert "topsecret" not in paths.json.read_text()
    assert "topsecret" not in paths.html.read_text()


def test_html_shows_the_verdict_reasons_tables_and_the_embedded_chart(tmp_path):
    v = failing_verdict()
    paths = write_evidence(v, timeline(), tmp_path, "switch under load")
    assert paths.html.name == "switch_under_load.html"
    page = paths.html.read_text()
    assert ">FAIL</div>" in page
    assert "30 connection resets from 0 ms to 0.3 s after &#x27;replica terminating&#x27;" in page
    for heading in ("Dropped requests", "Served by version", "Latency of ok requests",
                    "Data integrity", "Load", "Events", "Switch"):
        assert f"<h2>{heading}</h2>" in page
    assert "selector patched" in page and "scale down blue" in page
    b64 = page.split('src="data:image/png;base64,', 1)[1].split('"', 1)[0]
    assert base64.b64decode(b64) == paths.png.read_bytes()


def test_png_is_a_valid_png_of_a_readable_size(tmp_path):
    paths = write_evidence(failing_verdict(), timeline(), tmp_path, "switch")
    data = paths.png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 1000 and height >= 600


def test_an_empty_ledger_still_renders(tmp_path):
    v = judge(iter(()), [], cutover(), good_data(), good_load())
    paths = write_evidence(v, [], tmp_path, "empty")
    assert paths.png.read_bytes()[:4] == b"\x89PNG"
    page = paths.html.read_text()
    assert ">INCONCLUSIVE</div>" in page and "the ledger holds no request" in page
    assert json.loads(paths.json.read_text())["latency_ms"]["during"] == {"p50": None,
                                                                         "p99": None}


def test_evidence_paths_read_like_a_dict(tmp_path):
    paths = write_evidence(failing_verdict(), timeline(), tmp_path, "switch")
    assert paths["html"] == paths.get("html") == paths.html
    assert dict(paths.items()) == {"json": paths.json, "html": paths.html, "png": paths.png}
    assert paths.get("nope", "") == ""


def test_the_chart_lines_come_from_the_catalogue_and_the_step_markers():
    from zerodrop.records.events import EventName, describe
    from zerodrop.reports.evidence import _chart_events, _event_key
    events = [
        Event(T0 + 1, "scenario", "scale down blue", {"step": "start", "color": "blue"}),
        Event(T0 + 2, "scenario", "scale down blue done", {"step": "done"}),
        Event(T0 + 3, "scenario", "verify green failed", {"step": "failed", "error": "x"}),
        Event(T0 + 4, "platform", EventName.SELECTOR_PATCHED.value, {"selector": "green"}),
        Event(T0 + 5, "platform", EventName.REPLICA_READY.value, {"replica": "g-0"}),
        Event(T0 + 6, "fault", EventName.REPLICA_KILLED.value, {"replica": "b-0", "signal": 9}),
        Event(T0 + 7, "load", EventName.LOAD_STOPPING.value, {}),
    ]
    charted = [e.name for e in _chart_events(events)]
    assert charted == ["scale down blue", "verify green failed", "selector patched",
                       "replica killed"]
    # the key reads like the verdict's reasons, secrets redacted
    assert _event_key(events[5]) == describe(events[5]) == "'replica killed' (replica b-0, signal 9)"
    leaky = Event(T0, "platform", "selector patched", {"selector": "Bearer abc123"})
    assert "abc123" not in _event_key(leaky)


def test_faults_on_purpose_are_shown(tmp_path):
    from zerodrop.records.results import FaultWindow, ScenarioFacts
    facts = ScenarioFacts(cutovers=(cutover(),),
                          faults=(FaultWindow("latency_ms=300", T0 + 11.0, None, "blue"),))
    v = judge(clean(), timeline(), facts, good_data(), good_load())
    paths = write_evidence(v, timeline(), tmp_path, "switch")
    assert json.loads(paths.json.read_text())["faults"] == [
        {"name": "latency_ms=300", "t_start": T0 + 11.0, "t_end": None, "target": "blue"}]
    page = paths.html.read_text()
    assert "<h2>Faults</h2>" in page and "latency_ms=300" in page
