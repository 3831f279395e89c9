#!/usr/bin/env bash
# Build the Allure HTML report from an allure-results directory with Allure 3 (the npm package
# "allure": Node.js only, no Java). The first run installs it once into .zerodrop/ (git-ignored)
# of the directory the script runs from (the repository root for ./zd report; never inside an
# installed package); later runs need no network. The report's built-in Google Analytics tag is
# removed, so opening the report sends nothing anywhere.
#
#   usage: reports/build_html.sh RESULTS_DIR OUT_DIR
#   env:   ALLURE_VERSION (default 3.18.0), ZERODROP_ALLURE_HOME (where it is installed)
#   exit:  0 report written, 3 node/npm missing or the install/generation failed, 4 usage error
set -euo pipefail

die() { echo "build_html: $1" >&2; exit "${2:-3}"; }

[ $# -eq 2 ] || die "usage: reports/build_html.sh RESULTS_DIR OUT_DIR" 4
results=$1
out=$2
[ -d "$results" ] || die "no allure results at $results; run pytest with --alluredir $results first" 4
command -v node >/dev/null 2>&1 || die "node is not installed; install Node.js 20 or newer (it brings npm) and run again"


version=${ALLURE_VERSION:-3.18.0}
home=${ZERODROP_ALLURE_HOME:-$PWD/.zerodrop/allure-$version}  # under the directory it runs from
allure=$home/node_modules/.bin/allure

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
# Allure 3 takes categories from its config, not from the results' categories.json (which only
# Allure 2 reads): carry them over so "Dropped requests", "Data loss", ... group the failures.
node -e '
const fs = require("fs");
const [results, config] = process.argv.slice(1);
const cfg = { name: process.env.ALLURE_REPORT_NAME || "zerodrop" };
const cats = results + "/categories.json";
if (fs.existsSync(cats)) cfg.categories = JSON.parse(fs.readFileSync(cats, "utf8"));
fs.writeFileSync(config, JSON.stringify(cfg, null, 2));
' "$results" "$work/allurerc.json" || die "could not read $results/categories.json"
"$allure" generate --config "$work/allurerc.json" --cwd "$PWD" -o "$out" "$results" >"$log" 2>&1 \
    || die "allure generate failed: $(tail -n 1 "$log")"
[ -f "$out/index.html" ] || die "allure generate wrote no $out/index.html: $(tail -n 1 "$log")"

# Drop the analytics tag: a report about a payment service must not call out when opened.
node -e '
const fs = require("fs");
const f = process.argv[1];
const html = fs.readFileSync(f, "utf8")
  .replace(/<script async src="https:\/\/www\.googletagmanager\.com[^"]*"><\/script>/g, "")
  .replace(/<script>\s*window\.dataLayer[\s\S]*?<\/script>/g, "");
fs.writeFileSync(f, html);
' "$out/index.html"

echo "build_html: $out/index.html"
