package router

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/etcdtest"
)

// serveTLS serves e's router on an HTTPS listener too, the way berth
// does (a self-signed certificate, TLSProtos offered), and returns the
// listener's address and its server.
func (e *env) serveTLS() (string, *Server) {
	e.t.Helper()
	certPEM, keyPEM, _, err := etcdtest.SelfSigned("x")
	if err != nil {
		e.t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		e.t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	s := NewServer(e.r, &tls.Config{Certificates: []tls.Certificate{pair}, NextProtos: TLSProtos()})
	go s.ServeTLS(l)
	e.t.Cleanup(func() { s.Close() })
	return l.Addr().String(), s
}

// dialTLS opens a TLS connection to addr offering protos through ALPN
// (none: no ALPN at all), as a raw client of t.
func dialTLS(t *testing.T, addr string, protos ...string) *client {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: protos})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(30 * time.Second))
	return &client{t: t, c: c, br: bufio.NewReader(c)}
}

// TestTLSLane: HTTP/1.1 over TLS (ALPN http/1.1, or no ALPN) is served
// on the fast lane, pipelined requests included, with X-Forwarded-Proto
// https and the app's routing.hsts (replacing the app's own); apps that
// refuse plain HTTP are served. What the lane hands over, net/http serves
// knowing the connection is TLS (HSTS, X-Forwarded-Proto); HTTP/2 goes to
// net/http.
func TestTLSLane(t *testing.T) {
	e := newEnv(t, Config{})
	web, _ := backend(t, "web")
	hsts := protoUpstream(t, "max-age=1")
	k, _ := e.keys.App("only")
	e.put(k, map[string]any{"name": "only", "routing": map[string]any{"https": "only", "hsts": "1h"}})
	e.instance("web", "1", addr(web))
	e.instance("only", "1", hsts)
	tlsAddr, _ := e.serveTLS()
	lane := func() float64 { return counterValue(t, e.r.metrics.laneTLSRequests) }
	handoffs := func() float64 { return counterValue(t, e.r.metrics.handoffs) }

	for _, protos := range [][]string{{"http/1.1"}, nil} {
		before := lane()
		c := dialTLS(t, tlsAddr, protos...)
		if got := c.c.(*tls.Conn).ConnectionState().NegotiatedProtocol; got != strings.Join(protos, "") {
			t.Fatalf("ALPN %q: negotiated %q", protos, got)
		}
		// Three requests in one write: answered in order, on the lane.
		c.send("GET /1 HTTP/1.1\r\nHost: web.example.com\r\n\r\nGET /2 HTTP/1.1\r\nHost: web.example.com\r\n\r\n" +
			"GET /3 HTTP/1.1\r\nHost: only.example.com\r\n\r\n")
		for _, want := range []string{"web /1", "web /2"} {
			resp, body := c.read("GET")
			if resp.StatusCode != 200 || !strings.HasPrefix(body, want+" ") || !strings.Contains(body, "proto=https") {
				t.Errorf("ALPN %q: got %d %q, want 200 %q with proto=https", protos, resp.StatusCode, body, want)
			}
			if v := resp.Header.Values(hstsHeader); len(v) != 0 {
				t.Errorf("ALPN %q: web without routing.hsts got Strict-Transport-Security %q", protos, v)
			}
		}
		resp, body := c.read("GET")
		if resp.StatusCode != 200 || body != "proto=https" {
			t.Errorf("ALPN %q, https only app: got %d %q, want 200 %q", protos, resp.StatusCode, body, "proto=https")
		}
		if v := resp.Header.Values(hstsHeader); len(v) != 1 || v[0] != "max-age=3600" {
			t.Errorf("ALPN %q: got Strict-Transport-Security %q, want the router's max-age=3600 alone", protos, v)
		}
		if got := lane() - before; got != 3 {
			t.Errorf("ALPN %q: %v requests over TLS on the fast lane, want 3", protos, got)
		}
	}
	if h := handoffs(); h != 0 {
		t.Fatalf("%v handoffs before any request the lane leaves to net/http", h)
	}

	// Handed over (a Connection token the lane leaves to net/http): the
	// same answers, from net/http with Request.TLS set.
	before := lane()
	c := dialTLS(t, tlsAddr, "http/1.1")
	c.send("GET /x HTTP/1.1\r\nHost: only.example.com\r\nConnection: keep-alive, x-other\r\n\r\n")
	resp, body := c.read("GET")
	if resp.StatusCode != 200 || body != "proto=https" || strings.Join(resp.Header.Values(hstsHeader), ",") != "max-age=3600" {
		t.Errorf("handed over: got %d %q Strict-Transport-Security %q, want 200 %q max-age=3600",
			resp.StatusCode, body, resp.Header.Values(hstsHeader), "proto=https")
	}
	if h := handoffs(); h != 1 || lane() != before {
		t.Errorf("got %v handoffs, %v more lane requests, want the request handed over", h, lane()-before)
	}
	c.send("GET /y HTTP/1.1\r\nHost: nowhere.example.com\r\n\r\n")
	if resp, _ := c.read("GET"); resp.StatusCode != 404 {
		t.Errorf("unknown host after the handoff: got %d, want 404", resp.StatusCode)
	}

	// HTTP/2 is net/http's.
	before = lane()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, ForceAttemptHTTP2: true}}
	req, _ := http.NewRequest("GET", "https://"+tlsAddr+"/h2", nil)
	req.Host = "web.example.com"
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.ProtoMajor != 2 || !strings.Contains(string(b), "proto=https") || lane() != before {
		t.Errorf("h2: got %s %q (%v lane requests), want HTTP/2 with proto=https, not on the lane", resp.Proto, b, lane()-before)
	}
}

