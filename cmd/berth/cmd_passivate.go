package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/berthproject/berth/internal/control"
	"github.com/berthproject/berth/internal/passivate"
	"github.com/berthproject/berth/internal/registry"
)

// PassivateOptions are the flags of "berth passivate".
type PassivateOptions struct {
	Etcd      EtcdOptions
	DryRun    bool
	Loop      time.Duration
	MinUptime time.Duration
	Driver    string
	Fleetctl  FleetctlOptions
	Output    string
}

// FleetctlOptions are the flags of the fleet driver (fleetctl), shared by
// the commands that take --driver fleet.
type FleetctlOptions struct {
	Fleetctl string // binary (default "fleetctl")
	Endpoint string // fleet's etcd (default $FLEETCTL_ENDPOINT)
	Tunnel   string // ssh tunnel host (default $FLEETCTL_TUNNEL)
}

// AddFlags registers the flags.
func (o *FleetctlOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.Fleetctl, "fleetctl", "fleetctl", "fleetctl binary for --driver fleet (FLEETCTL_ENDPOINT / FLEETCTL_TUNNEL apply)")
	f.StringVar(&o.Endpoint, "fleet-endpoint", os.Getenv("FLEETCTL_ENDPOINT"), "fleet's etcd endpoint for --driver fleet (env FLEETCTL_ENDPOINT)")
	f.StringVar(&o.Tunnel, "fleet-tunnel", os.Getenv("FLEETCTL_TUNNEL"), "ssh tunnel host for --driver fleet (env FLEETCTL_TUNNEL)")
}

// Driver is the fleet driver these options configure.
func (o *FleetctlOptions) Driver() *control.Fleet {
	return &control.Fleet{Fleetctl: o.Fleetctl, Endpoint: o.Endpoint, Tunnel: o.Tunnel}
}

// AddFlags registers the flags.
func (o *PassivateOptions) AddFlags(f *pflag.FlagSet) {
	o.Etcd.AddFlags(f)
	f.BoolVar(&o.DryRun, "dry-run", false, "print the decisions; change nothing")
	f.DurationVar(&o.Loop, "loop", 0, "run a pass every interval instead of once")
	f.DurationVar(&o.MinUptime, "min-uptime", time.Minute, "never passivate an app started less than this long ago")
	f.StringVar(&o.Driver, "driver", envOr("BERTH_DRIVER", "systemd"), "how units are stopped: systemd (node agents carry out the expected state), fleet (fleetctl stop) or berth (berth fleet's executors hold the app's units stopped wherever they are placed)")
	o.Fleetctl.AddFlags(f)
	f.StringVarP(&o.Output, "output", "o", "table", "output: table or json")
}

func newPassivateCommand(g *GlobalOptions) *cobra.Command {
	var opts PassivateOptions
	cmd := &cobra.Command{
		Use:   "passivate",
		Short: "Passivate apps idle past their timeout (one pass; berth-passivate.timer runs it every minute)",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runPassivate(cmd.Context(), g, opts)
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

func runPassivate(ctx context.Context, g *GlobalOptions, o PassivateOptions) error {
	log, err := g.Logger()
	if err != nil {
		return err
	}
	var driver control.Driver
	switch o.Driver {
	case "systemd", "berth":
		// The status transition is all: node agents (systemd) and berth
		// fleet's executors (berth) carry out the expected state.
	case "fleet":
		driver = o.Fleetctl.Driver()
	default:
		return usagef("--driver must be systemd, fleet or berth, got %q", o.Driver)
	}
	cli, k, err := o.Etcd.Connect()
	if err != nil {
		return err
	}
	defer cli.Close()
	p := &passivate.Passivator{KV: cli, Keys: k, Driver: driver, Log: log,
		Cfg: passivate.Config{MinUptime: o.MinUptime, DryRun: o.DryRun}}
	cache := registry.NewCache(cli, cli, registry.CacheConfig{Keys: k, RequestTimeout: o.Etcd.RequestTimeout}, log)
	for {
		snap, err := cache.Load(ctx)
		if err != nil {
			return o.Etcd.wrapErr(err)
		}
		decisions, err := p.Pass(ctx, snap)
		if perr := printDecisions(g.stdout, decisions, o.Output == "json"); perr != nil {
			return perr
		}
		if o.Loop == 0 {
			return err
		}
		if err != nil {
			log.WithError(err).Warn("passivation pass")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(o.Loop):
		}
	}
}

func printDecisions(w io.Writer, ds []passivate.Decision, asJSON bool) error {
	if asJSON {
		if ds == nil {
			ds = []passivate.Decision{}
		}
		return json.NewEncoder(w).Encode(ds)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "APP\tDECISION\tWHY")
	for _, d := range ds {
		what := "keep"
		if d.Passivate {
			what = "passivate"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", d.App, what, d.Reason)
	}
	return tw.Flush()
}
