"""Evidence of one switch: ``<scenario>.json``, ``<scenario>.html`` and ``<scenario>.png``.

Renders a Verdict; never decides anything and never re-reads the ledger (the per-second series
came out of the verdict's single pass). Secrets never reach a file: keys named like a token,
password, secret, authorization or kubeconfig are redacted wherever they appear, and so are
bearer tokens and passwords inside URLs in any string.
"""
from __future__ import annotations

import base64
import html
import json
import math
import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Sequence

from zerodrop.records.events import STEP_FAILED, Event, EventName, Source, describe
from zerodrop.reports.verdict import FAIL, INCONCLUSIVE, PASS, PHASES, Verdict

REDACTED = "[redacted]"
SECRET_KEY = re.compile(r"token|authori[sz]ation|passw(or)?d|secret|kubeconfig|api[_-]?key|cookie",
                        re.IGNORECASE)
_BEARER = re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]+")
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s:@]+:[^/\s@]+@")

# Which platform events get a vertical line on the chart (the others are in the HTML table).
CHART_PLATFORM_EVENTS = frozenset({EventName.SELECTOR_PATCHED, EventName.REPLICA_TERMINATING,
                                   EventName.REPLICA_KILLED})
_MAX_TIMELINE_ROWS = 2000
_COLOURS = {PASS: "#1a7f37", FAIL: "#cf222e", INCONCLUSIVE: "#9a6700"}
_VERSION_COLOURS = ["#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"]


