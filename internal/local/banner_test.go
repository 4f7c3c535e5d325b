package local

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/spec"
)

// TestBanner: the banner says when an app will sleep (or that it is
// asleep), and its hints name the CLI as invoked, with the endpoint flag
// only when the CLI's default would not reach this etcd.
func TestBanner(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.Local)
	a := testApp(t, 3)
	a.IdleTimeout = spec.Duration(2 * time.Minute)
	snap := func(st registry.Status, last time.Time) *registry.Snapshot {
		s := &registry.Snapshot{Status: map[string]*registry.Status{"web": &st}, Access: map[string]map[string]*registry.Access{}}
		if !last.IsZero() {
			s.Access["web"] = map[string]*registry.Access{"local": {LastMS: last.UnixMilli()}}
		}
		return s
	}
	running := registry.Status{Current: registry.StatusStarted, Expected: registry.StatusStarted, Since: now.Add(-time.Hour).UnixMilli()}
	for _, c := range []struct {
		name      string
		s         *registry.Snapshot
		b         banner
		want, not []string
	}{
		{name: "asleep", s: snap(registry.Status{Current: registry.StatusPassivated, Expected: registry.StatusPassivated}, time.Time{}),
			b: banner{cli: "./berth", endpoints: []string{defaultEndpoint}}, want: []string{"asleep now", "./berth scale web 5\n"}, not: []string{"sleeps at", "--etcd-endpoints"}},
		{name: "accessed a minute ago", s: snap(running, now.Add(-time.Minute)),
			b:    banner{cli: "go run ./cmd/berth", endpoints: []string{"http://127.0.0.1:23790"}, every: 10 * time.Second},
			want: []string{"sleeps at about 12:01:10 (in 1m10s)", "go run ./cmd/berth scale web 5 --etcd-endpoints http://127.0.0.1:23790"}},
		{name: "just started", s: snap(registry.Status{Current: registry.StatusStarted, Expected: registry.StatusStarted, Since: now.UnixMilli()}, time.Time{}),
			b: banner{minUptime: time.Minute}, want: []string{"sleeps at about 12:02:00 (in 2m0s)", "  scale  berth scale web 5"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.b.router, c.b.dns = "127.0.0.1:8080", "127.0.0.1:8053"
			var out bytes.Buffer
			c.b.print(&out, c.s, []*spec.App{a}, now)
			for _, w := range c.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("banner lacks %q:\n%s", w, out.String())
				}
			}
			for _, w := range c.not {
				if strings.Contains(out.String(), w) {
					t.Errorf("banner has %q:\n%s", w, out.String())
				}
			}
		})
	}
}
