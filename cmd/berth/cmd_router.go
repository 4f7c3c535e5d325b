package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"runtime/debug"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/berthproject/berth/internal/daemon"
	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/router"
)

// RouterOptions are the flags of "berth router".
type RouterOptions struct {
	Etcd            EtcdOptions
	Listen          string
	ListenTLS       string
	TLSCerts        []string
	TLSKeys         []string
	Admin           string
	Pprof           bool
	TrustedProxies  []string
	ID              string
	PagesDir        string
	AccessLog       bool
	Limits          ProxyLimits
	ShutdownTimeout time.Duration
	LeaseTTL        time.Duration
	WakeQueue       int
	WakeDeadline    time.Duration
	ACME            ACMEOptions
	RouterKey       RouterKeyOptions
}

// AddFlags registers the flags.
func (o *RouterOptions) AddFlags(f *pflag.FlagSet) {
	o.Etcd.AddFlags(f)
	f.StringVar(&o.Listen, "listen", envOr("BERTH_ROUTER_LISTEN", ":80"), "HTTP address, unless systemd passes a socket named http (env BERTH_ROUTER_LISTEN)")
	f.StringVar(&o.ListenTLS, "listen-tls", envOr("BERTH_ROUTER_LISTEN_TLS", ""), "HTTPS address (HTTP/2 and HTTP/1.1), with --tls-cert/--tls-key, certificates in etcd or --acme; a socket named https is used too (env BERTH_ROUTER_LISTEN_TLS)")
	f.StringArrayVar(&o.TLSCerts, "tls-cert", nil, "certificate file (repeatable; chosen by SNI after those in etcd: berth cert put)")
	f.StringArrayVar(&o.TLSKeys, "tls-key", nil, "key file, one per --tls-cert")
	f.StringVar(&o.Admin, "admin", envOr("BERTH_ROUTER_ADMIN", "127.0.0.1:9080"), "admin address: /healthz /readyz /metrics /routes (local by default; empty disables)")
	f.BoolVar(&o.Pprof, "pprof", false, "serve /debug/pprof on the admin listener")
	f.StringSliceVar(&o.TrustedProxies, "trusted-proxies", nil, "networks whose X-Forwarded-* headers are kept (e.g. the load balancer's subnet)")
	f.StringVar(&o.ID, "id", envOr("BERTH_ROUTER_ID", daemon.Hostname()), "this router's id in access records")
	f.StringVar(&o.PagesDir, "pages", "", "directory with 404.html, 502.html, 503.html, waiting.html overriding the built-in pages")
	f.BoolVar(&o.AccessLog, "access-log", false, "log every request at info level")
	o.Limits.AddFlags(f)
	f.DurationVar(&o.ShutdownTimeout, "shutdown-timeout", 30*time.Second, "how long in-flight requests and websockets may drain on stop")
	f.DurationVar(&o.LeaseTTL, "lease-ttl", 15*time.Second, "TTL of this router's access records")
	f.IntVar(&o.WakeQueue, "wake-queue", 1000, "requests held per sleeping app while it wakes (more get 503)")
	f.DurationVar(&o.WakeDeadline, "wake-deadline", 30*time.Second, "how long a request is held for a waking app")
	o.ACME.AddFlags(f)
	o.RouterKey.AddFlags(f, defaultRouterKeyFile, "the routers' key: 32 bytes (hex or base64), the same on every router, sealing the ACME storage and deriving the key pair the certificates in etcd are sealed to (berth cert put; its public key is published at acme/cert-recipient); required with --acme; without it, only those certificates are not served")
}

func newRouterCommand(g *GlobalOptions) *cobra.Command {
	var opts RouterOptions
	cmd := &cobra.Command{
		Use:   "router",
		Short: "Run the HTTP reverse proxy that routes by Host header to live instances",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runRouter(cmd.Context(), g, opts)
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

func (o *RouterOptions) config() (router.Config, error) {
	cfg := router.Config{ID: o.ID, PagesDir: o.PagesDir, AccessLog: o.AccessLog}
	o.Limits.apply(&cfg)
	for _, s := range o.TrustedProxies {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return cfg, usagef("--trusted-proxies: %q is not a network or address", s)
			}
			p = netip.PrefixFrom(a, a.BitLen())
		}
		cfg.TrustedProxies = append(cfg.TrustedProxies, p)
	}
	return cfg, nil
}

