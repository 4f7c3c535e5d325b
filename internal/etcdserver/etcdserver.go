package etcdserver

import (
	"fmt"
	"net"
	"net/url"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Server is one embedded etcd member.
type Server struct {
	Etcd     *embed.Etcd
	Endpoint string // client URL, http://127.0.0.1:PORT
	Dir      string
}

// Start starts a single-member etcd with its data in dir, serving clients on
// 127.0.0.1:clientPort (0 lets the kernel pick) and its peer port on a free
// 127.0.0.1 port.
func Start(dir string, clientPort int) (*Server, error) {
	cfg, err := Config(dir, url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", clientPort)})
	if err != nil {
		return nil, err
	}
	return StartConfig(cfg)
}

// Config is a fast, silent single-member config with its data in dir,
// serving clients on client and peers on a free port of 127.0.0.1: the peer
// port never listens on other interfaces (a single member has no peers).
func Config(dir string, client url.URL) (*embed.Config, error) {
	peerPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	cfg := embed.NewConfig()
	cfg.Name = "berth"
	cfg.Dir = dir
	cfg.TickMs = 10
	cfg.ElectionMs = 100
	cfg.LogLevel = "error"
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
	peer := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", peerPort)}
	cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{client}, []url.URL{client}
	cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{peer}, []url.URL{peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	return cfg, nil
}

// StartConfig starts etcd with cfg (from Config, maybe with TLS added) and
// waits until it is ready, at most 30s.
func StartConfig(cfg *embed.Config) (*Server, error) {
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
	endpoint := url.URL{Scheme: cfg.ListenClientUrls[0].Scheme, Host: e.Clients[0].Addr().String()}
	return &Server{Etcd: e, Endpoint: endpoint.String(), Dir: cfg.Dir}, nil
}

// Close stops the server.
func (s *Server) Close() { s.Etcd.Close() }

// FreePort returns a TCP port free on 127.0.0.1 now.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
