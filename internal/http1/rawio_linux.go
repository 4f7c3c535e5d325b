package http1

import (
	"io"
	"net"
	"syscall"
	"time"
)

// rawIO reads and writes a non-blocking socket with raw system calls,
// inside its RawConn callbacks (which keep the descriptor from being
// closed underneath and wait on Go's poller when the socket is not
// ready). A loopback write runs the receiver's TCP stack inline and can
// take tens of microseconds: as a scheduler-visible system call that is
// long enough for the runtime to hand the P to another thread and back,
// which costs the lane more than the call itself. Read and write on a
// non-blocking socket never block, so they need no such care.
//
// One goroutine reads and one writes at a time (bufio's owners); the
// callbacks are made once and keep their state here, so a call allocates
// nothing.
type rawIO struct {
	rc   syscall.RawConn
	conn net.Conn

	rbuf    []byte
	rn      int
	rerr    error
	readFn  func(fd uintptr) bool
	wbuf    []byte
	wn      int
	werr    error
	writeFn func(fd uintptr) bool
	// writeTimeout bounds a write blocked on a full socket;
	// writeDeadline is set while a deadline for it is armed.
	writeTimeout  time.Duration
	writeDeadline bool
	armedAt       int // r.wn when the deadline was set
	live          bool
	peekBuf       [1]byte
	peekFn        func(fd uintptr)
}

// SocketIO returns the fastest reader and writer for c: raw system calls
// for a socket, c itself otherwise. A write during which the peer takes
// nothing for writeTimeout (0: no limit) fails.
func SocketIO(c net.Conn, writeTimeout time.Duration) io.ReadWriter {
	if r := newRawIO(c); r != nil {
		r.writeTimeout = writeTimeout
		return r
	}
	if writeTimeout > 0 {
		return WriteBoundConn(c, writeTimeout)
	}
	return c
}

// RawConn returns c reading and writing with raw system calls when it is
// a socket (as SocketIO), for a layer that needs a net.Conn (a TLS
// connection's transport); its writes are bounded by writeTimeout as
// SocketIO's are. Other connections are returned as WriteBoundConn (c
// itself without a timeout).
func RawConn(c net.Conn, writeTimeout time.Duration) net.Conn {
	if r := newRawIO(c); r != nil {
		r.writeTimeout = writeTimeout
		return &rawConn{Conn: c, io: r}
	}
	if writeTimeout > 0 {
		return WriteBoundConn(c, writeTimeout)
	}
	return c
}

// rawConn is a socket read and written through a rawIO; the rest (close,
// deadlines, addresses) is the socket's.
type rawConn struct {
	net.Conn
	io *rawIO
}

func (c *rawConn) Read(p []byte) (int, error)  { return c.io.Read(p) }
func (c *rawConn) Write(p []byte) (int, error) { return c.io.Write(p) }

// CloseWrite half-closes the socket.
func (c *rawConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// newRawIO returns a rawIO for a socket, nil for other connections.
func newRawIO(c net.Conn) *rawIO {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	r := &rawIO{rc: rc, conn: c}
	r.readFn, r.writeFn, r.peekFn = r.read, r.write, r.peek
	return r
}

// peek looks for a byte without taking it and without waiting: r.live is
// set when there is none (EAGAIN); a byte or EOF leaves it false.
func (r *rawIO) peek(fd uintptr) {
	r.live = sysPeek(fd, r.peekBuf[:]) == syscall.EAGAIN
}

// quiet reports whether nothing can be read from the socket now and it
// is not closed by the peer. It ignores deadlines (Control, not Read: a
// connection's last response-head deadline may have passed).
func (r *rawIO) quiet() bool {
	r.live = false
	if r.rc.Control(r.peekFn) != nil {
		return false
	}
	return r.live
}

func (r *rawIO) read(fd uintptr) bool {
	for {
		n, e := sysRead(fd, r.rbuf)
		switch e {
		case nil:
			r.rn = n
			return true
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // wait until readable
		}
		r.rerr = e
		return true
	}
}

func (r *rawIO) write(fd uintptr) bool {
	for r.wn < len(r.wbuf) {
		n, e := sysWrite(fd, r.wbuf[r.wn:])
		switch e {
		case nil:
			r.wn += n
			continue
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			// Wait until writable, within the write timeout: a deadline
			// only once the socket is full, so a write that goes through
			// at once (nearly all) costs no timer.
			// Moved again whenever the peer took something since: the
			// bound is on a pause, not on the whole write.
			if r.writeTimeout > 0 && (!r.writeDeadline || r.wn != r.armedAt) {
				r.writeDeadline, r.armedAt = true, r.wn
				r.conn.SetWriteDeadline(time.Now().Add(r.writeTimeout))
			}
			return false
		}
		r.werr = e
		return true
	}
	return true
}

func (r *rawIO) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	r.rbuf, r.rn, r.rerr = p, 0, nil
	err := r.rc.Read(r.readFn)
	n, serr := r.rn, r.rerr
	r.rbuf = nil
	switch {
	case err != nil:
		return 0, err
	case serr != nil:
		return 0, &net.OpError{Op: "read", Net: "tcp", Source: r.conn.LocalAddr(), Addr: r.conn.RemoteAddr(), Err: serr}
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (r *rawIO) Write(p []byte) (int, error) {
	r.wbuf, r.wn, r.werr = p, 0, nil
	err := r.rc.Write(r.writeFn)
	n, serr := r.wn, r.werr
	r.wbuf = nil
	if r.writeDeadline {
		r.writeDeadline = false
		r.conn.SetWriteDeadline(time.Time{})
	}
	if err == nil && serr != nil {
		err = &net.OpError{Op: "write", Net: "tcp", Source: r.conn.LocalAddr(), Addr: r.conn.RemoteAddr(), Err: serr}
	}
	return n, err
}
