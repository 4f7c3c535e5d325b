package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/term"

	"github.com/berthproject/berth/internal/fleet"
	"github.com/berthproject/berth/internal/registry"
)

const fleetStatusLong = `For each unit, runs "systemctl status -l --no-pager UNIT" on the machine the unit
is loaded on, as fleetctl status does: here when the machine is this host (its
node id: BERTH_NODE, else /etc/machine-id), else over ssh to the machine's
address (see the ssh flags of berth fleet). A unit that does not exist, is
global or is not loaded on a machine is refused (exit status 1) before any
runs. A blank line separates the units; the first non-zero exit status of
systemctl (3: not running) stops there and is berth's.`

const fleetJournalLong = `Runs "journalctl --unit UNIT --no-pager -n LINES" on the machine the unit is
loaded on, as fleetctl journal does: here or over ssh, as berth fleet status.
--follow keeps printing new entries until interrupted (with a terminal on the
remote side when stdin is one). journalctl's exit status is berth's.`

// FleetJournalOptions are the flags of "berth fleet journal".
type FleetJournalOptions struct {
	Etcd   EtcdOptions
	Lines  int    // entries to show (default 10)
	Follow bool   // journalctl -f
	Sudo   bool   // run journalctl through sudo (a user outside systemd-journal)
	Output string // journalctl's output mode (default short)
}

// AddFlags registers the flags.
func (o *FleetJournalOptions) AddFlags(f *pflag.FlagSet) {
	o.Etcd.AddFlags(f)
	f.IntVarP(&o.Lines, "lines", "n", 10, "number of recent journal entries to show")
	f.BoolVarP(&o.Follow, "follow", "f", false, "keep printing new entries until interrupted")
	f.BoolVar(&o.Sudo, "sudo", false, "run journalctl through sudo (for a user that may not read the system journal)")
	f.StringVarP(&o.Output, "output", "o", "short", "journalctl's output mode: short, short-iso, short-precise, verbose, json, cat, ...")
}

func newFleetJournalCommand(g *GlobalOptions, ssh *SSHOptions) *cobra.Command {
	var opts FleetJournalOptions
	cmd := &cobra.Command{
		Use:   "journal UNIT",
		Short: "Print a unit's journal from its machine (journalctl, over ssh when elsewhere)",
		Long:  fleetJournalLong,
		RunE: func(c *cobra.Command, args []string) error {
			f, err := (&FleetOptions{Etcd: opts.Etcd, Output: "table"}).connect(g)
			if err != nil {
				return err
			}
			defer f.cli.Close()
			return f.journal(c.Context(), args, &opts, ssh)
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

// locating is what fleetctl says when a verb cannot run on a unit.
type locating struct{ global, inactive string }

var (
	statusMsgs  = locating{"Unable to determine status of global unit %s.", "Unit %s does not appear to be loaded."}
	journalMsgs = locating{"Unable to retrieve journal of global unit %s.", "Unit %s does not appear to be running."}
)

// locate finds the machine each unit is loaded on (as its agent reports
// it) and the machine's address, refusing, as fleetctl does, a unit that
// does not exist, a global one, or one not loaded anywhere.
func (f *fleetCtl) locate(ctx context.Context, units []string, msgs locating) ([]machineCmd, error) {
	v, err := f.view(ctx)
	if err != nil {
		return nil, err
	}
	rctx, cancel := f.ctx(ctx)
	defer cancel()
	resp, err := f.cli.Get(rctx, f.keys.NodesPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, f.o.Etcd.wrapErr(err)
	}
	addrs := map[string]string{}
	for _, m := range fleet.Machines(f.keys, resp.Kvs) {
		addrs[m.ID] = m.Addr
	}
	local := thisNode()
	var out []machineCmd
	for _, u := range units {
		j, ok := v.jobs[u]
		if !ok {
			return nil, exitStatus{exitFailure, fmt.Sprintf("Unit %s does not exist.", u)}
		}
		global, err := f.global(ctx, u, j, v.sched[u])
		if err != nil {
			return nil, err
		}
		if global {
			return nil, exitStatus{exitFailure, fmt.Sprintf(msgs.global, u)}
		}
		st := v.states[u]
		if currentState(v.states, u) == registry.TargetInactive || st.Machine == "" {
			return nil, exitStatus{exitFailure, fmt.Sprintf(msgs.inactive, u)}
		}
		addr := addrs[st.Machine]
		if addr == "" && st.Machine != local {
			return nil, fmt.Errorf("unit %s is on machine %s, which has no address (no nodes/%s record)", u, st.Machine, st.Machine)
		}
		out = append(out, machineCmd{Machine: st.Machine, Addr: addr})
	}
	return out, nil
}

// global says whether a unit is Global=true: by its unit file, or by its
// placement on several machines when the file cannot be read.
func (f *fleetCtl) global(ctx context.Context, unit string, j registry.FleetJob, p registry.FleetPlacement) (bool, error) {
	rctx, cancel := f.ctx(ctx)
	defer cancel()
	content, err := f.store.Content(rctx, j.Hash)
	if errors.Is(err, fleet.ErrNoUnit) {
		return len(p.Machines) > 0, nil
	}
	if err != nil {
		return false, f.o.Etcd.wrapErr(err)
	}
	n, _ := fleet.ParseName(unit)
	req, err := fleet.ParseRequirements(n, content)
	return req.Global || err != nil && len(p.Machines) > 0, nil
}

// status is fleetctl status: systemctl status of each unit on its
// machine, a blank line between units, stopping at the first failure.
func (f *fleetCtl) status(ctx context.Context, args []string, ssh *SSHOptions) error {
	units, err := names(args)
	if err != nil {
		return err
	}
	cmds, err := f.locate(ctx, units, statusMsgs)
	if err != nil {
		return err
	}
	local := thisNode()
	for i, c := range cmds {
		if i > 0 {
			fmt.Fprintln(f.g.stdout) // as systemctl status separates units
		}
		c.Argv = []string{"systemctl", "status", "-l", "--no-pager", units[i]}
		if err := runOn(ctx, c, ssh, local, f.g.stdout, f.g.stderr); err != nil {
			return err
		}
	}
	return nil
}

// journal is fleetctl journal: journalctl of one unit on its machine.
func (f *fleetCtl) journal(ctx context.Context, args []string, o *FleetJournalOptions, ssh *SSHOptions) error {
	if len(args) != 1 {
		return usagef("journal needs one UNIT, got %d", len(args))
	}
	units, err := names(args)
	if err != nil {
		return err
	}
	if len(units) != 1 {
		return usagef("journal needs one UNIT, %s names %d", args[0], len(units))
	}
	if o.Lines < 0 {
		return usagef("--lines must be 0 or more, got %d", o.Lines)
	}
	cmds, err := f.locate(ctx, units, journalMsgs)
	if err != nil {
		return err
	}
	c := cmds[0]
	c.Argv = journalArgv(units[0], o)
	c.TTY = o.Follow && term.IsTerminal(int(os.Stdin.Fd()))
	return runOn(ctx, c, ssh, thisNode(), f.g.stdout, f.g.stderr)
}

// journalArgv is fleetctl journal's command line.
func journalArgv(unit string, o *FleetJournalOptions) []string {
	argv := []string{"journalctl", "--unit", unit, "--no-pager", "-n", strconv.Itoa(o.Lines)}
	if o.Output != "" && o.Output != "short" {
		argv = append(argv, "--output", o.Output)
	}
	if o.Follow {
		argv = append(argv, "-f")
	}
	if o.Sudo {
		argv = slices.Insert(argv, 0, "sudo")
	}
	return argv
}
