package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/spec"
)

// stateFile, in the data directory, is what berth up remembers of its
// apps between runs: the instance count of each app as berth up last
// published it from its spec (a file or --demo), so that the next start
// can tell a scale the user made in between (keep it) from a spec whose
// count was edited (publish it); and each app's last access when it
// stopped, which a clean stop would otherwise lose with its leases.
const stateFile = "up-state.json"

// appState is one app's entry in stateFile.
type appState struct {
	Instances    int   `json:"instances,omitempty"`    // in its spec, as last published
	LastAccessMS int64 `json:"lastAccessMs,omitempty"` // unix ms, at the last stop
}

// upState is the content of stateFile: app → its state.
type upState map[string]appState

func readState(dataDir string) upState {
	st := upState{}
	b, err := os.ReadFile(filepath.Join(dataDir, stateFile))
	if err == nil {
		_ = json.Unmarshal(b, &st) // an unreadable record is no record: the stored scale is kept
	}
	return st
}

func (st upState) write(dataDir string) error {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return err
	}
	b, _ := json.Marshal(st)
	tmp := filepath.Join(dataDir, stateFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(dataDir, stateFile))
}

// saveAccess records each app's last access in the data directory, at
// a clean stop (before the leases, and the access records, go).
func saveAccess(dataDir string, s *registry.Snapshot, apps []*spec.App) error {
	st := readState(dataDir)
	for _, a := range apps {
		if last, _ := s.LastAccess(a.Name); last > 0 {
			e := st[a.Name]
			e.LastAccessMS = last
			st[a.Name] = e
		}
	}
	return st.write(dataDir)
}

// keepScale sets each app's Instances to what is stored in etcd when the
// user scaled it since the last berth up: the stored count differs from the
// spec's, and the spec's count is the one berth up published last time (or
// no record of that exists). A spec whose count changed since the last
// start (an edited file, another --demo-instances) wins. It returns one
// note per app whose scale was kept (naming the command cli to undo it),
// and records the specs' counts.
func keepScale(ctx context.Context, kv clientv3.KV, k registry.Keys, dataDir, cli string, apps []*spec.App) ([]string, error) {
	last := readState(dataDir)
	var notes []string
	for _, a := range apps {
		given := a.Instances
		stored, err := storedApp(ctx, kv, k, a.Name)
		if err != nil {
			return nil, err
		}
		prev, known := last[a.Name]
		if stored != nil && stored.Instances != given && (!known || prev.Instances == 0 || prev.Instances == given) {
			a.Instances = stored.Instances
			notes = append(notes, fmt.Sprintf("%s: keeping %d instance(s) as scaled (the spec says %d: %s scale %s %d goes back)",
				a.Name, stored.Instances, given, cli, a.Name, given))
		}
		prev.Instances = given
		last[a.Name] = prev
	}
	return notes, last.write(dataDir)
}

// storedApp reads an app's spec from etcd; nil if there is none or it does
// not decode (the publish then replaces it).
func storedApp(ctx context.Context, kv clientv3.KV, k registry.Keys, name string) (*spec.App, error) {
	key, err := k.App(name)
	if err != nil {
		return nil, err
	}
	resp, err := kv.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("read spec of %s: %w", name, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	var a spec.App
	if json.Unmarshal(resp.Kvs[0].Value, &a) != nil {
		return nil, nil
	}
	return &a, nil
}

// restarted marks the running apps this berth up starts again as running
// since now: their instances are new processes, so the minimum uptime
// before passivation counts from this start, not from the previous run's.
// Passivated apps stay asleep.
func restarted(ctx context.Context, kv clientv3.KV, k registry.Keys, apps []*spec.App, now time.Time) error {
	var errs []error
	for _, a := range apps {
		_, err := registry.Update(ctx, kv, k, a.Name, func(cur *registry.Status) (registry.Status, bool) {
			if cur == nil || cur.Current != registry.StatusStarted || cur.Expected != registry.StatusStarted {
				return registry.Status{}, false
			}
			next := *cur
			next.Since = now.UnixMilli()
			return next, true
		})
		if err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// carryAccess puts each app's last access, as the previous run left it
// (its routers' records, or the data directory's record of a clean stop,
// whichever is later), on this router's lease: the previous lease is
// revoked at a clean stop and expires a few seconds after a crash, and
// with it the app's history (berth status would show no last access). The
// router overwrites the record at the app's next request.
func carryAccess(ctx context.Context, s *registry.Snapshot, k registry.Keys, dataDir, routerID string, w interface {
	Put(ctx context.Context, key, value string) error
}, apps []*spec.App) error {
	saved := readState(dataDir)
	var errs []error
	for _, a := range apps {
		last, _ := s.LastAccess(a.Name)
		last = max(last, saved[a.Name].LastAccessMS)
		if last == 0 {
			continue
		}
		key, err := k.Access(a.Name, routerID)
		if err != nil {
			return err
		}
		val, _ := json.Marshal(registry.Access{LastMS: last})
		if err := w.Put(ctx, key, string(val)); err != nil {
			errs = append(errs, fmt.Errorf("carry last access of %s: %w", a.Name, err))
		}
	}
	return errors.Join(errs...)
}
