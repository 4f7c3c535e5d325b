package router

import (
	"bufio"
	"bytes"
	"errors"
)

// The fast lane (lane.go) parses HTTP/1.1 message heads itself, in place
// and without allocations. It accepts a strict subset of the protocol:
// whatever it does not understand makes the lane hand the connection to
// net/http, which serves it or answers 400, so the lane never needs to be
// lenient (no obs-fold, no bare LF, no Transfer-Encoding on requests, no
// duplicate Host or Content-Length).

// errHandoff says a request is not for the fast lane.
var errHandoff = errors.New("request needs the full HTTP server")

// errBadUpstream says an upstream's response could not be parsed.
var errBadUpstream = errors.New("malformed response from upstream")

var crlfcrlf = []byte("\r\n\r\n")

// header names the lane acts on.
const (
	hOther = iota
	hHost
	hContentLength
	hTransferEncoding
	hConnection
	hHopByHop // Keep-Alive, Proxy-Connection, Proxy-Authenticate, Proxy-Authorization, Trailer (requests)
	hTE
	hUpgrade
	hExpect
	hXFF
	hXFH
	hXFP
	hXRI
	hForwarded
	hAccept
	hIdempotencyKey
	hRetryAfter
	hTrailer
)

// headerKind classifies a header name, ignoring case.
func headerKind(name []byte) int {
	switch len(name) {
	case 2:
		if eqFold(name, "te") {
			return hTE
		}
	case 4:
		if eqFold(name, "host") {
			return hHost
		}
	case 6:
		switch {
		case eqFold(name, "accept"):
			return hAccept
		case eqFold(name, "expect"):
			return hExpect
		}
	case 7:
		switch {
		case eqFold(name, "upgrade"):
			return hUpgrade
		case eqFold(name, "trailer"):
			return hTrailer
		}
	case 9:
		switch {
		case eqFold(name, "forwarded"):
			return hForwarded
		case eqFold(name, "x-real-ip"):
			return hXRI
		}
	case 10:
		switch {
		case eqFold(name, "connection"):
			return hConnection
		case eqFold(name, "keep-alive"):
			return hHopByHop
		}
	case 11:
		if eqFold(name, "retry-after") {
			return hRetryAfter
		}
	case 14:
		if eqFold(name, "content-length") {
			return hContentLength
		}
	case 15:
		switch {
		case eqFold(name, "x-forwarded-for"):
			return hXFF
		case eqFold(name, "idempotency-key"):
			return hIdempotencyKey
		}
	case 16:
		switch {
		case eqFold(name, "x-forwarded-host"):
			return hXFH
		case eqFold(name, "proxy-connection"):
			return hHopByHop
		}
	case 17:
		switch {
		case eqFold(name, "transfer-encoding"):
			return hTransferEncoding
		case eqFold(name, "x-forwarded-proto"):
			return hXFP
		case eqFold(name, "x-idempotency-key"):
			return hIdempotencyKey
		}
	case 18:
		if eqFold(name, "proxy-authenticate") {
			return hHopByHop
		}
	case 19:
		if eqFold(name, "proxy-authorization") {
			return hHopByHop
		}
	}
	return hOther
}

// eqFold compares b with the lower-case ASCII string s, ignoring b's case.
func eqFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// isTokenChar reports whether c may appear in a method or header name
// (RFC 9110 tchar).
func isTokenChar(c byte) bool {
	return tokenTable[c]
}

var tokenTable = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
	}
	for c := 'A'; c <= 'Z'; c++ {
		t[c] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "!#$%&'*+-.^_`|~" {
		t[c] = true
	}
	return t
}()

// headerLine splits one "Name: value" line (without CRLF); ok is false
// for anything but a token name, a colon, and a value without control
// characters other than tab.
func headerLine(line []byte) (name, value []byte, ok bool) {
	colon := bytes.IndexByte(line, ':')
	if colon <= 0 {
		return nil, nil, false
	}
	name = line[:colon]
	for _, c := range name {
		if !isTokenChar(c) {
			return nil, nil, false
		}
	}
	value = line[colon+1:]
	if !fieldText(value) {
		return nil, nil, false
	}
	return name, bytes.Trim(value, " \t"), true
}

