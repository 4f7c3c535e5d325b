package router

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/berthproject/berth/internal/http1"
)

// Server serves a Router. On plain HTTP listeners each connection starts
// on the fast lane (lane.go): HTTP/1.1 requests for apps with live
// instances are parsed and proxied in place, without net/http's per
// request machinery. A request the lane does not take (404 and other
// pages, wakes, redirects, upgrades, h2c, chunked uploads, anything
// unusual) hands the connection, with what was already read, to the
// net/http server, which serves it from then on. TLS listeners are
// served by net/http alone.
type Server struct {
	Router *Router
	// HTTP serves TLS listeners and the connections the lane hands over,
	// with the Router's limits (Config.ReadHeaderTimeout, IdleTimeout,
	// MaxHeaderBytes), which the lane applies too.
	HTTP *http.Server

	handoff   *handoffListener
	startOnce sync.Once
	closing   atomic.Bool

	mu        sync.Mutex
	listeners map[net.Listener]struct{}
	conns     map[*laneConn]struct{}
}

// NewServer returns a server for r, with the limits of r's Config;
// tlsConfig (nil without HTTPS) serves ServeTLS.
func NewServer(r *Router, tlsConfig *tls.Config) *Server {
	hs := &http.Server{
		Handler:           r,
		ReadHeaderTimeout: r.cfg.ReadHeaderTimeout,
		IdleTimeout:       r.cfg.IdleTimeout,
		MaxHeaderBytes:    r.cfg.MaxHeaderBytes,
		TLSConfig:         tlsConfig,
		Protocols:         ServerProtocols(),
		ErrorLog:          log.New(logWriter{r.log.WithField("component", "http")}, "", 0),
	}
	return &Server{Router: r, HTTP: hs, handoff: newHandoffListener(),
		listeners: map[net.Listener]struct{}{}, conns: map[*laneConn]struct{}{}}
}

// Serve accepts plain HTTP connections on l until Shutdown or Close.
func (s *Server) Serve(l net.Listener) error {
	s.startOnce.Do(func() { go s.HTTP.Serve(s.handoff) })
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		return http.ErrServerClosed
	}
	s.listeners[l] = struct{}{}
	s.mu.Unlock()
	defer func() { s.mu.Lock(); delete(s.listeners, l); s.mu.Unlock() }()
	var backoff time.Duration
	for {
		c, err := l.Accept()
		if err != nil {
			if s.closing.Load() {
				return http.ErrServerClosed
			}
			if errors.Is(err, net.ErrClosed) {
				return err
			}
			// Out of file descriptors and the like: wait and retry, as
			// net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			s.Router.log.WithError(err).WithField("retry_in", backoff).Warn("accept")
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		go s.serveConn(c)
	}
}

// ServeTLS serves HTTPS on l through net/http (HTTP/2 and HTTP/1.1).
func (s *Server) ServeTLS(l net.Listener) error {
	return s.HTTP.ServeTLS(boundListener{l, s.Router.cfg.BodyTimeout}, "", "")
}

// boundListener bounds every pause in writes to its connections
// (Config.BodyTimeout, nginx's send_timeout): a client that takes nothing
// for that long is cut; one that reads slowly is served.
type boundListener struct {
	net.Listener
	d time.Duration
}

func (l boundListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil || l.d <= 0 {
		return c, err
	}
	return http1.WriteBoundConn(c, l.d), nil
}

// Shutdown stops accepting, closes idle connections, lets requests in
// flight finish (their responses close the connection), then shuts the
// net/http server down, all within ctx. Upgraded connections are the
// Router's to drain (Router.Drain).
func (s *Server) Shutdown(ctx context.Context) error {
	s.stopAccepting()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for s.closeIdle() > 0 {
		select {
		case <-ctx.Done():
			s.HTTP.Shutdown(ctx)
			return ctx.Err()
		case <-tick.C:
		}
	}
	return s.HTTP.Shutdown(ctx)
}

