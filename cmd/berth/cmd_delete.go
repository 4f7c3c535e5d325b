package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/berthproject/berth/internal/control"
	"github.com/berthproject/berth/internal/fleet"
	"github.com/berthproject/berth/internal/registry"
)

// DeleteOptions are the flags of "berth delete".
type DeleteOptions struct {
	Etcd           EtcdOptions
	Driver         string
	Fleetctl       FleetctlOptions
	DBusAddress    string
	Node           string
	Wait           time.Duration
	SkyDNSZone     string
	IgnoreNotFound bool
	Output         string
}

// AddFlags registers the flags.
func (o *DeleteOptions) AddFlags(f *pflag.FlagSet) {
	o.Etcd.AddFlags(f)
	f.StringVar(&o.Driver, "driver", envOr("BERTH_DRIVER", "systemd"), "how the app's units are removed: systemd (stop and unlink <app>@*.service on this node over D-Bus), fleet (fleetctl destroy), berth (destroy berth fleet's jobs of the app) or local (berth up stops the processes once the spec is gone) (env BERTH_DRIVER)")
	o.Fleetctl.AddFlags(f)
	f.StringVar(&o.DBusAddress, "dbus-address", "", "systemd's bus address for --driver systemd (default: the system bus)")
	f.StringVar(&o.Node, "node", os.Getenv("BERTH_NODE"), "this node's id for --driver systemd: the instances it waits for (env BERTH_NODE; default /etc/machine-id)")
	f.DurationVar(&o.Wait, "wait", time.Minute, "how long to wait for the app's instances to deregister once its units are stopped")
	f.StringVar(&o.SkyDNSZone, "skydns-zone", os.Getenv("BERTH_SKYDNS_ZONE"), "also delete the app's SkyDNS mirror records in this zone (env BERTH_SKYDNS_ZONE)")
	f.BoolVar(&o.IgnoreNotFound, "ignore-not-found", false, "an app without any record is no error")
	f.StringVarP(&o.Output, "output", "o", "text", "output: text or json")
}

