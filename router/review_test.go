package router

// Review tests: rules of internal/http1/doc.go and docs/router.md
// ("Hostile clients and upstreams") that the router breaks. Each test
// states its rule; they reuse hostile_test.go's raw clients and
// upstreams.

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// reviewBulk returns n pieces of 64 KiB of body bytes.
func reviewBulk(n int) []string {
	p := strings.Repeat("b", 64<<10)
	pieces := make([]string, n)
	for i := range pieces {
		pieces[i] = p
	}
	return pieces
}

// TestReviewUpstreamNeverReadsBody: "each body write to an upstream has
// the body timeout as bound" (docs/router.md, --body-timeout; doc.go: an
// upstream that stops reading fails after the same bound). An upstream
// that reads the request head, then never reads the body and never
// answers, keeping its connection open, while the client streams a 64 MiB
// body as fast as the router takes it: with BodyTimeout 300ms the client
// must get an error response (502/504, Connection: close) within 5s.
//
// The request's first body bytes arrive alone (100 bytes, then a pause),
// as a client that writes the head and the start of the body before
// streaming the rest does.
func TestReviewUpstreamNeverReadsBody(t *testing.T) {
	for _, lane := range hostileLanes {
		t.Run(lane.name, func(t *testing.T) {
			t.Parallel()
			release := make(chan struct{})
			defer close(release)
			e, up := hostileWeb(t, Config{BodyTimeout: 300 * time.Millisecond}, func(c *hostileConn, req *http.Request) bool {
				<-release // never reads the body, never answers, keeps the connection
				return false
			})
			c := hostileDial(t, e)
			const length = 64 << 20
			c.send(lane.head("POST", "/upload", "web.example.com", fmt.Sprintf("Content-Length: %d", length)) + strings.Repeat("a", 100))
			if up.waitRequest("/upload", 3*time.Second) == nil {
				t.Fatalf("the upstream got no request (it got %q)", clip([]byte(up.received())))
			}
			checkLane(t, e, lane)
			start := time.Now()
			sent := sendPieces(c.c, reviewBulk(length/(64<<10)-1), 0)
			resp, _, err := c.readWithin("POST", 5*time.Second)
			switch {
			case err != nil:
				t.Errorf("got no response within 5s (%v) while the upstream did not read the body; want a 502/504 after the body timeout (300ms)", err)
			case resp.StatusCode < 500:
				t.Errorf("got %d, want 502 or 504", resp.StatusCode)
			case !resp.Close:
				t.Errorf("got %d without Connection: close (the body was not read)", resp.StatusCode)
			default:
				t.Logf("got %d after %v", resp.StatusCode, time.Since(start).Round(time.Millisecond))
			}
			c.c.Close()
			<-sent
		})
	}
}

// TestReviewSteadyUploadLongerThanBodyTimeout: the body timeout bounds
// each wait ("a request body without progress for this long", "each write
// of a body to an upstream"), not the whole upload. With BodyTimeout
// 300ms, a 22 KB upload that sends 20 KB at once, then 100 bytes every
// 100ms for 2s, to an upstream that reads everything at once, reaches the
// upstream whole and gets its 200; the upstream stays in rotation.
func TestReviewSteadyUploadLongerThanBodyTimeout(t *testing.T) {
	for _, lane := range hostileLanes {
		t.Run(lane.name, func(t *testing.T) {
			t.Parallel()
			e, up := hostileWeb(t, Config{BodyTimeout: 300 * time.Millisecond, MaxAttempts: 1}, func(c *hostileConn, req *http.Request) bool {
				n, err := io.Copy(io.Discard, req.Body)
				if err != nil {
					return false
				}
				hostileReply(c, "200 OK", fmt.Sprintf("got %d bytes", n))
				return true
			})
			const first, trickle = 20000, 20
			length := first + trickle*100
			c := hostileDial(t, e)
			c.send(lane.head("POST", "/steady", "web.example.com", fmt.Sprintf("Content-Length: %d", length)) + strings.Repeat("a", first))
			pieces := make([]string, trickle)
			for i := range pieces {
				pieces[i] = strings.Repeat("x", 100)
			}
			<-sendPieces(c.c, pieces, 100*time.Millisecond) // 2s in all, 100ms between pieces
			checkLane(t, e, lane)
			resp, body, err := c.readWithin("POST", 3*time.Second)
			want := fmt.Sprintf("got %d bytes", length)
			switch {
			case err != nil:
				t.Errorf("got no response (%v), want 200 %q", err, want)
			case resp.StatusCode != 200 || body != want:
				t.Errorf("got %d %q, want 200 %q: a body that never paused for the body timeout was cut off (upstream got %d bytes)",
					resp.StatusCode, body, want, len(up.received()))
			}
			if u := e.r.table.Load().apps["web"].upstreams[0]; !u.Available() {
				t.Errorf("the upstream is out of rotation after a steady upload, want it available")
			}
		})
	}
}

