"""The verdicts where reviewers look, rendered: a proof's summary (JSON-safe, it travels from
an xdist worker to the controller), the closing block of lines for the terminal, the Markdown
summary for a CI job summary page, and the exit status that tells a weak run from a drop
(``INCONCLUSIVE``, 6, when every failed test is a proof judged INCONCLUSIVE).

Rendering only: the verdicts are decided by reports/verdict.py; the pytest hooks that collect
and print these are plugin/summary.py.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

PROPERTY_ATTR = "zerodrop_proof"  # the item/report attribute a proof's summary travels in
INCONCLUSIVE = 6          # only INCONCLUSIVE proofs failed: a weak run, retry it (not a drop)
MAX_REASONS = 8


def summary_of(proof: Any) -> dict[str, Any]:
    """What the closing block and the Markdown summary show of one proof (JSON-safe)."""
    v = proof.verdict.to_dict()
    return {
        "name": proof.name,
        "verdict": v["verdict"],
        "scenario_failure": "" if proof.scenario.ok else str(proof.scenario.failure),
        "requests_total": v["requests_total"],
        "requests_failed": v["requests_failed"],
        "failure_rate_upper": (v.get("bound_95") or {}).get("failure_rate_upper"),
        "reasons": list(v["reasons"]),
        "figures": list(v.get("figures") or []),
        "evidence": {k: str(p) for k, p in sorted(proof.evidence.items()) if p},
        "canary": canary_line(v.get("canary")),
    }


def canary_line(facts: dict[str, Any] | None) -> str:
    """A canary's course in one line: what became of it, through which stages ("" for a proof
    that was no canary)."""
    if not facts:
        return ""
    stages = facts.get("stages") or []
    seen = ", ".join(f"{s['weight']} % {s['outcome']}" for s in stages) or "no stage"
    line = f"{facts.get('outcome', '?')} after {seen}"
    if facts.get("t_fault_on") is not None and facts.get("t_detected") is not None:
        line += (f"; fault at {facts['t_fault_on']:.1f} s, detected at "
                 f"{facts['t_detected']:.1f} s")
    source = facts.get("prometheus")
    return line + (f"; judged from the ledger and Prometheus ({source})" if source else
                   "; judged from the ledger")


def exit_status(failed: dict[str, str], exitstatus: int) -> int:
    """INCONCLUSIVE when the run failed only through INCONCLUSIVE proofs; else unchanged."""
    if int(exitstatus) == 1 and failed and all(v == "INCONCLUSIVE" for v in failed.values()):
        return INCONCLUSIVE
    return int(exitstatus)


def _pct(rate: float | None) -> str:
    from zerodrop.reports.rules import pct_up  # the verdict's own rounding: up, an upper bound
    return "?" if rate is None else pct_up(rate)


def _count_line(p: dict[str, Any]) -> str:
    return f"{p['requests_total']:,} requests judged, {p['requests_failed']:,} failed"


def terminal_lines(proofs: list[dict[str, Any]]) -> list[str]:
    """One block per proof: the verdict, the counts, the reasons (causes first, as the verdict
    orders them), and where the evidence is."""
    out: list[str] = []
    for p in proofs:
        out.append(f"{p['name']}: {p['verdict']}  {_count_line(p)}")
        if p["scenario_failure"]:
            out.append(f"  scenario: {p['scenario_failure']}")
        if p.get("canary"):
            out.append(f"  canary: {p['canary']}")
        reasons = p["reasons"]
        out += [f"  - {r}" for r in reasons[:MAX_REASONS]]
        if len(reasons) > MAX_REASONS:
            out.append(f"  - ... {len(reasons) - MAX_REASONS} more in the evidence")
        out += [f"  figures: {f}" for f in p.get("figures", [])]
        ev = p["evidence"]
        if ev.get("html"):
            extra = ", ".join(f"{k} {Path(v).name}" for k, v in ev.items() if k != "html")
            out.append(f"  evidence: {ev['html']}" + (f" ({extra})" if extra else ""))
    return out


def markdown(proofs: list[dict[str, Any]], exitstatus: int) -> str:
    """The run's summary for a CI job summary page (GitHub's $GITHUB_STEP_SUMMARY)."""
    icon = {"PASS": "✅", "FAIL": "❌", "INCONCLUSIVE": "⚠️"}
    lines = [f"## zerodrop: {overall(exitstatus)}", ""]
    if not proofs:
        lines.append("No zero-downtime proof ran in this job.")
        return "\n".join(lines) + "\n"
    lines += ["| proof | verdict | requests | failed | failure rate, 95% upper bound | evidence |",
              "|---|---|---:|---:|---|---|"]
    for p in proofs:
        ev = p["evidence"].get("html", "")
        lines.append(f"| {p['name']} | {icon.get(p['verdict'], '')} {p['verdict']} | "
                     f"{p['requests_total']:,} | {p['requests_failed']:,} | "
                     f"< {_pct(p['failure_rate_upper'])} | {ev and '`' + ev + '`'} |")
    for p in proofs:
        lines += ["", f"### {p['name']}: {p['verdict']}", ""]
        if p["scenario_failure"]:
            lines.append(f"- scenario: {p['scenario_failure']}")
        if p.get("canary"):
            lines.append(f"- canary: {p['canary']}")
        lines += [f"- {r}" for r in p["reasons"]]
        lines += [f"- figures: {f}" for f in p.get("figures", [])]
    return "\n".join(lines) + "\n"


def overall(exitstatus: int) -> str:
    return {0: "PASS", 1: "FAIL", INCONCLUSIVE: "INCONCLUSIVE"}.get(int(exitstatus),
                                                                   f"exit {int(exitstatus)}")


def write_markdown(proofs: list[dict[str, Any]], exitstatus: int, out_dir: Path) -> list[Path]:
    """``summary.md`` and ``verdicts.json`` (the same, for tools: the Allure report's front
    page reads it) in ``out_dir``; the Markdown also appended to $GITHUB_STEP_SUMMARY when set."""
    import json
    text = markdown(proofs, exitstatus)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / "summary.md", out_dir / "verdicts.json"]
    written[0].write_text(text, encoding="utf-8")
    written[1].write_text(json.dumps({"outcome": overall(exitstatus), "exit": int(exitstatus),
                                      "proofs": proofs}, indent=2) + "\n", encoding="utf-8")
    step = os.environ.get("GITHUB_STEP_SUMMARY")
    if step:
        with open(step, "a", encoding="utf-8") as f:
            f.write(text)
        written.append(Path(step))
    return written
