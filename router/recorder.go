package router

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"sync"
)

// statusRecorder remembers the status code and passes through Flush,
// Hijack and Unwrap (websockets, SSE, http.ResponseController).
// A response to an HTTP/1 request whose body was not read to its end
// closes the connection, as on the fast lane.
type statusRecorder struct {
	http.ResponseWriter
	status int
	body   *clientBody // the request's body, if any
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 && code >= 200 {
		s.status = code
		s.closeIfUnread()
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
		s.closeIfUnread()
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) closeIfUnread() {
	if s.body != nil && s.body.unread() {
		s.Header().Set("Connection", "close")
	}
}

func (s *statusRecorder) Flush() {
	if f, ok := s.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

func (s *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if h, ok := s.ResponseWriter.(http.Hijacker); ok {
		if s.status == 0 {
			s.status = http.StatusSwitchingProtocols
		}
		return h.Hijack()
	}
	return nil, nil, errors.New("hijack not supported")
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// bufferPool lends ReverseProxy its copy buffers instead of allocating
// 32 KiB per request.
type bufferPool struct{ p sync.Pool }

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}}
}

func (b *bufferPool) Get() []byte  { return *(b.p.Get().(*[]byte)) }
func (b *bufferPool) Put(x []byte) { b.p.Put(&x) }
