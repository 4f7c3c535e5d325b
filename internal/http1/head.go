package http1

import (
	"bufio"
	"bytes"
	"errors"
)

// Message heads are parsed in place and without allocations. The request
// parser accepts a strict subset of the protocol: whatever it does not
// understand is ErrUnsupported, and the caller hands the request to
// net/http, which serves it or answers 400, so this parser never needs to
// be lenient (no obs-fold, no bare LF, no Transfer-Encoding on requests,
// no duplicate Host or Content-Length).

// ErrUnsupported says a request head is outside the subset the parser
// accepts: net/http's to serve or refuse.
var ErrUnsupported = errors.New("request needs the full HTTP server")

// ErrMalformed says an upstream's response could not be parsed or framed.
var ErrMalformed = errors.New("malformed response from upstream")

var crlfcrlf = []byte("\r\n\r\n")

// Kinds of header names the proxy acts on (KindOf).
const (
	Other = iota
	Host
	ContentLength
	TransferEncoding
	Connection
	HopByHop // Keep-Alive, Proxy-Connection, Proxy-Authenticate, Proxy-Authorization, Trailer (requests)
	TE
	Upgrade
	Expect
	XForwardedFor
	XForwardedHost
	XForwardedProto
	XRealIP
	Forwarded
	Accept
	IdempotencyKey
	RetryAfter
	Trailer
	StrictTransportSecurity
)

// KindOf classifies a header name, ignoring case.
func KindOf(name []byte) int {
	switch len(name) {
	case 2:
		if EqFold(name, "te") {
			return TE
		}
	case 4:
		if EqFold(name, "host") {
			return Host
		}
	case 6:
		switch {
		case EqFold(name, "accept"):
			return Accept
		case EqFold(name, "expect"):
			return Expect
		}
	case 7:
		switch {
		case EqFold(name, "upgrade"):
			return Upgrade
		case EqFold(name, "trailer"):
			return Trailer
		}
	case 9:
		switch {
		case EqFold(name, "forwarded"):
			return Forwarded
		case EqFold(name, "x-real-ip"):
			return XRealIP
		}
	case 10:
		switch {
		case EqFold(name, "connection"):
			return Connection
		case EqFold(name, "keep-alive"):
			return HopByHop
		}
	case 11:
		if EqFold(name, "retry-after") {
			return RetryAfter
		}
	case 14:
		if EqFold(name, "content-length") {
			return ContentLength
		}
	case 15:
		switch {
		case EqFold(name, "x-forwarded-for"):
			return XForwardedFor
		case EqFold(name, "idempotency-key"):
			return IdempotencyKey
		}
	case 16:
		switch {
		case EqFold(name, "x-forwarded-host"):
			return XForwardedHost
		case EqFold(name, "proxy-connection"):
			return HopByHop
		}
	case 17:
		switch {
		case EqFold(name, "transfer-encoding"):
			return TransferEncoding
		case EqFold(name, "x-forwarded-proto"):
			return XForwardedProto
		case EqFold(name, "x-idempotency-key"):
			return IdempotencyKey
		}
	case 18:
		if EqFold(name, "proxy-authenticate") {
			return HopByHop
		}
	case 19:
		if EqFold(name, "proxy-authorization") {
			return HopByHop
		}
	case 25:
		if EqFold(name, "strict-transport-security") {
			return StrictTransportSecurity
		}
	}
	return Other
}

