#!/usr/bin/env bash
# Build zerodrop/payment-service:<tag> with payment_service/Dockerfile on the debootstrap base
# (py-image.sh: wheels downloaded on the host, a context with only zerodrop/__init__.py and
# payment_service/), and load it into the kind cluster if one is named.
# Usage: build-app-image.sh [tag] [kind cluster name]   (default tag: dev)
. "$(dirname "$0")/lib.sh"
exec "$HERE/py-image.sh" "zerodrop/payment-service:${1:-dev}" payment_service/Dockerfile \
  payment_service/requirements.txt "${2:-}" zerodrop/__init__.py payment_service
