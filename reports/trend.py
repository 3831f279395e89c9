"""The trend page of a nightly history: every stored run side by side, as HTML and a PNG.

Renders and never decides: each run's p50/p99 and error rate come from its ledger summary,
and whether it was a regression from the comparison stored beside it (reports/history.py).
The PNG is drawn with matplotlib (the Agg backend, no pyplot), like the switch's timeline.
"""
from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from zerodrop.reports.history import NO_HISTORY, Run

TREND_HTML, TREND_PNG = "trend.html", "trend.png"


@dataclass(frozen=True)
class TrendRow:
    """One run as the trend shows it."""

    name: str
    date: str
    verdict: str
    requests: int
    failed: int
    p50: float | None
    p95: float | None
    p99: float | None
    comparison: str             # PASS, MARGINAL, FAIL, NO_DATA, NO_HISTORY or "" (not compared)
    regressions: tuple[str, ...]
    notes: tuple[str, ...]      # marginal and no-data lines

    @property
    def error_rate(self) -> float | None:
        return self.failed / self.requests if self.requests else None

    @property
    def regressed(self) -> bool:
        return bool(self.regressions)


def trend_rows(runs: Sequence[Run]) -> list[TrendRow]:
    """The rows of the trend, oldest first (pure: stored runs in, rows out)."""
    rows = []
    for r in runs:
        o = r.summary.get("overall", {})
        verdicts = sorted({v.get("verdict", "?") for v in r.verdicts.values()}) or ["?"]
        comp = r.comparison or {}
        rows.append(TrendRow(
            name=r.name, date=str(r.context.get("stored") or r.context.get("date") or ""),
            verdict="/".join(verdicts), requests=int(o.get("count", 0)),
            failed=int(o.get("failed", 0)), p50=o.get("p50"), p95=o.get("p95"), p99=o.get("p99"),
            comparison=str(comp.get("outcome", "")),
            regressions=tuple(comp.get("regressions", ())),
            notes=tuple(comp.get("marginal", ())) + tuple(comp.get("no_data", ()))))
    return rows


def render_png(rows: Sequence[TrendRow]) -> bytes:
    """p50 and p99 per run (ms, left axis), the error rate (%, right axis), a red ring around
    each regression."""
    import matplotlib
    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 4.5), dpi=100)
    ax = fig.add_subplot(1, 1, 1)
    x = list(range(1, len(rows) + 1))
    p50 = [r.p50 if r.p50 is not None else float("nan") for r in rows]
    p99 = [r.p99 if r.p99 is not None else float("nan") for r in rows]
    ax.plot(x, p50, marker="o", color="#1f77b4", label="p50 (ms)")
    ax.plot(x, p99, marker="s", color="#9467bd", label="p99 (ms)")
    bad = [(i, r) for i, r in zip(x, rows) if r.regressed]
    if bad:
        ax.scatter([i for i, _ in bad], [r.p99 if r.p99 is not None else 0 for _, r in bad],
                   s=260, facecolors="none", edgecolors="#cf222e", linewidths=2.5,
                   label="regression", zorder=5)
    ax.set_xlabel("run (oldest first)")
    ax.set_ylabel("latency (ms)")
    ax.set_xticks(x)
    ax.set_xticklabels([r.name[:15] for r in rows], rotation=30, ha="right", fontsize=7)
    ax.set_ylim(bottom=0)
    ax2 = ax.twinx()
    rates = [(r.error_rate or 0.0) * 100 for r in rows]
    ax2.bar(x, rates, width=0.3, color="#cf222e", alpha=0.35, label="error rate (%)")
    ax2.set_ylabel("error rate (%)")
    ax2.set_ylim(bottom=0, top=max(1.0, max(rates, default=0) * 1.3))
    lines, labels = ax.get_legend_handles_labels()
    l2, lab2 = ax2.get_legend_handles_labels()
    ax.legend(lines + l2, labels + lab2, loc="upper left", fontsize=8)
    regressed = sum(1 for r in rows if r.regressed)
    ax.set_title(f"zerodrop nightly: {len(rows)} run{'s' if len(rows) != 1 else ''}, "
                 f"{regressed} regression{'s' if regressed != 1 else ''}")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:,.1f}"


def _e(x: Any) -> str:
    return html.escape(str(x))


_WORDS = {"pass": "no regression", "marginal": "marginal", "fail": "REGRESSION",
          "no data": "no data (not a pass)", NO_HISTORY: "no history yet", "": "not compared"}


def render_html(rows: Sequence[TrendRow], png: bytes | None) -> str:
    body = []
    for r in rows:
        rate = "-" if r.error_rate is None else f"{r.error_rate:.2%}"
        lines = "".join(f"<li>{_e(x)}</li>" for x in (*r.regressions, *r.notes))
        css = ' class="bad"' if r.regressed else ""
        body.append(f"<tr{css}><td>{_e(r.name)}</td><td>{_e(r.date)}</td><td>{_e(r.verdict)}</td>"
                    f"<td>{r.requests:,}</td><td>{r.failed:,}</td><td>{rate}</td>"
                    f"<td>{_ms(r.p50)}</td><td>{_ms(r.p95)}</td><td>{_ms(r.p99)}</td>"
                    f"<td>{_e(_WORDS.get(r.comparison, r.comparison))}<ul>{lines}</ul></td></tr>")
    img = (f'<img alt="trend" src="data:image/png;base64,{base64.b64encode(png).decode()}">'
           if png else "<p>(no chart: matplotlib is not installed)</p>")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>zerodrop nightly trend</title>
<style>body{{font-family:sans-serif;margin:1.5em}} table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 6px;font-size:13px;vertical-align:top}}
tr.bad td{{background:#ffebe9}} ul{{margin:0;padding-left:1.2em}}</style></head>
<body><h1>zerodrop nightly trend</h1>
<p>{len(rows)} run(s), oldest first. Each run is compared with the good runs before it (latency:
Mann-Whitney; error rate: Fisher's exact test); a regression is marked in red.</p>
{img}
<table><tr><th>run</th><th>stored</th><th>verdict</th><th>requests</th><th>failed</th>
<th>error rate</th><th>p50 ms</th><th>p95 ms</th><th>p99 ms</th><th>against earlier runs</th></tr>
{''.join(body)}
</table></body></html>
"""


def write_trend(runs: Sequence[Run], out_dir: Path) -> dict[str, Path]:
    """``trend.html`` and ``trend.png`` in ``out_dir``; their paths."""
    rows = trend_rows(runs)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        png: bytes | None = render_png(rows)
    except ImportError:
        png = None
    paths = {"html": out_dir / TREND_HTML}
    if png is not None:
        paths["png"] = out_dir / TREND_PNG
        paths["png"].write_bytes(png)
    paths["html"].write_text(render_html(rows, png), encoding="utf-8")
    return paths
