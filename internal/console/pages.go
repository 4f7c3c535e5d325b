package console

import (
	"context"
	"maps"
	"net/http"
	"slices"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/view"
)

func (c *Console) apps(r *http.Request, s *registry.Snapshot) (string, any, error) {
	return "apps", appsPageOf(s), nil
}

// appRows renders the rows of the apps named by ?app= (at most 500), for
// the script to swap in after events; an app no longer known has no row.
func (c *Console) appRows(r *http.Request, s *registry.Snapshot) (string, any, error) {
	names := r.URL.Query()["app"]
	if len(names) > 500 {
		names = names[:500]
	}
	p := appsPage{layout: layout{Rev: s.Rev}}
	for _, n := range names {
		if known(s, n) {
			p.Rows = append(p.Rows, appRowOf(s, n))
		}
	}
	p.RowsHTML = appRowsHTML(p.Rows)
	return "rows", p, nil
}

func (c *Console) app(r *http.Request, s *registry.Snapshot) (string, any, error) {
	name := r.PathValue("app")
	if !known(s, name) {
		return "", nil, notFound("no app " + name + " in the registry (the apps page lists them)")
	}
	return "app", c.appPageOf(s, name), nil
}

// nodeRow is one node with what runs on it and its lease.
type nodeRow struct {
	ID, Addr  string
	Metadata  [][2]string
	Instances int
	Units     []string // units of instances and status records naming the node
	Lease     *leaseInfo
}

// leaseInfo is a node's lease as etcd reports it.
type leaseInfo struct {
	ID           int64
	TTL, Granted time.Duration // left, and granted at each renewal
	Err          string
}

// Renewed is how long ago the agent last kept the lease alive.
func (l *leaseInfo) Renewed() time.Duration { return l.Granted - l.TTL }

type nodesPage struct {
	layout
	Rows []nodeRow
}

func (c *Console) nodes(r *http.Request, s *registry.Snapshot) (string, any, error) {
	units := map[string]map[string]bool{}
	count := map[string]int{}
	addUnit := func(node, unit string) {
		if units[node] == nil {
			units[node] = map[string]bool{}
		}
		units[node][unit] = true
	}
	for _, ins := range s.Instances {
		for _, in := range ins {
			count[in.Node]++
			if in.Unit != "" {
				addUnit(in.Node, in.Unit)
			}
		}
	}
	for _, st := range s.Status {
		for node, us := range st.Units {
			for _, u := range us {
				addUnit(node, u)
			}
		}
	}
	p := nodesPage{layout: layout{Title: "Nodes", Nav: "nodes", Rev: s.Rev}}
	for _, id := range slices.Sorted(maps.Keys(s.Nodes)) {
		n := s.Nodes[id]
		row := nodeRow{ID: id, Addr: n.Addr, Instances: count[id], Units: slices.Sorted(maps.Keys(units[id]))}
		for _, k := range slices.Sorted(maps.Keys(n.Metadata)) {
			row.Metadata = append(row.Metadata, [2]string{k, n.Metadata[k]})
		}
		if n.Lease != 0 && c.cfg.Leases != nil {
			row.Lease = &leaseInfo{ID: n.Lease}
		}
		p.Rows = append(p.Rows, row)
	}
	c.leases(r.Context(), p.Rows)
	return "nodes", p, nil
}

// leases asks etcd for the nodes' leases, at most 16 at once, within 2s.
func (c *Console) leases(ctx context.Context, rows []nodeRow) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 16)
	for i := range rows {
		l := rows[i].Lease
		if l == nil {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			resp, err := c.cfg.Leases.TimeToLive(ctx, clientv3.LeaseID(l.ID))
			switch {
			case err != nil:
				l.Err = err.Error()
			case resp.TTL < 0:
				l.Err = "expired"
			default:
				l.TTL, l.Granted = time.Duration(resp.TTL)*time.Second, time.Duration(resp.GrantedTTL)*time.Second
			}
		}()
	}
	wg.Wait()
}

// certRow is a certificate's metadata and how long it has left.
type certRow struct {
	view.Certificate
	Left time.Duration
}

// Tone is ok, warn (under 14 days) or bad (expired).
func (r certRow) Tone() string {
	switch {
	case r.Left <= 0:
		return "bad"
	case r.Left < 14*24*time.Hour:
		return "warn"
	}
	return "ok"
}

type certsPage struct {
	layout
	Rows []certRow
}

func (c *Console) certificates(r *http.Request, s *registry.Snapshot) (string, any, error) {
	p := certsPage{layout: layout{Title: "Certificates", Nav: "certificates", Rev: s.Rev}}
	now := c.cfg.Now()
	for _, cert := range view.Certificates(s) {
		row := certRow{Certificate: cert}
		if t, err := time.Parse(time.RFC3339, cert.NotAfter); err == nil {
			row.Left = t.Sub(now)
		}
		p.Rows = append(p.Rows, row)
	}
	return "certificates", p, nil
}

type eventsPage struct {
	layout
	Events []eventRow
}

func (c *Console) eventLog(r *http.Request, s *registry.Snapshot) (string, any, error) {
	p := eventsPage{layout: layout{Title: "Events", Nav: "events", Rev: s.Rev}}
	if c.cfg.Events != nil {
		p.Events = eventRows(c.cfg.Events("", 200))
	}
	return "events", p, nil
}

// known reports whether the snapshot knows app by any record.
func known(s *registry.Snapshot, app string) bool {
	if s.Apps[app] != nil || s.Status[app] != nil || len(s.Instances[app]) > 0 {
		return true
	}
	for _, a := range s.Domains {
		if a == app {
			return true
		}
	}
	return false
}
