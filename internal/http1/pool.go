package http1

import (
	"bufio"
	"context"
	"io"
	"net"
	"sync"
	"time"
)

// Conn is one connection to an upstream, owned by one exchange at a time
// and by the Pool between exchanges.
type Conn struct {
	nc  net.Conn
	raw *rawIO    // nil when nc is not a socket
	rw  io.Writer // raw or nc: the socket, unbuffered
	br  *bufio.Reader
	bw  *bufio.Writer
	// clean is set by an exchange whose response ended exactly and may be
	// followed by another on this connection; Put pools nothing else.
	clean bool
	// stale is set by the pool's sweep while c is idle, and c is closed
	// at the next sweep if still idle (guarded by the pool's mutex).
	stale bool
	// readDeadline is the read deadline last set (setReadDeadline).
	readDeadline time.Time
}

// setReadDeadline sets the read deadline when it changes.
func (c *Conn) setReadDeadline(t time.Time) {
	if !t.Equal(c.readDeadline) {
		c.nc.SetReadDeadline(t)
		c.readDeadline = t
	}
}

// Close closes the connection.
func (c *Conn) Close() error { return c.nc.Close() }

// quiet reports whether nothing arrived on an idle connection and the
// upstream did not close it: a non-blocking peek finds no byte to read.
func (c *Conn) quiet() bool {
	if c.raw == nil {
		return false
	}
	return c.raw.quiet()
}

// Pool keeps idle upstream connections per address, for both of the
// router's lanes.
type Pool struct {
	// Dial connects to an upstream.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// MaxIdle is how many idle connections one address keeps (0: none).
	MaxIdle int
	// IdleTimeout closes connections idle this long, at the latest twice
	// that (0: never; Run sweeps).
	IdleTimeout time.Duration

	mu     sync.Mutex
	idle   map[string][]*Conn
	closed bool // Run ended: Put closes instead of keeping
}

// Get returns an idle connection to addr that is still quiet (reused is
// true), or a new one. Idle connections on which anything arrived since
// their last response (late bytes, or the upstream closing) are closed,
// never reused.
func (p *Pool) Get(ctx context.Context, addr string) (c *Conn, reused bool, err error) {
	for {
		p.mu.Lock()
		l := p.idle[addr]
		if len(l) == 0 {
			p.mu.Unlock()
			break
		}
		c = l[len(l)-1]
		p.idle[addr] = l[:len(l)-1]
		p.mu.Unlock()
		if c.quiet() {
			return c, true, nil
		}
		c.Close()
	}
	nc, err := p.Dial(ctx, "tcp", addr)
	if err != nil {
		return nil, false, err
	}
	return newConn(nc), false, nil
}

func newConn(nc net.Conn) *Conn {
	c := &Conn{nc: nc}
	rw := io.ReadWriter(nc)
	if r := newRawIO(nc); r != nil {
		c.raw, rw = r, r
	}
	c.rw = rw
	c.br = bufio.NewReaderSize(rw, 16<<10)
	c.bw = bufio.NewWriterSize(rw, 8<<10)
	return c
}

// Put returns c to the pool after an exchange; a connection whose last
// response did not end cleanly (Conn.clean), that holds bytes past it,
// or that does not fit the pool is closed.
func (p *Pool) Put(addr string, c *Conn) {
	if !c.clean || c.br.Buffered() > 0 {
		c.Close()
		return
	}
	c.clean = false // the next exchange must earn it again
	p.mu.Lock()
	c.stale = false
	if p.closed {
		p.mu.Unlock()
		c.Close()
		return
	}
	if p.idle == nil {
		p.idle = map[string][]*Conn{}
	}
	if len(p.idle[addr]) < p.MaxIdle {
		p.idle[addr] = append(p.idle[addr], c)
		c = nil
	}
	p.mu.Unlock()
	if c != nil {
		c.Close()
	}
}

// Run closes connections idle past the idle timeout until ctx ends, then
// every idle connection. It sweeps every IdleTimeout: a connection idle
// at two sweeps in a row is closed.
func (p *Pool) Run(ctx context.Context) error {
	var tick <-chan time.Time
	if p.IdleTimeout > 0 {
		t := time.NewTicker(p.IdleTimeout)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			p.mu.Lock()
			p.closed = true
			p.mu.Unlock()
			p.closeIdle(func(*Conn) bool { return true })
			return ctx.Err()
		case <-tick:
			p.closeIdle(func(c *Conn) bool {
				old := c.stale
				c.stale = true
				return old
			})
		}
	}
}

// CloseIdle closes the idle connections to addr (an upstream gone from
// the routing table).
func (p *Pool) CloseIdle(addr string) {
	p.mu.Lock()
	idle := p.idle[addr]
	delete(p.idle, addr)
	p.mu.Unlock()
	for _, c := range idle {
		c.Close()
	}
}

// closeIdle closes the idle connections for which old, called with the
// pool's mutex held, is true.
func (p *Pool) closeIdle(old func(c *Conn) bool) {
	var done []*Conn
	p.mu.Lock()
	for addr, l := range p.idle {
		keep := l[:0]
		for _, c := range l {
			if old(c) {
				done = append(done, c)
			} else {
				keep = append(keep, c)
			}
		}
		clear(l[len(keep):])
		if len(keep) == 0 {
			delete(p.idle, addr)
		} else {
			p.idle[addr] = keep
		}
	}
	p.mu.Unlock()
	for _, c := range done {
		c.Close()
	}
}
