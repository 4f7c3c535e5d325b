package api

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/berthproject/berth/internal/etcdauth"
	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/registry"
)

// TestAPIAsOperator: on an etcd with auth and berth's roles, the API
// connected as berth-operator does everything it offers, audit records
// and their leases included; connected as berth-reader its mutations fail
// with a 502 that names the role to use.
func TestAPIAsOperator(t *testing.T) {
	srv, p := etcdtest.Secure(t)
	op := etcdtest.SecureClient(t, srv, p, etcdauth.Operator)
	reader := etcdtest.SecureClient(t, srv, p, etcdauth.Reader)
	e := newEnvOn(t, op, reader, op, nil)
	e.do("POST", "/v1/apps", e.admin, specYAML("shop", "1.0.0", "shop.example.com")).want(t, 200, "apply as operator")
	e.do("POST", "/v1/apps/shop/scale", e.admin, `{"instances":3}`).want(t, 200, "scale as operator")
	registry.Transition(context.Background(), op, e.keys, "shop", 0, registry.Status{Current: registry.StatusStarted, Expected: registry.StatusStarted})
	e.do("POST", "/v1/apps/shop/passivate", e.admin, nil).want(t, 200, "passivate as operator")
	e.do("POST", "/v1/apps/shop/wake", e.admin, nil).want(t, 200, "wake as operator")
	var recs []AuditRecord
	json.Unmarshal(e.do("GET", "/v1/audit", e.admin, nil).want(t, 200, "audit").body, &recs)
	if len(recs) < 4 {
		t.Fatalf("%d audit records, want one per mutation at least", len(recs))
	}
	until(t, "the app in the reader's cache", func() bool { return e.do("GET", "/v1/apps/shop", e.read, nil).code == 200 })
	e.do("DELETE", "/v1/apps/shop", e.admin, nil).want(t, 200, "delete as operator")

	// The same API connected as berth-reader: it reads, but its writes
	// are refused by etcd, and the answer says which user to use.
	for _, n := range []string{"test-admin", "test-read"} {
		if _, err := RevokeTokens(context.Background(), op, e.keys, n); err != nil {
			t.Fatal(err)
		}
	}
	ro := newEnvOn(t, reader, reader, op, nil)
	ro.do("GET", "/v1/status", ro.read, nil).want(t, 200, "read as reader")
	r := ro.do("POST", "/v1/apps", ro.admin, specYAML("shop", "1.0.0", "shop.example.com")).want(t, 502, "apply as reader")
	if r.error().Code != "etcd_permission" || !strings.Contains(r.error().Message, "berth-operator") {
		t.Fatalf("error %+v: want etcd_permission naming berth-operator", r.error())
	}
}