// readRawHead reads one response head from c as raw lines (status line
// first), within d.
func readRawHead(c *client, d time.Duration) ([]string, error) {
	c.c.SetReadDeadline(time.Now().Add(d))
	defer c.c.SetReadDeadline(time.Time{})
	var lines []string
	for {
		l, err := c.br.ReadString('\n')
		if err != nil {
			return lines, err
		}
		l = strings.TrimRight(l, "\r\n")
		if l == "" {
			return lines, nil
		}
		lines = append(lines, l)
	}
}

// headerLines returns the values of the lines of head named name.
func headerLines(head []string, name string) []string {
	var v []string
	for _, l := range head[1:] {
		n, val, _ := strings.Cut(l, ":")
		if strings.EqualFold(strings.TrimSpace(n), name) {
			v = append(v, strings.TrimSpace(val))
		}
	}
	return v
}

// TestReviewResponseFraming: a response sent to a kept-alive client is
// framed by exactly one header, one Content-Length or
// "Transfer-Encoding: chunked" (docs: the lane never carries two framing
// headers, nor none on a body it keeps the connection after), whatever
// the upstream's head says, and the next request on the connection is
// answered.
//
//   - "Connection: Content-Length": the upstream names Content-Length as
//     hop-by-hop. A proxy drops the header, but must then frame the body
//     itself (the net/http lane does); the lane drops the header and sends
//     the body with no framing at all on a kept-alive connection.
//   - two identical Content-Length headers: legal from an upstream (RFC
//     9110 8.6 lets a recipient merge them) but passed to the client as two
//     framing headers, which some clients refuse.
func TestReviewResponseFraming(t *testing.T) {
	for _, lane := range hostileLanes {
		for _, tc := range []struct{ name, answer string }{
			{"Connection names Content-Length", "HTTP/1.1 200 OK\r\nConnection: Content-Length\r\nContent-Length: 5\r\n\r\nhello"},
			{"two Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"},
		} {
			t.Run(lane.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				e, _ := hostileWeb(t, Config{}, func(c *hostileConn, req *http.Request) bool {
					if req.URL.Path != "/a" {
						return c.echo(req)
					}
					io.WriteString(c, tc.answer)
					return true
				})
				c := hostileDial(t, e)
				c.send(lane.head("GET", "/a", "web.example.com"))
				head, err := readRawHead(c, 3*time.Second)
				if err != nil {
					t.Fatalf("got no response head (%v; %q)", err, head)
				}
				checkLane(t, e, lane)
				cl, te := headerLines(head, "Content-Length"), headerLines(head, "Transfer-Encoding")
				closing := false
				for _, v := range headerLines(head, "Connection") {
					closing = closing || strings.EqualFold(v, "close")
				}
				if len(cl)+len(te) != 1 && !(closing && len(cl)+len(te) == 0) {
					t.Fatalf("response head %q: %d Content-Length and %d Transfer-Encoding lines on a kept-alive connection, want exactly one framing header",
						head, len(cl), len(te))
				}
				// The rest of the response, then the next request.
				c.c.SetReadDeadline(time.Now().Add(3 * time.Second))
				raw := strings.Join(head, "\r\n") + "\r\n\r\n"
				resp, err := http.ReadResponse(bufio.NewReader(io.MultiReader(strings.NewReader(raw), c.br)), &http.Request{Method: "GET"})
				if err != nil {
					t.Fatal(err)
				}
				b, err := io.ReadAll(resp.Body)
				c.c.SetReadDeadline(time.Time{})
				if err != nil || string(b) != "hello" {
					t.Fatalf("body: got %q (%v), want %q", b, err, "hello")
				}
				c.send(lane.head("GET", "/b", "web.example.com"))
				c.want(t, "GET /b", "GET", 200, "up /b")
			})
		}
	}
}

