package dnsd

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// Listeners are the sockets a Server answers on.
type Listeners struct {
	UDP []net.PacketConn
	TCP []net.Listener
}

// Listen opens UDP and TCP sockets on addr ("127.0.0.1:8053"); with port 0
// the TCP socket takes the port the kernel gave the UDP one, and another
// port is tried when that one is taken for TCP.
func Listen(addr string) (*Listeners, error) {
	_, port, _ := net.SplitHostPort(addr)
	for attempt := 0; ; attempt++ {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil, fmt.Errorf("listen udp %s: %w", addr, err)
		}
		l, err := net.Listen("tcp", pc.LocalAddr().String())
		if err == nil {
			return &Listeners{UDP: []net.PacketConn{pc}, TCP: []net.Listener{l}}, nil
		}
		pc.Close()
		if port != "0" || attempt == 9 {
			return nil, fmt.Errorf("listen tcp %s: %w", pc.LocalAddr(), err)
		}
	}
}

// Serve answers on every socket until ctx ends, then shuts the servers down
// gracefully. started is called once every server is accepting.
func (s *Server) Serve(ctx context.Context, ls *Listeners, started func()) error {
	var servers []*dns.Server
	var wg sync.WaitGroup
	wg.Add(len(ls.UDP) + len(ls.TCP))
	idle := func() time.Duration { return 8 * time.Second }
	for _, pc := range ls.UDP {
		servers = append(servers, &dns.Server{PacketConn: pc, Handler: s, ReadTimeout: 2 * time.Second,
			WriteTimeout: 2 * time.Second, NotifyStartedFunc: wg.Done})
	}
	for _, l := range ls.TCP {
		servers = append(servers, &dns.Server{Listener: l, Handler: s, ReadTimeout: 2 * time.Second,
			WriteTimeout: 2 * time.Second, IdleTimeout: idle, MaxTCPQueries: 1000, NotifyStartedFunc: wg.Done})
	}
	errs := make(chan error, len(servers))
	for _, srv := range servers {
		go func() { errs <- srv.ActivateAndServe() }()
	}
	allUp := make(chan struct{})
	go func() { wg.Wait(); close(allUp) }()
	select {
	case <-allUp:
		if started != nil {
			started()
		}
	case err := <-errs:
		return fmt.Errorf("dns server: %w", err)
	}
	var err error
	select {
	case <-ctx.Done():
	case err = <-errs:
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, srv := range servers {
		if serr := srv.ShutdownContext(sctx); serr != nil && !errors.Is(serr, context.Canceled) {
			s.log.WithError(serr).Debug("dns shutdown")
		}
	}
	return err
}
