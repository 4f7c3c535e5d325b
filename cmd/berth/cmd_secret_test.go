package main

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/hook"
	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/secret"
)

// TestSecretCommands: keygen, init, put (file and stdin), list, the
// pre-start hook writing the env file, berth hook exec handing it to the
// app, post-stop removing it, rotate and rm; no value is ever printed and
// none is stored in clear.
func TestSecretCommands(t *testing.T) {
	t.Setenv("BERTH_TEST_AS_MAIN", "")
	srv, cli := etcdtest.New(t)
	etcd := []string{"--etcd-endpoints", srv.Endpoint}
	dir := t.TempDir()
	key := filepath.Join(dir, "secrets.key")
	value := `s3cr3t "value" with $HOME and \ spaces `
	valueFile := filepath.Join(dir, "db-password")
	os.WriteFile(valueFile, []byte(value+"\n"), 0o600)

	code, out, errOut := berth(t, "secret", "keygen", key)
	if code != 0 || !strings.HasPrefix(out, "public key: age1") {
		t.Fatalf("keygen: %d %q %q", code, out, errOut)
	}
	if code, _, errOut := berth(t, append([]string{"secret", "put", "shop", "db-password", "--from-file", valueFile}, etcd...)...); code == 0 || !strings.Contains(errOut, "berth secret init") {
		t.Fatalf("put before init: %d %q", code, errOut)
	}
	if code, _, errOut := berth(t, append([]string{"secret", "init", "--recipient-identity", key}, etcd...)...); code != 0 {
		t.Fatalf("init: %s", errOut)
	}
	if code, _, errOut := berth(t, append([]string{"secret", "put", "shop", "db-password", "--from-file", valueFile}, etcd...)...); code != 0 {
		t.Fatalf("put: %s", errOut)
	}
	if code, _, _ := berth(t, append([]string{"secret", "put", "shop", "x", "hunter2"}, etcd...)...); code != exitUsage {
		t.Errorf("a value on the command line: exit %d, want %d", code, exitUsage)
	}
	// From stdin.
	r, w, _ := os.Pipe()
	w.WriteString("tok-123\n")
	w.Close()
	stdin := os.Stdin
	os.Stdin = r
	code, _, errOut = berth(t, append([]string{"secret", "put", "shop", "api-token", "-"}, etcd...)...)
	os.Stdin = stdin
	if code != 0 {
		t.Fatalf("put from stdin: %s", errOut)
	}

	code, out, _ = berth(t, append([]string{"secret", "list", "shop"}, etcd...)...)
	if code != 0 || !strings.Contains(out, "db-password") || !strings.Contains(out, "api-token") || !strings.Contains(out, "current key") ||
		!strings.Contains(out, " "+itoa(len(value))+" ") {
		t.Fatalf("list: %d\n%s", code, out)
	}
	code, out, _ = berth(t, append([]string{"secret", "list", "-o", "json"}, etcd...)...)
	var es []secret.Entry
	if code != 0 || json.Unmarshal([]byte(out), &es) != nil || len(es) != 2 || es[0].Name != "api-token" || es[0].Size != 7 {
		t.Fatalf("list -o json: %d %s", code, out)
	}
	all, _ := cli.Get(context.Background(), "/", clientv3.WithPrefix())
	for _, kv := range all.Kvs {
		if strings.Contains(string(kv.Value), "s3cr3t") || strings.Contains(string(kv.Value), "tok-123") {
			t.Fatalf("etcd key %s holds a value in clear", kv.Key)
		}
	}

	// The pre-start hook writes the env file, berth hook exec runs the app
	// with it, post-stop removes it.
	shm, err := os.MkdirTemp("/dev/shm", "berth-cmd-test-")
	if err != nil {
		t.Skip("no tmpfs at /dev/shm")
	}
	defer os.RemoveAll(shm)
	sdir := filepath.Join(shm, "secrets", "shop@1")
	base := append([]string{"--app", "shop", "--instance", "1", "--agent-socket", filepath.Join(dir, "none.sock")}, etcd...)
	code, _, errOut = berth(t, append([]string{"hook", "pre-start", "--secrets-dir", sdir, "--secret", "DB_PASSWORD=db-password",
		"--secret", "TOKEN=api-token", "--identity", key}, base...)...)
	if code != 0 {
		t.Fatalf("pre-start: %s", errOut)
	}
	self, _ := os.Executable()
	cmd := exec.Command(self, "hook", "exec", "--env-file", filepath.Join(sdir, "env"), "--", "/bin/sh", "-c", `printf '%s|%s' "$DB_PASSWORD" "$TOKEN"`)
	cmd.Env = append(os.Environ(), "BERTH_TEST_AS_MAIN=1")
	got, err := cmd.Output()
	if err != nil || string(got) != value+"|tok-123" {
		t.Fatalf("hook exec: the app saw %q (%v), want %q", got, err, value+"|tok-123")
	}
	// A wrong key fails the start with a clear message and writes nothing.
	other := filepath.Join(dir, "other.key")
	berth(t, "secret", "keygen", other)
	os.RemoveAll(sdir)
	code, _, errOut = berth(t, append([]string{"hook", "pre-start", "--secrets-dir", sdir, "--secret", "DB_PASSWORD=db-password", "--identity", other}, base...)...)
	if code == 0 || !strings.Contains(errOut, "env DB_PASSWORD: secret db-password of app shop: no identity matches") || strings.Contains(errOut, "s3cr3t") {
		t.Fatalf("pre-start with a wrong key: %d %q", code, errOut)
	}
	if _, err := os.Stat(sdir); !os.IsNotExist(err) {
		t.Error("a failed pre-start left a secrets directory")
	}
	berth(t, append([]string{"hook", "pre-start", "--secrets-dir", sdir, "--secret", "A=db-password", "--identity", key}, base...)...)
	if code, _, errOut := berth(t, append([]string{"hook", "post-stop", "--secrets-dir", sdir}, base...)...); code != 0 {
		t.Fatalf("post-stop: %s", errOut)
	}
	if _, err := os.Stat(sdir); !os.IsNotExist(err) {
		t.Errorf("post-stop left %s", sdir)
	}

	// Rotation to the other key: the old key opens nothing any more.
	code, out, errOut = berth(t, append([]string{"secret", "rotate", "--identity", key, "--recipient-identity", other}, etcd...)...)
	if code != 0 || !strings.Contains(out, "re-sealed 2 secret(s)") {
		t.Fatalf("rotate: %d %q %q", code, out, errOut)
	}
	code, _, errOut = berth(t, append([]string{"hook", "pre-start", "--secrets-dir", sdir, "--secret", "DB_PASSWORD=db-password", "--identity", key}, base...)...)
	if code == 0 || !strings.Contains(errOut, "no identity matches") {
		t.Fatalf("the old key after rotation: %d %q", code, errOut)
	}
	if code, _, errOut := berth(t, append([]string{"hook", "pre-start", "--secrets-dir", sdir, "--secret", "DB_PASSWORD=db-password", "--identity", other}, base...)...); code != 0 {
		t.Fatalf("the new key after rotation: %s", errOut)
	}
	os.RemoveAll(sdir)

	if code, _, errOut := berth(t, append([]string{"secret", "rm", "shop", "api-token"}, etcd...)...); code != 0 {
		t.Fatalf("rm: %s", errOut)
	}
	k, _ := registry.NewKeys("")
	if es, _ := (&secret.Store{KV: cli, Keys: k}).List(context.Background(), "shop"); len(es) != 1 {
		t.Errorf("after rm: %+v", es)
	}
}

