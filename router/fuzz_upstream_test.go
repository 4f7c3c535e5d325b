package router

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/registry"
)

// FuzzHostileUpstream drives concurrent clients through the real Server
// (both lanes) to a single raw upstream whose answers the fuzz input
// dictates, and checks that nobody receives bytes meant for someone else.
//
// The interpreter. The input decodes (decodeHostile) into a script, fixed
// before anything runs so that a failing input replays the same plan:
// 2 or 3 clients, each starting after a small delay and sending 1 to 4
// sequential keep-alive requests. Each request has a method (GET, HEAD,
// POST), a lane (the fast lane, or net/http when it carries
// "Connection: keep-alive, x-lane" or a chunked body), maybe
// "Connection: close", and for a POST a body sent in up to 4 writes some
// milliseconds apart whose last part looks like a request of its own (the
// "smuggled" request). It also has the upstream's behaviour for that
// request (hostileOp: well-formed answers, extra bytes after the response
// at once or late, a body on HEAD/204/304, bad chunk framing, a wrong
// Content-Length, an answer before the request body is read, a slow body
// or head, a close or reset mid-response or instead of one, 1xx
// responses, HTTP/1.0 close-delimited bodies), with a variant and a delay
// (at most 100 ms; a client's delays add up to at most 250 ms, so one
// iteration stays well under a second).
//
// Late bytes (after a response's end, or a body on HEAD/204/304 sent
// after its head) go only onto an idle connection: if a request arrives
// before they are due, the upstream holds them back, since no proxy can
// tell bytes that arrive after it sent a request from the answer to it.
// If a request arrives within hostileGrace after them, they raced it: the
// upstream closes that connection and a client that received them is
// excused (a note, not a failure).
//
// Tokens. Request n of client c asks for /t/~c<c>r<n>~; the request
// smuggled in its body asks for /t/~s<c>r<n>~. The upstream looks the
// token up in the path and puts it in every byte sequence it sends for
// that request: status reasons (1xx too), an X-Token header, bodies,
// trailers, and the extra bytes after a response.
//
// The oracle.
//   - Clients: every response a client reads (http.ReadResponse on its
//     connection, 1xx included), every read error and whatever was left
//     in its buffer may hold no token but the one of the request it is
//     waiting for; a response below 400 must hold that token, in its
//     body too unless it has none (HEAD, 204, 304): anything else is not
//     the upstream's answer to it (the router's pages are 4xx and 5xx,
//     without tokens); nothing may arrive when
//     no request is waiting. A client may see an error (EOF, a 502, 504 or
//     400 from the router) instead of a response: it then reconnects.
//   - The upstream: everything each of its connections received is
//     parsed again (http.ReadRequest in a loop); it must be well-formed
//     requests for tokens some client sent, with that client's method and
//     body (the last request of a connection may be cut short), and a POST
//     may arrive only once. Bytes that do not parse (a body read as a
//     request) or a smuggled token fail.
//
// The etcd-backed router is set up once; each iteration starts a fresh
// upstream on a fresh port, points the app "web" at it, and afterwards
// drops the pooled connections to it.
func FuzzHostileUpstream(f *testing.F) {
	seed := func(clients ...hostileClient) { f.Add(hostileScript{clients: clients}.encode()) }
	get := func(op hostileOp, variant byte, delay time.Duration) hostileReq {
		return hostileReq{method: "GET", op: op, variant: variant, delay: delay}
	}
	head := func(op hostileOp, variant byte, delay time.Duration) hostileReq {
		return hostileReq{method: "HEAD", op: op, variant: variant, delay: delay}
	}
	post := func(op hostileOp, variant byte, pieces int, gap time.Duration) hostileReq {
		return hostileReq{method: "POST", op: op, variant: variant, pieces: pieces, gap: gap}
	}
	viaNetHTTP := func(r hostileReq) hostileReq { r.netHTTP = true; return r }
	after := func(d time.Duration, r hostileReq) hostileReq { r.pause = d; return r }
	chunked := func(r hostileReq) hostileReq { r.chunked = true; return r }
	cl := func(start time.Duration, reqs ...hostileReq) hostileClient {
		return hostileClient{start: start, reqs: reqs}
	}
	ms := time.Millisecond

	// A well-behaved upstream: every framing, both lanes (must pass).
	seed(cl(0, get(opOK, 0, 0), head(opOK, 1, 0), post(opOK, 2, 1, 0), get(opOK, 3, 0)),
		cl(0, viaNetHTTP(get(opOK, 4, 0)), viaNetHTTP(head(opOK, 0, 0)), chunked(post(opOK, 1, 2, 5*ms)), get(opOK, 5, 0)),
		cl(5*ms, post(opOK, 0, 3, 5*ms), get(opOK, 1, 0), viaNetHTTP(post(opOK, 4, 1, 0))))
	// Class 1: the upstream resets the connection before reading the
	// body; the rest of the body must not become a request.
	seed(cl(0, post(opDrop, 1, 3, 20*ms), get(opOK, 0, 0)), cl(0, get(opOK, 0, 0)))
	seed(cl(0, post(opEarlyAnswer, 2, 3, 20*ms), get(opOK, 0, 0)), cl(0, get(opOK, 0, 0)))
	seed(cl(0, viaNetHTTP(post(opDrop, 1, 3, 20*ms)), get(opOK, 0, 0)), cl(0, get(opOK, 0, 0)))
	// Class 2: bytes after a response's end, late (while the connection
	// idles in the pool): the next request on it (another client's, or the
	// same client's next) must not read them.
	seed(cl(0, get(opLateTail, 0, 10*ms)), cl(30*ms, get(opOK, 0, 0)))
	seed(cl(0, get(opLateTail, 0, 10*ms), after(30*ms, get(opOK, 0, 0))), cl(45*ms, get(opOK, 0, 0)))
	seed(cl(0, viaNetHTTP(get(opLateTail, 0, 10*ms))), cl(30*ms, viaNetHTTP(get(opOK, 0, 0))))
	seed(cl(0, head(opBodyWhereNone, 4, 10*ms)), cl(30*ms, get(opOK, 0, 0)))
	seed(cl(0, get(opBodyWhereNone, 4, 10*ms)), cl(30*ms, get(opOK, 0, 0)))                         // 204 with a body
	seed(cl(0, viaNetHTTP(get(opBodyWhereNone, 5, 10*ms))), cl(30*ms, viaNetHTTP(get(opOK, 0, 0)))) // 304 with a body
	// The next request is sent before the tail is due: the upstream holds
	// the tail back (no proxy could tell it from the answer), must pass.
	seed(cl(0, get(opLateTail, 0, 30*ms)), cl(10*ms, get(opOK, 0, 0)))
	seed(cl(0, get(opExtra, 0, 0), get(opOK, 0, 0)), cl(0, get(opExtra, 1, 0), post(opOK, 0, 1, 0)))
	// Class 3: bad framing from the upstream.
	seed(cl(0, get(opBadChunks, 0, 0), get(opBadChunks, 1, 30*ms), get(opBadChunks, 4, 0)),
		cl(0, get(opWrongLength, 0, 0), get(opWrongLength, 1, 30*ms), get(opWrongLength, 3, 0)))
	seed(cl(0, viaNetHTTP(get(opBadChunks, 0, 0)), viaNetHTTP(get(opWrongLength, 0, 0)), get(opWrongLength, 3, 0)),
		cl(5*ms, viaNetHTTP(get(opWrongLength, 1, 30*ms)), get(opOK, 0, 0)))
	// 1xx, slow and broken answers, HTTP/1.0.
	seed(cl(0, get(op1xx, 1, 0), get(op1xx, 2, 10*ms), get(op1xx, 3, 0)), cl(5*ms, get(opOK, 0, 0)))
	seed(cl(0, viaNetHTTP(get(op1xx, 1, 20*ms))), cl(10*ms, get(opOK, 0, 0)))
	seed(cl(0, get(opCloseMid, 6, 10*ms), get(opSlowBody, 0, 30*ms), head(opSlowHead, 1, 20*ms)),
		cl(0, get(opOK, 3, 0), get(opOK, 4, 0), post(opSlowHead, 0, 2, 10*ms)))

	e := newEnv(f, Config{ResponseHeaderTimeout: 300 * time.Millisecond, BodyTimeout: 300 * time.Millisecond,
		ReadHeaderTimeout: 300 * time.Millisecond, IdleTimeout: 500 * time.Millisecond,
		DialTimeout: 300 * time.Millisecond, UpstreamIdleTimeout: time.Second})
	f.Fuzz(func(t *testing.T, data []byte) {
		runHostile(t, e, decodeHostile(data))
	})
}

