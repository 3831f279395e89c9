#!/usr/bin/env bash
# kube-state-metrics from the Go module proxy (no registry, no GitHub), for the canary's cluster
# Prometheus (platforms/kubernetes/prometheus.py runs it in the run's namespace): without it the
# dashboard's "Pod Status by Version" panel (kube_pod_status_phase) has no data on kind.
#   $CACHE/kube-state-metrics/<v>/kube-state-metrics   go build of the module (skipped when present)
#   zerodrop/kube-state-metrics:<v>      images/kube-state-metrics/Dockerfile (scratch + the
#                                        static binary, user 65534)
# Version: kube-state-metrics-build/VERSION, the newest v2 release the proxy serves whose every
# dependency downloads (see README.md). `go install module@v` is refused even though its go.mod
# has no replace directive: go install reads the module's version list for deprecations, and the
# proxy answers @v/list with 403. So this builds inside a copy of the downloaded module, with its
# own go.mod and go.sum, as build-traefik.sh does; the copy is removed afterwards.
# Usage: build-kube-state-metrics.sh [cluster]   build, cache; with a kind cluster, load the image
#                                                into it (skipped when its node already has it)
. "$(dirname "$0")/lib.sh"
V=$(cat "$HERE/kube-state-metrics-build/VERSION")
MOD=k8s.io/kube-state-metrics/v2
IMAGE=zerodrop/kube-state-metrics:$V
DIR=$CACHE/kube-state-metrics/$V
BIN=$DIR/kube-state-metrics
CLUSTER=${1:-}

# 1. the binary
if [ -x "$BIN" ]; then
  echo "$SELF: kube-state-metrics $V cached" >&2
else
  start=$SECONDS
  info=$(low go mod download -json "$MOD@$V") || die "go mod download $MOD@$V failed: $info"
  dir=$(field Dir <<<"$info")
  date=$(go list -m -json "$MOD@$V" | field Time)     # the module's publish time: reproducible
  clientgo=$(awk '$1 == "k8s.io/client-go" {print $2}' "$dir/go.mod")
  src=$DIR/src; rm -rf "$src"; mkdir -p "$DIR"
  cp -r "$dir" "$src" && chmod -R u+w "$src"
  # the -X flags upstream's Makefile sets (Revision, Branch, BuildUser are git's: left out)
  (cd "$src" && CGO_ENABLED=0 GOMAXPROCS=2 low go build -p "${ZD_GO_P:-2}" -trimpath \
      -ldflags "-s -w \
      -X github.com/prometheus/common/version.Version=$V \
      -X github.com/prometheus/common/version.BuildDate=$date \
      -X $MOD/pkg/app.ClientGoVersion=$clientgo" -o "$BIN.tmp" .) \
    || { rm -rf "$src" "$BIN.tmp"; die "go build of kube-state-metrics $V failed"; }
  mv "$BIN.tmp" "$BIN"; rm -rf "$src"
  echo "$SELF: kube-state-metrics $V built in $((SECONDS - start)) s" \
       "($(du -h "$BIN" | cut -f1))" >&2
fi

# 2. the image (docker's layer cache makes a rebuild of the same binary quick)
start=$SECONDS
ctx=$(mktemp -d); trap 'rm -rf "$ctx"' EXIT
cp "$HERE/images/kube-state-metrics/Dockerfile" "$BIN" "$ctx/"
docker_build -q -t "$IMAGE" "$ctx" >/dev/null || die "build of $IMAGE failed"
echo "$SELF: $IMAGE built in $((SECONDS - start)) s" >&2

# 3. into the cluster
[ -n "$CLUSTER" ] || exit 0
load_image "$IMAGE" "$CLUSTER"
