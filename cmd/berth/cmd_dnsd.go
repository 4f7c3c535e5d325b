package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/berthproject/berth/dnsd"
	"github.com/berthproject/berth/internal/daemon"
	"github.com/berthproject/berth/internal/registry"
)

// DNSOptions are the flags of "berth dnsd".
type DNSOptions struct {
	Etcd         EtcdOptions
	Listen       string
	Admin        string
	Zone         string
	TTL          time.Duration
	NegativeTTL  time.Duration
	MaxAnswers   int
	StaleAfter   time.Duration
	Forward      []string
	ForwardAllow []string
	Reverse      bool
}

// AddFlags registers the flags.
func (o *DNSOptions) AddFlags(f *pflag.FlagSet) {
	o.Etcd.AddFlags(f)
	f.StringVar(&o.Listen, "listen", envOr("BERTH_DNSD_LISTEN", ":53"), "UDP and TCP address, unless systemd passes sockets (env BERTH_DNSD_LISTEN)")
	f.StringVar(&o.Admin, "admin", envOr("BERTH_DNSD_ADMIN", "127.0.0.1:9053"), "admin address: /healthz /readyz /metrics (local by default; empty disables)")
	f.StringVar(&o.Zone, "zone", envOr("BERTH_DNSD_ZONE", "berth."), "zone served (env BERTH_DNSD_ZONE)")
	f.DurationVar(&o.TTL, "ttl", 5*time.Second, "TTL of answers")
	f.DurationVar(&o.NegativeTTL, "negative-ttl", 5*time.Second, "TTL of NXDOMAIN and NODATA (SOA minimum)")
	f.IntVar(&o.MaxAnswers, "max-answers", 0, "most A/AAAA/SRV records per answer (0: all that fit)")
	f.DurationVar(&o.StaleAfter, "stale-after", 60*time.Second, "answer SERVFAIL once the view has been out of touch with etcd this long")
	f.StringSliceVar(&o.Forward, "forward", nil, "upstream resolvers for other zones (none: REFUSED)")
	f.StringSliceVar(&o.ForwardAllow, "forward-allow", nil, "client networks allowed to use --forward (default loopback only)")
	f.BoolVar(&o.Reverse, "reverse", false, "answer PTR queries for instance addresses")
}

func (o *DNSOptions) config() (dnsd.Config, error) {
	cfg := dnsd.Config{Zone: o.Zone, TTL: o.TTL, NegativeTTL: o.NegativeTTL, MaxAnswers: o.MaxAnswers,
		StaleAfter: o.StaleAfter, Forward: o.Forward, Reverse: o.Reverse}
	for _, s := range o.ForwardAllow {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return cfg, usagef("--forward-allow: %q is not a network like 10.0.0.0/8", s)
		}
		cfg.ForwardAllow = append(cfg.ForwardAllow, p)
	}
	return cfg, nil
}

func newDNSDCommand(g *GlobalOptions) *cobra.Command {
	var opts DNSOptions
	cmd := &cobra.Command{
		Use:   "dnsd",
		Short: "Run the DNS server for service names (A, AAAA, SRV) fed by etcd",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runDNSD(cmd.Context(), g, opts)
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

func runDNSD(ctx context.Context, g *GlobalOptions, o DNSOptions) error {
	log, err := g.Logger()
	if err != nil {
		return err
	}
	cfg, err := o.config()
	if err != nil {
		return err
	}
	fl, err := o.Etcd.follow(log)
	if err != nil {
		return err
	}
	defer fl.Close()
	cache, reg := fl.cache, fl.metrics
	s, err := dnsd.New(cfg, cache, log)
	if err != nil {
		return usagef("%v", err)
	}
	ls, err := dnsListeners(o.Listen)
	if err != nil {
		return err
	}
	reg.MustRegister(s.Collectors()...)

	bg, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { stop(); wg.Wait() }()
	for _, f := range []func(context.Context) error{cache.Run, s.Run} {
		wg.Add(1)
		go func() { defer wg.Done(); f(bg) }()
	}
	if _, err := daemon.ServeAdmin(bg, o.Admin, daemon.HealthMux(reg, s.Ready), log); err != nil {
		return err
	}
	for !s.Ready() {
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(20 * time.Millisecond):
		}
	}
	wg.Add(1)
	go func() { defer wg.Done(); daemon.Watchdog(bg, s.Ready) }()
	err = s.Serve(ctx, ls, func() {
		log.WithFields(logrus.Fields{"zone": s.Zone(), "listen": o.Listen}).Info("dnsd answering")
		daemon.Ready(log)
	})
	daemon.Stopping()
	return err
}

// dnsListeners takes systemd's sockets (ListenDatagram/ListenStream) when
// socket-activated, else opens addr.
func dnsListeners(addr string) (*dnsd.Listeners, error) {
	s, err := daemon.Activated()
	if err != nil {
		return nil, err
	}
	var ls dnsd.Listeners
	for _, l := range s.Streams {
		ls.TCP = append(ls.TCP, l...)
	}
	for _, pc := range s.Packets {
		ls.UDP = append(ls.UDP, pc...)
	}
	if len(ls.UDP) > 0 || len(ls.TCP) > 0 {
		return &ls, nil
	}
	return dnsd.Listen(addr)
}

// DNSListOptions are the flags of "berth dns".
type DNSListOptions struct {
	ViewOptions
	Zone string
}

func newDNSCommand(g *GlobalOptions) *cobra.Command {
	var opts DNSListOptions
	cmd := &cobra.Command{
		Use:   "dns",
		Short: "List the DNS names dnsd serves, with their answers",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runView(cmd.Context(), g, opts.ViewOptions, func(w io.Writer, s *registry.Snapshot, asJSON bool) error {
				return printDNS(w, s, opts.Zone, asJSON)
			})
		},
	}
	opts.AddFlags(cmd.Flags())
	cmd.Flags().StringVar(&opts.Zone, "zone", envOr("BERTH_DNSD_ZONE", "berth."), "zone")
	return cmd
}

func printDNS(w io.Writer, snap *registry.Snapshot, zone string, asJSON bool) error {
	log := logrus.New()
	s, err := dnsd.New(dnsd.Config{Zone: zone}, nil, log)
	if err != nil {
		return usagef("%v", err)
	}
	records := s.Records(snap)
	if asJSON {
		return json.NewEncoder(w).Encode(records)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tTYPE\tANSWER")
	for _, r := range records {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", r.Name, r.Type, r.Value)
	}
	return tw.Flush()
}
