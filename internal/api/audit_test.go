package api

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestAPIAuditKV: a write commits with its audit record or not at all;
// reads add nothing.
func TestAPIAuditKV(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	kv := &auditKV{KV: e.cli, keys: e.keys, a: &auditor{lease: e.cli, retention: time.Hour},
		rec: AuditRecord{Who: "tester", What: "test", Request: "rtest"}}
	count := func() int {
		resp, err := e.cli.Get(ctx, e.keys.AuditPrefix(), clientv3.WithPrefix(), clientv3.WithCountOnly())
		if err != nil {
			t.Fatal(err)
		}
		return int(resp.Count)
	}
	steps := []struct {
		name string
		run  func() error
		want int // audit records added
	}{
		{"put", func() error { _, err := kv.Put(ctx, "/berth/v1/apps/x", "{}"); return err }, 1},
		{"get", func() error { _, err := kv.Get(ctx, "/berth/v1/apps/x"); return err }, 0},
		{"read-only txn", func() error { _, err := kv.Txn(ctx).Then(clientv3.OpGet("/berth/v1/apps/x")).Commit(); return err }, 0},
		{"failed compare, no else", func() error {
			_, err := kv.Txn(ctx).If(clientv3.Compare(clientv3.Version("/berth/v1/apps/x"), "=", 99)).
				Then(clientv3.OpPut("/berth/v1/apps/x", "{}")).Commit()
			return err
		}, 0},
		{"failed compare, else writes", func() error {
			_, err := kv.Txn(ctx).If(clientv3.Compare(clientv3.Version("/berth/v1/apps/x"), "=", 99)).
				Then(clientv3.OpPut("/berth/v1/apps/x", "{}")).Else(clientv3.OpDelete("/berth/v1/apps/y")).Commit()
			return err
		}, 1},
		{"delete", func() error { _, err := kv.Delete(ctx, "/berth/v1/apps/x"); return err }, 1},
		{"do put", func() error { _, err := kv.Do(ctx, clientv3.OpPut("/berth/v1/apps/z", "{}")); return err }, 1},
	}
	for _, s := range steps {
		before := count()
		if err := s.run(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := count() - before; got != s.want {
			t.Fatalf("%s: %d audit records added, want %d", s.name, got, s.want)
		}
	}
	recs, err := ListAudit(ctx, e.cli, e.keys, 1)
	if err != nil || len(recs) != 1 {
		t.Fatalf("ListAudit: %v %v", recs, err)
	}
	b, _ := json.Marshal(recs[0])
	if recs[0].Who != "tester" || recs[0].Ops != 1 || recs[0].Request != "rtest" {
		t.Fatalf("record %s", b)
	}
}

func TestAPIEventsLimitsAndKeepalive(t *testing.T) {
	e := newEnv(t, func(c *Config) { c.MaxStreams = 2; c.Heartbeat = 50 * time.Millisecond })
	s1 := e.stream(e.read, nil)
	e.stream(e.read, nil)
	r := e.do("GET", "/v1/events", e.read, nil).want(t, 503, "a third stream")
	if r.h.Get("Retry-After") == "" || r.error().Code != "too_many_streams" {
		t.Fatalf("503 %+v %v", r.error(), r.h)
	}
	s1.res.Body.Close()
	until(t, "a stream slot", func() bool { return gaugeValue(e.srv.metrics.streams) == 1 })

	// A raw read shows the keepalive comments readSSE skips.
	req, _ := http.NewRequest("GET", e.url+"/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+e.read)
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("%v %v", err, res)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	sc := bufio.NewScanner(res.Body)
	deadline := time.Now().Add(5 * time.Second)
	for sc.Scan() && time.Now().Before(deadline) {
		if sc.Text() == ": keepalive" {
			return
		}
	}
	t.Fatal("no keepalive comment")
}
