package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/berthproject/berth/internal/leader"
	"github.com/berthproject/berth/internal/registry"
)

// Scheduler places the cluster's jobs on its machines. Any number may
// run (berth agent --scheduler); one at a time leads, through an etcd
// election, and writes placements only while it leads (every write is a
// transaction that checks its leadership).
type Scheduler struct {
	Client *clientv3.Client
	Keys   registry.Keys
	Log    logrus.FieldLogger
	// ID names this candidate in the election (its node id).
	ID string
	// SessionTTL is the election session's lease (default 5s): how long
	// a dead leader holds the role.
	SessionTTL time.Duration
	// Resync is the longest time between two passes without a change
	// (default 30s).
	Resync time.Duration

	files map[string]*Requirements // parsed unit files by hash and name; only the leader's goroutine uses it
}

// errLostLead ends a term.
var errLostLead = errors.New("lost the scheduler election session")

// Run campaigns for the lead and schedules while leading, until ctx ends.
func (s *Scheduler) Run(ctx context.Context) error {
	return leader.Run(ctx, leader.Config{Client: s.Client, Prefix: s.Keys.FleetLeader(), ID: s.ID, TTL: s.SessionTTL,
		Role: "scheduler", Log: s.Log}, s.lead)
}

// lead schedules after every change of nodes or jobs until the session
// ends or ctx does.
func (s *Scheduler) lead(ctx context.Context, sess *concurrency.Session, el *concurrency.Election) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	nodes := s.Client.Watch(wctx, s.Keys.NodesPrefix(), clientv3.WithPrefix())
	jobs := s.Client.Watch(wctx, s.Keys.FleetJobsPrefix(), clientv3.WithPrefix())
	guard := clientv3.Compare(clientv3.CreateRevision(el.Key()), "=", el.Rev())
	resync := s.Resync
	if resync == 0 {
		resync = 30 * time.Second
	}
	for {
		if err := s.Reconcile(ctx, guard); err != nil {
			s.Log.WithError(err).Warn("scheduler: pass failed")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-sess.Done():
			return errLostLead
		case r, ok := <-nodes:
			if !ok || r.Err() != nil {
				return fmt.Errorf("watch nodes: %w", cmpErr(r.Err(), ok))
			}
		case r, ok := <-jobs:
			if !ok || r.Err() != nil {
				return fmt.Errorf("watch jobs: %w", cmpErr(r.Err(), ok))
			}
		case <-time.After(resync):
		}
	}
}

func cmpErr(err error, ok bool) error {
	if err == nil && !ok {
		return errors.New("watch closed")
	}
	return err
}

// Reconcile makes one scheduling pass: it reads machines, jobs and
// placements at one revision, decides (Place) and writes what changed,
// in transactions that hold only while guard does.
func (s *Scheduler) Reconcile(ctx context.Context, guard clientv3.Cmp) error {
	resp, err := s.Client.Txn(ctx).Then(
		clientv3.OpGet(s.Keys.NodesPrefix(), clientv3.WithPrefix()),
		clientv3.OpGet(s.Keys.FleetJobsPrefix(), clientv3.WithPrefix()),
		clientv3.OpGet(s.Keys.FleetSchedulePrefix(), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return err
	}
	machines := Machines(s.Keys, resp.Responses[0].GetResponseRange().Kvs)
	jobs, bad := Jobs(resp.Responses[1].GetResponseRange().Kvs)
	for _, key := range bad {
		s.Log.WithField("key", key).Warn("scheduler: skipping an undecodable job")
	}
	var units []Unit
	active := map[string]bool{}
	for _, name := range slices.Sorted(maps.Keys(jobs)) {
		j := jobs[name]
		if j.Target == registry.TargetInactive {
			continue
		}
		r, err := s.requirements(ctx, j)
		if err != nil {
			s.Log.WithError(err).WithField("unit", j.Unit).Warn("scheduler: skipping a unit")
			continue
		}
		active[j.Unit] = true
		units = append(units, Unit{Name: j.Unit, Req: *r})
	}
	placed := Placements(s.Keys, resp.Responses[2].GetResponseRange().Kvs)
	current := map[string]string{}
	for name, p := range placed {
		if p.Machine != "" {
			current[name] = p.Machine
		}
	}
	plan := Place(machines, units, current)
	var ops []clientv3.Op
	put := func(unit string, p registry.FleetPlacement) {
		if old, ok := placed[unit]; ok && old.Machine == p.Machine && old.Reason == p.Reason && slices.Equal(old.Machines, p.Machines) {
			return
		}
		b, _ := json.Marshal(p)
		ops = append(ops, clientv3.OpPut(s.Keys.FleetSchedule(unit), string(b)))
	}
	for _, u := range slices.Sorted(maps.Keys(plan.Assign)) {
		put(u, registry.FleetPlacement{Machine: plan.Assign[u]})
	}
	for _, u := range slices.Sorted(maps.Keys(plan.Global)) {
		put(u, registry.FleetPlacement{Machines: plan.Global[u]})
	}
	for _, u := range slices.Sorted(maps.Keys(plan.Unplaced)) {
		put(u, registry.FleetPlacement{Reason: plan.Unplaced[u]})
	}
	for _, u := range slices.Sorted(maps.Keys(placed)) {
		if !active[u] {
			ops = append(ops, clientv3.OpDelete(s.Keys.FleetSchedule(u)))
		}
	}
	for len(ops) > 0 { // etcd takes at most 128 operations per transaction
		n := min(len(ops), 100)
		r, err := s.Client.Txn(ctx).If(guard).Then(ops[:n]...).Commit()
		if err != nil {
			return err
		}
		if !r.Succeeded {
			return errLostLead
		}
		ops = ops[n:]
	}
	return nil
}

// requirements parses a job's unit file for its name (cached by hash and
// name: specifiers differ per instance).
func (s *Scheduler) requirements(ctx context.Context, j registry.FleetJob) (*Requirements, error) {
	key := j.Hash + " " + j.Unit
	if r, ok := s.files[key]; ok {
		return r, nil
	}
	n, err := ParseName(j.Unit)
	if err != nil {
		return nil, err
	}
	content, err := (&Store{KV: s.Client, Keys: s.Keys}).Content(ctx, j.Hash)
	if err != nil {
		return nil, err
	}
	r, err := ParseRequirements(n, content)
	if err != nil {
		return nil, err
	}
	if s.files == nil {
		s.files = map[string]*Requirements{}
	}
	s.files[key] = &r
	return &r, nil
}
