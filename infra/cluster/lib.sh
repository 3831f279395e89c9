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
