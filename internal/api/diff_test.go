package api

import (
	"fmt"
	"maps"
	"slices"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/spec"
)

// bigSnapshot has apps apps of per instances each, all up.
func bigSnapshot(apps, per int) *registry.Snapshot {
	s := &registry.Snapshot{Rev: 1, Apps: map[string]*spec.App{}, Domains: map[string]string{}, Instances: map[string]map[string]*registry.Instance{},
		Status: map[string]*registry.Status{}, Nodes: map[string]*registry.Node{}, Rollouts: map[string]*registry.Rollout{}}
	for i := range apps {
		name := fmt.Sprintf("app-%04d", i)
		s.Apps[name] = &spec.App{Name: name, Version: "1.0.0", Instances: per}
		s.Domains[name+".example.com"] = name
		s.Status[name] = &registry.Status{Current: registry.StatusStarted, Expected: registry.StatusStarted}
		m := map[string]*registry.Instance{}
		for j := range per {
			id := fmt.Sprint(j)
			m[id] = &registry.Instance{App: name, ID: id, Addr: fmt.Sprintf("10.0.%d.%d:8080", i%250, j), State: registry.StateUp}
		}
		s.Instances[name] = m
	}
	return s
}

// withInstance returns a copy of s sharing every unchanged record, as the
// watch cache builds it, with one instance of app in state.
func withInstance(s *registry.Snapshot, app, id, state string) *registry.Snapshot {
	b := *s
	b.Rev++
	b.Instances = maps.Clone(s.Instances)
	m := maps.Clone(s.Instances[app])
	in := *m[id]
	in.State = state
	m[id] = &in
	b.Instances[app] = m
	return &b
}

func TestAPIDiff(t *testing.T) {
	a := bigSnapshot(3, 2)
	b := withInstance(a, "app-0001", "1", registry.StateDraining)
	evs := diff(a, b, time.Unix(0, 0))
	if len(evs) != 1 || evs[0].Type != EvInstanceState || evs[0].App != "app-0001" || evs[0].Name != "1" || evs[0].Rev != b.Rev {
		t.Fatalf("one instance draining: %+v", evs)
	}
	c := withInstance(b, "app-0001", "1", registry.StateUp)
	if evs := diff(b, c, time.Unix(0, 0)); len(evs) != 1 || evs[0].Type != EvInstanceUp {
		t.Fatalf("back up: %+v", evs)
	}
	d := *c
	d.Status = maps.Clone(c.Status)
	d.Status["app-0002"] = &registry.Status{Current: registry.StatusPassivated, Expected: registry.StatusPassivated}
	d.Domains = maps.Clone(c.Domains)
	delete(d.Domains, "app-0000.example.com")
	var types []string
	for _, ev := range diff(c, &d, time.Unix(0, 0)) {
		types = append(types, ev.Type+" "+ev.App)
	}
	want := []string{EvStatus + " app-0002", EvPassivated + " app-0002", EvDomainRemoved + " app-0000"}
	if !slices.Equal(types, want) {
		t.Fatalf("got %v, want %v", types, want)
	}
	if evs := diff(&d, &d, time.Unix(0, 0)); len(evs) != 0 {
		t.Fatalf("no change: %+v", evs)
	}
}

// naiveDiff is the baseline of BenchmarkDiff: every instance of every app
// compared, keys sorted, as a diff without the cache's sharing would.
func naiveDiff(a, b *registry.Snapshot) int {
	n := 0
	apps := map[string]bool{}
	for app := range a.Instances {
		apps[app] = true
	}
	for app := range b.Instances {
		apps[app] = true
	}
	for _, app := range slices.Sorted(maps.Keys(apps)) {
		ids := map[string]bool{}
		for id := range a.Instances[app] {
			ids[id] = true
		}
		for id := range b.Instances[app] {
			ids[id] = true
		}
		for _, id := range slices.Sorted(maps.Keys(ids)) {
			if a.Instances[app][id] != b.Instances[app][id] {
				n++
			}
		}
	}
	return n
}

// BenchmarkDiff: the hub's cost per registry change on 1,000 apps and
// 10,000 instances (one instance changed), against comparing everything.
func BenchmarkDiff(b *testing.B) {
	a := bigSnapshot(1000, 10)
	c := withInstance(a, "app-0500", "3", registry.StateDraining)
	b.Run("hub", func(b *testing.B) {
		for b.Loop() {
			if len(diff(a, c, time.Unix(0, 0))) != 1 {
				b.Fatal("want one event")
			}
		}
	})
	b.Run("baseline-compare-all", func(b *testing.B) {
		for b.Loop() {
			if naiveDiff(a, c) != 1 {
				b.Fatal("want one change")
			}
		}
	})
}
