"""The game-day report: JSON for CI, HTML for the person who runs the game day. Renders an
``ExperimentVerdict`` and what it was judged on; decides nothing.

The HTML shows the verdict and its reasons, the expectation against what happened check by
check, and a timeline of faults against impact: for each client population, the requests
answered and failed per second, with every fault window shaded and the method's steps marked.
"""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any, Iterable, Sequence

from zerodrop.records.events import STEP_START, Event, Source
from zerodrop.records.ledger import LedgerRecord
from zerodrop.reports.gameday import ExperimentVerdict, WindowStats

COLOURS = {"PASS": "#1a7f37", "FAIL": "#cf222e", "INCONCLUSIVE": "#9a6700", "ABORTED": "#8250df"}


def impact_by_population(records: Iterable[LedgerRecord], t0: float) -> dict[str, dict[str, list[int]]]:
    """Per population, requests answered (``ok``) and failed per whole second since ``t0``."""
    out: dict[str, dict[str, list[int]]] = {}
    for r in records:
        s = int(r.t_start - t0)
        if s < 0:
            continue
        row = out.setdefault(r.population or "-", {"ok": [], "failed": []})
        for key in ("ok", "failed"):
            if len(row[key]) <= s:
                row[key].extend([0] * (s + 1 - len(row[key])))
        row["ok" if r.outcome == "ok" else "failed"][s] += 1
    return out


def report_data(verdict: ExperimentVerdict, info: dict[str, Any], stats: dict[str, WindowStats],
                impact: dict[str, dict[str, list[int]]], faults: Sequence[dict[str, Any]],
                steps: Sequence[dict[str, Any]], t0: float) -> dict[str, Any]:
    """The JSON document: the verdict, the experiment, the windows, the timeline (relative s)."""
    return {**verdict.as_dict(), **info, "t0": t0,
            "windows": {k: w.as_dict() for k, w in stats.items()},
            "impact_by_population": impact, "faults": list(faults), "steps": list(steps)}


def write_gameday(data: dict[str, Any], out_dir: Path) -> dict[str, Path]:
    """``gameday-<name>.json`` and ``.html`` in ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    base = out_dir / f"gameday-{data['experiment']}"
    paths = {"json": base.with_suffix(".json"), "html": base.with_suffix(".html")}
    paths["json"].write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n",
                             encoding="utf-8")
    paths["html"].write_text(render_html(data), encoding="utf-8")
    return paths


def render_html(d: dict[str, Any]) -> str:
    e = html.escape
    colour = COLOURS.get(d["verdict"], "#57606a")
    rows = "".join(
        f"<tr><td>{e(c['name'])}</td><td>{_held(c['held'])}</td><td>{e(c['expected'])}</td>"
        f"<td>{e(c['observed'])}</td></tr>" for c in d["checks"])
    windows = "".join(
        f"<tr><td>{e(k)}</td><td>{w['total']}</td><td>{w['failed']}</td><td>{w['slow']}</td>"
        f"<td>{e(', '.join(f'{v} {n}' for v, n in sorted(w['by_version'].items())))}</td></tr>"
        for k, w in d["windows"].items())
    faults = "".join(f"<li>{e(f['name'])}: {_span(f)}</li>" for f in d["faults"]) \
        or "<li>none applied</li>"
    expected = "".join(f"<li>{e(x)}</li>" for x in d.get("expected", []))
    reasons = "".join(f"<li>{e(r)}</li>" for r in d["reasons"])
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>game day: {e(d['experiment'])}: {e(d['verdict'])}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; max-width: 70em; }}
.verdict {{ color: white; background: {colour}; padding: .2em .6em; border-radius: .3em; }}
table {{ border-collapse: collapse; margin: 1em 0; }}
td, th {{ border: 1px solid #d0d7de; padding: .3em .6em; text-align: left; vertical-align: top; }}
.held {{ color: #1a7f37; }} .broken {{ color: #cf222e; font-weight: bold; }} .unknown {{ color: #9a6700; }}
</style></head><body>
<h1>game day <code>{e(d['experiment'])}</code> <span class="verdict">{e(d['verdict'])}</span></h1>
<p>{e(d.get('title', ''))}. {e(d.get('why', ''))}</p>
<p>target: {e(str(d.get('target', '')))}; method: {e(str(d.get('method', '')))};
the switch: <b>{e(d['switch'])}</b>; steady state: {e(d.get('hypothesis', ''))}</p>
<h2>Reasons</h2><ul>{reasons}</ul>
<h2>Expected</h2><ul>{expected}</ul>
<h2>What held and what did not</h2>
<table><tr><th>check</th><th></th><th>expected</th><th>observed</th></tr>{rows}</table>
<h2>Faults against impact</h2>
{timeline_svg(d)}
<ul>{faults}</ul>
<h2>Windows</h2>
<table><tr><th>window</th><th>requests</th><th>failed</th><th>slow</th><th>answered by</th></tr>{windows}</table>
<p>The ordinary verdict of every request and its timeline: {e(str(d.get('evidence', '')))}</p>
</body></html>
"""