func newDeleteCommand(g *GlobalOptions) *cobra.Command {
	var opts DeleteOptions
	cmd := &cobra.Command{
		Use:   "delete APP...",
		Short: "Delete apps: stop and remove their units, then every record (routes answer 404, DNS NXDOMAIN)",
		Long: `Delete removes an app for good, in an order that lets nothing bring it back:

 1. one etcd transaction deletes the spec and the app's domains and marks its
    status expected "deleted": routers stop serving its domains, and nothing
    starts, wakes or passivates it any more;
 2. the driver stops and removes its units (--driver);
 3. berth waits until its instances have deregistered (--wait);
 4. one transaction deletes its status, instance and access records (and the
    SkyDNS mirror with --skydns-zone): routers answer the unknown-host 404 page
    for it, dnsd NXDOMAIN.

There is no prompt: what was removed is printed. An app without any record is
"not found" (exit status 1; --ignore-not-found makes it no error). A delete
that fails after step 1 leaves the app marked deleted; running it again
resumes. With --driver systemd only this node's units are reached: on several
nodes, run it on each; the last run removes the records.`,
		Example: "  berth delete paas-monitor --driver local       # berth up\n" +
			"  berth delete shop --driver berth                # units placed by berth fleet\n" +
			"  berth delete shop --driver fleet --fleet-tunnel 203.0.113.10",
		RunE: func(cmd *cobra.Command, args []string) error {
			return runDelete(cmd.Context(), g, opts, args)
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

func runDelete(ctx context.Context, g *GlobalOptions, o DeleteOptions, apps []string) error {
	if len(apps) == 0 {
		return usagef("delete needs at least one APP")
	}
	if o.Output != "text" && o.Output != "json" {
		return usagef("-o must be text or json, got %q", o.Output)
	}
	k, err := o.Etcd.Keys()
	if err != nil {
		return err
	}
	for _, a := range apps {
		if _, err := k.App(a); err != nil {
			return usagef("%v", err)
		}
	}
	log, err := g.Logger()
	if err != nil {
		return err
	}
	d := &control.Deleter{Keys: k, Wait: o.Wait, RequestTimeout: o.Etcd.RequestTimeout, SkyDNSZone: o.SkyDNSZone, Log: log}
	switch o.Driver {
	case "systemd":
		conn, err := control.DialSystemd(ctx, o.DBusAddress)
		if err != nil {
			return fmt.Errorf("--driver systemd: connect to systemd: %w", err)
		}
		defer conn.Close()
		d.Remover, d.Node = &control.Systemd{Conn: conn}, o.Node
		if d.Node == "" {
			d.Node = thisNode()
		}
	case "fleet":
		d.Remover = o.Fleetctl.Driver()
	case "berth":
		// Set below, on the etcd client.
	case "local":
		d.Remover = control.RemoverFunc(func(context.Context, string, []string) ([]string, error) {
			return []string{"berth up stops the processes (it follows the spec)"}, nil
		})
	default:
		return usagef("--driver must be systemd, fleet, berth or local, got %q", o.Driver)
	}
	cli, _, err := o.Etcd.Connect()
	if err != nil {
		return err
	}
	defer cli.Close()
	d.KV = cli
	if o.Driver == "berth" {
		d.Remover = berthRemover(&fleet.Store{KV: cli, Keys: k})
	}
	var done []*control.Deleted
	var errs []error
	for _, app := range apps {
		r, err := d.Delete(ctx, app)
		switch {
		case errors.Is(err, registry.ErrNotFound):
			if o.IgnoreNotFound {
				if o.Output == "text" {
					fmt.Fprintf(g.stdout, "%s: not found\n", app)
				}
				continue
			}
			errs = append(errs, fmt.Errorf("app %s not found: no spec, status, domain or instance in etcd", app))
			continue
		case errors.Is(err, context.DeadlineExceeded) && r == nil:
			err = o.Etcd.wrapErr(err)
		}
		if r != nil {
			done = append(done, r)
			if o.Output == "text" {
				printDeleted(g.stdout, r, err == nil)
			}
		}
		if err != nil {
			errs = append(errs, err)
		}
	}
	if o.Output == "json" {
		if done == nil {
			done = []*control.Deleted{}
		}
		if err := json.NewEncoder(g.stdout).Encode(done); err != nil {
			return err
		}
	}
	return errors.Join(errs...)
}

// printDeleted tells what a delete removed, step by step.
func printDeleted(w io.Writer, r *control.Deleted, complete bool) {
	var removed []string
	if r.Spec {
		removed = append(removed, "spec")
	}
	for _, d := range r.Domains {
		removed = append(removed, "domain "+d)
	}
	what := "nothing (an earlier delete did)"
	if len(removed) > 0 {
		what = strings.Join(removed, ", ")
	}
	fmt.Fprintf(w, "%s: marked deleted; removed %s\n", r.App, what)
	for _, u := range r.Units {
		fmt.Fprintf(w, "  %s\n", u)
	}
	if r.Waited != "" {
		fmt.Fprintf(w, "  waited %s for the instances to deregister\n", r.Waited)
	}
	if p := r.Purged; p != nil {
		line := fmt.Sprintf("  removed %d instance record(s), %d access record(s)", p.Instances, p.Access)
		if p.Status {
			line = "  removed status, " + strings.TrimPrefix(line, "  removed ")
		}
		if p.SkyDNSKey != "" {
			line += fmt.Sprintf(", %d SkyDNS record(s) under %s", p.SkyDNS, p.SkyDNSKey)
		}
		fmt.Fprintln(w, line)
	}
	if complete {
		fmt.Fprintf(w, "deleted %s\n", r.App)
	}
}

// berthRemover removes an app's units by destroying berth fleet's jobs of
// the app (berth delete --driver berth, berth api --driver berth).
func berthRemover(store *fleet.Store) control.Remover {
	return control.RemoverFunc(func(ctx context.Context, app string, _ []string) ([]string, error) {
		names, err := store.DestroyApp(ctx, app)
		for i, n := range names {
			names[i] = "destroyed " + n
		}
		return names, err
	})
}
