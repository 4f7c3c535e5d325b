package view

import (
	"slices"
	"time"

	"github.com/berthproject/berth/internal/registry"
)

// StatusRow is one app in "berth status" and GET /v1/status.
type StatusRow struct {
	App       string `json:"app"`
	Current   string `json:"current"`
	Expected  string `json:"expected,omitempty"`
	Up        int    `json:"up"`
	Instances int    `json:"instances"` // registered, live or not
	// Wanted is the number of instances the deployed spec asks for (0 while
	// passivated; the registered count when no spec is deployed).
	Wanted     int      `json:"wanted"`
	LastAccess string   `json:"lastAccess,omitempty"` // RFC 3339, UTC
	Conns      int      `json:"conns"`
	Domains    []string `json:"domains,omitempty"` // sorted
}

// Status returns a row per app known to the snapshot, sorted by app; never
// nil.
func Status(s *registry.Snapshot) []StatusRow {
	byApp := domainsByApp(s)
	rows := []StatusRow{}
	for _, app := range s.AppNames() {
		rows = append(rows, statusRow(s, app, byApp[app]))
	}
	return rows
}

func statusRow(s *registry.Snapshot, app string, domains []string) StatusRow {
	r := StatusRow{App: app, Current: "-", Up: len(s.Live(app)), Instances: len(s.Instances[app]), Domains: domains}
	r.Wanted = r.Instances
	if a := s.Apps[app]; a != nil {
		r.Wanted = a.Instances
	}
	if st := s.Status[app]; st != nil {
		r.Current, r.Expected = st.Current, st.Expected
		if st.Expected == registry.StatusPassivated {
			r.Wanted = 0
		}
	}
	if last, conns := s.LastAccess(app); last > 0 {
		r.LastAccess = time.UnixMilli(last).UTC().Format(time.RFC3339)
		r.Conns = conns
	}
	return r
}

// domainsByApp returns each app's hosts, sorted.
func domainsByApp(s *registry.Snapshot) map[string][]string {
	out := map[string][]string{}
	for d, a := range s.Domains {
		out[a] = append(out[a], d)
	}
	for _, ds := range out {
		slices.Sort(ds)
	}
	return out
}

// RouteRow is one host in "berth routes": the app serving it and its live
// backends.
type RouteRow struct {
	Host     string   `json:"host"`
	App      string   `json:"app"`
	Backends []string `json:"backends"` // host:port of the live instances, by instance id
	// Wanted is the number of instances the app's spec asks for (0 while
	// passivated); Starting is how many of them are not live yet (a scale
	// or a wake in progress).
	Wanted   int  `json:"wanted"`
	Starting int  `json:"starting"`
	Asleep   bool `json:"asleep,omitempty"` // passivated: the next request wakes it
}

// Routes returns a row per domain, sorted by host; never nil.
func Routes(s *registry.Snapshot) []RouteRow {
	rows := []RouteRow{}
	for _, host := range Hosts(s) {
		app := s.Domains[host]
		r := RouteRow{Host: host, App: app, Backends: []string{}}
		for _, in := range s.Live(app) {
			r.Backends = append(r.Backends, in.Addr)
		}
		if a := s.Apps[app]; a != nil {
			r.Wanted = a.Instances
		}
		if st := s.Status[app]; st != nil && st.Expected == registry.StatusPassivated {
			r.Wanted, r.Asleep = 0, true
		}
		r.Starting = max(0, r.Wanted-len(r.Backends))
		rows = append(rows, r)
	}
	return rows
}

// Hosts returns the snapshot's domains, sorted.
func Hosts(s *registry.Snapshot) []string {
	hosts := make([]string, 0, len(s.Domains))
	for h := range s.Domains {
		hosts = append(hosts, h)
	}
	slices.Sort(hosts)
	return hosts
}