@dataclass(frozen=True)
class EvidencePaths:
    """The files written; also readable like a dict (``paths["html"]``, ``paths.get("png")``)."""

    json: Path
    html: Path
    png: Path | None  # None when matplotlib is not installed (the HTML says so)

    def as_dict(self) -> dict[str, Path]:
        return {k: v for k, v in (("json", self.json), ("html", self.html), ("png", self.png))
                if v is not None}

    def __getitem__(self, key: str) -> Path:
        return self.as_dict()[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.as_dict().get(key, default)

    def keys(self):  # noqa: ANN201 - dict protocol
        return self.as_dict().keys()

    def items(self):  # noqa: ANN201
        return self.as_dict().items()


# --------------------------------------------------------------------------------------------
# Redaction
# --------------------------------------------------------------------------------------------

def redact(obj: Any) -> Any:
    """A copy of ``obj`` (dicts, lists, strings, scalars) with secrets replaced."""
    if isinstance(obj, dict):
        return {k: (REDACTED if isinstance(k, str) and SECRET_KEY.search(k) else redact(v))
                for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [redact(v) for v in obj]
    if isinstance(obj, str):
        return redact_text(obj)
    if obj is None or isinstance(obj, (bool, int, float)):
        return obj
    return redact_text(str(obj))


def redact_text(text: str) -> str:
    text = _BEARER.sub(lambda m: f"{m.group(1)} {REDACTED}", text)
    return _URL_USERINFO.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)


def event_dict(event: Event) -> dict[str, Any]:
    return redact(event.as_dict())


# --------------------------------------------------------------------------------------------
# The three files
# --------------------------------------------------------------------------------------------

def evidence_document(verdict: Verdict, timeline: Sequence[Event],
                      ledger_path: Path | None = None) -> dict[str, Any]:
    """What ``<scenario>.json`` holds: the verdict's shape plus the timeline (redacted)."""
    doc = redact(verdict.to_dict())
    doc["timeline"] = [event_dict(e) for e in sorted(timeline, key=lambda e: e.t)]
    if ledger_path is not None:
        doc["ledger"] = str(ledger_path)
    return doc


def write_evidence(verdict: Verdict, timeline: Sequence[Event], out_dir: Path, scenario: str,
                   ledger_path: Path | None = None) -> EvidencePaths:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    name = _safe_name(scenario)
    json_path = out_dir / f"{name}.json"
    html_path = out_dir / f"{name}.html"
    png_path: Path | None = out_dir / f"{name}.png"

    doc = evidence_document(verdict, timeline, ledger_path)
    json_path.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")

    png_note = ""
    try:
        png_bytes = render_png(verdict, timeline, title=scenario)
    except ImportError as exc:  # matplotlib missing: the JSON and HTML still carry everything
        png_bytes, png_path = None, None
        png_note = f"no chart: matplotlib could not be imported ({exc})"
    if png_path is not None and png_bytes is not None:
        png_path.write_bytes(png_bytes)

    html_path.write_text(render_html(verdict, timeline, scenario, png_bytes, ledger_path,
                                     png_note),
                         encoding="utf-8")
    return EvidencePaths(json_path, html_path, png_path)


def _safe_name(scenario: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", scenario).strip("._") or "scenario"
    return name[:120]


# --------------------------------------------------------------------------------------------
# PNG
# --------------------------------------------------------------------------------------------

def _chart_events(timeline: Sequence[Event], t_lo: float = -math.inf,
                  t_hi: float = math.inf) -> list[Event]:
    """Events worth a line: what the scenario started or saw fail (not each step's "done"),
    faults, and the platform's key moves, within the span the chart shows. The HTML lists
    them all."""
    return [e for e in sorted(timeline, key=lambda e: e.t)
            if t_lo <= e.t <= t_hi and (
                e.is_step_start or _is_step_failure(e)
                or e.source == Source.FAULT
                or (e.source == Source.PLATFORM and e.name in CHART_PLATFORM_EVENTS))]


def _is_step_failure(e: Event) -> bool:
    return e.source == Source.SCENARIO and e.detail.get("step") == STEP_FAILED


def _event_colour(e: Event) -> str:
    return {Source.FAULT: "#cf222e", Source.SCENARIO: "#24292f"}.get(e.source, "#8250df")


def _event_key(e: Event) -> str:
    """The chart key's words for an event: ``describe`` (as in the reasons), secrets redacted."""
    detail = e.detail if isinstance(e.detail, dict) else {}
    return describe(replace(e, detail=redact(detail)))


def render_png(verdict: Verdict, timeline: Sequence[Event], title: str = "") -> bytes:
    """The switch on one chart: ok requests per second stacked by version, failures in red on
    top, p99 latency on a second axis, a labelled line per event of interest. Seconds are
    relative to the first request."""
    import io
    import warnings

    import matplotlib
    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    from matplotlib.patches import Patch

    s = verdict.series
    t0 = s.t0 if s is not None and s.t0 is not None else None
    if t0 is not None and s is not None and s.seconds:
        # the chart spans the requests (one second either side); earlier set-up is off it
        chart_events = _chart_events(timeline, min(s.seconds) - 1, max(s.seconds) + 2)
    else:
        chart_events = []
    key_cols = 1 if len(chart_events) <= 6 else 2
    key_rows = math.ceil(len(chart_events) / key_cols)
    fig = Figure(figsize=(13, 6.5 + 0.16 * key_rows), dpi=100)
    grid = fig.add_gridspec(2, 1, height_ratios=[6.0, 0.25 + 0.16 * key_rows])
    ax = fig.add_subplot(grid[0])
    kax = fig.add_subplot(grid[1])
    kax.axis("off")
    ax2 = ax.twinx()
    handles = []
    if s is not None and s.seconds and t0 is not None:
        x = [sec + 0.5 - t0 for sec in s.seconds]
        bottom = [0] * len(x)
        for i, (version, counts) in enumerate(s.ok_by_version.items()):
            h = ax.bar(x, counts, width=1.0, bottom=bottom, align="center", linewidth=0,
                       color=_VERSION_COLOURS[i % len(_VERSION_COLOURS)], zorder=2,
                       label=f"ok, version {version}")
            handles.append(h)
            bottom = [b + c for b, c in zip(bottom, counts)]
        if any(s.failed):
            h = ax.bar(x, s.failed, width=1.0, bottom=bottom, align="center", linewidth=0,
                       color="#d62728", zorder=2, label="failed")
            handles.append(h)
            fx = [xi for xi, f in zip(x, s.failed) if f]
            fy = [b + f for b, f in zip(bottom, s.failed) if f]
            ax.scatter(fx, fy, marker="v", color="#d62728", s=18, zorder=5)
        px = [xi for xi, p in zip(x, s.p99_ms) if p is not None]
        py = [p for p in s.p99_ms if p is not None]
        if py:
            (line,) = ax2.plot(px, py, color="black", linewidth=1.2, label="p99 latency (ms)")
            handles.append(line)
            ax2.set_ylim(0, max(py) * 1.15 or 1.0)
        ax.set_xlim(min(x) - 1, max(x) + 1)
        ymax = max((b + f for b, f in zip(bottom, s.failed)), default=1) or 1
        ax.set_ylim(0, ymax * 1.3)

        sw = verdict.switch
        if sw.get("t_switch") is not None and sw.get("t_last_old") is not None:
            ax.axvspan(sw["t_switch"] - t0, sw["t_last_old"] - t0, color="#f2cc60", alpha=0.35,
                       linewidth=0, zorder=0)
            handles.append(Patch(color="#f2cc60", alpha=0.35,
                                 label="old version still answering after the switch"))
        # numbered lines, the key under the chart: close events never print over each other
        last_x, row = None, 0
        for k, e in enumerate(chart_events, start=1):
            ex = e.t - t0
            colour = _event_colour(e)
            ax.axvline(ex, color=colour, linestyle="--", linewidth=0.9, zorder=3)
            span = ax.get_xlim()[1] - ax.get_xlim()[0]
            row = row + 1 if last_x is not None and ex - last_x < span * 0.025 else 0
            last_x = ex
            ax.text(ex, 0.97 - 0.06 * (row % 4), str(k), ha="center", va="top", fontsize=8,
                    color="white", fontweight="bold", transform=ax.get_xaxis_transform(),
                    zorder=6, bbox={"boxstyle": "circle,pad=0.25", "fc": colour, "ec": "none"})
        if chart_events:
            key = [f"{k}  {e.t - t0:+.2f} s  {e.source}: {_event_key(e)}"
                   for k, e in enumerate(chart_events, start=1)]
            width = 150 // key_cols
            key = [k if len(k) <= width else k[:width - 1] + "~" for k in key]
            per_col = math.ceil(len(key) / key_cols)
            for col in range(key_cols):
                chunk = key[col * per_col:(col + 1) * per_col]
                kax.text(col / key_cols, 1.0, "\n".join(chunk), va="top", ha="left",
                         fontsize=8, family="monospace", transform=kax.transAxes)
    else:
        ax.text(0.5, 0.5, "no requests in the ledger", ha="center", va="center",
                transform=ax.transAxes, fontsize=14)

    ax.set_xlabel("seconds since the first request")
    ax.set_ylabel("requests per second")
    ax2.set_ylabel("p99 latency of ok requests (ms)")
    fig.suptitle(f"{title}: {verdict.verdict}" if title else verdict.verdict,
                 color=_COLOURS.get(verdict.verdict, "black"), fontsize=13, fontweight="bold")
    if handles:
        ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=6,
                  fontsize=8, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    with warnings.catch_warnings():  # a long event key cannot always fit; the chart still can
        warnings.simplefilter("ignore", UserWarning)
        fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


# --------------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------------

def _e(x: Any) -> str:
    return html.escape("" if x is None else str(x))


def _num(x: Any, unit: str = "", nd: int = 1) -> str:
    if x is None:
        return "<span class=none>no data</span>"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, int):
        return f"{x:,}{unit}"
    if isinstance(x, float):
        return f"{x:,.{nd}f}{unit}"
    return _e(x)


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], empty: str = "none") -> str:
    if not rows:
        return f"<p class=none>{_e(empty)}</p>"
    th = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _pct(rate: float | None) -> str:
    if rate is None:
        return "<span class=none>no data</span>"
    return f"{rate * 100:.4g}%"