def _span(f: dict[str, Any]) -> str:
    if f["t_end"] is None:
        return f"from {f['t_start']:.1f} s, never removed"
    if f["t_end"] == f["t_start"]:
        return f"at {f['t_start']:.1f} s"
    return f"{f['t_start']:.1f} s to {f['t_end']:.1f} s"


def _held(held: bool | None) -> str:
    return ('<span class="held">held</span>' if held else
            '<span class="unknown">not measured</span>' if held is None else
            '<span class="broken">did not hold</span>')


def timeline_svg(d: dict[str, Any], width: int = 900, row_h: int = 70) -> str:
    """Per population, answered (grey) and failed (red) requests per second; fault windows
    shaded; the method's steps as ticks."""
    impact = d["impact_by_population"]
    seconds = max([len(r["ok"]) for r in impact.values()] + [1])
    left, scale = 90, (width - 100) / seconds
    rows = sorted(impact)
    height = 30 + row_h * max(1, len(rows))
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="11">']
    for f in d["faults"]:
        x0 = left + f["t_start"] * scale
        x1 = left + (f["t_end"] if f["t_end"] is not None else seconds) * scale
        parts.append(f'<rect x="{x0:.1f}" y="0" width="{max(2.0, x1 - x0):.1f}" height="{height}" '
                     f'fill="#fff1e5" stroke="#fb8f44"><title>{html.escape(f["name"])}</title></rect>')
    for s in d["steps"]:
        x = left + s["t"] * scale
        parts.append(f'<line x1="{x:.1f}" y1="0" x2="{x:.1f}" y2="{height}" stroke="#8c959f" '
                     f'stroke-dasharray="2,3"><title>{html.escape(s["name"])}</title></line>')
    for i, pop in enumerate(rows):
        top = 10 + i * row_h
        ok, failed = impact[pop]["ok"], impact[pop]["failed"]
        peak = max([a + b for a, b in zip(ok, failed)] + [1])
        parts.append(f'<text x="4" y="{top + row_h / 2:.0f}">{html.escape(pop)}</text>')
        for sec, (a, b) in enumerate(zip(ok, failed)):
            x = left + sec * scale
            h_ok, h_f = (row_h - 14) * a / peak, (row_h - 14) * b / peak
            base = top + row_h - 10
            parts.append(f'<rect x="{x:.1f}" y="{base - h_ok:.1f}" width="{max(1.0, scale - 1):.1f}" '
                         f'height="{h_ok:.1f}" fill="#8c959f"/>')
            if b:
                parts.append(f'<rect x="{x:.1f}" y="{base - h_ok - h_f:.1f}" '
                             f'width="{max(1.0, scale - 1):.1f}" height="{max(1.0, h_f):.1f}" '
                             f'fill="#cf222e"><title>{b} failed at {sec} s</title></rect>')
    parts.append(f'<text x="{left}" y="{height - 2}">0 s</text>'
                 f'<text x="{width - 40}" y="{height - 2}">{seconds} s</text></svg>')
    return "".join(parts)


def steps_of(timeline: Sequence[Event], t0: float) -> list[dict[str, Any]]:
    """The scenario's step starts, relative to ``t0``."""
    return [{"t": round(ev.t - t0, 3), "name": ev.name} for ev in timeline
            if ev.source == Source.SCENARIO and ev.detail.get("step") == STEP_START]


__all__ = ["impact_by_population", "report_data", "write_gameday", "render_html",
           "timeline_svg", "steps_of"]