// hostileOp is what the upstream does with one request.
type hostileOp byte

const (
	opOK            hostileOp = iota // a well-formed answer (variant: framing and status)
	opExtra                          // a complete answer and extra bytes in the same write
	opLateTail                       // a complete answer, extra bytes after the delay if idle (idleFor)
	opBodyWhereNone                  // a body on HEAD, 204 or 304 (at once, or late if idle)
	opBadChunks                      // broken chunked framing
	opWrongLength                    // a Content-Length that is wrong, doubled or beside chunked
	opEarlyAnswer                    // the answer before the request body is read
	opSlowBody                       // the body's second half after the delay
	opSlowHead                       // the answer (or its head's end) after the delay
	opCloseMid                       // close or reset in the middle of the answer
	op1xx                            // 100, 103 (or an unasked-for 101), the answer after the delay
	opDrop                           // close or reset without an answer
	numHostileOps
)

var hostileOpNames = [...]string{"ok", "extra", "lateTail", "bodyWhereNone", "badChunks", "wrongLength",
	"earlyAnswer", "slowBody", "slowHead", "closeMid", "1xx", "drop"}

func (o hostileOp) String() string { return hostileOpNames[o] }

// hostileScript is the decoded fuzz input.
type hostileScript struct{ clients []hostileClient }

