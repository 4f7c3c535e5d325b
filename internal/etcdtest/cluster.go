package etcdtest

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"

	"github.com/berthproject/berth/internal/etcdserver"
)

// Cluster is an in-process etcd cluster of several members.
type Cluster struct {
	Members   []*embed.Etcd
	Endpoints []string
}

// StartCluster starts n members on loopback with data under dir.
func StartCluster(dir string, n int) (*Cluster, error) {
	type ports struct{ client, peer int }
	ps := make([]ports, n)
	var initial []string
	for i := range ps {
		c, err := etcdserver.FreePort()
		if err != nil {
			return nil, err
		}
		p, err := etcdserver.FreePort()
		if err != nil {
			return nil, err
		}
		ps[i] = ports{c, p}
		initial = append(initial, fmt.Sprintf("m%d=http://127.0.0.1:%d", i, p))
	}
	cl := &Cluster{}
	errs := make(chan error, n)
	for i, p := range ps {
		cfg := embed.NewConfig()
		cfg.Name = fmt.Sprintf("m%d", i)
		cfg.Dir = filepath.Join(dir, cfg.Name)
		cfg.TickMs, cfg.ElectionMs = 10, 100
		cfg.LogLevel = "error"
		cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(zap.NewNop())
		cu := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", p.client)}
		pu := url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", p.peer)}
		cfg.ListenClientUrls, cfg.AdvertiseClientUrls = []url.URL{cu}, []url.URL{cu}
		cfg.ListenPeerUrls, cfg.AdvertisePeerUrls = []url.URL{pu}, []url.URL{pu}
		cfg.InitialCluster = strings.Join(initial, ",")
		cfg.InitialClusterToken = "berth-test"
		e, err := embed.StartEtcd(cfg)
		if err != nil {
			cl.Close()
			return nil, err
		}
		cl.Members = append(cl.Members, e)
		cl.Endpoints = append(cl.Endpoints, cu.String())
		go func() {
			select {
			case <-e.Server.ReadyNotify():
				errs <- nil
			case <-time.After(30 * time.Second):
				errs <- fmt.Errorf("member %s not ready", cfg.Name)
			}
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			cl.Close()
			return nil, err
		}
	}
	return cl, nil
}

// Leader returns the index of the current leader, or -1.
func (c *Cluster) Leader() int {
	for i, m := range c.Members {
		if m == nil {
			continue
		}
		if m.Server.Leader() == m.Server.MemberID() {
			return i
		}
	}
	return -1
}

// Stop stops member i.
func (c *Cluster) Stop(i int) {
	if c.Members[i] != nil {
		c.Members[i].Close()
		c.Members[i] = nil
	}
}

// Close stops every member.
func (c *Cluster) Close() {
	for i := range c.Members {
		c.Stop(i)
	}
}
