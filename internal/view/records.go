package view

import (
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/spec"
)

// AppStatus is an app's status record as views show it.
type AppStatus struct {
	Current  string `json:"current"`
	Expected string `json:"expected,omitempty"`
	Since    string `json:"since,omitempty"` // RFC 3339, UTC
	Message  string `json:"message,omitempty"`
}

// Rollout is an app's deploy as views show it.
type Rollout struct {
	Phase    string `json:"phase"`
	From     int64  `json:"from"` // generation replaced
	To       int64  `json:"to"`   // generation deployed
	Strategy string `json:"strategy,omitempty"`
	Canary   int    `json:"canary,omitempty"`
	Message  string `json:"message,omitempty"`
	Active   bool   `json:"active"`
}

// App is one app: its status row, status record, deploy and (for a
// single app) its deployed spec.
type App struct {
	StatusRow
	Version string `json:"version,omitempty"`
	// IdleTimeout is the spec's passivation timeout ("" when none): with
	// LastAccess, when the app may be passivated.
	IdleTimeout string     `json:"idleTimeout,omitempty"`
	Status      *AppStatus `json:"status,omitempty"`
	Rollout     *Rollout   `json:"rollout,omitempty"`
	Spec        *spec.App  `json:"spec,omitempty"`
}

// Apps returns every app, sorted by name, without specs; never nil.
func Apps(s *registry.Snapshot) []App {
	byApp := domainsByApp(s)
	out := []App{}
	for _, name := range s.AppNames() {
		out = append(out, appView(s, name, byApp[name]))
	}
	return out
}

// OneApp returns an app with its spec, or false if the snapshot does not
// know it.
func OneApp(s *registry.Snapshot, name string) (App, bool) {
	if s.Apps[name] == nil && s.Status[name] == nil && len(s.Instances[name]) == 0 && !slices.Contains(slices.Collect(maps.Values(s.Domains)), name) {
		return App{}, false
	}
	a := appView(s, name, domainsByApp(s)[name])
	a.Spec = s.Apps[name]
	return a, true
}

func appView(s *registry.Snapshot, name string, domains []string) App {
	a := App{StatusRow: statusRow(s, name, domains)}
	if sp := s.Apps[name]; sp != nil {
		a.Version = sp.Version
		if sp.IdleTimeout > 0 {
			a.IdleTimeout = sp.IdleTimeout.String()
		}
	}
	if st := s.Status[name]; st != nil {
		a.Status = StatusOf(st)
	}
	if r := s.Rollouts[name]; r != nil {
		a.Rollout = RolloutOf(r)
	}
	return a
}

// StatusOf returns the view of a status record.
func StatusOf(st *registry.Status) *AppStatus {
	v := &AppStatus{Current: st.Current, Expected: st.Expected, Message: st.Message}
	if st.Since > 0 {
		v.Since = time.UnixMilli(st.Since).UTC().Format(time.RFC3339Nano)
	}
	return v
}

// RolloutOf returns the view of a rollout record.
func RolloutOf(r *registry.Rollout) *Rollout {
	return &Rollout{Phase: r.Phase, From: r.From, To: r.To, Strategy: r.Strategy, Canary: r.Canary, Message: r.Message, Active: r.Active()}
}

// Instance is one instance record.
type Instance struct {
	App     string               `json:"app"`
	ID      string               `json:"id"`
	Addr    string               `json:"addr"`
	State   string               `json:"state"`
	Node    string               `json:"node,omitempty"`
	Unit    string               `json:"unit,omitempty"`
	Version string               `json:"version,omitempty"`
	Gen     int64                `json:"gen"`
	Tags    []string             `json:"tags,omitempty"`
	Ports   []registry.NamedPort `json:"ports,omitempty"`
}

// InstanceOf returns the view of an instance record.
func InstanceOf(in *registry.Instance) Instance {
	return Instance{App: in.App, ID: in.ID, Addr: in.Addr, State: in.State, Node: in.Node, Unit: in.Unit,
		Version: in.Version, Gen: in.Generation(), Tags: in.Tags, Ports: in.PortList()}
}