type hostileClient struct {
	start time.Duration // before the first request
	reqs  []hostileReq
}

type hostileReq struct {
	method  string        // GET, HEAD or POST
	netHTTP bool          // "Connection: keep-alive, x-lane": the lane hands the connection to net/http
	chunked bool          // a POST's body is chunked (net/http's too)
	close   bool          // "Connection: close"
	big     bool          // a 32 KiB body rather than a small one
	pause   time.Duration // before the request is sent
	pieces  int           // a POST's body goes out in this many writes (1-4)
	gap     time.Duration
	op      hostileOp
	variant byte
	delay   time.Duration // the op's delay
}

const (
	hostileStep     = 5 * time.Millisecond
	hostileBudget   = 250 * time.Millisecond // per client, of gaps and upstream delays
	hostileHost     = "web.example.com"
	hostileDeadline = 3 * time.Second // a client's whole run, against hangs
)

var hostileMethods = [...]string{"GET", "HEAD", "POST"}

// Input layout (a byte past the end reads as 0):
//
//	[clients-2] then per client [start/5ms, requests-1]
//	then per request, client by client:
//	[method + 3*(netHTTP | chunked<<1 | close<<2 | big<<3), pause/5ms, (pieces-1) + 4*(gap/5ms), op, variant, delay/5ms]
func decodeHostile(data []byte) hostileScript {
	next := func() byte {
		if len(data) == 0 {
			return 0
		}
		b := data[0]
		data = data[1:]
		return b
	}
	s := hostileScript{clients: make([]hostileClient, 2+int(next()%2))}
	for i := range s.clients {
		s.clients[i].start = time.Duration(next()%10) * hostileStep
		s.clients[i].reqs = make([]hostileReq, 1+int(next()%4))
	}
	for i := range s.clients {
		budget := hostileBudget
		spend := func(d time.Duration) time.Duration {
			if d > budget {
				return 0
			}
			budget -= d
			return d
		}
		for n := range s.clients[i].reqs {
			kind := next()
			pause := time.Duration(next()%10) * hostileStep
			pieces := next()
			r := hostileReq{method: hostileMethods[kind%3], pause: spend(pause)}
			r.op = hostileOp(next() % byte(numHostileOps))
			r.variant = next()
			r.delay = spend(time.Duration(next()%21) * hostileStep)
			flags := kind / 3
			r.netHTTP, r.close, r.big = flags&1 != 0, flags&4 != 0, flags&8 != 0
			if r.method == "POST" {
				r.chunked = flags&2 != 0
				r.pieces = 1 + int(pieces%4)
				if r.pieces > 1 {
					r.gap = time.Duration(pieces/4%8) * hostileStep
					if spend(r.gap*time.Duration(r.pieces-1)) == 0 {
						r.gap = 0
					}
				}
			}
			s.clients[i].reqs[n] = r
		}
	}
	return s
}

// encode is decodeHostile's inverse, for seeds.
func (s hostileScript) encode() []byte {
	b := []byte{byte(len(s.clients) - 2)}
	for _, c := range s.clients {
		b = append(b, byte(c.start/hostileStep), byte(len(c.reqs)-1))
	}
	bit := func(v bool, n uint) byte {
		if v {
			return 1 << n
		}
		return 0
	}
	for _, c := range s.clients {
		for _, r := range c.reqs {
			m := byte(slices.Index(hostileMethods[:], r.method))
			pieces := byte(0)
			if r.pieces > 0 {
				pieces = byte(r.pieces-1) + 4*byte(r.gap/hostileStep)
			}
			flags := bit(r.netHTTP, 0) | bit(r.chunked, 1) | bit(r.close, 2) | bit(r.big, 3)
			b = append(b, m+3*flags, byte(r.pause/hostileStep), pieces, byte(r.op), r.variant, byte(r.delay/hostileStep))
		}
	}
	return b
}

func (s hostileScript) String() string {
	var b strings.Builder
	for c, cl := range s.clients {
		fmt.Fprintf(&b, "\n  client %d after %v:", c, cl.start)
		for n, r := range cl.reqs {
			b.WriteString("\n    ")
			if r.pause > 0 {
				fmt.Fprintf(&b, "after %v: ", r.pause)
			}
			fmt.Fprintf(&b, "%s %s", r.method, clientToken(c, n))
			if r.netHTTP {
				b.WriteString(" x-lane")
			}
			if r.close {
				b.WriteString(" close")
			}
			if r.method == "POST" {
				fmt.Fprintf(&b, " body(big=%v chunked=%v) in %d writes %v apart", r.big, r.chunked, r.pieces, r.gap)
			}
			fmt.Fprintf(&b, "; upstream %v variant %d delay %v", r.op, r.variant, r.delay)
		}
	}
	return b.String()
}

