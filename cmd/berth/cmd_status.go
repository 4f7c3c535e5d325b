package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/berthproject/berth/internal/registry"
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
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show apps, their state, live instances and last access",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runView(cmd.Context(), g, opts, printStatus)
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

func newRoutesCommand(g *GlobalOptions) *cobra.Command {
	var opts ViewOptions
	cmd := &cobra.Command{
		Use:   "routes",
		Short: "Show the routing table: domains, apps and live backends",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runView(cmd.Context(), g, opts, printRoutes)
		},
	}
	opts.AddFlags(cmd.Flags())
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

type statusRow struct {
	App       string `json:"app"`
	Current   string `json:"current"`
	Expected  string `json:"expected,omitempty"`
	Up        int    `json:"up"`
	Instances int    `json:"instances"` // registered, live or not
	// Wanted is the number of instances the deployed spec asks for (0 while
	// passivated; the registered count when no spec is deployed).
	Wanted     int      `json:"wanted"`
	LastAccess string   `json:"lastAccess,omitempty"`
	Conns      int      `json:"conns"`
	Domains    []string `json:"domains,omitempty"`
}

func printStatus(w io.Writer, s *registry.Snapshot, asJSON bool) error {
	rows := []statusRow{}
	for _, app := range s.AppNames() {
		r := statusRow{App: app, Current: "-", Up: len(s.Live(app)), Instances: len(s.Instances[app])}
		r.Wanted = r.Instances
		if a := s.Apps[app]; a != nil {
			r.Wanted = a.Instances
		}
		if st := s.Status[app]; st != nil {
			r.Current, r.Expected = st.Current, st.Expected
			if st.Expected == registry.StatusPassivated {
				r.Wanted = 0
			}
		}
		if last, conns := s.LastAccess(app); last > 0 {
			r.LastAccess = time.UnixMilli(last).UTC().Format(time.RFC3339)
			r.Conns = conns
		}
		for d, a := range s.Domains {
			if a == app {
				r.Domains = append(r.Domains, d)
			}
		}
		rows = append(rows, r)
	}
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

type routeRow struct {
	Host     string   `json:"host"`
	App      string   `json:"app"`
	Backends []string `json:"backends"`
	// Wanted is the number of instances the app's spec asks for (0 while
	// passivated); Starting is how many of them are not live yet (a scale
	// or a wake in progress).
	Wanted   int  `json:"wanted"`
	Starting int  `json:"starting"`
	Asleep   bool `json:"asleep,omitempty"` // passivated: the next request wakes it
}

func printRoutes(w io.Writer, s *registry.Snapshot, asJSON bool) error {
	rows := []routeRow{}
	for _, host := range sortedHosts(s) {
		app := s.Domains[host]
		r := routeRow{Host: host, App: app, Backends: []string{}}
		for _, in := range s.Live(app) {
			r.Backends = append(r.Backends, in.Addr)
		}
		if a := s.Apps[app]; a != nil {
			r.Wanted = a.Instances
		}
		if st := s.Status[app]; st != nil && st.Expected == registry.StatusPassivated {
			r.Wanted, r.Asleep = 0, true
		}
		r.Starting = max(0, r.Wanted-len(r.Backends))
		rows = append(rows, r)
	}
	if asJSON {
		return json.NewEncoder(w).Encode(rows)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tAPP\tUP\tBACKENDS")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.Host, r.App, r.up(), dash(strings.Join(r.Backends, ",")))
	}
	return tw.Flush()
}

// up is the UP column: live of wanted, and what is on its way.
func (r routeRow) up() string {
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

func sortedHosts(s *registry.Snapshot) []string {
	hosts := make([]string, 0, len(s.Domains))
	for h := range s.Domains {
		hosts = append(hosts, h)
	}
	slices.Sort(hosts)
	return hosts
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