// protoUpstream starts an upstream that answers with the
// X-Forwarded-Proto it got, setting its own Strict-Transport-Security
// (hsts), and returns its address.
func protoUpstream(t *testing.T, hsts string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set(hstsHeader, hsts)
		io.WriteString(w, "proto="+r.Header.Get("X-Forwarded-Proto"))
	})}
	go s.Serve(l)
	t.Cleanup(func() { s.Close() })
	return l.Addr().String()
}

// TestTLSResumption: a client that keeps its session resumes it on its
// next connection (a session ticket), and the handshake counter says so.
func TestTLSResumption(t *testing.T) {
	e := newEnv(t, Config{})
	web, _ := backend(t, "web")
	e.instance("web", "1", addr(web))
	tlsAddr, _ := e.serveTLS()
	cache := tls.NewLRUClientSessionCache(4)
	for i, want := range []bool{false, true, true} {
		c, err := tls.Dial("tcp", tlsAddr, &tls.Config{InsecureSkipVerify: true, ClientSessionCache: cache, NextProtos: []string{"http/1.1"}})
		if err != nil {
			t.Fatal(err)
		}
		cl := &client{t: t, c: c, br: bufio.NewReader(c)}
		cl.send("GET / HTTP/1.1\r\nHost: web.example.com\r\nConnection: close\r\n\r\n")
		if resp, body := cl.read("GET"); resp.StatusCode != 200 || !strings.HasPrefix(body, "web / ") {
			t.Fatalf("connection %d: got %d %q", i, resp.StatusCode, body)
		}
		// The ticket comes after the handshake: read to the end first.
		c.Close()
		if got := c.ConnectionState().DidResume; got != want {
			t.Errorf("connection %d: resumed %v, want %v", i, got, want)
		}
	}
	m := e.r.metrics
	if full, resumed := counterValue(t, m.tlsFull), counterValue(t, m.tlsResumed); full != 1 || resumed != 2 {
		t.Errorf("handshakes counted: %v full, %v resumed, want 1 and 2", full, resumed)
	}
}

