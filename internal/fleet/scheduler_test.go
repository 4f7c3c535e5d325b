package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"testing"
	"time"

	logtest "github.com/sirupsen/logrus/hooks/test"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/registry"
)

const webTemplate = "[Unit]\nDescription=web %i\n\n[Service]\nExecStart=/bin/sleep infinity\n\n[X-Fleet]\nConflicts=web@*.service\n"

type cluster struct {
	t     *testing.T
	cli   *clientv3.Client
	keys  registry.Keys
	store *Store
}

func newCluster(t *testing.T) *cluster {
	_, cli := etcdtest.New(t)
	k, _ := registry.NewKeys("")
	return &cluster{t: t, cli: cli, keys: k, store: &Store{KV: cli, Keys: k}}
}

func (c *cluster) node(id string, md map[string]string) {
	c.t.Helper()
	k, _ := c.keys.Node(id)
	b, _ := json.Marshal(registry.Node{Addr: "10.0.0.1", Metadata: md})
	if _, err := c.cli.Put(context.Background(), k, string(b)); err != nil {
		c.t.Fatal(err)
	}
}

func (c *cluster) dropNode(id string) {
	k, _ := c.keys.Node(id)
	c.cli.Delete(context.Background(), k)
}

// schedule reads every placement.
func (c *cluster) schedule() map[string]registry.FleetPlacement {
	c.t.Helper()
	resp, err := c.cli.Get(context.Background(), c.keys.FleetSchedulePrefix(), clientv3.WithPrefix())
	if err != nil {
		c.t.Fatal(err)
	}
	return Placements(c.keys, resp.Kvs)
}

func (c *cluster) waitFor(what string, ok func(map[string]registry.FleetPlacement) bool) map[string]registry.FleetPlacement {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s := c.schedule()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: schedule is %v", what, s)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (c *cluster) scheduler(id string) (stop func()) {
	log, _ := logtest.NewNullLogger()
	s := &Scheduler{Client: c.cli, Keys: c.keys, Log: log, ID: id, SessionTTL: time.Second}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); s.Run(ctx) }()
	return func() { cancel(); <-done }
}

func placedOn(s map[string]registry.FleetPlacement) map[string]int {
	c := map[string]int{}
	for _, p := range s {
		if p.Machine != "" {
			c[p.Machine]++
		}
	}
	return c
}

