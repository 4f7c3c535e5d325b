package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/berthproject/berth/internal/api"
	"github.com/berthproject/berth/internal/local"
	"github.com/berthproject/berth/internal/spec"
)

// UpOptions are the flags of "berth up".
type UpOptions struct {
	DataDir        string
	EtcdPort       int
	Endpoints      []string
	Secure         bool
	Listen         string
	DNSListen      string
	Admin          string
	API            string
	Demo           bool
	DemoInstances  int
	DemoIdle       time.Duration
	PassivateEvery time.Duration
	MinUptime      time.Duration
	Quiet          bool
	Limits         ProxyLimits
}

// AddFlags registers the flags.
func (o *UpOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.DataDir, "data-dir", local.DefaultDataDir(), "where the embedded etcd keeps its data")
	f.IntVar(&o.EtcdPort, "etcd-port", 2379, "client port of the embedded etcd (127.0.0.1)")
	f.StringSliceVar(&o.Endpoints, "etcd-endpoints", nil, "use this etcd cluster instead of an embedded one")
	f.BoolVar(&o.Secure, "secure", false, "the embedded etcd serves TLS, wants client certificates and has auth on (a CA and certificates in DATA-DIR/pki); prints the environment for the CLI")
	f.StringVar(&o.Listen, "listen", "127.0.0.1:8080", "router address")
	f.StringVar(&o.DNSListen, "dns-listen", "127.0.0.1:8053", "dnsd address (UDP and TCP)")
	f.StringVar(&o.Admin, "admin", "127.0.0.1:9080", "router admin address (/routes, /metrics); empty disables")
	f.StringVar(&o.API, "api", api.DefaultListen, "HTTP API address (docs/api.md; reads from this machine need no token, the banner prints an admin token); empty disables")
	f.BoolVar(&o.Demo, "demo", false, "also deploy the demo app (paas-monitor) as berth demo-app instances")
	f.IntVar(&o.DemoInstances, "demo-instances", 3, "instances of the demo app")
	f.DurationVar(&o.DemoIdle, "demo-idle-timeout", demoIdleTimeout, "idle timeout of the demo app (passivation); the banner and the demo page say when it will sleep")
	f.DurationVar(&o.PassivateEvery, "passivate-every", 10*time.Second, "interval of the passivation pass")
	f.DurationVar(&o.MinUptime, "min-uptime", time.Minute, "never passivate an app started less than this long ago")
	f.BoolVar(&o.Quiet, "quiet", false, "do not print the instances' output")
	o.Limits.AddFlags(f)
}

func newUpCommand(g *GlobalOptions) *cobra.Command {
	var opts UpOptions
	cmd := &cobra.Command{
		Use:   "up [SPEC...]",
		Short: "Run the whole platform on this machine: etcd, router, dnsd, local instances, passivation",
		Long: `Up runs everything in one process: an embedded etcd (or --etcd-endpoints), the
router on 127.0.0.1:8080, dnsd on 127.0.0.1:8053, the apps of the given specs
(runtime exec) as local processes, and the passivation loop. --demo adds the
demo app. Ctrl-C stops everything cleanly; the next start finds its data again.
--secure runs the embedded etcd as a cluster safe to expose does: TLS, client
certificates and etcd auth, each component acting as its role's user.`,
		Example: "  berth up --demo\n  berth up --secure --demo\n  berth up examples/demo-exec.yaml",
		RunE: func(cmd *cobra.Command, args []string) error {
			if !cmd.Flags().Changed("log-level") && os.Getenv("BERTH_LOG_LEVEL") == "" {
				g.LogLevel = "warn" // the banner says what runs; --log-level info adds each step
			}
			return runUp(cmd.Context(), g, opts, args)
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

// demoIdleTimeout is the demo app's idle timeout unless --demo-idle-timeout
// says otherwise: long enough to read the tutorial's first steps without
// the page open before the app sleeps.
const demoIdleTimeout = 3 * time.Minute

// demoSpec is the seed's paas-monitor, as berth demo-app instances.
func demoSpec(instances int, idle time.Duration) (*spec.App, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	a := &spec.App{APIVersion: spec.APIVersion, Name: "paas-monitor", Version: "1.0.0", Runtime: spec.RuntimeExec,
		Command: []string{self, "demo-app"}, Instances: instances,
		Ports:       []spec.Port{{Container: 8080, Tags: []string{"http"}}},
		Domains:     []string{"paas-monitor.localhost"},
		Health:      &spec.Health{HTTP: "/health", Interval: spec.Duration(200 * time.Millisecond)},
		IdleTimeout: spec.Duration(idle), Placement: spec.Placement{AllowColocation: true},
		Restart: spec.Restart{Delay: spec.Duration(time.Second)},
	}
	a.SetDefaults()
	return a, a.Validate()
}

func runUp(ctx context.Context, g *GlobalOptions, o UpOptions, specs []string) error {
	log, err := g.Logger()
	if err != nil {
		return err
	}
	cfg := local.Config{DataDir: o.DataDir, EtcdPort: o.EtcdPort, Endpoints: o.Endpoints, Secure: o.Secure, Listen: o.Listen,
		DNSListen: o.DNSListen, Admin: o.Admin, API: o.API, PassivateEvery: o.PassivateEvery, MinUptime: o.MinUptime, CLI: cliName()}
	o.Limits.apply(&cfg.Router)
	if !o.Quiet {
		cfg.Output = g.stdout
	}
	for _, p := range specs {
		apps, err := spec.ParseFile(p)
		if err != nil {
			return err
		}
		cfg.Apps = append(cfg.Apps, apps...)
	}
	if o.Demo {
		a, err := demoSpec(o.DemoInstances, o.DemoIdle)
		if err != nil {
			return fmt.Errorf("demo spec: %w", err)
		}
		cfg.Apps = append(cfg.Apps, a)
		cfg.DemoApp = a.Name
	}
	if len(cfg.Apps) == 0 {
		fmt.Fprintln(g.stdout, "no apps given: running the platform only (berth up --demo adds the demo app)")
	}
	return local.Up(ctx, cfg, g.stdout, log)
}