// TestReviewRetryAfterResponseHeaderTimeout: an idempotent request whose
// upstream times out (no response head within the upstream timeout) is
// retried on another upstream (docs: "Other errors retry only idempotent
// requests"), and that attempt has its own upstream timeout: it is not
// failed at once because the first attempt used the time up, and the
// upstream that answers is not marked down.
//
// Two upstreams; whichever gets the first request never answers it
// (ResponseHeaderTimeout 500ms); the other answers at once. The GET must
// get the other's 200.
func TestReviewRetryAfterResponseHeaderTimeout(t *testing.T) {
	for _, lane := range hostileLanes {
		t.Run(lane.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, Config{ResponseHeaderTimeout: 500 * time.Millisecond})
			var first atomic.Bool
			var hung atomic.Pointer[hostileUpstream]
			release := make(chan struct{})
			defer close(release)
			script := func(c *hostileConn, req *http.Request) bool {
				if first.CompareAndSwap(false, true) {
					hung.Store(c.up)
					<-release // the first request overall is never answered
					return false
				}
				return c.echo(req)
			}
			a, b := newHostileUpstream(t, "a", script), newHostileUpstream(t, "b", script)
			e.instance("web", "1", a.addr)
			e.instance("web", "2", b.addr)
			c := hostileDial(t, e)
			c.send(lane.head("GET", "/r", "web.example.com"))
			resp, body, err := c.readWithin("GET", 5*time.Second)
			checkLane(t, e, lane)
			if hung.Load() == nil {
				t.Fatalf("no upstream got the request (a %v, b %v)", a.requests(), b.requests())
			}
			other := a
			if hung.Load() == a {
				other = b
			}
			switch {
			case err != nil:
				t.Fatalf("got no response (%v), want %s's 200", err, other.name)
			case resp.StatusCode != 200 || body != other.name+" /r":
				t.Errorf("got %d %q, want 200 %q from the upstream that answers (it got %v)",
					resp.StatusCode, body, other.name+" /r", other.requests())
			}
			for _, u := range e.r.table.Load().apps["web"].upstreams {
				if u.Addr == other.addr && !u.Available() {
					t.Errorf("upstream %s, which answers at once, is marked down", other.name)
				}
			}
		})
	}
}

// TestReviewPageWithStalledBody: "a request body without progress for
// --body-timeout ends with 408 and the connection closed" and "Timeouts
// on every wait" (docs/router.md) hold for requests the router answers
// with its own pages too. A POST for an unknown host (404 page) or for an
// app without instances (503 page) that sends 10 of its 1000 body bytes
// and stalls must get a response (the page, or a 408) within a few
// seconds with BodyTimeout 200ms, with Connection: close, then EOF.
func TestReviewPageWithStalledBody(t *testing.T) {
	for _, lane := range hostileLanes {
		for _, tc := range []struct {
			name, host string
			status     int
		}{
			{"404 unknown host", "nowhere.example.com", 404},
			{"503 no instance", "down.example.com", 503},
		} {
			t.Run(lane.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				e := newEnv(t, Config{BodyTimeout: 200 * time.Millisecond})
				e.domain("down.example.com", "down")
				c := hostileDial(t, e)
				c.send(lane.head("POST", "/upload", tc.host, "Content-Length: 1000") + "0123456789")
				resp, _, err := c.readWithin("POST", 3*time.Second)
				switch {
				case err != nil:
					t.Fatalf("got no response within 3s (%v) to a request whose body stalled; want %d or 408 after the body timeout (200ms)", err, tc.status)
				case resp.StatusCode != tc.status && resp.StatusCode != http.StatusRequestTimeout:
					t.Errorf("got %d, want %d or 408", resp.StatusCode, tc.status)
				case !resp.Close:
					t.Errorf("got %d without Connection: close (the body was not read)", resp.StatusCode)
				}
				c.expectEOF(t, 2*time.Second)
			})
		}
	}
}

