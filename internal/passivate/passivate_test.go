package passivate

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus/hooks/test"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/spec"
)

type stopCounter struct {
	mu      sync.Mutex
	stopped []string
}

func (s *stopCounter) Start(context.Context, *spec.App) error { return nil }
func (s *stopCounter) Stop(_ context.Context, a *spec.App) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopped = append(s.stopped, a.Name)
	return nil
}

func setup(t *testing.T, idle time.Duration, startedAgo time.Duration, lastAccessAgo time.Duration, conns int, keepWarm ...spec.Window) (*clientv3.Client, registry.Keys, *registry.Snapshot, time.Time) {
	t.Helper()
	_, cli := etcdtest.New(t)
	k, _ := registry.NewKeys("")
	now := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	app := &spec.App{APIVersion: spec.APIVersion, Name: "web", Image: "x", IdleTimeout: spec.Duration(idle), KeepWarm: keepWarm}
	app.SetDefaults()
	ctx := context.Background()
	if err := registry.PublishApp(ctx, cli, k, app); err != nil {
		t.Fatal(err)
	}
	if _, err := registry.Transition(ctx, cli, k, "web", 0, registry.Status{Current: registry.StatusStarted, Expected: registry.StatusStarted,
		Since: now.Add(-startedAgo).UnixMilli()}); err != nil {
		t.Fatal(err)
	}
	if lastAccessAgo >= 0 {
		key, _ := k.Access("web", "r1")
		b, _ := json.Marshal(registry.Access{LastMS: now.Add(-lastAccessAgo).UnixMilli(), Conns: conns})
		cli.Put(ctx, key, string(b))
	}
	log, _ := test.NewNullLogger()
	snap, err := registry.NewCache(cli, cli, registry.CacheConfig{Keys: k}, log).Load(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return cli, k, snap, now
}

func TestDecisions(t *testing.T) {
	cases := []struct {
		name                string
		idle, started, last time.Duration
		conns               int
		keepWarm            []spec.Window
		want                bool
	}{
		{"idle past timeout", 5 * time.Minute, time.Hour, 10 * time.Minute, 0, nil, true},
		{"recent request", 5 * time.Minute, time.Hour, time.Minute, 0, nil, false},
		{"open websocket", 5 * time.Minute, time.Hour, time.Hour, 1, nil, false},
		{"just started", 5 * time.Minute, 30 * time.Second, time.Hour, 0, nil, false},
		{"no access record, started long ago", 5 * time.Minute, time.Hour, -1, 0, nil, true},
		{"no access record, started recently", 5 * time.Minute, 2 * time.Minute, -1, 0, nil, false},
		{"keep-warm window", 5 * time.Minute, time.Hour, time.Hour, 0, []spec.Window{"11:00-13:00"}, false},
		{"outside keep-warm window", 5 * time.Minute, time.Hour, time.Hour, 0, []spec.Window{"13:00-14:00"}, true},
		{"window across midnight", 5 * time.Minute, time.Hour, time.Hour, 0, []spec.Window{"22:00-13:00"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, _, snap, now := setup(t, c.idle, c.started, c.last, c.conns, c.keepWarm...)
			p := &Passivator{Cfg: Config{Now: func() time.Time { return now }}}
			ds := p.Decide(snap)
			if len(ds) != 1 || ds[0].Passivate != c.want {
				t.Fatalf("got %+v, want passivate=%v", ds, c.want)
			}
		})
	}
}

func TestPassIsOneTransactionAndStops(t *testing.T) {
	cli, k, snap, now := setup(t, time.Minute, time.Hour, time.Hour, 0)
	log, _ := test.NewNullLogger()
	drv := &stopCounter{}
	// Several passes race (one timer per node): exactly one passivates.
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := &Passivator{KV: cli, Keys: k, Driver: drv, Log: log, Cfg: Config{Now: func() time.Time { return now }}}
			p.Pass(context.Background(), snap)
		}()
	}
	wg.Wait()
	if len(drv.stopped) != 1 {
		t.Fatalf("driver stopped %d times, want once", len(drv.stopped))
	}
	st, _, _ := registry.GetStatus(context.Background(), cli, k, "web")
	if st.Current != registry.StatusPassivated || st.Expected != registry.StatusPassivated {
		t.Fatalf("status after the pass: %+v", st)
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	cli, k, snap, now := setup(t, time.Minute, time.Hour, time.Hour, 0)
	log, _ := test.NewNullLogger()
	drv := &stopCounter{}
	p := &Passivator{KV: cli, Keys: k, Driver: drv, Log: log, Cfg: Config{DryRun: true, Now: func() time.Time { return now }}}
	ds, err := p.Pass(context.Background(), snap)
	if err != nil || len(ds) != 1 || !ds[0].Passivate {
		t.Fatalf("decisions %+v, %v", ds, err)
	}
	st, _, _ := registry.GetStatus(context.Background(), cli, k, "web")
	if st.Current != registry.StatusStarted || len(drv.stopped) != 0 {
		t.Fatalf("dry run changed the status (%+v) or stopped units (%v)", st, drv.stopped)
	}
}
