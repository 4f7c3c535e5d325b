package registry

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/spec"
)

func testApp(name string, domains ...string) *spec.App {
	a := &spec.App{APIVersion: spec.APIVersion, Name: name, Image: "x", Domains: domains}
	a.SetDefaults()
	return a
}

// domainOwners reads every domains/ record: host → app.
func domainOwners(t testing.TB, kv clientv3.KV, k Keys) map[string]string {
	t.Helper()
	resp, err := kv.Get(context.Background(), k.domainsPrefix(), clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, d := range appDomains(k, resp.Kvs) {
		out[d.host] = d.owner
	}
	return out
}

// TestApplyDomains: an apply makes the app's domains those of its spec
// (new ones added, dropped ones removed) and refuses a domain another app
// owns unless TakeOver.
func TestApplyDomains(t *testing.T) {
	cases := []struct {
		name    string
		before  map[string][]string // app → domains applied first, in order of the names
		order   []string
		app     *spec.App
		opts    ApplyOptions
		want    map[string]string // host → owner after
		applied Applied
		taken   *DomainTakenError
	}{
		{name: "new app", app: testApp("web", "web.example.com", "*.web.example.com"),
			want:    map[string]string{"web.example.com": "web", "*.web.example.com": "web"},
			applied: Applied{Added: []string{"*.web.example.com", "web.example.com"}}},
		{name: "same domains again", before: map[string][]string{"web": {"web.example.com"}}, order: []string{"web"},
			app: testApp("web", "web.example.com"), want: map[string]string{"web.example.com": "web"}},
		{name: "a domain left the spec", before: map[string][]string{"web": {"web.example.com", "old.example.com"}}, order: []string{"web"},
			app: testApp("web", "web.example.com"), want: map[string]string{"web.example.com": "web"},
			applied: Applied{Removed: []string{"old.example.com"}}},
		{name: "every domain left the spec", before: map[string][]string{"web": {"a.example.com", "b.example.com"}}, order: []string{"web"},
			app: testApp("web"), want: map[string]string{}, applied: Applied{Removed: []string{"a.example.com", "b.example.com"}}},
		{name: "another app's domains stay", before: map[string][]string{"web": {"web.example.com"}, "shop": {"shop.example.com"}},
			order: []string{"web", "shop"}, app: testApp("web", "www.example.com"),
			want:    map[string]string{"www.example.com": "web", "shop.example.com": "shop"},
			applied: Applied{Added: []string{"www.example.com"}, Removed: []string{"web.example.com"}}},
		{name: "a domain of another app is refused", before: map[string][]string{"shop": {"shop.example.com"}}, order: []string{"shop"},
			app: testApp("web", "web.example.com", "shop.example.com"), want: map[string]string{"shop.example.com": "shop"},
			taken: &DomainTakenError{Domain: "shop.example.com", Owner: "shop", App: "web"}},
		{name: "take over", before: map[string][]string{"shop": {"shop.example.com", "s.example.com"}}, order: []string{"shop"},
			app: testApp("web", "shop.example.com"), opts: ApplyOptions{TakeOver: true},
			want:    map[string]string{"shop.example.com": "web", "s.example.com": "shop"},
			applied: Applied{Taken: map[string]string{"shop.example.com": "shop"}}},
	}
	_, cli := etcdtest.New(t)
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			k, _ := NewKeys(fmt.Sprintf("/case%d", i))
			ctx := context.Background()
			for _, name := range c.order {
				if _, err := Apply(ctx, cli, k, testApp(name, c.before[name]...), ApplyOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			got, err := Apply(ctx, cli, k, c.app, c.opts)
			if c.taken != nil {
				var te *DomainTakenError
				if !errors.As(err, &te) || *te != *c.taken || !errors.Is(err, ErrDomainTaken) {
					t.Fatalf("got %v, want %v", err, c.taken)
				}
				if r, _ := ReadApp(ctx, cli, k, c.app.Name); r.Found() {
					t.Errorf("a refused apply wrote records of %s: %+v", c.app.Name, r)
				}
			} else if err != nil {
				t.Fatal(err)
			} else if !slices.Equal(got.Added, c.applied.Added) || !slices.Equal(got.Removed, c.applied.Removed) ||
				!maps.Equal(got.Taken, c.applied.Taken) {
				t.Errorf("applied %+v, want %+v", *got, c.applied)
			}
			if owners := domainOwners(t, cli, k); !maps.Equal(owners, c.want) {
				t.Errorf("domains %v, want %v", owners, c.want)
			}
		})
	}
}

