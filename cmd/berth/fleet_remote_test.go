package main

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// TestSSHArgv: the ssh command line for each of fleetctl's ssh flags.
func TestSSHArgv(t *testing.T) {
	def := SSHOptions{User: "core", StrictHostKeyChecking: true, Port: 22, Timeout: 10 * time.Second}
	status := []string{"systemctl", "status", "-l", "--no-pager", "web@1.service"}
	for _, tc := range []struct {
		name   string
		opts   func(o *SSHOptions)
		addr   string
		remote []string
		tty    bool
		want   string
	}{
		{"defaults", nil, "10.0.1.5", status, false,
			"ssh -l core -o ConnectTimeout=10 -- 10.0.1.5 systemctl status -l --no-pager web@1.service"},
		{"user and port", func(o *SSHOptions) { o.User, o.Port = "root", 2222 }, "10.0.1.5", status, false,
			"ssh -l root -p 2222 -o ConnectTimeout=10 -- 10.0.1.5 systemctl status -l --no-pager web@1.service"},
		{"timeout rounds to seconds, at least 1", func(o *SSHOptions) { o.Timeout = 300 * time.Millisecond }, "h", []string{"true"}, false,
			"ssh -l core -o ConnectTimeout=1 -- h true"},
		{"jump host takes the user", func(o *SSHOptions) { o.Tunnel = "203.0.113.7" }, "10.0.1.5", []string{"true"}, false,
			"ssh -l core -o ConnectTimeout=10 -J core@203.0.113.7 -- 10.0.1.5 true"},
		{"jump host with its own user and port", func(o *SSHOptions) { o.Tunnel = "admin@bastion:2200" }, "10.0.1.5", []string{"true"}, false,
			"ssh -l core -o ConnectTimeout=10 -J admin@bastion:2200 -- 10.0.1.5 true"},
		{"no strict host key checking", func(o *SSHOptions) { o.StrictHostKeyChecking = false }, "10.0.1.5", []string{"true"}, false,
			"ssh -l core -o ConnectTimeout=10 -o StrictHostKeyChecking=no -o LogLevel=ERROR -o UserKnownHostsFile=/dev/null -- 10.0.1.5 true"},
		{"known hosts file", func(o *SSHOptions) { o.KnownHostsFile = "/etc/berth/known_hosts" }, "10.0.1.5", []string{"true"}, false,
			"ssh -l core -o ConnectTimeout=10 -o UserKnownHostsFile=/etc/berth/known_hosts -- 10.0.1.5 true"},
		{"known hosts file, not strict", func(o *SSHOptions) { o.KnownHostsFile, o.StrictHostKeyChecking = "kh", false }, "h", []string{"true"}, false,
			"ssh -l core -o ConnectTimeout=10 -o UserKnownHostsFile=kh -o StrictHostKeyChecking=no -o LogLevel=ERROR -- h true"},
		{"terminal for a follow", nil, "10.0.1.5", []string{"journalctl", "--unit", "web@1.service", "--no-pager", "-n", "10", "-f"}, true,
			"ssh -l core -o ConnectTimeout=10 -t -- 10.0.1.5 journalctl --unit web@1.service --no-pager -n 10 -f"},
		{"no user: ssh's own (~/.ssh/config)", func(o *SSHOptions) { o.User, o.Tunnel = "", "bastion" }, "10.0.1.5", []string{"true"}, false,
			"ssh -o ConnectTimeout=10 -J bastion -- 10.0.1.5 true"},
		{"escaped unit name is quoted", nil, "10.0.1.5", []string{"systemctl", "status", `my\x2dapp@a\x20b.service`}, false,
			`ssh -l core -o ConnectTimeout=10 -- 10.0.1.5 systemctl status 'my\x2dapp@a\x20b.service'`},
		{"an address that looks like an option stays the host", nil, "-oProxyCommand=x", []string{"true"}, false,
			"ssh -l core -o ConnectTimeout=10 -- -oProxyCommand=x true"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := def
			if tc.opts != nil {
				tc.opts(&o)
			}
			argv := o.argv(tc.addr, tc.remote, tc.tty)
			if got := strings.Join(argv, " "); got != tc.want {
				t.Fatalf("got  %s\nwant %s", got, tc.want)
			}
			if argv[len(argv)-2] != tc.addr {
				t.Fatalf("got host %q, want %q before the command", argv[len(argv)-2], tc.addr)
			}
		})
	}
}

