package hook

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/units"
)

// Instance names one instance of an app and what the hooks know of it.
type Instance struct {
	App      string   // app name
	ID       string   // systemd instance (%i)
	Unit     string   // unit name; default <app>@<id>.service
	Node     string   // node id (machine id)
	Version  string   // app version
	Tags     []string // registry tags of the first port
	Runtime  string   // docker, podman or exec
	Port     string   // first port as "1337/tcp"
	PortName string   // name of the first port; "" (units of older berths) records no port names
	HostPort int      // fixed published port, 0 if random/allocated
	Ports    []Port   // the app's other ports
	EnvFile  string   // exec: file with PORT=...
	IP       string   // address to advertise
	CLI      string   // docker or podman CLI path
}

// Port is one of an app's further ports, registered with the instance
// under its name (post-start's --named-port).
type Port struct {
	Name      string   // port name (the spec's ports[].name)
	Container string   // container side, "9090/tcp"
	HostPort  int      // fixed published port, 0 if random/allocated
	Tags      []string // registry tags
}

func (in *Instance) unit() string {
	if in.Unit != "" {
		return in.Unit
	}
	return units.UnitOfID(in.App, in.ID)
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

// Address finds where the instance's first port listens: the fixed host
// port, the port allocated into the environment file (exec), or "docker
// port".
func (h *Hooks) Address(ctx context.Context, in *Instance) (string, error) {
	if in.HostPort == 0 && in.Runtime != "exec" && in.Port == "" {
		return "", errors.New("the app has no port to register")
	}
	return in.hostAddr(ctx, "PORT", in.Port, in.HostPort)
}

// OtherPorts finds where each of the instance's further ports listens, as
// Address does for the first one.
func (h *Hooks) OtherPorts(ctx context.Context, in *Instance) ([]registry.NamedPort, error) {
	var out []registry.NamedPort
	for _, p := range in.Ports {
		addr, err := in.hostAddr(ctx, units.PortVar(p.Name), p.Container, p.HostPort)
		if err != nil {
			return nil, fmt.Errorf("port %s: %w", p.Name, err)
		}
		out = append(out, registry.NamedPort{Name: p.Name, Addr: addr, Proto: proto(p.Container), Tags: p.Tags})
	}
	return out, nil
}

// hostAddr is where one port of the instance is reached: its fixed host
// port, the port allocated into the environment file under envVar (exec),
// or the one docker publishes for the container port ("9090/tcp").
func (in *Instance) hostAddr(ctx context.Context, envVar, container string, hostPort int) (string, error) {
	port := ""
	switch {
	case hostPort != 0:
		port = fmt.Sprint(hostPort)
	case in.Runtime == "exec":
		env, err := ReadEnvFile(in.EnvFile)
		if err != nil {
			return "", fmt.Errorf("read allocated port: %w", err)
		}
		if port = env[envVar]; port == "" {
			return "", fmt.Errorf("%s has no %s", in.EnvFile, envVar)
		}
	default:
		p, err := waitPort(ctx, in.CLI, in.container(), container)
		if err != nil {
			return "", err
		}
		port = p
	}
	return net.JoinHostPort(in.IP, port), nil
}

// proto is the protocol of a "9090/udp" port: tcp unless it says udp.
func proto(port string) string {
	if strings.HasSuffix(port, "/udp") {
		return "udp"
	}
	return "tcp"
}

// container is the instance's container name, the units' "%p-%i": its
// unit's name without ".service", "@" replaced ("app.2@1.service" →
// "app.2-1").
func (in *Instance) container() string {
	return strings.Replace(strings.TrimSuffix(in.unit(), ".service"), "@", "-", 1)
}

// portPoll is how often waitPort asks again.
const portPoll = 200 * time.Millisecond

// waitPort asks for the published port until the engine has one: the
// post-start hook runs as soon as "docker run" is forked, often before the
// engine has created the container. It gives up when ctx ends, with the
// last answer.
func waitPort(ctx context.Context, cli, container, port string) (string, error) {
	for {
		p, err := dockerPort(ctx, cli, container, port)
		if err == nil {
			return p, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("no published port before the deadline: %w", err)
		case <-time.After(portPoll):
		}
	}
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

// Record is the instance record post-start registers: addr is the first
// port's address, others the further ports (OtherPorts). With port names
// known, the record lists every port (registry.Instance.Ports).
func (in *Instance) Record(addr string, others []registry.NamedPort) *registry.Instance {
	rec := &registry.Instance{App: in.App, ID: in.ID, Addr: addr, Node: in.Node, Unit: in.unit(),
		Tags: in.Tags, Version: in.Version, State: registry.StateUp}
	if gen, _ := registry.SplitInstanceID(in.ID); gen > 1 {
		rec.Gen = gen
	}
	if in.PortName != "" || len(others) > 0 {
		first := registry.NamedPort{Name: cmp.Or(in.PortName, in.App), Addr: addr, Proto: proto(in.Port), Tags: in.Tags}
		rec.SetPorts(append([]registry.NamedPort{first}, others...))
	}
	return rec
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

// ParsePort parses post-start's --named-port value,
// "name=metrics,port=9090/tcp[,host=9191][,tag=prometheus]...": the form
// the unit generator writes for every port after the first.
func ParsePort(s string) (Port, error) {
	var p Port
	for _, field := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(field, "=")
		if !ok || v == "" {
			return Port{}, fmt.Errorf("named port %q: %q is not key=value", s, field)
		}
		switch k {
		case "name":
			p.Name = v
		case "port":
			p.Container = v
		case "host":
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 65535 {
				return Port{}, fmt.Errorf("named port %q: host %q is not a port", s, v)
			}
			p.HostPort = n
		case "tag":
			p.Tags = append(p.Tags, v)
		default:
			return Port{}, fmt.Errorf("named port %q: unknown key %q (want name, port, host or tag)", s, k)
		}
	}
	num, pr, _ := strings.Cut(p.Container, "/")
	if n, err := strconv.Atoi(num); err != nil || n < 1 || n > 65535 || (pr != "tcp" && pr != "udp") {
		return Port{}, fmt.Errorf("named port %q: port %q is not PORT/tcp or PORT/udp", s, p.Container)
	}
	if p.Name == "" {
		return Port{}, fmt.Errorf("named port %q: no name", s)
	}
	return p, nil
}
