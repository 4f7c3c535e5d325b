//go:build !linux

package router

import (
	"io"
	"net"
)

// socketIO returns c: the raw system-call path is Linux's (rawio_linux.go).
func socketIO(c net.Conn) io.ReadWriter { return c }
