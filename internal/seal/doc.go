// Package seal encrypts the routers' secrets kept in etcd, found in clear
// only on the nodes, under the routers' key (--router-key-file): 32 bytes
// shared by every router.
//
// The ACME storage (internal/acmestore) is sealed with AES-256-GCM under
// that key (Sealer). The private keys of the certificates stored with
// "berth cert put" are sealed with HPKE (RFC 9180) to the routers' public
// key (Recipient), whose pair is derived from the routers' key
// (PrivateFromKey), so an operator seals without holding it. Each value is
// sealed with additional data (or HPKE info) naming what it is and where it
// belongs, so a value copied to another record does not open.
package seal
