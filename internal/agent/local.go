package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/berthproject/berth/internal/hook"
	"github.com/berthproject/berth/internal/registry"
)

// Announcement is what a post-start hook tells the agent about an instance.
type Announcement struct {
	Record   registry.Instance `json:"record"`
	App      string            `json:"app"`
	ID       string            `json:"id"`
	Health   string            `json:"health,omitempty"`   // "http:/path", "tcp" or "" (none)
	Interval string            `json:"interval,omitempty"` // probe interval, default 5s
	// SkyDNSZone, when set (the hook's --skydns-zone), mirrors the
	// instance in the SkyDNS layout on the node lease, one key per port
	// (registry.SkyDNSKVs), for as long as the record is registered.
	SkyDNSZone string `json:"skydnsZone,omitempty"`
}

// local is one announced instance and its health.
type local struct {
	ann      Announcement
	key      string
	value    string
	mirror   map[string]string // SkyDNS keys registered with the record
	interval time.Duration
	fails    int
	up       bool // registered now
	draining bool
	next     time.Time
}

// Locals keeps the announced instances of this node registered on the
// agent's lease while they are healthy.
type Locals struct {
	Reg      Registrar
	Keys     registry.Keys
	StateDir string // announcements survive an agent restart here
	Log      logrus.FieldLogger
	// FailAfter consecutive failed probes take an instance out (default 3).
	FailAfter int

	mu        sync.Mutex
	instances map[string]*local
}

// Registrar writes records on the node lease (registry.LeaseOwner).
type Registrar interface {
	Put(ctx context.Context, key, value string) error
	Delete(ctx context.Context, key string) error
}

func (l *Locals) failAfter() int {
	if l.FailAfter == 0 {
		return 3
	}
	return l.FailAfter
}

// Announce registers an instance (the hook has already waited for its
// first healthy probe) and keeps probing it.
func (l *Locals) Announce(ctx context.Context, a Announcement) error {
	a.Record.App, a.Record.ID = a.App, a.ID
	if a.Record.State == "" {
		a.Record.State = registry.StateUp
	}
	key, value, mirror, err := registry.InstanceKVs(l.Keys, &a.Record, a.SkyDNSZone)
	if err != nil {
		return err
	}
	interval := 5 * time.Second
	if a.Interval != "" {
		if interval, err = time.ParseDuration(a.Interval); err != nil || interval <= 0 {
			return fmt.Errorf("interval %q: want a duration", a.Interval)
		}
	}
	in := &local{ann: a, key: key, value: value, mirror: mirror, interval: interval, up: true, next: time.Now().Add(interval)}
	l.mu.Lock()
	prev := l.instances[key]
	l.mu.Unlock()
	if prev != nil {
		// Mirror keys of an earlier announcement that this one has not.
		for mk := range prev.mirror {
			if _, ok := mirror[mk]; !ok {
				l.Reg.Delete(ctx, mk)
			}
		}
	}
	if err := l.register(ctx, in); err != nil {
		return err
	}
	l.mu.Lock()
	if l.instances == nil {
		l.instances = map[string]*local{}
	}
	l.instances[key] = in
	l.mu.Unlock()
	l.persist(a)
	l.Log.WithFields(logrus.Fields{"app": a.App, "instance": a.ID, "addr": a.Record.Addr}).Info("instance registered")
	return nil
}

// Drain marks an instance draining (it stays registered, routers stop
// sending new requests).
func (l *Locals) Drain(ctx context.Context, app, id string) error {
	key, err := l.Keys.Instance(app, id)
	if err != nil {
		return err
	}
	l.mu.Lock()
	in := l.instances[key]
	l.mu.Unlock()
	if in == nil {
		return nil
	}
	rec := in.ann.Record
	rec.State = registry.StateDraining
	_, value, err := registry.InstanceKV(l.Keys, &rec)
	if err != nil {
		return err
	}
	l.mu.Lock()
	in.draining, in.value = true, value
	l.mu.Unlock()
	return l.Reg.Put(ctx, key, value)
}

// Withdraw removes an instance at once (post-stop).
func (l *Locals) Withdraw(ctx context.Context, app, id string) error {
	key, err := l.Keys.Instance(app, id)
	if err != nil {
		return err
	}
	l.mu.Lock()
	in := l.instances[key]
	delete(l.instances, key)
	l.mu.Unlock()
	os.Remove(l.statePath(app, id))
	if in == nil {
		return l.Reg.Delete(ctx, key)
	}
	return l.deregister(ctx, in)
}

// register writes an instance's record and its SkyDNS mirror on the node
// lease.
func (l *Locals) register(ctx context.Context, in *local) error {
	if err := l.Reg.Put(ctx, in.key, in.value); err != nil {
		return err
	}
	for mk, mv := range in.mirror {
		if err := l.Reg.Put(ctx, mk, mv); err != nil {
			return err
		}
	}
	return nil
}

// deregister deletes an instance's record and its SkyDNS mirror.
func (l *Locals) deregister(ctx context.Context, in *local) error {
	errs := []error{l.Reg.Delete(ctx, in.key)}
	for mk := range in.mirror {
		errs = append(errs, l.Reg.Delete(ctx, mk))
	}
	return errors.Join(errs...)
}

