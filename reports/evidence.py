"""Evidence of one switch: ``<scenario>.json``, ``<scenario>.html``, ``<scenario>.png`` and a
copy of the ledger, ``<scenario>.ledger.jsonl``, beside them (the HTML links that copy, never
the load's temporary folder).

Renders a Verdict; never decides anything and never re-reads the ledger (the per-second series
came out of the verdict's single pass). Secrets never reach a file: keys named like a token,
password, secret, authorization or kubeconfig are redacted wherever they appear, and so are
bearer tokens and passwords inside URLs in any string, and the values of secret options in the
command line (``--token x``).

Each page says which run it is: target, command, commit, date, zerodrop version, run id
(``run_context``). Evidence of an earlier run never sits beside this run's as if it were
current: see ``retire_stale``.
"""
from __future__ import annotations

import base64
import html
import json
import math
import os
import re
import shlex
import shutil
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping, Sequence

from zerodrop.records.events import _DESCRIBE_KEYS, STEP_FAILED, Event, EventName, Source
from zerodrop.reports.tally import NO_ANSWER, NO_COLOUR, Series
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
    ledger: Path | None = None  # the ledger's copy beside the evidence (None: no ledger given)
    stale: tuple[Path, ...] = field(default=(), compare=False)  # earlier runs' files moved away

    def as_dict(self) -> dict[str, Path]:
        return {k: v for k, v in (("json", self.json), ("html", self.html), ("png", self.png),
                                  ("ledger", self.ledger)) if v is not None}

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


_SECRET_ASSIGN = re.compile(r"^(-{0,2}[A-Za-z0-9_.-]+)=(.*)$", re.DOTALL)


