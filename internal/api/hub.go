package api

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/berthproject/berth/internal/registry"
)

// Event is one change as GET /v1/events sends it: the SSE event name is
// Type, its id the revision (on the last event of each revision).
type Event struct {
	Rev  int64  `json:"rev"`            // etcd revision of the view that showed the change
	Type string `json:"type"`           // instance.up, status, app.passivated, deploy, ... (docs/api.md)
	App  string `json:"app,omitempty"`  // the app concerned
	Name string `json:"name,omitempty"` // instance id, host or node id
	Time string `json:"time"`           // when the API saw it, RFC 3339 UTC
	Data any    `json:"data,omitempty"` // the record's view (internal/view)
}

// Hub turns the watch cache's snapshots into events and keeps the newest
// in a ring that every SSE client reads at its own pace: one watch serves
// all clients, the Hub never waits for a client, and a client that falls
// behind the ring gets a reset event instead of blocking anyone.
type Hub struct {
	src  registry.Source
	size int

	mu    sync.RWMutex
	ring  []encoded
	next  uint64        // sequence number of the next event; ring[seq%size]
	rev   int64         // revision of the newest view diffed
	base  int64         // revision of the first view: events after it are known
	lost  int64         // highest revision of an event that left the ring (0: none)
	wake  chan struct{} // closed at every append, then replaced
	ready chan struct{} // closed once the first view is taken

	events prometheus.Counter
}

// NewHub returns a hub over src holding the newest size events (default
// 4096). Run feeds it.
func NewHub(src registry.Source, size int) *Hub {
	if size <= 0 {
		size = 4096
	}
	return &Hub{src: src, size: size, ring: make([]encoded, size), wake: make(chan struct{}), ready: make(chan struct{}),
		events: prometheus.NewCounter(prometheus.CounterOpts{Name: "berth_api_events_total", Help: "Events the API derived from registry changes."})}
}

// Run follows the source until ctx ends: each new snapshot is diffed with
// the previous one and the changes appended. It returns ctx's error.
func (h *Hub) Run(ctx context.Context) error {
	ch, cancel := h.src.Subscribe()
	defer cancel()
	select {
	case <-h.src.Synced():
	case <-ctx.Done():
		return ctx.Err()
	}
	prev := h.src.Snapshot()
	h.mu.Lock()
	h.base, h.rev = prev.Rev, prev.Rev
	h.mu.Unlock()
	close(h.ready)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
		s := h.src.Snapshot()
		if s == prev || s.Rev < prev.Rev {
			continue
		}
		h.append(s.Rev, diff(prev, s, time.Now()))
		prev = s
	}
}

// Ready is closed once the hub has its first view.
func (h *Hub) Ready() <-chan struct{} { return h.ready }

// Revision is the revision of the newest view the hub has diffed.
func (h *Hub) Revision() int64 {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.rev
}

// encoded is an event with its JSON, encoded once for every client.
type encoded struct {
	Event
	JSON []byte
}

func (h *Hub) append(rev int64, evs []Event) {
	enc := make([]encoded, len(evs))
	for i, ev := range evs {
		b, err := json.Marshal(ev)
		if err != nil {
			b, _ = json.Marshal(Event{Rev: ev.Rev, Type: ev.Type, App: ev.App, Name: ev.Name, Time: ev.Time})
		}
		enc[i] = encoded{Event: ev, JSON: b}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ev := range enc {
		i := h.next % uint64(h.size)
		if h.next >= uint64(h.size) {
			h.lost = h.ring[i].Rev
		}
		h.ring[i] = ev
		h.next++
	}
	h.rev = rev
	h.events.Add(float64(len(evs)))
	if len(evs) > 0 {
		close(h.wake)
		h.wake = make(chan struct{})
	}
}

// start returns where a client resumes: the sequence number of the first
// event after revision last (has: the client sent Last-Event-ID), the
// current revision, and why the client must reset (re-read the state)
// when the events it missed are not all held.
func (h *Hub) start(last int64, has bool) (seq uint64, rev int64, reset string) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	seq, rev = h.next, h.rev
	switch {
	case !has:
		return seq, rev, ""
	case last > h.rev:
		return seq, rev, fmt.Sprintf("Last-Event-ID %d is ahead of this API's view (revision %d): etcd was restored, or the id is from another cluster", last, h.rev)
	case last < h.base:
		return seq, rev, fmt.Sprintf("events between revision %d and %d were not seen by this API process (it started at %d)", last, h.base, h.base)
	case last < h.lost:
		return seq, rev, fmt.Sprintf("events after revision %d are no longer held (the newest %d are)", last, h.size)
	}
	oldest := h.next - min(h.next, uint64(h.size))
	for seq = oldest; seq < h.next && h.ring[seq%uint64(h.size)].Rev <= last; seq++ {
	}
	return seq, rev, ""
}

// sent is an event read for a client; Last says whether it is the last
// event of its revision (the one that carries the SSE id).
type sent struct {
	encoded
	Last bool
}

// read returns up to max events from seq, the next seq, and the channel
// closed at the next append. overrun means seq left the ring: the client
// resumes at next with a reset at revision rev.
func (h *Hub) read(seq uint64, max int) (evs []sent, next uint64, wake <-chan struct{}, overrun bool, rev int64) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	size := uint64(h.size)
	oldest := h.next - min(h.next, size)
	if seq < oldest {
		return nil, h.next, h.wake, true, h.rev
	}
	for ; seq < h.next && len(evs) < max; seq++ {
		ev := h.ring[seq%size]
		last := seq+1 == h.next || h.ring[(seq+1)%size].Rev != ev.Rev
		evs = append(evs, sent{encoded: ev, Last: last})
	}
	return evs, seq, h.wake, false, h.rev
}
