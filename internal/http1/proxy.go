package http1

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"
)

// ClientConn is a client's connection as the proxy serves it: buffered
// reader and writer, and what is left of the current request's body. A
// connection whose body was not read to its end is not kept alive
// (KeepAlive), whatever path the request took.
type ClientConn struct {
	NC net.Conn
	BR *bufio.Reader
	BW *bufio.Writer
	// BodyTimeout bounds the wait for each part of a request body
	// (0: none).
	BodyTimeout time.Duration
	// Closing, if set, reports that the server is shutting down: each
	// response then says "Connection: close".
	Closing func() bool

	bodyLeft     int64 // bytes of the current request's body not yet read
	broken       bool  // the connection must not serve another request
	readDeadline time.Time
}

// ErrBodyTimeout says a request body made no progress for the body
// timeout: a 408 for the client.
var ErrBodyTimeout = errors.New("request body timed out")

// ClientError is a failure on the client's side of an exchange: it went
// away, stalled, or cut its body short. It never counts against an
// upstream.
type ClientError struct{ Err error }

func (e *ClientError) Error() string { return "client: " + e.Err.Error() }
func (e *ClientError) Unwrap() error { return e.Err }

// Begin starts serving the request whose head h is at the start of BR:
// the head leaves the buffer (h is not valid after), the body is what is
// left to read.
func (c *ClientConn) Begin(h *RequestHead) {
	c.BR.Discard(len(h.Raw))
	c.bodyLeft = h.ContentLength
}

// KeepAlive reports whether the connection can serve another request:
// the current request's body was read to its end, nothing failed, and
// the server is not shutting down.
func (c *ClientConn) KeepAlive() bool {
	return c.bodyLeft == 0 && !c.broken && (c.Closing == nil || !c.Closing())
}

// BodyUnread reports whether part of the current request's body is still
// unread: the client may still be sending it.
func (c *ClientConn) BodyUnread() bool { return c.bodyLeft > 0 }

// EndAfterResponse marks the connection to end once the current response
// is written.
func (c *ClientConn) EndAfterResponse() { c.broken = true }

// SetReadDeadline sets the read deadline when it changes (setting one
// costs clock reads and a timer update).
func (c *ClientConn) SetReadDeadline(t time.Time) {
	if !t.Equal(c.readDeadline) {
		c.NC.SetReadDeadline(t)
		c.readDeadline = t
	}
}

// ReadDeadline is the read deadline last set (zero: none).
func (c *ClientConn) ReadDeadline() time.Time { return c.readDeadline }

// Request is what Forward needs of the request it proxies, beyond the
// head and body left in the ClientConn.
type Request struct {
	Head []byte // the outbound head, through the blank line
	// HeadMethod is set for HEAD: the response has no body.
	HeadMethod bool
	// Close makes the response end the client connection ("Connection:
	// close"): the client asked.
	Close bool
	// Start is when this attempt began (the caller sets it again before
	// another); ResponseHeaderTimeout counts from it for a request
	// without a body, from the end of the body otherwise.
	Start                 time.Time
	ResponseHeaderTimeout time.Duration
	// HSTS, if set, is the Strict-Transport-Security value of the final
	// response, replacing the upstream's (the router's policy over TLS).
	HSTS string
}

// Result is how Forward went.
type Result struct {
	// Status is the status sent to the client (0: no response head was
	// written; the caller answers).
	Status int
	// RetryAfter is set when the response had a Retry-After header.
	RetryAfter bool
	// Err is the upstream's failure, or a *ClientError for the client's.
	// The upstream did not get the request if Err is a NotSentError.
	Err error
	// BodySent is set when part of the request body went upstream: the
	// request cannot be sent again.
	BodySent bool
}