// TestReviewExpectContinueUpstreamNeverReads: the bound on body writes to
// an upstream ("each write of a body to an upstream has the same bound",
// --body-timeout) holds for "Expect: 100-continue" uploads, which go to
// net/http's Transport (http1.Transport's Fallback). The upstream never
// reads the body nor answers; the client streams 64 MiB. With
// BodyTimeout 300ms the client must get an error response within 5s
// (net/http's Transport sends the body after ExpectContinueTimeout, 1s).
func TestReviewExpectContinueUpstreamNeverReads(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	e, up := hostileWeb(t, Config{BodyTimeout: 300 * time.Millisecond}, func(c *hostileConn, req *http.Request) bool {
		<-release
		return false
	})
	c := hostileDial(t, e)
	const length = 64 << 20
	c.send(hostileLanes[1].head("POST", "/upload", "web.example.com", fmt.Sprintf("Content-Length: %d", length), "Expect: 100-continue"))
	sent := sendPieces(c.c, reviewBulk(length/(64<<10)), 0)
	if up.waitRequest("/upload", 3*time.Second) == nil {
		t.Fatalf("the upstream got no request (it got %q)", clip([]byte(up.received())))
	}
	resp, _, err := c.readWithin("POST", 5*time.Second)
	switch {
	case err != nil:
		t.Errorf("got no response within 5s (%v) while the upstream did not read the body; want a 502/504", err)
	case resp.StatusCode < 500:
		t.Errorf("got %d, want 502 or 504", resp.StatusCode)
	}
	c.c.Close()
	<-sent
}

// TestReviewConnectionTokens: a valid upstream response is passed on,
// not answered 502 (which also marks a healthy upstream down). A
// response whose Connection header names five headers ("Connection:
// keep-alive, x-a, x-b, x-c, x-d, x-e") is valid HTTP (net/http's
// Transport and ReverseProxy take it, dropping the named headers), but
// http1.ParseResponseHead, which both lanes use, keeps at most four
// names and refuses the rest as malformed.
func TestReviewConnectionTokens(t *testing.T) {
	for _, lane := range hostileLanes {
		t.Run(lane.name, func(t *testing.T) {
			t.Parallel()
			e, _ := hostileWeb(t, Config{MaxAttempts: 1}, func(c *hostileConn, req *http.Request) bool {
				hostileReply(c, "200 OK", "ok", "Connection: keep-alive, x-a, x-b, x-c, x-d, x-e", "X-A: 1", "X-F: kept")
				return true
			})
			c := hostileDial(t, e)
			c.send(lane.head("GET", "/t", "web.example.com"))
			resp, ok := c.want(t, "GET /t", "GET", 200, "ok")
			checkLane(t, e, lane)
			if ok && (resp.Header.Get("X-A") != "" || resp.Header.Get("X-F") != "kept") {
				t.Errorf("got X-A %q X-F %q, want X-A dropped and X-F kept", resp.Header.Get("X-A"), resp.Header.Get("X-F"))
			}
		})
	}
}

