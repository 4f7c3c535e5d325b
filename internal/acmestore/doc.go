// Package acmestore keeps certmagic's ACME state in etcd, shared by every
// router of a cluster: the ACME account, certificates and their keys, and
// the challenge tokens of orders in progress, so that whichever router the
// CA reaches answers a challenge, and every router serves a certificate
// issued by another.
//
// Values are sealed with AES-256-GCM under a key that lives only on the
// nodes (the routers' key, read by ReadKeyFile; the sealing is package
// internal/seal, shared with the keys of "berth cert put"); the key name is the additional data,
// so a value copied to another key does not open. Locks are etcd mutexes
// (concurrency.Mutex) on a lease of their own: a router that dies holding
// one loses it when the lease expires.
package acmestore
