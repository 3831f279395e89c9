// Package ext stands in for github.com/traefik/traefik/dynamic/ext, which Traefik's go.mod
// replaces by its own folder ./pkg/config/dynamic/ext. That folder is a module of its own, so
// the v3 module zip on the Go module proxy does not contain it, and the proxy does not serve
// it either. In the open-source build it only holds empty extension points, embedded inline
// in pkg/config/dynamic (HTTP into dynamic.HTTP, Router into dynamic.Router): empty structs
// are all the build needs. build-traefik.sh copies this folder into place before go build.
package ext

// HTTP extends dynamic.HTTP (nothing in this build).
type HTTP struct{}

// Router extends dynamic.Router (nothing in this build).
type Router struct{}
