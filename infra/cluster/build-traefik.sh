#!/usr/bin/env bash
# Traefik v3, the Gateway API implementation for weighted (canary) routing on the kind cluster,
# and the Gateway API CRDs it supports, both from the Go module proxy (no registry, no GitHub):
#   $CACHE/traefik/<v>/traefik                  go build of cmd/traefik (skipped when present)
#   zerodrop/traefik:<v>                        images/traefik/Dockerfile (scratch + CA bundle)
#   $CACHE/gateway-api/<gv>/standard/*.yaml     config/crd/standard of sigs.k8s.io/gateway-api
#                                               (the CRDs and the safe-upgrades admission policy
#                                               that upstream's standard-install.yaml also holds)
# Versions: traefik-build/VERSION (the newest v3 whose every dependency the proxy serves: see
# README.md) and traefik-build/GATEWAY_API_VERSION (the one Traefik's go.mod requires and its
# docs name). `go install …@v` is refused (Traefik's go.mod has replace directives), so this
# builds inside a copy of the downloaded module, with traefik-build/ext put in place of the
# nested module ./pkg/config/dynamic/ext that the module zip leaves out.
# Usage: build-traefik.sh [cluster]           build, cache; with a kind cluster, load the image
#                                             into it (skipped when its node already has it)
#        build-traefik.sh crds CLUSTER        the above, then apply the CRDs (server-side)
#        build-traefik.sh delete-crds CLUSTER delete them again (delete Gateway API objects first)
# kubectl: $CACHE/k8s/<k8s v>/bin/kubectl with $CACHE/kubeconfig, context kind-CLUSTER.
. "$(dirname "$0")/lib.sh"
V=$(cat "$HERE/traefik-build/VERSION")
GW=$(cat "$HERE/traefik-build/GATEWAY_API_VERSION")
MOD=github.com/traefik/traefik/v3
IMAGE=zerodrop/traefik:$V
BIN=$CACHE/traefik/$V/traefik
CRDS=$CACHE/gateway-api/$GW/standard
action=build; case ${1:-} in crds|delete-crds) action=$1; shift; [ -n "${1:-}" ] || die "$action needs a cluster name" ;; esac
CLUSTER=${1:-}
K8S=$(cat "$HERE/k8s-build/VERSION")
kubectl() { "$CACHE/k8s/$K8S/bin/kubectl" --kubeconfig "${KUBECONFIG:-$CACHE/kubeconfig}" --context "kind-$CLUSTER" "$@"; }

crd_files() { ls "$CRDS"/gateway.networking.k8s.io_*.yaml; }
if [ "$action" = delete-crds ]; then
  [ -d "$CRDS" ] || die "no CRDs cached in $CRDS"
  for f in $(crd_files); do kubectl delete --ignore-not-found -f "$f"; done
  exit 0
fi

# 1. the binary
if [ -x "$BIN" ]; then
  echo "build-traefik: traefik $V cached" >&2
else
  start=$SECONDS
  info=$(low go mod download -json "$MOD@$V") || die "go mod download $MOD@$V failed: $info"
  dir=$(field Dir <<<"$info")
  date=$(go list -m -json "$MOD@$V" | field Time)     # the module's publish time: reproducible
  want=$(awk '$1 == "sigs.k8s.io/gateway-api" {print $2}' "$dir/go.mod")
  [ "$want" = "$GW" ] || echo "build-traefik: warning: Traefik $V requires gateway-api $want, GATEWAY_API_VERSION says $GW" >&2
  src=$CACHE/traefik/$V/src; rm -rf "$src"; mkdir -p "$(dirname "$src")"
  cp -r "$dir" "$src" && chmod -R u+w "$src"
  grep -q '=> ./pkg/config/dynamic/ext$' "$src/go.mod" || die "go.mod no longer replaces dynamic/ext: check traefik-build/ext"
  [ -e "$src/pkg/config/dynamic/ext" ] || cp -r "$HERE/traefik-build/ext" "$src/pkg/config/dynamic/ext"
  (cd "$src" && CGO_ENABLED=0 GOMAXPROCS=2 low go build -p "${ZD_GO_P:-2}" -trimpath -ldflags "-s -w \
      -X $MOD/pkg/version.Version=$V -X $MOD/pkg/version.BuildDate=$date" \
      -o "$BIN.tmp" ./cmd/traefik) || { rm -rf "$src"; die "go build of traefik $V failed"; }
  mv "$BIN.tmp" "$BIN"; rm -rf "$src"
  echo "build-traefik: traefik $V built in $((SECONDS - start)) s ($(du -h "$BIN" | cut -f1))" >&2
fi

# 2. the image (docker's layer cache makes a rebuild of the same binary quick)
start=$SECONDS
ctx=$(mktemp -d); trap 'rm -rf "$ctx"' EXIT
cp "$HERE/images/traefik/Dockerfile" "$BIN" "$ctx/"
docker_build -q -t "$IMAGE" "$ctx" >/dev/null || die "build of $IMAGE failed"
echo "build-traefik: $IMAGE built in $((SECONDS - start)) s" >&2

# 3. the Gateway API CRDs (standard channel)
if ! ls "$CRDS"/gateway.networking.k8s.io_*.yaml >/dev/null 2>&1; then
  info=$(low go mod download -json "sigs.k8s.io/gateway-api@$GW") || die "go mod download gateway-api@$GW failed: $info"
  dir=$(field Dir <<<"$info")
  mkdir -p "$CRDS.tmp" && cp "$dir"/config/crd/standard/gateway.networking.k8s.io_*.yaml "$CRDS.tmp/" \
    && chmod u+w "$CRDS.tmp"/* && mv "$CRDS.tmp" "$CRDS"
  echo "build-traefik: gateway-api $GW CRDs -> $CRDS" >&2
fi

# 4. into the cluster
[ -n "$CLUSTER" ] || exit 0
load_image "$IMAGE" "$CLUSTER"
if [ "$action" = crds ]; then
  kubectl apply --server-side $(printf -- '-f %s ' $(crd_files))
  # the CRDs' names (the folder also holds the safe-upgrades ValidatingAdmissionPolicy)
  names=$(awk 'FNR == 1 {crd = 0} /^kind: CustomResourceDefinition/ {crd = 1}
               crd && /^  name: / {print "crd/" $2; crd = 0}' $(crd_files))
  kubectl wait --for condition=Established --timeout 60s $names
fi