// Forward sends the request to the upstream on u and copies the response
// to the client. u is marked reusable only after a response framed
// exactly and copied to its end; the caller gives u back to the Pool (or
// closes it) either way.
func Forward(c *ClientConn, u *Conn, req *Request) Result {
	var res Result
	bodyLen := c.bodyLeft
	if bodyLen == 0 {
		// A deadline for the response head, between the timeout and 1.5×
		// that from now: a kept-alive connection's last deadline often
		// is, and setting one costs a timer update. It stays after the
		// response (the next use checks it again).
		if t := req.ResponseHeaderTimeout; u.readDeadline.Before(req.Start.Add(t)) {
			u.setReadDeadline(req.Start.Add(t + t/2))
		}
	}
	u.bw.Write(req.Head)
	var werr error
	if bodyLen > 0 {
		res.BodySent = true
		var rerr error
		if rerr, werr = c.copyBody(u); rerr != nil {
			res.Err = &ClientError{rerr}
			return res
		}
	}
	if werr == nil {
		werr = u.bw.Flush()
	}
	early := werr != nil
	switch {
	case early && bodyLen == 0:
		res.Err = NotSentError{werr}
		return res
	case early:
		// The upstream stopped reading; it may have answered first (a 413).
		u.setReadDeadline(time.Now().Add(earlyAnswerWait))
	case bodyLen > 0:
		u.nc.SetWriteDeadline(time.Time{})
		u.setReadDeadline(time.Now().Add(req.ResponseHeaderTimeout))
	}
	var h ResponseHead
	for informational := 0; ; informational++ {
		if informational > maxInformational {
			res.Err = ErrMalformed
			return res
		}
		if err := readResponseHead(u.br, &h); err != nil {
			res.Err = err
			if early {
				res.Err = werr
			}
			return res
		}
		if h.Status >= 200 {
			break
		}
		if h.Status == http.StatusSwitchingProtocols {
			res.Err = ErrMalformed // nobody asked to upgrade
			return res
		}
		writeHead(c.BW, &h, true, false, "") // 103 Early Hints and the like
		u.br.Discard(len(h.Raw))
		if err := c.BW.Flush(); err != nil {
			c.broken = true
			res.Err = &ClientError{err}
			return res
		}
	}
	noBody := req.HeadMethod || h.Status == http.StatusNoContent || h.Status == http.StatusNotModified
	if early || !noBody && (h.ContentLength < 0 || int64(u.br.Buffered()-len(h.Raw)) < h.ContentLength) {
		u.setReadDeadline(time.Time{}) // the body may stream for long
	}
	res.Status, res.RetryAfter = h.Status, h.RetryAfter
	if req.Close {
		c.broken = true
	}
	writeHead(c.BW, &h, noBody, !c.KeepAlive(), req.HSTS)
	u.br.Discard(len(h.Raw))
	var rerr error
	switch {
	case noBody:
	case h.Chunked:
		rerr, werr = copyChunked(c.BW, u.br)
	case h.ContentLength >= 0:
		rerr, werr = copyN(c.BW, u.br, h.ContentLength)
	default: // delimited by the upstream closing: chunked to the client
		rerr, werr = rechunk(c.BW, u.br)
	}
	if werr != nil {
		c.broken = true
		res.Err = &ClientError{werr}
		return res
	}
	if rerr != nil {
		c.broken = true // the response broke off: the client sees it end early
		res.Err = rerr
		return res
	}
	u.clean = !early && ExactlyFramed(&h, req.HeadMethod)
	if c.BR.Buffered() == 0 && c.BW.Flush() != nil {
		c.broken = true
	}
	return res
}

