package local

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/spec"
)

func testApp(t *testing.T, instances int) *spec.App {
	t.Helper()
	a := &spec.App{APIVersion: spec.APIVersion, Name: "web", Version: "1.0.0", Runtime: spec.RuntimeExec,
		Command: []string{"/bin/true"}, Instances: instances, Placement: spec.Placement{AllowColocation: true}}
	a.SetDefaults()
	if err := a.Validate(); err != nil {
		t.Fatal(err)
	}
	return a
}

// TestKeepScale: a start of berth up keeps a scale the user made since the
// last start, unless the spec's own count changed since then.
func TestKeepScale(t *testing.T) {
	for _, c := range []struct {
		name        string
		record      int // instances berth up published last time (0: no record)
		stored      int // in etcd now (0: no spec stored)
		given, want int
		note        bool
	}{
		{name: "first start", given: 3, want: 3},
		{name: "unchanged", record: 3, stored: 3, given: 3, want: 3},
		{name: "scaled by the user", record: 3, stored: 10, given: 3, want: 10, note: true},
		{name: "spec edited since", record: 3, stored: 10, given: 5, want: 5},
		{name: "no record of the last start", stored: 10, given: 3, want: 10, note: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, cli := etcdtest.New(t)
			k, _ := registry.NewKeys("")
			ctx := context.Background()
			dir := t.TempDir()
			if c.record > 0 {
				if err := (upState{"web": {Instances: c.record}}).write(dir); err != nil {
					t.Fatal(err)
				}
			}
			if c.stored > 0 {
				if err := registry.PublishApp(ctx, cli, k, testApp(t, c.stored)); err != nil {
					t.Fatal(err)
				}
			}
			a := testApp(t, c.given)
			notes, err := keepScale(ctx, cli, k, dir, "./berth", []*spec.App{a})
			if err != nil {
				t.Fatal(err)
			}
			if a.Instances != c.want {
				t.Errorf("instances %d, want %d", a.Instances, c.want)
			}
			if got := len(notes) == 1 && strings.Contains(notes[0], "keeping") && strings.Contains(notes[0], "./berth scale web"); got != c.note {
				t.Errorf("notes %q, want a note: %v", notes, c.note)
			}
			if got := readState(dir)["web"].Instances; got != c.given {
				t.Errorf("recorded %d, want the spec's %d", got, c.given)
			}
		})
	}
}

// TestRestartedAndCarryAccess: a restart marks running apps started now
// (passivated ones stay asleep), and puts the last access saved at the
// previous stop back on the new router's lease.
func TestRestartedAndCarryAccess(t *testing.T) {
	_, cli := etcdtest.New(t)
	k, _ := registry.NewKeys("")
	ctx := context.Background()
	old := time.Now().Add(-time.Hour).UnixMilli()
	for name, st := range map[string]registry.Status{
		"web":   {Current: registry.StatusStarted, Expected: registry.StatusStarted, Since: old},
		"sleep": {Current: registry.StatusPassivated, Expected: registry.StatusPassivated, Since: old},
	} {
		if _, err := registry.Transition(ctx, cli, k, name, 0, st); err != nil {
			t.Fatal(err)
		}
	}
	web, sleep := testApp(t, 1), testApp(t, 1)
	sleep.Name = "sleep"
	now := time.Now()
	if err := restarted(ctx, cli, k, []*spec.App{web, sleep}, now); err != nil {
		t.Fatal(err)
	}
	if st, _, _ := registry.GetStatus(ctx, cli, k, "web"); st.Since != now.UnixMilli() {
		t.Errorf("web since %d, want %d (this start)", st.Since, now.UnixMilli())
	}
	if st, _, _ := registry.GetStatus(ctx, cli, k, "sleep"); st.Since != old || st.Current != registry.StatusPassivated {
		t.Errorf("passivated app: %+v, want it untouched", st)
	}

	dir := t.TempDir()
	snap := &registry.Snapshot{Access: map[string]map[string]*registry.Access{}}
	snap.Access["web"] = map[string]*registry.Access{"local": {LastMS: old}}
	if err := saveAccess(dir, snap, []*spec.App{web}); err != nil {
		t.Fatal(err)
	}
	if err := carryAccess(ctx, &registry.Snapshot{}, k, dir, "local", kvPut{cli}, []*spec.App{web, sleep}); err != nil {
		t.Fatal(err)
	}
	key, _ := k.Access("web", "local")
	resp, err := cli.Get(ctx, key)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("carried access record: %v %v", resp, err)
	}
	var got registry.Access
	if err := json.Unmarshal(resp.Kvs[0].Value, &got); err != nil || got.LastMS != old {
		t.Errorf("carried access %s, want last %d", resp.Kvs[0].Value, old)
	}
	if key, _ := k.Access("sleep", "local"); func() bool { r, _ := cli.Get(ctx, key); return len(r.Kvs) > 0 }() {
		t.Errorf("an access record for an app never accessed")
	}
}

// kvPut is an etcd client as the lease owner's Put (without a lease).
type kvPut struct{ kv clientv3.KV }

func (p kvPut) Put(ctx context.Context, key, value string) error {
	_, err := p.kv.Put(ctx, key, value)
	return err
}
