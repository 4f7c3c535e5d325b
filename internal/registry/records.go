package registry

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"sort"
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
	Port    string   `json:"port,omitempty"`    // name of the primary port (Addr), default the app name
	Gen     int64    `json:"gen,omitempty"`     // release generation (none: 1)
	// Ports holds every port of the instance by name, the primary one
	// included. Records of older writers have none. Readers take the
	// primary port from Addr, Port and Tags (see PortList).
	Ports map[string]InstancePort `json:"ports,omitempty"`
}

// InstancePort is one named port of an instance: where it is reached,
// its protocol and its registry tags (registrator's SERVICE_<port>_TAGS).
type InstancePort struct {
	Addr  string   `json:"addr"`            // host:port
	Proto string   `json:"proto,omitempty"` // tcp (default) or udp; readers skip a port of another protocol
	Tags  []string `json:"tags,omitempty"`
}

// NamedPort is one port of an instance as PortList returns it.
type NamedPort struct {
	Name  string   // port name (SRV _<name>._<proto>)
	Addr  string   // host:port
	Proto string   // tcp or udp
	Tags  []string // registry tags
}

// PortList returns the instance's ports, the primary port first (Addr,
// named Port or else the app's name, with Tags), then the others of Ports
// sorted by name. A record without Ports (an older writer's) has its
// primary port only. Ports of a protocol other than tcp and udp are
// left out.
func (in *Instance) PortList() []NamedPort {
	primary := NamedPort{Name: in.PrimaryPort(), Addr: in.Addr, Proto: "tcp", Tags: in.Tags}
	if p, ok := in.Ports[primary.Name]; ok && p.Proto == "udp" {
		primary.Proto = "udp"
	}
	out := []NamedPort{primary}
	names := make([]string, 0, len(in.Ports))
	for name, p := range in.Ports {
		if name != primary.Name && (p.Proto == "" || p.Proto == "tcp" || p.Proto == "udp") {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	for _, name := range names {
		p := in.Ports[name]
		out = append(out, NamedPort{Name: name, Addr: p.Addr, Proto: cmp.Or(p.Proto, "tcp"), Tags: p.Tags})
	}
	return out
}

// PrimaryPort is the name of the port in Addr: Port, or the app's name.
func (in *Instance) PrimaryPort() string { return cmp.Or(in.Port, in.App) }

// SetPorts sets the instance's ports: the first is the primary one (Addr,
// Port and Tags); Ports then holds them all.
func (in *Instance) SetPorts(ports []NamedPort) {
	if len(ports) == 0 {
		return
	}
	in.Addr, in.Port, in.Tags = ports[0].Addr, ports[0].Name, ports[0].Tags
	in.Ports = make(map[string]InstancePort, len(ports))
	for _, p := range ports {
		proto := p.Proto
		if proto == "tcp" {
			proto = ""
		}
		in.Ports[p.Name] = InstancePort{Addr: p.Addr, Proto: proto, Tags: p.Tags}
	}
}

// Validate checks a decoded instance.
func (in *Instance) Validate() error {
	if err := checkAddr(in.Addr); err != nil {
		return err
	}
	switch in.State {
	case StateStarting, StateUp, StateDraining:
	default:
		return fmt.Errorf("state %q is not starting, up or draining", in.State)
	}
	for name, p := range in.Ports {
		if !rePort.MatchString(name) {
			return fmt.Errorf("ports: name %q: lowercase letters, digits and '-'", name)
		}
		if err := checkAddr(p.Addr); err != nil {
			return fmt.Errorf("ports[%s]: %w", name, err)
		}
	}
	return nil
}

// rePort is a port name: the spec's rule, a DNS label.
var rePort = reApp

// checkAddr checks a host:port with a port 1..65535.
func checkAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil || host == "" {
		return fmt.Errorf("addr %q is not host:port", addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
		return fmt.Errorf("addr %q has no valid port", addr)
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
	// Gens counts the router's responses by generation of the instance
	// that answered, while a rollout of the app runs (nil otherwise, and in
	// records of routers older than rollouts): every generation with a live
	// instance, cumulative since the router first routed to it.
	Gens map[int64]GenCounts `json:"gens,omitempty"`
}

// GenCounts are one router's responses from one generation of an app.
type GenCounts struct {
	Requests  int64 `json:"requests"`  // responses, every status
	Errors5xx int64 `json:"errors5xx"` // of which 5xx (the router's 502/504 after the last attempt included)
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

// Cert is /berth/v1/certs/<host>: a certificate chain (PEM, public,
// readable by every reader of the registry) and its private key sealed
// to the routers' recipient (SealCertKey, HPKE; base64 in JSON), which
// only a router opens (StoredCert.Open). Key is the private key in clear (PEM) of a record
// written before keys were sealed: still served, warned about, never
// written any more.
type Cert struct {
	Cert      string `json:"cert"`
	KeySealed []byte `json:"keySealed,omitempty"`
	Key       string `json:"key,omitempty"`
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