func clientToken(c, n int) string  { return fmt.Sprintf("~c%dr%d~", c, n) }
func smuggleToken(c, n int) string { return fmt.Sprintf("~s%dr%d~", c, n) }

var hostileTokenRE = regexp.MustCompile(`~[cs]\d+r\d+~`)

// describeToken says whose a token is, for failure messages.
func describeToken(tok string) string {
	var kind byte
	var c, n int
	if _, err := fmt.Sscanf(strings.Trim(tok, "~"), "%c%dr%d", &kind, &c, &n); err != nil {
		return tok
	}
	if kind == 's' {
		return fmt.Sprintf("the request smuggled in the body of client %d's request %d (%s)", c, n, tok)
	}
	return fmt.Sprintf("client %d's request %d (%s)", c, n, tok)
}

// body is what a POST sends: some data, then a request of its own that
// must never reach the upstream as one.
func (r hostileReq) body(c, n int) (body string, smuggled int) {
	smuggle := "GET /t/" + smuggleToken(c, n) + " HTTP/1.1\r\nHost: " + hostileHost + "\r\n\r\n"
	size := 40
	if r.big {
		size = 32 << 10
	}
	data := "data of " + clientToken(c, n) + " "
	data += strings.Repeat("x", max(0, size-len(data)))
	return data + smuggle, len(smuggle)
}

// writes is the request as the client's successive writes.
func (r hostileReq) writes(c, n int) []string {
	var h strings.Builder
	fmt.Fprintf(&h, "%s /t/%s HTTP/1.1\r\nHost: %s\r\n", r.method, clientToken(c, n), hostileHost)
	switch {
	case r.close && r.netHTTP:
		h.WriteString("Connection: close, x-lane\r\n")
	case r.close:
		h.WriteString("Connection: close\r\n")
	case r.netHTTP:
		h.WriteString("Connection: keep-alive, x-lane\r\n")
	}
	if r.method != "POST" {
		return []string{h.String() + "\r\n"}
	}
	body, smuggled := r.body(c, n)
	var parts []string
	if r.pieces <= 1 {
		parts = []string{body}
	} else { // the data in pieces-1 parts, then the smuggled request
		data, k := body[:len(body)-smuggled], r.pieces-1
		for i := range k {
			parts = append(parts, data[i*len(data)/k:(i+1)*len(data)/k])
		}
		parts = append(parts, body[len(body)-smuggled:])
	}
	if r.chunked {
		h.WriteString("Transfer-Encoding: chunked\r\n")
		for i, p := range parts {
			parts[i] = fmt.Sprintf("%x\r\n%s\r\n", len(p), p)
		}
		parts[len(parts)-1] += "0\r\n\r\n"
	} else {
		fmt.Fprintf(&h, "Content-Length: %d\r\n", len(body))
	}
	parts[0] = h.String() + "\r\n" + parts[0]
	return parts
}

// hostileReport collects the oracle's findings from all goroutines.
type hostileReport struct {
	mu       sync.Mutex
	failures []hostileFailure
	notes    []string
}

type hostileFailure struct {
	msg    string
	tokens []string // the other requests' tokens a client saw
}

func (r *hostileReport) fail(format string, args ...any) { r.leak(nil, format, args...) }

// leak records a failure in which a client saw the tokens of others.
func (r *hostileReport) leak(tokens []string, format string, args ...any) {
	r.mu.Lock()
	r.failures = append(r.failures, hostileFailure{fmt.Sprintf(format, args...), tokens})
	r.mu.Unlock()
}

