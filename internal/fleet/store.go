package fleet

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/units"
)

// ErrNoUnit says a unit was never submitted (nor its template).
var ErrNoUnit = errors.New("unit not found")

// ErrChanged says a unit of that name was submitted with other content:
// destroy it first (fleetctl's rule).
var ErrChanged = errors.New("a different unit of that name is submitted")

// Store keeps unit files and jobs in etcd: fleetctl's submit, load,
// start, stop, unload and destroy.
type Store struct {
	KV   clientv3.KV
	Keys registry.Keys
}

// Hash is the key of a unit file's content: the SHA-1 of its bytes, as
// fleet.
func Hash(content []byte) string {
	h := sha1.Sum(content)
	return hex.EncodeToString(h[:])
}

// Submit stores a unit file and its job (target inactive). Submitting
// the same content again is a no-op; other content under the same name
// is ErrChanged.
func (s *Store) Submit(ctx context.Context, name string, content []byte) error {
	n, err := ParseName(name)
	if err != nil {
		return err
	}
	if n.Instanced {
		return fmt.Errorf("%s: submit the template %s; instances are started from it", name, n.TemplateName())
	}
	if _, err := ParseRequirements(n, content); err != nil {
		return err
	}
	hash := Hash(content)
	uk, _ := s.Keys.FleetUnit(hash)
	job, _ := json.Marshal(registry.FleetJob{Unit: name, Hash: hash, Target: registry.TargetInactive})
	jk := s.Keys.FleetJob(name)
	resp, err := s.KV.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(jk), "=", 0)).
		Then(clientv3.OpPut(uk, string(content)), clientv3.OpPut(jk, string(job))).
		Else(clientv3.OpGet(jk)).Commit()
	if err != nil {
		return fmt.Errorf("submit %s: %w", name, err)
	}
	if resp.Succeeded {
		return nil
	}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		var old registry.FleetJob
		if json.Unmarshal(kvs[0].Value, &old) == nil && old.Hash == hash {
			return nil
		}
	}
	return fmt.Errorf("%s: %w", name, ErrChanged)
}

// SetTarget sets a unit's target (loaded, launched, or inactive for
// unload and stop-and-unload). An instance of a submitted template gets
// its job on first use.
func (s *Store) SetTarget(ctx context.Context, name, target string) error {
	n, err := ParseName(name)
	if err != nil {
		return err
	}
	if n.Template {
		return fmt.Errorf("%s is a template: start an instance, e.g. %s@1.%s", name, n.Prefix, n.Type)
	}
	for {
		job, rev, err := s.job(ctx, name)
		if errors.Is(err, ErrNoUnit) && n.Instanced {
			tmpl, _, terr := s.job(ctx, n.TemplateName())
			if terr != nil {
				return fmt.Errorf("%s: %w (nor its template %s)", name, ErrNoUnit, n.TemplateName())
			}
			job, rev, err = &registry.FleetJob{Unit: name, Hash: tmpl.Hash}, 0, nil
		}
		if err != nil {
			return err
		}
		job.Target = target
		b, _ := json.Marshal(job)
		jk := s.Keys.FleetJob(name)
		resp, err := s.KV.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(jk), "=", rev)).
			Then(clientv3.OpPut(jk, string(b))).Commit()
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if resp.Succeeded {
			return nil
		}
	}
}

// Destroy removes a unit's job, placement and (if no other job uses it)
// its file; a template's instances stay until destroyed themselves.
func (s *Store) Destroy(ctx context.Context, name string) error {
	job, _, err := s.job(ctx, name)
	if err != nil {
		return err
	}
	if _, err := s.KV.Txn(ctx).Then(clientv3.OpDelete(s.Keys.FleetJob(name)), clientv3.OpDelete(s.Keys.FleetSchedule(name))).Commit(); err != nil {
		return fmt.Errorf("destroy %s: %w", name, err)
	}
	jobs, err := s.Jobs(ctx)
	if err != nil {
		return err
	}
	for _, j := range jobs {
		if j.Hash == job.Hash {
			return nil // the file serves another job still
		}
	}
	uk, _ := s.Keys.FleetUnit(job.Hash)
	_, err = s.KV.Delete(ctx, uk)
	return err
}

// DestroyApp destroys every job of an app's template units, its later
// releases' (<app>.<gen>@) included: the instances first, then the
// templates, so a file goes with its last job. The scheduler then drops their
// placements and the executors stop and remove the units wherever they
// ran. It returns the units destroyed, sorted (none: the app had no job).
func (s *Store) DestroyApp(ctx context.Context, app string) ([]string, error) {
	jobs, err := s.Jobs(ctx)
	if err != nil {
		return nil, err
	}
	var instances, templates []string
	for name := range jobs {
		n, err := ParseName(name)
		if err != nil {
			continue
		}
		if a, gen := units.AppOfPrefix(n.Prefix); a != app || gen == 0 {
			continue // another app's
		}
		switch {
		case n.Instanced:
			instances = append(instances, name)
		case n.Template:
			templates = append(templates, name)
		}
	}
	slices.Sort(instances)
	slices.Sort(templates)
	names := append(instances, templates...)
	for i, name := range names {
		if err := s.Destroy(ctx, name); err != nil && !errors.Is(err, ErrNoUnit) {
			return names[:i], err
		}
	}
	return names, nil
}

// Jobs lists every job, by unit name.
func (s *Store) Jobs(ctx context.Context) (map[string]registry.FleetJob, error) {
	resp, err := s.KV.Get(ctx, s.Keys.FleetJobsPrefix(), clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list jobs: %w", err)
	}
	jobs, _ := Jobs(resp.Kvs) // not ours to repair; the scheduler warns
	return jobs, nil
}

// Content returns a unit file by its hash.
func (s *Store) Content(ctx context.Context, hash string) ([]byte, error) {
	uk, err := s.Keys.FleetUnit(hash)
	if err != nil {
		return nil, err
	}
	resp, err := s.KV.Get(ctx, uk)
	if err != nil {
		return nil, err
	}
	if len(resp.Kvs) == 0 {
		return nil, fmt.Errorf("unit file %s: %w", hash, ErrNoUnit)
	}
	return resp.Kvs[0].Value, nil
}

func (s *Store) job(ctx context.Context, name string) (*registry.FleetJob, int64, error) {
	resp, err := s.KV.Get(ctx, s.Keys.FleetJob(name))
	if err != nil {
		return nil, 0, err
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, fmt.Errorf("%s: %w", name, ErrNoUnit)
	}
	var j registry.FleetJob
	if err := json.Unmarshal(resp.Kvs[0].Value, &j); err != nil {
		return nil, 0, fmt.Errorf("job %s: %w", name, err)
	}
	return &j, resp.Kvs[0].ModRevision, nil
}
