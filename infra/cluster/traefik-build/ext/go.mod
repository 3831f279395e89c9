// Stand-in for Traefik's nested module pkg/config/dynamic/ext (see build-traefik.sh): the
// module zip on the proxy leaves nested modules out, and the proxy does not serve this one.
module github.com/traefik/traefik/dynamic/ext

go 1.24.0
