#!/usr/bin/env bash
# Istio's CRDs, and only them, for the istio router (platforms/kubernetes/istio.py): the
# VirtualService it writes is validated by the API server against Istio's own schema. Istio
# itself (istiod, Envoy) cannot be built on this machine, so nothing applies the routes: see
# that module's docstring. The CRDs come from the Go module proxy (no registry, no GitHub):
#   $CACHE/istio/<v>/customresourcedefinitions.gen.yaml   kubernetes/ of istio.io/api@<v>
#                                                         (every CRD an Istio release installs)
# Version: istio-build/VERSION, a tag of istio.io/api (the module versions with the release).
# Usage: build-istio-crds.sh                       download, cache
#        build-istio-crds.sh crds CLUSTER          the above, then apply them (server-side) to
#                                                  kind-CLUSTER and wait until Established
#        build-istio-crds.sh delete-crds CLUSTER   delete them again (and every Istio object)
# kubectl: $CACHE/k8s/<k8s v>/bin/kubectl with $CACHE/kubeconfig, context kind-CLUSTER.
. "$(dirname "$0")/lib.sh"
V=$(cat "$HERE/istio-build/VERSION")
MOD=istio.io/api
CRDS=$CACHE/istio/$V/customresourcedefinitions.gen.yaml
action=download; case ${1:-} in crds|delete-crds) action=$1; shift; [ -n "${1:-}" ] || die "$action needs a cluster name" ;; esac
CLUSTER=${1:-}
[ "$action" = download ] && [ -n "$CLUSTER" ] && die "unknown argument $CLUSTER; use: [crds|delete-crds CLUSTER]"
K8S=$(cat "$HERE/k8s-build/VERSION")
kubectl() { "$CACHE/k8s/$K8S/bin/kubectl" --kubeconfig "${KUBECONFIG:-$CACHE/kubeconfig}" --context "kind-$CLUSTER" "$@"; }
# the CRDs' names, crd/<plural>.<group>, as kubectl wait takes them
crd_names() { awk '/^kind: CustomResourceDefinition/ {crd = 1} crd && /^  name: / {print "crd/" $2; crd = 0}' "$CRDS"; }

if [ "$action" = delete-crds ]; then
  [ -f "$CRDS" ] || die "no CRDs cached in $CRDS; run $SELF.sh first"
  kubectl delete --ignore-not-found -f "$CRDS"
  exit 0
fi

# 1. the CRDs, cached
if [ -f "$CRDS" ]; then
  echo "$SELF: istio.io/api $V CRDs cached" >&2
else
  info=$(low go mod download -json "$MOD@$V") || die "go mod download $MOD@$V failed: $info"
  src=$(field Dir <<<"$info")/kubernetes/customresourcedefinitions.gen.yaml
  [ -f "$src" ] || die "$MOD@$V has no kubernetes/customresourcedefinitions.gen.yaml; pick another version in istio-build/VERSION"
  grep -q '^  name: virtualservices.networking.istio.io$' "$src" || die "$src holds no VirtualService CRD"
  mkdir -p "$(dirname "$CRDS")"
  cp "$src" "$CRDS.tmp" && chmod u+w "$CRDS.tmp" && mv "$CRDS.tmp" "$CRDS"
  echo "$SELF: istio.io/api $V CRDs ($(crd_names | wc -l)) -> $CRDS" >&2
fi

# 2. into the cluster
[ "$action" = crds ] || exit 0
kubectl apply --server-side --field-manager zerodrop-istio-crds -f "$CRDS" >/dev/null
kubectl wait --for condition=Established --timeout 60s $(crd_names)
