// Package agent is berth's node agent: it ties what runs on a node to etcd.
//
//   - Local instances announced by the unit hooks (over a unix socket) are
//     kept registered on the agent's node lease, only while their health
//     check passes, and re-registered when the lease is lost.
//   - Containers started outside berth's units are registered from the
//     Docker Engine's events, following registrator's conventions, with a
//     periodic resync that takes the engine as the truth.
//   - Over systemd's D-Bus API it reports failed berth units into the app
//     status and carries out each app's expected state (start, passivate).
package agent
