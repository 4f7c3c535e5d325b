package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/view"
)

// ViewOptions are the flags of the operator views (status, routes).
type ViewOptions struct {
	Etcd   EtcdOptions
	Output string // table (default) or json
}

// AddFlags registers the flags.
func (o *ViewOptions) AddFlags(f *pflag.FlagSet) {
	o.Etcd.AddFlags(f)
	f.StringVarP(&o.Output, "output", "o", "table", "output format: table or json")
}

func newStatusCommand(g *GlobalOptions) *cobra.Command {
	var opts ViewOptions
	var api APIClientOptions
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show apps, their state, live instances and last access",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if api.URL != "" {
				return viaAPI(cmd.Context(), g, api, opts.Output, "/v1/status", printStatusRows)
			}
			return runView(cmd.Context(), g, opts, printStatus)
		},
	}
	opts.AddFlags(cmd.Flags())
	api.AddFlags(cmd.Flags())
	return cmd
}

func newRoutesCommand(g *GlobalOptions) *cobra.Command {
	var opts ViewOptions
	var api APIClientOptions
	cmd := &cobra.Command{
		Use:   "routes",
		Short: "Show the routing table: domains, apps and live backends",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if api.URL != "" {
				return viaAPI(cmd.Context(), g, api, opts.Output, "/v1/routes", printRouteRows)
			}
			return runView(cmd.Context(), g, opts, printRoutes)
		},
	}
	opts.AddFlags(cmd.Flags())
	api.AddFlags(cmd.Flags())
	return cmd
}

type printer func(w io.Writer, s *registry.Snapshot, asJSON bool) error

// runView loads one snapshot of the registry and prints it.
func runView(ctx context.Context, g *GlobalOptions, opts ViewOptions, print printer) error {
	if opts.Output != "table" && opts.Output != "json" {
		return usagef("--output must be table or json, got %q", opts.Output)
	}
	cli, k, err := opts.Etcd.Connect()
	if err != nil {
		return err
	}
	defer cli.Close()
	log := logrus.New()
	log.SetOutput(io.Discard)
	cache := registry.NewCache(cli, cli, registry.CacheConfig{Keys: k, RequestTimeout: opts.Etcd.RequestTimeout}, log)
	s, err := cache.Load(ctx)
	if err != nil {
		return opts.Etcd.wrapErr(err)
	}
	return print(g.stdout, s, opts.Output == "json")
}

// statusRow is a row of "berth status -o json".
type statusRow = view.StatusRow

func printStatus(w io.Writer, s *registry.Snapshot, asJSON bool) error {
	return printStatusRows(w, view.Status(s), asJSON)
}

func printStatusRows(w io.Writer, rows []view.StatusRow, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(rows)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "APP\tSTATUS\tEXPECTED\tUP/WANTED\tLAST ACCESS\tCONNS")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%s\t%d\n", r.App, r.Current, dash(r.Expected), r.Up, r.Wanted, dash(r.LastAccess), r.Conns)
	}
	return tw.Flush()
}

func printRoutes(w io.Writer, s *registry.Snapshot, asJSON bool) error {
	return printRouteRows(w, view.Routes(s), asJSON)
}

func printRouteRows(w io.Writer, rows []view.RouteRow, asJSON bool) error {
	if asJSON {
		return json.NewEncoder(w).Encode(rows)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tAPP\tUP\tBACKENDS")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Host, r.App, upColumn(r), dash(strings.Join(r.Backends, ",")))
	}
	return tw.Flush()
}

// up is the UP column: live of wanted, and what is on its way.
func upColumn(r view.RouteRow) string {
	switch {
	case r.Asleep && len(r.Backends) == 0:
		return "asleep (the next request wakes it)"
	case r.Asleep:
		return fmt.Sprintf("%d (going to sleep)", len(r.Backends))
	case r.Starting > 0:
		return fmt.Sprintf("%d/%d (%d starting)", len(r.Backends), r.Wanted, r.Starting)
	}
	return fmt.Sprintf("%d/%d", len(r.Backends), r.Wanted)
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
