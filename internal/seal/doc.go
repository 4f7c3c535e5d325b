// Package seal encrypts the routers' secrets kept in etcd with AES-256-GCM
// under one 32-byte key shared by every router and found only on the nodes
// (the routers' key, --router-key-file): the ACME storage
// (internal/acmestore) and the private keys of the certificates stored
// with "berth cert put" (internal/registry). Each value is sealed with
// additional data naming what it is and where it belongs, so a value
// copied to another record does not open.
package seal
