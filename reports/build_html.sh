#!/usr/bin/env bash
# Build the Allure HTML report from an allure-results directory with Allure 3 (the npm package
# "allure": Node.js only, no Java). The first run installs it once into .zerodrop/ (git-ignored)
# of the directory the script runs from (the repository root for ./zd report; never inside an
# installed package); later runs need no network.
#
# The report is ONE file, OUT_DIR/index.html (Allure's single-file mode: scripts, styles and data
# inlined), so it opens from disk (file://) with no server. Its built-in Google Analytics tag is
# removed, so opening it sends nothing anywhere.
#
# The front page carries the verdict when the run wrote verdicts.json (reports/summary.py): the
# report's title ("zerodrop: FAIL — switch-under-load FAIL, rollback-under-load PASS"), the
# "Variables" block (each proof's verdict, counts and first reasons) and summary.md as a global
# attachment. VERDICTS_JSON defaults to verdicts.json beside RESULTS_DIR, left out when it is
# missing or older than every result in RESULTS_DIR (a stale file from an earlier run); without
# it the report is Allure's own, titled "zerodrop".
#
# History and trends: each build appends its run to a JSON-lines file kept across runs (default
# allure-history.jsonl beside OUT_DIR, the last 50 runs), which the trend charts read. Building
# again from the same results does not add the run twice.
#
#   usage: reports/build_html.sh RESULTS_DIR OUT_DIR [VERDICTS_JSON]
#   env:   ALLURE_VERSION (default 3.18.0), ZERODROP_ALLURE_HOME (where it is installed),
#          ALLURE_REPORT_NAME (default zerodrop), ZERODROP_ALLURE_HISTORY (the history file)
#   exit:  0 report written, 3 node/npm missing or the install/generation failed, 4 usage error
set -euo pipefail

die() { echo "build_html: $1" >&2; exit "${2:-3}"; }