// TestReviewHTTP10TransferEncoding: an upstream connection is reused
// only after a response framed exactly, "nothing ambiguous" (doc.go).
// An HTTP/1.0 response that carries Transfer-Encoding is not: RFC 9112
// 6.1 says its framing must be treated as faulty and the connection
// closed after it, and net/http's reader ignores Transfer-Encoding on
// HTTP/1.0 (it reads such a body until the connection closes), so the
// lanes do not even agree where it ends. After "HTTP/1.0 200 OK,
// Connection: keep-alive, Transfer-Encoding: chunked" to client A (who
// gets 502, as from nginx: the router refuses such a response), the next
// request (client B's) must go on a new upstream connection.
func TestReviewHTTP10TransferEncoding(t *testing.T) {
	for _, lane := range hostileLanes {
		t.Run(lane.name, func(t *testing.T) {
			t.Parallel()
			e, up := hostileWeb(t, Config{}, func(c *hostileConn, req *http.Request) bool {
				if req.URL.Path != "/a" {
					return c.echo(req)
				}
				io.WriteString(c, "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n")
				if lane.hdr == "" {
					return true // keeps the connection (the lane's case)
				}
				time.Sleep(500 * time.Millisecond) // net/http reads the body until the upstream closes
				return false
			})
			a := hostileDial(t, e)
			a.send(lane.head("GET", "/a", "web.example.com"))
			if resp, _, err := a.readWithin("GET", 3*time.Second); err != nil || resp.StatusCode != http.StatusBadGateway {
				t.Fatalf("client A: got %v (%v), want a 502", resp, err)
			}
			checkLane(t, e, lane)
			b := hostileDial(t, e)
			b.send(lane.head("GET", "/b", "web.example.com"))
			b.want(t, "client B", "GET", 200, "up /b")
			ca, cb := up.waitRequest("/a", time.Second), up.waitRequest("/b", time.Second)
			if ca == nil || cb == nil {
				t.Fatalf("the upstream got %v, want GET /a and GET /b", up.requests())
			}
			if ca == cb {
				t.Errorf("GET /b went on the connection of the HTTP/1.0 chunked response (connection %d), want a new connection", ca.index)
			}
		})
	}
}

// TestReviewShutdownDuringUpload: "on shutdown ... requests in flight
// finish with Connection: close" (docs/router.md). Server.Shutdown
// called while a client is sending a 1000-byte body (100 bytes, then 9
// more pieces 50ms apart) lets the upload finish: the client gets the
// upstream's 200 with Connection: close, then EOF, and Shutdown returns
// nil.
func TestReviewShutdownDuringUpload(t *testing.T) {
	for _, lane := range hostileLanes {
		t.Run(lane.name, func(t *testing.T) {
			t.Parallel()
			e, up := hostileWeb(t, Config{}, func(c *hostileConn, req *http.Request) bool {
				n, err := io.Copy(io.Discard, req.Body)
				if err != nil {
					return false
				}
				hostileReply(c, "200 OK", fmt.Sprintf("got %d bytes", n))
				return true
			})
			c := hostileDial(t, e)
			c.send(lane.head("POST", "/up", "web.example.com", "Content-Length: 1000") + strings.Repeat("a", 100))
			if up.waitRequest("/up", 3*time.Second) == nil {
				t.Fatal("the upstream got no request")
			}
			checkLane(t, e, lane)
			shut := make(chan error, 1)
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				shut <- e.srv.s.Shutdown(ctx)
			}()
			pieces := make([]string, 9)
			for i := range pieces {
				pieces[i] = strings.Repeat("x", 100)
			}
			<-sendPieces(c.c, pieces, 50*time.Millisecond)
			resp, ok := c.want(t, "POST /up", "POST", 200, "got 1000 bytes")
			if ok && !resp.Close {
				t.Errorf("got 200 without Connection: close during shutdown")
			}
			if ok {
				c.expectEOF(t, 2*time.Second)
			}
			select {
			case err := <-shut:
				if err != nil {
					t.Errorf("Shutdown: %v", err)
				}
			case <-time.After(6 * time.Second):
				t.Errorf("Shutdown did not return")
			}
		})
	}
}

