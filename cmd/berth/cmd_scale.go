package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/berthproject/berth/internal/registry"
)

// ScaleOptions are the flags of "berth scale".
type ScaleOptions struct {
	Etcd EtcdOptions
}

// AddFlags registers the flags.
func (o *ScaleOptions) AddFlags(f *pflag.FlagSet) { o.Etcd.AddFlags(f) }

func newScaleCommand(g *GlobalOptions) *cobra.Command {
	var opts ScaleOptions
	cmd := &cobra.Command{
		Use:   "scale APP N",
		Short: "Change the number of instances of an applied app (berth up starts or stops them)",
		Long: `Scale records a new instance count in the app's spec in etcd. berth up's local
driver starts or stops instances to match. On a fleet cluster start or stop the
units themselves (fleetctl start app@{4..10}.service).`,
		Example: "  berth scale paas-monitor 10",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 2 {
				return usagef("scale needs APP and N")
			}
			n, err := strconv.Atoi(args[1])
			if err != nil || n < 1 {
				return usagef("N must be a whole number of at least 1, got %q", args[1])
			}
			return runScale(cmd.Context(), g, opts, args[0], n)
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

func runScale(ctx context.Context, g *GlobalOptions, o ScaleOptions, app string, n int) error {
	cli, k, err := o.Etcd.Connect()
	if err != nil {
		return err
	}
	defer cli.Close()
	rctx, cancel := context.WithTimeout(ctx, o.Etcd.RequestTimeout)
	defer cancel()
	prev, err := registry.ScaleApp(rctx, cli, k, app, n)
	if err != nil {
		return o.Etcd.wrapErr(err)
	}
	fmt.Fprintf(g.stdout, "%s: %d → %d instances\n", app, prev, n)
	return nil
}