// EqFold compares b with the lower-case ASCII string s, ignoring b's case.
func EqFold(b []byte, s string) bool {
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

// HeaderLine splits one "Name: value" line (without CRLF); ok is false
// for anything but a token name, a colon, and a value without control
// characters other than tab.
func HeaderLine(line []byte) (name, value []byte, ok bool) {
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
	if !FieldText(value) {
		return nil, nil, false
	}
	return name, bytes.Trim(value, " \t"), true
}

// FieldText reports whether b is free of control characters other than
// tab: what a header value, a reason phrase or a chunk extension may hold.
func FieldText(b []byte) bool {
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

// PeekHead waits until br holds a whole message head (through the blank
// line) and returns it, left in the buffer. Before each wait it calls
// waiting (if set), which may stop it with an error; a head that does not
// fit the buffer is ErrHeadTooBig.
func PeekHead(br *bufio.Reader, waiting func() error) ([]byte, error) {
	for {
		buf, _ := br.Peek(br.Buffered())
		if i := bytes.Index(buf, crlfcrlf); i >= 0 {
			return buf[:i+4], nil
		}
		if br.Buffered() >= br.Size() {
			return nil, ErrHeadTooBig
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

var ErrHeadTooBig = errors.New("message head larger than the buffer")

// RequestHead is a parsed request head. Its slices point into the buffer it
// was parsed from and are valid until that buffer is read further.
type RequestHead struct {
	Raw           []byte // the whole head, through the blank line
	Method        []byte
	Target        []byte // as sent: path and query
	Host          []byte
	ContentLength int64
	Close         bool // the client asked to close after this request
	Idempotent    bool // by method, or an Idempotency-Key header
	Accept        []byte
	XFF, XFP, XRI []byte // incoming X-Forwarded-For, X-Forwarded-Proto, X-Real-IP
}

// ParseRequestHead parses head (ending in CRLF CRLF). It returns
// ErrUnsupported for anything outside the lane's subset.
func ParseRequestHead(head []byte, h *RequestHead) error {
	*h = RequestHead{Raw: head}
	line, rest, ok := bytes.Cut(head, []byte("\r\n"))
	if !ok {
		return ErrUnsupported
	}
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return ErrUnsupported
	}
	h.Method = line[:sp1]
	for _, c := range h.Method {
		if !isTokenChar(c) {
			return ErrUnsupported
		}
	}
	target, version, ok := bytes.Cut(line[sp1+1:], []byte(" "))
	h.Target = target
	if !ok || string(version) != "HTTP/1.1" || len(target) == 0 || target[0] != '/' {
		return ErrUnsupported
	}
	inPath := true
	for i, c := range target {
		switch {
		case c <= ' ' || c == 0x7f:
			return ErrUnsupported
		case c == '?':
			inPath = false
		case c == '%' && inPath && (i+2 >= len(target) || !isHex(target[i+1]) || !isHex(target[i+2])):
			return ErrUnsupported // net/http refuses a bad escape in the path
		}
	}
	switch string(h.Method) {
	case "GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE":
		h.Idempotent = true
	}
	seenHost, seenLength := false, false
	for {
		line, rest, ok = bytes.Cut(rest, []byte("\r\n"))
		if !ok {
			return ErrUnsupported
		}
		if len(line) == 0 {
			break
		}
		name, value, ok := HeaderLine(line)
		if !ok {
			return ErrUnsupported
		}
		switch KindOf(name) {
		case Host:
			if seenHost || !validHost(value) {
				return ErrUnsupported
			}
			seenHost, h.Host = true, value
		case ContentLength:
			n, ok := parseLength(value)
			if seenLength || !ok {
				return ErrUnsupported
			}
			seenLength, h.ContentLength = true, n
		case TransferEncoding, Upgrade, Expect, TE:
			return ErrUnsupported
		case Connection:
			if !eachToken(value, func(tok []byte) bool {
				switch {
				case EqFold(tok, "close"):
					h.Close = true
				case EqFold(tok, "keep-alive"):
				default:
					return false // names other headers as hop-by-hop: leave it to net/http
				}
				return true
			}) {
				return ErrUnsupported
			}
		case XForwardedFor:
			if h.XFF != nil {
				return ErrUnsupported
			}
			h.XFF = value
		case XForwardedProto:
			h.XFP = value
		case XRealIP:
			h.XRI = value
		case Accept:
			h.Accept = value
		case IdempotencyKey:
			h.Idempotent = true
		}
	}
	if !seenHost || len(rest) != 0 {
		return ErrUnsupported
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

// ResponseHead is a parsed response head; like RequestHead it points into its
// buffer.
type ResponseHead struct {
	Raw           []byte
	Status        int
	StatusText    []byte // "200 OK": the status line after the version
	HTTP10        bool
	ContentLength int64 // -1 when absent
	Chunked       bool
	Close         bool // the upstream closes after this response
	RetryAfter    bool // a Retry-After header is present
	// Ambiguous is set when the head frames its body in two ways
	// (Transfer-Encoding and Content-Length): Transfer-Encoding wins
	// (RFC 9112 6.3) but the connection must not be reused.
	Ambiguous bool
	dropped   [4][]byte // header names the Connection header lists
	ndropped  int
	// moreDropped is set when it lists more than dropped holds: they are
	// looked up in Raw then.
	moreDropped bool
}

// ParseResponseHead parses an upstream's response head (ending in CRLF
// CRLF).
func ParseResponseHead(head []byte, h *ResponseHead) error {
	*h = ResponseHead{Raw: head, ContentLength: -1}
	line, rest, ok := bytes.Cut(head, []byte("\r\n"))
	if !ok || len(line) < 12 || line[8] != ' ' {
		return ErrMalformed
	}
	switch string(line[:8]) {
	case "HTTP/1.1":
	case "HTTP/1.0":
		h.HTTP10, h.Close = true, true
	default:
		return ErrMalformed
	}
	h.StatusText = line[9:]
	if !FieldText(h.StatusText) {
		return ErrMalformed // a bare LF here would smuggle a header to the client
	}
	for _, c := range line[9:12] {
		if c < '0' || c > '9' {
			return ErrMalformed
		}
		h.Status = h.Status*10 + int(c-'0')
	}
	if h.Status < 100 || len(line) > 12 && line[12] != ' ' {
		return ErrMalformed
	}
	for {
		line, rest, ok = bytes.Cut(rest, []byte("\r\n"))
		if !ok {
			return ErrMalformed
		}
		if len(line) == 0 {
			break
		}
		name, value, ok := HeaderLine(line)
		if !ok {
			return ErrMalformed
		}
		switch KindOf(name) {
		case ContentLength:
			n, ok := parseLength(value)
			if !ok || h.ContentLength >= 0 && h.ContentLength != n {
				return ErrMalformed
			}
			h.ContentLength = n
		case TransferEncoding:
			// Only "chunked", once, and not from HTTP/1.0, which has no
			// transfer codings (RFC 9112 6.1; nginx refuses it too).
			if !EqFold(value, "chunked") || h.Chunked || h.HTTP10 {
				return ErrMalformed
			}
			h.Chunked = true
		case Connection:
			if !eachToken(value, func(tok []byte) bool {
				switch {
				case EqFold(tok, "close"):
					h.Close = true
				case EqFold(tok, "keep-alive"):
					if h.HTTP10 {
						h.Close = false
					}
				case h.ndropped == len(h.dropped):
					h.moreDropped = true
				default:
					h.dropped[h.ndropped] = tok
					h.ndropped++
				}
				return true
			}) {
				return ErrMalformed
			}
		case RetryAfter:
			h.RetryAfter = true
		}
	}
	if h.Chunked && h.ContentLength >= 0 {
		h.ContentLength, h.Ambiguous = -1, true // RFC 9112 6.3: Transfer-Encoding wins; close after it
	}
	return nil
}

// droppedByConnection reports whether the Connection header named name.
func (h *ResponseHead) droppedByConnection(name []byte) bool {
	for _, d := range h.dropped[:h.ndropped] {
		if bytes.EqualFold(d, name) {
			return true
		}
	}
	if h.moreDropped {
		_, rest, _ := bytes.Cut(h.Raw, []byte("\r\n"))
		for len(rest) > 0 {
			var line []byte
			line, rest, _ = bytes.Cut(rest, []byte("\r\n"))
			if n, v, ok := HeaderLine(line); ok && KindOf(n) == Connection &&
				!eachToken(v, func(tok []byte) bool { return !bytes.EqualFold(tok, name) }) {
				return true
			}
		}
	}
	return false
}
