package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/user"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/deploy"
	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/spec"
)

// DeployOptions are the flags of "berth deploy" and "berth rollback".
type DeployOptions struct {
	Etcd         EtcdOptions
	Strategy     string
	Canary       int
	MaxSurge     int
	Timeout      time.Duration
	MaxErrorRate float64
	Force        bool
	Wait         bool
	Promote      bool
	Abort        bool
}

// AddFlags registers the flags.
func (o *DeployOptions) AddFlags(f *pflag.FlagSet) {
	o.addRolloutFlags(f)
	f.IntVar(&o.Canary, "canary", 0, "send this percentage of clients (sticky by cookie) to the new version until berth deploy --promote APP")
	f.Float64Var(&o.MaxErrorRate, "max-error-rate", 0, "canary: roll back when this share of the canary's responses are 5xx (0: off)")
	f.BoolVar(&o.Force, "force", false, "deploy a version not newer than the live one")
	f.BoolVar(&o.Promote, "promote", false, "promote APP's canary: the deploy goes on with its strategy")
	f.BoolVar(&o.Abort, "abort", false, "roll APP's running deploy back")
}

// addRolloutFlags registers the flags deploy and rollback share.
func (o *DeployOptions) addRolloutFlags(f *pflag.FlagSet) {
	o.Etcd.AddFlags(f)
	f.StringVar(&o.Strategy, "strategy", registry.StrategyRolling, "rolling (start one, wait healthy, drain an old one, repeat) or blue-green (the whole new set healthy, then one switch)")
	f.IntVar(&o.MaxSurge, "max-surge", 1, "rolling: new instances starting at once")
	f.DurationVar(&o.Timeout, "timeout", 5*time.Minute, "roll back when the new version goes this long without a new healthy instance")
	f.BoolVar(&o.Wait, "wait", false, "wait until the deploy is done or rolled back (exit 1 if rolled back)")
}

func (o *DeployOptions) options() deploy.Options {
	return deploy.Options{Strategy: o.Strategy, Canary: o.Canary, MaxSurge: o.MaxSurge, Timeout: o.Timeout,
		MaxErrorRate: o.MaxErrorRate, Force: o.Force, By: whoami()}
}

func whoami() string {
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return name + "@" + host
}

