package hook

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
)

// AllocPorts picks one free TCP port for each group of variable names
// ("PORT,PORT_WEB") and writes them to the environment file path, which
// systemd reads before ExecStart (EnvironmentFile=). The file is replaced
// atomically.
func AllocPorts(path string, groups []string) (map[string]string, error) {
	env := map[string]string{}
	var b bytes.Buffer
	for _, g := range groups {
		port, err := freePort()
		if err != nil {
			return nil, fmt.Errorf("allocate a port for %s: %w", g, err)
		}
		for _, name := range strings.Split(g, ",") {
			if name == "" {
				continue
			}
			env[name] = port
			fmt.Fprintf(&b, "%s=%s\n", name, port)
		}
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b.Bytes(), 0o644); err != nil {
		return nil, err
	}
	return env, os.Rename(tmp, path)
}

// freePort asks the kernel for a free port on every address.
func freePort() (string, error) {
	l, err := net.Listen("tcp", ":0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	_, port, err := net.SplitHostPort(l.Addr().String())
	return port, err
}

// ReadEnvFile reads KEY=value lines (as written by AllocPorts).
func ReadEnvFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	env := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	return env, sc.Err()
}
