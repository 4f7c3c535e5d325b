package control

import (
	"context"
	"os"
	"testing"
	"time"

	"github.com/sirupsen/logrus/hooks/test"

	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/spec"
)

// TestReconcilerStopsDeletedApp: the reconciler (berth up) starts an
// applied app's processes and stops them when the app's spec is deleted;
// another app runs on.
func TestReconcilerStopsDeletedApp(t *testing.T) {
	_, cli := etcdtest.New(t)
	keys, _ := registry.NewKeys("")
	log, _ := test.NewNullLogger()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, name := range []string{"web", "api"} {
		app := &spec.App{APIVersion: spec.APIVersion, Name: name, Runtime: spec.RuntimeExec, Command: []string{self},
			Instances: 2, Ports: []spec.Port{{Container: 8080}}, Env: map[string]string{"BERTH_EXEC_TEST_INSTANCE": "1"}}
		app.SetDefaults()
		if err := registry.PublishApp(ctx, cli, keys, app); err != nil {
			t.Fatal(err)
		}
	}
	cache := registry.NewCache(cli, cli, registry.CacheConfig{Keys: keys}, log)
	owner := registry.NewLeaseOwner(cli, cli, 5*time.Second, log)
	e := &Exec{KV: cli, Keys: keys, Reg: owner, Log: log}
	r := &Reconciler{Src: cache, Driver: e, Log: log}
	done := make(chan struct{}, 3)
	for _, run := range []func(context.Context) error{cache.Run, owner.Run, r.Run} {
		go func() { run(ctx); done <- struct{}{} }()
	}
	defer func() {
		cancel()
		sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer scancel()
		e.StopAll(sctx)
		for range 3 {
			<-done
		}
	}()
	running := func(app string) int {
		e.mu.Lock()
		defer e.mu.Unlock()
		return len(e.procs[app])
	}
	waitFor := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("both apps' instances up", func() bool {
		s := cache.Snapshot()
		return len(s.Live("web")) == 2 && len(s.Live("api")) == 2
	})
	appKey, _ := keys.App("web")
	if _, err := cli.Delete(ctx, appKey); err != nil {
		t.Fatal(err)
	}
	waitFor("web's processes stopped and deregistered", func() bool {
		return running("web") == 0 && len(cache.Snapshot().Instances["web"]) == 0
	})
	if running("api") != 2 || len(cache.Snapshot().Live("api")) != 2 {
		t.Errorf("api: %d processes, %d live, want 2 and 2", running("api"), len(cache.Snapshot().Live("api")))
	}
}
