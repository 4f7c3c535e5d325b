// Package api is berth's HTTP API: JSON over HTTP under /v1/, described
// by the OpenAPI 3 document it serves at /v1/openapi.json (docs/api.md).
//
// Reads answer from the registry's watch cache (no etcd read per
// request); GET /v1/events streams changes as Server-Sent Events, fed by
// that same cache through one Hub, resumable with Last-Event-ID (an etcd
// revision). Mutations reuse what the CLI runs (registry.Apply, ScaleApp,
// control.Deleter, deploy.Publish, fleet.Store, ...) through a KV that
// turns every write into an etcd transaction carrying an audit record
// (<root>/v1/audit/, on a lease that bounds its retention).
//
// Callers authenticate with bearer tokens (Authorization: Bearer ...)
// whose SHA-256 is stored in etcd (<root>/v1/tokens/) with a scope: read
// or admin. berth up's API answers reads from loopback without a token.
package api