def render_html(verdict: Verdict, timeline: Sequence[Event], scenario: str,
                png: bytes | None, ledger_path: Path | None = None,
                png_note: str = "") -> str:
    d = redact(verdict.to_dict())
    t0 = verdict.series.t0 if verdict.series is not None else None
    colour = _COLOURS.get(verdict.verdict, "#57606a")

    def rel(t: float | None) -> str:
        if t is None:
            return "<span class=none>none</span>"
        return f"{t - t0:+.3f} s" if t0 is not None else f"{t:.3f}"

    reasons = "".join(f"<li>{_e(r)}</li>" for r in d["reasons"])
    classes = _table(
        ["outcome", "status", "count", "first (s)", "last (s)", "after event", "first after (s)"],
        [[_e(c["outcome"]), _e(c["status"] or "-"), _num(c["count"]), rel(c["first_t"]),
          rel(c["last_t"]), _e(c["after_event"] or "(before any event)"),
          _num(c["after_s"], nd=3)] for c in d["failure_classes"]],
        empty="no dropped request")
    total = d["requests_total"] or 0
    served = _table(
        ["version", "answers", "share"],
        [[_e(v), _num(n), f"{n / total:.1%}" if total else "-"]
         for v, n in d["served_by_version"].items()], empty="no answer")
    outcomes = _table(["outcome", "count"],
                      [[_e(k), _num(v)] for k, v in d["failures_by_outcome"].items()],
                      empty="no failed request")
    lat = _table(["phase", "p50 (ms)", "p99 (ms)"],
                 [[p, _num(d["latency_ms"][p]["p50"], nd=2), _num(d["latency_ms"][p]["p99"], nd=2)]
                  for p in PHASES])
    sw = d["switch"]
    switch = _table(["t_switch", "first new answer", "last old answer", "old served after switch"],
                    [[rel(sw["t_switch"]), rel(sw["t_first_new"]), rel(sw["t_last_old"]),
                      _num(sw["window_s"], " s", 3)]])
    faults = _table(["fault", "target", "from", "to"],
                    [[_e(f["name"]), _e(f["target"] or "-"), rel(f["t_start"]), rel(f["t_end"])]
                     for f in d.get("faults", [])], empty="no fault applied on purpose")
    integ = _table(list(d["integrity"]), [[_num(v) for v in d["integrity"].values()]])
    ld = d["load"]
    load = _table(["target req/s", "achieved req/s", "schedule kept", "late starts",
                   "skipped at the cap", "most in flight"],
                  [[_num(ld["target_rps"]), _num(ld["achieved_rps"]),
                    "no (" + _e(ld.get("shortfall") or "cpu") + ")" if ld["saturated"] else "yes",
                    _num(ld.get("late", 0)), _num(ld.get("missed_cap", 0)), _num(ld.get("max_inflight", 0))]])
    pops = _table(["population", "requests", "failed", "by outcome", "failed, then recovered by a retry"],
                  [[_e(name), _num(p["requests"]), _num(p["failed"]),
                    _e(", ".join(f"{o} {n:,}" for o, n in p["by_outcome"].items()) or "-"),
                    _num(p["recovered"]) if name == "retry" else "-"]
                   for name, p in d.get("populations", {}).items()], empty="no populations recorded")
    events = sorted(timeline, key=lambda e: e.t)
    shown = events[:_MAX_TIMELINE_ROWS]
    ev_rows = [[rel(e.t), _e(e.source), _e(e.name),
                f"<code>{_e(json.dumps(redact(e.detail), default=str, sort_keys=True))}</code>"]
               for e in shown]
    ev_table = _table(["t (s)", "source", "event", "detail"], ev_rows, empty="no event")
    if len(events) > len(shown):
        ev_table += f"<p class=none>{len(events) - len(shown):,} more events in the JSON</p>"
    chart = (f'<img alt="requests per second by version, failures and p99 latency" '
             f'src="data:image/png;base64,{base64.b64encode(png).decode("ascii")}">'
             if png else f"<p class=none>{_e(png_note or 'no chart')}</p>")
    ledger = f"<p>Ledger: <code>{_e(redact_text(str(ledger_path)))}</code></p>" if ledger_path else ""
    times = ("Times are seconds relative to the first request"
             + (f" (t0 = {t0:.6f}, time.time() clock)." if t0 is not None else "."))

    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{_e(scenario)}: {_e(d['verdict'])}</title>
