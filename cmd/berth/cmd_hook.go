package main

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/agent"
	"github.com/berthproject/berth/internal/hook"
	"github.com/berthproject/berth/internal/registry"
)

// HookOptions are the flags shared by the hook commands.
type HookOptions struct {
	Etcd     EtcdOptions
	App      string        // app name (required)
	Instance string        // instance, systemd's %i (required)
	EnvFile  string        // exec runtime: file of allocated ports
	Timeout  time.Duration // bound on the whole hook
	Agent    string        // the node agent's socket
}

// AddFlags registers the flags.
func (o *HookOptions) AddFlags(f *pflag.FlagSet) { o.addFlags(f, 30*time.Second) }

// addFlags registers the flags with the hook's own default --timeout.
func (o *HookOptions) addFlags(f *pflag.FlagSet, timeout time.Duration) {
	o.Etcd.AddFlags(f)
	f.StringVar(&o.App, "app", "", "app name (required)")
	f.StringVar(&o.Instance, "instance", "", "instance name, systemd's %i (required)")
	f.StringVar(&o.EnvFile, "env-file", "", "environment file with the instance's allocated ports (exec runtime)")
	f.DurationVar(&o.Timeout, "timeout", timeout, "give up after this long; the hook never hangs a unit")
	f.StringVar(&o.Agent, "agent-socket", envOr("BERTH_AGENT_SOCKET", "/run/berth/agent.sock"), "the node agent's socket; without an agent there, post-start starts its own keeper")
}

func (o *HookOptions) check() error {
	if o.App == "" || o.Instance == "" {
		return usagef("--app and --instance are required")
	}
	return nil
}

// PostStartOptions are the extra flags of "berth hook post-start".
type PostStartOptions struct {
	HookOptions
	Runtime       string
	Version       string
	Port          string
	PortName      string
	HostPort      int
	NamedPorts    []string
	Tags          []string
	Health        string
	HealthTimeout time.Duration
	HealthEvery   time.Duration
	AdvertiseIP   string
	Node          string
	TTL           time.Duration
	Docker        string
	Podman        string
	SkyDNSZone    string
	Addr          string
}

// AddFlags registers the flags.
func (o *PostStartOptions) AddFlags(f *pflag.FlagSet) {
	o.HookOptions.AddFlags(f)
	f.StringVar(&o.Runtime, "runtime", "docker", "docker, podman or exec")
	f.StringVar(&o.Version, "version", "", "app version to record")
	f.StringVar(&o.Port, "port", "", "the app's first port as PORT/PROTO (container side)")
	f.StringVar(&o.PortName, "port-name", "", "name of the first port (SRV); with it the record lists every port by name")
	f.IntVar(&o.HostPort, "host-port", 0, "fixed published host port, if any")
	f.StringArrayVar(&o.NamedPorts, "named-port", nil, "a further port to register: name=NAME,port=PORT/PROTO[,host=HOSTPORT][,tag=TAG]... (repeatable)")
	f.StringSliceVar(&o.Tags, "tags", nil, "registry tags")
	f.StringVar(&o.Health, "health", "", "health check: http:/path or tcp (none if empty)")
	f.DurationVar(&o.HealthTimeout, "health-timeout", 60*time.Second, "how long the instance may take to become healthy")
	f.DurationVar(&o.HealthEvery, "health-interval", 5*time.Second, "how often the node agent probes the instance afterwards")
	f.StringVar(&o.AdvertiseIP, "advertise-ip", os.Getenv("BERTH_ADVERTISE_IP"), "IP routers and DNS clients reach this node on (env BERTH_ADVERTISE_IP; default: first interface address)")
	f.StringVar(&o.Node, "node", os.Getenv("BERTH_NODE"), "node id (env BERTH_NODE; default /etc/machine-id)")
	f.DurationVar(&o.TTL, "ttl", 10*time.Second, "lease TTL of the instance record: how long a crashed instance stays routed")
	f.StringVar(&o.Docker, "docker", "/usr/bin/docker", "docker CLI")
	f.StringVar(&o.Podman, "podman", "/usr/bin/podman", "podman CLI")
	f.StringVar(&o.Addr, "addr", "", "the instance's address as HOST:PORT (default: found from the host port, the allocated port or docker port)")
	f.StringVar(&o.SkyDNSZone, "skydns-zone", os.Getenv("BERTH_SKYDNS_ZONE"), "also mirror the instance under /skydns for CoreDNS's etcd plugin, in this zone (env BERTH_SKYDNS_ZONE; off if empty)")
}

func newHookCommand(g *GlobalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "hook",
		Short: "Hooks called by the generated units (ExecStartPre/Post, ExecStop, ExecStopPost)",
	}
	cmd.AddCommand(newPreStartCommand(g), newPostStartCommand(g), newDrainCommand(g), newPostStopCommand(g), newKeeperCommand(g),
		newHookExecCommand(g))
	return cmd
}