func (r *hostileReport) note(format string, args ...any) {
	r.mu.Lock()
	r.notes = append(r.notes, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

func excerpt(s string) string {
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return fmt.Sprintf("%q", s)
}

// foreign reports, once, the tokens in text other than want (want is ""
// when the client waits for nothing); own says whether want was there,
// others whether any other was.
func (r *hostileReport) foreign(who, want, what, text string) (own, others bool) {
	var toks []string
	for _, tok := range hostileTokenRE.FindAllString(text, -1) {
		switch {
		case tok == want:
			own = true
		case !slices.Contains(toks, tok):
			toks = append(toks, tok)
		}
	}
	if len(toks) > 0 {
		whose := make([]string, len(toks))
		for i, tok := range toks {
			whose[i] = describeToken(tok)
		}
		r.leak(toks, "%s received bytes of %s in %s: %s", who, strings.Join(whose, " and "), what, excerpt(text))
	}
	return own, len(toks) > 0
}

func runHostile(t *testing.T, e *env, s hostileScript) {
	u := startHostileUpstream(t, s)
	pointWebAt(t, e, u.addr)
	front := strings.TrimPrefix(e.srv.URL, "http://")
	rep := &hostileReport{}
	start := time.Now()
	var wg sync.WaitGroup
	for c := range s.clients {
		wg.Add(1)
		go func() { defer wg.Done(); runHostileClient(front, c, s.clients[c], rep, start.Add(hostileDeadline)) }()
	}
	wg.Wait()
	clientsDone := time.Since(start)
	recs, racy := u.close()
	dropPooled(e.r, u.addr)
	checkUpstreamRecords(s, recs, rep)
	var failures []string
	for _, f := range rep.failures {
		if len(f.tokens) > 0 && !slices.ContainsFunc(f.tokens, func(tok string) bool { return !racy[tok] }) {
			rep.notes = append(rep.notes, "excused, the late bytes raced the next request: "+f.msg)
			continue
		}
		failures = append(failures, f.msg)
	}
	if len(rep.notes) > 0 {
		t.Logf("notes:\n  %s", strings.Join(rep.notes, "\n  "))
	}
	if len(failures) > 0 {
		t.Fatalf("script:%v\nclients done after %v; %d failure(s):\n  %s", s, clientsDone.Round(time.Millisecond),
			len(failures), strings.Join(failures, "\n  "))
	}
}

// pointWebAt makes addr the only instance of the app "web".
func pointWebAt(t *testing.T, e *env, addr string) {
	t.Helper()
	k, _ := e.keys.Instance("web", "1")
	b, _ := json.Marshal(registry.Instance{Addr: addr, State: registry.StateUp})
	resp, err := e.cli.Put(context.Background(), k, string(b))
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); e.r.table.Load().Rev < resp.Header.Revision; {
		if time.Now().After(deadline) {
			t.Fatal("the router's table does not show the new upstream")
		}
		time.Sleep(time.Millisecond)
	}
}

// dropPooled closes the router's idle connections to addr, which is not
// used again, so that iterations do not pile them up.
func dropPooled(r *Router, addr string) { r.pool.CloseIdle(addr) }

// runHostileClient sends client c's requests one after the other on a
// keep-alive connection (a new one after an error or a close) and checks
// every byte it gets back.
func runHostileClient(front string, c int, cl hostileClient, rep *hostileReport, deadline time.Time) {
	time.Sleep(cl.start)
	var conn net.Conn
	var br *bufio.Reader
	hangUp := func() {
		if conn != nil {
			conn.Close()
			conn, br = nil, nil
		}
	}
	defer hangUp()
	for n, r := range cl.reqs {
		tok := clientToken(c, n)
		who := describeToken(tok)
		time.Sleep(r.pause)
		if conn == nil {
			var err error
			if conn, err = net.Dial("tcp", front); err != nil {
				rep.fail("%s: dialing the router: %v", who, err)
				return
			}
			conn.SetDeadline(deadline)
			br = bufio.NewReader(conn)
		} else if br.Buffered() > 0 {
			b, _ := br.Peek(br.Buffered())
			if _, others := rep.foreign(who, "", "bytes that came before it was sent", string(b)); !others {
				rep.fail("%s: %d unsolicited bytes came before it was sent: %s", who, len(b), excerpt(string(b)))
			}
			hangUp()
			continue
		}
		for i, w := range r.writes(c, n) {
			if i > 0 {
				time.Sleep(r.gap)
			}
			if _, err := io.WriteString(conn, w); err != nil {
				break // the router may have answered and closed: read what it said
			}
		}
		if !readHostileResponse(br, r.method, who, tok, rep) || r.close {
			hangUp()
		}
	}
	if conn != nil { // nothing more may come
		conn.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
		if b, _ := br.Peek(1); len(b) > 0 {
			rest, _ := io.ReadAll(br)
			who := fmt.Sprintf("client %d", c)
			if _, others := rep.foreign(who, "", "bytes that came after its last response", string(rest)); !others {
				rep.fail("%s received unsolicited bytes after its last response: %s", who, excerpt(string(rest)))
			}
		}
	}
}

// readHostileResponse reads the answer to the request for tok (1xx
// responses, then a final one), checks it, and reports whether the
// connection may carry another request.
func readHostileResponse(br *bufio.Reader, method, who, tok string, rep *hostileReport) (keep bool) {
	errorOut := func(what string, err error) bool {
		b, _ := br.Peek(br.Buffered())
		rep.foreign(who, tok, what, err.Error()+" "+string(b))
		if isTimeout(err) {
			rep.note("%s: %s: %v", who, what, err)
		}
		return false
	}
	for {
		resp, err := http.ReadResponse(br, &http.Request{Method: method})
		if err != nil {
			return errorOut("a response that does not parse", err)
		}
		var text strings.Builder
		text.WriteString(resp.Proto + " " + resp.Status + "\n")
		resp.Header.Write(&text)
		if resp.StatusCode < 200 {
			if own, others := rep.foreign(who, tok, "a "+resp.Status+" response", text.String()); !own && !others {
				rep.fail("%s received a %s response without its token: %s", who, resp.Status, excerpt(text.String()))
			}
			continue
		}
		body, berr := io.ReadAll(resp.Body)
		text.WriteString("\n")
		text.Write(body)
		resp.Trailer.Write(&text)
		if berr != nil {
			return errorOut("a response whose body broke off ("+resp.Status+")", fmt.Errorf("%w after %s", berr, text.String()))
		}
		own, others := rep.foreign(who, tok, "its response", text.String())
		switch {
		case others || resp.StatusCode >= 400: // reported, or the router's own page
		case !own:
			rep.fail("%s received a %s response that is not the upstream's answer to it (no token): %s", who, resp.Status,
				excerpt(text.String()))
		case method != "HEAD" && resp.StatusCode != 204 && resp.StatusCode != 304 && !strings.Contains(string(body), tok):
			// every body the upstream sends holds the token
			rep.fail("%s received a %s response whose body is not the upstream's answer: %s", who, resp.Status,
				excerpt(text.String()))
		}
		return !resp.Close
	}
}

// scriptedUpstream answers as the script says and records every byte each
// of its connections received.
type scriptedUpstream struct {
	addr   string
	l      net.Listener
	script map[string]hostileReq // by token
	wg     sync.WaitGroup

	mu     sync.Mutex
	closed bool
	conns  map[net.Conn]struct{}
	recs   [][]byte
	racy   map[string]bool // tokens whose late bytes raced the next request (hostileGrace)
}

func startHostileUpstream(t *testing.T, s hostileScript) *scriptedUpstream {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &scriptedUpstream{addr: l.Addr().String(), l: l, script: map[string]hostileReq{}, conns: map[net.Conn]struct{}{},
		racy: map[string]bool{}}
	for c, cl := range s.clients {
		for n, r := range cl.reqs {
			u.script[clientToken(c, n)] = r
		}
	}
	u.wg.Add(1)
	go func() {
		defer u.wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			u.mu.Lock()
			if u.closed {
				u.mu.Unlock()
				c.Close()
				return
			}
			u.conns[c] = struct{}{}
			u.wg.Add(1)
			u.mu.Unlock()
			go u.serve(c)
		}
	}()
	return u
}

