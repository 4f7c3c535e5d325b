package agent

import (
	"context"
	"encoding/json"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/control"
	"github.com/berthproject/berth/internal/dockerapi"
	"github.com/berthproject/berth/internal/fleet"
	"github.com/berthproject/berth/internal/registry"
)

// Config configures an Agent. Zero values take the documented defaults.
type Config struct {
	Node         string        // node id (required)
	IP           string        // advertised address (required)
	Socket       string        // hooks' socket (default /run/berth/agent.sock)
	StateDir     string        // announcements kept here (default /run/berth/agent)
	DockerSocket string        // Docker Engine socket; "" disables the registrar
	Internal     bool          // register containers' own addresses
	Resync       time.Duration // docker resync (default 30s)
	DBusAddress  string        // systemd's bus; "none" disables the reconciler; "" the system bus
	LeaseTTL     time.Duration // node lease (default 10s)
	// Metadata is this machine's metadata for [X-Fleet] MachineMetadata.
	Metadata map[string]string
	// Scheduler makes this agent a candidate for berth fleet's scheduler.
	Scheduler bool
	// Deployer is how this agent, as a candidate for the cluster's
	// deployer, carries deploys out: "berth" (through berth fleet),
	// "systemd" (on this node's systemd, for a node without berth fleet)
	// or "none"; default berth with Scheduler, else none.
	Deployer string
	// FleetDir is where the fleet executor writes unit files placed here
	// (default /run/berth/units).
	FleetDir string
}

// Agent runs the parts of the node agent.
type Agent struct {
	Cfg   Config
	Cli   *clientv3.Client
	Keys  registry.Keys
	Cache *registry.Cache
	Log   logrus.FieldLogger

	Locals *Locals // set by Run; exposed for tests
	// executor is the current connection's fleet executor.
	executor atomic.Pointer[fleet.Executor]
	ready    chan struct{}
	once     sync.Once
}

// Ready is closed once the registry is synced and the socket listens.
func (a *Agent) Ready() <-chan struct{} {
	a.once.Do(func() { a.ready = make(chan struct{}) })
	return a.ready
}

// Run runs the agent until ctx ends. Missing parts (no Docker engine, no
// bus) are reported and retried, never fatal.
func (a *Agent) Run(ctx context.Context) error {
	a.Ready()
	cfg := a.Cfg
	if cfg.Socket == "" {
		cfg.Socket = "/run/berth/agent.sock"
	}
	if cfg.StateDir == "" {
		cfg.StateDir = "/run/berth/agent"
	}
	if cfg.LeaseTTL == 0 {
		cfg.LeaseTTL = 10 * time.Second
	}
	log := a.Log.WithFields(logrus.Fields{"component": "agent", "node": cfg.Node})
	owner := registry.NewLeaseOwner(a.Cli, a.Cli, cfg.LeaseTTL, log)
	nodeKey, err := a.Keys.Node(cfg.Node)
	if err != nil {
		return err
	}
	nodeVal, _ := json.Marshal(registry.Node{Addr: cfg.IP, Metadata: cfg.Metadata})
	if err := owner.Put(ctx, nodeKey, string(nodeVal)); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	run := func(f func(context.Context) error) {
		wg.Add(1)
		go func() { defer wg.Done(); f(ctx) }()
	}
	defer wg.Wait()
	run(owner.Run)
	run(a.Cache.Run)
	a.Locals = &Locals{Reg: owner, Keys: a.Keys, StateDir: cfg.StateDir, Log: log}
	run(a.Locals.Run)
	sockErr := make(chan error, 1)
	go func() { sockErr <- a.Locals.ServeSocket(ctx, cfg.Socket) }()
	if cfg.DockerSocket != "" {
		d := &Docker{API: dockerapi.New(cfg.DockerSocket), Reg: owner, Keys: a.Keys, Node: cfg.Node, IP: cfg.IP,
			Internal: cfg.Internal, Resync: cfg.Resync, Log: log.WithField("part", "docker")}
		run(func(ctx context.Context) error { return d.Run(ctx, a.Cache.Snapshot) })
	}
	if cfg.DBusAddress != "none" {
		leaving := func(ctx context.Context) {
			log.Info("machine shutting down: withdrawn from berth fleet's machines, its units are placed elsewhere")
			if err := owner.Delete(ctx, nodeKey); err != nil {
				log.WithError(err).Warn("withdraw the machine")
			}
		}
		run(func(ctx context.Context) error { return a.runSystemd(ctx, cfg, owner, leaving, log) })
	}
	if cfg.Scheduler {
		s := &fleet.Scheduler{Client: a.Cli, Keys: a.Keys, ID: cfg.Node, Log: log.WithField("part", "scheduler")}
		run(s.Run)
	}
	if d := cfg.deployer(); d != "none" {
		run(func(ctx context.Context) error { return a.runDeployer(ctx, cfg, d, log.WithField("part", "deployer")) })
	}
	select {
	case <-a.Cache.Synced():
	case <-ctx.Done():
		return nil
	}
	select {
	case <-owner.Ready():
	case <-ctx.Done():
		return nil
	}
	close(a.ready)
	log.WithFields(logrus.Fields{"socket": cfg.Socket, "ip": cfg.IP}).Info("agent ready")
	select {
	case <-ctx.Done():
		return nil
	case err := <-sockErr:
		return err
	}
}

// runSystemd connects to systemd (retrying), reconciles, and carries
// out the fleet placements of this machine.
func (a *Agent) runSystemd(ctx context.Context, cfg Config, owner *registry.LeaseOwner, leaving func(context.Context), log logrus.FieldLogger) error {
	log = log.WithField("part", "systemd")
	for ctx.Err() == nil {
		conn, err := control.DialSystemd(ctx, cfg.DBusAddress)
		if err != nil {
			log.WithError(err).Warn("systemd bus unavailable; retrying in 5s")
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Second):
			}
			continue
		}
		ex := &fleet.Executor{Conn: conn, Client: a.Cli, Keys: a.Keys, Machine: cfg.Node, Dir: cfg.FleetDir,
			Lease: owner.ID, Leaving: leaving, Log: log.WithField("part", "fleet")}
		a.executor.Store(ex)
		s := &Systemd{Conn: conn, KV: a.Cli, Keys: a.Keys, Node: cfg.Node, Log: log, Fleet: ex}
		sctx, stop := context.WithCancel(ctx)
		exDone := make(chan error, 1)
		go func() { exDone <- ex.Run(sctx) }()
		err = s.Run(sctx, a.Cache)
		stop()
		<-exDone
		conn.Close()
		if ctx.Err() == nil {
			log.WithError(err).Warn("systemd reconciler stopped; reconnecting")
		}
	}
	return ctx.Err()
}
