package router

import (
	"encoding/json"
	"net/http"
	"net/http/pprof"
	"sort"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/berthproject/berth/internal/daemon"
)

// AdminHandler serves /healthz, /readyz (first snapshot applied), /metrics
// (from reg), /routes (the table as JSON) and, with withPprof,
// /debug/pprof/. It belongs on a separate, local listener.
func (r *Router) AdminHandler(reg *prometheus.Registry, withPprof bool) http.Handler {
	mux := daemon.HealthMux(reg, r.Ready)
	mux.HandleFunc("GET /routes", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(r.Routes())
	})
	if withPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}

// RouteInfo is one app in /routes.
type RouteInfo struct {
	App       string         `json:"app"`
	Hosts     []string       `json:"hosts"`
	Status    string         `json:"status,omitempty"`
	Active    int64          `json:"active"`
	Upstreams []UpstreamInfo `json:"upstreams"`
	// Canary is the split of a canary rollout (nil: none).
	Canary *CanaryInfo `json:"canary,omitempty"`
}

// CanaryInfo is a route's canary split in /routes.
type CanaryInfo struct {
	Gen        int64  `json:"gen"`        // the canary's generation
	Percent    int    `json:"percent"`    // of new clients
	NewClients uint64 `json:"newClients"` // assigned by this router so far
}

// UpstreamInfo is one upstream in /routes.
type UpstreamInfo struct {
	ID        string `json:"id"`
	Addr      string `json:"addr"`
	Gen       int64  `json:"gen"`              // the instance's generation
	Canary    bool   `json:"canary,omitempty"` // on the canary side
	Available bool   `json:"available"`
	Inflight  int64  `json:"inflight"`
	Fails     int64  `json:"fails"`
	// ProbeFailing: the app's active health check fails on this upstream.
	ProbeFailing bool `json:"probeFailing,omitempty"`
}

// Routes describes the current routing table.
func (r *Router) Routes() []RouteInfo {
	t := r.table.Load()
	hosts := map[string][]string{}
	for h, rt := range t.exact {
		hosts[rt.app] = append(hosts[rt.app], h)
	}
	for h, rt := range t.wild {
		hosts[rt.app] = append(hosts[rt.app], "*."+h)
	}
	out := []RouteInfo{}
	for app, rt := range t.apps {
		ri := RouteInfo{App: app, Hosts: hosts[app], Status: rt.status, Active: rt.stats.active.Load(), Upstreams: []UpstreamInfo{}}
		sort.Strings(ri.Hosts)
		if c := rt.canary; c != nil {
			ri.Canary = &CanaryInfo{Gen: c.gen, Percent: c.percent, NewClients: c.newClients.Load()}
		}
		for i, s := range rt.sides {
			for _, u := range s.upstreams {
				ri.Upstreams = append(ri.Upstreams, UpstreamInfo{ID: u.ID, Addr: u.Addr, Gen: u.gen.gen, Canary: i == sideCanary,
					Available: u.Available(), Inflight: u.Inflight(), Fails: u.fails.Load(), ProbeFailing: u.probeDown.Load()})
			}
		}
		out = append(out, ri)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].App < out[j].App })
	return out
}