// close stops the upstream and returns what its connections received and
// the racy tokens.
func (u *scriptedUpstream) close() ([][]byte, map[string]bool) {
	u.l.Close()
	u.mu.Lock()
	u.closed = true
	for c := range u.conns {
		c.Close()
	}
	u.mu.Unlock()
	u.wg.Wait()
	return u.recs, u.racy
}

const hostileUpstreamIdle = 500 * time.Millisecond

func (u *scriptedUpstream) serve(c net.Conn) {
	var rec bytes.Buffer
	defer func() {
		c.Close()
		u.mu.Lock()
		delete(u.conns, c)
		u.recs = append(u.recs, rec.Bytes())
		u.mu.Unlock()
		u.wg.Done()
	}()
	br := bufio.NewReader(io.TeeReader(c, &rec))
	for {
		c.SetReadDeadline(time.Now().Add(hostileUpstreamIdle))
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		tok := "~unknown~"
		if t, ok := strings.CutPrefix(req.URL.Path, "/t/"); ok && hostileTokenRE.MatchString(t) {
			tok = t
		}
		r, ok := u.script[tok]
		if !ok { // a smuggled or unknown request: a plain answer (the oracle reports it)
			r = hostileReq{op: opOK}
		}
		racy := func() { u.mu.Lock(); u.racy[tok] = true; u.mu.Unlock() }
		if !answerHostile(c, br, req, tok, r, racy) {
			return
		}
	}
}

var hostileStatuses = [...]int{200, 201, 404, 500}

// hostileGrace: a request that arrives this soon after late bytes may
// have been sent before they arrived (a proxy checks a pooled connection,
// then writes): the upstream calls such late bytes racy and closes the
// connection, and a client that receives them is excused.
const hostileGrace = 5 * time.Millisecond

