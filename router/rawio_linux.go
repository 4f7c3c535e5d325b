package router

import (
	"io"
	"net"
	"syscall"
)

// rawIO reads and writes a non-blocking socket with raw system calls,
// inside its RawConn callbacks (which keep the descriptor from being
// closed underneath and wait on Go's poller when the socket is not
// ready). A loopback write runs the receiver's TCP stack inline and can
// take tens of microseconds: as a scheduler-visible system call that is
// long enough for the runtime to hand the P to another thread and back,
// which costs the lane more than the call itself. Read and write on a
// non-blocking socket never block, so they need no such care.
type rawIO struct {
	rc   syscall.RawConn
	conn net.Conn
}

// socketIO returns the fastest reader and writer for c: rawIO for a
// socket, c itself otherwise.
func socketIO(c net.Conn) io.ReadWriter {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	return &rawIO{rc: rc, conn: c}
}

func (r *rawIO) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var serr error
	err := r.rc.Read(func(fd uintptr) bool {
		for {
			m, e := sysRead(fd, p)
			switch e {
			case nil:
				n = m
				return true
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false // wait until readable
			}
			serr = e
			return true
		}
	})
	if err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: r.conn.LocalAddr(), Addr: r.conn.RemoteAddr(), Err: serr}
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

func (r *rawIO) Write(p []byte) (int, error) {
	n := 0
	var serr error
	err := r.rc.Write(func(fd uintptr) bool {
		for n < len(p) {
			m, e := sysWrite(fd, p[n:])
			switch e {
			case nil:
				n += m
				continue
			case syscall.EINTR:
				continue
			case syscall.EAGAIN:
				return false // wait until writable
			}
			serr = e
			return true
		}
		return true
	})
	if err == nil && serr != nil {
		err = &net.OpError{Op: "write", Net: "tcp", Source: r.conn.LocalAddr(), Addr: r.conn.RemoteAddr(), Err: serr}
	}
	return n, err
}