// TestReviewEarlyAnswerReachesClientWhole: "an upstream that answers
// before reading the whole body has its answer passed to the client"
// (doc.go), the whole answer, however large. The upstream reads 1000
// bytes of a 64 MiB upload, answers 413 with a 2 MiB body, shuts its
// write side and stops reading; the client keeps sending. With
// BodyTimeout 300ms the router gives up on the upload and passes the 413
// on. The client reads the first bytes of the answer, pauses 300ms, then
// reads the rest: it must get all 2 MiB before the connection ends.
//
// Closing a socket with unread input (the rest of the upload) sends a
// reset that discards what the kernel has not delivered yet: a server
// that closes after such a response must shut its write side and linger
// first (net/http's closeWriteAndWait waits 500ms, nginx's
// lingering_close up to 30s). The router closes at once.
func TestReviewEarlyAnswerReachesClientWhole(t *testing.T) {
	const answer = 2 << 20
	for _, lane := range hostileLanes {
		t.Run(lane.name, func(t *testing.T) {
			t.Parallel()
			release := make(chan struct{})
			defer close(release)
			// The client's 300ms pause below stays well inside the body
			// timeout: what is tested is the close, not the write deadline.
			e, up := hostileWeb(t, Config{BodyTimeout: 1500 * time.Millisecond}, func(c *hostileConn, req *http.Request) bool {
				io.ReadFull(req.Body, make([]byte, 1000))
				hostileReply(c, "413 Payload Too Large", strings.Repeat("z", answer))
				c.Conn.(*net.TCPConn).CloseWrite()
				<-release // reads nothing more
				return false
			})
			c := hostileDial(t, e)
			const length = 64 << 20
			c.send(lane.head("POST", "/upload", "web.example.com", fmt.Sprintf("Content-Length: %d", length)) + strings.Repeat("a", 20000))
			sent := sendPieces(c.c, reviewBulk(length/(64<<10)-1), 0)
			if up.waitRequest("/upload", 3*time.Second) == nil {
				t.Fatalf("the upstream got no request")
			}
			checkLane(t, e, lane)
			// The first bytes of the answer, then a pause before the rest.
			c.c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.br.Peek(1); err != nil {
				t.Fatalf("got no response (%v), want the upstream's 413", err)
			}
			time.Sleep(300 * time.Millisecond)
			resp, body, err := c.readWithin("POST", 5*time.Second)
			switch {
			case resp == nil:
				t.Fatalf("got no response (%v), want the upstream's 413", err)
			case resp.StatusCode != http.StatusRequestEntityTooLarge:
				t.Errorf("got %d, want the upstream's 413", resp.StatusCode)
			case err != nil || len(body) != answer:
				t.Errorf("got the 413 with %d of its %d body bytes (%v): the router reset the connection before the client read its answer", len(body), answer, err)
			}
			c.c.Close()
			<-sent
		})
	}
}

// TestReviewNoFramingOn204: a response without a body carries no
// framing header to the client: RFC 9110 8.6 and 6.1, "a server MUST
// NOT send a Content-Length header field in any response with a status
// code of 1xx or 204" (nor Transfer-Encoding). net/http's server deletes
// both; the lane passes an upstream's "Content-Length: 5" on a 204
// through, and a client that honours it takes the first 5 bytes of the
// next response on the connection as this one's body.
func TestReviewNoFramingOn204(t *testing.T) {
	for _, lane := range hostileLanes {
		t.Run(lane.name, func(t *testing.T) {
			t.Parallel()
			e, _ := hostileWeb(t, Config{}, func(c *hostileConn, req *http.Request) bool {
				if req.URL.Path != "/a" {
					return c.echo(req)
				}
				io.WriteString(c, "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n")
				return false
			})
			c := hostileDial(t, e)
			c.send(lane.head("GET", "/a", "web.example.com"))
			head, err := readRawHead(c, 3*time.Second)
			if err != nil {
				t.Fatalf("got no response head (%v; %q)", err, head)
			}
			checkLane(t, e, lane)
			if cl, te := headerLines(head, "Content-Length"), headerLines(head, "Transfer-Encoding"); len(cl)+len(te) > 0 {
				t.Errorf("204 response head %q carries Content-Length %q / Transfer-Encoding %q, want neither", head, cl, te)
			}
			c.send(lane.head("GET", "/b", "web.example.com"))
			c.want(t, "GET /b", "GET", 200, "up /b")
		})
	}
}