// tlsConfig holds the certificates from files; those from etcd are picked
// by the router's GetCertificate, set in runRouter.
func (o *RouterOptions) tlsConfig() (*tls.Config, error) {
	if len(o.TLSCerts) != len(o.TLSKeys) {
		return nil, usagef("give one --tls-key per --tls-cert")
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, NextProtos: router.TLSProtos()}
	for i := range o.TLSCerts {
		pair, err := tls.LoadX509KeyPair(o.TLSCerts[i], o.TLSKeys[i])
		if err != nil {
			return nil, fmt.Errorf("--tls-cert %s: %w", o.TLSCerts[i], err)
		}
		c.Certificates = append(c.Certificates, pair)
	}
	return c, nil
}

// routerKey reads the routers' key. Without one (no file at the default
// path) the router runs, warning that the certificates stored with berth
// cert put are not served; a file named by a flag or the environment, or
// --acme, must read.
func (o *RouterOptions) routerKey(log logrus.FieldLogger) ([]byte, error) {
	key, err := o.RouterKey.Load()
	if err == nil {
		return key, nil
	}
	if o.ACME.Enable || o.RouterKey.Given() {
		return nil, err
	}
	log.WithError(err).Warn("no router key: the certificates stored in etcd with berth cert put are not served " +
		"(their private keys are sealed to the key pair derived from it); give --router-key-file, the key every router shares (docs/security.md)")
	return nil, nil
}

func runRouter(ctx context.Context, g *GlobalOptions, o RouterOptions) error {
	if os.Getenv("GOGC") == "" {
		// A proxy's heap is small and its garbage plentiful: collecting at
		// every doubling of a tiny heap costs more CPU than it saves.
		debug.SetGCPercent(400)
	}
	log, err := g.Logger()
	if err != nil {
		return err
	}
	cfg, err := o.config()
	if err != nil {
		return err
	}
	if cfg.RouterKey, err = o.routerKey(log); err != nil {
		return err
	}
	tlsCfg, err := o.tlsConfig()
	if err != nil {
		return err
	}
	fl, err := o.Etcd.follow(log)
	if err != nil {
		return err
	}
	defer fl.Close()
	cli, k, cache, reg := fl.cli, fl.keys, fl.cache, fl.metrics
	r, err := router.New(cfg, cache, log)
	if err != nil {
		return err
	}
	tlsCfg.GetCertificate = r.GetCertificate
	waker := router.NewWaker(r, cli, k, log)
	waker.MaxQueue, waker.Deadline = o.WakeQueue, o.WakeDeadline
	reg.MustRegister(r.Collectors()...)
	reg.MustRegister(waker.Collectors()...)
	owner := registry.NewLeaseOwner(cli, cli, o.LeaseTTL, log)

	plain, secure, err := o.listeners()
	if err != nil {
		return err
	}
	if o.ACME.Enable {
		store, err := o.ACME.enable(r, cli, k, cfg.RouterKey, firstAddr(plain), firstAddr(secure), log)
		if err != nil {
			return err
		}
		defer store.Close()
		defer r.StopACME()
		reg.MustRegister(r.ACMECollectors()...)
	}
	bg, stopBG := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	goRun := func(f func(context.Context) error) {
		wg.Add(1)
		go func() { defer wg.Done(); f(bg) }()
	}
	defer func() { stopBG(); wg.Wait() }()
	goRun(cache.Run)
	goRun(r.Run)
	goRun(r.RunHealth)
	goRun(r.RunACME) // wildcard certificates by DNS-01 (waits when off)
	goRun(owner.Run)
	goRun(func(ctx context.Context) error { return r.RunAccess(ctx, k, owner) })
	goRun(func(ctx context.Context) error { return r.RunCertRecipient(ctx, cli, cli, k) })
	if _, err := daemon.ServeAdmin(bg, o.Admin, r.AdminHandler(reg, o.Pprof), log); err != nil {
		return err
	}

	log.Info("waiting for the first registry snapshot")
	for !r.Ready() {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(20 * time.Millisecond):
		}
	}
	srv := router.NewServer(r, tlsCfg)
	errs := make(chan error, len(plain)+len(secure))
	for _, l := range plain {
		go func() { errs <- srv.Serve(l) }()
		log.WithField("addr", l.Addr().String()).Info("router listening (http)")
	}
	for _, l := range secure {
		go func() { errs <- srv.ServeTLS(l) }()
		log.WithField("addr", l.Addr().String()).Info("router listening (https)")
	}
	daemon.Ready(log)
	goRun(func(ctx context.Context) error { daemon.Watchdog(ctx, r.Ready); return nil })

	select {
	case <-ctx.Done():
	case err := <-errs:
		if !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("serve: %w", err)
		}
	}
	daemon.Stopping()
	log.WithField("timeout", o.ShutdownTimeout).Info("stopping: draining requests")
	sctx, cancel := context.WithTimeout(context.Background(), o.ShutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.WithError(err).Warn("shutdown")
	}
	if err := r.Drain(sctx); err != nil {
		log.WithError(err).Warn("drain")
	}
	return nil
}

