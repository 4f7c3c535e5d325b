// Package deploy publishes new versions of an app (releases) and drives
// their rollouts from etcd: rolling, blue-green and canary, with automatic
// rollback. Publish, Promote and Abort are what the client runs; the
// Deployer, run by berth up (and on a cluster by the scheduler's leader),
// carries the rollout out through a Driver, so a rollout survives the
// client that started it.
package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/coreos/go-semver/semver"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/spec"
)

// Errors of Publish, Promote and Abort.
var (
	// ErrRunning: a rollout of the app runs; one deploy at a time.
	ErrRunning = errors.New("a deploy of this app is running")
	// ErrNotNewer: the version is not newer than the live one (--force).
	ErrNotNewer = errors.New("version is not newer than the live one")
	// ErrNoRollout: no rollout of the app runs (promote, abort).
	ErrNoRollout = errors.New("no deploy of this app is running")
	// ErrNoRelease: rollback to a version that was never released.
	ErrNoRelease = errors.New("no such release")
	// ErrNotCanary: promote of a deploy that is not in its canary phase.
	ErrNotCanary = errors.New("the deploy is not a canary")
)

// Options of a deploy.
type Options struct {
	Strategy     string        // rolling (default) or blue-green
	Canary       int           // percent of requests to the new version until promoted (0: no canary)
	MaxSurge     int           // new instances starting at once (default 1)
	Timeout      time.Duration // how long the new version may go without a new healthy instance (default 5m)
	MaxErrorRate float64       // canary: 5xx share that rolls back (0: not checked)
	Force        bool          // allow a version not newer than the live one
	By           string        // who deploys (user@host)
	Rollback     bool          // published by berth rollback
	Now          func() time.Time
}

func (o Options) withDefaults() Options {
	if o.Strategy == "" {
		o.Strategy = registry.StrategyRolling
	}
	if o.MaxSurge <= 0 {
		o.MaxSurge = 1
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}

// Validate checks the options.
func (o Options) Validate() error {
	if o.Strategy != "" && o.Strategy != registry.StrategyRolling && o.Strategy != registry.StrategyBlueGreen {
		return fmt.Errorf("--strategy must be %s or %s, got %q", registry.StrategyRolling, registry.StrategyBlueGreen, o.Strategy)
	}
	if o.Canary < 0 || o.Canary > 100 {
		return fmt.Errorf("--canary must be a percentage from 1 to 99, got %d", o.Canary)
	}
	if o.MaxErrorRate < 0 || o.MaxErrorRate > 1 {
		return fmt.Errorf("--max-error-rate must be a fraction from 0 to 1, got %g", o.MaxErrorRate)
	}
	return nil
}

// state is what Publish reads, at one revision.
type state struct {
	live     *spec.App // apps/<app> (nil: never deployed)
	liveRev  int64     // its mod revision (0: absent)
	releases []*registry.Release
	rollout  *registry.Rollout
	roRev    int64
}

func read(ctx context.Context, kv clientv3.KV, k registry.Keys, app string) (*state, error) {
	appKey, err := k.App(app)
	if err != nil {
		return nil, err
	}
	relPrefix, _ := k.Releases(app)
	roKey, _ := k.RolloutKey(app)
	resp, err := kv.Txn(ctx).Then(clientv3.OpGet(appKey), clientv3.OpGet(relPrefix, clientv3.WithPrefix()), clientv3.OpGet(roKey)).Commit()
	if err != nil {
		return nil, err
	}
	st := &state{}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) == 1 {
		var a spec.App
		if err := json.Unmarshal(kvs[0].Value, &a); err != nil {
			return nil, fmt.Errorf("decode %s: %w", appKey, err)
		}
		st.live, st.liveRev = &a, kvs[0].ModRevision
	}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		_, gen, ok := k.ReleaseGen(string(kv.Key))
		var r registry.Release
		if !ok || json.Unmarshal(kv.Value, &r) != nil || r.Spec == nil {
			continue // not a release: skipped (history shows the rest)
		}
		r.App, r.Gen = app, gen
		st.releases = append(st.releases, &r)
	}
	sort.Slice(st.releases, func(i, j int) bool { return st.releases[i].Gen < st.releases[j].Gen })
	if kvs := resp.Responses[2].GetResponseRange().Kvs; len(kvs) == 1 {
		var r registry.Rollout
		if err := json.Unmarshal(kvs[0].Value, &r); err == nil {
			r.App = app
			st.rollout = &r
		}
		st.roRev = kvs[0].ModRevision
	}
	return st, nil
}

