package control

import (
	"context"

	"github.com/sirupsen/logrus"

	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/spec"
)

// Source is the registry view a Reconciler follows.
type Source = registry.Source

// Reconciler carries out each app's expected state (status.expected) with a
// driver: started (or no status yet) → Start, passivated → Stop. It acts
// when the expected state or the instance count of an app changes, and
// once for every app at start. An app whose spec is deleted (berth
// delete) is stopped.
type Reconciler struct {
	Src    Source
	Driver Driver
	// Manages reports whether this reconciler is responsible for an app
	// (default: every app with a spec).
	Manages func(app *spec.App) bool
	Log     logrus.FieldLogger
}

// Run reconciles until ctx ends.
func (r *Reconciler) Run(ctx context.Context) error {
	ch, cancel := r.Src.Subscribe()
	defer cancel()
	select {
	case <-r.Src.Synced():
	case <-ctx.Done():
		return ctx.Err()
	}
	type state struct {
		want      string
		instances int
	}
	last := map[string]state{}
	acted := map[string]*spec.App{} // the spec last acted on, by app
	for {
		s := r.Src.Snapshot()
		for name, app := range acted {
			if s.Apps[name] != nil {
				continue
			}
			log := r.Log.WithField("app", name)
			log.Info("stopping deleted app")
			if err := r.Driver.Stop(ctx, app); err != nil {
				log.WithError(err).Error("stop deleted app")
				continue // try again at the next change
			}
			delete(acted, name)
			delete(last, name)
		}
		for name, app := range s.Apps {
			if r.Manages != nil && !r.Manages(app) {
				continue
			}
			want := registry.StatusStarted
			if st := s.Status[name]; st != nil && st.Expected == registry.StatusPassivated {
				want = registry.StatusPassivated
			}
			cur := state{want, app.Instances}
			if last[name] == cur {
				continue
			}
			last[name] = cur
			acted[name] = app
			log := r.Log.WithFields(logrus.Fields{"app": name, "expected": want})
			var err error
			if want == registry.StatusPassivated {
				log.Info("stopping passivated app")
				err = r.Driver.Stop(ctx, app)
			} else {
				log.Info("starting app")
				err = r.Driver.Start(ctx, app)
			}
			if err != nil {
				log.WithError(err).Error("reconcile")
				delete(last, name) // try again at the next change
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		}
	}
}
