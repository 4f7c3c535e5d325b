package main

import (
	"context"
	"fmt"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/spec"
)

// ApplyOptions are the flags of "berth apply".
type ApplyOptions struct {
	Etcd EtcdOptions
}

// AddFlags registers the flags.
func (o *ApplyOptions) AddFlags(f *pflag.FlagSet) { o.Etcd.AddFlags(f) }

func newApplyCommand(g *GlobalOptions) *cobra.Command {
	var opts ApplyOptions
	cmd := &cobra.Command{
		Use:   "apply SPEC...",
		Short: "Publish app specs and their domains to etcd (what routers, dnsd and passivation read)",
		Long: `Apply records each app's spec under /berth/v1/apps/<app> and its domains under
/berth/v1/domains/<host>, so that routers know the app (its domains, policy,
idle timeout) before any instance runs. Every spec is parsed before anything is
written.`,
		Example: "  berth apply examples/paas-monitor.yaml",
		RunE: func(cmd *cobra.Command, args []string) error {
			return runApply(cmd.Context(), g, opts, args)
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

func runApply(ctx context.Context, g *GlobalOptions, opts ApplyOptions, paths []string) error {
	if len(paths) == 0 {
		return usagef("apply needs at least one SPEC file")
	}
	var apps []*spec.App
	for _, p := range paths {
		a, err := spec.ParseFile(p)
		if err != nil {
			return err
		}
		apps = append(apps, a...)
	}
	cli, k, err := opts.Etcd.Connect()
	if err != nil {
		return err
	}
	defer cli.Close()
	for _, a := range apps {
		rctx, cancel := context.WithTimeout(ctx, opts.Etcd.RequestTimeout)
		err := registry.PublishApp(rctx, cli, k, a)
		cancel()
		if err != nil {
			return opts.Etcd.wrapErr(err)
		}
		fmt.Fprintf(g.stdout, "applied %s (version %s, %d domain(s))\n", a.Name, a.Version, len(a.Domains))
	}
	return nil
}
