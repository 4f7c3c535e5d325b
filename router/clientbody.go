package router

import (
	"errors"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"time"

	"github.com/berthproject/berth/internal/http1"
)

// statusClientGone is logged for requests whose client went away (nginx's
// 499): nobody reads a response.
const statusClientGone = 499

// errBadBody says a client's request body could not be read as framed
// (a malformed chunk, a body cut short).
var errBadBody = errors.New("malformed or truncated request body")

// clientBody is a request body on the net/http lane: each read has the
// body timeout (a stalled body fails with http1.ErrBodyTimeout), and the
// first failure is kept as the client's (a *http1.ClientError), so that
// it is answered 408 or 400 and never counts against an upstream.
type clientBody struct {
	rc      io.ReadCloser
	ctl     *http.ResponseController
	timeout time.Duration
	http1   bool        // an HTTP/1 request: its connection carries the rest of the body
	done    atomic.Bool // read to its end
	err     atomic.Pointer[http1.ClientError]
}

// newClientBody wraps req's body. On HTTP/1 the first wait for it is
// bounded already, so that a page served without reading it does not
// wait on it for ever (net/http reads what is left before reusing the
// connection); nothing reads the connection meanwhile, so the deadline
// does no harm before the first Read moves it. On HTTP/2 a read deadline
// is a timer that fails the stream's body when it fires, read or not:
// there each Read sets one and clears it when it returns, so only the
// client's own silence counts.
func newClientBody(req *http.Request, ctl *http.ResponseController, timeout time.Duration) *clientBody {
	b := &clientBody{rc: req.Body, ctl: ctl, timeout: timeout, http1: req.ProtoMajor == 1}
	if timeout > 0 && b.http1 {
		ctl.SetReadDeadline(time.Now().Add(timeout))
	}
	return b
}

func (b *clientBody) Read(p []byte) (int, error) {
	if b.timeout > 0 {
		b.ctl.SetReadDeadline(time.Now().Add(b.timeout))
		if !b.http1 {
			defer b.ctl.SetReadDeadline(time.Time{})
		}
	}
	n, err := b.rc.Read(p)
	switch {
	case err == nil:
	case errors.Is(err, io.EOF):
		b.done.Store(true)
		if b.timeout > 0 {
			b.ctl.SetReadDeadline(time.Time{}) // the body is in: net/http watches for the client closing
		}
	default:
		// An expired deadline stays: net/http must not wait on this
		// connection again (it closes it after the response).
		ce := &http1.ClientError{Err: classifyBodyError(err)}
		b.err.CompareAndSwap(nil, ce)
		return n, ce
	}
	return n, err
}

func (b *clientBody) Close() error { return b.rc.Close() }

// unread reports whether the rest of an HTTP/1 body is still on the
// connection: the response must close it.
func (b *clientBody) unread() bool { return b.http1 && !b.done.Load() }

// failure is the client's failure reading the body, if any.
func (b *clientBody) failure() error {
	if ce := b.err.Load(); ce != nil {
		return ce
	}
	return nil
}

func classifyBodyError(err error) error {
	var op *net.OpError
	switch {
	case isTimeout(err):
		return http1.ErrBodyTimeout
	case errors.As(err, &op), errors.Is(err, net.ErrClosed), errors.Is(err, http.ErrBodyReadAfterClose):
		return err // the connection failed: the client is gone
	}
	return errors.Join(errBadBody, err) // net/http's chunked reader and the like
}

func isClientError(err error) bool {
	var ce *http1.ClientError
	return errors.As(err, &ce)
}

// clientErrorStatus maps the client's failure to its status: 408 for a
// stalled body, 400 for a malformed or truncated one, 499 when the
// client went away.
func clientErrorStatus(err error) int {
	switch {
	case errors.Is(err, http1.ErrBodyTimeout):
		return http.StatusRequestTimeout
	case errors.Is(err, errBadBody), errors.Is(err, io.ErrUnexpectedEOF):
		return http.StatusBadRequest
	}
	return statusClientGone
}
