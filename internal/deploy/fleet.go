package deploy

import (
	"context"
	"errors"
	"fmt"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/berthproject/berth/internal/fleet"
	"github.com/berthproject/berth/internal/leader"
	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/spec"
	"github.com/berthproject/berth/units"
)

// Fleet carries a cluster's deploys out through berth fleet: a release's
// template is submitted as <app>.<gen>@.service (the first release's as
// <app>@.service), its instances are started as jobs and stopped by
// destroying them; the scheduler places them and the executors run them.
type Fleet struct {
	Store *fleet.Store
	Units units.Options // how the templates are rendered
	// StopTimeout bounds the wait for a destroyed instance to leave the
	// registry (default 2m).
	StopTimeout time.Duration
}

// StartInstance implements Driver.
func (f *Fleet) StartInstance(ctx context.Context, app *spec.App, n string) error {
	files, err := units.Render(app, f.Units)
	if err != nil {
		return err
	}
	tmpl := files[0]
	// A template already submitted under that name (the first release,
	// submitted by hand with berth fleet) is the release's as it is.
	if err := f.Store.Submit(ctx, tmpl.Name, tmpl.Content); err != nil && !errors.Is(err, fleet.ErrChanged) {
		return err
	}
	return f.Store.SetTarget(ctx, units.InstanceName(units.Prefix(app), n), registry.TargetLaunched)
}

// StopInstance implements Driver: the instance's job is destroyed, and
// the call returns once its record has left the registry (its unit
// drained and stopped on its machine).
func (f *Fleet) StopInstance(ctx context.Context, app, id string) error {
	unit := units.UnitOfID(app, id)
	if err := f.Store.Destroy(ctx, unit); err != nil && !errors.Is(err, fleet.ErrNoUnit) {
		return err
	}
	key, err := f.Store.Keys.Instance(app, id)
	if err != nil {
		return err
	}
	timeout := f.StopTimeout
	if timeout == 0 {
		timeout = 2 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		resp, err := f.Store.KV.Get(ctx, key, clientv3.WithCountOnly())
		if err == nil && resp.Count == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s still registered after its job was destroyed: %w", unit, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// RunElected runs the deployer while it leads the cluster's deployer
// election (one at a time, like berth fleet's scheduler). Actions are
// idempotent and each step is a compare-and-swap, so a deposed leader's
// last step is harmless.
func (d *Deployer) RunElected(ctx context.Context, c leader.Config, src registry.Source) error {
	return leader.Run(ctx, c, func(ctx context.Context, sess *concurrency.Session, _ *concurrency.Election) error {
		ctx, cancel := context.WithCancel(ctx)
		defer cancel()
		go func() {
			select {
			case <-sess.Done(): // the term ends with the session
				cancel()
			case <-ctx.Done():
			}
		}()
		return d.Run(ctx, src)
	})
}

// Interface guards
var (
	_ Driver = (*Fleet)(nil)
)
