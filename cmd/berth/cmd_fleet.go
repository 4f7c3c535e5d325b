package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/fleet"
	"github.com/berthproject/berth/internal/registry"
)

// FleetOptions are the flags of "berth fleet" commands.
type FleetOptions struct {
	Etcd          EtcdOptions
	Output        string
	NoBlock       bool
	BlockAttempts int
}

// AddFlags registers the flags.
func (o *FleetOptions) AddFlags(f *pflag.FlagSet) {
	o.Etcd.AddFlags(f)
	f.StringVarP(&o.Output, "output", "o", "table", "list format: table or json")
	f.BoolVar(&o.NoBlock, "no-block", false, "do not wait for the units to reach their target")
	f.IntVar(&o.BlockAttempts, "block-attempts", 0, "how many checks (four a second) before giving up; 0 waits until every unit reached its target or is reported unplaceable")
}

func newFleetCommand(g *GlobalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fleet",
		Short: "fleetctl's verbs on etcd v3: place unit files on the cluster's machines",
		Long: `berth fleet keeps unit files and their desired state in etcd; the scheduler (berth
agent --scheduler) places them on machines by their [X-Fleet] options. Names
take fleetctl's forms (a name without a type is a .service), and
web@{1..3}.service expands as a shell would. status and journal run
systemctl and journalctl on the unit's machine: here when it is this host,
else through the system's ssh client (so ~/.ssh/config and the ssh agent
apply), with fleetctl's ssh flags. See docs/fleet.md.`,
	}
	var ssh SSHOptions
	ssh.AddFlags(cmd.PersistentFlags())
	var opts FleetOptions
	verb := func(use, short string, run func(*fleetCtl, context.Context, []string) error) *cobra.Command {
		c := &cobra.Command{Use: use, Short: short, RunE: func(c *cobra.Command, args []string) error {
			fc, err := opts.connect(g)
			if err != nil {
				return err
			}
			defer fc.cli.Close()
			return run(fc, c.Context(), args)
		}}
		opts.AddFlags(c.Flags())
		return c
	}
	cmd.AddCommand(
		verb("submit UNIT-FILE...", "Store unit files (their names are the files' names)", (*fleetCtl).submit),
		verb("load UNIT...", "Place units on machines without starting them", func(f *fleetCtl, ctx context.Context, a []string) error {
			return f.target(ctx, a, registry.TargetLoaded)
		}),
		verb("start UNIT...", "Place and start units (submitting local files first); waits until they are active", func(f *fleetCtl, ctx context.Context, a []string) error {
			return f.target(ctx, a, registry.TargetLaunched)
		}),
		verb("stop UNIT...", "Stop units, leaving them placed", func(f *fleetCtl, ctx context.Context, a []string) error {
			return f.target(ctx, a, registry.TargetLoaded)
		}),
		verb("unload UNIT...", "Stop units and take them off their machines", func(f *fleetCtl, ctx context.Context, a []string) error {
			return f.target(ctx, a, registry.TargetInactive)
		}),
		verb("destroy UNIT...", "Remove units (stopped and unloaded first)", (*fleetCtl).destroy),
		verb("cat UNIT", "Print a submitted unit file", (*fleetCtl).cat),
		verb("list-unit-files", "List submitted units: hash, desired state, machine", (*fleetCtl).listUnitFiles),
		verb("list-units", "List placed units and the scheduler's reasons for unplaced ones", (*fleetCtl).listUnits),
		verb("list-machines", "List the machines (agents) and their metadata", (*fleetCtl).listMachines),
		newFleetJournalCommand(g, &ssh),
	)
	status := verb("status UNIT...", "Show systemctl status of units on their machines (over ssh when elsewhere)",
		func(f *fleetCtl, ctx context.Context, a []string) error { return f.status(ctx, a, &ssh) })
	status.Long = fleetStatusLong
	cmd.AddCommand(status)
	return cmd
}

// fleetCtl is one berth fleet command's connection and options.
type fleetCtl struct {
	g     *GlobalOptions
	o     *FleetOptions
	cli   *clientv3.Client
	keys  registry.Keys
	store *fleet.Store
}

func (o *FleetOptions) connect(g *GlobalOptions) (*fleetCtl, error) {
	if o.Output != "table" && o.Output != "json" {
		return nil, usagef("-o must be table or json, got %q", o.Output)
	}
	cli, k, err := o.Etcd.Connect()
	if err != nil {
		return nil, err
	}
	return &fleetCtl{g: g, o: o, cli: cli, keys: k, store: &fleet.Store{KV: cli, Keys: k}}, nil
}

// names expands brace ranges, makes a name without a type a .service
// (fleetctl's mangling) and checks every name.
func names(args []string) ([]string, error) {
	if len(args) == 0 {
		return nil, usagef("name at least one unit")
	}
	var out []string
	for _, a := range args {
		ns, err := fleet.Expand(filepath.Base(a))
		if err != nil {
			return nil, usagef("%v", err)
		}
		for i, n := range ns {
			if filepath.Ext(n) == "" {
				n += ".service"
				ns[i] = n
			}
			if _, err := fleet.ParseName(n); err != nil {
				return nil, usagef("%v", err)
			}
		}
		out = append(out, ns...)
	}
	return out, nil
}

func (f *fleetCtl) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, f.o.Etcd.RequestTimeout)
}

func (f *fleetCtl) submit(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return usagef("name at least one unit file")
	}
	for _, path := range args {
		content, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rctx, cancel := f.ctx(ctx)
		err = f.store.Submit(rctx, filepath.Base(path), content)
		cancel()
		if err != nil {
			return f.o.Etcd.wrapErr(err)
		}
	}
	return nil
}

