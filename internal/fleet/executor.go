package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/units"
)

// Executor carries out the placements of one machine: it writes the
// unit files placed there into Dir and links them into systemd (runtime
// links), starts launched units and stops loaded ones, takes away the
// units no longer placed there, and reports each unit's state on the
// agent's lease. It is part of berth agent.
//
// Passivation is the app's status: a launched instance of an app whose
// expected state is passivated ("<app>@<i>.service", or a later release's
// "<app>.<gen>@<i>.service") is held stopped, on
// whatever machine it is placed, until a wake sets it started again.
type Executor struct {
	Conn    *sdbus.Conn
	Client  *clientv3.Client
	Keys    registry.Keys
	Machine string
	// Dir is where unit files are written (default /run/berth/units);
	// SystemdDir is the same directory as systemd sees it (default Dir:
	// they differ only when systemd runs in a container).
	Dir, SystemdDir string
	// Lease is the agent's lease the states are written on (0: none).
	Lease func() clientv3.LeaseID
	Log   logrus.FieldLogger
	// Interval is the longest time between two passes (default 1s).
	Interval time.Duration
	// Leaving is called once, when a pass first finds the machine shutting
	// down (systemd's SystemState "stopping"): the agent withdraws the
	// machine, so that its units are placed elsewhere while they stop here
	// rather than after its lease expires.
	Leaving func(ctx context.Context)
	left    bool

	reported map[string]registry.FleetState // what this executor last wrote
	lease    clientv3.LeaseID               // the lease they were written on
	jobs     atomic.Pointer[map[string]registry.FleetJob]
}

// HasJobs reports whether an app has berth fleet jobs (units of its
// releases, <app>@ and <app>.<gen>@), as of the executor's last pass.
func (e *Executor) HasJobs(app string) bool {
	jobs := e.jobs.Load()
	return jobs != nil && appHasJobs(*jobs, app)
}

func appHasJobs(jobs map[string]registry.FleetJob, app string) bool {
	for name := range jobs {
		if appOf(name) == app {
			return true
		}
	}
	return false
}

// hasJobsOf reports whether the app of an instance unit has jobs.
func hasJobsOf(jobs map[string]registry.FleetJob, unit string) bool {
	app := appOf(unit)
	return app != "" && appHasJobs(jobs, app)
}

// appOf is the app of a berth unit name ("" for another unit).
func appOf(unit string) string {
	n, err := ParseName(unit)
	if err != nil {
		return ""
	}
	if a, gen := units.AppOfPrefix(n.Prefix); gen > 0 {
		return a
	}
	return ""
}

// IsJob reports whether a unit is one of berth fleet's jobs, as of the
// executor's last pass (false before the first): such a unit is started
// and stopped by the executor of the machine it is placed on, and by
// nothing else.
func (e *Executor) IsJob(unit string) bool {
	jobs := e.jobs.Load()
	if jobs == nil {
		return false
	}
	_, ok := (*jobs)[unit]
	return ok
}

// header marks the files the executor wrote (and may remove).
const header = "# Placed by berth fleet; do not edit (berth fleet cat shows the submitted file).\n"

// Run makes a pass after every change of placements or jobs, and every
// Interval, until ctx ends; a D-Bus failure ends it (the caller
// reconnects).
func (e *Executor) Run(ctx context.Context) error {
	if e.Dir == "" {
		e.Dir = "/run/berth/units"
	}
	if e.SystemdDir == "" {
		e.SystemdDir = e.Dir
	}
	interval := e.Interval
	if interval == 0 {
		interval = time.Second
	}
	changes, stop := e.watch(ctx)
	defer func() { stop() }()
	for {
		if err := e.Reconcile(ctx); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			e.Log.WithError(err).Warn("fleet executor: pass failed")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case _, ok := <-changes:
			if !ok { // a watch ended (lost leader, compaction): watch again
				stop()
				time.Sleep(min(interval, time.Second))
				changes, stop = e.watch(ctx)
			}
		case <-time.After(interval):
		}
	}
}

// watch merges the watches of placements, jobs and app status into one
// channel, closed when they end (one ending ends the others).
func (e *Executor) watch(ctx context.Context) (<-chan struct{}, func()) {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	out := make(chan struct{}, 1)
	var wg sync.WaitGroup
	for _, prefix := range []string{e.Keys.FleetSchedulePrefix(), e.Keys.FleetJobsPrefix(), e.Keys.StatusPrefix()} {
		ch := e.Client.Watch(wctx, prefix, clientv3.WithPrefix())
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer cancel() // one ends: all end
			for r := range ch {
				if r.Err() != nil {
					return
				}
				select {
				case out <- struct{}{}:
				default: // a pass is due already
				}
			}
		}()
	}
	go func() { wg.Wait(); close(out) }() // after the last sender
	return out, cancel
}