// listeners returns the HTTP and HTTPS listeners: systemd's sockets named
// http and https when socket-activated, else --listen and --listen-tls.
func (o *RouterOptions) listeners() (plain, secure []net.Listener, err error) {
	s, err := daemon.Activated()
	if err != nil {
		return nil, nil, err
	}
	plain, secure = s.Streams["http"], s.Streams["https"]
	if len(plain) == 0 && o.Listen != "" {
		l, err := net.Listen("tcp", o.Listen)
		if err != nil {
			return nil, nil, fmt.Errorf("--listen: %w", err)
		}
		plain = []net.Listener{l}
	}
	if len(secure) == 0 && o.ListenTLS != "" {
		l, err := net.Listen("tcp", o.ListenTLS)
		if err != nil {
			return nil, nil, fmt.Errorf("--listen-tls: %w", err)
		}
		secure = []net.Listener{l}
	}

	return plain, secure, nil
}

// firstAddr is the address of the first listener ("" without one).
func firstAddr(ls []net.Listener) string {
	if len(ls) == 0 {
		return ""
	}
	return ls[0].Addr().String()
}

// ProxyLimits are the router's limits and timeouts towards clients and
// upstreams, flags of both "berth router" and "berth up" (one set, one
// set of defaults: router.Default*).
type ProxyLimits struct {
	ReadHeaderTimeout      time.Duration
	IdleTimeout            time.Duration
	BodyTimeout            time.Duration
	MaxHeaderBytes         int
	AllowUnderscoreHeaders bool
	UpstreamTimeout        time.Duration
	UpstreamIdleTimeout    time.Duration
}

// AddFlags registers the flags.
func (o *ProxyLimits) AddFlags(f *pflag.FlagSet) {
	f.DurationVar(&o.ReadHeaderTimeout, "read-header-timeout", router.DefaultReadHeaderTimeout, "time a client has to send a request head")
	f.DurationVar(&o.IdleTimeout, "idle-timeout", router.DefaultIdleTimeout, "keep-alive idle timeout towards clients")
	f.DurationVar(&o.BodyTimeout, "body-timeout", router.DefaultBodyTimeout, "a request body without progress for this long ends with 408 and the connection closed")
	f.IntVar(&o.MaxHeaderBytes, "max-header-bytes", router.DefaultMaxHeaderBytes, "largest request head accepted (431 beyond)")
	f.BoolVar(&o.AllowUnderscoreHeaders, "allow-underscore-headers", false, "pass request headers whose names contain '_' to upstreams (dropped by default, as nginx does)")
	f.DurationVar(&o.UpstreamTimeout, "upstream-timeout", router.DefaultUpstreamTimeout, "time an upstream has to send response headers once it has the request")
	f.DurationVar(&o.UpstreamIdleTimeout, "upstream-idle-timeout", router.DefaultUpstreamIdleTimeout, "close kept-alive upstream connections unused this long")
}

func (o *ProxyLimits) apply(c *router.Config) {
	c.ReadHeaderTimeout, c.IdleTimeout, c.BodyTimeout = o.ReadHeaderTimeout, o.IdleTimeout, o.BodyTimeout
	c.MaxHeaderBytes, c.AllowUnderscoreHeaders = o.MaxHeaderBytes, o.AllowUnderscoreHeaders
	c.ResponseHeaderTimeout, c.UpstreamIdleTimeout = o.UpstreamTimeout, o.UpstreamIdleTimeout
}
