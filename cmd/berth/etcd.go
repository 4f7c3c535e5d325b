package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/berthproject/berth/internal/pki"
	"github.com/berthproject/berth/internal/registry"
)

// EtcdOptions are the connection flags of every command that talks to etcd.
type EtcdOptions struct {
	Endpoints      []string      // client URLs (default 127.0.0.1:2379)
	CACert         string        // CA bundle to verify the servers (enables TLS)
	Cert, Key      string        // client certificate and key (TLS client auth)
	User, Password string        // etcd auth
	DialTimeout    time.Duration // connection timeout (default 5s)
	RequestTimeout time.Duration // per-request timeout for commands (default 5s)
	Prefix         string        // schema root (default /berth)
}

// AddFlags registers the flags; each has a BERTH_ETCD_* environment default.
func (o *EtcdOptions) AddFlags(f *pflag.FlagSet) {
	f.StringSliceVar(&o.Endpoints, "etcd-endpoints", strings.Split(envOr("BERTH_ETCD_ENDPOINTS", "127.0.0.1:2379"), ","), "etcd client endpoints (env BERTH_ETCD_ENDPOINTS)")
	f.StringVar(&o.CACert, "etcd-cacert", os.Getenv("BERTH_ETCD_CACERT"), "CA certificate to verify etcd servers; enables TLS (env BERTH_ETCD_CACERT)")
	f.StringVar(&o.Cert, "etcd-cert", os.Getenv("BERTH_ETCD_CERT"), "client certificate for etcd (env BERTH_ETCD_CERT)")
	f.StringVar(&o.Key, "etcd-key", os.Getenv("BERTH_ETCD_KEY"), "client key for etcd (env BERTH_ETCD_KEY)")
	f.StringVar(&o.User, "etcd-user", os.Getenv("BERTH_ETCD_USER"), "etcd user name (env BERTH_ETCD_USER)")
	f.StringVar(&o.Password, "etcd-password", os.Getenv("BERTH_ETCD_PASSWORD"), "etcd password; prefer the environment variable (env BERTH_ETCD_PASSWORD)")
	f.DurationVar(&o.DialTimeout, "etcd-dial-timeout", 5*time.Second, "etcd connection timeout")
	f.DurationVar(&o.RequestTimeout, "etcd-request-timeout", 5*time.Second, "etcd request timeout")
	f.StringVar(&o.Prefix, "etcd-prefix", envOr("BERTH_ETCD_PREFIX", registry.DefaultRoot), "key prefix of berth's schema (env BERTH_ETCD_PREFIX)")
}

// Keys returns the key builder for the configured prefix.
func (o *EtcdOptions) Keys() (registry.Keys, error) {
	k, err := registry.NewKeys(o.Prefix)
	if err != nil {
		return k, usagef("--etcd-prefix: %v", err)
	}
	return k, nil
}

// Connect returns a client and the key builder: what every operator
// command that talks to etcd starts with. It fails at once when the etcd
// is local and refuses connections (probeLocal).
func (o *EtcdOptions) Connect() (*clientv3.Client, registry.Keys, error) {
	if err := probeLocal(o.Endpoints); err != nil {
		return nil, registry.Keys{}, err
	}
	return o.connect()
}

// connect is Connect for daemons and unit hooks, which wait for an etcd
// that is (re)starting rather than fail fast.
func (o *EtcdOptions) connect() (*clientv3.Client, registry.Keys, error) {
	k, err := o.Keys()
	if err != nil {
		return nil, k, err
	}
	cli, err := o.Client()
	return cli, k, err
}

// Client connects to etcd. Connection is lazy: errors show on first use,
// which wrapErr turns into a message naming the endpoints.
func (o *EtcdOptions) Client() (*clientv3.Client, error) {
	cfg := clientv3.Config{
		Endpoints: o.Endpoints, DialTimeout: o.DialTimeout, Username: o.User, Password: o.Password,
		Logger: zap.NewNop(), DialKeepAliveTime: 10 * time.Second, DialKeepAliveTimeout: 5 * time.Second,
	}
	if o.CACert != "" || o.Cert != "" || o.Key != "" {
		t, err := pki.ClientTLS(o.CACert, o.Cert, o.Key)
		if err != nil {
			return nil, fmt.Errorf("--etcd-cacert/--etcd-cert/--etcd-key: %w", err)
		}
		cfg.TLS = t
	}
	cli, err := clientv3.New(cfg)
	if err != nil {
		return nil, o.wrapErr(err)
	}
	return cli, nil
}

// wrapErr names the endpoints in connection errors.
func (o *EtcdOptions) wrapErr(err error) error {
	if errors.Is(err, context.DeadlineExceeded) && o.CACert != "" && o.Cert == "" {
		return fmt.Errorf("etcd at %s: no answer within %s, and no client certificate given: an etcd with client certificate auth (berth up --secure, docs/security.md) refuses clients without one; set --etcd-cert and --etcd-key (env BERTH_ETCD_CERT, BERTH_ETCD_KEY)", strings.Join(o.Endpoints, ","), o.RequestTimeout)
	}
	if errors.Is(err, rpctypes.ErrPermissionDenied) {
		return fmt.Errorf("etcd at %s: %w: etcd user %q lacks the permission (roles and their grants: docs/security.md)", strings.Join(o.Endpoints, ","), err, o.userName())
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("etcd at %s unreachable (no answer within %s): check --etcd-endpoints, the ssh tunnel (bin/tunnel.sh) or TLS options", strings.Join(o.Endpoints, ","), o.RequestTimeout)
	}
	return fmt.Errorf("etcd at %s: %w", strings.Join(o.Endpoints, ","), err)
}

// userName is the etcd user the client acts as: --etcd-user, else the CN
// of --etcd-cert (client certificate auth).
func (o *EtcdOptions) userName() string {
	if o.User != "" || o.Cert == "" {
		return o.User
	}
	cn, err := pki.CommonName(o.Cert)
	if err != nil {
		return "?"
	}
	return cn
}

// follower is what every daemon that follows the registry starts with: an
// etcd client, the key layout, the watch cache, and a metrics registry
// holding the process's and the cache's metrics.
type follower struct {
	cli     *clientv3.Client
	keys    registry.Keys
	cache   *registry.Cache
	metrics *prometheus.Registry
}

// follow connects and builds the watch cache (not started: run cache.Run).
func (o *EtcdOptions) follow(log logrus.FieldLogger) (*follower, error) {
	cli, k, err := o.connect()
	if err != nil {
		return nil, err
	}
	f := &follower{cli: cli, keys: k, cache: registry.NewCache(cli, cli, registry.CacheConfig{Keys: k}, log), metrics: prometheus.NewRegistry()}
	f.metrics.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	f.metrics.MustRegister(f.cache.Collectors()...)
	return f, nil
}

// Close closes the etcd client.
func (f *follower) Close() { f.cli.Close() }