// answerHostile plays op r.op for one request, and reports whether the
// connection stays open for the next one.
func answerHostile(c net.Conn, br *bufio.Reader, req *http.Request, tok string, r hostileReq, racy func()) (keep bool) {
	v := r.variant
	isHead := req.Method == "HEAD"
	body := "answer to " + tok + "\n"
	write := func(s ...string) { c.Write([]byte(strings.Join(s, ""))) }
	drain := func() bool { _, err := io.Copy(io.Discard, req.Body); return err == nil }
	// idleFor waits d (at least 1 ms) unless the router sends another
	// request on the connection first, and reports whether it did not.
	// Late bytes go only onto an idle connection: a proxy cannot tell
	// bytes that arrive after it sent a request from the answer to it, but
	// it can see those that came before.
	idleFor := func(d time.Duration) bool {
		if br.Buffered() > 0 {
			return false
		}
		c.SetReadDeadline(time.Now().Add(max(d, time.Millisecond)))
		_, err := br.Peek(1)
		return isTimeout(err)
	}
	// late writes b if the connection is idle after d, and reports
	// whether the connection stays open.
	late := func(d time.Duration, b string) bool {
		if !idleFor(d) {
			return true
		}
		write(b)
		if !idleFor(hostileGrace) {
			racy()
			return false
		}
		return true
	}
	reset := func() bool {
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		return false
	}
	head := func(proto string, status int, hdrs ...string) string {
		s := fmt.Sprintf("%s %d %s %s\r\nX-Token: %s\r\n", proto, status, http.StatusText(status), tok, tok)
		for _, h := range hdrs {
			s += h + "\r\n"
		}
		return s + "\r\n"
	}
	chunks := func(b string) string {
		h := len(b) / 2
		return fmt.Sprintf("%x\r\n%s\r\n%x;ext=%s\r\n%s\r\n0\r\nX-Trailer-Token: %s\r\n\r\n", h, b[:h], len(b)-h, strings.Trim(tok, "~"), b[h:], tok)
	}
	// full is a well-formed, length-delimited answer.
	full := func(status int) string {
		s := head("HTTP/1.1", status, fmt.Sprintf("Content-Length: %d", len(body)))
		if !isHead {
			s += body
		}
		return s
	}
	extra := func() string { // bytes after the end of an answer
		switch v % 3 {
		case 0:
			return head("HTTP/1.1", 200, fmt.Sprintf("Content-Length: %d", len(body))) + body
		case 1:
			return "garbage after the answer to " + tok + "\r\n"
		}
		return head("HTTP/1.1", 200, "Content-Length: 1000") + body // half an answer
	}

	switch r.op {
	case opEarlyAnswer:
		write(full(200))
		switch v % 3 {
		case 0:
			return drain()
		case 1:
			return false
		}
		return reset()
	case op1xx: // before reading the body, as a 100 Continue would be
		switch v % 4 {
		case 0:
			write(head("HTTP/1.1", 100))
		case 1:
			write(head("HTTP/1.1", 103, "Link: </"+tok+".css>; rel=preload"))
		case 2:
			write(head("HTTP/1.1", 100), head("HTTP/1.1", 103, "Link: </"+tok+".css>; rel=preload"))
		case 3:
			write(head("HTTP/1.1", 101, "Upgrade: "+strings.Trim(tok, "~"), "Connection: upgrade"))
		}
		if !drain() {
			return false
		}
		time.Sleep(r.delay)
		write(full(200))
		return true
	case opDrop:
		if v&2 != 0 && !drain() {
			return false
		}
		if v&1 != 0 {
			return reset()
		}
		return false
	}
	if !drain() {
		return false
	}
	switch r.op {
	case opOK:
		status := hostileStatuses[v/5%4]
		switch v % 5 {
		case 0:
			write(full(status))
		case 1:
			if isHead {
				write(head("HTTP/1.1", status, "Transfer-Encoding: chunked"))
			} else {
				write(head("HTTP/1.1", status, "Transfer-Encoding: chunked", "Trailer: X-Trailer-Token"), chunks(body))
			}
		case 2:
			write(head("HTTP/1.1", status, fmt.Sprintf("Content-Length: %d", len(body)), "Connection: close"))
			if !isHead {
				write(body)
			}
			return false
		case 3: // HTTP/1.0, the body ends when the connection does
			write(head("HTTP/1.0", status))
			if !isHead {
				write(body)
			}
			return false
		case 4:
			write(head("HTTP/1.0", status, "Connection: keep-alive", fmt.Sprintf("Content-Length: %d", len(body))))
			if !isHead {
				write(body)
			}
		}
		return true
	case opExtra:
		write(full(200), extra())
		return true
	case opLateTail:
		write(full(200))
		return late(r.delay, extra())
	case opBodyWhereNone:
		status := []int{204, 304}[v%2]
		if isHead {
			status = 200
		}
		bogus := body
		if v&8 == 0 { // shaped as an answer, as a confused or hostile upstream's may be
			bogus = head("HTTP/1.1", 200, fmt.Sprintf("Content-Length: %d", len(body))) + body
		}
		var h, b string
		if v&2 != 0 {
			h, b = head("HTTP/1.1", status, "Transfer-Encoding: chunked"), chunks(bogus)
		} else {
			h, b = head("HTTP/1.1", status, fmt.Sprintf("Content-Length: %d", len(bogus))), bogus
		}
		if v&4 != 0 {
			write(h)
			return late(r.delay, b)
		}
		write(h, b)
		return true
	case opBadChunks:
		h := head("HTTP/1.1", 200, "Transfer-Encoding: chunked")
		switch v % 5 {
		case 0: // a size too small
			write(h, fmt.Sprintf("3\r\n%s\r\n0\r\n\r\n", body))
		case 1: // a size too large, then silence and a close
			write(h, fmt.Sprintf("ff\r\n%s\r\n0\r\n\r\n", body))
			time.Sleep(r.delay)
			return false
		case 2:
			write(h, fmt.Sprintf("zz\r\n%s\r\n0\r\n\r\n", body))
		case 3: // bare LFs
			write(h, fmt.Sprintf("%x\n%s\n0\n\n", len(body), body))
		case 4: // no blank line after the last chunk: the next answer follows
			write(h, fmt.Sprintf("%x\r\n%s\r\n0\r\n", len(body), body), full(200))
		}
		return true
	case opWrongLength:
		switch v % 5 {
		case 0: // too short: the rest, an answer of its own, follows
			write(head("HTTP/1.1", 200, fmt.Sprintf("Content-Length: %d", len(body))), body, full(200))
		case 1: // too long: silence, then a close
			write(head("HTTP/1.1", 200, fmt.Sprintf("Content-Length: %d", len(body)+20)), body)
			time.Sleep(r.delay)
			return false
		case 2:
			write(head("HTTP/1.1", 200, fmt.Sprintf("Content-Length: %d", len(body)), fmt.Sprintf("Content-Length: %d", len(body)+1)), body)
		case 3:
			write(head("HTTP/1.1", 200, "Content-Length: 3", "Transfer-Encoding: chunked"), chunks(body))
		case 4:
			write(head("HTTP/1.1", 200, "Content-Length: -1"), body)
		}
		return true
	case opSlowBody:
		if v&1 != 0 {
			b := chunks(body)
			write(head("HTTP/1.1", 200, "Transfer-Encoding: chunked"), b[:len(b)/2])
			time.Sleep(r.delay)
			write(b[len(b)/2:])
		} else {
			write(head("HTTP/1.1", 200, fmt.Sprintf("Content-Length: %d", len(body))), body[:len(body)/2])
			time.Sleep(r.delay)
			write(body[len(body)/2:])
		}
		return true
	case opSlowHead:
		s := full(200)
		if v&1 != 0 {
			write(s[:len(s)/3])
			time.Sleep(r.delay)
			write(s[len(s)/3:])
		} else {
			time.Sleep(r.delay)
			write(s)
		}
		return true
	case opCloseMid:
		s := full(200)
		if v&1 != 0 {
			s = head("HTTP/1.1", 200, "Transfer-Encoding: chunked") + chunks(body)
		}
		cut := max(1, len(s)*(int(v>>2%8)+1)/9)
		write(s[:cut])
		time.Sleep(r.delay)
		if v&2 != 0 {
			return reset()
		}
		return false
	}
	return false
}

