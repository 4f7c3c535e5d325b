package router

import (
	"cmp"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/berthproject/berth/internal/spec"

	"github.com/berthproject/berth/internal/registry"
)

// route is what the router knows of one app in one table.
type route struct {
	app string
	// upstreams are the instances that take the app's requests
	// (registry.Snapshot.Serving): the stable side's, then the canary's.
	upstreams []*Upstream
	sides     [2]side      // sideStable, sideCanary (empty without a canary)
	canary    *canarySplit // the split during a canary (nil: none)
	rollout   bool         // a rollout of the app runs: access records carry gens
	gens      []*genStats  // per generation, sorted
	maxConns  int64
	status    string        // status.current ("" if unknown)
	expected  string        // status.expected
	since     int64         // status.since (unix ms)
	instances int           // instances the spec asks for (0 if unknown)
	plainHTTP string        // spec.HTTPSBoth, HTTPSRedirect or HTTPSOnly: what plain HTTP gets
	hsts      time.Duration // Strict-Transport-Security max-age over TLS (0: none)
	hstsHdr   string        // its header value ("" when hsts is 0)
	h2c       bool          // HTTP/2 without TLS to the upstreams (gRPC)
	health    *healthCheck  // active checks (nil: passive health only)
	stats     *appStats
}

// appStats are an app's counters, shared by every table (they survive
// rebuilds).
type appStats struct {
	active     atomic.Int64 // requests and connections open now
	lastAccess atomic.Int64 // unix ms of the last request

	once     sync.Once
	codes    [6]prometheus.Counter // requests by status class 1xx..5xx
	duration prometheus.Observer
}

// observe counts a finished request; the metric children are resolved
// once per app, not per request.
func (s *appStats) observe(m *metrics, app string, status int, d time.Duration) {
	s.once.Do(func() {
		for i := 1; i <= 5; i++ {
			s.codes[i] = m.requests.WithLabelValues(app, classLabel(i))
		}
		s.duration = m.duration.WithLabelValues(app)
	})
	if class := statusClass(status); class >= 1 && class <= 5 {
		s.codes[class].Inc()
	}
	s.duration.Observe(d.Seconds())
}

// Table is an immutable routing table built from one registry snapshot.
type Table struct {
	Rev   int64
	exact map[string]*route // host → route
	wild  map[string]*route // "example.com" for "*.example.com"
	apps  map[string]*route // app name → route
}

// tableBuilder keeps the state that outlives a table: each app's route,
// reused as long as its instances, spec, status and rollout are the same
// maps and records in the snapshot (the watch cache copies only what
// changes), so a change rebuilds only the apps it touched; upstream and
// generation counters survive.
type tableBuilder struct {
	mu      sync.Mutex
	routes  map[string]builtRoute
	metrics *metrics // whose per-generation series go with their generation
}

type builtRoute struct {
	r          *route
	instances  uintptr // identity of the snapshot's instance map of the app
	spec       *spec.App
	status     *registry.Status
	rollout    *registry.Rollout
	upstreams  map[string]*Upstream // id/addr → upstream
	newClients *atomic.Uint64       // the canary split's count (nil: no canary)
}

func newTableBuilder(m *metrics) *tableBuilder {
	return &tableBuilder{routes: map[string]builtRoute{}, metrics: m}
}

func mapIdentity(m map[string]*registry.Instance) uintptr {
	if m == nil {
		return 0
	}
	return reflect.ValueOf(m).Pointer()
}

// build makes a table from a snapshot. Calls are serialized.
func (b *tableBuilder) build(s *registry.Snapshot) *Table {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := &Table{Rev: s.Rev, exact: make(map[string]*route, len(s.Domains)), wild: map[string]*route{}, apps: make(map[string]*route, len(b.routes))}
	seen := make(map[string]bool, len(b.routes))
	add := func(app string) {
		if seen[app] {
			return
		}
		seen[app] = true
		t.apps[app] = b.route(s, app)
	}
	for app := range s.Apps {
		add(app)
	}
	for app := range s.Instances {
		add(app)
	}
	for app := range s.Status {
		add(app)
	}
	for _, app := range s.Domains {
		add(app)
	}
	for host, app := range s.Domains {
		if suffix, ok := strings.CutPrefix(host, "*."); ok {
			t.wild[suffix] = t.apps[app]
		} else {
			t.exact[host] = t.apps[app]
		}
	}
	for app, br := range b.routes {
		if !seen[app] {
			for _, g := range br.r.gens {
				g.forget(b.metrics)
			}
			delete(b.routes, app)
		}
	}
	return t
}

