// Package enginetest runs real container engines for tests: a systemd
// node (systemdtest, on a root with Debian's podman and docker.io) in a
// network namespace of its own, where docker.service, podman and the
// units berth renders run as they would on a machine. The engines' bridges,
// iptables rules and published ports stay inside that namespace; the test
// reaches them through NS.DialContext and gives the node the test's etcd
// through a forwarder on the node's 127.0.0.1:2379.
package enginetest