// checkUpstreamRecords parses again what each upstream connection
// received: only well-formed requests that clients sent, as they sent
// them, each POST once.
func checkUpstreamRecords(s hostileScript, recs [][]byte, rep *hostileReport) {
	type sent struct {
		method, body string
	}
	want := map[string]sent{}
	for c, cl := range s.clients {
		for n, r := range cl.reqs {
			var b string
			if r.method == "POST" {
				b, _ = r.body(c, n)
			}
			want[clientToken(c, n)] = sent{r.method, b}
		}
	}
	seen := map[string]int{}
	for i, rec := range recs {
		cr := &countingReader{r: bytes.NewReader(rec)}
		br := bufio.NewReader(cr)
		for k := 0; ; k++ {
			at := cr.n - br.Buffered()
			where := fmt.Sprintf("upstream connection %d, request %d (offset %d)", i, k, at)
			req, err := http.ReadRequest(br)
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				break // the end, or a request cut short by a close
			}
			if err != nil {
				rep.fail("%s: bytes that are not a request (%v): %s", where, err, excerpt(string(rec[at:])))
				break
			}
			tok, _ := strings.CutPrefix(req.URL.Path, "/t/")
			b, berr := io.ReadAll(req.Body)
			cut := errors.Is(berr, io.ErrUnexpectedEOF)
			w, ok := want[tok]
			switch {
			case !ok:
				rep.fail("%s: %s %s is no client's request (%s): %s", where, req.Method, req.URL.Path, describeToken(tok),
					excerpt(string(rec[at:])))
			case req.Method != w.method:
				rep.fail("%s: %s came as %s", where, describeToken(tok), req.Method)
			case berr != nil && !cut:
				rep.fail("%s: the body of %s does not parse (%v): %s", where, describeToken(tok), berr, excerpt(string(rec[at:])))
			case cut && !strings.HasPrefix(w.body, string(b)) || !cut && string(b) != w.body:
				rep.fail("%s: the body of %s is not the one its client sent: %s", where, describeToken(tok), excerpt(string(b)))
			}
			if seen[tok]++; ok && w.method == "POST" && seen[tok] == 2 {
				rep.fail("%s: %s reached the upstream twice", where, describeToken(tok))
			}
			if berr != nil {
				break
			}
		}
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}