// Instances returns the instances of app ("" for every app), sorted by app
// and id; never nil.
func Instances(s *registry.Snapshot, app string) []Instance {
	out := []Instance{}
	apps := []string{app}
	if app == "" {
		apps = slices.Sorted(maps.Keys(s.Instances))
	}
	for _, a := range apps {
		ids := slices.Sorted(maps.Keys(s.Instances[a]))
		for _, id := range ids {
			out = append(out, InstanceOf(s.Instances[a][id]))
		}
	}
	return out
}

// Node is one node record and the instances it runs.
type Node struct {
	ID        string            `json:"id"`
	Addr      string            `json:"addr"`
	Metadata  map[string]string `json:"metadata,omitempty"`
	Instances int               `json:"instances"` // instance records naming the node
}

// NodeOf returns the view of a node record (instances not counted).
func NodeOf(n *registry.Node) Node {
	return Node{ID: n.ID, Addr: n.Addr, Metadata: n.Metadata}
}

// Nodes returns every node, sorted by id; never nil.
func Nodes(s *registry.Snapshot) []Node {
	count := map[string]int{}
	for _, ins := range s.Instances {
		for _, in := range ins {
			count[in.Node]++
		}
	}
	out := []Node{}
	for _, id := range slices.Sorted(maps.Keys(s.Nodes)) {
		n := NodeOf(s.Nodes[id])
		n.Instances = count[id]
		out = append(out, n)
	}
	return out
}

// Domain is one domain record.
type Domain struct {
	Host string `json:"host"`
	App  string `json:"app"`
}

// Domains returns every domain, sorted by host; never nil.
func Domains(s *registry.Snapshot) []Domain {
	out := []Domain{}
	for _, h := range Hosts(s) {
		out = append(out, Domain{Host: h, App: s.Domains[h]})
	}
	return out
}

// Certificate is a certificate's metadata: never its key.
type Certificate struct {
	Host        string   `json:"host"`
	Subject     string   `json:"subject"`
	DNSNames    []string `json:"dnsNames,omitempty"`
	Issuer      string   `json:"issuer"`
	NotBefore   string   `json:"notBefore"` // RFC 3339, UTC
	NotAfter    string   `json:"notAfter"`  // RFC 3339, UTC
	Serial      string   `json:"serial"`
	Fingerprint string   `json:"sha256"` // of the leaf certificate (DER), hex
	// ClearKey is set for a record that holds its private key in clear
	// (written before keys were sealed; berth cert put again seals it).
	ClearKey bool `json:"clearKey,omitempty"`
}

// CertificateOf returns a certificate's metadata, or false if it has no
// parsed leaf.
func CertificateOf(host string, c *registry.StoredCert) (Certificate, bool) {
	if c == nil || c.Leaf == nil {
		return Certificate{}, false
	}
	leaf := c.Leaf
	sum := sha256.Sum256(leaf.Raw)
	return Certificate{Host: host, Subject: leaf.Subject.String(), DNSNames: leaf.DNSNames, Issuer: leaf.Issuer.String(),
		NotBefore: leaf.NotBefore.UTC().Format(time.RFC3339), NotAfter: leaf.NotAfter.UTC().Format(time.RFC3339),
		Serial: leaf.SerialNumber.String(), Fingerprint: hex.EncodeToString(sum[:]), ClearKey: c.ClearKey()}, true
}

// Certificates returns every certificate's metadata, sorted by host; never
// nil.
func Certificates(s *registry.Snapshot) []Certificate {
	hosts := slices.Collect(maps.Keys(s.Certs))
	sort.Strings(hosts)
	out := []Certificate{}
	for _, h := range hosts {
		if c, ok := CertificateOf(h, s.Certs[h]); ok {
			out = append(out, c)
		}
	}
	return out
}
