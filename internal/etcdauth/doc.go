// Package etcdauth holds berth's etcd roles (least privilege, as prefix
// ranges over the schema of docs/schema.md) and Apply, which creates the
// users and roles on an etcd reached with root access and enables auth,
// idempotently. Each berth role has a user of the same name, without a
// password: etcd's --client-cert-auth takes the user from the common name
// of the client certificate (internal/pki issues them).
package etcdauth
