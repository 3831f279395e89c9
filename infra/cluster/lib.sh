# The preamble every script here sources, instead of a copy in each: strict mode, where
# things are, and the helpers every step uses. Source it first:  . "$(dirname "$0")/lib.sh"
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)          # this folder
ROOT=$(cd "$HERE/../.." && pwd)              # the repository
CACHE=${ZD_CLUSTER_CACHE:-/var/cache/zerodrop-cluster}
DOCKER=/usr/bin/docker   # Debian's client: /usr/local/bin may hold an unrelated newer one
SELF=$(basename "$0" .sh)
die() { echo "$SELF: $*" >&2; exit 1; }
# builds yield the CPU and the disk to everything else on this 2-core machine
low() { nice -n 19 ionice -c3 "$@"; }
docker_build() { DOCKER_BUILDKIT=0 low "$DOCKER" build "$@"; }
# kind (go install'ed), run with Debian's docker client first on PATH, as kind calls `docker`
kind() { PATH=/usr/bin:$PATH "${KIND:-$(go env GOPATH)/bin/kind}" "$@"; }
# load_image IMAGE CLUSTER: `kind load` a local image into the cluster's node, unless the node's
# containerd already holds it with the same config digest as the local one
load_image() {
  local image=$1 cluster=$2 node=$2-control-plane id digest start
  id=$("$DOCKER" image inspect -f '{{.Id}}' "$image") || die "no local image $image"
  digest=$("$DOCKER" exec "$node" ctr -n k8s.io images ls "name==docker.io/$image" | awk 'NR == 2 {print $3}')
  if [ -n "$digest" ] && [ "$("$DOCKER" exec "$node" ctr -n k8s.io content get "$digest" \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["config"]["digest"])')" = "$id" ]; then
    echo "$SELF: $node already has $image" >&2
    return 0
  fi
  start=$SECONDS
  kind load docker-image "$image" --name "$cluster"
  echo "$SELF: $image loaded into $cluster in $((SECONDS - start)) s" >&2
}
# field NAME: one field of the JSON object on stdin (`go mod download -json`'s Dir, `go list -m
# -json`'s Time)
field() { python3 -c 'import json,sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }
