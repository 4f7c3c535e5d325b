package api

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// maxBatch bounds the events one write carries.
const maxBatch = 256

// events is GET /v1/events: a Server-Sent Events stream. It starts with a
// hello event carrying the current revision as its id; with Last-Event-ID
// (header, or ?lastEventId= for clients that cannot set headers) it first
// replays the events after that revision, or sends a reset event when they
// are not all held. A client that falls behind the hub's buffer gets a
// reset and continues from the newest events; one that does not take a
// write within SSEWriteTimeout is dropped.
func (s *Server) events(w http.ResponseWriter, r *http.Request) error {
	last, has := int64(0), false
	id := r.Header.Get("Last-Event-ID")
	if id == "" {
		id = r.URL.Query().Get("lastEventId")
	}
	if id != "" {
		n, err := strconv.ParseInt(strings.TrimSpace(id), 10, 64)
		if err != nil || n < 0 {
			return badField("Last-Event-ID", "must be an etcd revision (a whole number) from an earlier event's id")
		}
		last, has = n, true
	}
	if n := s.streams.Add(1); n > int64(s.cfg.MaxStreams) {
		s.streams.Add(-1)
		w.Header().Set("Retry-After", "10")
		return errorf(http.StatusServiceUnavailable, "too_many_streams", fmt.Sprintf("the API serves at most %d event streams", s.cfg.MaxStreams))
	}
	defer s.streams.Add(-1)
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	select {
	case <-s.hub.Ready():
		cancel()
	case <-ctx.Done():
		cancel()
		return errorf(http.StatusServiceUnavailable, "not_synced", "the API has not read the registry from etcd yet; retry shortly")
	}
	s.metrics.streams.Inc()
	defer s.metrics.streams.Dec()

	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// Every write of at most 16 KiB must be taken within SSEWriteTimeout.
	bw := bufio.NewWriterSize(&deadlineWriter{w: w, rc: rc, timeout: s.cfg.SSEWriteTimeout}, 16<<10)
	send := func() error {
		if err := bw.Flush(); err != nil {
			return err
		}
		return rc.Flush()
	}

	seq, rev, reset := s.hub.start(last, has)
	writeEvent(bw, evHello, rev, map[string]any{"rev": rev, "time": time.Now().UTC().Format(time.RFC3339Nano)})
	if reset != "" {
		s.metrics.resets.Inc()
		writeEvent(bw, evReset, rev, map[string]any{"rev": rev, "reason": reset})
	}
	fmt.Fprintf(bw, "retry: 2000\n\n")
	beat := time.NewTicker(s.cfg.Heartbeat)
	defer beat.Stop()
	for {
		evs, next, wake, overrun, now := s.hub.read(seq, maxBatch)
		if overrun {
			s.metrics.resets.Inc()
			writeEvent(bw, evReset, now, map[string]any{"rev": now, "reason": "this client fell behind the events the API holds: re-read the state"})
		}
		for _, ev := range evs {
			id := int64(-1)
			if ev.Last {
				id = ev.Rev
			}
			writeRaw(bw, ev.Type, id, ev.JSON)
		}
		seq = next
		if bw.Buffered() > 0 {
			if err := send(); err != nil {
				s.metrics.dropped.Inc()
				s.log.WithError(err).WithField("remote", r.RemoteAddr).Debug("event stream dropped")
				return nil
			}
		}
		if len(evs) == maxBatch {
			continue
		}
		select {
		case <-wake:
		case <-beat.C:
			fmt.Fprint(bw, ": keepalive\n\n")
		case <-r.Context().Done():
			return nil
		case <-s.done:
			return nil
		}
	}
}

// writeEvent writes one SSE event with data as JSON.
func writeEvent(w *bufio.Writer, typ string, id int64, data any) {
	b, err := json.Marshal(data)
	if err != nil {
		b = []byte(`{"error":"event not encodable"}`)
	}
	writeRaw(w, typ, id, b)
}

// writeRaw writes one SSE event of JSON b (one line); id < 0 writes none
// (the client keeps its last id: only the last event of a revision
// carries it).
func writeRaw(w *bufio.Writer, typ string, id int64, b []byte) {
	w.WriteString("event: ")
	w.WriteString(typ)
	w.WriteString("\n")
	if id >= 0 {
		w.WriteString("id: ")
		w.WriteString(strconv.FormatInt(id, 10))
		w.WriteString("\n")
	}
	w.WriteString("data: ")
	w.Write(b)
	w.WriteString("\n\n")
}

// deadlineWriter sets the connection's write deadline before each write:
// a client that takes nothing for the timeout fails the write.
type deadlineWriter struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	timeout time.Duration
}

func (d *deadlineWriter) Write(b []byte) (int, error) {
	d.rc.SetWriteDeadline(time.Now().Add(d.timeout))
	return d.w.Write(b)
}
