package api

import (
	"reflect"
	"slices"
	"time"

	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/spec"
	"github.com/berthproject/berth/internal/view"
)

// Event types (docs/api.md lists them with their data).
const (
	EvAppApplied    = "app.applied"         // spec new or changed; data: view.App
	EvAppDeleted    = "app.deleted"         // spec removed
	EvStatus        = "status"              // status record changed; data: {from, to}
	EvPassivated    = "app.passivated"      // expected became passivated
	EvWoken         = "app.woken"           // expected passivated → started
	EvInstanceUp    = "instance.up"         // an instance is (now) up; data: view.Instance
	EvInstanceDown  = "instance.down"       // an instance record is gone; data: its last view
	EvInstanceState = "instance.state"      // starting or draining, or a changed record; data: view.Instance
	EvDomainAdded   = "domain.added"        // data: view.Domain
	EvDomainRemoved = "domain.removed"      // data: view.Domain (the app it served)
	EvNodeUp        = "node.up"             // data: view.Node
	EvNodeDown      = "node.down"           // data: view.Node
	EvDeploy        = "deploy"              // rollout step; data: view.Rollout
	EvCertChanged   = "certificate.changed" // added or renewed; data: view.Certificate
	EvCertRemoved   = "certificate.removed"
	evHello         = "hello" // first event of a stream: the revision it starts at
	evReset         = "reset" // re-read the state: the events since Last-Event-ID are not all held
)

// StatusChange is the data of a status event.
type StatusChange struct {
	From *view.AppStatus `json:"from"` // null: no status before
	To   *view.AppStatus `json:"to"`   // null: status removed
}

// diff returns the changes from a to b as events at b's revision. Records
// are compared by pointer first: the cache shares unchanged ones between
// snapshots.
func diff(a, b *registry.Snapshot, now time.Time) []Event {
	var out []Event
	at := now.UTC().Format(time.RFC3339Nano)
	add := func(typ, app, name string, data any) {
		out = append(out, Event{Rev: b.Rev, Type: typ, App: app, Name: name, Time: at, Data: data})
	}
	diffMap(a.Apps, b.Apps, func(name string, old, cur *spec.App) {
		if cur == nil {
			add(EvAppDeleted, name, "", nil)
			return
		}
		v, _ := view.OneApp(b, name)
		v.Spec = nil
		add(EvAppApplied, name, "", v)
	})
	diffMap(a.Status, b.Status, func(app string, old, cur *registry.Status) {
		ch := StatusChange{}
		if old != nil {
			ch.From = view.StatusOf(old)
		}
		if cur != nil {
			ch.To = view.StatusOf(cur)
		}
		if old != nil && cur != nil && *ch.From == *ch.To {
			return // units moved, nothing a reader sees
		}
		add(EvStatus, app, "", ch)
		wasAsleep := old != nil && old.Expected == registry.StatusPassivated
		asleep := cur != nil && cur.Expected == registry.StatusPassivated
		switch {
		case asleep && !wasAsleep:
			add(EvPassivated, app, "", ch.To)
		case wasAsleep && cur != nil && cur.Expected == registry.StatusStarted:
			add(EvWoken, app, "", ch.To)
		}
	})
	for _, app := range changedApps(a.Instances, b.Instances) {
		diffMap(a.Instances[app], b.Instances[app], func(id string, old, cur *registry.Instance) {
			switch {
			case cur == nil:
				add(EvInstanceDown, app, id, view.InstanceOf(old))
			case cur.State == registry.StateUp && (old == nil || old.State != registry.StateUp):
				add(EvInstanceUp, app, id, view.InstanceOf(cur))
			default:
				add(EvInstanceState, app, id, view.InstanceOf(cur))
			}
		})
	}
	diffMap(a.Domains, b.Domains, func(host, old, cur string) {
		if old != "" {
			add(EvDomainRemoved, old, host, view.Domain{Host: host, App: old})
		}
		if cur != "" {
			add(EvDomainAdded, cur, host, view.Domain{Host: host, App: cur})
		}
	})
	diffMap(a.Nodes, b.Nodes, func(id string, old, cur *registry.Node) {
		if cur == nil {
			add(EvNodeDown, "", id, view.NodeOf(old))
			return
		}
		add(EvNodeUp, "", id, view.NodeOf(cur))
	})
	diffMap(a.Rollouts, b.Rollouts, func(app string, old, cur *registry.Rollout) {
		if cur != nil {
			add(EvDeploy, app, "", view.RolloutOf(cur))
		}
	})
	diffMap(a.Certs, b.Certs, func(host string, old, cur *registry.StoredCert) {
		if cur == nil {
			add(EvCertRemoved, "", host, nil)
			return
		}
		if c, ok := view.CertificateOf(host, cur); ok {
			add(EvCertChanged, "", host, c)
		}
	})
	return out
}

// diffMap calls f for each key whose value differs between a and b (the
// zero value standing for a missing key), in key order. It allocates for
// the changed keys only.
func diffMap[V comparable](a, b map[string]V, f func(key string, old, cur V)) {
	var changed []string
	for k, old := range a {
		if cur, ok := b[k]; !ok || cur != old {
			changed = append(changed, k)
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			changed = append(changed, k)
		}
	}
	slices.Sort(changed)
	for _, k := range changed {
		f(k, a[k], b[k])
	}
}

// sameMap reports whether a and b are the same map (not equal contents):
// the cache shares an app's instance map between snapshots until one of
// its instances changes.
func sameMap[V any](a, b map[string]V) bool {
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

// changedApps returns the apps whose instance map differs between a and
// b, sorted: unchanged apps cost a pointer comparison.
func changedApps(a, b map[string]map[string]*registry.Instance) []string {
	var out []string
	for app, m := range a {
		if !sameMap(m, b[app]) {
			out = append(out, app)
		}
	}
	for app := range b {
		if _, ok := a[app]; !ok {
			out = append(out, app)
		}
	}
	slices.Sort(out)
	return out
}