// Close closes every listener and connection at once.
func (s *Server) Close() error {
	s.stopAccepting()
	s.mu.Lock()
	for lc := range s.conns {
		lc.NC.Close()
	}
	s.mu.Unlock()
	return s.HTTP.Close()
}

// stopAccepting marks the server closing and closes its listeners.
func (s *Server) stopAccepting() {
	s.closing.Store(true)
	s.mu.Lock()
	defer s.mu.Unlock()
	for l := range s.listeners {
		l.Close()
	}
}

// closeIdle closes the lane's idle connections and returns how many
// connections the lane still has.
func (s *Server) closeIdle() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for lc := range s.conns {
		if lc.state.CompareAndSwap(laneIdle, laneClosed) {
			lc.NC.Close()
		}
	}
	return len(s.conns)
}

func (s *Server) serveConn(c net.Conn) {
	lc := newLaneConn(s, c)
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		c.Close()
		return
	}
	s.conns[lc] = struct{}{}
	s.mu.Unlock()
	handed := lc.run()
	if !handed && lc.BodyUnread() {
		lingerClose(c) // still in s.conns: Close ends the linger too
	}
	s.mu.Lock()
	delete(s.conns, lc)
	s.mu.Unlock()
	if handed {
		lc.releaseWriter()
		var nc net.Conn = c
		if d := s.Router.cfg.BodyTimeout; d > 0 {
			nc = http1.WriteBoundConn(c, d) // every pause in writes bounded, as on the lane
		}
		if !s.handoff.give(&handedConn{Conn: nc, br: lc.BR}) {
			c.Close()
		}
		return
	}
	c.Close()
	lc.release()
}

// lingerTime bounds a lingering close (net/http waits as long; nginx's
// lingering_close up to 30s).
const lingerTime = 500 * time.Millisecond

// lingerClose prepares the close of a connection whose client may still
// be sending a body the router did not read: closing with unread input
// resets the connection, which can destroy the response still on its way
// to the client (an early 413). The write side closes first, and what the
// client still sends is read and discarded for a while; the caller then
// closes the connection.
func lingerClose(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok && cw.CloseWrite() == nil {
		c.SetReadDeadline(time.Now().Add(lingerTime))
		io.Copy(io.Discard, c)
	}
}

// handoffListener gives the lane's handed-over connections to net/http.
type handoffListener struct {
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newHandoffListener() *handoffListener {
	return &handoffListener{ch: make(chan net.Conn), done: make(chan struct{})}
}

func (h *handoffListener) Accept() (net.Conn, error) {
	select {
	case c := <-h.ch:
		return c, nil
	case <-h.done:
		return nil, net.ErrClosed
	}
}

func (h *handoffListener) Close() error {
	h.once.Do(func() { close(h.done) })
	return nil
}

func (h *handoffListener) Addr() net.Addr { return handoffAddr{} }

func (h *handoffListener) give(c net.Conn) bool {
	select {
	case h.ch <- c:
		return true
	case <-h.done:
		return false
	}
}

type handoffAddr struct{}

func (handoffAddr) Network() string { return "handoff" }
func (handoffAddr) String() string  { return "fast-lane-handoff" }

// handedConn replays what the lane read (and did not consume) before
// reading the connection again.
type handedConn struct {
	net.Conn
	br *bufio.Reader
}

func (c *handedConn) Read(p []byte) (int, error) {
	if c.br != nil {
		if c.br.Buffered() > 0 {
			return c.br.Read(p)
		}
		c.br = nil
	}
	return c.Conn.Read(p)
}

// CloseWrite lets net/http half-close the connection after an error
// response, as it does on a *net.TCPConn.
func (c *handedConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// logWriter logs what net/http reports (TLS handshake errors and the
// like) at Debug.
type logWriter struct{ log logrus.FieldLogger }

func (w logWriter) Write(p []byte) (int, error) {
	w.log.Debug(strings.TrimSpace(string(p)))
	return len(p), nil
}
