package router

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"slices"
	"time"

	"github.com/mholt/acmez/v3"

	"github.com/berthproject/berth/internal/http1"
)

// HTTPS: the server completes each TLS handshake itself and then serves
// the connection by the protocol ALPN chose: HTTP/1.1 (or none) on the
// fast lane, as plain HTTP, HTTP/2 through net/http, and an acme-tls/1
// validation (answered inside the handshake by GetCertificate) not at
// all.

// ServeTLS accepts HTTPS connections on l until Shutdown or Close. Each
// handshake must end within Config.ReadHeaderTimeout (net/http's own
// handshake timeout); HTTP/1.1 connections then start on the fast lane,
// whose handoffs net/http serves with Request.TLS set; HTTP/2 ones go to
// net/http.
func (s *Server) ServeTLS(l net.Listener) error {
	if s.tls == nil {
		return errors.New("router: ServeTLS needs the TLS configuration given to NewServer")
	}
	if len(s.tls.Certificates) == 0 && s.tls.GetCertificate == nil && s.tls.GetConfigForClient == nil {
		return errors.New("router: ServeTLS: the TLS configuration has no certificate (give --tls-cert, or certificates in etcd, or ACME)")
	}
	return s.serve(l, s.serveTLSConn)
}

// handshakeConfig is the configuration of ServeTLS's handshakes: c's
// own, offering h2 and http/1.1 through ALPN unless it names them
// (as net/http's ServeTLS does). A copy: net/http changes the one it is
// given when it sets up HTTP/2.
func handshakeConfig(c *tls.Config) *tls.Config {
	if c == nil {
		return nil
	}
	c = c.Clone()
	c.NextProtos = slices.Clone(c.NextProtos)
	for _, p := range []string{"h2", "http/1.1"} {
		if !slices.Contains(c.NextProtos, p) {
			c.NextProtos = append(c.NextProtos, p)
		}
	}
	return c
}

// serveTLSConn completes c's handshake, then serves it by its protocol.
// The TLS connection reads and writes c with raw system calls, every
// pause in its writes bounded by Config.BodyTimeout (nginx's
// send_timeout), on the lane and after a handoff alike.
func (s *Server) serveTLSConn(c net.Conn) {
	tc := tls.Server(http1.RawConn(c, s.Router.cfg.BodyTimeout), s.tls)
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		c.Close()
		return
	}
	s.handshakes[c] = struct{}{}
	s.mu.Unlock()
	proto, err := s.handshake(c, tc)
	s.mu.Lock()
	delete(s.handshakes, c)
	s.mu.Unlock()
	if err != nil {
		tc.Close()
		return
	}
	switch proto {
	case "h2":
		if !s.handoff.give(tc) {
			tc.Close()
		}
	case acmez.ACMETLS1Protocol:
		tc.Close() // the validation was the handshake itself
	default:
		s.serveLane(c, tc, tc)
	}
}

// handshake runs tc's handshake on c within the handshake timeout, counts
// it, and returns the protocol negotiated.
func (s *Server) handshake(c net.Conn, tc *tls.Conn) (string, error) {
	if d := s.Router.cfg.ReadHeaderTimeout; d > 0 {
		c.SetDeadline(time.Now().Add(d))
	}
	err := tc.Handshake()
	m := s.Router.metrics
	if err != nil {
		m.tlsFailed.Inc()
		s.Router.log.WithError(err).WithField("client", c.RemoteAddr().String()).Debug("tls handshake failed")
		// Plain HTTP on the HTTPS port gets net/http's answer.
		var re tls.RecordHeaderError
		if errors.As(err, &re) && re.Conn != nil && looksLikeHTTP(re.RecordHeader) {
			io.WriteString(re.Conn, "HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n")
		}
		return "", err
	}
	c.SetDeadline(time.Time{})
	state := tc.ConnectionState()
	if state.DidResume {
		m.tlsResumed.Inc()
	} else {
		m.tlsFull.Inc()
	}
	return state.NegotiatedProtocol, nil
}

// looksLikeHTTP reports whether the first five bytes of what was read as
// a TLS record start an HTTP/1 request.
func looksLikeHTTP(hdr [5]byte) bool {
	switch string(hdr[:]) {
	case "GET /", "HEAD ", "POST ", "PUT /", "OPTIO":
		return true
	}
	return false
}

// tlsHandedConn is a TLS connection the lane handed over: net/http takes
// Request.TLS from ConnectionState, as it does for a *tls.Conn.
type tlsHandedConn struct {
	*handedConn
	tc *tls.Conn
}

// ConnectionState is the TLS connection's state.
func (c tlsHandedConn) ConnectionState() tls.ConnectionState { return c.tc.ConnectionState() }
