package registry

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"strconv"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Instance states.
const (
	StateStarting = "starting"
	StateUp       = "up"
	StateDraining = "draining"
)

// Status words (Gogeta's vocabulary) for Status.Current and Status.Expected.
const (
	StatusStarting   = "starting"
	StatusStarted    = "started" // Current: running
	StatusStopping   = "stopping"
	StatusStopped    = "stopped"
	StatusPassivated = "passivated"
	StatusFailed     = "failed"
)

// Instance is /berth/v1/instances/<app>/<id>, written on a lease.
type Instance struct {
	App     string   `json:"-"`                 // from the key
	ID      string   `json:"-"`                 // from the key
	Addr    string   `json:"addr"`              // host:port the router dials
	Node    string   `json:"node,omitempty"`    // machine id of the node
	Unit    string   `json:"unit,omitempty"`    // systemd unit, e.g. paas-monitor@1.service
	Tags    []string `json:"tags,omitempty"`    // registry tags ("http")
	Version string   `json:"version,omitempty"` // app version
	State   string   `json:"state"`             // starting, up or draining
	Port    string   `json:"port,omitempty"`    // port name (SRV), default the app name
}

// Validate checks a decoded instance.
func (in *Instance) Validate() error {
	host, port, err := net.SplitHostPort(in.Addr)
	if err != nil || net.ParseIP(host) == nil && host == "" {
		return fmt.Errorf("addr %q is not host:port", in.Addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("addr %q has no valid port", in.Addr)
	}
	switch in.State {
	case StateStarting, StateUp, StateDraining:
	default:
		return fmt.Errorf("state %q is not starting, up or draining", in.State)
	}
	return nil
}

// Domain is /berth/v1/domains/<host>.
type Domain struct {
	Host string `json:"-"`   // from the key
	App  string `json:"app"` // the app serving the host
}

// Status is /berth/v1/status/<app>, changed only by transactions.
type Status struct {
	Current  string              `json:"current"`            // starting, started, stopping, stopped, passivated, failed
	Expected string              `json:"expected,omitempty"` // started or passivated
	Since    int64               `json:"since,omitempty"`    // unix ms of the last change
	Units    map[string][]string `json:"units,omitempty"`    // node → units of the app on it
	Message  string              `json:"message,omitempty"`  // why, for failed
}

// Access is /berth/v1/access/<app>/<router>, written on the router's lease.
type Access struct {
	LastMS int64 `json:"last"`            // unix ms of the last request
	Conns  int   `json:"conns,omitempty"` // open connections now
}

// Node is /berth/v1/nodes/<node>, written on the agent's lease.
type Node struct {
	ID    string `json:"-"`
	Addr  string `json:"addr"`            // advertised IP
	Lease int64  `json:"lease,omitempty"` // the agent's lease, for hooks to attach to
	// Metadata is the machine's metadata for [X-Fleet] MachineMetadata
	// (berth agent --metadata role=worker,az=a).
	Metadata map[string]string `json:"metadata,omitempty"`
}

// Cert is /berth/v1/certs/<host>: a certificate chain and its key, PEM.
type Cert struct {
	Cert string `json:"cert"`
	Key  string `json:"key"`
}

func decode[T any](b []byte) (*T, error) {
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	return &v, nil
}

// DeleteInstanceOf deletes an instance record unless another node holds
// it now: when a scheduler moved the instance, the stop of its old copy
// must not remove the record of its new one. node "" deletes any.
func DeleteInstanceOf(ctx context.Context, kv clientv3.KV, key, node string) error {
	resp, err := kv.Get(ctx, key)
	if err != nil || len(resp.Kvs) == 0 {
		return err
	}
	var in Instance
	if node != "" && json.Unmarshal(resp.Kvs[0].Value, &in) == nil && in.Node != "" && in.Node != node {
		return nil
	}
	_, err = kv.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", resp.Kvs[0].ModRevision)).
		Then(clientv3.OpDelete(key)).Commit()
	return err
}
