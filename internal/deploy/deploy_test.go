package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/control"
	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/spec"
)

// TestMain lets the test binary act as an app instance: HTTP on
// $HOST:$PORT, /health answering 200 (after $HEALTHY_AFTER).
func TestMain(m *testing.M) {
	if os.Getenv("BERTH_DEPLOY_TEST_INSTANCE") == "1" {
		start := time.Now()
		after, _ := time.ParseDuration(os.Getenv("HEALTHY_AFTER"))
		http.HandleFunc("/health", func(w http.ResponseWriter, _ *http.Request) {
			if time.Since(start) < after {
				w.WriteHeader(503)
			}
		})
		fmt.Println(http.ListenAndServe(net.JoinHostPort(os.Getenv("HOST"), os.Getenv("PORT")), nil))
		os.Exit(1)
	}
	os.Exit(m.Run())
}

type env struct {
	t      *testing.T
	cli    *clientv3.Client
	keys   registry.Keys
	cache  *registry.Cache
	driver *control.Exec
	log    logrus.FieldLogger
}

func newEnv(t *testing.T) *env {
	_, cli := etcdtest.New(t)
	k, _ := registry.NewKeys("")
	log := logrus.New()
	log.SetLevel(logrus.WarnLevel)
	ctx, cancel := context.WithCancel(context.Background())
	owner := registry.NewLeaseOwner(cli, cli, 5*time.Second, log)
	cache := registry.NewCache(cli, cli, registry.CacheConfig{Keys: k}, log)
	var wg sync.WaitGroup
	for _, run := range []func(context.Context) error{owner.Run, cache.Run} {
		wg.Add(1)
		go func() { defer wg.Done(); run(ctx) }()
	}
	e := &env{t: t, cli: cli, keys: k, cache: cache, log: log,
		driver: &control.Exec{KV: cli, Keys: k, Reg: owner, Log: log}}
	t.Cleanup(func() {
		sctx, c := context.WithTimeout(context.Background(), 20*time.Second)
		defer c()
		e.driver.StopAll(sctx)
		cancel()
		wg.Wait()
	})
	<-cache.Synced()
	return e
}

// app is a test app at version v whose instances become healthy after
// healthyAfter.
func app(v string, healthyAfter time.Duration) *spec.App {
	self, _ := os.Executable()
	a := &spec.App{APIVersion: spec.APIVersion, Name: "web", Version: v, Runtime: spec.RuntimeExec, Command: []string{self},
		Instances: 3, Ports: []spec.Port{{Container: 8080, Tags: []string{"http"}}},
		Env:    map[string]string{"BERTH_DEPLOY_TEST_INSTANCE": "1", "HEALTHY_AFTER": healthyAfter.String()},
		Health: &spec.Health{HTTP: "/health", Interval: spec.Duration(100 * time.Millisecond)},
	}
	a.SetDefaults()
	return a
}

// deployer runs a deployer until the returned stop is called.
func (e *env) deployer() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	d := &Deployer{KV: e.cli, Keys: e.keys, Driver: e.driver, Log: e.log, Interval: 100 * time.Millisecond}
	done := make(chan struct{})
	go func() { defer close(done); d.Run(ctx, e.cache) }()
	return func() { cancel(); <-done }
}

func (e *env) rollout() *registry.Rollout {
	_, r, err := History(context.Background(), e.cli, e.keys, "web")
	if err != nil || r == nil {
		e.t.Fatalf("rollout: %v %v", r, err)
	}
	return r
}

func (e *env) waitPhase(phase string) *registry.Rollout {
	e.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		r := e.rollout()
		if r.Phase == phase {
			return r
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("rollout in phase %s (%s), want %s", r.Phase, r.Message, phase)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// gens counts the live instances by generation.
func (e *env) gens() map[int64]int {
	m := map[int64]int{}
	for _, in := range e.cache.Snapshot().Live("web") {
		m[in.Generation()]++
	}
	return m
}

// first deploys version 1.0.0 (the first release) and waits until done.
func (e *env) first() {
	e.t.Helper()
	if _, err := Publish(context.Background(), e.cli, e.keys, app("1.0.0", 0), Options{}); err != nil {
		e.t.Fatal(err)
	}
	e.waitPhase(registry.PhaseDone)
}

// TestDeployerKilledHalfWay: the deployer stops in the middle of a rolling
// deploy (its process died); the next one carries the rollout on from etcd
// to the end, each instance started once.
func TestDeployerKilledHalfWay(t *testing.T) {
	e := newEnv(t)
	stop := e.deployer()
	e.first()
	if _, err := Publish(context.Background(), e.cli, e.keys, app("2.0.0", 600*time.Millisecond), Options{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for e.rollout().Healthy < 1 {
		if time.Now().After(deadline) {
			t.Fatal("no new instance healthy")
		}
		time.Sleep(20 * time.Millisecond)
	}
	stop() // killed half-way
	half := e.rollout()
	if half.Phase != registry.PhaseRolling || len(half.Started) == 3 && len(half.Stopped) == 3 {
		t.Fatalf("the rollout was not half-way when its deployer stopped: %+v", half)
	}
	stop = e.deployer()
	defer stop()
	r := e.waitPhase(registry.PhaseDone)
	if len(r.Started) != 3 || len(r.Stopped) != 3 {
		t.Errorf("started %v, stopped %v; want 3 and 3", r.Started, r.Stopped)
	}
	time.Sleep(300 * time.Millisecond)
	if g := e.gens(); g[2] != 3 || len(g) != 1 {
		t.Errorf("live instances by generation %v, want 3 of generation 2 only", g)
	}
	rels, _, _ := History(context.Background(), e.cli, e.keys, "web")
	if len(rels) != 2 || rels[0].Outcome != registry.OutcomeSuperseded || rels[1].Outcome != registry.OutcomeLive {
		t.Errorf("releases %+v %+v, want superseded then live", rels[0], rels[1])
	}
}

// TestPublishRace: two deploys of one app published at once: exactly one
// wins, the other is told a deploy runs.
func TestPublishRace(t *testing.T) {
	e := newEnv(t)
	for round := range 5 {
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = Publish(context.Background(), e.cli, e.keys, app(fmt.Sprintf("%d.%d.0", round+1, i), 0), Options{})
			}()
		}
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, ErrRunning):
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d deploys won (%v), want exactly 1", round, won, errs)
		}
		// End the winner's rollout so the next round can publish.
		if err := Abort(context.Background(), e.cli, e.keys, "web", "test"); err != nil {
			t.Fatal(err)
		}
		r := e.rollout()
		r.Phase = registry.PhaseRolledBack
		key, _ := e.keys.RolloutKey("web")
		if ok, err := save(context.Background(), e.cli, e.keys, r, modRev(t, e, key)); !ok || err != nil {
			t.Fatal(ok, err)
		}
	}
}

