package registry

import (
	"maps"
	"sort"

	"github.com/berthproject/berth/internal/spec"
)

// Snapshot is an immutable view of the registry at one revision. Readers
// must not modify it; the cache builds a new one for every change.
type Snapshot struct {
	Rev       int64                           // etcd revision the view reflects
	Apps      map[string]*spec.App            // app name → deployed spec
	Domains   map[string]string               // host or *.wildcard → app name
	Instances map[string]map[string]*Instance // app → instance id → record
	Status    map[string]*Status              // app → status
	Access    map[string]map[string]*Access   // app → router id → access
	Nodes     map[string]*Node                // node id → record
	Certs     map[string]*StoredCert          // host or *.wildcard → certificate, its key still sealed
	Rollouts  map[string]*Rollout             // app → its rollout (a deploy in progress or ended)
}

func emptySnapshot() *Snapshot {
	return &Snapshot{
		Apps: map[string]*spec.App{}, Domains: map[string]string{}, Instances: map[string]map[string]*Instance{},
		Status: map[string]*Status{}, Access: map[string]map[string]*Access{}, Nodes: map[string]*Node{},
		Certs: map[string]*StoredCert{}, Rollouts: map[string]*Rollout{},
	}
}

// clone copies the top-level maps; nested maps are copied on write by set.
func (s *Snapshot) clone() *Snapshot {
	return &Snapshot{
		Rev: s.Rev, Apps: maps.Clone(s.Apps), Domains: maps.Clone(s.Domains), Instances: maps.Clone(s.Instances),
		Status: maps.Clone(s.Status), Access: maps.Clone(s.Access), Nodes: maps.Clone(s.Nodes),
		Certs: maps.Clone(s.Certs), Rollouts: maps.Clone(s.Rollouts),
	}
}

// Live returns an app's instances in state up, sorted by id.
func (s *Snapshot) Live(app string) []*Instance {
	var out []*Instance
	for _, in := range s.Instances[app] {
		if in.State == StateUp {
			out = append(out, in)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// AppNames returns every app known by spec, status, domain or instance, sorted.
func (s *Snapshot) AppNames() []string {
	set := map[string]bool{}
	for a := range s.Apps {
		set[a] = true
	}
	for a := range s.Status {
		set[a] = true
	}
	for a := range s.Instances {
		set[a] = true
	}
	for _, a := range s.Domains {
		set[a] = true
	}
	names := make([]string, 0, len(set))
	for a := range set {
		names = append(names, a)
	}
	sort.Strings(names)
	return names
}

// LastAccess is the latest access over all routers for app, in unix ms,
// and the total of open connections.
func (s *Snapshot) LastAccess(app string) (lastMS int64, conns int) {
	for _, a := range s.Access[app] {
		lastMS = max(lastMS, a.LastMS)
		conns += a.Conns
	}
	return lastMS, conns
}
