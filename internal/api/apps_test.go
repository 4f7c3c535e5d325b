package api

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/registry"
)

func specYAML(name, version, domain string) string {
	return fmt.Sprintf(`apiVersion: berth/v1
name: %s
version: %s
runtime: exec
command: [/bin/true]
instances: 2
ports:
  - container: 8080
domains: [%s]
`, name, version, domain)
}

func TestAPIApplyScaleDelete(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()

	r := e.do("POST", "/v1/apps", e.admin, specYAML("shop", "1.0.0", "shop.example.com")).want(t, 200, "apply")
	var ar ApplyResult
	json.Unmarshal(r.body, &ar)
	if ar.App != "shop" || len(ar.Added) != 1 || ar.Added[0] != "shop.example.com" {
		t.Fatalf("apply result %+v", ar)
	}
	until(t, "the app in GET /v1/apps/shop", func() bool { return e.do("GET", "/v1/apps/shop", e.read, nil).code == 200 })
	var app struct {
		App     string
		Version string
		Wanted  int
		Domains []string
		Spec    map[string]any
	}
	json.Unmarshal(e.do("GET", "/v1/apps/shop", e.read, nil).body, &app)
	if app.App != "shop" || app.Version != "1.0.0" || app.Wanted != 2 || app.Spec == nil || len(app.Domains) != 1 {
		t.Fatalf("GET /v1/apps/shop: %+v", app)
	}

	t.Run("bad spec names every field", func(t *testing.T) {
		bad := strings.Replace(specYAML("shop", "1.0.0", "shop.example.com"), "container: 8080", "container: 99999", 1)
		bad = strings.Replace(bad, "instances: 2", "instances: -1", 1)
		r := e.do("POST", "/v1/apps", e.admin, bad).want(t, 400, "bad spec")
		er := r.error()
		fields := map[string]bool{}
		for _, f := range er.Fields {
			fields[f.Field] = true
		}
		if er.Code != "bad_spec" || !fields["instances"] || !fields["ports[0].container"] {
			t.Fatalf("error %+v: want bad_spec naming instances and ports[0].container", er)
		}
	})
	t.Run("domain of another app is 409", func(t *testing.T) {
		r := e.do("POST", "/v1/apps", e.admin, specYAML("other", "1.0.0", "shop.example.com")).want(t, 409, "domain taken")
		if r.error().Code != "domain_taken" || !strings.Contains(r.error().Message, "shop") {
			t.Fatalf("error %+v", r.error())
		}
	})
	t.Run("hostile bodies", func(t *testing.T) {
		cases := []struct {
			name, body string
			code       int
			field      string
		}{
			{"not JSON", `{"instances":`, 400, ""},
			{"wrong type", `{"instances":"many"}`, 400, "instances"},
			{"unknown field", `{"instances":3,"replicas":3}`, 400, "replicas"},
			{"out of range", `{"instances":0}`, 400, "instances"},
			{"missing", `{}`, 400, "instances"},
			{"two values", `{"instances":3}{"instances":4}`, 400, ""},
			{"huge", `{"instances":3,"x":"` + strings.Repeat("a", 2<<20) + `"}`, 413, ""},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				r := e.do("POST", "/v1/apps/shop/scale", e.admin, c.body).want(t, c.code, c.name)
				if c.field != "" && (len(r.error().Fields) != 1 || r.error().Fields[0].Field != c.field) {
					t.Fatalf("error %+v: want field %q", r.error(), c.field)
				}
			})
		}
		e.do("POST", "/v1/apps", e.admin, strings.Repeat("#", 2<<20)).want(t, 413, "huge spec")
		e.do("GET", "/v1/apps/Not_An_App", e.read, nil).want(t, 400, "bad app name")
		e.do("GET", "/v1/nope", e.read, nil).want(t, 404, "unknown path")
		r := e.do("PUT", "/v1/apps", e.admin, nil).want(t, 405, "wrong method")
		if r.h.Get("Allow") != "GET, POST" {
			t.Fatalf("Allow %q", r.h.Get("Allow"))
		}
	})

	r = e.do("POST", "/v1/apps/shop/scale", e.admin, `{"instances":5}`).want(t, 200, "scale")
	var sr ScaleResult
	json.Unmarshal(r.body, &sr)
	if sr.Previous != 2 || sr.Instances != 5 {
		t.Fatalf("scale result %+v", sr)
	}
	key, _ := e.keys.App("shop")
	got, _ := e.cli.Get(ctx, key)
	if !strings.Contains(string(got.Kvs[0].Value), `"instances":5`) {
		t.Fatalf("spec in etcd after scale: %s", got.Kvs[0].Value)
	}
	e.do("POST", "/v1/apps/nosuch/scale", e.admin, `{"instances":5}`).want(t, 404, "scale of an unknown app")

	t.Run("every mutation is audited on a lease", func(t *testing.T) {
		r := e.do("GET", "/v1/audit?limit=10", e.admin, nil).want(t, 200, "audit")
		var recs []AuditRecord
		json.Unmarshal(r.body, &recs)
		if len(recs) < 2 || recs[0].What != "POST /v1/apps/shop/scale" || recs[0].Who != "test-admin" ||
			recs[0].Route != "POST /v1/apps/{app}/scale" || recs[0].When == "" {
			t.Fatalf("newest audit records %+v", recs)
		}
		for _, rec := range recs {
			if rec.What == "POST /v1/apps/nosuch/scale" {
				t.Fatal("a failed mutation was audited")
			}
		}
		resp, _ := e.cli.Get(ctx, e.keys.AuditPrefix(), clientv3.WithPrefix())
		for _, kv := range resp.Kvs {
			if kv.Lease == 0 {
				t.Fatalf("audit record %s has no lease", kv.Key)
			}
			ttl, err := e.cli.TimeToLive(ctx, clientv3.LeaseID(kv.Lease))
			if err != nil || ttl.TTL < int64(700*3600) {
				t.Fatalf("audit lease TTL %v (%v), want about 1.1 × 720h", ttl.TTL, err)
			}
		}
		e.do("GET", "/v1/audit?limit=0", e.admin, nil).want(t, 400, "bad limit")
	})

	t.Run("passivate and wake", func(t *testing.T) {
		e.do("POST", "/v1/apps/shop/passivate", e.admin, nil).want(t, 404, "passivate without status")
		if _, err := registry.Transition(ctx, e.cli, e.keys, "shop", 0, registry.Status{Current: registry.StatusStarted, Expected: registry.StatusStarted}); err != nil {
			t.Fatal(err)
		}
		var st StateResult
		json.Unmarshal(e.do("POST", "/v1/apps/shop/passivate", e.admin, nil).want(t, 200, "passivate").body, &st)
		cur, _, _ := registry.GetStatus(ctx, e.cli, e.keys, "shop")
		if !st.Changed || cur.Current != registry.StatusPassivated || cur.Expected != registry.StatusPassivated {
			t.Fatalf("after passivate: %+v, status %+v", st, cur)
		}
		json.Unmarshal(e.do("POST", "/v1/apps/shop/passivate", e.admin, nil).want(t, 200, "passivate again").body, &st)
		if st.Changed {
			t.Fatal("a second passivate changed something")
		}
		json.Unmarshal(e.do("POST", "/v1/apps/shop/wake", e.admin, nil).want(t, 200, "wake").body, &st)
		cur, _, _ = registry.GetStatus(ctx, e.cli, e.keys, "shop")
		if !st.Changed || cur.Expected != registry.StatusStarted {
			t.Fatalf("after wake: %+v, status %+v", st, cur)
		}
		// starting, not running: passivation refuses it as a conflict.
		e.do("POST", "/v1/apps/shop/passivate", e.admin, nil).want(t, 409, "passivate while starting")
	})

	r = e.do("DELETE", "/v1/apps/shop", e.admin, nil).want(t, 200, "delete")
	if !strings.Contains(string(r.body), `"spec": true`) {
		t.Fatalf("delete result %s", r.body)
	}
	for _, k := range []string{key, mustKey(e.keys.Status("shop"))} {
		if got, _ := e.cli.Get(ctx, k); len(got.Kvs) != 0 {
			t.Fatalf("%s still in etcd after delete", k)
		}
	}
	e.do("DELETE", "/v1/apps/shop", e.admin, nil).want(t, 404, "delete again")

	// An instance nobody stops: the delete gives up after DeleteWait (2s
	// here), says so, and leaves the app marked deleted.
	e.do("POST", "/v1/apps", e.admin, specYAML("stuck", "1.0.0", "stuck.example.com")).want(t, 200, "apply stuck")
	e.putInstance("stuck", "1", registry.StateUp)
	r = e.do("DELETE", "/v1/apps/stuck", e.admin, nil).want(t, 409, "delete with an instance still registered")
	if r.error().Code != "delete_incomplete" || !strings.Contains(r.error().Message, "DELETE again") {
		t.Fatalf("error %+v", r.error())
	}
	st, _, _ := registry.GetStatus(ctx, e.cli, e.keys, "stuck")
	if st == nil || st.Expected != registry.StatusDeleted {
		t.Fatalf("status after an incomplete delete: %+v, want expected deleted", st)
	}
}

func mustKey(k string, err error) string {
	if err != nil {
		panic(err)
	}
	return k
}
