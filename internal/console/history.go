package console

import (
	"context"
	"reflect"
	"sync"
	"time"

	"github.com/berthproject/berth/internal/registry"
)

// History remembers what the registry forgets: each instance's recent
// states (a record holds only the current one) and samples of each app's
// request counters from the routers' access records, for rates. It
// follows the watch cache's snapshots; an app whose instance map did not
// change costs a pointer comparison.
type History struct {
	src registry.Source
	now func() time.Time

	mu    sync.RWMutex
	inst  map[string]map[string][]Mark // app → instance id → marks, oldest first
	reqs  map[string][]sample          // app → counter samples, oldest first
	first time.Time                    // when the history started
}

// Mark is one state an instance entered, and when ("gone" when its
// record went away).
type Mark struct {
	State string
	At    time.Time
}

// sample is the sum of an app's router counters at a time.
type sample struct {
	at             time.Time
	requests, errs int64
}

const (
	maxMarks   = 12               // states kept per instance
	maxGone    = 50               // instances kept per app after their record went
	rateWindow = 60 * time.Second // request rates are over the last minute
	maxSamples = 64
)

// NewHistory returns a history over src; Run feeds it.
func NewHistory(src registry.Source, now func() time.Time) *History {
	return &History{src: src, now: now, inst: map[string]map[string][]Mark{}, reqs: map[string][]sample{}}
}

// Run follows src until ctx ends and returns ctx's error.
func (h *History) Run(ctx context.Context) error {
	ch, cancel := h.src.Subscribe()
	defer cancel()
	select {
	case <-h.src.Synced():
	case <-ctx.Done():
		return ctx.Err()
	}
	var prev *registry.Snapshot
	for {
		s := h.src.Snapshot()
		if s != prev {
			h.observe(prev, s)
			prev = s
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}

// observe records the changes from a (nil: the first view) to b.
func (h *History) observe(a, b *registry.Snapshot) {
	now := h.now()
	h.mu.Lock()
	defer h.mu.Unlock()
	if a == nil {
		h.first = now
	}
	for app, ins := range b.Instances {
		if a != nil && sameMap(a.Instances[app], ins) {
			continue
		}
		marks := h.inst[app]
		if marks == nil {
			marks = map[string][]Mark{}
			h.inst[app] = marks
		}
		for id, in := range ins {
			if m := marks[id]; len(m) == 0 || m[len(m)-1].State != in.State {
				marks[id] = appendMark(m, Mark{State: in.State, At: now})
			}
		}
	}
	// Instances whose record went away.
	for app, marks := range h.inst {
		if a != nil && sameMap(a.Instances[app], b.Instances[app]) {
			continue
		}
		gone := 0
		for id, m := range marks {
			if _, ok := b.Instances[app][id]; ok {
				continue
			}
			if m[len(m)-1].State != "gone" {
				marks[id] = appendMark(m, Mark{State: "gone", At: now})
			}
			gone++
		}
		if gone > maxGone {
			pruneGone(marks, gone-maxGone)
		}
		if len(marks) == 0 {
			delete(h.inst, app)
		}
	}
	for app, acc := range b.Access {
		if a != nil && sameMap(a.Access[app], acc) {
			continue
		}
		var req, errs int64
		for _, r := range acc {
			for _, g := range r.Gens {
				req += g.Requests
				errs += g.Errors5xx
			}
		}
		ss := h.reqs[app]
		if len(ss) >= maxSamples {
			ss = ss[1:]
		}
		h.reqs[app] = append(ss, sample{at: now, requests: req, errs: errs})
	}
	for app := range h.reqs {
		if _, ok := b.Access[app]; !ok {
			delete(h.reqs, app)
		}
	}
}

func appendMark(m []Mark, k Mark) []Mark {
	if len(m) >= maxMarks {
		m = append(m[:0:0], m[len(m)-maxMarks+1:]...)
	}
	return append(m, k)
}

// pruneGone drops the n instances that went away longest ago.
func pruneGone(marks map[string][]Mark, n int) {
	for ; n > 0; n-- {
		oldest, at := "", time.Time{}
		for id, m := range marks {
			last := m[len(m)-1]
			if last.State == "gone" && (oldest == "" || last.At.Before(at)) {
				oldest, at = id, last.At
			}
		}
		delete(marks, oldest)
	}
}

// Marks returns an instance's recorded states, oldest first.
func (h *History) Marks(app, id string) []Mark {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return append([]Mark(nil), h.inst[app][id]...)
}

// Gone returns the ids of app's instances whose record went away while
// the history watched, with their marks.
func (h *History) Gone(app string, live map[string]*registry.Instance) map[string][]Mark {
	h.mu.RLock()
	defer h.mu.RUnlock()
	out := map[string][]Mark{}
	for id, m := range h.inst[app] {
		if _, ok := live[id]; !ok {
			out[id] = append([]Mark(nil), m...)
		}
	}
	return out
}

// Rate is an app's request and 5xx rates per second over the last
// minute, from the routers' per-generation counters; ok is false when
// fewer than two samples span the window (routers count only while a
// rollout of the app runs).
type Rate struct {
	PerSec, ErrPerSec float64
	ErrShare          float64 // 5xx / requests over the window
	Over              time.Duration
	OK                bool
}

// Rate returns app's request rates.
func (h *History) Rate(app string) Rate {
	h.mu.RLock()
	defer h.mu.RUnlock()
	ss := h.reqs[app]
	if len(ss) < 2 {
		return Rate{}
	}
	last := ss[len(ss)-1]
	if quiet := h.now().Sub(last.at); quiet > rateWindow {
		// No router changed its record for a minute: nothing was served.
		return Rate{Over: quiet, OK: true}
	}
	i := 0
	for i < len(ss)-2 && last.at.Sub(ss[i+1].at) >= rateWindow {
		i++
	}
	first := ss[i]
	d := last.at.Sub(first.at)
	dr, de := last.requests-first.requests, last.errs-first.errs
	if d <= 0 || dr < 0 || de < 0 {
		return Rate{}
	}
	r := Rate{PerSec: float64(dr) / d.Seconds(), ErrPerSec: float64(de) / d.Seconds(), Over: d, OK: true}
	if dr > 0 {
		r.ErrShare = float64(de) / float64(dr)
	}
	return r
}

// Since is when the history started watching.
func (h *History) Since() time.Time {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.first
}

// sameMap reports whether a and b are the same map (not equal contents):
// the cache shares an app's maps between snapshots until one record in
// them changes.
func sameMap[V any](a, b map[string]V) bool {
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}
