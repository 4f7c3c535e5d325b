package router

import (
	"sync/atomic"
	"time"
)

// Upstream is one live instance as the router sees it. Counters are atomics
// shared by every table that holds the same instance, so they survive
// table rebuilds.
type Upstream struct {
	ID   string // instance id
	Addr string // host:port

	gen *genStats // the counters of the instance's generation

	inflight  atomic.Int64 // requests and upgraded connections open now
	failUntil atomic.Int64 // unix ns until which the upstream is out of rotation
	fails     atomic.Int64 // failures seen (metrics, /routes)

	probeDown atomic.Bool  // the last active health probe failed
	probing   atomic.Bool  // a probe is running
	nextProbe atomic.Int64 // unix ns of the next probe
}

// Inflight is the number of requests to the upstream now.
func (u *Upstream) Inflight() int64 { return u.inflight.Load() }

// Available reports whether the upstream is in rotation (not marked down).
func (u *Upstream) Available() bool { return u.availableAt(time.Now().UnixNano()) }

func (u *Upstream) availableAt(unixNano int64) bool {
	return unixNano >= u.failUntil.Load() && !u.probeDown.Load()
}

// markFailed takes the upstream out of rotation for window.
func (u *Upstream) markFailed(window time.Duration) {
	u.fails.Add(1)
	u.failUntil.Store(time.Now().Add(window).UnixNano())
}

// markHealthy puts it back in rotation at once (a success after a failure).
func (u *Upstream) markHealthy() {
	if u.failUntil.Load() != 0 {
		u.failUntil.Store(0)
	}
}
