package hook

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestContainerName: the hooks name the container as the units do
// ("%p-%i"), for a first release and a later one.
func TestContainerName(t *testing.T) {
	for _, c := range []struct{ app, id, want string }{
		{"web", "1", "web-1"},
		{"web", "3.2", "web.3-2"},
	} {
		if got := (&Instance{App: c.app, ID: c.id}).container(); got != c.want {
			t.Errorf("container of %s %s: got %q, want %q", c.app, c.id, got, c.want)
		}
	}
}

// TestWaitPort: post-start runs while the engine is still creating the
// container; the hook asks again until the port is published (a CLI that
// fails twice, as "docker port" does for a container not yet there).
func TestWaitPort(t *testing.T) {
	dir := t.TempDir()
	cli := filepath.Join(dir, "docker")
	script := `#!/bin/sh
n=$(cat "$0.count" 2>/dev/null || echo 0); echo $((n+1)) > "$0.count"
[ "$1 $2 $3" = "port web-1 8080/tcp" ] || { echo "bad args: $*" >&2; exit 2; }
if [ "$n" -lt 2 ]; then echo "Error: No such container: web-1" >&2; exit 1; fi
printf '0.0.0.0:49153\n:::49153\n'
`
	if err := os.WriteFile(cli, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	in := &Instance{App: "web", ID: "1", Runtime: "docker", Port: "8080/tcp", IP: "10.0.0.5", CLI: cli}
	addr, err := (&Hooks{}).Address(ctx, in)
	if err != nil || addr != "10.0.0.5:49153" {
		t.Fatalf("Address = %q, %v; want 10.0.0.5:49153", addr, err)
	}
	// A container that never appears: the deadline ends the wait, with
	// the engine's answer in the error.
	os.WriteFile(cli+".count", []byte("-1000"), 0o644)
	ctx, cancel = context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if _, err := (&Hooks{}).Address(ctx, in); err == nil || !strings.Contains(err.Error(), "no published port") {
		t.Fatalf("Address with no container: %v, want a deadline error", err)
	}
}