// Publish publishes app as the app's next release and starts its rollout:
// refused while another rollout of the app runs (ErrRunning) and, unless
// Force, for a version not newer than the live one (ErrNotNewer). The
// rollout is then the deployer's to carry out.
func Publish(ctx context.Context, kv clientv3.KV, k registry.Keys, app *spec.App, o Options) (*registry.Release, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	o = o.withDefaults()
	next, err := semver.NewVersion(app.Version)
	if err != nil {
		return nil, fmt.Errorf("version %q: %w", app.Version, err)
	}
	if err := registry.EnsureSchema(ctx, kv, k); err != nil {
		return nil, err
	}
	st, err := read(ctx, kv, k, app.Name)
	if err != nil {
		return nil, err
	}
	if st.rollout != nil && st.rollout.Active() {
		return nil, fmt.Errorf("%w: %s → generation %d (%s); wait for it, or berth deploy --abort %s", ErrRunning, app.Name, st.rollout.To, st.rollout.Phase, app.Name)
	}
	var ops []clientv3.Op
	gen, from := int64(1), int64(0)
	for _, r := range st.releases {
		gen = max(gen, r.Gen+1)
	}
	if st.live != nil {
		from = st.live.Gen()
		gen = max(gen, from+1)
		if cur, err := semver.NewVersion(st.live.Version); err == nil && !cur.LessThan(*next) && !o.Force {
			return nil, fmt.Errorf("%w: %s %s is live, the spec says %s (raise version:, or --force)", ErrNotNewer, app.Name, st.live.Version, app.Version)
		}
		if !hasGen(st.releases, from) {
			// Deployed before releases (berth apply): it becomes a release.
			imported := &registry.Release{Gen: from, Version: st.live.Version, Spec: st.live, Strategy: registry.StrategyRolling,
				Outcome: registry.OutcomeLive, Created: o.Now().UnixMilli()}
			op, err := putRelease(k, app.Name, imported)
			if err != nil {
				return nil, err
			}
			ops = append(ops, op)
		}
	}
	next2 := *app
	next2.Generation = gen
	now := o.Now().UnixMilli()
	rel := &registry.Release{Gen: gen, Version: app.Version, Spec: &next2, Created: now, By: o.By, Strategy: o.Strategy,
		Canary: o.Canary, Outcome: registry.OutcomeDeploying, Rollback: o.Rollback}
	ro := &registry.Rollout{From: from, To: gen, Strategy: o.Strategy, Canary: o.Canary, MaxSurge: o.MaxSurge,
		MaxErrorRate: o.MaxErrorRate, Timeout: o.Timeout.Milliseconds(), Deadline: now + o.Timeout.Milliseconds(), Updated: now}
	switch {
	case from == 0:
		ro.Phase = registry.PhaseRolling // the first release: nothing to replace
	case o.Canary > 0:
		ro.Phase = registry.PhaseCanary
	case o.Strategy == registry.StrategyBlueGreen:
		ro.Phase = registry.PhaseStarting
	default:
		ro.Phase = registry.PhaseRolling
	}
	op, err := putRelease(k, app.Name, rel)
	if err != nil {
		return nil, err
	}
	ops = append(ops, op)
	roKey, _ := k.RolloutKey(app.Name)
	appKey, _ := k.App(app.Name)
	relKey, _ := k.ReleaseKey(app.Name, gen)
	b, _ := json.Marshal(ro)
	ops = append(ops, clientv3.OpPut(roKey, string(b)))
	resp, err := kv.Txn(ctx).If(
		clientv3.Compare(clientv3.ModRevision(roKey), "=", st.roRev),
		clientv3.Compare(clientv3.ModRevision(appKey), "=", st.liveRev),
		clientv3.Compare(clientv3.CreateRevision(relKey), "=", 0),
	).Then(ops...).Commit()
	if err != nil {
		return nil, fmt.Errorf("publish %s %s: %w", app.Name, app.Version, err)
	}
	if !resp.Succeeded {
		return nil, fmt.Errorf("%w: %s changed while this deploy was being published; run it again", ErrRunning, app.Name)
	}
	rel.App = app.Name
	return rel, nil
}