// mine is a unit placed on this machine, with its job.
type mine struct {
	job registry.FleetJob
}

// Reconcile makes one pass.
func (e *Executor) Reconcile(ctx context.Context) error {
	resp, err := e.Client.Txn(ctx).Then(
		clientv3.OpGet(e.Keys.FleetSchedulePrefix(), clientv3.WithPrefix()),
		clientv3.OpGet(e.Keys.FleetJobsPrefix(), clientv3.WithPrefix()),
		clientv3.OpGet(e.Keys.StatusPrefix(), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return err
	}
	jobs, _ := Jobs(resp.Responses[1].GetResponseRange().Kvs) // the scheduler warns about bad ones
	e.jobs.Store(&jobs)
	passivated := map[string]bool{}
	for _, kv := range resp.Responses[2].GetResponseRange().Kvs {
		var st registry.Status
		if json.Unmarshal(kv.Value, &st) == nil && st.Expected == registry.StatusPassivated {
			passivated[strings.TrimPrefix(string(kv.Key), e.Keys.StatusPrefix())] = true
		}
	}
	here := map[string]mine{}
	for name, p := range Placements(e.Keys, resp.Responses[0].GetResponseRange().Kvs) {
		j, ok := jobs[name]
		if !ok || j.Target == registry.TargetInactive || p.Machine != e.Machine && !slices.Contains(p.Machines, e.Machine) {
			continue
		}
		n, err := ParseName(name)
		if err != nil {
			continue
		}
		if app, _ := units.AppOfPrefix(n.Prefix); j.Target == registry.TargetLaunched && n.Instanced && passivated[app] {
			j.Target = registry.TargetLoaded // held stopped until the app is woken
		}
		here[name] = mine{job: j}
	}

	// Files: an instance runs from its template's file. Write what
	// changed, take away what left, stop units no longer placed here.
	want := map[string][]byte{}
	for name, m := range here {
		content, err := (&Store{KV: e.Client, Keys: e.Keys}).Content(ctx, m.job.Hash)
		if err != nil {
			e.Log.WithError(err).WithField("unit", name).Warn("fleet executor: no unit file")
			delete(here, name)
			continue
		}
		file := name
		if n, _ := ParseName(name); n.Instanced {
			file = n.TemplateName()
		}
		want[file] = append([]byte(header), content...)
	}
	changed := false
	var link []string
	for _, file := range slices.Sorted(maps.Keys(want)) {
		path := filepath.Join(e.Dir, file)
		if have, err := os.ReadFile(path); err == nil && bytes.Equal(have, want[file]) {
			continue
		}
		if err := writeFile(path, want[file]); err != nil {
			return err
		}
		changed = true
		link = append(link, filepath.Join(e.SystemdDir, file))
	}
	owned, err := e.ownedFiles()
	if err != nil {
		return err
	}
	// Units of the files written here (also before a restart of the
	// agent) that are no longer placed here stop.
	var patterns []string
	for _, file := range owned {
		n, _ := ParseName(file)
		if n.Template {
			file = n.Prefix + "@*." + n.Type
		}
		patterns = append(patterns, file)
	}
	if len(patterns) > 0 {
		loaded, err := e.Conn.ListUnitsByPatternsContext(ctx, []string{"active", "activating", "reloading", "failed"}, patterns)
		if err != nil {
			return fmt.Errorf("list units: %w", err)
		}
		for _, u := range loaded {
			if _, ok := here[u.Name]; ok {
				continue
			}
			if u.ActiveState == "failed" {
				e.Conn.ResetFailedUnitContext(ctx, u.Name)
				continue
			}
			e.Log.WithField("unit", u.Name).Info("fleet executor: stopping a unit no longer placed here")
			if _, err := e.Conn.StopUnitContext(ctx, u.Name, "replace", nil); err != nil {
				e.Log.WithError(err).WithField("unit", u.Name).Warn("fleet executor: stop")
			}
		}
	}
	// A unit that failed after it left (its job destroyed by a deploy's
	// rollback, its file gone) is forgotten, not reported as the app's.
	if failed, err := e.Conn.ListUnitsByPatternsContext(ctx, []string{"failed"}, []string{"*@*.service"}); err == nil {
		for _, u := range failed {
			if _, ok := here[u.Name]; !ok && hasJobsOf(jobs, u.Name) {
				e.Conn.ResetFailedUnitContext(ctx, u.Name)
			}
		}
	}
	for _, file := range owned {
		if _, ok := want[file]; ok {
			continue
		}
		e.Conn.DisableUnitFilesContext(ctx, []string{file}, true)
		os.Remove(filepath.Join(e.Dir, file))
		changed = true
	}
	if len(link) > 0 {
		if _, err := e.Conn.LinkUnitFilesContext(ctx, link, true, true); err != nil {
			return fmt.Errorf("link units: %w", err)
		}
	}
	if changed {
		if err := e.Conn.ReloadContext(ctx); err != nil {
			return fmt.Errorf("daemon-reload: %w", err)
		}
	}

	// States: start launched units, stop loaded ones, report. While the
	// machine shuts down, nothing is started (its stop jobs are systemd's).
	stopping := false
	if st, err := e.Conn.GetManagerProperty("SystemState"); err == nil && strings.Contains(st, "stopping") {
		stopping = true
		if !e.left && e.Leaving != nil {
			e.left = true
			e.Leaving(ctx)
		}
	}
	names := slices.Sorted(maps.Keys(here))
	var states []sdbus.UnitStatus
	if len(names) > 0 {
		if states, err = e.Conn.ListUnitsByNamesContext(ctx, names); err != nil {
			return fmt.Errorf("list units: %w", err)
		}
	}
	for _, st := range states {
		m := here[st.Name]
		running := st.ActiveState == "active" || st.ActiveState == "activating" || st.ActiveState == "reloading"
		switch {
		case m.job.Target == registry.TargetLaunched && !running && !stopping:
			if st.ActiveState == "failed" {
				e.Conn.ResetFailedUnitContext(ctx, st.Name)
			}
			if _, err := e.Conn.StartUnitContext(ctx, st.Name, "replace", nil); err != nil {
				e.Log.WithError(err).WithField("unit", st.Name).Warn("fleet executor: start")
			}
		case m.job.Target == registry.TargetLoaded && running:
			if _, err := e.Conn.StopUnitContext(ctx, st.Name, "replace", nil); err != nil {
				e.Log.WithError(err).WithField("unit", st.Name).Warn("fleet executor: stop")
			}
		}
	}
	return e.report(ctx, here, states)
}

// report writes each unit's state when it changed, and deletes the
// states of units no longer here.
func (e *Executor) report(ctx context.Context, here map[string]mine, states []sdbus.UnitStatus) error {
	if e.reported == nil {
		e.reported = map[string]registry.FleetState{}
	}
	var opts []clientv3.OpOption
	if e.Lease != nil {
		if id := e.Lease(); id != e.lease {
			clear(e.reported) // a new lease (the old one expired): write everything again
			e.lease = id
		}
	}
	if e.lease != 0 {
		opts = append(opts, clientv3.WithLease(e.lease))
	}
	var ops []clientv3.Op
	seen := map[string]bool{}
	for _, st := range states {
		s := registry.FleetState{Machine: e.Machine, Hash: here[st.Name].job.Hash, Load: st.LoadState, Active: st.ActiveState, Sub: st.SubState}
		seen[st.Name] = true
		if e.reported[st.Name] == s {
			continue
		}
		b, _ := json.Marshal(s)
		ops = append(ops, clientv3.OpPut(e.Keys.FleetState(st.Name), string(b), opts...))
		e.reported[st.Name] = s
	}
	for name := range e.reported {
		if !seen[name] {
			// Only if it is still ours: the unit may run elsewhere now.
			k := e.Keys.FleetState(name)
			if _, err := e.Client.Txn(ctx).If(clientv3.Compare(clientv3.Value(k), "=", mustJSON(e.reported[name]))).
				Then(clientv3.OpDelete(k)).Commit(); err != nil {
				return err
			}
			delete(e.reported, name)
		}
	}
	for len(ops) > 0 {
		n := min(len(ops), 100)
		if _, err := e.Client.Txn(ctx).Then(ops[:n]...).Commit(); err != nil {
			return err
		}
		ops = ops[n:]
	}
	return nil
}

// ownedFiles lists the files in Dir this executor wrote.
func (e *Executor) ownedFiles() ([]string, error) {
	entries, err := os.ReadDir(e.Dir)
	if os.IsNotExist(err) {
		return nil, nil // nothing written yet
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, de := range entries {
		if _, err := ParseName(de.Name()); err != nil {
			continue // a file being written, or not a unit
		}
		b, err := os.ReadFile(filepath.Join(e.Dir, de.Name()))
		if err == nil && bytes.HasPrefix(b, []byte(header)) {
			out = append(out, de.Name())
		}
	}
	return out, nil
}

func writeFile(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
