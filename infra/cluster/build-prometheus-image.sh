#!/usr/bin/env bash
# Build zerodrop/prometheus:dev (images/prometheus/Dockerfile: Debian's prometheus package on the
# debootstrap base, no registry) and, with a cluster name, load it into that kind cluster,
# skipped when the node already holds the same image (as build-traefik.sh checks: a `kind load`
# of an unchanged ~250 MB image is most of a warm run). The canary analysis on a cluster
# (platforms/kubernetes/prometheus.py) runs it in the run's namespace.
# docker build runs every time: its layer cache makes an unchanged Dockerfile a no-op, and a
# changed one is rebuilt (a tag-only cache would keep a stale image).
# Usage: build-prometheus-image.sh [cluster] [tag]   (default tag: dev)
. "$(dirname "$0")/lib.sh"
CLUSTER=${1:-}
IMAGE=zerodrop/prometheus:${2:-dev}
start=$SECONDS
ctx=$(mktemp -d); trap 'rm -rf "$ctx"' EXIT
cp "$HERE/images/prometheus/Dockerfile" "$ctx/"
docker_build -q -t "$IMAGE" "$ctx" >/dev/null || die "build of $IMAGE failed"
echo "$SELF: $IMAGE built in $((SECONDS - start)) s" >&2

[ -n "$CLUSTER" ] || exit 0
load_image "$IMAGE" "$CLUSTER"
