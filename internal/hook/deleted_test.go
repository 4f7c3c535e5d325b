package hook

import (
	"context"
	"fmt"
	"testing"

	"github.com/sirupsen/logrus/hooks/test"

	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/registry"
)

// TestStatusHooks: pre-start and the first healthy instance move the
// status, except when the app is started already or being deleted (a
// unit starting while berth delete runs must not undo its mark).
func TestStatusHooks(t *testing.T) {
	deleted := &registry.Status{Current: registry.StatusStopping, Expected: registry.StatusDeleted}
	cases := []struct {
		name                  string
		before                *registry.Status
		preStart, markStarted *registry.Status // want after each
	}{
		{name: "no status", before: nil,
			preStart:    &registry.Status{Current: registry.StatusStarting, Expected: registry.StatusStarted},
			markStarted: &registry.Status{Current: registry.StatusStarted, Expected: registry.StatusStarted}},
		{name: "passivated (a wake)", before: &registry.Status{Current: registry.StatusPassivated, Expected: registry.StatusStarted},
			preStart:    &registry.Status{Current: registry.StatusStarting, Expected: registry.StatusStarted},
			markStarted: &registry.Status{Current: registry.StatusStarted, Expected: registry.StatusStarted}},
		{name: "started", before: &registry.Status{Current: registry.StatusStarted, Expected: registry.StatusStarted},
			preStart:    &registry.Status{Current: registry.StatusStarted, Expected: registry.StatusStarted},
			markStarted: &registry.Status{Current: registry.StatusStarted, Expected: registry.StatusStarted}},
		{name: "being deleted", before: deleted, preStart: deleted, markStarted: deleted},
	}
	_, cli := etcdtest.New(t)
	log, _ := test.NewNullLogger()
	ctx := context.Background()
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			k, _ := registry.NewKeys(fmt.Sprintf("/case%d", i))
			h := &Hooks{KV: cli, Keys: k, Log: log}
			check := func(step string, want *registry.Status) {
				t.Helper()
				got, _, err := registry.GetStatus(ctx, cli, k, "web")
				if err != nil {
					t.Fatal(err)
				}
				if got == nil || got.Current != want.Current || got.Expected != want.Expected {
					t.Errorf("after %s: %+v, want %s/%s", step, got, want.Current, want.Expected)
				}
			}
			if c.before != nil {
				if _, err := registry.Transition(ctx, cli, k, "web", 0, *c.before); err != nil {
					t.Fatal(err)
				}
			}
			if err := h.PreStart(ctx, &Instance{App: "web", ID: "1"}); err != nil {
				t.Fatal(err)
			}
			check("pre-start", c.preStart)
			if err := h.MarkStarted(ctx, "web"); err != nil {
				t.Fatal(err)
			}
			check("mark started", c.markStarted)
		})
	}
}