func hasGen(rs []*registry.Release, gen int64) bool {
	for _, r := range rs {
		if r.Gen == gen {
			return true
		}
	}
	return false
}

func putRelease(k registry.Keys, app string, r *registry.Release) (clientv3.Op, error) {
	key, err := k.ReleaseKey(app, r.Gen)
	if err != nil {
		return clientv3.Op{}, err
	}
	b, _ := json.Marshal(r)
	return clientv3.OpPut(key, string(b)), nil
}

// History returns an app's releases, oldest first.
func History(ctx context.Context, kv clientv3.KV, k registry.Keys, app string) ([]*registry.Release, *registry.Rollout, error) {
	st, err := read(ctx, kv, k, app)
	if err != nil {
		return nil, nil, err
	}
	return st.releases, st.rollout, nil
}

// Rollback publishes an earlier release's spec again as a new release
// (the live one's predecessor, or the release of version to), rolled out
// like any deploy.
func Rollback(ctx context.Context, kv clientv3.KV, k registry.Keys, app, to string, o Options) (*registry.Release, error) {
	st, err := read(ctx, kv, k, app)
	if err != nil {
		return nil, err
	}
	if st.live == nil {
		return nil, fmt.Errorf("%w: %s was never deployed", ErrNoRelease, app)
	}
	var target *registry.Release
	for i := len(st.releases) - 1; i >= 0; i-- {
		r := st.releases[i]
		if to == "" && r.Gen < st.live.Gen() && r.Version != st.live.Version && (r.Outcome == registry.OutcomeSuperseded || r.Outcome == registry.OutcomeLive) ||
			to != "" && r.Version == to {
			target = r
			break
		}
	}
	if target == nil {
		if to == "" {
			return nil, fmt.Errorf("%w: %s has no earlier release than %s", ErrNoRelease, app, st.live.Version)
		}
		return nil, fmt.Errorf("%w: %s never released version %s (berth history %s)", ErrNoRelease, app, to, app)
	}
	o.Force, o.Rollback = true, true
	return Publish(ctx, kv, k, target.Spec, o)
}

// Promote ends a canary: the rollout goes on with its strategy.
func Promote(ctx context.Context, kv clientv3.KV, k registry.Keys, app string) error {
	return change(ctx, kv, k, app, func(r *registry.Rollout) error {
		if r.Phase != registry.PhaseCanary {
			return fmt.Errorf("%w: %s's deploy is %s: nothing to promote", ErrNotCanary, app, r.Phase)
		}
		r.Phase = registry.PhaseRolling
		if r.Strategy == registry.StrategyBlueGreen {
			r.Phase = registry.PhaseStarting
		}
		r.Message = "canary promoted"
		return nil
	})
}

// Abort rolls a running deploy back.
func Abort(ctx context.Context, kv clientv3.KV, k registry.Keys, app, reason string) error {
	return change(ctx, kv, k, app, func(r *registry.Rollout) error {
		if r.Phase == registry.PhaseRollingBack {
			return nil
		}
		r.Phase, r.Message = registry.PhaseRollingBack, reason
		return nil
	})
}

// change applies f to the app's active rollout in a compare-and-swap.
func change(ctx context.Context, kv clientv3.KV, k registry.Keys, app string, f func(r *registry.Rollout) error) error {
	for {
		st, err := read(ctx, kv, k, app)
		if err != nil {
			return err
		}
		if st.rollout == nil || !st.rollout.Active() {
			return fmt.Errorf("%w: %s", ErrNoRollout, app)
		}
		if err := f(st.rollout); err != nil {
			return err
		}
		ok, err := save(ctx, kv, k, st.rollout, st.roRev)
		if err != nil || ok {
			return err
		}
	}
}

// save writes a rollout if it is unchanged since rev.
func save(ctx context.Context, kv clientv3.KV, k registry.Keys, r *registry.Rollout, rev int64, more ...clientv3.Op) (bool, error) {
	key, err := k.RolloutKey(r.App)
	if err != nil {
		return false, err
	}
	b, _ := json.Marshal(r)
	resp, err := kv.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
		Then(append([]clientv3.Op{clientv3.OpPut(key, string(b))}, more...)...).Commit()
	if err != nil {
		return false, err
	}
	return resp.Succeeded, nil
}