// withHooks connects to etcd and runs f with a bounded context.
func withHooks(ctx context.Context, g *GlobalOptions, o *HookOptions, timeout time.Duration, f func(context.Context, *hook.Hooks, *clientv3.Client) error) error {
	if err := o.check(); err != nil {
		return err
	}
	log, err := g.Logger()
	if err != nil {
		return err
	}
	cli, k, err := o.Etcd.connect()
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	h := &hook.Hooks{KV: cli, Keys: k, Log: log.WithFields(map[string]any{"component": "hook", "app": o.App, "instance": o.Instance})}
	if err := f(ctx, h, cli); err != nil {
		if errors.Is(err, context.DeadlineExceeded) {
			return fmt.Errorf("%s@%s: %w", o.App, o.Instance, o.Etcd.wrapErr(err))
		}
		return fmt.Errorf("%s@%s: %w", o.App, o.Instance, err)
	}
	return nil
}

func newPreStartCommand(g *GlobalOptions) *cobra.Command {
	var opts HookOptions
	var sopts SecretHookOptions
	var alloc []string
	cmd := &cobra.Command{
		Use:   "pre-start --app A --instance I",
		Short: "Mark the app starting, clear a stale record, allocate ports (exec runtime), write the instance's secrets",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(alloc) > 0 && opts.EnvFile == "" {
				return usagef("--alloc needs --env-file")
			}
			return withHooks(cmd.Context(), g, &opts, opts.Timeout, func(ctx context.Context, h *hook.Hooks, cli *clientv3.Client) error {
				if err := sopts.write(ctx, cli, h.Keys, opts.App, h.Log); err != nil {
					return err
				}
				if len(alloc) > 0 {
					if _, err := hook.AllocPorts(opts.EnvFile, alloc); err != nil {
						return err
					}
				}
				return h.PreStart(ctx, &hook.Instance{App: opts.App, ID: opts.Instance})
			})
		},
	}
	opts.AddFlags(cmd.Flags())
	sopts.AddFlags(cmd.Flags())
	cmd.Flags().StringArrayVar(&alloc, "alloc", nil, "allocate a free port into --env-file under these comma-separated names (repeatable)")
	return cmd
}

func newPostStartCommand(g *GlobalOptions) *cobra.Command {
	var opts PostStartOptions
	cmd := &cobra.Command{
		Use:   "post-start --app A --instance I [--port P/tcp] [--health http:/path]",
		Short: "Wait for the instance to be healthy, then register it in etcd on a lease",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runPostStart(cmd.Context(), g, opts)
		},
	}
	opts.AddFlags(cmd.Flags())
	return cmd
}

func runPostStart(ctx context.Context, g *GlobalOptions, o PostStartOptions) error {
	if o.AdvertiseIP == "" {
		o.AdvertiseIP = hook.DetectIP()
	}
	if o.Node == "" {
		o.Node = hook.NodeID()
	}
	cli := o.Docker
	if o.Runtime == "podman" {
		cli = o.Podman
	}
	in := &hook.Instance{App: o.App, ID: o.Instance, Node: o.Node, Version: o.Version, Tags: o.Tags, Runtime: o.Runtime,
		Port: o.Port, PortName: o.PortName, HostPort: o.HostPort, EnvFile: o.EnvFile, IP: o.AdvertiseIP, CLI: cli}
	for _, s := range o.NamedPorts {
		p, err := hook.ParsePort(s)
		if err != nil {
			return usagef("--named-port: %v", err)
		}
		in.Ports = append(in.Ports, p)
	}
	return withHooks(ctx, g, &o.HookOptions, o.HealthTimeout+o.Timeout, func(ctx context.Context, h *hook.Hooks, _ *clientv3.Client) error {
		addr := o.Addr
		if addr == "" {
			var err error
			if addr, err = h.Address(ctx, in); err != nil {
				return err
			}
		}
		hctx, cancel := context.WithTimeout(ctx, o.HealthTimeout)
		defer cancel()
		if err := hook.Check(o.Health).WaitHealthy(hctx, addr, 250*time.Millisecond); err != nil {
			return err
		}
		others, err := h.OtherPorts(ctx, in)
		if err != nil {
			return err
		}
		record := in.Record(addr, others)
		if ag := (agent.Client{Socket: o.Agent}); ag.Available() {
			ann := agent.Announcement{App: o.App, ID: o.Instance, Record: *record, Health: o.Health, Interval: o.HealthEvery.String(),
				SkyDNSZone: o.SkyDNSZone}
			if err := ag.Announce(ctx, ann); err != nil {
				return err
			}
		} else {
			rec, err := json.Marshal(record)
			if err != nil {
				return err
			}
			if err := spawnKeeper(ctx, o, string(rec)); err != nil {
				return err
			}
		}
		h.Log.WithField("addr", addr).Info("instance registered")
		return h.MarkStarted(ctx, o.App)
	})
}

