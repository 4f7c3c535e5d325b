// Package registry is berth's etcd schema (v1) and the only code that builds
// etcd keys. It holds the record types, the key builders, the watch cache
// that router, dnsd, agent and passivation read through, the lease owner
// that keeps instance records alive, and status transitions as
// transactions. docs/schema.md is the public contract it implements.
package registry
