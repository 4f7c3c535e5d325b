package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"
)

// SSHOptions are how berth fleet status and journal reach another
// machine: the system's ssh client, so ~/.ssh/config, the ssh agent and
// ProxyJump apply. fleetctl's flags, with BERTH_ environment defaults.
type SSHOptions struct {
	User string // remote user (default core, env BERTH_SSH_USERNAME; empty: ssh's own)
	// Tunnel is a jump host, [USER@]HOST[:PORT] (ssh -J; env BERTH_TUNNEL);
	// without USER, User is used there too.
	Tunnel string
	// StrictHostKeyChecking false connects to machines whose host key is
	// unknown or changed, without recording it (default true: ssh's own
	// checking, as ~/.ssh/config sets it).
	StrictHostKeyChecking bool
	KnownHostsFile        string        // default: ssh's own (~/.ssh/known_hosts)
	Port                  int           // default 22 (given to ssh only when another, so a Port in ~/.ssh/config applies)
	Timeout               time.Duration // ssh's ConnectTimeout (default 10s)
}

// AddFlags registers the flags.
func (o *SSHOptions) AddFlags(f *pflag.FlagSet) {
	f.StringVar(&o.User, "ssh-username", envOr("BERTH_SSH_USERNAME", "core"), "user on the machines for status and journal over ssh; empty: ssh's own (env BERTH_SSH_USERNAME)")
	f.StringVar(&o.Tunnel, "tunnel", os.Getenv("BERTH_TUNNEL"), "reach the machines through this ssh jump host, [USER@]HOST[:PORT] (ssh -J; env BERTH_TUNNEL)")
	strict, err := strconv.ParseBool(os.Getenv("BERTH_STRICT_HOST_KEY_CHECKING"))
	f.BoolVar(&o.StrictHostKeyChecking, "strict-host-key-checking", err != nil || strict,
		"check the machines' ssh host keys; false accepts any key and records none (env BERTH_STRICT_HOST_KEY_CHECKING)")
	f.StringVar(&o.KnownHostsFile, "known-hosts-file", os.Getenv("BERTH_KNOWN_HOSTS_FILE"), "ssh known hosts file (env BERTH_KNOWN_HOSTS_FILE; default: ssh's own)")
	f.IntVar(&o.Port, "ssh-port", 22, "ssh port of the machines")
	f.DurationVar(&o.Timeout, "ssh-timeout", 10*time.Second, "ssh connection timeout (ConnectTimeout)")
}

// argv is the ssh command line that runs remote (a command and its
// arguments, quoted here for the remote shell) as o.User on addr. tty
// asks for a terminal (-t), for a command that follows until interrupted.
func (o *SSHOptions) argv(addr string, remote []string, tty bool) []string {
	a := []string{"ssh"}
	if o.User != "" {
		a = append(a, "-l", o.User)
	}
	if o.Port != 0 && o.Port != 22 {
		a = append(a, "-p", strconv.Itoa(o.Port))
	}
	if o.Timeout > 0 {
		a = append(a, "-o", fmt.Sprintf("ConnectTimeout=%d", max(1, int(o.Timeout.Round(time.Second)/time.Second))))
	}
	if o.KnownHostsFile != "" {
		a = append(a, "-o", "UserKnownHostsFile="+o.KnownHostsFile)
	}
	if !o.StrictHostKeyChecking {
		a = append(a, "-o", "StrictHostKeyChecking=no", "-o", "LogLevel=ERROR")
		if o.KnownHostsFile == "" {
			a = append(a, "-o", "UserKnownHostsFile=/dev/null")
		}
	}
	if o.Tunnel != "" {
		jump := o.Tunnel
		if !strings.Contains(jump, "@") && o.User != "" {
			jump = o.User + "@" + jump
		}
		a = append(a, "-J", jump)
	}
	if tty {
		a = append(a, "-t")
	}
	quoted := make([]string, len(remote))
	for i, w := range remote {
		quoted[i] = shellQuote(w)
	}
	// "--" ends ssh's options: an address from etcd is never read as one.
	return append(a, "--", addr, strings.Join(quoted, " "))
}

// shellQuote quotes s for a POSIX shell (ssh hands the remote command to
// the user's shell): words of safe characters stay as they are, anything
// else is single-quoted ("web\x2d1.service" keeps its backslash).
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./_-") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// machineCmd is a command to run on a fleet machine: locally when the
// machine is this host, else over ssh to the machine's address.
type machineCmd struct {
	Machine string   // the machine's node id
	Addr    string   // its address (nodes/<id> addr)
	Argv    []string // the command, e.g. systemctl status -l --no-pager UNIT
	TTY     bool     // the command follows until interrupted (journal -f)
}

// argv is the command line to execute on this host for c: c.Argv itself
// when c.Machine is local, else ssh's.
func (c machineCmd) argv(ssh *SSHOptions, local string) []string {
	if c.Machine == local {
		return c.Argv
	}
	return ssh.argv(c.Addr, c.Argv, c.TTY)
}

// runOn runs c (through ssh unless the machine is local), its output
// going to stdout and stderr; stdin is passed only to a TTY command run
// from a terminal. A non-zero exit comes back as exitStatus.
func runOn(ctx context.Context, c machineCmd, ssh *SSHOptions, local string, stdout, stderr io.Writer) error {
	argv := c.argv(ssh, local)
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Stdout, cmd.Stderr = stdout, stderr
	if c.TTY {
		cmd.Stdin = os.Stdin
	}
	// Interrupted (Ctrl-C, SIGTERM): the command ends as it would itself.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	st := cmd.ProcessState
	if st == nil { // not started: ssh or systemctl is not installed
		return fmt.Errorf("%s: %w", argv[0], err)
	}
	var code int
	if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		code = 128 + int(ws.Signal())
	} else {
		code = st.ExitCode()
	}
	switch {
	case code == 0 && err != nil && !errors.Is(err, ctx.Err()):
		return err // exited, but its output could not be copied
	case code == 0:
		return nil
	case code == 255 && c.Machine != local && !interrupted(ctx): // not ssh ended by berth's own interruption
		dest := c.Addr
		if ssh.User != "" {
			dest = ssh.User + "@" + dest
		}
		return exitStatus{code, fmt.Sprintf("ssh %s (machine %s) failed with exit status 255: see ssh's message above (--ssh-username, --tunnel, --strict-host-key-checking)",
			dest, c.Machine)}
	}
	return exitStatus{code: code}
}

// interrupted reports whether ctx ends now or within a moment: a Ctrl-C
// (or timeout(1)'s SIGTERM) reaches the whole process group, so ssh may
// end of it before berth's own signal handler has cancelled ctx. An ssh
// that failed on its own costs that moment of waiting.
func interrupted(ctx context.Context) bool {
	select {
	case <-ctx.Done():
		return true
	case <-time.After(300 * time.Millisecond):
		return false
	}
}
