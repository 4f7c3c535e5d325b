// Package router is berth's hipache-style HTTP reverse proxy: it routes by
// Host header to the live instances of apps, from a routing table rebuilt
// from the registry's watch cache and swapped atomically.
//
// The proxy is net/http/httputil.ReverseProxy (Rewrite, ErrorHandler) with a
// retrying Transport: dial errors are retried on another upstream for any
// request (nothing was sent), other errors only for idempotent requests
// whose body was not read. Failed upstreams are marked down for a window
// (passive health). Pages for unknown hosts (404), apps without live
// instances (503, Retry-After) and upstream errors (502) are HTML for
// browsers and text or JSON for other clients.
//
// While an app's rollout runs, its upstreams follow the rollout's phase
// (registry.Snapshot.Serving): during a canary a route has a stable and a
// canary side, new clients are split between them by an exact weighted
// round robin and kept on their side by the cookie berth-rollout-<app>
// (rollout.go), and responses are counted per generation for the
// deployer (metrics and the access records).
package router