// route returns the app's route, reusing the previous one when nothing it
// is made of changed.
func (b *tableBuilder) route(s *registry.Snapshot, app string) *route {
	prev, ok := b.routes[app]
	id, sp, st, ro := mapIdentity(s.Instances[app]), s.Apps[app], s.Status[app], s.Rollouts[app]
	if ok && prev.instances == id && prev.spec == sp && prev.status == st && prev.rollout == ro {
		return prev.r
	}
	r := &route{app: app}
	policy := ""
	if sp != nil {
		policy = sp.Routing.Policy
		r.maxConns = int64(sp.Routing.MaxConns)
		r.plainHTTP, r.hsts = sp.Routing.PlainHTTP(), sp.Routing.HSTS.D()
		if r.hsts > 0 {
			r.hstsHdr = hstsValue(r.hsts)
		}
		r.h2c = sp.Routing.Protocol == "h2c"
		if h := sp.Health; sp.Routing.ActiveHealth && h != nil && h.HTTP != "" {
			r.health = &healthCheck{path: h.HTTP, interval: cmp.Or(h.Interval.D(), spec.DefaultHealthEvery),
				timeout: cmp.Or(h.Timeout.D(), spec.DefaultHealthWait)}
		}
	}
	for i := range r.sides {
		if ok && (prev.spec == nil) == (sp == nil) && (sp == nil || prev.spec.Routing.Policy == policy) {
			r.sides[i].selector = prev.r.sides[i].selector // keep round-robin position and the like
		} else {
			r.sides[i].selector = newSelector(policy)
		}
	}
	if ok {
		r.stats = prev.r.stats
	} else {
		r.stats = &appStats{}
	}
	if st != nil {
		r.status, r.expected, r.since = st.Current, st.Expected, st.Since
	}
	if sp != nil {
		r.instances = sp.Instances
	}
	r.rollout = ro != nil && ro.Active()
	sv := s.Serving(app)
	ups := map[string]*Upstream{}
	for i, ins := range [2][]*registry.Instance{sv.Stable, sv.Canary} {
		for _, in := range ins {
			gen := r.gen(app, in.Generation(), prev.r)
			key := in.ID + "/" + in.Addr
			u := prev.upstreams[key]
			if u == nil || u.gen != gen {
				u = &Upstream{ID: in.ID, Addr: in.Addr, gen: gen}
			}
			if r.health == nil {
				u.probeDown.Store(false) // checks turned off: no stale verdict
			}
			ups[key] = u
			r.sides[i].upstreams = append(r.sides[i].upstreams, u)
			r.upstreams = append(r.upstreams, u)
		}
	}
	var newClients *atomic.Uint64
	if len(sv.Canary) > 0 {
		newClients = new(atomic.Uint64)
		if ok && prev.r.canary != nil && prev.r.canary.gen == sv.Gen {
			newClients = prev.newClients // the same canary: the round robin goes on
		}
		r.canary = newCanarySplit(app, sv, ro.From, newClients)
	}
	if ok {
		for _, g := range prev.r.gens {
			switch {
			case slices.Contains(r.gens, g):
			case r.rollout && (g.gen == ro.From || g.gen == ro.To):
				r.gens = append(r.gens, g) // named by the rollout: a canary whose instances restart goes on counting
			default:
				g.forget(b.metrics)
			}
		}
	}
	slices.SortFunc(r.gens, func(a, b *genStats) int { return cmp.Compare(a.gen, b.gen) })
	b.routes[app] = builtRoute{r: r, instances: id, spec: sp, status: st, rollout: ro, upstreams: ups, newClients: newClients}
	return r
}

// gen returns the route's counters of generation gen: those of the route
// it replaces, else new ones.
func (r *route) gen(app string, gen int64, prev *route) *genStats {
	find := func(gens []*genStats) *genStats {
		for _, g := range gens {
			if g.gen == gen {
				return g
			}
		}
		return nil
	}
	if g := find(r.gens); g != nil {
		return g
	}
	var g *genStats
	if prev != nil {
		g = find(prev.gens)
	}
	if g == nil {
		g = newGenStats(app, gen)
	}
	r.gens = append(r.gens, g)
	return g
}

// normalizeHost lowercases host and strips a port and a trailing dot.
func normalizeHost(host string) string {
	if strings.HasPrefix(host, "[") { // IPv6 literal
		if i := strings.LastIndexByte(host, ']'); i > 0 {
			return strings.ToLower(host[:i+1])
		}
		return strings.ToLower(host)
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		host = host[:i]
	}
	return strings.TrimRight(strings.ToLower(host), ".")
}

// lookup finds the route of a Host header: the exact domain, then
// wildcards walking up ("a.b.example.com" tries "*.b.example.com", then
// "*.example.com", ...), then the seed's convention that the first label
// names the app ("paas-monitor.anything").
func (t *Table) lookup(hostHeader string) *route {
	host := normalizeHost(hostHeader)
	if host == "" {
		return nil
	}
	if r := t.exact[host]; r != nil {
		return r
	}
	rest := host
	for {
		i := strings.IndexByte(rest, '.')
		if i < 0 {
			break
		}
		rest = rest[i+1:]
		if r := t.wild[rest]; r != nil {
			return r
		}
	}
	first, _, _ := strings.Cut(host, ".")
	return t.apps[first]
}