// copyBody copies what is left of the request body upstream. Each wait
// for the client has the body timeout, and so has each write that may
// reach the upstream's socket (a flush, a write past the buffer): an
// upstream that stops reading fails it. rerr is the client's failure
// (ErrBodyTimeout, io.ErrUnexpectedEOF), werr the upstream's.
func (c *ClientConn) copyBody(u *Conn) (rerr, werr error) {
	for c.bodyLeft > 0 {
		if c.BR.Buffered() == 0 {
			if werr = c.flushUpstream(u); werr != nil {
				return nil, werr
			}
			if c.BodyTimeout > 0 {
				c.SetReadDeadline(time.Now().Add(c.BodyTimeout))
			}
			if _, err := c.BR.Peek(1); err != nil {
				c.broken = true
				switch {
				case isTimeout(err):
					err = ErrBodyTimeout
				case errors.Is(err, io.EOF):
					err = io.ErrUnexpectedEOF
				}
				return err, nil
			}
		}
		b, _ := c.BR.Peek(int(min(int64(c.BR.Buffered()), c.bodyLeft)))
		if c.BodyTimeout > 0 && len(b) >= u.bw.Available() {
			u.nc.SetWriteDeadline(time.Now().Add(c.BodyTimeout))
		}
		if _, werr = u.bw.Write(b); werr != nil {
			return nil, werr
		}
		c.BR.Discard(len(b))
		c.bodyLeft -= int64(len(b))
	}
	return nil, c.flushUpstream(u)
}

// flushUpstream flushes what the upstream has not been sent yet, within
// the body timeout.
func (c *ClientConn) flushUpstream(u *Conn) error {
	if u.bw.Buffered() == 0 {
		return nil
	}
	if c.BodyTimeout > 0 {
		u.nc.SetWriteDeadline(time.Now().Add(c.BodyTimeout))
	}
	return u.bw.Flush()
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// readResponseHead reads until the end of a response head, which stays
// in br.
func readResponseHead(br *bufio.Reader, h *ResponseHead) error {
	head, err := PeekHead(br, nil)
	switch {
	case errors.Is(err, ErrHeadTooBig):
		return ErrMalformed
	case err != nil:
		return err
	}
	return ParseResponseHead(head, h)
}

// writeHead writes the status line and the end-to-end headers, and
// frames the body for the client itself, once: Content-Length from the
// parsed length, chunked when the upstream chunks the body or ends it by
// closing, nothing on 1xx and 204 responses (RFC 9110 8.6). Headers the
// Connection header names are dropped, framing headers never by that
// route. A non-empty hsts replaces the upstream's Strict-Transport-Security.
func writeHead(bw *bufio.Writer, h *ResponseHead, noBody, closeConn bool, hsts string) {
	bw.WriteString("HTTP/1.1 ")
	bw.Write(h.StatusText)
	bw.WriteString("\r\n")
	_, rest, _ := bytes.Cut(h.Raw, []byte("\r\n"))
	for {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte("\r\n"))
		if len(line) == 0 {
			break
		}
		name, _, _ := bytes.Cut(line, []byte(":"))
		switch KindOf(name) {
		case Connection, HopByHop, TE, Upgrade, TransferEncoding, ContentLength:
			continue
		case StrictTransportSecurity:
			if hsts != "" {
				continue
			}
		}
		if (h.ndropped > 0 || h.moreDropped) && h.droppedByConnection(name) {
			continue
		}
		bw.Write(line)
		bw.WriteString("\r\n")
	}
	switch {
	case h.Status < 200 || h.Status == http.StatusNoContent:
	case h.ContentLength >= 0:
		var n [20]byte
		bw.WriteString("Content-Length: ")
		bw.Write(strconv.AppendInt(n[:0], h.ContentLength, 10))
		bw.WriteString("\r\n")
	case !noBody:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	}
	if hsts != "" {
		bw.WriteString("Strict-Transport-Security: ")
		bw.WriteString(hsts)
		bw.WriteString("\r\n")
	}
	if h.Status >= 200 && closeConn {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("\r\n")
}

// WritePage writes a response the proxy makes itself (an error page),
// closing the connection after it when asked or when the request's body
// was not read.
func (c *ClientConn) WritePage(status int, hdr http.Header, body []byte, headMethod, closeConn bool) {
	bw := c.BW
	fmt.Fprintf(bw, "HTTP/1.1 %d %s\r\n", status, http.StatusText(status))
	hdr.Set("Content-Length", fmt.Sprint(len(body)))
	if closeConn || !c.KeepAlive() {
		hdr.Set("Connection", "close")
		c.broken = true
	}
	hdr.Write(bw)
	bw.WriteString("\r\n")
	if !headMethod {
		bw.Write(body)
	}
}
