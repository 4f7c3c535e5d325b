// Package local wires the whole platform into one process for "berth up":
// an embedded etcd (or an existing cluster), the router with wake, dnsd,
// the exec driver with its reconciler, and the passivation loop.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/berthproject/berth/dnsd"
	"github.com/berthproject/berth/internal/control"
	"github.com/berthproject/berth/internal/daemon"
	"github.com/berthproject/berth/internal/deploy"
	"github.com/berthproject/berth/internal/etcdserver"
	"github.com/berthproject/berth/internal/passivate"
	"github.com/berthproject/berth/internal/pki"
	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/spec"
	"github.com/berthproject/berth/router"
)

// Config configures berth up.
type Config struct {
	DataDir        string        // embedded etcd data (default: the user's state directory)
	EtcdPort       int           // embedded etcd client port (default 2379)
	Endpoints      []string      // use this etcd instead of an embedded one
	Secure         bool          // the embedded etcd serves TLS with client certificates and auth (a CA in DataDir/pki)
	Listen         string        // router (default 127.0.0.1:8080)
	DNSListen      string        // dnsd (default 127.0.0.1:8053)
	Admin          string        // router admin (default 127.0.0.1:9080)
	API            string        // HTTP API (internal/api); empty: none
	Apps           []*spec.App   // apps to run (runtime exec)
	PassivateEvery time.Duration // passivation pass interval (default 10s)
	MinUptime      time.Duration // passivation minimum uptime (default 1m)
	AccessInterval time.Duration // router access record interval (default 2s)
	Router         router.Config // the router's limits and timeouts (router's defaults); ID and AccessInterval are set here
	Output         io.Writer     // instances' output (default discarded)
	CLI            string        // how the banner names the berth command in its hints (default "berth")
	DemoApp        string        // the demo app, whose page may scale it through a control endpoint on 127.0.0.1 (default none)
}

// DefaultDataDir is $XDG_STATE_HOME/berth or ~/.local/state/berth.
func DefaultDataDir() string {
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "berth")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".local", "state", "berth")
	}
	return filepath.Join(os.TempDir(), "berth")
}

func (c *Config) setDefaults() {
	if c.DataDir == "" {
		c.DataDir = DefaultDataDir()
	}
	if c.EtcdPort == 0 {
		c.EtcdPort = 2379
	}
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8080"
	}
	if c.DNSListen == "" {
		c.DNSListen = "127.0.0.1:8053"
	}
	if c.PassivateEvery == 0 {
		c.PassivateEvery = 10 * time.Second
	}
	if c.MinUptime == 0 {
		c.MinUptime = time.Minute
	}
	if c.AccessInterval == 0 {
		c.AccessInterval = 2 * time.Second
	}
}

