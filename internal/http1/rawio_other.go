//go:build !linux

package http1

import (
	"io"
	"net"
	"time"
)

// SocketIO returns c, its writes bounded by writeTimeout: the raw
// system-call path is Linux's (rawio_linux.go).
func SocketIO(c net.Conn, writeTimeout time.Duration) io.ReadWriter {
	if writeTimeout > 0 {
		return WriteBoundConn(c, writeTimeout)
	}
	return c
}

// RawConn returns c with its writes bounded by writeTimeout: the raw
// system-call path is Linux's.
func RawConn(c net.Conn, writeTimeout time.Duration) net.Conn {
	if writeTimeout > 0 {
		return WriteBoundConn(c, writeTimeout)
	}
	return c
}

// rawIO is Linux's; elsewhere an idle upstream connection cannot be
// checked without reading it, so it is not reused.
type rawIO struct{}

func newRawIO(net.Conn) *rawIO { return nil }

func (*rawIO) quiet() bool { return false }

func (*rawIO) Read([]byte) (int, error)  { return 0, io.EOF }
func (*rawIO) Write([]byte) (int, error) { return 0, io.ErrClosedPipe }
