#!/usr/bin/env bash
# Build zerodrop-example/todo:<tag>, the example to-do service (examples/todo_service/Dockerfile:
# app.py and Debian's python3 on the debootstrap base), and load it into the kind cluster if one
# is named. The cluster tests deploy it with its own manifests (examples/todo_service/k8s).
# Usage: build-example-image.sh [tag] [kind cluster]   (default tag: dev)
. "$(dirname "$0")/lib.sh"
IMAGE="zerodrop-example/todo:${1:-dev}" CLUSTER=${2:-}
ctx=$(mktemp -d); trap 'rm -rf "$ctx"' EXIT
cp "$ROOT/examples/todo_service/Dockerfile" "$ROOT/examples/todo_service/app.py" "$ctx/"
docker_build -q -t "$IMAGE" --build-arg BASE_IMAGE=zerodrop/debian:bookworm "$ctx" >/dev/null
echo "$(basename "$0"): $IMAGE built" >&2
if [ -n "$CLUSTER" ]; then
  kind load docker-image "$IMAGE" --name "$CLUSTER"
fi