// TestApplyWarnsOfMissingSecrets: apply publishes a spec that refers to
// sealed secrets with the references only, and warns of the ones not
// stored yet.
func TestApplyWarnsOfMissingSecrets(t *testing.T) {
	srv, cli := etcdtest.New(t)
	etcd := []string{"--etcd-endpoints", srv.Endpoint}
	dir := t.TempDir()
	key := filepath.Join(dir, "secrets.key")
	berth(t, "secret", "keygen", key)
	berth(t, append([]string{"secret", "init", "--recipient-identity", key}, etcd...)...)
	os.WriteFile(filepath.Join(dir, "v"), []byte("pw-value"), 0o600)
	berth(t, append([]string{"secret", "put", "billing", "db-password", "--from-file", filepath.Join(dir, "v")}, etcd...)...)
	code, _, errOut := berth(t, append([]string{"apply", "../../examples/secrets.yaml"}, etcd...)...)
	if code != 0 {
		t.Fatalf("apply: %s", errOut)
	}
	for _, want := range []string{"billing refers to sealed secret stripe-api-key, which is not stored", "berth secret put billing registry-auth"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("apply's warnings %q lack %q", errOut, want)
		}
	}
	if strings.Contains(errOut, "secret db-password,") {
		t.Errorf("apply warns of a stored secret: %q", errOut)
	}
	k, _ := registry.NewKeys("")
	appKey, _ := k.App("billing")
	r, _ := cli.Get(context.Background(), appKey)
	if len(r.Kvs) != 1 || !strings.Contains(string(r.Kvs[0].Value), `"DB_PASSWORD":"secret:db-password"`) || strings.Contains(string(r.Kvs[0].Value), "pw-value") {
		t.Errorf("published spec: %v", r.Kvs)
	}
}

