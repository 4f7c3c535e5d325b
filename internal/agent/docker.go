package agent

import (
	"context"
	"fmt"
	"net"
	"path"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/berthproject/berth/internal/dockerapi"
	"github.com/berthproject/berth/internal/registry"
)

// Docker registers containers that berth's units did not start, following
// registrator's conventions: SERVICE_NAME, SERVICE_TAGS, SERVICE_<port>_NAME,
// SERVICE_<port>_TAGS, SERVICE_<port>_ID and SERVICE_IGNORE (or
// SERVICE_<port>_IGNORE), from the environment or labels (labels win). It
// registers on start (or on health_status: healthy for containers with a
// health check), deregisters on die, stop and unhealthy, and resyncs
// periodically taking the engine's list as the truth.
type Docker struct {
	API      *dockerapi.Client
	Reg      Registrar
	Keys     registry.Keys
	Node     string        // node id in records
	IP       string        // address of published ports
	Internal bool          // register the container's own IP and port instead
	Resync   time.Duration // default 30s
	Log      logrus.FieldLogger

	mu      sync.Mutex
	records map[string][]string // container id → keys it registered
}

// Service is one registration derived from a container port.
type Service struct {
	Name string
	ID   string
	Addr string
	Port string // container port, "1337/tcp"
	Tags []string
}

var reServiceName = regexp.MustCompile(`^[a-z]([a-z0-9-]{0,61}[a-z0-9])?$`)

// Services applies registrator's conventions to a container. Malformed
// values skip the port with a warning (returned as errs), never the rest.
func Services(c *dockerapi.Container, nodeName, ip string, internal bool) (svcs []Service, errs []error) {
	meta := map[string]string{}
	for _, kv := range c.Config.Env {
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "SERVICE_") {
			meta[k] = v
		}
	}
	for k, v := range c.Config.Labels {
		if strings.HasPrefix(k, "SERVICE_") {
			meta[k] = v
		}
	}
	if _, ok := meta["SERVICE_IGNORE"]; ok {
		return nil, nil
	}
	type port struct{ key, hostIP, hostPort string }
	var ports []port
	if internal {
		for p := range c.Config.ExposedPorts {
			ports = append(ports, port{key: p})
		}
	} else {
		for p, bindings := range c.NetworkSettings.Ports {
			for _, b := range bindings {
				if b.HostPort != "" {
					ports = append(ports, port{key: p, hostIP: b.HostIP, hostPort: b.HostPort})
					break
				}
			}
		}
	}
	sort.Slice(ports, func(i, j int) bool { return ports[i].key < ports[j].key })
	containerIP := c.NetworkSettings.IPAddress
	if containerIP == "" {
		for _, n := range c.NetworkSettings.Networks {
			if n.IPAddress != "" {
				containerIP = n.IPAddress
				break
			}
		}
	}
	image := path.Base(strings.SplitN(c.Config.Image, "@", 2)[0])
	image, _, _ = strings.Cut(image, ":")
	cname := strings.TrimPrefix(c.Name, "/")
	for _, p := range ports {
		num, proto, _ := strings.Cut(p.key, "/")
		if _, ok := meta["SERVICE_"+num+"_IGNORE"]; ok {
			continue
		}
		name := meta["SERVICE_"+num+"_NAME"]
		if name == "" {
			name = meta["SERVICE_NAME"]
			if name == "" {
				name = image
			}
			if len(ports) > 1 {
				name += "-" + num
			}
		}
		name = strings.ToLower(name)
		if !reServiceName.MatchString(name) {
			errs = append(errs, fmt.Errorf("container %s port %s: service name %q is not a valid name (lowercase letters, digits, '-')", cname, p.key, name))
			continue
		}
		tags := meta["SERVICE_"+num+"_TAGS"]
		if tags == "" {
			tags = meta["SERVICE_TAGS"]
		}
		var tagList []string
		for _, t := range strings.Split(tags, ",") {
			if t = strings.TrimSpace(t); t != "" {
				tagList = append(tagList, t)
			}
		}
		id := meta["SERVICE_"+num+"_ID"]
		if id == "" {
			id = nodeName + ":" + cname + ":" + num
			if proto == "udp" {
				id += ":udp"
			}
		}
		addr := net.JoinHostPort(ip, p.hostPort)
		if internal {
			if containerIP == "" {
				errs = append(errs, fmt.Errorf("container %s: no container address for --internal", cname))
				continue
			}
			addr = net.JoinHostPort(containerIP, num)
		} else if p.hostIP != "" && p.hostIP != "0.0.0.0" && p.hostIP != "::" {
			addr = net.JoinHostPort(p.hostIP, p.hostPort)
		}
		svcs = append(svcs, Service{Name: name, ID: id, Addr: addr, Port: p.key, Tags: tagList})
	}
	return svcs, errs
}

// unitMarker marks records the registrar owns, so a resync after a restart
// finds its own stale records.
const unitMarker = "docker:"

