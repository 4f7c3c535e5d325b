package deploy

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/spec"
)

// Driver starts and stops single instances of a release. Both calls are
// idempotent; StopInstance returns once the instance has left the routes
// and stopped.
type Driver interface {
	// StartInstance starts instance n of app's generation (app.Gen()).
	StartInstance(ctx context.Context, app *spec.App, n string) error
	// StopInstance stops the instance with registry id id.
	StopInstance(ctx context.Context, app, id string) error
}

// Deployer carries out the rollouts in etcd, one step at a time: each
// step is one driver action followed by the rollout's new state, written
// only if the rollout did not change meanwhile. A deployer that stops
// half-way leaves a state the next one continues from. Run one per
// cluster (berth up runs one; on a cluster the scheduler's leader).
type Deployer struct {
	KV     clientv3.KV
	Keys   registry.Keys
	Driver Driver
	Log    logrus.FieldLogger
	// Now is the clock (default time.Now).
	Now func() time.Time
	// Interval is the longest time between two passes (default 1s).
	Interval time.Duration
}

// Run steps every active rollout after each registry change and every
// Interval, until ctx ends.
func (d *Deployer) Run(ctx context.Context, src registry.Source) error {
	interval := d.Interval
	if interval == 0 {
		interval = time.Second
	}
	ch, cancel := src.Subscribe()
	defer cancel()
	select {
	case <-src.Synced():
	case <-ctx.Done():
		return ctx.Err()
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		snap := src.Snapshot()
		for app, r := range snap.Rollouts {
			if !r.Active() {
				continue
			}
			if err := d.Step(ctx, app, snap); err != nil && ctx.Err() == nil {
				d.Log.WithError(err).WithField("app", app).Warn("deploy step")
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
		case <-t.C:
		}
	}
}

func (d *Deployer) now() time.Time {
	if d.Now == nil {
		return time.Now()
	}
	return d.Now()
}

// rollout is one step's view of an app's rollout.
type rollout struct {
	*registry.Rollout
	rev     int64
	to      *registry.Release
	from    *registry.Release // nil for a first release
	live    *spec.App         // apps/<app>: the serving spec (generation From)
	liveNew map[string]bool   // instance numbers of To that are up
	liveOld int               // up instances of other generations
}

// Step makes at most one move of app's rollout, as snap shows the
// instances.
func (d *Deployer) Step(ctx context.Context, app string, snap *registry.Snapshot) error {
	st, err := read(ctx, d.KV, d.Keys, app)
	if err != nil {
		return err
	}
	if st.rollout == nil || !st.rollout.Active() {
		return nil
	}
	r := &rollout{Rollout: st.rollout, rev: st.roRev, live: st.live, liveNew: map[string]bool{}}
	for _, rel := range st.releases {
		switch rel.Gen {
		case r.To:
			r.to = rel
		case r.From:
			r.from = rel
		}
	}
	if r.to == nil {
		r.Phase, r.Message = registry.PhaseRolledBack, fmt.Sprintf("release %d is gone", r.To)
		_, err := save(ctx, d.KV, d.Keys, r.Rollout, r.rev)
		return err
	}
	for _, in := range snap.Live(app) {
		if gen, n := registry.SplitInstanceID(in.ID); gen == r.To && in.Generation() == r.To {
			r.liveNew[n] = true
		} else {
			r.liveOld++
		}
	}
	now := d.now().UnixMilli()
	log := d.Log.WithFields(logrus.Fields{"app": app, "to": r.To, "phase": r.Phase})
	if len(r.liveNew) > r.Healthy {
		r.Healthy, r.Deadline = len(r.liveNew), now+r.Timeout
		log.WithField("healthy", r.Healthy).Info("deploy: new instance healthy")
		if _, err := save(ctx, d.KV, d.Keys, r.Rollout, r.rev); err != nil {
			return err
		}
		return nil // the next pass goes on from the saved state
	}
	if r.waiting() && now > r.Deadline && r.Phase != registry.PhaseRollingBack && r.Phase != registry.PhaseSwitched {
		r.Phase = registry.PhaseRollingBack
		r.Message = fmt.Sprintf("%d of %d started instances of %s healthy, none more within %s: rolled back",
			len(r.liveNew), len(r.Started), r.to.Version, time.Duration(r.Timeout)*time.Millisecond)
		log.Warn("deploy: " + r.Message)
		_, err := save(ctx, d.KV, d.Keys, r.Rollout, r.rev)
		return err
	}
	if reason := canaryFailing(r, snap); reason != "" {
		r.Phase, r.Message = registry.PhaseRollingBack, reason
		log.Warn("deploy: " + reason)
		_, err := save(ctx, d.KV, d.Keys, r.Rollout, r.rev)
		return err
	}
	switch r.Phase {
	case registry.PhaseRolling:
		return d.rolling(ctx, r, now)
	case registry.PhaseStarting:
		return d.starting(ctx, r, now)
	case registry.PhaseCanary:
		return d.canary(ctx, r, now)
	case registry.PhaseSwitched:
		return d.switched(ctx, r, now)
	case registry.PhaseRollingBack:
		return d.rollingBack(ctx, r, now)
	}
	return nil
}

// waiting reports whether started instances of To are not up yet.
func (r *rollout) waiting() bool {
	for _, n := range r.Started {
		if !r.liveNew[n] {
			return true
		}
	}
	return false
}

// want is the number of instances of To.
func (r *rollout) want() int { return r.to.Spec.Instances }

// oldLeft returns the registry ids of the serving generation's instances
// not stopped yet, in order.
func (r *rollout) oldLeft() []string {
	if r.live == nil || r.From == 0 {
		return nil
	}
	var ids []string
	for i := 1; i <= r.live.Instances; i++ {
		id := registry.InstanceID(r.From, strconv.Itoa(i))
		if !slices.Contains(r.Stopped, id) {
			ids = append(ids, id)
		}
	}
	return ids
}

// startNext starts the next instance of To if fewer than want are
// started and fewer than MaxSurge are still coming up; it reports whether
// it did.
func (d *Deployer) startNext(ctx context.Context, r *rollout, want, now int64) (bool, error) {
	pending := 0
	for _, n := range r.Started {
		if !r.liveNew[n] {
			pending++
		}
	}
	if int64(len(r.Started)) >= want || pending >= max(r.MaxSurge, 1) {
		return false, nil
	}
	n := strconv.Itoa(len(r.Started) + 1)
	if err := d.Driver.StartInstance(ctx, r.to.Spec, n); err != nil {
		return false, fmt.Errorf("start %s: %w", registry.InstanceID(r.To, n), err)
	}
	r.Started = append(r.Started, n)
	if pending == 0 {
		r.Deadline = now + r.Timeout
	}
	_, err := save(ctx, d.KV, d.Keys, r.Rollout, r.rev)
	return true, err
}

// stopOld stops one instance of the serving generation (the highest
// first) and records it.
func (d *Deployer) stopOld(ctx context.Context, r *rollout) error {
	left := r.oldLeft()
	id := left[len(left)-1]
	if err := d.Driver.StopInstance(ctx, r.App, id); err != nil {
		return fmt.Errorf("stop %s: %w", id, err)
	}
	r.Stopped = append(r.Stopped, id)
	_, err := save(ctx, d.KV, d.Keys, r.Rollout, r.rev)
	return err
}

// rolling: surge, wait healthy, stop an old one, repeat.
func (d *Deployer) rolling(ctx context.Context, r *rollout, now int64) error {
	if did, err := d.startNext(ctx, r, int64(r.want()), now); did || err != nil {
		return err
	}
	left := r.oldLeft()
	if len(left) > 0 && len(r.liveNew) > len(r.Stopped) {
		return d.stopOld(ctx, r)
	}
	if len(r.liveNew) >= r.want() && len(left) == 0 {
		return d.finish(ctx, r, now)
	}
	return nil
}

// starting (blue-green): the whole new set, then the switch.
func (d *Deployer) starting(ctx context.Context, r *rollout, now int64) error {
	r.MaxSurge = r.want() // the whole set at once
	if did, err := d.startNext(ctx, r, int64(r.want()), now); did || err != nil {
		return err
	}
	if len(r.liveNew) >= r.want() {
		r.Phase, r.Message = registry.PhaseSwitched, "the new set is healthy: switched"
		_, err := save(ctx, d.KV, d.Keys, r.Rollout, r.rev)
		return err
	}
	return nil
}

// switched (blue-green): the old set stops.
func (d *Deployer) switched(ctx context.Context, r *rollout, now int64) error {
	if len(r.oldLeft()) > 0 {
		return d.stopOld(ctx, r)
	}
	return d.finish(ctx, r, now)
}

// canary: Canary percent of the instances (at least one) run the new
// version and take that share of requests until promoted or aborted.
func (d *Deployer) canary(ctx context.Context, r *rollout, now int64) error {
	n := max(1, (r.want()*r.Canary+99)/100)
	_, err := d.startNext(ctx, r, int64(n), now)
	return err
}

// rollingBack: the new generation's instances stop, the old ones stopped
// so far start again; once the old set is back, the release is marked
// rolled back.
func (d *Deployer) rollingBack(ctx context.Context, r *rollout, now int64) error {
	for _, n := range r.Started {
		if err := d.Driver.StopInstance(ctx, r.App, registry.InstanceID(r.To, n)); err != nil {
			return err
		}
	}
	r.Started = nil
	if r.live != nil {
		for _, id := range r.Stopped {
			_, n := registry.SplitInstanceID(id)
			if err := d.Driver.StartInstance(ctx, r.live, n); err != nil {
				return err
			}
		}
	}
	r.Stopped = nil
	if r.live != nil && r.liveOld < r.live.Instances {
		_, err := save(ctx, d.KV, d.Keys, r.Rollout, r.rev) // wait for the old set
		return err
	}
	r.to.Outcome, r.to.Reason, r.to.Ended = registry.OutcomeRolledBack, r.Message, now
	op, err := putRelease(d.Keys, r.App, r.to)
	if err != nil {
		return err
	}
	r.Phase = registry.PhaseRolledBack
	d.Log.WithFields(logrus.Fields{"app": r.App, "version": r.to.Version, "reason": r.Message}).Warn("deploy rolled back")
	_, err = save(ctx, d.KV, d.Keys, r.Rollout, r.rev, op)
	return err
}

// finish makes To the serving release: its spec becomes apps/<app> (with
// its domains), its outcome live, the previous one's superseded.
func (d *Deployer) finish(ctx context.Context, r *rollout, now int64) error {
	if err := registry.PublishApp(ctx, d.KV, d.Keys, r.to.Spec); err != nil {
		return err
	}
	r.to.Outcome, r.to.Ended = registry.OutcomeLive, now
	ops := []clientv3.Op{}
	op, err := putRelease(d.Keys, r.App, r.to)
	if err != nil {
		return err
	}
	ops = append(ops, op)
	if r.from != nil && r.from.Outcome == registry.OutcomeLive {
		r.from.Outcome, r.from.Ended = registry.OutcomeSuperseded, now
		op, _ := putRelease(d.Keys, r.App, r.from)
		ops = append(ops, op)
	}
	r.Phase, r.Message = registry.PhaseDone, fmt.Sprintf("%s live on %d instances", r.to.Version, len(r.liveNew))
	d.Log.WithFields(logrus.Fields{"app": r.App, "version": r.to.Version}).Info("deploy done")
	_, err = save(ctx, d.KV, d.Keys, r.Rollout, r.rev, ops...)
	return err
}

// minCanaryRequests is how many responses of the canary the routers must
// have counted before its error rate is judged. A canary that keeps
// failing is soon out of the routers' rotation (passive health: one
// request per instance per fail window), so it gathers few responses: the
// bar is low.
const minCanaryRequests = 10

// canaryFailing returns why a canary is rolled back: the share of 5xx
// among its responses, summed over every router's access record, above
// MaxErrorRate ("" while it is not, or not judged yet).
func canaryFailing(r *rollout, snap *registry.Snapshot) string {
	if r.Phase != registry.PhaseCanary || r.MaxErrorRate <= 0 {
		return ""
	}
	var requests, errs int64
	for _, a := range snap.Access[r.App] {
		c := a.Gens[r.To]
		requests += c.Requests
		errs += c.Errors5xx
	}
	if requests < minCanaryRequests || float64(errs) <= r.MaxErrorRate*float64(requests) {
		return ""
	}
	return fmt.Sprintf("canary %s answered %d of %d requests with 5xx (%.1f%%, more than --max-error-rate %.1f%%): rolled back",
		r.to.Version, errs, requests, 100*float64(errs)/float64(requests), 100*r.MaxErrorRate)
}