func modRev(t *testing.T, e *env, key string) int64 {
	resp, err := e.cli.Get(context.Background(), key)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatal(err)
	}
	return resp.Kvs[0].ModRevision
}

// TestCanaryPromoteAndAbort: a canary runs its share of new instances
// until promoted (then the rollout goes on) or aborted (then the old set
// is whole again and the release is rolled back).
func TestCanaryPromoteAndAbort(t *testing.T) {
	e := newEnv(t)
	stop := e.deployer()
	defer stop()
	e.first()
	ctx := context.Background()
	if _, err := Publish(ctx, e.cli, e.keys, app("2.0.0", 0), Options{Canary: 50}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for e.rollout().Healthy < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("canary instances not healthy: %+v", e.rollout())
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // a few passes: the canary holds
	if r := e.rollout(); r.Phase != registry.PhaseCanary || len(r.Started) != 2 || len(r.Stopped) != 0 {
		t.Fatalf("canary 50%% of 3: %+v, want 2 new started and no old stopped", r)
	}
	if err := Promote(ctx, e.cli, e.keys, "web"); err != nil {
		t.Fatal(err)
	}
	e.waitPhase(registry.PhaseDone)

	if _, err := Publish(ctx, e.cli, e.keys, app("3.0.0", 0), Options{Canary: 10}); err != nil {
		t.Fatal(err)
	}
	for e.rollout().Healthy < 1 {
		time.Sleep(20 * time.Millisecond)
	}
	if err := Abort(ctx, e.cli, e.keys, "web", "bad canary"); err != nil {
		t.Fatal(err)
	}
	r := e.waitPhase(registry.PhaseRolledBack)
	if r.Message != "bad canary" {
		t.Errorf("rollback reason %q", r.Message)
	}
	time.Sleep(300 * time.Millisecond)
	if g := e.gens(); g[2] != 3 || len(g) != 1 {
		t.Errorf("after the abort, live by generation %v; want the 3 of generation 2", g)
	}
	if err := Promote(ctx, e.cli, e.keys, "web"); !errors.Is(err, ErrNoRollout) {
		t.Errorf("promote with no deploy running: %v", err)
	}
}

// TestCanaryErrorRateRollsBack: the routers' counts of the canary's
// responses (their access records) show more 5xx than --max-error-rate:
// the deployer rolls the canary back by itself, with the rate as reason.
func TestCanaryErrorRateRollsBack(t *testing.T) {
	e := newEnv(t)
	stop := e.deployer()
	defer stop()
	e.first()
	ctx := context.Background()
	if _, err := Publish(ctx, e.cli, e.keys, app("2.0.0", 0), Options{Canary: 20, MaxErrorRate: 0.1}); err != nil {
		t.Fatal(err)
	}
	for e.rollout().Healthy < 1 {
		time.Sleep(20 * time.Millisecond)
	}
	put := func(router string, requests, errs int64) {
		key, _ := e.keys.Access("web", router)
		b, _ := json.Marshal(registry.Access{LastMS: time.Now().UnixMilli(), Gens: map[int64]registry.GenCounts{
			1: {Requests: 500}, 2: {Requests: requests, Errors5xx: errs}}})
		if _, err := e.cli.Put(ctx, key, string(b)); err != nil {
			t.Fatal(err)
		}
	}
	// 2 of 40 (5%): within the limit (and 1 of 8 on r1: too few to judge alone).
	put("r1", 8, 1)
	put("r2", 32, 1)
	time.Sleep(500 * time.Millisecond)
	if r := e.rollout(); r.Phase != registry.PhaseCanary {
		t.Fatalf("a canary within its error rate: %s (%s)", r.Phase, r.Message)
	}
	put("r2", 32, 6) // 7 of 40: 17.5%
	r := e.waitPhase(registry.PhaseRolledBack)
	if !strings.Contains(r.Message, "7 of 40") {
		t.Errorf("rollback reason %q", r.Message)
	}
	rels, _, _ := History(ctx, e.cli, e.keys, "web")
	if last := rels[len(rels)-1]; last.Outcome != registry.OutcomeRolledBack || last.Reason != r.Message {
		t.Errorf("release 2: %s %q", last.Outcome, last.Reason)
	}
}
