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

// Server serves a Router. Each HTTP/1.1 connection, plain or over TLS
// (tls.go), starts on the fast lane (lane.go): HTTP/1.1 requests for apps
// with live instances are parsed and proxied in place, without net/http's
// per request machinery. A request the lane does not take (404 and other
// pages, wakes, redirects, upgrades, h2c, chunked uploads, anything
// unusual) hands the connection, with what was already read, to the
// net/http server, which serves it from then on. HTTP/2 over TLS goes to
// net/http once the handshake has chosen it.
type Server struct {
	Router *Router
	// HTTP serves what the lane hands over and HTTP/2 connections, with
	// the Router's limits (Config.ReadHeaderTimeout, IdleTimeout,
	// MaxHeaderBytes), which the lane applies too.
	HTTP *http.Server

	tls       *tls.Config // for ServeTLS's handshakes (nil: no HTTPS)
	handoff   *handoffListener
	startOnce sync.Once
	closing   atomic.Bool

	mu         sync.Mutex
	listeners  map[net.Listener]struct{}
	conns      map[*laneConn]struct{}
	handshakes map[net.Conn]struct{} // TLS connections in their handshake
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
	return &Server{Router: r, HTTP: hs, tls: handshakeConfig(tlsConfig), handoff: newHandoffListener(),
		listeners: map[net.Listener]struct{}{}, conns: map[*laneConn]struct{}{}, handshakes: map[net.Conn]struct{}{}}
}

// Serve accepts plain HTTP connections on l until Shutdown or Close.
func (s *Server) Serve(l net.Listener) error {
	return s.serve(l, s.serveConn)
}

// serve accepts connections on l, each served by handle in its own
// goroutine, until Shutdown or Close.
func (s *Server) serve(l net.Listener, handle func(net.Conn)) error {
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
		go handle(c)
	}
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
		lc.raw.Close()
	}
	for c := range s.handshakes {
		c.Close()
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

// closeIdle closes the lane's idle connections and those still in their
// TLS handshake (no request yet), and returns how many connections the
// lane still has.
func (s *Server) closeIdle() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for lc := range s.conns {
		if lc.state.CompareAndSwap(laneIdle, laneClosed) {
			lc.raw.Close()
		}
	}
	for c := range s.handshakes {
		c.Close()
	}
	return len(s.conns) + len(s.handshakes)
}

// serveConn serves a plain HTTP connection.
func (s *Server) serveConn(c net.Conn) {
	s.serveLane(c, http1.SocketIO(c, s.Router.cfg.BodyTimeout), nil)
}

// serveLane serves the connection on socket raw on the fast lane, read
// and written through rw, and hands it to net/http when the lane does not
// take a request; tc is set when it is a TLS connection.
func (s *Server) serveLane(raw net.Conn, rw io.ReadWriter, tc *tls.Conn) {
	c := raw
	if tc != nil {
		c = tc
	}
	lc := newLaneConn(s, c, rw, tc != nil)
	lc.raw = raw
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
		var hc net.Conn
		if tc != nil {
			// Its writes are bounded underneath (serveTLSConn); net/http
			// sets Request.TLS from ConnectionState.
			hc = tlsHandedConn{&handedConn{Conn: tc, br: lc.BR}, tc}
		} else {
			var nc net.Conn = c
			if d := s.Router.cfg.BodyTimeout; d > 0 {
				nc = http1.WriteBoundConn(c, d) // every pause in writes bounded, as on the lane
			}
			hc = &handedConn{Conn: nc, br: lc.BR}
		}
		if !s.handoff.give(hc) {
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
