package local

import (
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/berthproject/berth/internal/etcdauth"
	"github.com/berthproject/berth/internal/etcdserver"
)

// clients are berth up's etcd connections, one per role: with --secure
// each acts as its own etcd user (its client certificate); otherwise all
// three are one client. dnsd opens no connection here: in this one process
// it answers from the router's watch cache, so berth-dns (dnsd's role on a
// cluster) would guard nothing the process does not hold already; its
// certificate is issued with the others (etcdserver.SecureUsers) for a
// berth dnsd run beside berth up.
type clients struct {
	operator *clientv3.Client // publishes the apps given to berth up
	agent    *clientv3.Client // the exec driver, its reconciler and leases, passivation, the deployer
	reader   *clientv3.Client // the watch cache, the router (its access records, wakes); dnsd reads the same cache
	all      []*clientv3.Client
}

// connect opens the clients, as the users of p when p is not nil.
func connect(endpoints []string, p *etcdserver.PKI) (*clients, error) {
	c := &clients{}
	open := func(user string) (*clientv3.Client, error) {
		cfg := clientv3.Config{Endpoints: endpoints, DialTimeout: 5 * time.Second, Logger: zap.NewNop()}
		if p != nil {
			var err error
			if cfg, err = p.ClientConfig(user, endpoints...); err != nil {
				return nil, err
			}
		}
		cli, err := clientv3.New(cfg)
		if err != nil {
			return nil, fmt.Errorf("etcd as %s: %w", user, err)
		}
		c.all = append(c.all, cli)
		return cli, nil
	}
	var err error
	if c.operator, err = open(etcdauth.Operator); err != nil {
		return nil, err
	}
	if p == nil {
		c.agent, c.reader = c.operator, c.operator
		return c, nil
	}
	if c.agent, err = open(etcdauth.Agent); err != nil {
		c.Close()
		return nil, err
	}
	if c.reader, err = open(etcdauth.Reader); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Close closes every client.
func (c *clients) Close() {
	for _, cli := range c.all {
		cli.Close()
	}
}

// cliEnv is what a CLI user exports to reach a secure berth up as
// berth-operator.
func cliEnv(endpoints []string, p *etcdserver.PKI) []string {
	op := p.Client(etcdauth.Operator)
	return []string{
		"BERTH_ETCD_ENDPOINTS=" + endpoints[0],
		"BERTH_ETCD_CACERT=" + p.CACert(),
		"BERTH_ETCD_CERT=" + op.Cert,
		"BERTH_ETCD_KEY=" + op.Key,
	}
}