// Up runs the platform until ctx ends, printing progress to out, then
// shuts everything down: instances stopped, leases revoked, etcd closed.
func Up(ctx context.Context, cfg Config, out io.Writer, log *logrus.Logger) error {
	cfg.setDefaults()
	for _, a := range cfg.Apps {
		if a.Runtime != spec.RuntimeExec {
			return fmt.Errorf("app %s: berth up runs apps of runtime exec; runtime %s needs a node with its engine (render its units with berth render)", a.Name, a.Runtime)
		}
	}
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	endpoints := cfg.Endpoints
	if cfg.Secure && len(endpoints) > 0 {
		return errors.New("--secure secures the embedded etcd: for another etcd, give its TLS options and user (docs/security.md)")
	}
	var secure *etcdserver.PKI // with cfg.Secure: the users' certificates
	if _, err := os.Stat(filepath.Join(cfg.DataDir, "pki", pki.CAKeyFile)); err == nil && !cfg.Secure && len(endpoints) == 0 {
		return fmt.Errorf("%s was started with --secure (its etcd has auth on): start it with --secure, or use another --data-dir", cfg.DataDir)
	}
	if len(endpoints) == 0 {
		start := time.Now()
		dir := filepath.Join(cfg.DataDir, "etcd")
		say("starting etcd (data in %s)...", dir)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return err
		}
		if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", cfg.EtcdPort)); err != nil {
			return fmt.Errorf("etcd port 127.0.0.1:%d is taken (another etcd or berth up?): use --etcd-endpoints to use it, or --etcd-port", cfg.EtcdPort)
		} else {
			l.Close()
		}
		var srv *etcdserver.Server
		var err error
		if cfg.Secure {
			var p etcdserver.PKI
			srv, p, err = etcdserver.StartSecure(dir, filepath.Join(cfg.DataDir, "pki"), cfg.EtcdPort, registry.DefaultRoot, io.Discard)
			secure = &p
		} else {
			srv, err = etcdserver.Start(dir, cfg.EtcdPort)
		}
		if err != nil {
			return err
		}
		defer func() { srv.Close(); say("etcd stopped") }()
		endpoints = []string{srv.Endpoint}
		say("  etcd ready on %s (%s)", srv.Endpoint, time.Since(start).Round(time.Millisecond))
	}
	ccs, err := connect(endpoints, secure)
	if err != nil {
		return err
	}
	defer ccs.Close()
	cli := ccs.agent
	keys, _ := registry.NewKeys("")
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	publish, notes, err := keepChanges(rctx, ccs.operator, keys, cfg.DataDir, banner{cli: cfg.CLI}.command(), cfg.Apps)
	if err != nil {
		cancel()
		return fmt.Errorf("etcd at %s: %w", strings.Join(endpoints, ","), err)
	}
	for _, n := range notes {
		say("%s", n)
	}
	for i, a := range cfg.Apps {
		if !publish[i] {
			continue
		}
		if err := registry.PublishApp(rctx, ccs.operator, keys, a); err != nil {
			cancel()
			return fmt.Errorf("etcd at %s: %w", strings.Join(endpoints, ","), err)
		}
	}
	if err := restarted(rctx, cli, keys, cfg.Apps, time.Now()); err != nil {
		log.WithError(err).Warn("mark restarted apps")
	}
	cancel()

	bg, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	goRun := func(f func(context.Context) error) {
		wg.Add(1)
		go func() { defer wg.Done(); f(bg) }()
	}
	cache := registry.NewCache(ccs.reader, ccs.reader, registry.CacheConfig{Keys: keys}, log)
	owner := registry.NewLeaseOwner(cli, cli, 10*time.Second, log)
	routerOwner := owner // the router's access records: on a lease of the reader's
	if ccs.reader != cli {
		routerOwner = registry.NewLeaseOwner(ccs.reader, ccs.reader, 10*time.Second, log)
	}
	rcfg := cfg.Router
	rcfg.ID, rcfg.AccessInterval = "local", cfg.AccessInterval
	r, err := router.New(rcfg, cache, log)
	if err != nil {
		stop()
		return err
	}
	waker := router.NewWaker(r, ccs.reader, keys, log)
	dns, err := dnsd.New(dnsd.Config{}, cache, log)
	if err != nil {
		stop()
		return err
	}
	driver := &control.Exec{KV: cli, Keys: keys, Reg: owner, Log: log, Output: cfg.Output}
	if open, err := localSecrets(ctx, cfg.DataDir, ccs.operator, cli, keys, say); err != nil {
		log.WithError(err).Warn("sealed secrets are off: apps whose env refers to one fail to start")
	} else {
		driver.Secrets = open
	}
	if cfg.DemoApp != "" {
		env, err := serveDemoControl(bg, &demoControl{kv: ccs.operator, keys: keys, app: cfg.DemoApp, every: cfg.PassivateEvery,
			snapshot: cache.Snapshot, log: log.WithField("component", "demo-control")})
		if err != nil {
			stop()
			return err
		}
		driver.AppEnv = map[string][]string{cfg.DemoApp: env}
	}
	managed := map[string]bool{}
	for _, a := range cfg.Apps {
		managed[a.Name] = true
	}
	rec := &control.Reconciler{Src: cache, Driver: driver, Log: log, Manages: func(a *spec.App) bool { return managed[a.Name] }}
	pas := &passivate.Passivator{KV: cli, Keys: keys, Log: log, Cfg: passivate.Config{MinUptime: cfg.MinUptime}}
	reg := prometheus.NewRegistry()
	reg.MustRegister(cache.Collectors()...)
	reg.MustRegister(r.Collectors()...)
	reg.MustRegister(waker.Collectors()...)
	reg.MustRegister(dns.Collectors()...)
	reg.MustRegister(pas.Collectors()...)

	goRun(cache.Run)
	goRun(owner.Run)
	if routerOwner != owner {
		goRun(routerOwner.Run)
	}
	select {
	case <-cache.Synced():
	case <-ctx.Done():
	}
	actx, cancel := context.WithTimeout(ctx, 5*time.Second)
	if err := carryAccess(actx, cache.Snapshot(), keys, cfg.DataDir, rcfg.ID, routerOwner, cfg.Apps); err != nil {
		log.WithError(err).Warn("carry access records")
	}
	cancel()
	goRun(r.Run)
	goRun(r.RunHealth)
	goRun(dns.Run)
	goRun(func(ctx context.Context) error { return r.RunAccess(ctx, keys, routerOwner) })
	goRun(rec.Run)
	goRun(func(ctx context.Context) error { return passivationLoop(ctx, pas, cache, cfg.PassivateEvery, log) })
	dep := &deploy.Deployer{KV: cli, Keys: keys, Driver: driver, Log: log.WithField("component", "deployer")}
	goRun(func(ctx context.Context) error { return dep.Run(ctx, cache) })
	shutdown := func() {
		if err := saveAccess(cfg.DataDir, cache.Snapshot(), cfg.Apps); err != nil {
			log.WithError(err).Warn("save last access")
		}
		say("stopping instances...")
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		driver.StopAll(sctx)
		stop()
		wg.Wait()
	}

	ls, err := dnsd.Listen(cfg.DNSListen)
	if err != nil {
		shutdown()
		return fmt.Errorf("dnsd: %w", err)
	}
	dnsUp := make(chan struct{})
	goRun(func(ctx context.Context) error { return dns.Serve(ctx, ls, func() { close(dnsUp) }) })
	hl, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		shutdown()
		return fmt.Errorf("router: %w", err)
	}
	srv := router.NewServer(r, nil)
	go srv.Serve(hl)
	if cfg.Admin != "" {
		if _, err := daemon.ServeAdmin(bg, cfg.Admin, r.AdminHandler(reg, false), log); err != nil {
			srv.Close()
			shutdown()
			return err
		}
	}
	apiLines, err := startAPI(bg, goRun, cfg, ccs, keys, cache, reg, log)
	if err != nil {
		srv.Close()
		shutdown()
		return err
	}
	<-dnsUp
	for !r.Ready() {
		time.Sleep(10 * time.Millisecond)
	}
	for _, a := range cfg.Apps {
		say("waiting for %s instances...", a.Name)
		deadline := time.Now().Add(time.Minute)
		for len(cache.Snapshot().Live(a.Name)) < a.Instances && time.Now().Before(deadline) && ctx.Err() == nil {
			if asleep(cache.Snapshot(), a.Name) {
				break // asleep from an earlier run: the first request wakes it
			}
			time.Sleep(20 * time.Millisecond)
		}
		if asleep(cache.Snapshot(), a.Name) {
			say("  asleep (passivated after %s without requests): the first request wakes it", a.IdleTimeout)
		} else {
			say("  %d/%d up", len(cache.Snapshot().Live(a.Name)), a.Instances)
		}
	}
	b := banner{cli: cfg.CLI, endpoints: endpoints, secure: secure != nil, router: hl.Addr().String(), admin: cfg.Admin,
		dns: ls.UDP[0].LocalAddr().String(), minUptime: cfg.MinUptime, every: cfg.PassivateEvery}
	b.print(out, cache.Snapshot(), cfg.Apps, time.Now())
	for _, l := range apiLines {
		say("%s", l)
	}
	if secure != nil {
		say("etcd serves TLS with client certificates and auth; for the CLI (as berth-operator):")
		for _, e := range cliEnv(endpoints, secure) {
			say("  export %s", e)
		}
		say("status: %s status    (with the environment above; Ctrl-C stops everything)", b.command())
	} else {
		say("status: %s status%s    (Ctrl-C stops everything)", b.command(), b.endpointFlag())
	}
	daemon.Ready(log)

	<-ctx.Done()
	say("shutting down...")
	sctx, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	srv.Shutdown(sctx)
	r.Drain(sctx)
	cancel2()
	shutdown()
	say("stopped")
	return nil
}

// passivationLoop runs a pass every interval (berth passivate --loop).
func passivationLoop(ctx context.Context, p *passivate.Passivator, cache *registry.Cache, every time.Duration, log logrus.FieldLogger) error {
	select {
	case <-cache.Synced():
	case <-ctx.Done():
		return ctx.Err()
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		if _, err := p.Pass(ctx, cache.Snapshot()); err != nil && !errors.Is(err, context.Canceled) {
			log.WithError(err).Warn("passivation pass")
		}
	}
}