// TestApplyRaceForOneDomain: two apps applied at once, each claiming the
// same domain: exactly one wins, the other is refused naming the winner.
func TestApplyRaceForOneDomain(t *testing.T) {
	_, cli := etcdtest.New(t)
	for round := range 20 {
		k, _ := NewKeys(fmt.Sprintf("/race%d", round))
		ctx := context.Background()
		if err := EnsureSchema(ctx, cli, k); err != nil {
			t.Fatal(err)
		}
		apps := []*spec.App{testApp("blue", "shop.example.com", "blue.example.com"), testApp("green", "shop.example.com")}
		errs := make([]error, len(apps))
		var start, done sync.WaitGroup
		start.Add(1)
		for i, a := range apps {
			done.Add(1)
			go func() {
				defer done.Done()
				start.Wait()
				_, errs[i] = Apply(ctx, cli, k, a, ApplyOptions{})
			}()
		}
		start.Done()
		done.Wait()
		winners := 0
		winner := ""
		for i, err := range errs {
			switch {
			case err == nil:
				winners++
				winner = apps[i].Name
			case !errors.Is(err, ErrDomainTaken):
				t.Fatalf("round %d, %s: %v", round, apps[i].Name, err)
			}
		}
		if winners != 1 {
			t.Fatalf("round %d: %d applies won (%v), want exactly 1", round, winners, errs)
		}
		for i, err := range errs {
			var te *DomainTakenError
			if err != nil && (!errors.As(err, &te) || te.Owner != winner || te.App != apps[i].Name) {
				t.Errorf("round %d: the loser's error %v does not name the winner %s", round, err, winner)
			}
		}
		if owners := domainOwners(t, cli, k); owners["shop.example.com"] != winner {
			t.Fatalf("round %d: shop.example.com belongs to %q, want the winner %s", round, owners["shop.example.com"], winner)
		}
	}
}

// TestDeleteSteps: MarkDeleted removes the spec and domains and marks the
// status; PurgeApp removes the rest, and keeps everything when the app
// was applied again in between.
func TestDeleteSteps(t *testing.T) {
	_, cli := etcdtest.New(t)
	k := keys(t)
	ctx := context.Background()
	if _, err := MarkDeleted(ctx, cli, k, "web"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown app: got %v, want ErrNotFound", err)
	}
	if _, err := MarkDeleted(ctx, cli, k, "Web_1"); !errors.Is(err, ErrBadName) {
		t.Fatalf("bad name: got %v, want ErrBadName", err)
	}
	setup := func() {
		t.Helper()
		if _, err := Apply(ctx, cli, k, testApp("web", "web.example.com"), ApplyOptions{}); err != nil {
			t.Fatal(err)
		}
		if _, err := Apply(ctx, cli, k, testApp("shop", "shop.example.com"), ApplyOptions{}); err != nil {
			t.Fatal(err)
		}
		put(t, cli, instKey(t, "web", "1"), Instance{Addr: "127.0.0.1:9", State: StateUp, Unit: "web@1.service"})
		ak, _ := k.Access("web", "r1")
		put(t, cli, ak, Access{LastMS: 1})
		if _, err := Transition(ctx, cli, k, "web", 0, Status{Current: StatusPassivated, Expected: StatusPassivated,
			Units: map[string][]string{"n1": {"web@1.service", "web@7.service"}}}); err != nil {
			t.Fatal(err)
		}
	}
	setup()
	r, err := MarkDeleted(ctx, cli, k, "web")
	if err != nil {
		t.Fatal(err)
	}
	if r.Spec == nil || !slices.Equal(r.Domains, []string{"web.example.com"}) || r.InstanceKeys != 1 || r.AccessKeys != 1 {
		t.Fatalf("records before: %+v", r)
	}
	after, _ := ReadApp(ctx, cli, k, "web")
	if after.Spec != nil || len(after.Domains) != 0 || after.Status == nil || after.Status.Expected != StatusDeleted ||
		after.Status.Current != StatusStopping || len(after.Status.Units["n1"]) != 2 {
		t.Fatalf("after the mark: %+v status %+v", after, after.Status)
	}
	// An interrupted delete is marked again: the records are still found.
	if _, err := MarkDeleted(ctx, cli, k, "web"); err != nil {
		t.Fatalf("mark again: %v", err)
	}
	p, err := PurgeApp(ctx, cli, k, "web", "berth.example")
	if err != nil {
		t.Fatal(err)
	}
	if !p.Status || p.Instances != 1 || p.Access != 1 || p.SkyDNSKey != "/skydns/example/berth/service/web/" {
		t.Errorf("purged %+v", p)
	}
	if r, _ := ReadApp(ctx, cli, k, "web"); r.Found() {
		t.Errorf("records left: %+v", r)
	}
	if owners := domainOwners(t, cli, k); !maps.Equal(owners, map[string]string{"shop.example.com": "shop"}) {
		t.Errorf("domains %v: shop's must stay", owners)
	}
	if _, err := MarkDeleted(ctx, cli, k, "web"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted again: got %v, want ErrNotFound", err)
	}

	// Applied again between the mark and the purge: the apply clears the
	// mark, the purge keeps everything.
	setup()
	if _, err := MarkDeleted(ctx, cli, k, "web"); err != nil {
		t.Fatal(err)
	}
	if _, err := Apply(ctx, cli, k, testApp("web", "web.example.com"), ApplyOptions{}); err != nil {
		t.Fatal(err)
	}
	if st, _, _ := GetStatus(ctx, cli, k, "web"); st != nil {
		t.Errorf("status after the apply: %+v, want the deleted mark gone", st)
	}
	if _, err := PurgeApp(ctx, cli, k, "web", ""); !errors.Is(err, ErrReapplied) {
		t.Fatalf("purge after a re-apply: got %v, want ErrReapplied", err)
	}
	if r, _ := ReadApp(ctx, cli, k, "web"); r.Spec == nil || r.InstanceKeys != 1 || len(r.Domains) != 1 {
		t.Errorf("records after a refused purge: %+v", r)
	}
}
