package agent

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	sdbus "github.com/coreos/go-systemd/v22/dbus"
	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/control"
	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/units"
)

// Systemd reconciles this node's berth units with the registry: it reports
// failed units into the app status, records which units of an app run on
// this node (status.units[node]), stops them when the app's expected state
// becomes passivated and starts the recorded ones when it becomes started.
type Systemd struct {
	Conn     *sdbus.Conn
	KV       clientv3.KV
	Keys     registry.Keys
	Node     string
	Log      logrus.FieldLogger
	Interval time.Duration // default 1s
	// Fleet reports berth fleet's view (nil: no berth fleet). The stop on
	// passivation and the start on a wake of an app that has jobs are its
	// executors', on whatever machine each unit is placed now: a unit that
	// ran here before it moved, or whose job is gone (a deploy replaced
	// it), is not started here again, and its failure is not the app's.
	Fleet interface {
		IsJob(unit string) bool
		HasJobs(app string) bool
	}
}

// unitApp returns the app of an instance unit "<app>@<id>.service".
func unitApp(name string) (string, bool) {
	prefix, rest, ok := strings.Cut(name, "@")
	app, gen := units.AppOfPrefix(prefix) // "<app>.<gen>@<n>.service": a later release's
	return app, ok && gen > 0 && strings.HasSuffix(rest, ".service") && rest != ".service"
}

// Run reconciles every Interval and after every registry change, until
// ctx ends or systemd cannot be asked (then the caller reconnects).
func (s *Systemd) Run(ctx context.Context, src interface {
	Snapshot() *registry.Snapshot
	Subscribe() (<-chan struct{}, func())
}) error {
	interval := s.Interval
	if interval == 0 {
		interval = time.Second
	}
	ch, cancel := src.Subscribe()
	defer cancel()
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if err := s.reconcile(ctx, src.Snapshot()); err != nil {
			return err // the bus is gone: the caller reconnects
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		case <-ch:
		}
	}
}

func (s *Systemd) reconcile(ctx context.Context, snap *registry.Snapshot) error {
	units, err := s.Conn.ListUnitsByPatternsContext(ctx, nil, []string{"*@*.service"})
	if err != nil {
		return fmt.Errorf("list units: %w", err)
	}
	byApp := map[string][]sdbus.UnitStatus{}
	for _, u := range units {
		if app, ok := unitApp(u.Name); ok && snap.Apps[app] != nil {
			byApp[app] = append(byApp[app], u)
		}
	}
	for app := range snap.Apps {
		if err := s.reconcileApp(ctx, app, byApp[app], snap.Status[app]); err != nil {
			s.Log.WithError(err).WithField("app", app).Warn("reconcile app")
		}
	}
	return nil
}

func (s *Systemd) reconcileApp(ctx context.Context, app string, units []sdbus.UnitStatus, st *registry.Status) error {
	log := s.Log.WithField("app", app)
	expected := registry.StatusStarted
	current := ""
	var recorded []string
	if st != nil {
		if st.Expected != "" {
			expected = st.Expected
		}
		current = st.Current
		recorded = st.Units[s.Node]
	}
	active := map[string]bool{}
	var failed []string
	for _, u := range units {
		switch u.ActiveState {
		case "active", "activating", "reloading":
			active[u.Name] = true
		case "failed":
			failed = append(failed, u.Name)
		}
	}
	fleetApp := s.Fleet != nil && s.Fleet.HasJobs(app)
	if fleetApp {
		failed = slices.DeleteFunc(failed, func(name string) bool { return !s.Fleet.IsJob(name) })
	}

	// 1. Expected state.
	switch {
	case fleetApp:
		// The fleet executors carry the expected state out.
	case expected == registry.StatusPassivated:
		if len(active) == 0 {
			return nil
		}
		names := slices.Sorted(maps.Keys(active))
		log.WithField("units", names).Info("stopping units of passivated app")
		return control.StopUnits(ctx, s.Conn, names, false) // the recorded units are kept for the wake
	case expected == registry.StatusStarted:
		if current != registry.StatusStarted && current != registry.StatusFailed {
			for _, name := range recorded {
				if active[name] {
					continue
				}
				if slices.Contains(failed, name) {
					// A wake starts every unit that ran here, failed ones
					// too; but not one that failed since the status last
					// changed (a start that failed on its own, such as a
					// pull refused until systemd's start limit): starting it
					// again would retry it forever. It is reported below.
					if st != nil && s.failedSince(ctx, name, st.Since) {
						continue
					}
					s.Conn.ResetFailedUnitContext(ctx, name)
					failed = slices.DeleteFunc(failed, func(f string) bool { return f == name })
				}
				log.WithField("unit", name).Info("starting unit of woken app")
				if _, err := s.Conn.StartUnitContext(ctx, name, "replace", nil); err != nil {
					return fmt.Errorf("start %s: %w", name, err)
				}
				active[name] = true
			}
		}
	}

	// 2. Failures.
	if len(failed) > 0 && current != registry.StatusFailed {
		sort.Strings(failed)
		msg := fmt.Sprintf("%s failed on node %s", strings.Join(failed, ", "), s.Node)
		_, err := registry.Update(ctx, s.KV, s.Keys, app, func(cur *registry.Status) (registry.Status, bool) {
			next := registry.Status{Current: registry.StatusFailed, Expected: expected, Message: msg}
			if cur != nil {
				if cur.Current == registry.StatusFailed || cur.Expected == registry.StatusDeleted {
					return *cur, false // reported already, or being deleted (berth delete's mark stays)
				}
				next.Units = cur.Units
			}
			log.Warn(msg)
			return next, true
		})
		if err != nil {
			return err
		}
	}

	// 3. Record the units running here. A crashed unit waiting for its
	// restart is "activating", so an inactive unit while the app runs was
	// stopped on purpose: it leaves the record, and a wake will not start
	// it. During a start or a wake (status not yet started) nothing leaves.
	want := map[string]bool{}
	for name := range active {
		want[name] = true
	}
	if current != registry.StatusStarted {
		for _, name := range recorded {
			want[name] = true
		}
	}
	next := make([]string, 0, len(want))
	for name := range want {
		next = append(next, name)
	}
	sort.Strings(next)
	if slices.Equal(next, recorded) {
		return nil
	}
	_, err := registry.Update(ctx, s.KV, s.Keys, app, func(cur *registry.Status) (registry.Status, bool) {
		n := registry.Status{Current: registry.StatusStarting, Expected: registry.StatusStarted}
		if cur != nil {
			n = *cur
		}
		if slices.Equal(n.Units[s.Node], next) {
			return n, false
		}
		units := map[string][]string{}
		for k, v := range n.Units {
			units[k] = v
		}
		if len(next) == 0 {
			delete(units, s.Node)
		} else {
			units[s.Node] = next
		}
		n.Units = units
		return n, true
	})
	return err
}

// failedSince reports whether unit entered its state (failed) at or after
// sinceMS (unix ms, a status's Since), by the unit's StateChangeTimestamp.
// When the time cannot be read the failure counts as new: the unit is
// left failed rather than started again.
func (s *Systemd) failedSince(ctx context.Context, unit string, sinceMS int64) bool {
	p, err := s.Conn.GetUnitPropertyContext(ctx, unit, "StateChangeTimestamp")
	if err != nil {
		return true
	}
	usec, ok := p.Value.Value().(uint64)
	if !ok {
		return true
	}
	return int64(usec/1000) >= sinceMS
}