// TestStoreSubmitStartDestroy: fleetctl's verbs on the store.
func TestStoreSubmitStartDestroy(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	if err := c.store.Submit(ctx, "web@.service", []byte(webTemplate)); err != nil {
		t.Fatal(err)
	}
	if err := c.store.Submit(ctx, "web@.service", []byte(webTemplate)); err != nil {
		t.Fatalf("submitting the same content again: %v", err)
	}
	if err := c.store.Submit(ctx, "web@.service", []byte(webTemplate+"# changed\n")); !errors.Is(err, ErrChanged) {
		t.Fatalf("submitting other content: %v, want ErrChanged", err)
	}
	if err := c.store.Submit(ctx, "web@1.service", []byte(webTemplate)); err == nil {
		t.Fatal("submitting an instance succeeded, want: submit the template")
	}
	if err := c.store.SetTarget(ctx, "web@2.service", registry.TargetLaunched); err != nil {
		t.Fatalf("starting an instance of a submitted template: %v", err)
	}
	if err := c.store.SetTarget(ctx, "db@1.service", registry.TargetLaunched); !errors.Is(err, ErrNoUnit) {
		t.Fatalf("starting an instance of no template: %v, want ErrNoUnit", err)
	}
	jobs, _ := c.store.Jobs(ctx)
	if len(jobs) != 2 || jobs["web@2.service"].Hash != Hash([]byte(webTemplate)) || jobs["web@2.service"].Target != registry.TargetLaunched {
		t.Fatalf("jobs: %+v", jobs)
	}
	if err := c.store.Destroy(ctx, "web@2.service"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.store.Content(ctx, Hash([]byte(webTemplate))); err != nil {
		t.Fatalf("the template's file went with its instance: %v", err)
	}
	if err := c.store.Destroy(ctx, "web@.service"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.store.Content(ctx, Hash([]byte(webTemplate))); !errors.Is(err, ErrNoUnit) {
		t.Fatalf("the file outlived every job: %v", err)
	}
}

// TestSchedulerPlacesAndReschedules: 10 instances with Conflicts on 3
// machines: 3 placed, one per machine, 7 unplaced with a reason; a lost
// machine's unit moves to a new one; the returning machine gets nothing
// back; a stopped unit loses its placement.
func TestSchedulerPlacesAndReschedules(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	for _, m := range []string{"m1", "m2", "m3"} {
		c.node(m, nil)
	}
	c.store.Submit(ctx, "web@.service", []byte(webTemplate))
	for i := 1; i <= 10; i++ {
		c.store.SetTarget(ctx, fmt.Sprintf("web@%d.service", i), registry.TargetLaunched)
	}
	stop := c.scheduler("a")
	defer stop()
	s := c.waitFor("3 placed, 7 not", func(s map[string]registry.FleetPlacement) bool {
		return len(s) == 10 && maps.Equal(placedOn(s), map[string]int{"m1": 1, "m2": 1, "m3": 1})
	})
	for u, p := range s {
		if p.Machine == "" && p.Reason == "" {
			t.Fatalf("%s unplaced without a reason", u)
		}
	}
	if s["web@2.service"].Machine != "m2" {
		t.Fatalf("web@2 on %q, want m2 (least loaded, natural order)", s["web@2.service"].Machine)
	}
	// m2 is lost: web@2 has nowhere to go (Conflicts) and says so.
	c.dropNode("m2")
	c.waitFor("web@2 unplaced", func(s map[string]registry.FleetPlacement) bool {
		return s["web@2.service"].Machine == "" && s["web@2.service"].Reason != ""
	})
	// A new machine: the unit that lost its machine gets it before the
	// seven that never had one.
	c.node("m4", nil)
	s = c.waitFor("web@2 on m4", func(s map[string]registry.FleetPlacement) bool { return s["web@2.service"].Machine == "m4" })
	// m2 comes back: nothing moves to it from where it runs; the first
	// never-placed unit (web@4) takes the free machine.
	c.node("m2", nil)
	s2 := c.waitFor("web@4 on m2", func(s map[string]registry.FleetPlacement) bool { return s["web@4.service"].Machine == "m2" })
	for _, u := range []string{"web@1.service", "web@2.service", "web@3.service"} {
		if s2[u].Machine != s[u].Machine {
			t.Errorf("%s moved from %s to %s when m2 came back", u, s[u].Machine, s2[u].Machine)
		}
	}
	c.store.SetTarget(ctx, "web@1.service", registry.TargetInactive)
	c.waitFor("a stopped unit loses its placement", func(s map[string]registry.FleetPlacement) bool {
		_, ok := s["web@1.service"]
		return !ok
	})
}

// TestSchedulerOneLeader: two schedulers, one writes; when it stops, the
// other takes over and reacts to changes.
func TestSchedulerOneLeader(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	c.node("m1", nil)
	c.store.Submit(ctx, "one.service", []byte("[Service]\nExecStart=/bin/true\n"))
	c.store.SetTarget(ctx, "one.service", registry.TargetLaunched)
	stopA := c.scheduler("a")
	stopB := c.scheduler("b")
	defer stopB()
	c.waitFor("one placed", func(s map[string]registry.FleetPlacement) bool { return s["one.service"].Machine == "m1" })
	resp, err := c.cli.Get(ctx, c.keys.FleetLeader(), clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 2 {
		t.Fatalf("election candidates: %v %v, want 2", resp, err)
	}
	stopA()
	c.node("m2", nil)
	c.store.Submit(ctx, "two.service", []byte("[Service]\nExecStart=/bin/true\n\n[X-Fleet]\nMachineID=m2\n"))
	c.store.SetTarget(ctx, "two.service", registry.TargetLaunched)
	c.waitFor("the other scheduler places two on m2", func(s map[string]registry.FleetPlacement) bool {
		return s["two.service"].Machine == "m2"
	})
}

// TestSchedulerSkipsBadJobs: an undecodable job or a unit whose file is
// gone is skipped; the others are placed.
func TestSchedulerSkipsBadJobs(t *testing.T) {
	c := newCluster(t)
	ctx := context.Background()
	c.node("m1", nil)
	c.cli.Put(ctx, c.keys.FleetJob("bad.service"), "{not json")
	b, _ := json.Marshal(registry.FleetJob{Unit: "lost.service", Hash: Hash([]byte("gone")), Target: registry.TargetLaunched})
	c.cli.Put(ctx, c.keys.FleetJob("lost.service"), string(b))
	c.store.Submit(ctx, "ok.service", []byte("[Service]\nExecStart=/bin/true\n"))
	c.store.SetTarget(ctx, "ok.service", registry.TargetLaunched)
	stop := c.scheduler("a")
	defer stop()
	c.waitFor("ok placed", func(s map[string]registry.FleetPlacement) bool { return s["ok.service"].Machine == "m1" })
}