usage="usage: reports/build_html.sh RESULTS_DIR OUT_DIR [VERDICTS_JSON]"
[ $# -eq 2 ] || [ $# -eq 3 ] || die "$usage" 4
results=$1
out=$2
[ -d "$results" ] || die "no allure results at $results; run pytest with --alluredir $results first" 4
verdicts=${3:-}
[ -z "$verdicts" ] || [ -f "$verdicts" ] || die "no verdicts file at $verdicts" 4
command -v node >/dev/null 2>&1 || die "node is not installed; install Node.js 20 or newer (it brings npm) and run again"


version=${ALLURE_VERSION:-3.18.0}
home=${ZERODROP_ALLURE_HOME:-$PWD/.zerodrop/allure-$version}  # under the directory it runs from
allure=$home/node_modules/.bin/allure
history=${ZERODROP_ALLURE_HISTORY:-$(dirname "$out")/allure-history.jsonl}

if [ ! -x "$allure" ]; then
    command -v npm >/dev/null 2>&1 || die "npm is not installed; install it with Node.js 20 or newer and run again"
    mkdir -p "$home"
    log=$home/npm-install.log
    npm install --no-audit --no-fund --prefix "$home" "allure@$version" >"$log" 2>&1 \
        || die "npm install allure@$version failed (is the npm registry reachable?); see $log"
fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
log=$work/generate.log
# The config: single file; the history file; the categories (Allure 3 takes them from its
# config, not from the results' categories.json, which only Allure 2 reads: carried over so
# "Dropped requests", "Data loss", ... group the failures); the verdict on the front page.
node -e '
const fs = require("fs"), path = require("path"), crypto = require("crypto");
const [results, config, work, given, history] = process.argv.slice(1);
const base = process.env.ALLURE_REPORT_NAME || "zerodrop";
const cfg = { name: base, plugins: { awesome: { options: { singleFile: true } } },
              historyPath: path.resolve(history), historyLimit: 50 };
let step = "read " + results + "/categories.json";
try {
  const cats = path.join(results, "categories.json");
  if (fs.existsSync(cats)) cfg.categories = JSON.parse(fs.readFileSync(cats, "utf8"));

  // the verdicts: the given file, or verdicts.json beside the results unless it is stale
  let file = given;
  const runs = fs.readdirSync(results).filter((f) => f.endsWith("-result.json"));
  if (!file) {
    const beside = path.join(path.dirname(path.resolve(results)), "verdicts.json");
    const mtimes = runs.map((f) => fs.statSync(path.join(results, f)).mtimeMs);
    const oldest = runs.length ? Math.min(...mtimes) : -Infinity;
    if (fs.existsSync(beside) && !(fs.statSync(beside).mtimeMs < oldest)) file = beside;
  }
  if (file) {
    step = "read the verdicts in " + file;
    const v = JSON.parse(fs.readFileSync(file, "utf8"));
    const proofs = v.proofs || [];
    const outcome = String(v.outcome);
    cfg.name = base + ": " + outcome +
      (proofs.length ? " — " + proofs.map((p) => p.name + " " + p.verdict).join(", ") : "");
    const n = (x) => Number(x || 0).toLocaleString("en-US");
    const pct = (rate) => {  // reports/rules.py pct_up: two significant digits, rounded up
      const x = rate * 100;
      if (x <= 0) return "0%";
      const digits = Math.max(0, 1 - Math.floor(Math.log10(x))), scale = 10 ** digits;
      let text = (Math.ceil(x * scale - 1e-9) / scale).toFixed(digits);
      if (text.includes(".")) text = text.replace(/0+$/, "").replace(/\.$/, "");
      return text + "%";
    };
    const vars = { "zerodrop verdict": outcome + " (exit " + v.exit + ")" +
                   (proofs.length ? "" : ": no zero-downtime proof ran") };
    const evidence = {};
    for (const p of proofs) {
      let line = p.verdict + ": " + n(p.requests_failed) + " of " + n(p.requests_total) +
                 " requests failed";
      if (p.failure_rate_upper !== null && p.failure_rate_upper !== undefined)
        line += " (failure rate below " + pct(p.failure_rate_upper) + ", 95% confidence)";
      vars[p.name] = line;
      const reasons = [...(p.scenario_failure ? ["scenario: " + p.scenario_failure] : []),
                       ...(p.reasons || [])];
      reasons.slice(0, 2).forEach((r, i) => {
        const more = i === 1 && reasons.length > 2 ? " (+" + (reasons.length - 2) +
                     " more in summary.md)" : "";
        vars[p.name + " · reason " + (i + 1)] = r + more;
      });
      if (p.evidence && p.evidence.html) evidence[p.name + " · evidence"] = p.evidence.html;
    }
    cfg.variables = { ...vars, ...evidence };  // the evidence paths after every reason
    // summary.md, written with verdicts.json, as a global attachment of the report
    const md = path.join(path.dirname(file), "summary.md");
    if (fs.existsSync(md)) {
      fs.mkdirSync(path.join(work, "global"));
      fs.copyFileSync(md, path.join(work, "global", "summary.md"));
      const glob = path.join(work, "global").replace(/[*?[\]{}()!+@\\]/g, "\\$&") + "/*";
      cfg.globalAttachments = [glob];
    }
  }

  // the same results built again (./zd report twice) must not add the run to the history twice,
  // and a run without results adds none: build from a copy of the history (without that run)
  // and leave the history as it is
  step = "read the history in " + history;
  const id = crypto.createHash("sha256").update(runs.sort().join("\n")).digest("hex");
  const mark = history + ".last-run";
  const again = fs.existsSync(mark) && fs.readFileSync(mark, "utf8").trim() === id;
  if (!runs.length || (again && fs.existsSync(history))) {
    const lines = fs.existsSync(history) ?
      fs.readFileSync(history, "utf8").split("\n").filter(Boolean) : [];
    fs.writeFileSync(path.join(work, "history.jsonl"),
                     lines.slice(0, runs.length ? -1 : undefined).map((l) => l + "\n").join(""));
    cfg.historyPath = path.join(work, "history.jsonl");
  } else {
    fs.mkdirSync(path.dirname(path.resolve(history)), { recursive: true });
    fs.writeFileSync(path.join(work, "run-id"), id);
  }
  fs.writeFileSync(config, JSON.stringify(cfg, null, 2));
} catch (e) {
  console.error("could not " + step + ": " + String(e.message || e).split("\n")[0]);
  process.exit(1);
}
' "$results" "$work/allurerc.json" "$work" "$verdicts" "$history" 2>"$log" \
    || die "$(tail -n 1 "$log")"
"$allure" generate --config "$work/allurerc.json" --cwd "$PWD" -o "$work/report" "$results" \
    >"$log" 2>&1 || die "allure generate failed: $(tail -n 1 "$log")"
[ -f "$work/report/index.html" ] || die "allure generate wrote no index.html: $(tail -n 1 "$log")"
[ ! -f "$work/run-id" ] || cp "$work/run-id" "$history.last-run"

# Drop the analytics tag: a report about a payment service must not call out when opened. And
# let the front page's Variables block (the verdict) read in full: one column, lines wrapped
# instead of cut at a third of the width.
node -e '
const fs = require("fs");
const f = process.argv[1];
const v = "[data-testid=report-variables] ";
const style = "<style>/* zerodrop: the verdict reads in full */ " +
  v + "[data-testid=metadata-list] { grid-template-columns: minmax(0, 1fr) !important; } " +
  v + "[data-testid=metadata-item] { align-items: baseline; } " +
  v + "[data-testid=metadata-item-key], " + v + "[data-testid=metadata-item-value] * " +
  "{ white-space: normal !important; overflow: visible !important; " +
  "text-overflow: clip !important; max-width: none !important; }</style>";
let html = fs.readFileSync(f, "utf8")
  .replace(/<script async src="https:\/\/www\.googletagmanager\.com[^"]*"><\/script>/g, "")
  .replace(/<script>\s*window\.dataLayer[\s\S]*?<\/script>/g, "");
if (html.includes("googletagmanager.com")) process.exit(1);
html = html.replace("</head>", () => style + "\n</head>");
fs.writeFileSync(f, html);
' "$work/report/index.html" || die "could not remove the analytics tag from the report (a new Allure version?)"

# Allure writes over what OUT_DIR holds: an earlier report there (say, the many files of a
# multi-file one) is replaced as a whole, so the one index.html is all that opens
find "$work/report" -mindepth 1 -type d -empty -delete
{ if [ -f "$out/index.html" ] && grep -q allure "$out/index.html"; then rm -rf "$out"; fi &&
  mkdir -p "$out" && cp -R "$work/report/." "$out/"; } 2>"$log" \
    || die "could not write the report into $out: $(tail -n 1 "$log")"

echo "build_html: $out/index.html"