def redact_argv(argv: Sequence[str]) -> str:
    """A command line as one shell-quoted string with secrets redacted: the value of an option
    or a ``NAME=value`` named like a secret (``--token x``, ``--token=x``, ``DB_PASSWORD=x``),
    and bearer tokens and URL passwords anywhere."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        arg = str(arg)
        if hide_next:
            out.append(REDACTED)
            hide_next = False
            continue
        m = _SECRET_ASSIGN.match(arg)
        if m and SECRET_KEY.search(m.group(1)):
            out.append(f"{m.group(1)}={REDACTED}")
            continue
        if arg.startswith("-") and SECRET_KEY.search(arg):
            hide_next = True
        out.append(redact_text(arg))
    return " ".join(_quote(a) for a in out)


_SHELL_PLAIN = re.compile(r"[\w@%+=:,./\[\]-]+")  # shlex's safe set, and what redaction writes


def _quote(arg: str) -> str:
    return arg if _SHELL_PLAIN.fullmatch(arg) else shlex.quote(arg)


def event_dict(event: Event) -> dict[str, Any]:
    return redact(event.as_dict())


# --------------------------------------------------------------------------------------------
# The run: which run a page is evidence of
# --------------------------------------------------------------------------------------------

# When this process began to run, as far as evidence can tell: the import of this module (at
# pytest's start-up or the command's). A caller that knows better passes ``run_started``.
RUN_STARTED = time.time()
RUN_ID = f"{datetime.fromtimestamp(RUN_STARTED, timezone.utc):%Y%m%dT%H%M%SZ}-{os.getpid()}"

CONTEXT_LABELS = {"target": "target", "command": "command", "commit": "git commit",
                  "date": "date (UTC)", "zerodrop_version": "zerodrop version",
                  "run_id": "run id", "run_started": "run started (UTC)"}


def _utc(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def run_context(context: Mapping[str, Any] | None = None, *,
                argv: Sequence[str] | None = None, cwd: Path | None = None) -> dict[str, str]:
    """What run a page is evidence of: ``target``, ``command``, ``commit``, ``date``,
    ``zerodrop_version``, ``run_id``, ``run_started``. Each key the caller's ``context`` gives
    wins (other keys it gives are kept and shown too); the rest are computed here: the command
    from ``sys.argv``, the commit of the git repository the run started in, the date now, the
    target from a ``--target`` option. Secrets are redacted from every value."""
    argv = list(sys.argv if argv is None else argv)
    given = {str(k): str(v) for k, v in (context or {}).items() if v is not None}
    out = {"target": given.get("target") or _option(argv, "--target") or "(not recorded)",
           "command": given.get("command") or redact_argv(argv),
           "commit": given.get("commit") or git_commit(cwd) or "(not a git checkout)",
           "date": given.get("date") or _utc(time.time()),
           "zerodrop_version": given.get("zerodrop_version") or _zerodrop_version(),
           "run_id": given.get("run_id") or RUN_ID,
           "run_started": given.get("run_started") or _utc(RUN_STARTED)}
    out.update({k: v for k, v in given.items() if k not in out})
    return {k: _redact_value(k, v, given) for k, v in out.items()}


def _redact_value(key: str, value: str, given: Mapping[str, str]) -> str:
    if SECRET_KEY.search(key):
        return REDACTED
    if key == "command" and "command" in given:  # a caller's command line: its secret options too
        return redact_argv(shlex.split(value)) if _splits(value) else redact_text(value)
    return redact_text(value)


def _splits(text: str) -> bool:
    try:
        shlex.split(text)
    except ValueError:
        return False
    return True


def _option(argv: Sequence[str], name: str) -> str | None:
    for i, arg in enumerate(argv):
        if arg == name and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return None


def _zerodrop_version() -> str:
    try:
        import zerodrop
        return str(zerodrop.__version__)
    except (ImportError, AttributeError):
        return "(unknown)"


def git_commit(cwd: Path | None = None) -> str | None:
    """The commit checked out where the run started (``abc123def456``, plus " (uncommitted
    changes)" when the tracked files differ from it); None outside a git checkout."""
    where = str(cwd or Path.cwd())
    try:
        head = subprocess.run(["git", "-C", where, "rev-parse", "--short=12", "HEAD"],
                              capture_output=True, text=True, timeout=5)
        if head.returncode != 0 or not head.stdout.strip():
            return None
        dirty = subprocess.run(["git", "-C", where, "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True,
                               timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    commit = head.stdout.strip()
    return commit + (" (uncommitted changes)" if dirty.returncode == 0 and dirty.stdout.strip()
                     else "")


def _run_started(context: Mapping[str, str]) -> float:
    """``run_started`` as a time.time() value: a number, or the text ``_utc`` writes / ISO 8601."""
    text = context.get("run_started", "")
    try:
        return float(text)
    except ValueError:
        pass
    for parse in (lambda x: datetime.strptime(x, "%Y-%m-%d %H:%M:%S UTC").replace(
                      tzinfo=timezone.utc),
                  lambda x: datetime.fromisoformat(x.replace("Z", "+00:00"))):
        try:
            d = parse(text)
        except ValueError:
            continue
        return (d if d.tzinfo else d.replace(tzinfo=timezone.utc)).timestamp()
    return RUN_STARTED


# --------------------------------------------------------------------------------------------
# Stale evidence and the ledger's copy
# --------------------------------------------------------------------------------------------

STALE_DIR = "stale"
EVIDENCE_SUFFIXES = (".json", ".html", ".png", ".ledger.jsonl")


def retire_stale(out_dir: Path, run_started: float, keep: str) -> list[Path]:
    """Move the evidence of an earlier run out of ``out_dir`` into ``out_dir/stale/``: every
    evidence set (``<name>.json`` holding a verdict and a timeline, with its ``.html``,
    ``.png`` and ``.ledger.jsonl``) whose JSON was written before ``run_started``. Returns the
    files moved.

    Why the run's start time and not a manifest of names: several proofs of ONE run write to
    the same directory one after another (a session proves the switch, then the rollback), and
    none of them knows which others the run will write. A file written before the run began
    cannot be this run's, whoever wrote it; one written since is, and stays. So any proof may
    retire the stale ones, in any order, with nothing shared but the run's start (the plugin's
    ``run_started``; by default this process's start, ``RUN_STARTED``), and proofs of one run in
    parallel processes that share that start stay correct too. Only evidence sets are touched:
    other files of the directory (Allure results, a JUnit file, a summary) are not.

    Moved, not deleted: the earlier page stays readable (its chart is embedded and its ledger
    link is relative, and the set moves together), but never beside this run's as if it were
    current. ``stale/`` keeps the latest stale set of each scenario; it does not grow with runs.
    """
    out_dir = Path(out_dir)
    moved: list[Path] = []
    for doc in sorted(out_dir.glob("*.json")):
        name = doc.name[:-len(".json")]
        try:
            if name == keep or doc.stat().st_mtime >= run_started or not _is_evidence(doc):
                continue
        except OSError:
            continue
        stale = out_dir / STALE_DIR
        stale.mkdir(exist_ok=True)
        for suffix in EVIDENCE_SUFFIXES:
            path = out_dir / f"{name}{suffix}"
            if path.is_file():
                moved.append(path.replace(stale / path.name))
    return moved


def _is_evidence(path: Path) -> bool:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and "verdict" in doc and "timeline" in doc


# source ledger (path, size, mtime) -> the first copy made of it: the slices of one load run
# share one merged ledger, so their copies are hard links of one file, not N copies of it
_LEDGER_COPIES: dict[tuple[str, int, int], Path] = {}


def copy_ledger(source: Path, dest: Path) -> Path | None:
    """``source`` made available as ``dest``; None when ``source`` is not a file.

    A hard link to ``source`` when both are on one filesystem: nothing is read or copied (the
    proof reads the merged ledger once, for its verdict), and the file outlives the load's
    temporary folder. The merged ledger is never written in place (load.ledger.merge_ledgers
    replaces it whole), so the link cannot change under the evidence. Across filesystems: a
    link to an earlier copy of the same source (the slices of one run), else a copy. ``dest``
    is replaced, never written through: it may share its file with an earlier run's (now
    stale) copy."""
    source, dest = Path(source), Path(dest)
    try:
        st = source.stat()
    except OSError:
        return None
    if not source.is_file():
        return None
    if dest.exists() and dest.samefile(source):
        return dest
    dest.unlink(missing_ok=True)
    key = (str(source.resolve()), st.st_size, st.st_mtime_ns)
    for target in (source, _LEDGER_COPIES.get(key)):
        if target is None:
            continue
        try:
            if target.stat().st_size == st.st_size:
                os.link(target, dest)
                return dest
        except OSError:
            continue  # another filesystem, or no hard links here
    shutil.copyfile(source, dest)
    _LEDGER_COPIES[key] = dest
    return dest


# --------------------------------------------------------------------------------------------
# The files
# --------------------------------------------------------------------------------------------

def evidence_document(verdict: Verdict, timeline: Sequence[Event],
                      ledger_path: Path | None = None,
                      context: Mapping[str, str] | None = None) -> dict[str, Any]:
    """What ``<scenario>.json`` holds: the verdict's shape plus the timeline (redacted), the
    run's context and, given a ledger, its path (the copy beside the evidence when
    ``write_evidence`` made one) and ``ledger_file``, that path relative to the JSON."""
    doc = redact(verdict.to_dict())
    doc["timeline"] = [event_dict(e) for e in sorted(timeline, key=lambda e: e.t)]
    if context is not None:
        doc["run"] = dict(context)
    if ledger_path is not None:
        doc["ledger"] = redact_text(str(ledger_path))
        doc["ledger_file"] = Path(ledger_path).name
    return doc


def write_evidence(verdict: Verdict, timeline: Sequence[Event], out_dir: Path, scenario: str,
                   ledger_path: Path | None = None,
                   context: Mapping[str, str] | None = None) -> EvidencePaths:
    """Write ``<scenario>.json/.html/.png`` and copy the ledger to ``<scenario>.ledger.jsonl``
    in ``out_dir``, after moving an earlier run's evidence out of the way (``retire_stale``).
    ``context``: the run's target, command, commit, date, version, run id and start; what it
    does not give is computed (``run_context``)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ctx = run_context(context)
    name = _safe_name(scenario)
    stale = retire_stale(out_dir, _run_started(ctx), keep=name)
    json_path = out_dir / f"{name}.json"
    html_path = out_dir / f"{name}.html"
    png_path: Path | None = out_dir / f"{name}.png"
    ledger_copy = (copy_ledger(ledger_path, out_dir / f"{name}.ledger.jsonl")
                   if ledger_path is not None else None)

    doc = evidence_document(verdict, timeline, ledger_copy, ctx)
    if ledger_path is not None and ledger_copy is None:
        doc["ledger"] = None  # named, but not there to copy: never point at a temp folder
    json_path.write_text(json.dumps(doc, indent=2, default=str) + "\n", encoding="utf-8")

    png_note = ""
    try:
        png_bytes = render_png(verdict, timeline, title=scenario)
    except ImportError as exc:  # matplotlib missing: the JSON and HTML still carry everything
        png_bytes, png_path = None, None
        png_note = f"no chart: matplotlib could not be imported ({exc})"
    if png_path is not None and png_bytes is not None:
        png_path.write_bytes(png_bytes)

    missing = (f"the ledger was not found at {ledger_path}, so no copy is beside this page"
               if ledger_path is not None and ledger_copy is None else "")
    html_path.write_text(render_html(verdict, timeline, scenario, png_bytes, ledger_copy,
                                     png_note, context=ctx, ledger_note=missing),
                         encoding="utf-8")
    return EvidencePaths(json_path, html_path, png_path, ledger_copy, tuple(stale))


def _safe_name(scenario: str) -> str:
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", scenario).strip("._") or "scenario"
    return name[:120]


# --------------------------------------------------------------------------------------------
# PNG: what it plots (pure, tested) and how it draws it
# --------------------------------------------------------------------------------------------

# a partial first or last second narrower than this is joined to its neighbour: a rate over a
# sliver of a second is noise (one request in 10 ms reads as 100 req/s)
MIN_PARTIAL_S = 0.2
_KEY_CHARS = 176  # monospace characters across the chart's key at its font size
SWITCH_COLOUR = "#e8590c"


@dataclass(frozen=True)
class Bar:
    """One bar of the chart: the requests that STARTED within [left, left + width) seconds
    since the first request, as rates (per second of that real width). Whole seconds are 1 s
    wide; the first and last are as wide as the run covered of them, so a partial second reads
    as the rate it had, not as a dip."""

    left: float
    width: float
    ok: dict[str, float]      # ok answers per second, by version
    failed: float             # failed requests per second
    p99_ms: float | None
    requests: int             # requests counted in it (ok and failed)
    failures: int

    @property
    def centre(self) -> float:
        return self.left + self.width / 2

    @property
    def total(self) -> float:
        return sum(self.ok.values()) + self.failed


def rate_bars(series: Series | None, min_width: float = MIN_PARTIAL_S) -> list[Bar]:
    """The chart's bars from the verdict's per-second series: x is seconds since the first
    request (the first bar starts at 0), the first and last seconds cut to the span the run
    covered (from the first request's start, to the last request's start), every count
    divided by its bar's real width. A partial first or last second narrower than
    ``min_width`` is joined to the whole second next to it."""
    if series is None or series.t0 is None or not series.seconds:
        return []
    t0 = series.t0
    end = series.t_last if series.t_last is not None else series.seconds[-1] + 1.0
    spans = []
    for k, sec in enumerate(series.seconds):
        lo, hi = max(float(sec), t0), min(sec + 1.0, max(end, t0))
        spans.append({"sec": sec, "lo": lo, "hi": hi,
                      "ok": {v: c[k] for v, c in series.ok_by_version.items()},
                      "failed": series.failed[k], "p99": series.p99_ms[k]})
    if len(spans) > 1 and spans[0]["hi"] - spans[0]["lo"] < min_width \
            and spans[1]["sec"] == spans[0]["sec"] + 1:
        spans[0:2] = [_join(spans[0], spans[1])]
    if len(spans) > 1 and spans[-1]["hi"] - spans[-1]["lo"] < min_width \
            and spans[-2]["sec"] == spans[-1]["sec"] - 1:
        spans[-2:] = [_join(spans[-2], spans[-1])]
    bars = []
    for sp in spans:
        # a sliver that had no whole second beside it to join: drawn min_width wide, not a spike
        width = max(sp["hi"] - sp["lo"], min(min_width, 1.0))
        bars.append(Bar(sp["lo"] - t0, width, {v: n / width for v, n in sp["ok"].items()},
                        sp["failed"] / width, sp["p99"], sum(sp["ok"].values()) + sp["failed"],
                        sp["failed"]))
    return bars


def _join(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    p99s = [p for p in (a["p99"], b["p99"]) if p is not None]
    return {"sec": b["sec"], "lo": a["lo"], "hi": b["hi"],
            "ok": {v: a["ok"].get(v, 0) + b["ok"].get(v, 0) for v in {**a["ok"], **b["ok"]}},
            "failed": a["failed"] + b["failed"], "p99": max(p99s) if p99s else None}


@dataclass(frozen=True)
class EventLine:
    """A vertical line of the chart: seconds since the first request, numbered in the key."""

    x: float
    number: int
    event: Event
    is_switch: bool  # the switch (the Service's selector patched): drawn apart from the rest
    key: str          # the key's line(s) for it, wrapped, never cut


@dataclass(frozen=True)
class ChartPlan:
    """Everything the PNG shows, decided before anything is drawn (tested without pixels)."""

    title: str
    bars: list[Bar]
    xlim: tuple[float, float]
    lines: list[EventLine]
    key_columns: list[str]  # the key under the chart, one text per column
    window: tuple[float, float] | None  # old version still answering after the switch
    switches: list[float]   # t_switch of each switch, seconds since the first request


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


def _is_split(e: Event) -> bool:
    """A selector patch that splits traffic between colours by weight (a canary's stage)."""
    d = e.detail if isinstance(e.detail, dict) else {}
    weights = d.get("weights") if isinstance(d.get("weights"), dict) else d.get("selector")
    return isinstance(weights, dict) and sum(
        1 for v in weights.values()
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0) > 1


def _is_switch(e: Event) -> bool:
    """The switch: the selector patched to one colour (a canary's shares are drawn as events,
    not each as "the switch")."""
    return e.name == EventName.SELECTOR_PATCHED and not _is_split(e)


def _event_colour(e: Event) -> str:
    if _is_switch(e):
        return SWITCH_COLOUR
    return {Source.FAULT: "#cf222e", Source.SCENARIO: "#24292f"}.get(e.source, "#8250df")


def _event_key(e: Event) -> str:
    """The chart key's words for an event: named as ``describe`` names it (as in the reasons),
    secrets redacted, but no value cut short: the key wraps a long line instead."""
    detail = redact(e.detail) if isinstance(e.detail, dict) else {}
    bits = [f"{k} {detail[k]}" for k in _DESCRIBE_KEYS if detail.get(k) not in ("", None)]
    return f"'{e.name}'" + (f" ({', '.join(bits)})" if bits else "")


def _switch_times(verdict: Verdict) -> list[float]:
    switches = verdict.switches or [verdict.switch]
    return [sw["t_switch"] for sw in switches if sw.get("t_switch") is not None]


def chart_plan(verdict: Verdict, timeline: Sequence[Event], title: str = "") -> ChartPlan:
    """What the chart shows: the bars (``rate_bars``), an x axis from the first request (0)
    to the last, the events of that span as numbered lines (the switch apart), the key, and a
    title with the verdict and its counts."""
    s = verdict.series
    head = f"{title}: {verdict.verdict}" if title else verdict.verdict
    head += (f"  ({verdict.requests_total:,} requests, {verdict.requests_failed:,} failed)")
    bars = rate_bars(s)
    if not bars or s is None or s.t0 is None:
        return ChartPlan(head, [], (0.0, 1.0), [], [], None, [])
    t0 = s.t0
    right = max(b.left + b.width for b in bars)
    events = _chart_events(timeline, t0, t0 + right)
    switches = [t - t0 for t in _switch_times(verdict) if t0 <= t <= t0 + right]
    lines = []
    per_line = _KEY_CHARS if len(events) <= 6 else _KEY_CHARS // 2 - 2
    for k, e in enumerate(events, start=1):
        words = f"{k:>2}  +{e.t - t0:.2f} s  {e.source}: {_event_key(e)}"
        if _is_switch(e):
            words += "  <- the switch"
        elif _is_split(e):
            words += "  <- a canary share"
        key = "\n".join(textwrap.wrap(words, per_line, subsequent_indent=" " * 6,
                                       break_on_hyphens=False)) or words
        lines.append(EventLine(e.t - t0, k, e, _is_switch(e), key))
    columns = 1 if len(events) <= 6 else 2
    per_col = math.ceil(len(lines) / columns) if lines else 0
    key_columns = ["\n".join(ln.key for ln in lines[c * per_col:(c + 1) * per_col])
                   for c in range(columns)] if lines else []
    sw = verdict.switch
    window = ((sw["t_switch"] - t0, sw["t_last_old"] - t0)
              if sw.get("t_switch") is not None and sw.get("t_last_old") is not None else None)
    return ChartPlan(head, bars, (0.0, right), lines, key_columns, window, switches)


def render_png(verdict: Verdict, timeline: Sequence[Event], title: str = "") -> bytes:
    """The switch on one chart: requests started per second stacked by version, failures in
    red on top, p99 latency on a second axis, the switch as a thick labelled line, a numbered
    line per other event of interest. Seconds are since the first request (``chart_plan``)."""
    import io
    import warnings

    import matplotlib
    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    plan = chart_plan(verdict, timeline, title)
    key_rows = max((c.count("\n") + 1 for c in plan.key_columns), default=0)
    fig = Figure(figsize=(13, 6.5 + 0.16 * key_rows), dpi=100)
    grid = fig.add_gridspec(2, 1, height_ratios=[6.0, 0.25 + 0.16 * key_rows])
    ax = fig.add_subplot(grid[0])
    kax = fig.add_subplot(grid[1])
    kax.axis("off")
    ax2 = ax.twinx()
    handles: list[Any] = []
    if plan.bars:
        lefts = [b.left for b in plan.bars]
        widths = [b.width for b in plan.bars]
        bottom = [0.0] * len(plan.bars)
        versions = list(dict.fromkeys(v for b in plan.bars for v in b.ok))
        for i, version in enumerate(versions):
            heights = [b.ok.get(version, 0.0) for b in plan.bars]
            h = ax.bar(lefts, heights, width=widths, bottom=bottom, align="edge", linewidth=0,
                       color=_VERSION_COLOURS[i % len(_VERSION_COLOURS)], zorder=2,
                       label=f"ok, version {version}")
            handles.append(h)
            bottom = [b + c for b, c in zip(bottom, heights)]
        failed = [b.failed for b in plan.bars]
        if any(failed):
            h = ax.bar(lefts, failed, width=widths, bottom=bottom, align="edge", linewidth=0,
                       color="#d62728", zorder=2, label="failed")
            handles.append(h)
            tops = [(b.centre, base + b.failed) for b, base in zip(plan.bars, bottom) if b.failures]
            ax.scatter([x for x, _ in tops], [y for _, y in tops], marker="v", color="#d62728",
                       s=18, zorder=5)
        p99 = [(b.centre, b.p99_ms) for b in plan.bars if b.p99_ms is not None]
        if p99:
            (line,) = ax2.plot([x for x, _ in p99], [y for _, y in p99], color="black",
                               linewidth=1.2, label="p99 latency (ms)")
            handles.append(line)
            ax2.set_ylim(0, max(y for _, y in p99) * 1.15 or 1.0)
        ax.set_xlim(*plan.xlim)
        ymax = max((b.total for b in plan.bars), default=1.0) or 1.0
        ax.set_ylim(0, ymax * 1.3)
        if plan.window is not None:
            ax.axvspan(*plan.window, color="#f2cc60", alpha=0.35, linewidth=0, zorder=0)
            handles.append(Patch(color="#f2cc60", alpha=0.35,
                                 label="old version still answering after the switch"))
        _draw_lines(ax, plan)
        if plan.switches or any(ln.is_switch for ln in plan.lines):
            handles.append(Line2D([], [], color=SWITCH_COLOUR, linewidth=3,
                                  label="the switch (selector patched)"))
        for col, text in enumerate(plan.key_columns):
            kax.text(col / len(plan.key_columns), 1.0, text, va="top", ha="left", fontsize=8,
                     family="monospace", transform=kax.transAxes)
    else:
        ax.text(0.5, 0.5, "no requests in the ledger", ha="center", va="center",
                transform=ax.transAxes, fontsize=14)

    ax.set_xlabel("seconds since the first request (each bar: requests started per second "
                  "of the time it covers)")
    ax.set_ylabel("requests per second")
    ax2.set_ylabel("p99 latency of ok requests (ms)")
    fig.suptitle(plan.title, color=_COLOURS.get(verdict.verdict, "black"), fontsize=13,
                 fontweight="bold")
    if handles:
        ax.legend(handles=handles, loc="lower left", bbox_to_anchor=(0.0, 1.0), ncol=4,
                  fontsize=8, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    with warnings.catch_warnings():  # a long event key cannot always fit; the chart still can
        warnings.simplefilter("ignore", UserWarning)
        fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _draw_lines(ax: Any, plan: ChartPlan) -> None:
    """The switch: a thick orange line labelled "switch" (also where the verdict's t_switch
    has no selector event). The other events: thin dashed lines. Each numbered in a circle,
    close ones stacked so they never print over each other."""
    drawn_switch = []
    for ln in plan.lines:
        if ln.is_switch:
            ax.axvline(ln.x, color=SWITCH_COLOUR, linewidth=3, zorder=4)
            drawn_switch.append(ln.x)
        else:
            ax.axvline(ln.x, color=_event_colour(ln.event), linestyle="--", linewidth=0.8,
                       alpha=0.8, zorder=3)
    for x in plan.switches:
        if not any(abs(x - d) < 0.05 for d in drawn_switch):
            ax.axvline(x, color=SWITCH_COLOUR, linewidth=3, zorder=4)
            drawn_switch.append(x)
    for x in drawn_switch:
        ax.text(x, 0.5, " switch ", rotation=90, ha="right", va="center", fontsize=9,
                fontweight="bold", color=SWITCH_COLOUR, transform=ax.get_xaxis_transform(),
                zorder=6, bbox={"boxstyle": "square,pad=0.1", "fc": "white", "ec": "none",
                                "alpha": 0.8})
    span = plan.xlim[1] - plan.xlim[0] or 1.0
    last_x, row = None, 0
    for ln in plan.lines:
        row = row + 1 if last_x is not None and ln.x - last_x < span * 0.025 else 0
        last_x = ln.x
        ax.text(ln.x, 0.97 - 0.06 * (row % 4), str(ln.number), ha="center", va="top",
                fontsize=8, color="white", fontweight="bold", transform=ax.get_xaxis_transform(),
                zorder=6, bbox={"boxstyle": "circle,pad=0.25", "fc": _event_colour(ln.event),
                                "ec": "none"})


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


_FAILURE_WORDS = {"reset": "connection reset", "refused": "connection refused",
                  "timeout": "timeout", "keepalive_race": "keep-alive race",
                  "bad_body": "bad or incomplete body"}


def failure_label(outcome: str, status: int | None) -> str:
    """``HTTP 500``, ``connection reset``: a failure class as the tables name it."""
    if outcome == "http_error":
        return f"HTTP {status or 'error'}"
    return _FAILURE_WORDS.get(outcome, outcome)


def colour_words(colour: str) -> str:
    if colour == NO_ANSWER:
        return "unknown (no answer)"
    return "not said (no colour header)" if colour == NO_COLOUR else colour


def render_html(verdict: Verdict, timeline: Sequence[Event], scenario: str,
                png: bytes | None, ledger_path: Path | None = None,
                png_note: str = "", context: Mapping[str, str] | None = None,
                ledger_note: str = "") -> str:
    """The page a person reads: verdict, reasons, figures and the run's context first, then
    the chart, the failures by route and colour, and the rest. ``ledger_path`` is linked by
    its file name (the copy beside the page); ``context`` defaults to ``run_context()``."""
    d = redact(verdict.to_dict())
    ctx = run_context(context) if context is None else {k: redact_text(str(v))
                                                        for k, v in context.items()}
    t0 = verdict.series.t0 if verdict.series is not None else None
    colour = _COLOURS.get(verdict.verdict, "#57606a")

    def rel(t: float | None) -> str:
        if t is None:
            return "<span class=none>none</span>"
        return f"{t - t0:+.3f} s" if t0 is not None else f"{t:.3f}"

    reasons = "".join(f"<li>{_e(r)}</li>" for r in d["reasons"])
    figures = "".join(f"<li>{_e(x)}</li>" for x in d.get("figures", []))
    run = "".join(f"<tr><th>{_e(CONTEXT_LABELS.get(k, k))}</th><td>"
                  + (f"<code>{_e(v)}</code>" if k in ("command", "commit", "run_id") else _e(v))
                  + "</td></tr>" for k, v in ctx.items())
    classes = _table(
        ["failure", "count", "first (s)", "last (s)", "after event", "first after it (s)"],
        [[_e(failure_label(c["outcome"], c["status"])), _num(c["count"]), rel(c["first_t"]),
          rel(c["last_t"]), _e(c["after_event"]) if c["after_event"] else
          "<i>before the switch</i> (before the scenario's first event)",
          _num(c["after_s"], nd=3) if c["after_event"] else "-"]
         for c in d["failure_classes"]],
        empty="no dropped request")
    where = _table(
        ["failure", "route", "colour that answered", "count", "first (s)", "last (s)"],
        [[_e(failure_label(c["outcome"], c["status"])), f"<code>{_e(w['route'])}</code>",
          _e(colour_words(w["colour"])), _num(w["count"]), rel(w["first_t"]), rel(w["last_t"])]
         for c in d["failure_classes"] for w in c.get("by_route_colour", [])],
        empty="no failed request")
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
    if ledger_path is not None:
        size = Path(ledger_path).stat().st_size if Path(ledger_path).is_file() else None
        name = Path(ledger_path).name
        ledger = (f'<p>Every request of the run, one JSON line each: <a href="{_e(name)}">'
                  f"<code>{_e(name)}</code></a>"
                  + (f" ({size:,} bytes)" if size is not None else "") + ", beside this page.</p>")
    else:
        ledger = f"<p class=none>{_e(ledger_note or 'no ledger was given')}</p>"
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
table.run th {{ text-align: right; font-weight: 600; }} table.run td code {{ font-size: .8em; }}
.figures {{ color: #424a53; }}
</style></head><body>
<h1>{_e(scenario)}</h1>
<div class="verdict">{_e(d['verdict'])}</div>
<p>{_num(d['requests_total'])} requests judged, {_num(d['requests_failed'])} failed.</p>
<h2>Why</h2>
<ul class="reasons">{reasons}</ul>
<h3>Figures</h3>
<ul class="figures">{figures or '<li class=none>no request judged</li>'}</ul>
<h2>Run</h2>
<table class="run">{run}</table>
{ledger}
<h2>Timeline</h2>
{chart}
<h2>Dropped requests</h2>
{classes}
<h2>Failures by route and colour</h2>
{where}
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
</body></html>
"""
