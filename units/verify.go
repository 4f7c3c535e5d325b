package units

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/coreos/go-systemd/v22/unit"
)

// systemUnitDirs are where the host keeps systemd's own units; one of them
// is copied into the scratch root so that targets such as multi-user.target
// resolve.
var systemUnitDirs = []string{"/usr/lib/systemd/system", "/lib/systemd/system"}

// Verify runs "systemd-analyze verify" on files, strictly: any message it
// prints is a failure. It works in a scratch root holding systemd's own
// units, stub executables for every binary the units run (docker and berth
// need not be installed here) and a stub docker.service, so it checks the
// units and nothing about this machine. Template units are verified through
// their instance "@1". A file whose name has a directory, such as
// "berth-router.service.d/30-acme.conf", is a drop-in: it is installed
// and verified with its unit.
func Verify(ctx context.Context, files []File) error {
	analyze, err := exec.LookPath("systemd-analyze")
	if err != nil {
		return fmt.Errorf("--check needs systemd-analyze (Debian: apt-get install systemd): %w", err)
	}
	root, err := os.MkdirTemp("", "berth-verify-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(root)
	if err := populateRoot(root, files); err != nil {
		return fmt.Errorf("prepare scratch root: %w", err)
	}
	var failed []string
	for _, f := range files {
		name := f.Name
		if strings.Contains(name, "/") {
			continue
		}
		if strings.HasSuffix(name, "@.service") {
			name = strings.TrimSuffix(name, "@.service") + "@1.service"
		}
		cmd := exec.CommandContext(ctx, analyze, "verify", "--man=no", "--root="+root, name)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		msg := strings.TrimSpace(strings.ReplaceAll(out.String(), root, ""))
		if err != nil || msg != "" {
			if msg == "" {
				msg = err.Error()
			}
			failed = append(failed, fmt.Sprintf("%s:\n  %s", f.Name, strings.ReplaceAll(msg, "\n", "\n  ")))
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("systemd-analyze verify failed:\n%s", strings.Join(failed, "\n"))
	}
	return nil
}

func populateRoot(root string, files []File) error {
	var src string
	for _, d := range systemUnitDirs {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			src = d
			break
		}
	}
	if src == "" {
		return errors.New("no systemd unit directory on this machine")
	}
	dst := filepath.Join(root, "usr/lib/systemd/system")
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	etc := filepath.Join(root, "etc/systemd/system")
	if err := os.MkdirAll(etc, 0o755); err != nil {
		return err
	}
	stubs := map[string]bool{}
	for _, f := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(etc, f.Name)), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(etc, f.Name), f.Content, 0o644); err != nil {
			return err
		}
		opts, err := unit.DeserializeOptions(bytes.NewReader(f.Content))
		if err != nil {
			return fmt.Errorf("%s: %w", f.Name, err)
		}
		for _, o := range opts {
			if o.Section != "Service" || !strings.HasPrefix(o.Name, "Exec") {
				continue
			}
			argv, err := SplitExec(o.Value, map[byte]string{'p': "app", 'i': "1", 'n': "app@1.service", 't': "/run"})
			if err != nil {
				return fmt.Errorf("%s: %s: %w", f.Name, o.Name, err)
			}
			if len(argv) > 0 && filepath.IsAbs(argv[0]) {
				stubs[argv[0]] = true
			}
		}
	}
	for path := range stubs {
		p := filepath.Join(root, path)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o755); err != nil {
			return err
		}
	}
	if _, err := os.Stat(filepath.Join(dst, "docker.service")); err != nil {
		stub := "[Unit]\nDescription=Docker stub for verification\n[Service]\nExecStart=/bin/true\n"
		if err := os.WriteFile(filepath.Join(dst, "docker.service"), []byte(stub), 0o644); err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(root, "bin"), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(root, "bin/true"), []byte("#!/bin/sh\n"), 0o755); err != nil {
			return err
		}
	}
	return nil
}
