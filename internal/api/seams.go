package api

import (
	"net/http"

	"github.com/berthproject/berth/internal/registry"
)

// This file holds what the web console (internal/console) shares with the
// API: the same auth rule, the same watch cache and event hub, one mux.

// Authorize checks r as a route of scope would: a bearer token of that
// scope, or (for ScopeRead, when Config.OpenLocalReads) a token-less
// loopback request. It returns the caller's name ("local" for a
// token-less read) or an *Error with status 401 or 403.
func (s *Server) Authorize(r *http.Request, scope string) (string, error) {
	c, err := s.authenticate(r, scope)
	if err != nil {
		return "", err
	}
	return c.Name, nil
}

// Source returns the watch cache the server reads.
func (s *Server) Source() registry.Source { return s.src }

// Handle adds h to the server's mux at pattern (net/http.ServeMux syntax),
// for pages served beside the API; the API's own routes keep theirs. Call
// it before Serve.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Recent returns up to n of the newest events the hub holds, oldest first:
// those of app, or every event when app is "".
func (h *Hub) Recent(app string, n int) []Event {
	h.mu.RLock()
	defer h.mu.RUnlock()
	var out []Event
	size := uint64(h.size)
	oldest := h.next - min(h.next, size)
	for seq := h.next; seq > oldest && len(out) < n; seq-- {
		ev := h.ring[(seq-1)%size].Event
		if app == "" || ev.App == app {
			out = append(out, ev)
		}
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}
