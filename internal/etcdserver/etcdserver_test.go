package etcdserver

import (
	"context"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/berthproject/berth/internal/socktest"
)

// TestStartListensOnLoopbackOnly: berth up's etcd serves clients and peers
// on 127.0.0.1 only, as etcd reports its listeners and as the kernel has
// them (any other listener, such as metrics, on another address fails too).
func TestStartListensOnLoopbackOnly(t *testing.T) {
	s, err := Start(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if !strings.HasPrefix(s.Endpoint, "http://127.0.0.1:") {
		t.Errorf("endpoint %s, want http://127.0.0.1:PORT", s.Endpoint)
	}
	if len(s.Etcd.Peers) == 0 || len(s.Etcd.Clients) == 0 {
		t.Fatalf("%d peer and %d client listeners, want some of each", len(s.Etcd.Peers), len(s.Etcd.Clients))
	}
	for _, p := range s.Etcd.Peers {
		if host := p.Listener.Addr().String(); !strings.HasPrefix(host, "127.0.0.1:") {
			t.Errorf("peer listener on %s, want 127.0.0.1", host)
		}
	}
	for _, c := range s.Etcd.Clients {
		if host := c.Addr().String(); !strings.HasPrefix(host, "127.0.0.1:") {
			t.Errorf("client listener on %s, want 127.0.0.1", host)
		}
	}
	cfg := s.Etcd.Config()
	for _, u := range append(append(cfg.ListenPeerUrls, cfg.AdvertisePeerUrls...), cfg.ListenClientUrls...) {
		if u.Hostname() != "127.0.0.1" {
			t.Errorf("configured URL %s, want host 127.0.0.1", u.String())
		}
	}
	socks, err := socktest.Listening(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if len(socks) < 2 {
		t.Fatalf("listening sockets %v, want the client and peer ports at least", socks)
	}
	for _, sock := range socks {
		if !sock.Addr.Addr().Unmap().IsLoopback() {
			t.Errorf("listening on %v, want loopback only", sock)
		}
	}

	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{s.Endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatalf("put: %v", err)
	}
}

// TestStartOnGivenClientPort: berth up's --etcd-port is the client port,
// and a restart on it finds the data again.
func TestStartOnGivenClientPort(t *testing.T) {
	dir := t.TempDir()
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	put := func(s *Server, v string) {
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{s.Endpoint}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if v != "" {
			if _, err := cli.Put(ctx, "k", v); err != nil {
				t.Fatal(err)
			}
			return
		}
		r, err := cli.Get(ctx, "k")
		if err != nil || len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "v" {
			t.Fatalf("after restart: %v %v", r, err)
		}
	}
	for _, v := range []string{"v", ""} {
		s, err := Start(dir, port)
		if err != nil {
			t.Fatal(err)
		}
		if want := "http://127.0.0.1:" + strconv.Itoa(port); s.Endpoint != want {
			t.Errorf("endpoint %s, want %s", s.Endpoint, want)
		}
		put(s, v)
		s.Close()
	}
}