// TestHostileTLS: clients that stall in the handshake or send something
// other than a ClientHello are cut within the handshake timeout (the read
// header timeout) and counted; plain HTTP on the HTTPS port gets a 400.
// A Content-Length and Transfer-Encoding request over TLS is handed over
// with its bytes intact (Transfer-Encoding wins, the rest is the next
// request), and an upload answered early (a 413) is never parsed for the
// requests its body hides, over TLS as on plain HTTP. Shutdown closes
// stalled handshakes and idle connections at once.
func TestHostileTLS(t *testing.T) {
	e, up := hostileWeb(t, Config{ReadHeaderTimeout: 300 * time.Millisecond}, func(c *hostileConn, req *http.Request) bool {
		switch req.URL.Path {
		case "/upload":
			io.ReadFull(req.Body, make([]byte, 1000))
			hostileReply(c, "413 Payload Too Large", "too large", "Connection: close")
			return false
		case "/y":
			b, _ := io.ReadAll(req.Body)
			hostileReply(c, "200 OK", "y "+string(b)+" proto="+req.Header.Get("X-Forwarded-Proto"))
			return true
		}
		return c.echo(req)
	})
	tlsAddr, srv := e.serveTLS()
	raw := func(t *testing.T) net.Conn {
		c, err := net.Dial("tcp", tlsAddr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// cut checks that the router closes c within d, sending at most a TLS
	// alert (or, for plain HTTP, want).
	cut := func(t *testing.T, c net.Conn, d time.Duration, want string) {
		t.Helper()
		start := time.Now()
		c.SetReadDeadline(start.Add(d))
		got, err := io.ReadAll(c)
		if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("still open after %v (got %q)", d, clip(got))
		}
		if want != "" && !strings.HasPrefix(string(got), want) || want == "" && len(got) > 0 && got[0] != 0x15 {
			t.Errorf("got %q before the close, want %q", clip(got), want)
		}
	}
	failed := func() float64 { return counterValue(t, e.r.metrics.tlsFailed) }

	t.Run("stalled before the hello", func(t *testing.T) {
		c := raw(t)
		cut(t, c, 2*time.Second, "")
	})
	t.Run("stalled in the hello", func(t *testing.T) {
		c := raw(t)
		io.WriteString(c, "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03") // a ClientHello's first bytes of 512
		cut(t, c, 2*time.Second, "")
	})
	t.Run("garbage", func(t *testing.T) {
		c := raw(t)
		io.WriteString(c, strings.Repeat("\x00\xff garbage \x17", 300))
		cut(t, c, 2*time.Second, "")
	})
	t.Run("plain HTTP", func(t *testing.T) {
		c := raw(t)
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: web.example.com\r\n\r\n")
		cut(t, c, 2*time.Second, "HTTP/1.0 400 Bad Request")
	})
	if got := failed(); got != 4 {
		t.Errorf("%v failed handshakes counted, want 4", got)
	}
	if strings.Contains(up.received(), "garbage") {
		t.Errorf("the upstream received the garbage")
	}

	t.Run("length and chunked", func(t *testing.T) {
		c := dialTLS(t, tlsAddr, "http/1.1")
		c.send("POST /y HTTP/1.1\r\nHost: web.example.com\r\nContent-Length: 30\r\nTransfer-Encoding: chunked\r\n\r\n" +
			"3\r\nabc\r\n0\r\n\r\nGET /next HTTP/1.1\r\nHost: web.example.com\r\n\r\n")
		resp, body := c.read("POST")
		if resp.StatusCode != 200 || body != "y abc proto=https" {
			t.Errorf("got %d %q, want 200 %q", resp.StatusCode, body, "y abc proto=https")
		}
		if !resp.Close {
			// net/http closes after a request framed both ways; if not,
			// what followed must be the next request.
			c.want(t, "GET /next", "GET", 200, "up /next")
		}
	})

	t.Run("early response", func(t *testing.T) {
		before := counterValue(t, e.r.metrics.laneTLSRequests)
		c := dialTLS(t, tlsAddr, "http/1.1")
		filler := 100000 - 21*4096
		c.send("POST /upload HTTP/1.1\r\nHost: web.example.com\r\nContent-Length: 100000\r\n\r\n" + strings.Repeat("a", filler))
		if up.waitRequest("/upload", 3*time.Second) == nil {
			t.Fatalf("the upstream got no upload within 3s")
		}
		if counterValue(t, e.r.metrics.laneTLSRequests) != before+1 {
			t.Errorf("the upload did not go through the fast lane over TLS")
		}
		time.Sleep(50 * time.Millisecond)
		sent := sendPieces(c.c, smugglingPieces(t, 21*4096), 5*time.Millisecond)
		resp, body, err := c.readWithin("POST", 3*time.Second)
		switch {
		case err != nil:
			t.Errorf("got no response (%v), want the upstream's 413", err)
		case resp.StatusCode != http.StatusRequestEntityTooLarge || body != "too large" || !resp.Close:
			t.Errorf("got %d %q (close %v), want the upstream's 413 %q with Connection: close", resp.StatusCode, body, resp.Close, "too large")
		default:
			c.expectEOF(t, 2*time.Second)
		}
		<-sent
		if got := smuggledRequests(up); len(got) > 0 {
			t.Errorf("the upstream got %d requests for /smuggled parsed from the body, want none", len(got))
		}
	})

	t.Run("shutdown", func(t *testing.T) {
		c := raw(t)
		idle := dialTLS(t, tlsAddr, "http/1.1")
		idle.send("GET /idle HTTP/1.1\r\nHost: web.example.com\r\n\r\n")
		idle.want(t, "GET /idle", "GET", 200, "up /idle")
		time.Sleep(50 * time.Millisecond) // accepted
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		start := time.Now()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		cut(t, c, time.Second, "")
		idle.expectEOF(t, time.Second)
		if d := time.Since(start); d > 250*time.Millisecond {
			t.Errorf("shutdown took %v with a stalled handshake and an idle connection, want them closed at once", d)
		}
	})
}

// TestHostileTLSClientNeverReads: over TLS too, a client that takes no
// response bytes for the body timeout is disconnected and the upstream
// connection that fed it closed, on the lane and after a handoff (the
// bound is under the TLS layer).
func TestHostileTLSClientNeverReads(t *testing.T) {
	for _, lane := range hostileLanes {
		t.Run(lane.name, func(t *testing.T) {
			t.Parallel()
			cut := make(chan struct{})
			e, up := hostileWeb(t, Config{BodyTimeout: 300 * time.Millisecond}, func(c *hostileConn, req *http.Request) bool {
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 268435456\r\n\r\n")
				chunk := strings.Repeat("z", 64<<10)
				for range 4096 {
					if _, err := io.WriteString(c, chunk); err != nil {
						close(cut)
						return false
					}
				}
				return true
			})
			tlsAddr, _ := e.serveTLS()
			raw, err := net.Dial("tcp", tlsAddr)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			c := tls.Client(raw, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"http/1.1"}})
			if _, err := io.WriteString(c, lane.head("GET", "/big", "web.example.com")); err != nil {
				t.Fatal(err)
			}
			if up.waitRequest("/big", 3*time.Second) == nil {
				t.Fatal("the upstream got no request")
			}
			if lane.hdr == "" && counterValue(t, e.r.metrics.laneTLSRequests) != 1 ||
				lane.hdr != "" && counterValue(t, e.r.metrics.handoffs) != 1 {
				t.Errorf("the request did not take the %s path over TLS", lane.name)
			}
			select {
			case <-cut:
			case <-time.After(10 * time.Second):
				t.Fatal("the upstream connection is still open 10s after the client stopped reading, want it closed")
			}
			raw.SetReadDeadline(time.Now().Add(10 * time.Second))
			if _, err := io.Copy(io.Discard, raw); err != nil && !errors.Is(err, syscall.ECONNRESET) {
				t.Fatalf("the client connection did not end: %v", err)
			}
		})
	}
}