// fieldText reports whether b is free of control characters other than
// tab: what a header value, a reason phrase or a chunk extension may hold.
func fieldText(b []byte) bool {
	for _, c := range b {
		if c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

// parseLength parses a Content-Length value: decimal digits only.
func parseLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// eachToken calls f with each comma-separated token of a header value
// until f returns false.
func eachToken(v []byte, f func(tok []byte) bool) bool {
	for len(v) > 0 {
		var tok []byte
		if i := bytes.IndexByte(v, ','); i >= 0 {
			tok, v = v[:i], v[i+1:]
		} else {
			tok, v = v, nil
		}
		tok = bytes.Trim(tok, " \t")
		if len(tok) > 0 && !f(tok) {
			return false
		}
	}
	return true
}

// acceptKind is what a client accepts, for the router's own pages.
type acceptKind uint8

const (
	acceptText acceptKind = iota
	acceptHTML
	acceptJSON
)

func acceptOf(v []byte) acceptKind {
	switch {
	case bytes.Contains(v, []byte("text/html")):
		return acceptHTML
	case bytes.Contains(v, []byte("application/json")):
		return acceptJSON
	}
	return acceptText
}

// peekHead waits until br holds a whole message head (through the blank
// line) and returns it, left in the buffer. Before each wait it calls
// waiting (if set), which may stop it with an error; a head that does not
// fit the buffer is errHeadTooBig.
func peekHead(br *bufio.Reader, waiting func() error) ([]byte, error) {
	for {
		buf, _ := br.Peek(br.Buffered())
		if i := bytes.Index(buf, crlfcrlf); i >= 0 {
			return buf[:i+4], nil
		}
		if br.Buffered() >= br.Size() {
			return nil, errHeadTooBig
		}
		if waiting != nil {
			if err := waiting(); err != nil {
				return nil, err
			}
		}
		if _, err := br.Peek(br.Buffered() + 1); err != nil {
			return nil, err
		}
	}
}

var errHeadTooBig = errors.New("message head larger than the buffer")

// reqHead is a parsed request head. Its slices point into the buffer it
// was parsed from and are valid until that buffer is read further.
type reqHead struct {
	raw           []byte // the whole head, through the blank line
	method        []byte
	target        []byte // as sent: path and query
	host          []byte
	contentLength int64
	close         bool // the client asked to close after this request
	idempotent    bool
	accept        acceptKind
	xff, xfp, xri []byte // incoming X-Forwarded-For, X-Forwarded-Proto, X-Real-IP
}

// parseRequestHead parses head (ending in CRLF CRLF). It returns
// errHandoff for anything outside the lane's subset.
func parseRequestHead(head []byte, h *reqHead) error {
	*h = reqHead{raw: head}
	line, rest, ok := bytes.Cut(head, []byte("\r\n"))
	if !ok {
		return errHandoff
	}
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return errHandoff
	}
	h.method = line[:sp1]
	for _, c := range h.method {
		if !isTokenChar(c) {
			return errHandoff
		}
	}
	target, version, ok := bytes.Cut(line[sp1+1:], []byte(" "))
	h.target = target
	if !ok || string(version) != "HTTP/1.1" || len(target) == 0 || target[0] != '/' {
		return errHandoff
	}
	inPath := true
	for i, c := range target {
		switch {
		case c <= ' ' || c == 0x7f:
			return errHandoff
		case c == '?':
			inPath = false
		case c == '%' && inPath && (i+2 >= len(target) || !isHex(target[i+1]) || !isHex(target[i+2])):
			return errHandoff // net/http refuses a bad escape in the path
		}
	}
	switch string(h.method) {
	case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE":
		h.idempotent = true
	}
	seenHost, seenLength := false, false
	for {
		line, rest, ok = bytes.Cut(rest, []byte("\r\n"))
		if !ok {
			return errHandoff
		}
		if len(line) == 0 {
			break
		}
		name, value, ok := headerLine(line)
		if !ok {
			return errHandoff
		}
		switch headerKind(name) {
		case hHost:
			if seenHost || !validHost(value) {
				return errHandoff
			}
			seenHost, h.host = true, value
		case hContentLength:
			n, ok := parseLength(value)
			if seenLength || !ok {
				return errHandoff
			}
			seenLength, h.contentLength = true, n
		case hTransferEncoding, hUpgrade, hExpect, hTE:
			return errHandoff
		case hConnection:
			if !eachToken(value, func(tok []byte) bool {
				switch {
				case eqFold(tok, "close"):
					h.close = true
				case eqFold(tok, "keep-alive"):
				default:
					return false // names other headers as hop-by-hop: leave it to net/http
				}
				return true
			}) {
				return errHandoff
			}
		case hXFF:
			if h.xff != nil {
				return errHandoff
			}
			h.xff = value
		case hXFP:
			h.xfp = value
		case hXRI:
			h.xri = value
		case hAccept:
			h.accept = acceptOf(value)
		case hIdempotencyKey:
			h.idempotent = true
		}
	}
	if !seenHost || len(rest) != 0 {
		return errHandoff
	}
	return nil
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// validHost accepts the characters of a reg-name, an IPv4 or an IPv6
// literal, and a port.
func validHost(v []byte) bool {
	if len(v) == 0 {
		return false
	}
	for _, c := range v {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case c == '.', c == '-', c == ':', c == '[', c == ']', c == '_':
		default:
			return false
		}
	}
	return true
}

// respHead is a parsed response head; like reqHead it points into its
// buffer.
type respHead struct {
	raw           []byte
	status        int
	statusText    []byte // "200 OK": the status line after the version
	http10        bool
	contentLength int64 // -1 when absent
	chunked       bool
	close         bool
	retryAfter    bool
	dropped       [4][]byte // header names the Connection header lists
	ndropped      int
}

// parseResponseHead parses an upstream's response head (ending in CRLF
// CRLF).
func parseResponseHead(head []byte, h *respHead) error {
	*h = respHead{raw: head, contentLength: -1}
	line, rest, ok := bytes.Cut(head, []byte("\r\n"))
	if !ok || len(line) < 12 || line[8] != ' ' {
		return errBadUpstream
	}
	switch string(line[:8]) {
	case "HTTP/1.1":
	case "HTTP/1.0":
		h.http10, h.close = true, true
	default:
		return errBadUpstream
	}
	h.statusText = line[9:]
	if !fieldText(h.statusText) {
		return errBadUpstream // a bare LF here would smuggle a header to the client
	}
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return errBadUpstream
		}
		h.status = h.status*10 + int(c-'0')
	}
	if h.status < 100 || len(line) > 12 && line[12] != ' ' {
		return errBadUpstream
	}
	for {
		line, rest, ok = bytes.Cut(rest, []byte("\r\n"))
		if !ok {
			return errBadUpstream
		}
		if len(line) == 0 {
			break
		}
		name, value, ok := headerLine(line)
		if !ok {
			return errBadUpstream
		}
		switch headerKind(name) {
		case hContentLength:
			n, ok := parseLength(value)
			if !ok || h.contentLength >= 0 && h.contentLength != n {
				return errBadUpstream
			}
			h.contentLength = n
		case hTransferEncoding:
			if !eqFold(value, "chunked") {
				return errBadUpstream
			}
			h.chunked = true
		case hConnection:
			if !eachToken(value, func(tok []byte) bool {
				switch {
				case eqFold(tok, "close"):
					h.close = true
				case eqFold(tok, "keep-alive"):
					if h.http10 {
						h.close = false
					}
				default:
					if h.ndropped == len(h.dropped) {
						return false
					}
					h.dropped[h.ndropped] = tok
					h.ndropped++
				}
				return true
			}) {
				return errBadUpstream
			}
		case hRetryAfter:
			h.retryAfter = true
		}
	}
	if h.chunked {
		h.contentLength = -1 // RFC 9112 6.3: Transfer-Encoding wins
	}
	return nil
}

// droppedByConnection reports whether the Connection header named name.
func (h *respHead) droppedByConnection(name []byte) bool {
	for _, d := range h.dropped[:h.ndropped] {
		if bytes.EqualFold(d, name) {
			return true
		}
	}
	return false
}
