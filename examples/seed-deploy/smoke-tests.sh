#!/usr/bin/env bash
# Stands in for the seed's smoke-tests.sh, which blue-green-deploy.sh calls as
# `./smoke-tests.sh <colour>`: the seed's version curls the colour's ClusterIP, which is not
# reachable from outside a kind cluster. This runs zerodrop's port of the same checks
# (suites/smoke) against the colour's preview address, which `zerodrop watch` hands the deploy
# command as ZD_PREVIEW_URL_BLUE / ZD_PREVIEW_URL_GREEN.
#
# One addition: `kubectl rollout status` returns when the pods are ready, before kube-proxy has
# necessarily programmed their endpoints; the seed's curl would meet the same race (a busy CI
# node showed "connection refused" there). The stand-in waits up to 30 s for the address to
# answer at all, then runs the checks; a colour that never answers still fails them.
set -euo pipefail
color=${1:?usage: $0 blue|green}
var="ZD_PREVIEW_URL_${color^^}"
url=${!var:?$var is not set: run this through zerodrop watch}
"${ZD_PYTHON:-python3}" - "$url" <<'PY' || true
import sys, time, urllib.request
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    try:
        urllib.request.urlopen(sys.argv[1] + "/health", timeout=2).close()
        break
    except Exception:  # refused, reset, an HTTP error: not answering yet
        time.sleep(0.5)
PY
results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
"${ZD_PYTHON:-python3}" -m pytest -q -p no:cacheprovider -W ignore::pytest.PytestAssertRewriteWarning --pyargs zerodrop.suites.smoke \
  --target url --base-url "$url" --token "${ZD_TOKEN:-test-token}" --alluredir "$results"
