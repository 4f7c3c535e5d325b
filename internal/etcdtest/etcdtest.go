// Package etcdtest starts a real etcd server in-process (server/v3/embed)
// for tests and for "berth up": fast timing, loopback only, quiet logs.
package etcdtest

import (
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Server is one embedded etcd member.
type Server struct {
	Etcd     *embed.Etcd
	Endpoint string // client URL, http://127.0.0.1:PORT
	Dir      string
}

// Start starts a single-member etcd with its data in dir, listening on
// loopback ports chosen by the kernel. clientPort 0 picks one.
func Start(dir string, clientPort int) (*Server, error) {
	peer, err := freePort()
	if err != nil {
		return nil, err
	}
	cu := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", clientPort)}
	cfg := quietConfig(dir, cu, peer)
	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("start embedded etcd: %w", err)
	}
	select {
	case <-e.Server.ReadyNotify():
	case <-time.After(30 * time.Second):
		e.Close()
		return nil, fmt.Errorf("embedded etcd not ready after 30s")
	}
	return &Server{Etcd: e, Endpoint: "http://" + e.Clients[0].Addr().String(), Dir: dir}, nil
}

// quietConfig is a fast, silent single-member config serving clients on cu.
func quietConfig(dir string, cu url.URL, peerPort int) *embed.Config {
	cfg := embed.NewConfig()
	cfg.Name = "berth"
	cfg.Dir = dir
	cfg.TickMs = 10
	cfg.ElectionMs = 100
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	pu := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", peerPort)}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	return cfg
}

// Close stops the server.
func (s *Server) Close() { s.Etcd.Close() }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// New starts an embedded etcd for one test and returns it with a client;
// both are closed when the test ends.
func New(t testing.TB) (*Server, *clientv3.Client) {
	t.Helper()
	s, err := Start(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, Client(t, s.Endpoint)
}

// Client connects to endpoint and closes the client when the test ends.
func Client(t testing.TB, endpoints ...string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}