func newDeployCommand(g *GlobalOptions) *cobra.Command {
	var opts DeployOptions
	cmd := &cobra.Command{
		Use:   "deploy SPEC | --promote APP | --abort APP",
		Short: "Publish a new version of an app and roll it out without a failed request",
		Long: `Deploy publishes the spec as the app's next release (its version must be newer
than the live one, unless --force) and starts its rollout. The rollout runs
from etcd: berth up, or on a cluster the scheduler's leader, starts the new
instances, moves traffic only to healthy ones, drains and stops the old ones,
and rolls back by itself when the new version does not become healthy within
--timeout. The deploying client may go away; --wait follows it to the end.

One deploy of an app runs at a time: a second one is refused until the first
is done or aborted. See docs/deploy.md.`,
		Example: `  berth deploy demo-v2.yaml --wait
  berth deploy demo-v2.yaml --strategy blue-green
  berth deploy demo-v2.yaml --canary 10 && berth deploy --promote demo`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDeploy(cmd.Context(), g, opts, args[0])
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

func runDeploy(ctx context.Context, g *GlobalOptions, opts DeployOptions, arg string) error {
	if opts.Promote && opts.Abort {
		return usagef("--promote and --abort exclude each other")
	}
	var app *spec.App
	if !opts.Promote && !opts.Abort {
		apps, err := spec.ParseFile(arg)
		if err != nil {
			return err
		}
		if len(apps) != 1 {
			return usagef("%s holds %d apps: deploy one app at a time", arg, len(apps))
		}
		app = apps[0]
		if err := opts.options().Validate(); err != nil {
			return usageError{err}
		}
	}
	cli, k, err := opts.Etcd.Connect()
	if err != nil {
		return err
	}
	defer cli.Close()
	rctx, cancel := context.WithTimeout(ctx, opts.Etcd.RequestTimeout)
	defer cancel()
	switch {
	case opts.Promote:
		if err := deploy.Promote(rctx, cli, k, arg); err != nil {
			return opts.Etcd.wrapErr(err)
		}
		fmt.Fprintf(g.stdout, "%s: canary promoted\n", arg)
		return waitRollout(ctx, g, cli, k, arg, opts)
	case opts.Abort:
		if err := deploy.Abort(rctx, cli, k, arg, "aborted by "+whoami()); err != nil {
			return opts.Etcd.wrapErr(err)
		}
		fmt.Fprintf(g.stdout, "%s: rolling back\n", arg)
		return waitRollout(ctx, g, cli, k, arg, opts)
	}
	rel, err := deploy.Publish(rctx, cli, k, app, opts.options())
	if err != nil {
		return opts.Etcd.wrapErr(err)
	}
	fmt.Fprintf(g.stdout, "%s %s published as release %d (%s)\n", app.Name, app.Version, rel.Gen, describe(rel))
	return waitRollout(ctx, g, cli, k, app.Name, opts)
}

func describe(r *registry.Release) string {
	s := r.Strategy
	if r.Canary > 0 {
		s += fmt.Sprintf(", canary %d%%", r.Canary)
	}
	return s
}

// waitRollout follows the app's rollout to its end with --wait: exit 0 when
// done, 1 when rolled back (with the reason).
func waitRollout(ctx context.Context, g *GlobalOptions, cli *clientv3.Client, k registry.Keys, app string, opts DeployOptions) error {
	if !opts.Wait {
		return nil
	}
	last := ""
	for {
		rctx, cancel := context.WithTimeout(ctx, opts.Etcd.RequestTimeout)
		_, r, err := deploy.History(rctx, cli, k, app)
		cancel()
		if err != nil {
			return opts.Etcd.wrapErr(err)
		}
		if r != nil {
			if line := fmt.Sprintf("%s: %s, %d new healthy", app, r.Phase, r.Healthy); line != last {
				fmt.Fprintln(g.stdout, line)
				last = line
			}
			switch r.Phase {
			case registry.PhaseDone:
				return nil
			case registry.PhaseRolledBack:
				return fmt.Errorf("%s: deploy rolled back: %s", app, r.Message)
			case registry.PhaseCanary:
				if r.Healthy >= 1 && !opts.Promote {
					fmt.Fprintf(g.stdout, "%s: canary running; berth deploy --promote %s or --abort %s\n", app, app, app)
					return nil
				}
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// HistoryOptions are the flags of "berth history".
type HistoryOptions struct {
	Etcd   EtcdOptions
	Output string
}

func newHistoryCommand(g *GlobalOptions) *cobra.Command {
	var opts HistoryOptions
	cmd := &cobra.Command{
		Use:   "history APP",
		Short: "An app's releases: version, who deployed it and when, strategy, outcome",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runHistory(cmd.Context(), g, opts, args[0])
		},
	}
	opts.Etcd.AddFlags(cmd.Flags())
	cmd.Flags().StringVarP(&opts.Output, "output", "o", "table", "table or json")
	return cmd
}

func runHistory(ctx context.Context, g *GlobalOptions, opts HistoryOptions, app string) error {
	if opts.Output != "table" && opts.Output != "json" {
		return usagef("--output must be table or json, got %q", opts.Output)
	}
	if _, err := (registry.Keys{}).App(app); err != nil {
		return usagef("%v", err)
	}
	cli, k, err := opts.Etcd.Connect()
	if err != nil {
		return err
	}
	defer cli.Close()
	rctx, cancel := context.WithTimeout(ctx, opts.Etcd.RequestTimeout)
	defer cancel()
	rels, ro, err := deploy.History(rctx, cli, k, app)
	if err != nil {
		return opts.Etcd.wrapErr(err)
	}
	if len(rels) == 0 {
		return fmt.Errorf("%s has no releases (berth deploy publishes them)", app)
	}
	if opts.Output == "json" {
		return json.NewEncoder(g.stdout).Encode(map[string]any{"releases": rels, "rollout": ro})
	}
	tw := tabwriter.NewWriter(g.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "GEN\tVERSION\tCREATED\tBY\tSTRATEGY\tOUTCOME\tREASON")
	for _, r := range rels {
		outcome := r.Outcome
		if r.Rollback {
			outcome += " (rollback)"
		}
		if ro != nil && ro.To == r.Gen && ro.Active() {
			outcome += " (" + ro.Phase + ")"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Gen, r.Version, time.UnixMilli(r.Created).UTC().Format(time.RFC3339),
			dash(r.By), describe(r), outcome, dash(strings.ReplaceAll(r.Reason, "\t", " ")))
	}
	return tw.Flush()
}

// RollbackOptions are the flags of "berth rollback".
type RollbackOptions struct {
	DeployOptions
	To string
}

func newRollbackCommand(g *GlobalOptions) *cobra.Command {
	var opts RollbackOptions
	cmd := &cobra.Command{
		Use:   "rollback APP [--to VERSION]",
		Short: "Roll an app back to its previous release (or --to VERSION), as a new deploy",
		Long: `Rollback publishes an earlier release's spec again, as a new release, and rolls
it out like berth deploy (same strategies and guarantees). Without --to it is
the release the live one replaced.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runRollback(cmd.Context(), g, opts, args[0])
		},
	}
	opts.addRolloutFlags(cmd.Flags())
	cmd.Flags().StringVar(&opts.To, "to", "", "the version to roll back to (default: the previous release)")
	return cmd
}

func runRollback(ctx context.Context, g *GlobalOptions, opts RollbackOptions, app string) error {
	cli, k, err := opts.Etcd.Connect()
	if err != nil {
		return err
	}
	defer cli.Close()
	rctx, cancel := context.WithTimeout(ctx, opts.Etcd.RequestTimeout)
	defer cancel()
	rel, err := deploy.Rollback(rctx, cli, k, app, opts.To, opts.options())
	if err != nil {
		return opts.Etcd.wrapErr(err)
	}
	fmt.Fprintf(g.stdout, "%s rolling back to %s as release %d\n", app, rel.Version, rel.Gen)
	return waitRollout(ctx, g, cli, k, app, opts.DeployOptions)
}