// target sets the units' target, submitting local unit files (or their
// templates) of the same name first, as fleetctl does; then it waits for
// the scheduler's decision unless --no-block.
func (f *fleetCtl) target(ctx context.Context, args []string, target string) error {
	units, err := names(args)
	if err != nil {
		return err
	}
	submitted := map[string]bool{}
	for _, a := range args {
		if _, err := os.Stat(a); err == nil && !strings.Contains(a, "{") {
			switch err := f.submit(ctx, []string{a}); {
			case errors.Is(err, fleet.ErrChanged):
				fmt.Fprintf(f.g.stderr, "warning: %s differs from the submitted %s, which is used (destroy it to submit the file)\n",
					a, filepath.Base(a))
			case err != nil:
				return err
			}
			submitted[filepath.Base(a)] = true
		}
	}
	// A template given as a file is submitted for its instances, not
	// started itself (fleetctl's way).
	units = slices.DeleteFunc(units, func(u string) bool {
		n, _ := fleet.ParseName(u)
		return n.Template && submitted[u]
	})
	for _, u := range units {
		rctx, cancel := f.ctx(ctx)
		err := f.store.SetTarget(rctx, u, target)
		cancel()
		if err != nil {
			return f.o.Etcd.wrapErr(err)
		}
	}
	if f.o.NoBlock || target == registry.TargetInactive {
		return nil
	}
	return f.waitFor(ctx, units, target)
}

// waitFor waits until every unit reached its target on its machine, as
// its agent reports (launched: active; loaded: loaded; a global unit:
// placed), or the scheduler said why it cannot place it. fleetctl waits
// for ever on an unplaceable unit; berth returns with the reasons and
// exit status 1.
func (f *fleetCtl) waitFor(ctx context.Context, units []string, target string) error {
	done := map[string]bool{}
	for attempt := 1; ; attempt++ {
		v, err := f.view(ctx)
		if err != nil {
			return err
		}
		sched, states := v.sched, v.states
		var waiting, unplaced []string
		for _, u := range units {
			p, placed := sched[u]
			st := states[u]
			switch {
			case !placed:
				waiting = append(waiting, u+" (not scheduled yet)")
			case p.Machine == "" && len(p.Machines) == 0:
				unplaced = append(unplaced, u+": "+p.Reason)
			case p.Machine == "", // global: placed is all it waits for
				st.Machine == p.Machine && (target == registry.TargetLaunched && st.Active == "active" ||
					target == registry.TargetLoaded && st.Load == "loaded" && st.Active != "active"):
				if !done[u] {
					done[u] = true
					fmt.Fprintf(f.g.stdout, "Unit %s %s on %s\n", u, target, placement(p))
				}
			default:
				waiting = append(waiting, fmt.Sprintf("%s (on %s: %s)", u, p.Machine, cmp.Or(st.Active, "no report yet")))
			}
		}
		if len(waiting) == 0 {
			if len(unplaced) > 0 {
				return fmt.Errorf("cannot place %d unit(s):\n  %s", len(unplaced), strings.Join(unplaced, "\n  "))
			}
			return nil
		}
		if f.o.BlockAttempts > 0 && attempt >= f.o.BlockAttempts {
			msg := fmt.Sprintf("%d unit(s) not %s after %d checks (is a scheduler running? berth agent --scheduler):\n  %s",
				len(waiting), target, attempt, strings.Join(waiting, "\n  "))
			if len(unplaced) > 0 {
				msg += fmt.Sprintf("\ncannot place %d unit(s):\n  %s", len(unplaced), strings.Join(unplaced, "\n  "))
			}
			return errors.New(msg)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func (f *fleetCtl) destroy(ctx context.Context, args []string) error {
	units, err := names(args)
	if err != nil {
		return err
	}
	for _, u := range units {
		rctx, cancel := f.ctx(ctx)
		err := f.store.Destroy(rctx, u)
		cancel()
		if err != nil {
			return f.o.Etcd.wrapErr(err)
		}
		fmt.Fprintf(f.g.stdout, "Destroyed %s\n", u)
	}
	return nil
}

func (f *fleetCtl) cat(ctx context.Context, args []string) error {
	if len(args) != 1 {
		return usagef("cat needs one UNIT")
	}
	v, err := f.view(ctx)
	if err != nil {
		return err
	}
	j, ok := v.jobs[args[0]]
	if !ok {
		return fmt.Errorf("%s: %w", args[0], fleet.ErrNoUnit)
	}
	rctx, cancel := f.ctx(ctx)
	defer cancel()
	content, err := f.store.Content(rctx, j.Hash)
	if err != nil {
		return err
	}
	_, err = f.g.stdout.Write(content)
	return err
}

// fleetView is the fleet's records, read at one revision.
type fleetView struct {
	jobs   map[string]registry.FleetJob
	sched  map[string]registry.FleetPlacement
	states map[string]registry.FleetState
}

// view reads jobs, placements and reported states in one transaction.
func (f *fleetCtl) view(ctx context.Context) (*fleetView, error) {
	rctx, cancel := f.ctx(ctx)
	defer cancel()
	v, err := fleet.ReadView(rctx, f.cli, f.keys)
	if err != nil {
		return nil, f.o.Etcd.wrapErr(err)
	}
	return &fleetView{jobs: v.Jobs, sched: v.Sched, states: v.States}, nil
}

// currentState is fleetctl's STATE of a unit (fleet.View.CurrentState).
func currentState(states map[string]registry.FleetState, unit string) string {
	return (&fleet.View{States: states}).CurrentState(unit)
}

func placement(p registry.FleetPlacement) string { return fleet.PlacementString(p) }
