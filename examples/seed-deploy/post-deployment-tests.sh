#!/usr/bin/env bash
# Stands in for the seed's post-deployment-tests.sh (its post-deployment-tests.py against the
# Service): zerodrop's port of those checks (suites/post_deploy) against the Service address
# `zerodrop watch` hands the deploy command as ZD_SERVICE_URL.
set -euo pipefail
url=${ZD_SERVICE_URL:?ZD_SERVICE_URL is not set: run this through zerodrop watch}
results=$(mktemp -d)
trap 'rm -rf "$results"' EXIT
"${ZD_PYTHON:-python3}" -m pytest -q -p no:cacheprovider -W ignore::pytest.PytestAssertRewriteWarning --pyargs zerodrop.suites.post_deploy \
  --target url --base-url "$url" --token "${ZD_TOKEN:-test-token}" --alluredir "$results"
