package local

import (
	"fmt"
	"io"
	"net"
	"strings"
	"time"

	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/spec"
)

// defaultEndpoint is where the CLI looks for etcd without --etcd-endpoints.
const defaultEndpoint = "http://127.0.0.1:2379"

// banner is what berth up prints once everything runs: where each part
// listens, each app's state and when it will sleep, and commands to try,
// worded as the user invoked berth (cli: "./berth", "go run ./cmd/berth").
type banner struct {
	cli       string
	endpoints []string
	secure    bool
	router    string // host:port
	admin     string // host:port, "" when disabled
	dns       string // host:port
	minUptime time.Duration
	every     time.Duration // passivation pass interval
}

func (b banner) command() string {
	if b.cli == "" {
		return "berth"
	}
	return b.cli
}

// endpointFlag is the --etcd-endpoints flag the CLI needs to reach this
// etcd, "" for the CLI's default.
func (b banner) endpointFlag() string {
	if b.secure || strings.Join(b.endpoints, ",") == defaultEndpoint {
		return ""
	}
	return " --etcd-endpoints " + strings.Join(b.endpoints, ",")
}

func (b banner) print(out io.Writer, s *registry.Snapshot, apps []*spec.App, now time.Time) {
	say := func(format string, args ...any) { fmt.Fprintf(out, format+"\n", args...) }
	if b.admin != "" {
		say("router on http://%s   (admin: http://%s/routes)", b.router, b.admin)
	} else {
		say("router on http://%s", b.router)
	}
	say("dnsd on %s (udp+tcp), zone berth.", b.dns)
	_, port, _ := net.SplitHostPort(b.router)
	dhost, dport, _ := net.SplitHostPort(b.dns)
	cli := b.command()
	flag := b.endpointFlag()
	for _, a := range apps {
		host := a.Name + ".localhost"
		if len(a.Domains) > 0 {
			host = strings.TrimPrefix(a.Domains[0], "*.")
		}
		say("app %s: %d instance(s), %s", a.Name, a.Instances, b.sleepNote(s, a, now))
		say("  open   http://%s:%s/", host, port)
		say("  curl   curl -H 'Host: %s' http://%s/status", host, b.router)
		say("  dig    dig @%s -p %s %s.service.berth SRV", dhost, dport, a.Name)
		say("  scale  %s scale %s %d%s", cli, a.Name, a.Instances+2, flag)
	}
}

// sleepNote says whether the app is asleep, or when passivation will put
// it to sleep if no request comes: the later of its last activity plus
// the idle timeout and its start plus the minimum uptime, at the next
// pass after that.
func (b banner) sleepNote(s *registry.Snapshot, a *spec.App, now time.Time) string {
	idle := a.IdleTimeout.D()
	switch {
	case asleep(s, a.Name):
		return fmt.Sprintf("idle timeout %s, asleep now: the first request wakes it", a.IdleTimeout)
	case idle == 0:
		return "never passivated (no idle timeout)"
	}
	at := sleepAt(s, a, now, b.minUptime).Add(b.every)
	return fmt.Sprintf("idle timeout %s: sleeps at about %s (in %s) unless it gets a request",
		a.IdleTimeout, at.Local().Format("15:04:05"), at.Sub(now).Round(time.Second))
}

// sleepAt is when passivation first finds the app idle, without requests
// from now on.
func sleepAt(s *registry.Snapshot, a *spec.App, now time.Time, minUptime time.Duration) time.Time {
	since := now
	if st := s.Status[a.Name]; st != nil && st.Since > 0 {
		since = time.UnixMilli(st.Since)
	}
	activity := since
	if last, _ := s.LastAccess(a.Name); last > 0 && time.UnixMilli(last).After(activity) {
		activity = time.UnixMilli(last)
	}
	at := activity.Add(a.IdleTimeout.D())
	if up := since.Add(min(minUptime, a.IdleTimeout.D())); up.After(at) {
		at = up
	}
	if at.Before(now) {
		at = now
	}
	return at
}

// asleep reports whether the app is passivated (expected so).
func asleep(s *registry.Snapshot, app string) bool {
	st := s.Status[app]
	return st != nil && st.Expected == registry.StatusPassivated
}
