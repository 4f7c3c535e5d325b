package local

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/spec"
)

// stateFile, in the data directory, is what berth up remembers of its
// apps between runs: each app's spec as berth up last published it (from a
// file or --demo), so that the next start can tell what the user changed
// in between (a scale, a deploy: kept) from a spec that was edited
// (published); and each app's last access when it stopped, which a clean
// stop would otherwise lose with its leases.
const stateFile = "up-state.json"

// appState is one app's entry in stateFile.
type appState struct {
	Spec         json.RawMessage `json:"spec,omitempty"`         // as last published from the given spec
	Instances    int             `json:"instances,omitempty"`    // its instance count
	LastAccessMS int64           `json:"lastAccessMs,omitempty"` // unix ms, at the last stop
}

// upState is the content of stateFile: app → its state.
type upState map[string]appState

func readState(dataDir string) upState {
	st := upState{}
	b, err := os.ReadFile(filepath.Join(dataDir, stateFile))
	if err == nil {
		_ = json.Unmarshal(b, &st) // an unreadable record is no record: a stored scale is kept
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

// keepChanges decides what a start of berth up publishes, so that it keeps
// what the user did since the last start:
//   - no spec stored: the given spec is published;
//   - the given spec is the one published last time: the stored spec is
//     the user's (scaled, deployed, applied) and stays as it is; apps[i]
//     becomes the stored spec and publish[i] is false;
//   - the given spec changed since (an edited file, other --demo flags): it
//     is published, but a scale the user made stays unless the given
//     instance count is what changed;
//   - no record of the last start: published, keeping a stored count that
//     differs.
//
// It returns one note per app it kept something of (naming cli, the
// command to undo a scale), and records the given specs.
func keepChanges(ctx context.Context, kv clientv3.KV, k registry.Keys, dataDir, cli string, apps []*spec.App) (publish []bool, notes []string, err error) {
	last := readState(dataDir)
	publish = make([]bool, len(apps))
	for i, a := range apps {
		given, err := json.Marshal(a)
		if err != nil {
			return nil, nil, err
		}
		stored, err := storedApp(ctx, kv, k, a.Name)
		if err != nil {
			return nil, nil, err
		}
		prev, known := last[a.Name]
		n := a.Instances
		switch {
		case stored == nil:
			publish[i] = true
		case known && bytes.Equal(prev.Spec, given):
			if note := changedNote(cli, a, stored); note != "" {
				notes = append(notes, note)
			}
			apps[i] = stored
		default:
			publish[i] = true
			if stored.Instances != n && (!known || prev.Instances == n) {
				a.Instances = stored.Instances
				notes = append(notes, fmt.Sprintf("%s: keeping %d instance(s) as scaled (the spec says %d: %s scale %s %d goes back)",
					a.Name, stored.Instances, n, cli, a.Name, n))
			}
		}
		prev.Spec, prev.Instances = given, n
		last[a.Name] = prev
	}
	return publish, notes, last.write(dataDir)
}

// changedNote says what of the stored spec differs from the given one, ""
// if nothing.
func changedNote(cli string, given, stored *spec.App) string {
	var what []string
	if stored.Version != given.Version {
		what = append(what, fmt.Sprintf("version %s as deployed (the spec says %s: %s rollback or deploy goes back)", stored.Version, given.Version, cli))
	}
	if stored.Instances != given.Instances {
		what = append(what, fmt.Sprintf("%d instance(s) as scaled (the spec says %d: %s scale %s %d goes back)",
			stored.Instances, given.Instances, cli, given.Name, given.Instances))
	}
	if len(what) == 0 {
		a, _ := json.Marshal(given)
		b, _ := json.Marshal(stored)
		if bytes.Equal(a, b) {
			return ""
		}
		what = append(what, "the spec as applied since the last start")
	}
	return given.Name + ": keeping " + strings.Join(what, ", ")
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
