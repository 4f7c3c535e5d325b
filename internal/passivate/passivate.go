// Package passivate decides which apps are idle past their timeout and
// passivates them: one etcd transaction per app (started → passivated,
// expected passivated), then the driver stops the app's units. Domains and
// routes stay known, so the next request finds the app and wakes it.
package passivate

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/control"
	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/spec"
)

// Config configures a pass. Zero values take the documented defaults.
type Config struct {
	// MinUptime: an app started less than this long ago is never
	// passivated (default 1m, or the app's idle timeout if shorter).
	MinUptime time.Duration
	// DryRun decides without changing anything.
	DryRun bool
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Decision is what a pass decided for one app.
type Decision struct {
	App       string `json:"app"`
	Passivate bool   `json:"passivate"`
	Reason    string `json:"reason"`
}

// Passivator runs passes.
type Passivator struct {
	KV     clientv3.KV
	Keys   registry.Keys
	Driver control.Driver // nil: the expected state alone (agents act on it)
	Log    logrus.FieldLogger
	Cfg    Config

	passivations prometheus.Counter
}

// Collectors returns the metrics.
func (p *Passivator) Collectors() []prometheus.Collector {
	p.init()
	return []prometheus.Collector{p.passivations}
}

func (p *Passivator) init() {
	if p.passivations == nil {
		p.passivations = prometheus.NewCounter(prometheus.CounterOpts{Name: "berth_passivations_total", Help: "Apps passivated."})
	}
	if p.Cfg.Now == nil {
		p.Cfg.Now = time.Now
	}
	if p.Cfg.MinUptime == 0 {
		p.Cfg.MinUptime = time.Minute
	}
}

// Decide reports, for every app with an idle timeout, whether it should be
// passivated now, and why.
func (p *Passivator) Decide(s *registry.Snapshot) []Decision {
	p.init()
	now := p.Cfg.Now()
	var out []Decision
	for name, app := range s.Apps {
		if app.IdleTimeout == 0 {
			continue
		}
		out = append(out, p.decide(s, name, app, now))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].App < out[j].App })
	return out
}

func (p *Passivator) decide(s *registry.Snapshot, name string, app *spec.App, now time.Time) Decision {
	keep := func(format string, args ...any) Decision {
		return Decision{App: name, Reason: fmt.Sprintf(format, args...)}
	}
	st := s.Status[name]
	if st == nil || st.Current != registry.StatusStarted {
		cur := "unknown"
		if st != nil {
			cur = st.Current
		}
		return keep("not running (status %s)", cur)
	}
	since := time.UnixMilli(st.Since)
	minUp := min(p.Cfg.MinUptime, app.IdleTimeout.D()) // an idle timeout shorter than it wins
	if up := now.Sub(since); up < minUp {
		return keep("started %s ago (minimum uptime %s)", up.Round(time.Second), minUp)
	}
	if w, ok := inWindow(app.KeepWarm, now); ok {
		return keep("inside keep-warm window %s", w)
	}
	last, conns := s.LastAccess(name)
	if conns > 0 {
		return keep("%d open connection(s)", conns)
	}
	activity := since
	if last > 0 && time.UnixMilli(last).After(activity) {
		activity = time.UnixMilli(last)
	}
	idle := now.Sub(activity)
	if idle < app.IdleTimeout.D() {
		return keep("idle %s of %s", idle.Round(time.Second), app.IdleTimeout)
	}
	return Decision{App: name, Passivate: true, Reason: fmt.Sprintf("idle %s (timeout %s)", idle.Round(time.Second), app.IdleTimeout)}
}

// inWindow reports whether now (UTC) is inside one of the daily windows.
func inWindow(ws []spec.Window, now time.Time) (spec.Window, bool) {
	mins := now.UTC().Hour()*60 + now.UTC().Minute()
	for _, w := range ws {
		var h1, m1, h2, m2 int
		if _, err := fmt.Sscanf(string(w), "%d:%d-%d:%d", &h1, &m1, &h2, &m2); err != nil {
			continue
		}
		from, to := h1*60+m1, h2*60+m2
		if (from <= to && mins >= from && mins < to) || (from > to && (mins >= from || mins < to)) {
			return w, true
		}
	}
	return "", false
}

// Pass decides and passivates. Each passivation is a transaction that
// succeeds only if the status did not change since it was read, so
// concurrent passes (one timer per node) passivate an app once.
func (p *Passivator) Pass(ctx context.Context, s *registry.Snapshot) ([]Decision, error) {
	decisions := p.Decide(s)
	var errs []error
	for i, d := range decisions {
		if !d.Passivate || p.Cfg.DryRun {
			continue
		}
		if err := p.passivate(ctx, s.Apps[d.App]); err != nil {
			decisions[i].Passivate = false
			decisions[i].Reason = err.Error()
			if !errors.Is(err, registry.ErrConflict) {
				errs = append(errs, fmt.Errorf("passivate %s: %w", d.App, err))
			}
		}
	}
	return decisions, errors.Join(errs...)
}

func (p *Passivator) passivate(ctx context.Context, app *spec.App) error {
	if err := Passivate(ctx, p.KV, p.Keys, app.Name); err != nil {
		return err
	}
	p.passivations.Inc()
	p.Log.WithField("app", app.Name).Info("passivated")
	if p.Driver != nil {
		return p.Driver.Stop(ctx, app)
	}
	return nil
}

// Passivate moves one running app to passivated (current and expected) in
// a transaction that succeeds only if its status did not change since it
// was read; an app that is not running (current started) is
// registry.ErrConflict. Node agents, berth fleet's executors and berth
// up's reconciler then stop its units. The passivation pass and the API
// both use it.
func Passivate(ctx context.Context, kv clientv3.KV, k registry.Keys, app string) error {
	cur, rev, err := registry.GetStatus(ctx, kv, k, app)
	if err != nil {
		return err
	}
	if cur == nil || cur.Current != registry.StatusStarted {
		return fmt.Errorf("%w: %s is not running", registry.ErrConflict, app)
	}
	next := registry.Status{Current: registry.StatusPassivated, Expected: registry.StatusPassivated, Units: cur.Units}
	_, err = registry.Transition(ctx, kv, k, app, rev, next)
	return err
}