<style>
body {{ font: 15px/1.45 system-ui, -apple-system, Segoe UI, sans-serif; margin: 2em auto;
       max-width: 1200px; color: #1f2328; padding: 0 1em; }}
.verdict {{ font-size: 2.6em; font-weight: 800; color: #fff; background: {colour};
           padding: .25em .6em; border-radius: 8px; display: inline-block; }}
h1 {{ margin-bottom: .2em; }} h2 {{ border-bottom: 1px solid #d0d7de; padding-bottom: .2em; }}
table {{ border-collapse: collapse; margin: .5em 0 1em; }}
th, td {{ border: 1px solid #d0d7de; padding: .3em .7em; text-align: left; vertical-align: top; }}
th {{ background: #f6f8fa; }} td code {{ font-size: .85em; }}
.none {{ color: #6e7781; font-style: italic; }}
.reasons li {{ margin: .3em 0; }} img {{ max-width: 100%; border: 1px solid #d0d7de; }}
.grid {{ display: flex; flex-wrap: wrap; gap: 0 2.5em; }}
</style></head><body>
<h1>{_e(scenario)}</h1>
<div class="verdict">{_e(d['verdict'])}</div>
<h2>Why</h2>
<ul class="reasons">{reasons}</ul>
<p>{_num(d['requests_total'])} requests, {_num(d['requests_failed'])} failed.
Upper bound on the failure rate (95% confidence): <b>{_pct(d['bound_95']['failure_rate_upper'])}</b>.</p>
<h2>Timeline</h2>
{chart}
<h2>Dropped requests</h2>
{classes}
<div class="grid">
<div><h2>Failures by outcome</h2>{outcomes}</div>
<div><h2>Served by version</h2>{served}</div>
<div><h2>Latency of ok requests</h2>{lat}</div>
</div>
<h2>Switch</h2>
{switch}
<h2>Faults</h2>
{faults}
<div class="grid">
<div><h2>Data integrity</h2>{integ}</div>
<div><h2>Load</h2>{load}</div>
</div>
<h2>Client populations</h2>
{pops}
<h2>Events</h2>
<p>{_e(times)}</p>
{ev_table}
{ledger}
</body></html>
"""
