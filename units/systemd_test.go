package units

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/systemdtest"
)

// TestRealSystemdArgv runs a unit written with ExecLine and EnvAssignment
// in a real systemd (a container) and compares, byte for byte, the argv and
// environment the process received with the intended ones.
func TestRealSystemdArgv(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	os.Mkdir(out, 0o777)
	dumper := filepath.Join(dir, "dump")
	os.WriteFile(dumper, []byte("#!/bin/sh\nprintf '%s\\0' \"$@\" > /run/out/argv\nenv -0 > /run/out/env\n"), 0o755)

	args := append([]string{"plain"}, hostile...)
	var argv []Arg
	argv = append(argv, Lit("/usr/local/bin/dump"))
	argv = append(argv, Lits(args...)...)
	line, err := ExecLine("", argv...)
	if err != nil {
		t.Fatal(err)
	}
	var unit strings.Builder
	unit.WriteString("[Service]\nType=oneshot\n")
	env := map[string]string{}
	for i, v := range hostile {
		key := "V" + strings.Repeat("X", i)
		env[key] = v
		e, err := EnvAssignment(key, v)
		if err != nil {
			t.Fatal(err)
		}
		unit.WriteString("Environment=" + e + "\n")
	}
	unit.WriteString("ExecStart=" + line + "\n")
	units := filepath.Join(dir, "units")
	os.Mkdir(units, 0o755)
	os.WriteFile(filepath.Join(units, "argv.service"), []byte(unit.String()), 0o644)

	c := systemdtest.Boot(t, "berth-units-test",
		systemdtest.Bind{Host: dumper, Container: "/usr/local/bin/dump", ReadOnly: true},
		systemdtest.Bind{Host: units, Container: "/run/berth-units", ReadOnly: true},
		systemdtest.Bind{Host: out, Container: "/run/out"})
	if o, err := c.Exec("systemctl", "link", "/run/berth-units/argv.service"); err != nil {
		t.Fatalf("link: %v %s", err, o)
	}
	if o, err := c.Exec("systemctl", "start", "argv.service"); err != nil {
		j, _ := c.Exec("journalctl", "--no-pager", "-u", "argv.service")
		t.Fatalf("start: %v %s\n%s\nunit:\n%s", err, o, j, unit.String())
	}
	var got []byte
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, _ = os.ReadFile(filepath.Join(out, "argv"))
		if len(got) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	gotArgs := strings.Split(strings.TrimSuffix(string(got), "\x00"), "\x00")
	if !slices.Equal(gotArgs, args) {
		t.Errorf("argv systemd built:\n%q\nwant:\n%q", gotArgs, args)
	}
	envOut, _ := os.ReadFile(filepath.Join(out, "env"))
	gotEnv := map[string]string{}
	for _, kv := range bytes.Split(envOut, []byte{0}) {
		if k, v, ok := strings.Cut(string(kv), "="); ok {
			gotEnv[k] = v
		}
	}
	for k, v := range env {
		if gotEnv[k] != v {
			t.Errorf("env %s: systemd passed %q, want %q", k, gotEnv[k], v)
		}
	}
}
