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

// TestKeepChanges: a start of berth up keeps what the user did since the
// last start (a scale, a deploy), unless the given spec changed since.
func TestKeepChanges(t *testing.T) {
	app := func(instances int, version string, idle time.Duration) *spec.App {
		a := testApp(t, instances)
		a.Version, a.IdleTimeout = version, spec.Duration(idle)
		return a
	}
	for _, c := range []struct {
		name           string
		record, stored *spec.App // published last time (nil: no record), in etcd now (nil: none)
		given          *spec.App
		publish        bool
		wantN          int
		wantVersion    string
		note           string // "" for none
	}{
		{name: "first start", given: app(3, "1.0.0", 0), publish: true, wantN: 3, wantVersion: "1.0.0"},
		{name: "unchanged", record: app(3, "1.0.0", 0), stored: app(3, "1.0.0", 0), given: app(3, "1.0.0", 0), wantN: 3, wantVersion: "1.0.0"},
		{name: "scaled by the user", record: app(3, "1.0.0", 0), stored: app(10, "1.0.0", 0), given: app(3, "1.0.0", 0),
			wantN: 10, wantVersion: "1.0.0", note: "web: keeping 10 instance(s) as scaled (the spec says 3: ./berth scale web 3 goes back)"},
		{name: "deployed by the user", record: app(3, "1.0.0", 0), stored: app(3, "1.1.0", 0), given: app(3, "1.0.0", 0),
			wantN: 3, wantVersion: "1.1.0", note: "web: keeping version 1.1.0 as deployed"},
		{name: "count edited since", record: app(3, "1.0.0", 0), stored: app(10, "1.0.0", 0), given: app(5, "1.0.0", 0),
			publish: true, wantN: 5, wantVersion: "1.0.0"},
		{name: "other field edited, scaled", record: app(3, "1.0.0", time.Minute), stored: app(10, "1.0.0", time.Minute), given: app(3, "1.0.0", 2*time.Minute),
			publish: true, wantN: 10, wantVersion: "1.0.0", note: "web: keeping 10 instance(s) as scaled"},
		{name: "no record of the last start", stored: app(10, "1.0.0", 0), given: app(3, "1.0.0", 0),
			publish: true, wantN: 10, wantVersion: "1.0.0", note: "web: keeping 10 instance(s) as scaled"},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, cli := etcdtest.New(t)
			k, _ := registry.NewKeys("")
			ctx := context.Background()
			dir := t.TempDir()
			if c.record != nil {
				b, _ := json.Marshal(c.record)
				if err := (upState{"web": {Spec: b, Instances: c.record.Instances}}).write(dir); err != nil {
					t.Fatal(err)
				}
			}
			if c.stored != nil {
				if err := registry.PublishApp(ctx, cli, k, c.stored); err != nil {
					t.Fatal(err)
				}
			}
			apps := []*spec.App{c.given}
			given := c.given.Instances
			publish, notes, err := keepChanges(ctx, cli, k, dir, "./berth", apps)
			if err != nil {
				t.Fatal(err)
			}
			if publish[0] != c.publish || apps[0].Instances != c.wantN || apps[0].Version != c.wantVersion {
				t.Errorf("publish %v, %d instances, version %s; want %v, %d, %s", publish[0], apps[0].Instances, apps[0].Version, c.publish, c.wantN, c.wantVersion)
			}
			if c.note == "" && len(notes) > 0 || c.note != "" && (len(notes) != 1 || !strings.HasPrefix(notes[0], c.note)) {
				t.Errorf("notes %q, want %q", notes, c.note)
			}
			if got := readState(dir)["web"].Instances; got != given {
				t.Errorf("recorded %d, want the given spec's %d", got, given)
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