// Run probes every instance at its interval until ctx ends: failAfter
// failures in a row take it out of etcd, the next success puts it back.
func (l *Locals) Run(ctx context.Context) error {
	l.restore(ctx)
	t := time.NewTicker(200 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
		l.mu.Lock()
		var due []*local
		now := time.Now()
		for _, in := range l.instances {
			if now.After(in.next) {
				in.next = now.Add(in.interval)
				due = append(due, in)
			}
		}
		l.mu.Unlock()
		for _, in := range due {
			l.probe(ctx, in)
		}
	}
}

func (l *Locals) probe(ctx context.Context, in *local) {
	err := hook.Check(in.ann.Health).Probe(ctx, in.ann.Record.Addr, min(in.interval, 5*time.Second))
	log := l.Log.WithFields(logrus.Fields{"app": in.ann.App, "instance": in.ann.ID})
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.instances[in.key] != in {
		return // withdrawn meanwhile
	}
	if err == nil {
		in.fails = 0
		if !in.up {
			if perr := l.register(ctx, in); perr == nil {
				in.up = true
				log.Info("instance healthy again; registered")
			}
		}
		return
	}
	in.fails++
	if in.up && in.fails >= l.failAfter() {
		if derr := l.deregister(ctx, in); derr == nil {
			in.up = false
			log.WithError(err).Warn("instance unhealthy; deregistered")
		}
	}
}

func (l *Locals) statePath(app, id string) string {
	return filepath.Join(l.StateDir, "instances", app+"@"+id+".json")
}

func (l *Locals) persist(a Announcement) {
	if l.StateDir == "" {
		return
	}
	p := l.statePath(a.App, a.ID)
	os.MkdirAll(filepath.Dir(p), 0o755)
	b, _ := json.Marshal(a)
	os.WriteFile(p, b, 0o644)
}

// restore re-announces what a previous agent was told (after a restart of
// the agent, the instances still run).
func (l *Locals) restore(ctx context.Context) {
	if l.StateDir == "" {
		return
	}
	paths, _ := filepath.Glob(filepath.Join(l.StateDir, "instances", "*.json"))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var a Announcement
		if err := json.Unmarshal(b, &a); err != nil {
			l.Log.WithError(err).WithField("file", p).Warn("skipping unreadable announcement")
			continue
		}
		if err := hook.Check(a.Health).Probe(ctx, a.Record.Addr, 2*time.Second); err != nil {
			l.Log.WithField("file", p).Info("announced instance is gone; forgetting it")
			os.Remove(p)
			continue
		}
		if err := l.Announce(ctx, a); err != nil {
			l.Log.WithError(err).WithField("file", p).Warn("restore announcement")
		}
	}
}

// Handler serves the hooks' API on the agent's unix socket:
// PUT /v1/instances (Announcement), POST /v1/instances/{app}/{id}/drain,
// DELETE /v1/instances/{app}/{id}.
func (l *Locals) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /v1/instances", func(w http.ResponseWriter, r *http.Request) {
		var a Announcement
		if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&a); err != nil {
			http.Error(w, "bad announcement: "+err.Error(), http.StatusBadRequest)
			return
		}
		if err := l.Announce(r.Context(), a); err != nil {
			status := http.StatusBadGateway
			if errors.Is(err, registry.ErrBadName) {
				status = http.StatusBadRequest
			}
			http.Error(w, err.Error(), status)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /v1/instances/{app}/{id}/drain", func(w http.ResponseWriter, r *http.Request) {
		if err := l.Drain(r.Context(), r.PathValue("app"), r.PathValue("id")); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("DELETE /v1/instances/{app}/{id}", func(w http.ResponseWriter, r *http.Request) {
		if err := l.Withdraw(r.Context(), r.PathValue("app"), r.PathValue("id")); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

// ServeSocket serves Handler on a unix socket at path until ctx ends.
func (l *Locals) ServeSocket(ctx context.Context, path string) error {
	os.MkdirAll(filepath.Dir(path), 0o755)
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("agent socket: %w", err)
	}
	os.Chmod(path, 0o660)
	srv := &http.Server{Handler: l.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { <-ctx.Done(); srv.Close(); os.Remove(path) }()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Client talks to an agent's socket (used by the hooks).
type Client struct{ Socket string }

func (c Client) http() *http.Client {
	return &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", c.Socket)
	}}}
}

// Available reports whether an agent listens on the socket.
func (c Client) Available() bool {
	conn, err := net.DialTimeout("unix", c.Socket, time.Second)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

func (c Client) do(ctx context.Context, method, path string, body any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://agent"+path, rd)
	if err != nil {
		return err
	}
	resp, err := c.http().Do(req)
	if err != nil {
		return fmt.Errorf("agent at %s: %w", c.Socket, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("agent: %s: %s", resp.Status, bytes.TrimSpace(msg))
	}
	return nil
}

// Announce asks the agent to register an instance.
func (c Client) Announce(ctx context.Context, a Announcement) error {
	return c.do(ctx, http.MethodPut, "/v1/instances", a)
}

// Drain asks the agent to mark an instance draining.
func (c Client) Drain(ctx context.Context, app, id string) error {
	return c.do(ctx, http.MethodPost, "/v1/instances/"+url.PathEscape(app)+"/"+url.PathEscape(id)+"/drain", nil)
}

// Withdraw asks the agent to deregister an instance.
func (c Client) Withdraw(ctx context.Context, app, id string) error {
	return c.do(ctx, http.MethodDelete, "/v1/instances/"+url.PathEscape(app)+"/"+url.PathEscape(id), nil)
}
