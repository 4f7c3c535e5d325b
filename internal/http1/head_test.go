package http1

import (
	"bufio"
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestHeaderKind(t *testing.T) {
	for name, want := range map[string]int{
		"Host": Host, "content-length": ContentLength, "Transfer-Encoding": TransferEncoding,
		"CONNECTION": Connection, "Keep-Alive": HopByHop, "Proxy-Connection": HopByHop,
		"Proxy-Authenticate": HopByHop, "Proxy-Authorization": HopByHop, "TE": TE, "Upgrade": Upgrade,
		"Expect": Expect, "X-Forwarded-For": XForwardedFor, "X-Forwarded-Host": XForwardedHost, "X-Forwarded-Proto": XForwardedProto,
		"X-Real-IP": XRealIP, "Forwarded": Forwarded, "Accept": Accept, "Idempotency-Key": IdempotencyKey,
		"X-Idempotency-Key": IdempotencyKey, "Retry-After": RetryAfter, "Trailer": Trailer,
		"Strict-Transport-Security": StrictTransportSecurity, "X-Real-IPs": Other, "Hosts": Other, "Content-Type": Other, "": Other,
	} {
		if got := KindOf([]byte(name)); got != want {
			t.Errorf("KindOf(%q) = %d, want %d", name, got, want)
		}
	}
}

// The lane's parsers accept a subset of what net/http accepts, and read
// what they accept the same way: the fuzzers check both against
// net/http's own readers.

func FuzzParseRequestHead(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a.example.com\r\n\r\n",
		"POST /x?y=1 HTTP/1.1\r\nHost: a:8080\r\nContent-Length: 3\r\nConnection: close\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 1.2.3.4\r\nAccept: text/html\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\n folded\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: +1\r\n\r\n",
		"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /a%2fb%zz?q=%zz HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /%4 HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, close\r\n\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		i := strings.Index(s, "\r\n\r\n")
		if i < 0 {
			return
		}
		head := []byte(s[:i+4])
		var h RequestHead
		if ParseRequestHead(head, &h) != nil {
			return // handed to net/http
		}
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
		if err != nil {
			t.Fatalf("lane accepts what net/http refuses (%v): %q", err, head)
		}
		if req.Method != string(h.Method) || req.Host != string(h.Host) || req.ContentLength != h.ContentLength ||
			req.Close != h.Close || req.ProtoMinor != 1 {
			t.Fatalf("lane and net/http disagree on %q: method %q/%q host %q/%q length %d/%d close %v/%v",
				head, h.Method, req.Method, h.Host, req.Host, h.ContentLength, req.ContentLength, h.Close, req.Close)
		}
		if len(req.TransferEncoding) > 0 || req.Header.Get("Upgrade") != "" || req.Header.Get("Expect") != "" {
			t.Fatalf("lane took a request it must hand over: %q", head)
		}
	})
}

func FuzzParseResponseHead(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
		"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n",
		"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n",
		"HTTP/1.1 200 OK\r\nConnection: close, X-A\r\n\r\n",
		"HTTP/1.1 204\r\n\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		i := strings.Index(s, "\r\n\r\n")
		if i < 0 {
			return
		}
		head := []byte(s[:i+4])
		var h ResponseHead
		if ParseResponseHead(head, &h) != nil {
			return // a 502
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(head)), &http.Request{Method: "GET"})
		if err != nil {
			return // stricter net/http checks (e.g. Content-Length on a 204) are not the lane's business
		}
		if resp.StatusCode != h.Status {
			t.Fatalf("status %d/%d in %q", h.Status, resp.StatusCode, head)
		}
		chunked := len(resp.TransferEncoding) > 0
		if resp.StatusCode >= 200 && resp.StatusCode != 204 && resp.StatusCode != 304 {
			if chunked != h.Chunked || !chunked && resp.ContentLength != h.ContentLength {
				t.Fatalf("framing chunked %v/%v length %d/%d in %q", h.Chunked, chunked, h.ContentLength, resp.ContentLength, head)
			}
		}
	})
}

// FuzzCopyChunked: a chunked body the lane passes through decodes, with
// net/http's reader, to what the original decodes to.
func FuzzCopyChunked(f *testing.F) {
	for _, s := range []string{
		"5\r\nhello\r\n0\r\n\r\n",
		"3;x=y\r\nabc\r\n0\r\nTrailer: v\r\n\r\n",
		"A\r\n0123456789\r\n0\r\n\r\n",
		"5\r\nhel",
		"zz\r\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var out bytes.Buffer
		dst := bufio.NewWriter(&out)
		rerr, werr := copyChunked(dst, bufio.NewReader(strings.NewReader(s)))
		dst.Flush()
		if werr != nil {
			t.Fatal(werr)
		}
		if rerr != nil {
			return
		}
		decode := func(body string) ([]byte, error) {
			resp, err := http.ReadResponse(bufio.NewReader(strings.NewReader(
				"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"+body)), nil)
			if err != nil {
				return nil, err
			}
			return io.ReadAll(resp.Body)
		}
		want, err := decode(s)
		if err != nil {
			t.Fatalf("lane passed a body net/http cannot read (%v): %q", err, s)
		}
		got, err := decode(out.String())
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("passed through %q as %q: %q vs %q (%v)", s, out.String(), got, want, err)
		}
	})
}
