package router

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/berthproject/berth/internal/etcdauth"
	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/registry"
)

// TestRouterAsReader: a router connected over TLS as berth-reader follows
// the routes an operator writes, writes its access records on its lease,
// and cannot write an app spec.
func TestRouterAsReader(t *testing.T) {
	s, p := etcdtest.Secure(t)
	op := etcdtest.SecureClient(t, s, p, etcdauth.Operator)
	reader := etcdtest.SecureClient(t, s, p, etcdauth.Reader)
	e := newEnvOn(t, Config{ID: "r1", AccessInterval: 50 * time.Millisecond}, op, reader)
	b, _ := backend(t, "a")
	e.domain("web.example.com", "web")
	e.instance("web", "1", strings.TrimPrefix(b.URL, "http://"))
	if resp, body := e.get("web.example.com", "/"); resp.StatusCode != 200 || !strings.HasPrefix(body, "a /") {
		t.Fatalf("GET through the reader's router: %d %q", resp.StatusCode, body)
	}
	e.waitAccess(e.runAccess("web"), func(a registry.Access) bool { return a.LastMS != 0 })

	app, _ := e.keys.App("web")
	if _, err := reader.Put(context.Background(), app, "{}"); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("put %s as berth-reader: %v, want permission denied", app, err)
	}
}
