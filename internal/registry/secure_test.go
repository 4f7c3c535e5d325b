package registry

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/berthproject/berth/internal/etcdauth"
	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/spec"
)

// TestRegistryWithEtcdRoles runs the registry's job against an etcd with
// TLS, client certificates and berth's roles: the operator publishes an
// app, the agent writes the schema and an instance on its lease, a cache
// connected as berth-reader follows both and the reader's status
// transition (a wake), and sees the instance leave when the agent's lease
// is revoked. The reader cannot write an instance, the agent cannot write
// an app's domain.
func TestRegistryWithEtcdRoles(t *testing.T) {
	s, p := etcdtest.Secure(t)
	op := etcdtest.SecureClient(t, s, p, etcdauth.Operator)
	agent := etcdtest.SecureClient(t, s, p, etcdauth.Agent)
	reader := etcdtest.SecureClient(t, s, p, etcdauth.Reader)
	k := keys(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if err := EnsureSchema(ctx, agent, k); err != nil {
		t.Fatalf("schema as berth-agent: %v", err)
	}
	app := &spec.App{Name: "web", Instances: 1}
	if err := PublishApp(ctx, op, k, app); err != nil {
		t.Fatalf("publish as berth-operator: %v", err)
	}
	c := startCache(t, reader, nil)
	<-c.Synced()
	waitFor(t, c, "the app's spec", func(s *Snapshot) bool { return s.Apps["web"] != nil })

	lease := NewLeaseOwner(agent, agent, 2*time.Second, nullLog())
	lctx, stop := context.WithCancel(ctx)
	go lease.Run(lctx)
	in := &Instance{App: "web", ID: "1", Addr: "127.0.0.1:8001", State: StateUp, Node: "n1"}
	key, val, err := InstanceKV(k, in)
	if err != nil {
		t.Fatal(err)
	}
	if err := lease.Put(ctx, key, val); err != nil {
		t.Fatalf("instance on the agent's lease: %v", err)
	}
	waitFor(t, c, "the agent's instance in the reader's cache", func(s *Snapshot) bool { return len(s.Live("web")) == 1 })

	if _, err := Transition(ctx, reader, k, "web", 0, Status{Current: "starting", Expected: "started"}); err != nil {
		t.Errorf("status transition as berth-reader (a wake): %v", err)
	}
	waitFor(t, c, "the reader's status", func(s *Snapshot) bool { return s.Status["web"] != nil })

	if _, err := reader.Put(ctx, instKey(t, "web", "2"), val); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("instance put as berth-reader: %v, want permission denied", err)
	}
	dom, _ := k.Domain("web.example.com")
	if _, err := agent.Put(ctx, dom, `{"app":"web"}`); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("domain put as berth-agent: %v, want permission denied", err)
	}

	stop()
	<-lease.Done()
	waitFor(t, c, "the instance gone with the revoked lease", func(s *Snapshot) bool { return len(s.Live("web")) == 0 })
}
