package router

import (
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/berthproject/berth/internal/registry"
)

// A route's upstreams come in two sides (registry.Serving): the stable
// instances take the requests, except that during a canary rollout a
// share of the clients, sticky by cookie, goes to the canary's.
const (
	sideStable = 0
	sideCanary = 1
)

// side is one group of a route's upstreams, with its own selector.
type side struct {
	upstreams []*Upstream // sorted by id
	selector  Selector
}

// allAvailable reports whether the side has upstreams and all of them
// are in rotation.
func (s *side) allAvailable(now int64) bool {
	for _, u := range s.upstreams {
		if !u.availableAt(now) {
			return false
		}
	}
	return len(s.upstreams) > 0
}

// anyAvailable reports whether one of the side's upstreams is in rotation.
func (s *side) anyAvailable(now int64) bool {
	for _, u := range s.upstreams {
		if u.availableAt(now) {
			return true
		}
	}
	return false
}

// RolloutCookiePrefix starts the name of the cookie that keeps a client on
// one side of an app's canary: RolloutCookiePrefix + app.
const RolloutCookiePrefix = "berth-rollout-"

// canarySplit is a route's split during a canary rollout. New clients
// (without a valid cookie) are assigned by an exact weighted round robin:
// of every 100 consecutive new clients, percent go to the canary, spread
// evenly (the 10th, 20th, ... for 10%). The response to a new client
// sets the cookie to the generation of the side that answered it.
type canarySplit struct {
	gen        int64          // the canary's generation
	percent    int            // 1..100
	cookie     string         // the cookie's name
	values     [2]string      // cookie value per side: the stable and the canary generation
	setCookies [2]string      // Set-Cookie per side, built once: never a client's bytes
	newClients *atomic.Uint64 // new clients assigned so far; kept across rebuilds of one canary
}

func newCanarySplit(app string, sv registry.Serving, from int64, newClients *atomic.Uint64) *canarySplit {
	c := &canarySplit{gen: sv.Gen, percent: sv.Percent, cookie: RolloutCookiePrefix + app, newClients: newClients}
	c.values[sideCanary] = strconv.FormatInt(sv.Gen, 10)
	c.values[sideStable] = strconv.FormatInt(max(from, 1), 10)
	if c.values[sideStable] == c.values[sideCanary] {
		c.values[sideStable] = "stable" // a rollout record naming one generation twice: still two values
	}
	for i, v := range c.values {
		c.setCookies[i] = (&http.Cookie{Name: c.cookie, Value: v, Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode}).String()
	}
	return c
}

// toCanary reports whether the next new client goes to the canary.
func (c *canarySplit) toCanary() bool {
	n := (c.newClients.Add(1) - 1) % 100
	p := uint64(c.percent)
	return (n+1)*p/100 > n*p/100
}

// assign chooses the side of a request by its cookie: the canary's value
// goes to the canary while it has an upstream in rotation, the stable
// value to stable; anything else (no cookie, a malformed value, another
// rollout's generation) makes a new client, assigned by the split. Values
// are compared whole with the two this router wrote, never parsed.
func (c *canarySplit) assign(req *http.Request, canaryAvailable bool) (sd int, newClient bool) {
	value := ""
	if ck, err := req.Cookie(c.cookie); err == nil {
		value = ck.Value
	}
	switch value {
	case c.values[sideCanary]:
		if canaryAvailable {
			return sideCanary, false
		}
		return sideStable, false
	case c.values[sideStable]:
		return sideStable, false
	}
	if c.toCanary() && canaryAvailable {
		return sideCanary, true
	}
	return sideStable, true
}

// setCookie is the Set-Cookie for a new client that up answered.
func (c *canarySplit) setCookie(up *Upstream) string {
	if up.gen != nil && up.gen.gen == c.gen {
		return c.setCookies[sideCanary]
	}
	return c.setCookies[sideStable]
}

// assign picks the side of a request to rt and whether the response
// must set the rollout cookie: stable without a canary.
func (rt *route) assign(req *http.Request, now int64) (sd int, newClient bool) {
	if rt.canary == nil {
		return sideStable, false
	}
	return rt.canary.assign(req, rt.sides[sideCanary].anyAvailable(now))
}

// genStats count an app's responses from one generation of its
// instances, by the instance that answered; shared by every table for as
// long as the generation has a live instance.
type genStats struct {
	app      string
	gen      int64
	label    string // gen as a label value
	requests atomic.Int64
	errors   atomic.Int64 // 5xx

	once  sync.Once
	codes [6]prometheus.Counter // by status class 1xx..5xx
}

func newGenStats(app string, gen int64) *genStats {
	return &genStats{app: app, gen: gen, label: strconv.FormatInt(gen, 10)}
}

// observe counts a response of status (0: none was written, counted as
// 2xx as for the app's counter).
func (g *genStats) observe(m *metrics, status int) {
	g.once.Do(func() {
		for i := 1; i <= 5; i++ {
			g.codes[i] = m.genRequests.WithLabelValues(g.app, g.label, classLabel(i))
		}
	})
	class := statusClass(status)
	g.requests.Add(1)
	if class == 5 {
		g.errors.Add(1)
	}
	if class >= 1 && class <= 5 {
		g.codes[class].Inc()
	}
}

// forget removes the generation's metric series (it has no live instance
// left).
func (g *genStats) forget(m *metrics) {
	for i := 1; i <= 5; i++ {
		m.genRequests.DeleteLabelValues(g.app, g.label, classLabel(i))
	}
}

// counts are the generation's counts for the access record.
func (g *genStats) counts() registry.GenCounts {
	return registry.GenCounts{Requests: g.requests.Load(), Errors5xx: g.errors.Load()}
}

// observeGen counts a finished request for the generation of the
// upstream that answered it, if one was tried.
func (r *Router) observeGen(up *Upstream, status int) {
	if up != nil && up.gen != nil {
		up.gen.observe(r.metrics, status)
	}
}

// statusClass is the class 1..5 of a status; 0 (nothing written: the
// client went away before the answer) counts as 2.
func statusClass(status int) int {
	if status == 0 {
		return 2
	}
	return status / 100
}

// classLabel is the code label of class i ("5xx").
func classLabel(i int) string { return strconv.Itoa(i) + "xx" }
