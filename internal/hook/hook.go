package hook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"

	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/registry"
)

// Instance names one instance of an app and what the hooks know of it.
type Instance struct {
	App      string   // app name
	ID       string   // systemd instance (%i)
	Unit     string   // unit name; default <app>@<id>.service
	Node     string   // node id (machine id)
	Version  string   // app version
	Tags     []string // registry tags
	Runtime  string   // docker, podman or exec
	Port     string   // first port as "1337/tcp"
	HostPort int      // fixed published port, 0 if random/allocated
	EnvFile  string   // exec: file with PORT=...
	IP       string   // address to advertise
	CLI      string   // docker or podman CLI path
}

func (in *Instance) unit() string {
	if in.Unit != "" {
		return in.Unit
	}
	return in.App + "@" + in.ID + ".service"
}

// Hooks talks to etcd for the hook commands.
type Hooks struct {
	KV   clientv3.KV
	Keys registry.Keys
	Log  logrus.FieldLogger
}

// PreStart clears a stale record of the instance (a crash before its lease
// expired) and marks the app starting unless it is already started, or
// being deleted (berth delete's mark stays).
func (h *Hooks) PreStart(ctx context.Context, in *Instance) error {
	if err := registry.EnsureSchema(ctx, h.KV, h.Keys); err != nil {
		return err
	}
	key, err := h.Keys.Instance(in.App, in.ID)
	if err != nil {
		return err
	}
	if _, err := h.KV.Delete(ctx, key); err != nil {
		return fmt.Errorf("clear stale record %s: %w", key, err)
	}
	_, err = registry.Update(ctx, h.KV, h.Keys, in.App, func(cur *registry.Status) (registry.Status, bool) {
		if cur != nil && (cur.Current == registry.StatusStarted || cur.Expected == registry.StatusDeleted) {
			return *cur, false
		}
		next := registry.Status{Current: registry.StatusStarting, Expected: registry.StatusStarted}
		if cur != nil {
			next.Units = cur.Units
		}
		return next, true
	})
	return err
}

// Address finds where the instance listens: the fixed host port, the port
// allocated into the environment file (exec), or "docker port".
func (h *Hooks) Address(ctx context.Context, in *Instance) (string, error) {
	port := ""
	switch {
	case in.HostPort != 0:
		port = fmt.Sprint(in.HostPort)
	case in.Runtime == "exec":
		env, err := ReadEnvFile(in.EnvFile)
		if err != nil {
			return "", fmt.Errorf("read allocated port: %w", err)
		}
		if port = env["PORT"]; port == "" {
			return "", fmt.Errorf("%s has no PORT", in.EnvFile)
		}
	case in.Port != "":
		p, err := dockerPort(ctx, in.CLI, in.App+"-"+in.ID, in.Port)
		if err != nil {
			return "", err
		}
		port = p
	default:
		return "", errors.New("the app has no port to register")
	}
	return net.JoinHostPort(in.IP, port), nil
}

// dockerPort asks the container CLI for the published port of a container
// port ("docker port NAME 1337/tcp" prints "0.0.0.0:49153" lines).
func dockerPort(ctx context.Context, cli, container, port string) (string, error) {
	out, err := exec.CommandContext(ctx, cli, "port", container, port).Output()
	if err != nil {
		return "", fmt.Errorf("%s port %s %s: %w", cli, container, port, err)
	}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if _, p, err := net.SplitHostPort(strings.TrimSpace(line)); err == nil && p != "" {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s port %s %s: no published port in %q", cli, container, port, out)
}

// Record is the instance record post-start registers.
func (in *Instance) Record(addr string) *registry.Instance {
	return &registry.Instance{App: in.App, ID: in.ID, Addr: addr, Node: in.Node, Unit: in.unit(),
		Tags: in.Tags, Version: in.Version, State: registry.StateUp}
}

// MarkStarted records the app as started once an instance is up, unless
// it is being deleted.
func (h *Hooks) MarkStarted(ctx context.Context, app string) error {
	_, err := registry.Update(ctx, h.KV, h.Keys, app, func(cur *registry.Status) (registry.Status, bool) {
		if cur != nil && (cur.Current == registry.StatusStarted || cur.Expected == registry.StatusDeleted) {
			return *cur, false
		}
		next := registry.Status{Current: registry.StatusStarted, Expected: registry.StatusStarted}
		if cur != nil {
			next.Units = cur.Units
			if cur.Expected != "" {
				next.Expected = cur.Expected
			}
		}
		return next, true
	})
	return err
}

// Drain marks the instance draining, keeping its lease: routers stop
// sending it new requests before the stop begins.
//
// A record another node holds now (the instance moved) is left alone.
func (h *Hooks) Drain(ctx context.Context, app, id, node string) error {
	key, err := h.Keys.Instance(app, id)
	if err != nil {
		return err
	}
	resp, err := h.KV.Get(ctx, key)
	if err != nil {
		return err
	}
	if len(resp.Kvs) == 0 {
		return nil
	}
	var rec registry.Instance
	if err := json.Unmarshal(resp.Kvs[0].Value, &rec); err != nil {
		return fmt.Errorf("decode %s: %w", key, err)
	}
	if node != "" && rec.Node != "" && rec.Node != node {
		return nil
	}
	rec.State = registry.StateDraining
	val, _ := json.Marshal(rec)
	kv := resp.Kvs[0]
	// Only if nobody changed it meanwhile, and on the same lease.
	_, err = h.KV.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", kv.ModRevision)).
		Then(clientv3.OpPut(key, string(val), clientv3.WithLease(clientv3.LeaseID(kv.Lease)))).Commit()
	return err
}

// PostStop removes the instance record at once (its keeper exits when it
// sees the deletion), unless another node holds it now (the instance was
// moved and its new copy registered).
func (h *Hooks) PostStop(ctx context.Context, app, id, node string) error {
	key, err := h.Keys.Instance(app, id)
	if err != nil {
		return err
	}
	return registry.DeleteInstanceOf(ctx, h.KV, key, node)
}
