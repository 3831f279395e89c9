#!/usr/bin/env bash
# Stands in for the seed's smoke-tests.sh, which blue-green-deploy.sh calls as
# `./smoke-tests.sh <colour>`: the seed's version curls the colour's ClusterIP, which is not
# reachable from outside a kind cluster. This runs zerodrop's port of the same checks
# (suites/smoke) against the colour's preview address, which `zerodrop watch` hands the deploy
# command as ZD_PREVIEW_URL_BLUE / ZD_PREVIEW_URL_GREEN.
set -euo pipefail
color=${1:?usage: $0 blue|green}
var="ZD_PREVIEW_URL_${color^^}"
url=${!var:?$var is not set: run this through zerodrop watch}
results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
exec "${ZD_PYTHON:-python3}" -m pytest -q -p no:cacheprovider --pyargs zerodrop.suites.smoke \
  --target url --base-url "$url" --token "${ZD_TOKEN:-test-token}" --alluredir "$results"
