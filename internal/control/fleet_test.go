package control

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthproject/berth/internal/spec"
)

// fakeFleetctl writes a fleetctl that records its arguments (fleet cannot
// run here) and fails when asked to.
func fakeFleetctl(t *testing.T, fail bool) (string, string) {
	t.Helper()
	dir := t.TempDir()
	log := filepath.Join(dir, "calls")
	script := "#!/bin/sh\necho \"$@\" >> " + log + "\n"
	if fail {
		script += "echo 'Error: unable to reach fleet' >&2\nexit 1\n"
	}
	bin := filepath.Join(dir, "fleetctl")
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, log
}

func TestFleetDriver(t *testing.T) {
	bin, log := fakeFleetctl(t, false)
	f := &Fleet{Fleetctl: bin, Endpoint: "http://10.0.1.11:2379", Tunnel: "203.0.113.10"}
	app := &spec.App{Name: "web", Instances: 3}
	if err := f.Stop(context.Background(), app); err != nil {
		t.Fatal(err)
	}
	if err := f.Start(context.Background(), app); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(log)
	want := "--endpoint http://10.0.1.11:2379 --tunnel 203.0.113.10 stop --no-block web@1.service web@2.service web@3.service\n" +
		"--endpoint http://10.0.1.11:2379 --tunnel 203.0.113.10 start --no-block web@1.service web@2.service web@3.service\n"
	if string(b) != want {
		t.Fatalf("fleetctl calls:\n%s\nwant:\n%s", b, want)
	}
	bad, _ := fakeFleetctl(t, true)
	err := (&Fleet{Fleetctl: bad}).Stop(context.Background(), app)
	if err == nil || !strings.Contains(err.Error(), "unable to reach fleet") {
		t.Fatalf("got %v, want fleetctl's message", err)
	}
}
