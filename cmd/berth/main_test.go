package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// berth runs the CLI in-process and returns exit code, stdout and stderr.
func berth(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(args, &out, &errb)
	return code, out.String(), errb.String()
}

// TestHelpOfEveryCommand parses --help of every command.
func TestHelpOfEveryCommand(t *testing.T) {
	var walk func(c *cobra.Command)
	var paths [][]string
	walk = func(c *cobra.Command) {
		if c.Hidden {
			return
		}
		paths = append(paths, strings.Fields(c.CommandPath())[1:])
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCommand(&bytes.Buffer{}, &bytes.Buffer{}))
	if len(paths) < 3 {
		t.Fatalf("got %d commands, want at least root, version and render", len(paths))
	}
	for _, p := range paths {
		t.Run(strings.Join(append([]string{"berth"}, p...), " "), func(t *testing.T) {
			code, out, errOut := berth(t, append(p, "--help")...)
			if code != 0 || !strings.Contains(out, "Usage:") || errOut != "" {
				t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
			}
		})
	}
}

func TestUnknownFlagIsUsageError(t *testing.T) {
	if code, _, errOut := berth(t, "render", "--bogus"); code != exitUsage || !strings.Contains(errOut, "unknown flag: --bogus (see berth render --help)") {
		t.Fatalf("got exit %d, stderr %q; want %d and a pointer to --help", code, errOut, exitUsage)
	}
	if code, _, _ := berth(t, "render", "x.yaml"); code != exitUsage {
		t.Fatalf("render without -o: got exit %d, want %d", code, exitUsage)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := berth(t, "version", "-o", "json")
	if code != 0 || !strings.Contains(out, `"version":"0.`) || !strings.Contains(out, `"commit"`) {
		t.Fatalf("exit %d, output %q", code, out)
	}
}

func TestRenderWritesEveryExample(t *testing.T) {
	dir := t.TempDir()
	code, out, errOut := berth(t, "render", "../../examples/paas-monitor.yaml", "../../examples/multi-port.yaml",
		"../../examples/demo-exec.yaml", "../../examples/secrets.yaml", "--platform", "--check", "-o", dir)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, name := range []string{"paas-monitor@.service", "shop-api@.service", "demo@.service", "billing@.service", "berth-router.socket", "berth-passivate.timer"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s not written: %v (output %q)", name, err, out)
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.Contains(e.Name(), ".tmp-") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
	code, out, _ = berth(t, "render", "../../examples/paas-monitor.yaml", "-o", dir, "--diff")
	if code != 0 || !strings.Contains(out, "no changes") {
		t.Fatalf("diff of an unchanged dir: exit %d, %q", code, out)
	}
}

func TestRenderDiffShowsChange(t *testing.T) {
	dir := t.TempDir()
	if code, _, e := berth(t, "render", "../../examples/paas-monitor.yaml", "-o", dir); code != 0 {
		t.Fatal(e)
	}
	spec := filepath.Join(t.TempDir(), "app.yaml")
	src, _ := os.ReadFile("../../examples/paas-monitor.yaml")
	os.WriteFile(spec, bytes.Replace(src, []byte("stopTimeout: 10s"), []byte("stopTimeout: 20s"), 1), 0o644)
	code, out, _ := berth(t, "render", spec, "-o", dir, "--diff")
	if code != 0 || !strings.Contains(out, "-TimeoutStopSec=15") || !strings.Contains(out, "+TimeoutStopSec=25") {
		t.Fatalf("exit %d, diff %q", code, out)
	}
	b, _ := os.ReadFile(filepath.Join(dir, "paas-monitor@.service"))
	if !strings.Contains(string(b), "TimeoutStopSec=15") {
		t.Fatal("--diff wrote the file")
	}
}

func TestRenderStdout(t *testing.T) {
	code, out, _ := berth(t, "render", "../../examples/paas-monitor.yaml", "-o", "-")
	if code != 0 || !strings.Contains(out, "# paas-monitor@.service") || !strings.Contains(out, "ExecStart=/usr/bin/docker run") {
		t.Fatalf("exit %d, output %q", code, out)
	}
}

// A bad spec among good ones: clear error, non-zero exit, nothing written.
func TestRenderBadSpecWritesNothing(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("apiVersion: berth/v1\nname: web\nimage: x\nports: [{container: 99999}]\n"), 0o644)
	dir := filepath.Join(t.TempDir(), "out")
	code, _, errOut := berth(t, "render", "../../examples/paas-monitor.yaml", bad, "-o", dir)
	if code != exitFailure || !strings.Contains(errOut, "ports[0].container: must be 1..65535") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("output dir created despite the error: %v", err)
	}
}

func TestRenderDuplicateApp(t *testing.T) {
	code, _, errOut := berth(t, "render", "../../examples/paas-monitor.yaml", "../../examples/paas-monitor.yaml", "-o", "-")
	if code != exitFailure || !strings.Contains(errOut, "already defined") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
}

func TestRenderIgnition(t *testing.T) {
	code, out, errOut := berth(t, "render", "--ignition", "worker", "--berth-url", "https://example.com/berth", "-o", "-")
	if code != 0 || !strings.Contains(out, `"version": "3.4.0"`) || !strings.Contains(out, "berth-agent.service") {
		t.Fatalf("exit %d %q %q", code, out, errOut)
	}
	if code, _, _ := berth(t, "render", "--ignition", "worker", "-o", "-"); code != exitUsage {
		t.Fatalf("without --berth-url: exit %d", code)
	}
	if code, _, _ := berth(t, "render", "--ignition", "laptop", "--berth-url", "https://x", "-o", "-"); code != exitUsage {
		t.Fatalf("unknown role: exit %d", code)
	}
	code, out, errOut = berth(t, "render", "--ignition", "worker", "--berth-url", "https://x", "--node-etcd-endpoints", "https://10.0.1.11:2379",
		"--pki-prefix", "/berth/s", "--ignition-acme", "-o", "-")
	if code != 0 || !strings.Contains(out, "30-acme.conf") || !strings.Contains(out, "--prefix /berth/s/acme --dir /etc/berth/acme") {
		t.Fatalf("--ignition-acme: exit %d %q", code, errOut)
	}
	if code, _, errOut := berth(t, "render", "--ignition", "worker", "--berth-url", "https://x", "--ignition-acme", "-o", "-"); code == 0 || !strings.Contains(errOut, "needs a pki prefix") {
		t.Fatalf("--ignition-acme without --pki-prefix: exit %d %q", code, errOut)
	}
}

// TestAgentDeployerFlag: a deployer berth agent does not know is a usage
// error before the agent starts.
func TestAgentDeployerFlag(t *testing.T) {
	code, _, errOut := berth(t, "agent", "--deployer", "bogus")
	if code != exitUsage || !strings.Contains(errOut, "--deployer must be berth, systemd or none") {
		t.Errorf("exit %d %q", code, errOut)
	}
}
