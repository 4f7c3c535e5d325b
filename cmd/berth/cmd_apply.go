package main

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/secret"
	"github.com/berthproject/berth/internal/spec"
)

// ApplyOptions are the flags of "berth apply".
type ApplyOptions struct {
	Etcd     EtcdOptions
	TakeOver bool
}

// AddFlags registers the flags.
func (o *ApplyOptions) AddFlags(f *pflag.FlagSet) {
	o.Etcd.AddFlags(f)
	f.BoolVar(&o.TakeOver, "take-over", false, "move domains that another app owns to this app (default: refuse them)")
}

func newApplyCommand(g *GlobalOptions) *cobra.Command {
	var opts ApplyOptions
	cmd := &cobra.Command{
		Use:   "apply SPEC...",
		Short: "Publish app specs and their domains to etcd (what routers, dnsd and passivation read)",
		Long: `Apply records each app's spec under /berth/v1/apps/<app> and its domains under
/berth/v1/domains/<host>, so that routers know the app (its domains, policy,
idle timeout) before any instance runs. Every spec is parsed before anything is
written.

The app's domains become those of its spec, in one etcd transaction with the
spec: a domain new to the spec is added, a domain that left it is removed
(routers stop serving it at once). A domain another app owns is refused,
naming that app; --take-over moves it to this one. Two applies racing for one
domain cannot both get it.`,
		Example: "  berth apply examples/paas-monitor.yaml\n  berth apply shop.yaml --take-over   # shop.example.com moves from the old app",
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
		res, err := registry.Apply(rctx, cli, k, a, registry.ApplyOptions{TakeOver: opts.TakeOver})
		cancel()
		var taken *registry.DomainTakenError
		if errors.As(err, &taken) {
			return fmt.Errorf("apply %s: %w: drop it from the spec of %s and apply that first, or apply with --take-over to move it to %s",
				a.Name, err, taken.Owner, a.Name)
		}
		if err != nil {
			return opts.Etcd.wrapErr(err)
		}
		fmt.Fprintf(g.stdout, "applied %s (version %s, %d domain(s))\n", a.Name, a.Version, len(a.Domains))
		for _, d := range res.Added {
			fmt.Fprintf(g.stdout, "  added domain %s\n", d)
		}
		for _, d := range slices.Sorted(maps.Keys(res.Taken)) {
			fmt.Fprintf(g.stdout, "  took domain %s over from %s\n", d, res.Taken[d])
		}
		for _, d := range res.Removed {
			fmt.Fprintf(g.stdout, "  removed domain %s (no longer in the spec)\n", d)
		}
		warnMissingSecrets(ctx, g, opts.Etcd, &secret.Store{KV: cli, Keys: k}, a)
	}
	return nil
}

// warnMissingSecrets tells the operator which sealed secrets the app
// refers to but etcd does not hold: its instances would fail to start.
func warnMissingSecrets(ctx context.Context, g *GlobalOptions, eo EtcdOptions, st *secret.Store, a *spec.App) {
	names := a.SecretNames()
	if len(names) == 0 {
		return
	}
	rctx, cancel := context.WithTimeout(ctx, eo.RequestTimeout)
	defer cancel()
	es, err := st.List(rctx, a.Name)
	if err != nil {
		fmt.Fprintf(g.stderr, "warning: %s: cannot list its sealed secrets: %v\n", a.Name, err)
		return
	}
	have := map[string]bool{}
	for _, e := range es {
		have[e.Name] = true
	}
	for _, n := range names {
		if !have[n] {
			fmt.Fprintf(g.stderr, "warning: %s refers to sealed secret %s, which is not stored: its instances fail to start until berth secret put %s %s\n", a.Name, n, a.Name, n)
		}
	}
}
