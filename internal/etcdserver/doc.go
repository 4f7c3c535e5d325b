// Package etcdserver runs the embedded etcd of berth up (also used by the
// benchmarks and, through internal/etcdtest, by the tests): a single member
// in-process (server/v3/embed) with fast timing and quiet logs, whose client
// and peer ports listen on 127.0.0.1 only. StartSecure runs it with TLS,
// client certificate auth and berth's etcd roles (berth up --secure).
package etcdserver