func (d *Docker) resyncEvery() time.Duration {
	if d.Resync == 0 {
		return 30 * time.Second
	}
	return d.Resync
}

// Run follows the engine until ctx ends; an unreachable engine is retried
// with a growing backoff, never fatal.
func (d *Docker) Run(ctx context.Context, snapshot func() *registry.Snapshot) error {
	backoff := time.Second
	for ctx.Err() == nil {
		err := d.follow(ctx, snapshot)
		if ctx.Err() != nil {
			break
		}
		d.Log.WithError(err).WithField("retry_in", backoff.String()).Warn("docker engine unavailable")
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second)
	}
	return ctx.Err()
}

func (d *Docker) follow(ctx context.Context, snapshot func() *registry.Snapshot) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	events, errs := d.API.Events(ctx)
	if err := d.resync(ctx, snapshot()); err != nil {
		return err
	}
	t := time.NewTicker(d.resyncEvery())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			if err := d.resync(ctx, snapshot()); err != nil {
				return err
			}
		case ev, ok := <-events:
			if !ok {
				return <-errs
			}
			d.handle(ctx, ev)
		}
	}
}

func (d *Docker) handle(ctx context.Context, ev dockerapi.Event) {
	switch {
	case ev.Action == "start" || ev.Action == "health_status: healthy" || ev.Action == "unpause":
		d.register(ctx, ev.Actor.ID)
	case ev.Action == "die" || ev.Action == "stop" || ev.Action == "kill" || ev.Action == "destroy" ||
		ev.Action == "pause" || ev.Action == "health_status: unhealthy":
		d.deregister(ctx, ev.Actor.ID)
	}
}

// register inspects a container and registers its services.
func (d *Docker) register(ctx context.Context, id string) {
	c, err := d.API.Inspect(ctx, id)
	if err != nil {
		d.Log.WithError(err).WithField("container", id).Warn("inspect")
		return
	}
	if !c.State.Running || c.Config.Labels["berth.app"] != "" {
		return // not running, or a berth unit (its hooks register it)
	}
	if h := c.State.Health; h != nil && h.Status != "healthy" {
		return // registered when its health check passes
	}
	svcs, errs := Services(c, d.Node, d.IP, d.Internal)
	for _, err := range errs {
		d.Log.WithError(err).Warn("skipping malformed SERVICE_* value")
	}
	var keys []string
	for _, s := range svcs {
		rec := &registry.Instance{App: s.Name, ID: s.ID, Addr: s.Addr, Node: d.Node, Unit: unitMarker + strings.TrimPrefix(c.Name, "/"),
			Tags: s.Tags, State: registry.StateUp}
		key, value, err := registry.InstanceKV(d.Keys, rec)
		if err != nil {
			d.Log.WithError(err).WithField("container", c.Name).Warn("skipping service")
			continue
		}
		if err := d.Reg.Put(ctx, key, value); err != nil {
			d.Log.WithError(err).Warn("register container")
			continue
		}
		keys = append(keys, key)
	}
	d.mu.Lock()
	if d.records == nil {
		d.records = map[string][]string{}
	}
	d.records[c.ID] = keys
	d.mu.Unlock()
	if len(keys) > 0 {
		d.Log.WithFields(logrus.Fields{"container": c.Name, "services": len(keys)}).Info("container registered")
	}
}

func (d *Docker) deregister(ctx context.Context, id string) {
	d.mu.Lock()
	keys := d.records[id]
	delete(d.records, id)
	d.mu.Unlock()
	for _, k := range keys {
		if err := d.Reg.Delete(ctx, k); err != nil {
			d.Log.WithError(err).WithField("key", k).Warn("deregister")
		}
	}
}

// resync registers every running container and removes every record this
// node's registrar owns whose container is gone: the engine is the truth.
func (d *Docker) resync(ctx context.Context, snap *registry.Snapshot) error {
	list, err := d.API.List(ctx)
	if err != nil {
		return err
	}
	running := map[string]bool{}
	for _, c := range list {
		running[c.ID] = true
		d.register(ctx, c.ID)
	}
	d.mu.Lock()
	var gone []string
	live := map[string]bool{}
	for id, keys := range d.records {
		if !running[id] {
			gone = append(gone, id)
			continue
		}
		for _, k := range keys {
			live[k] = true
		}
	}
	d.mu.Unlock()
	for _, id := range gone {
		d.deregister(ctx, id)
	}
	// Records of this node left by an earlier agent whose container is gone.
	for app, instances := range snap.Instances {
		for id, in := range instances {
			if in.Node != d.Node || !strings.HasPrefix(in.Unit, unitMarker) {
				continue
			}
			key, err := d.Keys.Instance(app, id)
			if err != nil || live[key] {
				continue
			}
			d.Log.WithField("key", key).Info("removing stale container record")
			d.Reg.Delete(ctx, key)
		}
	}
	return nil
}