// TestPreStartOwner: with --owner (the unit's User=) the secrets directory
// and env file belong to that user, who runs berth hook exec.
func TestPreStartOwner(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("chown needs root")
	}
	srv, _ := etcdtest.New(t)
	etcd := []string{"--etcd-endpoints", srv.Endpoint}
	dir := t.TempDir()
	key := filepath.Join(dir, "secrets.key")
	berth(t, "secret", "keygen", key)
	berth(t, append([]string{"secret", "init", "--recipient-identity", key}, etcd...)...)
	os.WriteFile(filepath.Join(dir, "v"), []byte("x"), 0o600)
	berth(t, append([]string{"secret", "put", "shop", "pw", "--from-file", filepath.Join(dir, "v")}, etcd...)...)
	shm, err := os.MkdirTemp("/dev/shm", "berth-owner-test-")
	if err != nil {
		t.Skip("no tmpfs at /dev/shm")
	}
	defer os.RemoveAll(shm)
	sdir := filepath.Join(shm, "secrets", "shop@1")
	code, _, errOut := berth(t, append([]string{"hook", "pre-start", "--app", "shop", "--instance", "1", "--secrets-dir", sdir,
		"--secret", "PW=pw", "--identity", key, "--owner", "65534:65533", "--agent-socket", filepath.Join(dir, "none.sock")}, etcd...)...)
	if code != 0 {
		t.Fatalf("pre-start: %s", errOut)
	}
	for _, p := range []string{sdir, filepath.Join(sdir, "env")} {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil || st.Uid != 65534 || st.Gid != 65533 {
			t.Errorf("%s: owner %d:%d (%v), want 65534:65533", p, st.Uid, st.Gid, err)
		}
	}
	if code, _, _ := berth(t, append([]string{"hook", "pre-start", "--app", "shop", "--instance", "1", "--secrets-dir", sdir,
		"--secret", "PW=pw", "--identity", key, "--owner", "no-such-user-xyz"}, etcd...)...); code != exitUsage {
		t.Errorf("an unknown owner: exit %d, want %d", code, exitUsage)
	}
}

// TestPreStartPullRegistries: the pre-start hook names the registries a
// pullSecret has credentials for, never the credentials, and warns when
// the image's registry is not among them.
func TestPreStartPullRegistries(t *testing.T) {
	srv, _ := etcdtest.New(t)
	etcd := []string{"--etcd-endpoints", srv.Endpoint}
	dir := t.TempDir()
	key := filepath.Join(dir, "secrets.key")
	berth(t, "secret", "keygen", key)
	berth(t, append([]string{"secret", "init", "--recipient-identity", key}, etcd...)...)
	auth := hook.DockerConfig("localhost:5000", "berth", "pull-pw-123")
	os.WriteFile(filepath.Join(dir, "auth.json"), auth, 0o600)
	if code, _, errOut := berth(t, append([]string{"secret", "put", "shop", "registry-auth", "--from-file", filepath.Join(dir, "auth.json")}, etcd...)...); code != 0 {
		t.Fatalf("put: %s", errOut)
	}
	shm, err := os.MkdirTemp("/dev/shm", "berth-pull-test-")
	if err != nil {
		t.Skip("no tmpfs at /dev/shm")
	}
	defer os.RemoveAll(shm)
	preStart := func(image string) string {
		t.Helper()
		code, out, errOut := berth(t, append([]string{"hook", "pre-start", "--app", "shop", "--instance", "1", "--secrets-dir", filepath.Join(shm, "shop@1"),
			"--pull-secret", "registry-auth", "--image", image, "--identity", key, "--agent-socket", filepath.Join(dir, "none.sock")}, etcd...)...)
		if code != 0 {
			t.Fatalf("pre-start %s: %s", image, errOut)
		}
		logs := out + errOut
		if strings.Contains(logs, "pull-pw-123") || strings.Contains(logs, "cHVsbC1wdy0xMjM") || strings.Contains(logs, string(auth[20:40])) {
			t.Fatalf("pre-start logged the credentials:\n%s", logs)
		}
		return logs
	}
	// line returns the log line with msg.
	line := func(logs, msg string) string {
		for _, l := range strings.Split(logs, "\n") {
			if strings.Contains(l, msg) {
				return l
			}
		}
		return ""
	}
	logs := preStart("localhost:5000/berth/demo:1")
	if l := line(logs, "secrets written"); !strings.Contains(l, "registries") || !strings.Contains(l, "localhost:5000") || !strings.Contains(l, "registry-auth") ||
		strings.Contains(logs, "no credentials") {
		t.Errorf("pre-start for the secret's registry:\n%s", logs)
	}
	logs = preStart("registry.example.com/shop:1")
	if l := line(logs, "pullSecret has no credentials for the image's registry"); !strings.Contains(l, "level") || !strings.Contains(l, "warn") ||
		!strings.Contains(l, "auths entry for registry.example.com") {
		t.Errorf("pre-start for another registry: no warning naming it:\n%s", logs)
	}
}
