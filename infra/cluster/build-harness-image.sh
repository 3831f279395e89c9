#!/usr/bin/env bash
# Build zerodrop/harness:<tag>, the in-cluster load generator (Locust + zerodrop.load,
# zerodrop.records and zerodrop.profiles, run as `python -m zerodrop.load.pod`), with load/Dockerfile on the
# debootstrap base (py-image.sh), and load it into the kind cluster if one is named.
# Usage: build-harness-image.sh [tag] [kind cluster]
. "$(dirname "$0")/lib.sh"
exec "$HERE/py-image.sh" "zerodrop/harness:${1:-dev}" load/Dockerfile load/requirements.txt \
  "${2:-}" zerodrop/__init__.py records load profiles
