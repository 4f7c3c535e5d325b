package router

import (
	"context"
	"strings"
	"testing"

	"github.com/sirupsen/logrus/hooks/test"

	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/spec"
)

// sync waits until the router's table reflects everything written so far.
func (e *env) sync() {
	e.t.Helper()
	resp, err := e.cli.Get(context.Background(), "/sync")
	if err != nil {
		e.t.Fatal(err)
	}
	e.waitRev(resp.Header.Revision)
}

func (e *env) apply(name string, domains ...string) {
	e.t.Helper()
	a := &spec.App{APIVersion: spec.APIVersion, Name: name, Image: "x", Domains: domains}
	a.SetDefaults()
	if _, err := registry.Apply(context.Background(), e.cli, e.keys, a, registry.ApplyOptions{}); err != nil {
		e.t.Fatal(err)
	}
	e.sync()
}

// wantNotFound checks that host gets the unknown-host page (HTML and JSON).
func (e *env) wantNotFound(host string) {
	e.t.Helper()
	resp, body := e.get(host, "/", "Accept", "text/html")
	if resp.StatusCode != 404 || resp.Header.Get("X-Berth-Page") != pageNotFound || !strings.Contains(body, "<html") {
		e.t.Errorf("Host %q: got %d %v %q, want the unknown-host 404 page", host, resp.StatusCode, resp.Header, body)
	}
	resp, body = e.get(host, "/", "Accept", "application/json")
	if resp.StatusCode != 404 || !strings.Contains(body, `"status":404`) {
		e.t.Errorf("Host %q (JSON): got %d %q, want 404", host, resp.StatusCode, body)
	}
}

func (e *env) wantBackend(host, name string) {
	e.t.Helper()
	resp, body := e.get(host, "/")
	if resp.StatusCode != 200 || !strings.HasPrefix(body, name+" ") {
		e.t.Errorf("Host %q: got %d %q, want %s", host, resp.StatusCode, body, name)
	}
}

// TestDomainDroppedFromSpecStopsRouting: applying a spec without one of
// its domains takes that domain off every router; the others stay.
func TestDomainDroppedFromSpecStopsRouting(t *testing.T) {
	e := newEnv(t, Config{})
	b, _ := backend(t, "web")
	e.instance("web", "1", addr(b))
	e.apply("web", "www.example.com", "old.example.com", "*.web.example.org")
	for _, host := range []string{"www.example.com", "old.example.com", "a.web.example.org"} {
		e.wantBackend(host, "web")
	}
	e.apply("web", "www.example.com")
	e.wantBackend("www.example.com", "web")
	e.wantNotFound("old.example.com")
	e.wantNotFound("a.web.example.org")
}

// TestDeletedAppAnswersUnknownHost: once an app is marked deleted its
// domains answer 404 (its instances serve the <app>.* convention until
// they stop); once purged every host of it answers the unknown-host page.
func TestDeletedAppAnswersUnknownHost(t *testing.T) {
	e := newEnv(t, Config{})
	b, _ := backend(t, "shop")
	o, _ := backend(t, "other")
	e.instance("shop", "1", addr(b))
	e.instance("other", "1", addr(o))
	e.apply("shop", "www.example.com")
	e.apply("other", "other.example.com")
	e.status("shop", registry.Status{Current: registry.StatusStarted, Expected: registry.StatusStarted})
	e.wantBackend("www.example.com", "shop")
	e.wantBackend("shop.localhost", "shop")

	ctx := context.Background()
	if _, err := registry.MarkDeleted(ctx, e.cli, e.keys, "shop"); err != nil {
		t.Fatal(err)
	}
	e.sync()
	e.wantNotFound("www.example.com")
	e.wantBackend("shop.localhost", "shop") // draining while its units stop

	if _, err := registry.PurgeApp(ctx, e.cli, e.keys, "shop", ""); err != nil {
		t.Fatal(err)
	}
	e.sync()
	for _, host := range []string{"www.example.com", "shop.localhost", "shop"} {
		e.wantNotFound(host)
	}
	e.wantBackend("other.example.com", "other")
}

// TestWakeLeavesDeletedAppAlone: a router whose view still shows a
// sleeping app does not wake it once it is marked deleted, nor bring its
// status back once it is purged.
func TestWakeLeavesDeletedAppAlone(t *testing.T) {
	e := newEnv(t, Config{})
	log, _ := test.NewNullLogger()
	w := NewWaker(e.r, e.cli, e.keys, log)
	ctx := context.Background()
	e.apply("sleepy", "sleepy.example.com")
	e.status("sleepy", registry.Status{Current: registry.StatusPassivated, Expected: registry.StatusPassivated})
	if _, err := registry.MarkDeleted(ctx, e.cli, e.keys, "sleepy"); err != nil {
		t.Fatal(err)
	}
	if w.wake(ctx, "sleepy") {
		t.Error("woke an app marked deleted")
	}
	if st, _, _ := registry.GetStatus(ctx, e.cli, e.keys, "sleepy"); st == nil || st.Expected != registry.StatusDeleted {
		t.Errorf("status %+v, want the deleted mark kept", st)
	}
	if _, err := registry.PurgeApp(ctx, e.cli, e.keys, "sleepy", ""); err != nil {
		t.Fatal(err)
	}
	if w.wake(ctx, "sleepy") {
		t.Error("woke a purged app")
	}
	if st, rev, _ := registry.GetStatus(ctx, e.cli, e.keys, "sleepy"); rev != 0 {
		t.Errorf("a wake wrote status %+v for a purged app", st)
	}
	e.sync()
	e.wantNotFound("sleepy.example.com")
}
