"""Evidence for Allure: attachments on the current test, environment.properties, categories.json.

The categories match the wording of the verdict's reasons (reports/rules.py): a failing
zero-downtime test asserts with ``verdict.summary()``, and Allure files it under the first
category whose ``messageRegex`` matches. The patterns use ``[\\s\\S]*`` rather than ``.*`` so
they mean the same to Allure 2 (Java, whole-message match) and Allure 3 (JavaScript search) on a
multi-line message.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from zerodrop.reports.evidence import SECRET_KEY, REDACTED, EvidencePaths, redact_text

DEFAULT_LEDGER_CAP = 20 * 2**20  # bytes of ledger attached; the rest stays in the file

_ANY = r"[\s\S]*"
DROPPED_RE = (_ANY + r"\b\d[\d,]* (?:connection resets?|connections? refused|timeouts?|keep-alive races?|"
              r"bad or incomplete bod(?:y|ies)|HTTP (?:\d{3}|error) answers?|"
              r"requests? with outcome '[^']*') (?:at|from) " + _ANY)
DATA_LOSS_RE = _ANY + r"\bdata loss: " + _ANY
CUTOVER_RE = _ANY + r"\b(?:cutover|unknown version): " + _ANY
LATENCY_RE = _ANY + r"\blatency regression: " + _ANY
SHUTDOWN_RE = _ANY + r"\bshutdown: " + _ANY
INCONCLUSIVE_RE = _ANY + r"\binconclusive: " + _ANY
DEPLOY_RE = _ANY + r"\bdeploy command: " + _ANY

# Order matters: Allure files a test under the first category that matches, and a FAIL can
# carry inconclusive reasons too (failures under short load), so "Inconclusive load" is last.
CATEGORIES: list[dict[str, Any]] = [
    {"name": "Data loss", "matchedStatuses": ["failed", "broken"], "messageRegex": DATA_LOSS_RE},
    {"name": "Dropped requests", "matchedStatuses": ["failed", "broken"],
     "messageRegex": DROPPED_RE},
    {"name": "Cutover not seen", "matchedStatuses": ["failed", "broken"],
     "messageRegex": CUTOVER_RE},
    {"name": "Latency regression", "matchedStatuses": ["failed", "broken"],
     "messageRegex": LATENCY_RE},
    {"name": "Shutdown without drain", "matchedStatuses": ["failed", "broken"],
     "messageRegex": SHUTDOWN_RE},
    {"name": "Deploy command failed", "matchedStatuses": ["failed", "broken"],
     "messageRegex": DEPLOY_RE},
    {"name": "Inconclusive load", "matchedStatuses": ["failed", "broken", "skipped"],
     "messageRegex": INCONCLUSIVE_RE},
]


def write_categories(results_dir: Path) -> Path:
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / "categories.json"
    path.write_text(json.dumps(CATEGORIES, indent=2) + "\n", encoding="utf-8")
    return path


def _prop_escape(text: str, key: bool = False) -> str:
    out = text.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    out = out.replace("\t", "\\t")
    if key:
        out = out.replace("=", "\\=").replace(":", "\\:").replace(" ", "\\ ")
    return out


def write_environment(results_dir: Path, props: Mapping[str, Any]) -> Path:
    """environment.properties for the report's Environment widget; secrets are redacted by
    key name (token, password, secret, authorization, kubeconfig, ...) and inside values
    (bearer tokens, passwords in URLs)."""
    results_dir = Path(results_dir)
    results_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    for k in sorted(props):
        v = props[k]
        value = REDACTED if SECRET_KEY.search(str(k)) else redact_text("" if v is None else str(v))
        lines.append(f"{_prop_escape(str(k), key=True)}={_prop_escape(value)}")
    path = results_dir / "environment.properties"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def attach_evidence(paths: EvidencePaths | Mapping[str, Path], ledger_path: Path | None = None,
                    *, max_ledger_bytes: int = DEFAULT_LEDGER_CAP) -> None:
    """Attach the verdict JSON, the HTML page, the PNG chart and the ledger to the running
    Allure test (a no-op when allure-pytest is not collecting results). ``paths`` is what
    write_evidence returned, or a dict with the keys json, html, png."""
    import allure  # lazily: evidence must render without Allure installed

    kinds = (("json", "verdict.json", allure.attachment_type.JSON),
             ("html", "switch report (html)", allure.attachment_type.HTML),
             ("png", "switch timeline (png)", allure.attachment_type.PNG))
    for key, name, kind in kinds:
        path = paths.get(key)
        if path is not None and Path(path).exists():
            allure.attach.file(str(path), name=name, attachment_type=kind)
    if ledger_path is not None and Path(ledger_path).exists():
        attach_ledger(Path(ledger_path), max_bytes=max_ledger_bytes)


def attach_proof(proof: Any, *, max_ledger_bytes: int = DEFAULT_LEDGER_CAP) -> None:
    """Attach a scenarios.proof.Proof: its explanation as text, its evidence files and its
    ledger (``proof.load.ledger_path``). Duck-typed so this module imports nothing of scenarios/."""
    import allure

    explain = getattr(proof, "explain", None)
    if callable(explain):
        allure.attach(explain(), name="verdict", attachment_type=allure.attachment_type.TEXT)
    load = getattr(proof, "load", None)
    attach_evidence(proof.evidence, getattr(load, "ledger_path", None),
                    max_ledger_bytes=max_ledger_bytes)


def attach_ledger(ledger_path: Path, *, max_bytes: int = DEFAULT_LEDGER_CAP) -> None:
    import allure

    size = ledger_path.stat().st_size
    if size <= max_bytes:
        allure.attach.file(str(ledger_path), name="ledger.jsonl",
                           attachment_type=allure.attachment_type.TEXT, extension="jsonl")
        return
    with ledger_path.open("rb") as f:
        head = f.read(max_bytes)
    cut = head.rfind(b"\n")
    head = head[:cut + 1] if cut >= 0 else b""
    lines = head.count(b"\n")
    note = (f"# truncated: the first {len(head):,} of {size:,} bytes ({lines:,} lines); "
            f"the whole ledger is {ledger_path}\n").encode()
    allure.attach(note + head, name=f"ledger.jsonl (first {len(head) // 2**20} MB)",
                  attachment_type=allure.attachment_type.TEXT, extension="jsonl")
