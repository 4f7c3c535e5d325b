package main

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/berthproject/berth/internal/api"
	"github.com/berthproject/berth/internal/console"
	"github.com/berthproject/berth/internal/daemon"
	"github.com/berthproject/berth/internal/fleet"
)

// APIOptions are the flags of "berth api".
type APIOptions struct {
	Etcd           EtcdOptions
	Listen         string
	OpenLocalReads bool
	Driver         string
	TokenTTL       time.Duration
	AuditRetention time.Duration
	DeleteWait     time.Duration
	EventBuffer    int
	MaxBody        int64
}

// AddFlags registers the flags.
func (o *APIOptions) AddFlags(f *pflag.FlagSet) {
	o.Etcd.AddFlags(f)
	f.StringVar(&o.Listen, "listen", envOr("BERTH_API_LISTEN", api.DefaultListen), "address of the API (env BERTH_API_LISTEN); beyond loopback, put TLS in front")
	f.BoolVar(&o.OpenLocalReads, "open-local-reads", false, "answer reads from loopback without a token (as berth up does)")
	f.StringVar(&o.Driver, "driver", envOr("BERTH_DRIVER", "none"), "how DELETE /v1/apps/{app} removes units: none (the node agents and berth up follow the records) or berth (destroy berth fleet's jobs of the app) (env BERTH_DRIVER)")
	f.DurationVar(&o.TokenTTL, "token-ttl", 5*time.Second, "how long a looked-up token is remembered: a revoked token stops working within it")
	f.DurationVar(&o.AuditRetention, "audit-retention", 720*time.Hour, "how long audit records are kept (their lease)")
	f.DurationVar(&o.DeleteWait, "delete-wait", 30*time.Second, "how long a delete waits for the app's instances to deregister")
	f.IntVar(&o.EventBuffer, "event-buffer", 4096, "events held for clients that resume with Last-Event-ID")
	f.Int64Var(&o.MaxBody, "max-body", 1<<20, "largest request body in bytes")
}

func newAPICommand(g *GlobalOptions) *cobra.Command {
	var opts APIOptions
	cmd := &cobra.Command{
		Use:   "api",
		Short: "Serve the HTTP API: JSON under /v1/, live events (SSE), bearer tokens (docs/api.md)",
		Long: `API serves berth's state and actions as JSON over HTTP: apps (list, get, apply,
delete), instances, nodes, domains, certificates (metadata), status,
passivate, wake, scale, deploys and the berth fleet units; GET /v1/events
streams changes as Server-Sent Events; /v1/openapi.json describes it all.

Reads come from one watch of etcd (the registry cache), however many
clients. Every request needs a bearer token (berth token create); every
mutation is an etcd transaction with an audit record. It connects to etcd
as berth-operator (docs/security.md) and listens on 127.0.0.1:9090 unless
--listen says otherwise.`,
		Example: "  berth token create --scope admin --name me\n  berth api\n  berth api --listen 0.0.0.0:9090 --driver berth",
		Args:    noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAPI(cmd.Context(), g, opts)
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

func runAPI(ctx context.Context, g *GlobalOptions, o APIOptions) error {
	if o.Driver != "none" && o.Driver != "berth" {
		return usagef("--driver must be none or berth, got %q", o.Driver)
	}
	log, err := g.Logger()
	if err != nil {
		return err
	}
	fl, err := o.Etcd.follow(log)
	if err != nil {
		return err
	}
	defer fl.Close()
	cfg := api.Config{Keys: fl.keys, OpenLocalReads: o.OpenLocalReads, TokenTTL: o.TokenTTL, AuditRetention: o.AuditRetention,
		DeleteWait: o.DeleteWait, EventBuffer: o.EventBuffer, MaxBody: o.MaxBody, RequestTimeout: o.Etcd.RequestTimeout}
	if o.Driver == "berth" {
		cfg.Remover = berthRemover(&fleet.Store{KV: fl.cli, Keys: fl.keys})
	}
	srv, err := api.New(cfg, fl.cli, fl.cli, fl.cache, fl.metrics, log)
	if err != nil {
		return usageError{err}
	}
	fl.metrics.MustRegister(srv.Collectors()...)
	con, err := console.FromAPI(srv, fl.cli, log)
	if err != nil {
		return err
	}
	fl.metrics.MustRegister(con.Collectors()...)
	ln, err := net.Listen("tcp", o.Listen)
	if err != nil {
		return fmt.Errorf("--listen %s: %w", o.Listen, err)
	}
	if host, _, _ := net.SplitHostPort(o.Listen); !isLoopback(host) {
		log.WithField("addr", o.Listen).Warn("the API listens beyond loopback: tokens travel in clear unless TLS is in front")
	}
	bg, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	goRun := func(f func(context.Context) error) {
		wg.Add(1)
		go func() { defer wg.Done(); f(bg) }()
	}
	defer func() { stop(); wg.Wait() }()
	goRun(fl.cache.Run)
	goRun(srv.Run)
	goRun(con.Run)
	select {
	case <-fl.cache.Synced():
	case <-ctx.Done():
		ln.Close()
		return nil
	}
	log.WithField("addr", ln.Addr().String()).Info("api listening")
	fmt.Fprintf(g.stdout, "api on http://%s (docs/api.md; Ctrl-C stops it); console on http://%s/ (docs/console.md)\n", ln.Addr(), ln.Addr())
	daemon.Ready(log)
	err = srv.Serve(ctx, ln)
	daemon.Stopping()
	return err
}

// isLoopback reports a loopback host ("localhost" included); "" and
// unspecified addresses (0.0.0.0, ::) listen everywhere and are not.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