// spawnKeeper starts "berth hook keeper" in its own session (it stays in
// the unit's cgroup, so systemd stops it with the unit) and waits until it
// reports that the record is written.
func spawnKeeper(ctx context.Context, o PostStartOptions, record string) error {
	self, err := os.Executable()
	if err != nil {
		return err
	}
	args := append([]string{"hook", "keeper", "--app", o.App, "--instance", o.Instance, "--record", record,
		"--ttl", o.TTL.String(), "--skydns-zone", o.SkyDNSZone, "--etcd-prefix", o.Etcd.Prefix, "--etcd-endpoints", strings.Join(o.Etcd.Endpoints, ",")},
		tlsArgs(o.Etcd)...)
	cmd := exec.Command(self, args...)
	cmd.Env = append(os.Environ(), "BERTH_ETCD_PASSWORD="+o.Etcd.Password)
	cmd.Stderr = os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start keeper: %w", err)
	}
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(out).ReadString('\n')
		if err == nil && strings.TrimSpace(line) == "ready" {
			ready <- nil
			return
		}
		ready <- fmt.Errorf("keeper exited before registering the instance (%v)", cmd.Wait())
	}()
	select {
	case err := <-ready:
		if err == nil {
			cmd.Process.Release()
		}
		return err
	case <-ctx.Done():
		cmd.Process.Kill()
		return fmt.Errorf("keeper: %w", ctx.Err())
	}
}

func tlsArgs(o EtcdOptions) []string {
	var args []string
	for flag, v := range map[string]string{"--etcd-cacert": o.CACert, "--etcd-cert": o.Cert, "--etcd-key": o.Key, "--etcd-user": o.User} {
		if v != "" {
			args = append(args, flag, v)
		}
	}
	return args
}

func newKeeperCommand(g *GlobalOptions) *cobra.Command {
	var opts HookOptions
	var record, skydnsZone string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:    "keeper",
		Short:  "Keep an instance record alive on a lease (started by post-start)",
		Hidden: true,
		Args:   noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var rec registry.Instance
			if err := json.Unmarshal([]byte(record), &rec); err != nil {
				return usagef("--record: %v", err)
			}
			rec.App, rec.ID = opts.App, opts.Instance
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP)
			defer stop()
			// No overall timeout: the keeper lives as long as the instance.
			return withHooks(ctx, g, &opts, 1<<62, func(ctx context.Context, h *hook.Hooks, cli *clientv3.Client) error {
				return h.Keep(ctx, cli, &rec, ttl, skydnsZone, func() { fmt.Fprintln(g.stdout, "ready") })
			})
		},
	}
	opts.AddFlags(cmd.Flags())
	cmd.Flags().StringVar(&record, "record", "", "instance record (JSON)")
	cmd.Flags().DurationVar(&ttl, "ttl", 10*time.Second, "lease TTL")
	cmd.Flags().StringVar(&skydnsZone, "skydns-zone", "", "mirror zone under /skydns (off if empty)")
	return cmd
}

func newDrainCommand(g *GlobalOptions) *cobra.Command {
	var opts HookOptions
	cmd := &cobra.Command{
		Use:   "drain --app A --instance I",
		Short: "Mark the instance draining so routers stop sending it new requests",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return withHooks(cmd.Context(), g, &opts, opts.Timeout, func(ctx context.Context, h *hook.Hooks, _ *clientv3.Client) error {
				if ag := (agent.Client{Socket: opts.Agent}); ag.Available() {
					return ag.Drain(ctx, opts.App, opts.Instance)
				}
				return h.Drain(ctx, opts.App, opts.Instance, thisNode())
			})
		},
	}
	// Draining is best effort and spends the unit's stop timeout: with
	// etcd out of reach (a node shutting down), the app keeps most of it.
	opts.addFlags(cmd.Flags(), 3*time.Second)
	return cmd
}

func newPostStopCommand(g *GlobalOptions) *cobra.Command {
	var opts HookOptions
	var secretsDir string
	cmd := &cobra.Command{
		Use:   "post-stop --app A --instance I",
		Short: "Remove the instance record at once, and its secrets",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			removeSecrets(g, secretsDir)
			return withHooks(cmd.Context(), g, &opts, opts.Timeout, func(ctx context.Context, h *hook.Hooks, _ *clientv3.Client) error {
				if opts.EnvFile != "" {
					os.Remove(opts.EnvFile)
				}
				if ag := (agent.Client{Socket: opts.Agent}); ag.Available() {
					if err := ag.Withdraw(ctx, opts.App, opts.Instance); err != nil {
						h.Log.WithError(err).Warn("agent withdraw; deleting the record directly")
					}
				}
				return h.PostStop(ctx, opts.App, opts.Instance, thisNode())
			})
		},
	}
	opts.AddFlags(cmd.Flags())
	cmd.Flags().StringVar(&secretsDir, "secrets-dir", "", "the instance's secrets directory, removed first")
	return cmd
}

// thisNode is this node's id as post-start records it by default
// (BERTH_NODE, else the machine id): drain and post-stop touch only
// records of this node.
func thisNode() string { return cmp.Or(os.Getenv("BERTH_NODE"), hook.NodeID()) }
