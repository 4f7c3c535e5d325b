// Package secret seals app secrets for the cluster and keeps them in etcd.
//
// Values are encrypted with age (filippo.io/age, X25519) to the cluster's
// recipients, the public keys stored at registry.Keys.SecretRecipients, so
// an operator can seal a value without any private key. Nodes hold the
// matching identity (a 0600 file, DefaultIdentityFile) and open the values
// their units reference in the pre-start hook. Rotation re-seals every
// value to new recipients. docs/secrets.md describes the whole flow.
package secret
