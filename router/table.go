package router

import (
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/berthproject/berth/internal/registry"
)

// route is what the router knows of one app in one table.
type route struct {
	app           string
	upstreams     []*Upstream // instances in state up, sorted by id
	selector      Selector
	maxConns      int64
	status        string // status.current ("" if unknown)
	expected      string // status.expected
	httpsRedirect bool
	h2c           bool // HTTP/2 without TLS to the upstreams (gRPC)
	stats         *appStats
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
			s.codes[i] = m.requests.WithLabelValues(app, strconv.Itoa(i)+"xx")
		}
		s.duration = m.duration.WithLabelValues(app)
	})
	class := status / 100
	if status == 0 {
		class = 2
	}
	if class >= 1 && class <= 5 {
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

// tableBuilder keeps the state that outlives a table: upstream counters,
// selectors and app stats, keyed so that an unchanged instance keeps its
// counters across rebuilds.
type tableBuilder struct {
	mu        sync.Mutex
	upstreams map[string]*Upstream // app/id/addr
	selectors map[string]selectorFor
	stats     map[string]*appStats
}

type selectorFor struct {
	policy string
	sel    Selector
}

func newTableBuilder() *tableBuilder {
	return &tableBuilder{upstreams: map[string]*Upstream{}, selectors: map[string]selectorFor{}, stats: map[string]*appStats{}}
}

// build makes a table from a snapshot. Calls are serialized.
func (b *tableBuilder) build(s *registry.Snapshot) *Table {
	b.mu.Lock()
	defer b.mu.Unlock()
	t := &Table{Rev: s.Rev, exact: map[string]*route{}, wild: map[string]*route{}, apps: map[string]*route{}}
	seenUp := map[string]bool{}
	seenApp := map[string]bool{}
	for _, app := range s.AppNames() {
		seenApp[app] = true
		r := &route{app: app}
		policy := ""
		if spec := s.Apps[app]; spec != nil {
			policy = spec.Routing.Policy
			r.maxConns = int64(spec.Routing.MaxConns)
			r.httpsRedirect = spec.Routing.HTTPSRedirect
			r.h2c = spec.Routing.Protocol == "h2c"
		}
		if sf, ok := b.selectors[app]; ok && sf.policy == policy {
			r.selector = sf.sel
		} else {
			r.selector = newSelector(policy)
			b.selectors[app] = selectorFor{policy, r.selector}
		}
		if b.stats[app] == nil {
			b.stats[app] = &appStats{}
		}
		r.stats = b.stats[app]
		if st := s.Status[app]; st != nil {
			r.status, r.expected = st.Current, st.Expected
		}
		for _, in := range s.Live(app) {
			key := app + "/" + in.ID + "/" + in.Addr
			seenUp[key] = true
			u := b.upstreams[key]
			if u == nil {
				u = &Upstream{ID: in.ID, Addr: in.Addr}
				b.upstreams[key] = u
			}
			r.upstreams = append(r.upstreams, u)
		}
		t.apps[app] = r
	}
	for host, app := range s.Domains {
		r := t.apps[app]
		if r == nil {
			continue
		}
		if suffix, ok := strings.CutPrefix(host, "*."); ok {
			t.wild[suffix] = r
		} else {
			t.exact[host] = r
		}
	}
	for k := range b.upstreams {
		if !seenUp[k] {
			delete(b.upstreams, k)
		}
	}
	for app := range b.selectors {
		if !seenApp[app] {
			delete(b.selectors, app)
			delete(b.stats, app)
		}
	}
	return t
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