// TestShellQuote: the remote command a shell reads back is the argv
// berth meant, for hostile words too.
func TestShellQuote(t *testing.T) {
	words := []string{"systemctl", "status", `web\x2d1@.service`, "a b", "it's", "$(touch /tmp/x)", "`id`", "*", "", "-n", "%i", "\"q\"", "semi;colon", "new\nline"}
	quoted := make([]string, len(words))
	for i, w := range words {
		quoted[i] = shellQuote(w)
	}
	for i, w := range []string{"systemctl", "status", "-n", "%i", "web@1.service"} {
		if q := shellQuote(w); q != w {
			t.Errorf("%d: shellQuote(%q) = %q, want it unquoted", i, w, q)
		}
	}
	script := "set -- " + strings.Join(quoted, " ") + `; for a in "$@"; do printf '%s\0' "$a"; done`
	out, err := exec.Command("sh", "-c", script).Output()
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(string(out), "\x00"), "\x00")
	if !slices.Equal(got, words) {
		t.Fatalf("the shell read %q, want %q", got, words)
	}
}

// TestMachineCmdArgv: a command for this host runs as it is, one for
// another machine through ssh to its address.
func TestMachineCmdArgv(t *testing.T) {
	ssh := &SSHOptions{User: "core", StrictHostKeyChecking: true, Port: 22}
	c := machineCmd{Machine: "m1", Addr: "10.0.1.5", Argv: []string{"systemctl", "status", "-l", "--no-pager", "web@1.service"}}
	if got := c.argv(ssh, "m1"); !slices.Equal(got, c.Argv) {
		t.Errorf("on this host: got %q, want %q", got, c.Argv)
	}
	if got, want := strings.Join(c.argv(ssh, "m2"), " "), "ssh -l core -- 10.0.1.5 systemctl status -l --no-pager web@1.service"; got != want {
		t.Errorf("on another machine: got %q, want %q", got, want)
	}
}

// TestJournalArgv: fleetctl journal's command line and its flags.
func TestJournalArgv(t *testing.T) {
	for _, tc := range []struct {
		name string
		opts FleetJournalOptions
		want string
	}{
		{"defaults", FleetJournalOptions{Lines: 10, Output: "short"}, "journalctl --unit u.service --no-pager -n 10"},
		{"follow", FleetJournalOptions{Lines: 5, Follow: true}, "journalctl --unit u.service --no-pager -n 5 -f"},
		{"sudo and an output mode", FleetJournalOptions{Lines: 0, Sudo: true, Output: "json"}, "sudo journalctl --unit u.service --no-pager -n 0 --output json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := strings.Join(journalArgv("u.service", &tc.opts), " "); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// TestSSHOptionsFromEnvironment: the flags' BERTH_ defaults, as
// bin/tunnel.sh's exports set them.
func TestSSHOptionsFromEnvironment(t *testing.T) {
	t.Setenv("BERTH_SSH_USERNAME", "admin")
	t.Setenv("BERTH_TUNNEL", "core@203.0.113.7")
	t.Setenv("BERTH_STRICT_HOST_KEY_CHECKING", "false")
	t.Setenv("BERTH_KNOWN_HOSTS_FILE", "/tmp/kh")
	var o SSHOptions
	f := pflag.NewFlagSet("fleet", pflag.ContinueOnError)
	o.AddFlags(f)
	if err := f.Parse(nil); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(o.argv("10.0.1.5", []string{"true"}, false), " ")
	want := "ssh -l admin -o ConnectTimeout=10 -o UserKnownHostsFile=/tmp/kh -o StrictHostKeyChecking=no -o LogLevel=ERROR -J core@203.0.113.7 -- 10.0.1.5 true"
	if got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// TestSSHEndedByTheSameInterruption: a Ctrl-C reaches ssh and berth
// together, and ssh may exit (255) before berth's context is cancelled;
// that is no ssh failure to report. An ssh failing on its own is.
func TestSSHEndedByTheSameInterruption(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "ssh"), []byte("#!/bin/sh\nexit 255\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+":"+os.Getenv("PATH"))
	c := machineCmd{Machine: "n2", Addr: "10.0.0.2", Argv: []string{"journalctl", "-f"}, TTY: true}
	for _, tc := range []struct {
		name      string
		interrupt bool
	}{{"interrupted", true}, {"ssh failed", false}} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			if tc.interrupt {
				time.AfterFunc(50*time.Millisecond, cancel) // berth's handler, a moment after ssh's
			}
			err := runOn(ctx, c, &SSHOptions{}, "n1", io.Discard, io.Discard)
			var es exitStatus
			if !errors.As(err, &es) || es.code != 255 {
				t.Fatalf("runOn: %v, want exit status 255", err)
			}
			if reported := strings.Contains(es.Error(), "failed with exit status 255"); reported == tc.interrupt {
				t.Errorf("interrupted %v: error %q", tc.interrupt, es.Error())
			}
		})
	}
}
