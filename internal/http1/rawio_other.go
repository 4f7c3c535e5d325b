//go:build !linux

package http1

import (
	"io"
	"net"
)

// SocketIO returns c: the raw system-call path is Linux's (rawio_linux.go).
func SocketIO(c net.Conn) io.ReadWriter { return c }
