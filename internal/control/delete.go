package control

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/units"
)

// Remover takes an app's units off the cluster for good: the step of a
// delete between marking the app deleted and purging its records.
type Remover interface {
	// Remove stops and removes the app's units. instances are the
	// instance units the registry knows of (from the spec's instance
	// count, the status and the instance records); a driver may find
	// more itself. It returns what it did, a line each, for the operator.
	Remove(ctx context.Context, app string, instances []string) ([]string, error)
}

// RemoverFunc is a function used as a Remover.
type RemoverFunc func(ctx context.Context, app string, instances []string) ([]string, error)

// Remove implements Remover.
func (f RemoverFunc) Remove(ctx context.Context, app string, instances []string) ([]string, error) {
	return f(ctx, app, instances)
}

// ErrStillRegistered is returned (wrapped) by Delete when instances of the
// app are still registered after the wait: their units may still run, so
// the app stays marked deleted and its records are kept.
var ErrStillRegistered = errors.New("still registered")

// Deleter deletes apps, in an order that lets nothing bring them back:
//
//  1. registry.MarkDeleted: the spec and the domains go, the status is
//     marked expected deleted (routers drop the domains; nothing starts,
//     wakes or passivates the app; berth up stops its processes);
//  2. the Remover stops and removes the app's units;
//  3. it waits until the app's instances have deregistered;
//  4. registry.PurgeApp: status, instance and access records (and the
//     SkyDNS mirror) go; routers answer 404 for the app, dnsd NXDOMAIN.
//
// A delete that fails after step 1 leaves the app marked; deleting it
// again resumes.
type Deleter struct {
	KV      clientv3.KV
	Keys    registry.Keys
	Remover Remover
	// Node, if set, limits the wait to the instances on this node (the
	// systemd remover reaches this node's units only); instances on other
	// nodes then fail the delete at once, naming them.
	Node string
	// Wait bounds the wait for instances to deregister (default 1m).
	Wait time.Duration
	// RequestTimeout bounds each etcd request (default 5s).
	RequestTimeout time.Duration
	// SkyDNSZone is the zone of the SkyDNS mirror to purge ("" for none).
	SkyDNSZone string
	Log        logrus.FieldLogger
}

// Deleted is what a delete did.
type Deleted struct {
	App     string           `json:"app"`
	Spec    bool             `json:"spec"`              // the spec was removed (false: an earlier, interrupted delete did)
	Domains []string         `json:"domains,omitempty"` // domains removed with the spec
	Units   []string         `json:"units,omitempty"`   // what the driver did, a line each
	Waited  string           `json:"waited"`            // for the instances to deregister
	Purged  *registry.Purged `json:"purged,omitempty"`  // the records removed last
}

func (d *Deleter) request(ctx context.Context) (context.Context, context.CancelFunc) {
	if d.RequestTimeout == 0 {
		return context.WithTimeout(ctx, 5*time.Second)
	}
	return context.WithTimeout(ctx, d.RequestTimeout)
}

// Delete deletes one app. An app without any record is
// registry.ErrNotFound (wrapped). On an error after the mark, the
// returned Deleted says what was done.
func (d *Deleter) Delete(ctx context.Context, app string) (*Deleted, error) {
	log := d.Log.WithField("app", app)
	rctx, cancel := d.request(ctx)
	r, err := registry.MarkDeleted(rctx, d.KV, d.Keys, app)
	cancel()
	if err != nil {
		return nil, err
	}
	out := &Deleted{App: app, Spec: r.Spec != nil, Domains: r.Domains}
	log.WithField("domains", r.Domains).Debug("marked deleted")
	out.Units, err = d.Remover.Remove(ctx, app, instanceUnits(r))
	if err != nil {
		return out, fmt.Errorf("remove the units of %s: %w (it stays marked deleted; delete it again to retry)", app, err)
	}
	log.WithField("units", out.Units).Debug("units removed")
	start := time.Now()
	err = d.waitDeregistered(ctx, app)
	out.Waited = time.Since(start).Round(time.Millisecond).String()
	if err != nil {
		return out, err
	}
	rctx, cancel = d.request(ctx)
	out.Purged, err = registry.PurgeApp(rctx, d.KV, d.Keys, app, d.SkyDNSZone)
	cancel()
	if err != nil {
		return out, err
	}
	log.Debug("deleted")
	return out, nil
}

// instanceUnits are the instance units the records know of: one per
// instance the spec asks for, those in the status and those of the
// instance records, sorted.
func instanceUnits(r *registry.AppRecords) []string {
	var out []string
	if r.Spec != nil {
		for i := 1; i <= r.Spec.Instances; i++ {
			out = append(out, units.InstanceName(r.App, strconv.Itoa(i)))
		}
	}
	if r.Status != nil {
		for _, us := range r.Status.Units {
			out = append(out, us...)
		}
	}
	for _, in := range r.Instances {
		if in.Unit != "" {
			out = append(out, in.Unit)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// waitDeregistered waits until the instances the remover answers for
// (this node's, or all) have left the registry, up to d.Wait.
func (d *Deleter) waitDeregistered(ctx context.Context, app string) error {
	wait := d.Wait
	if wait == 0 {
		wait = time.Minute
	}
	deadline := time.Now().Add(wait)
	for {
		rctx, cancel := d.request(ctx)
		r, err := registry.ReadApp(rctx, d.KV, d.Keys, app)
		cancel()
		if err != nil {
			return err
		}
		var here, elsewhere []*registry.Instance
		for _, in := range r.Instances {
			if d.Node == "" || in.Node == d.Node {
				here = append(here, in)
			} else {
				elsewhere = append(elsewhere, in)
			}
		}
		switch {
		case len(here) == 0 && len(elsewhere) > 0:
			return fmt.Errorf("%d instance(s) of %s on other nodes %w: %s; %s stays marked deleted and its records are kept: "+
				"stop their units there, then delete it again", len(elsewhere), app, ErrStillRegistered, describe(elsewhere), app)
		case len(here) == 0:
			return nil
		case time.Now().After(deadline):
			return fmt.Errorf("%d instance(s) of %s %w after %s: %s; %s stays marked deleted and its records are kept: "+
				"once their units are stopped, delete it again", len(here), app, ErrStillRegistered, wait, describe(here), app)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func describe(ins []*registry.Instance) string {
	var parts []string
	for _, in := range ins {
		unit := in.Unit
		if unit == "" {
			unit = "instance " + in.ID
		}
		parts = append(parts, fmt.Sprintf("%s on %s (%s)", unit, in.Node, in.Addr))
	}
	return strings.Join(parts, ", ")
}
