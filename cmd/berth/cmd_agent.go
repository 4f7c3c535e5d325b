package main

import (
	"context"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/berthproject/berth/internal/agent"
	"github.com/berthproject/berth/internal/daemon"
	"github.com/berthproject/berth/internal/dockerapi"
	"github.com/berthproject/berth/internal/hook"
)

// AgentOptions are the flags of "berth agent".
type AgentOptions struct {
	Etcd         EtcdOptions
	Node         string
	AdvertiseIP  string
	Socket       string
	StateDir     string
	DockerSocket string
	Internal     bool
	Resync       time.Duration
	DBusAddress  string
	LeaseTTL     time.Duration
	Metadata     map[string]string
	Scheduler    bool
	FleetDir     string
	Deployer     string
}

// AddFlags registers the flags.
func (o *AgentOptions) AddFlags(f *pflag.FlagSet) {
	o.Etcd.AddFlags(f)
	f.StringVar(&o.Node, "node", os.Getenv("BERTH_NODE"), "node id (env BERTH_NODE; default /etc/machine-id)")
	f.StringVar(&o.AdvertiseIP, "advertise-ip", os.Getenv("BERTH_ADVERTISE_IP"), "this node's address for routers and DNS (env BERTH_ADVERTISE_IP; default: first interface address)")
	f.StringVar(&o.Socket, "socket", envOr("BERTH_AGENT_SOCKET", "/run/berth/agent.sock"), "unix socket the unit hooks announce instances on")
	f.StringVar(&o.StateDir, "state-dir", "/run/berth/agent", "where announced instances are kept across agent restarts")
	f.StringVar(&o.DockerSocket, "docker-socket", dockerapi.DefaultSocket, "Docker Engine socket for the registrar (empty disables it)")
	f.BoolVar(&o.Internal, "internal", false, "register containers' own addresses and ports instead of published ones")
	f.DurationVar(&o.Resync, "resync", 30*time.Second, "how often the registrar takes the engine's container list as the truth")
	f.StringVar(&o.DBusAddress, "dbus-address", "", "systemd's bus address (default: the system bus; none disables the systemd reconciler)")
	f.DurationVar(&o.LeaseTTL, "lease-ttl", 10*time.Second, "TTL of this node's lease: how long its instances outlive a dead agent")
	f.StringToStringVar(&o.Metadata, "metadata", envMap("BERTH_METADATA"), "this machine's metadata for [X-Fleet] MachineMetadata, e.g. role=worker,az=a (env BERTH_METADATA)")
	f.BoolVar(&o.Scheduler, "scheduler", os.Getenv("BERTH_SCHEDULER") == "true", "be a candidate for berth fleet's scheduler (one leads at a time; env BERTH_SCHEDULER=true)")
	f.StringVar(&o.FleetDir, "fleet-dir", "/run/berth/units", "where unit files berth fleet places on this machine are written")
	f.StringVar(&o.Deployer, "deployer", os.Getenv("BERTH_DEPLOYER"), "carry deploys out (one agent at a time): berth (through berth fleet; the default with --scheduler), systemd (on this node's systemd, a node without berth fleet) or none (env BERTH_DEPLOYER)")
}

// envMap parses "k=v,k2=v2" from an environment variable.
func envMap(name string) map[string]string {
	out := map[string]string{}
	for _, kv := range strings.Split(os.Getenv(name), ",") {
		if k, v, ok := strings.Cut(strings.TrimSpace(kv), "="); ok && k != "" {
			out[k] = v
		}
	}
	return out
}

func newAgentCommand(g *GlobalOptions) *cobra.Command {
	var opts AgentOptions
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run the node agent: instance registration, docker registrar, systemd reconciler",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runAgent(cmd.Context(), g, opts)
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

func runAgent(ctx context.Context, g *GlobalOptions, o AgentOptions) error {
	if err := agent.CheckDeployer(o.Deployer); err != nil {
		return usageError{err}
	}
	log, err := g.Logger()
	if err != nil {
		return err
	}
	if o.Node == "" {
		o.Node = hook.NodeID()
	}
	if o.AdvertiseIP == "" {
		o.AdvertiseIP = hook.DetectIP()
	}
	fl, err := o.Etcd.follow(log)
	if err != nil {
		return err
	}
	defer fl.Close()
	a := &agent.Agent{Cli: fl.cli, Keys: fl.keys, Log: log, Cache: fl.cache,
		Cfg: agent.Config{Node: o.Node, IP: o.AdvertiseIP, Socket: o.Socket, StateDir: o.StateDir, DockerSocket: o.DockerSocket,
			Internal: o.Internal, Resync: o.Resync, DBusAddress: o.DBusAddress, LeaseTTL: o.LeaseTTL,
			Metadata: o.Metadata, Scheduler: o.Scheduler, FleetDir: o.FleetDir, Deployer: o.Deployer}}
	go func() {
		select {
		case <-a.Ready():
			daemon.Ready(log)
			daemon.Watchdog(ctx, func() bool { return true })
		case <-ctx.Done():
		}
	}()
	err = a.Run(ctx)
	daemon.Stopping()
	return err
}
