// Package pki is berth's small certificate authority for etcd: an ECDSA
// P-256 CA whose key stays in one directory on the operator's machine
// (Init), and the certificates it issues (CA.Issue): server and peer
// certificates for etcd members, client certificates whose common name is
// the etcd user a client acts as (etcd's --client-cert-auth takes the user
// from the CN). Only the Go standard library's crypto/x509 is used.
package pki
