package hook

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/secret"
)

// shmDir is a fresh directory on tmpfs (/dev/shm), removed after the test.
func shmDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("/dev/shm", "berth-hook-test-")
	if err != nil {
		t.Skipf("no tmpfs at /dev/shm: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

// sealedStore is a real etcd with a recipient and an opener for key.
func sealedStore(t *testing.T) (*secret.Store, *age.X25519Identity) {
	t.Helper()
	_, cli := etcdtest.New(t)
	k, _ := registry.NewKeys("")
	id, _ := secret.Generate()
	s := &secret.Store{KV: cli, Keys: k}
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.Init(c, []string{id.Recipient().String()}); err != nil {
		t.Fatal(err)
	}
	return s, id
}

func opener(s *secret.Store, ids ...*age.X25519Identity) Opener {
	return func(ctx context.Context, app, name string) ([]byte, error) { return s.Open(ctx, app, name, ids) }
}

func TestWriteSecrets(t *testing.T) {
	s, id := sealedStore(t)
	ctx := context.Background()
	value := `  p@ss "w0rd" $HOME \n ` // spaces, quotes, '$' and a backslash: taken literally
	auth := DockerConfig("registry.example.com:5000", "ci", "registry-pass")
	for name, v := range map[string][]byte{"db-password": []byte(value), "token": []byte("tok=en"), "registry": auth, "multi": []byte("a\nb"),
		"helper": []byte(`{"auths": {"registry.example.com": {}}, "credsStore": "desktop"}`)} {
		if _, err := s.Put(ctx, "shop", name, v); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(shmDir(t), "secrets", "shop@1")
	spec := Secrets{Dir: dir, Env: map[string]string{"DB_PASSWORD": "db-password", "TOKEN": "token"}, PullSecret: "registry", UID: -1, GID: -1}
	if err := WriteSecrets(ctx, opener(s, id), "shop", spec); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		path string
		mode os.FileMode
	}{{filepath.Dir(dir), 0o711}, {dir, 0o700}, {filepath.Join(dir, SecretsEnvFile), 0o600}, {filepath.Join(dir, SecretsAuthFile), 0o600}} {
		st, err := os.Stat(c.path)
		if err != nil || st.Mode().Perm() != c.mode {
			t.Errorf("%s: mode %v %v, want %04o", c.path, st.Mode().Perm(), err, c.mode)
		}
	}
	env, err := ReadSecretsEnv(filepath.Join(dir, SecretsEnvFile))
	if want := []string{"DB_PASSWORD=" + value, "TOKEN=tok=en"}; err != nil || !slices.Equal(env, want) {
		t.Errorf("env file: got %q %v, want %q", env, err, want)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, SecretsAuthFile)); !bytes.Equal(b, auth) {
		t.Errorf("auth file: got %s", b)
	}

	// A restart writes the files again; post-stop removes everything.
	if err := WriteSecrets(ctx, opener(s, id), "shop", spec); err != nil {
		t.Fatalf("second start: %v", err)
	}
	if err := RemoveSecrets(dir); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("after RemoveSecrets: %v", err)
	}

	bad := []struct {
		name string
		s    Secrets
		open Opener
		want []string
	}{
		{"wrong key", Secrets{Dir: dir, Env: map[string]string{"DB_PASSWORD": "db-password"}}, opener(s, mustGenerate(t)),
			[]string{"env DB_PASSWORD", "secret db-password of app shop", "no identity matches", id.Recipient().String()}},
		{"missing", Secrets{Dir: dir, Env: map[string]string{"X": "nope"}}, opener(s, id), []string{"env X", "no such secret nope", "berth secret put shop nope"}},
		{"line break", Secrets{Dir: dir, Env: map[string]string{"M": "multi"}}, opener(s, id), []string{"env M: secret multi holds a line break"}},
		{"not a config", Secrets{Dir: dir, PullSecret: "token"}, opener(s, id), []string{"pullSecret: secret token", "not a docker config.json"}},
		{"helper config", Secrets{Dir: dir, PullSecret: "helper"}, opener(s, id), []string{"pullSecret: secret helper", "no credentials for registry.example.com", "credential helper"}},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			err := WriteSecrets(ctx, c.open, "shop", c.s)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q, want %q in it", err, w)
				}
			}
			if strings.Contains(err.Error(), "w0rd") || strings.Contains(err.Error(), "tok=en") {
				t.Errorf("error %q shows a value", err)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Error("a failed hook wrote the secrets directory")
			}
		})
	}
}

// TestWriteSecretsRefusesDisk: secrets are never written to a disk.
func TestWriteSecretsRefusesDisk(t *testing.T) {
	s, id := sealedStore(t)
	ctx := context.Background()
	s.Put(ctx, "shop", "db-password", []byte("x"))
	disk := t.TempDir()
	err := WriteSecrets(ctx, opener(s, id), "shop", Secrets{Dir: filepath.Join(disk, "secrets", "shop@1"), Env: map[string]string{"A": "db-password"}, UID: -1, GID: -1})
	if isTmpfs(disk) {
		t.Skip("the test's temporary directory is on tmpfs")
	}
	if !errors.Is(err, ErrNotTmpfs) {
		t.Fatalf("got %v, want ErrNotTmpfs", err)
	}
	if _, err := os.Stat(filepath.Join(disk, "secrets", "shop@1")); !os.IsNotExist(err) {
		t.Error("the instance directory was made on disk")
	}
}

// TestRegistryLogin: a login function (aws:ecr) provides the auth file.
func TestRegistryLogin(t *testing.T) {
	dir := filepath.Join(shmDir(t), "s", "shop@1")
	cfg := DockerConfig("123456789012.dkr.ecr.eu-west-1.amazonaws.com", "AWS", "token")
	login := func(_ context.Context, image string) ([]byte, error) {
		if image != "img" {
			t.Errorf("login for %q", image)
		}
		return cfg, nil
	}
	if err := WriteSecrets(context.Background(), nil, "shop", Secrets{Dir: dir, Login: login, Image: "img", UID: -1, GID: -1}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, SecretsAuthFile)); !bytes.Equal(b, cfg) {
		t.Errorf("auth file %s", b)
	}
	if _, err := os.Stat(filepath.Join(dir, SecretsEnvFile)); !os.IsNotExist(err) {
		t.Error("an env file without env secrets")
	}
}

func mustGenerate(t *testing.T) *age.X25519Identity {
	t.Helper()
	id, err := secret.Generate()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func isTmpfs(dir string) bool {
	err := makeSecretsDir(filepath.Join(dir, "probe", "x"), -1, -1)
	os.RemoveAll(filepath.Join(dir, "probe"))
	return !errors.Is(err, ErrNotTmpfs)
}
