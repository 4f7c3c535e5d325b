package local

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/secret"
)

// TestLocalSecrets: berth up makes its key on the first start (0600),
// publishes its recipient so that berth secret put works at once, and
// keeps the key across restarts.
func TestLocalSecrets(t *testing.T) {
	_, cli := etcdtest.New(t)
	keys, _ := registry.NewKeys("")
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var said strings.Builder
	say := func(f string, a ...any) { said.WriteString(f) }
	open, err := localSecrets(ctx, dir, cli, cli, keys, say)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(dir, SecretsKeyFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, want mode 0600", err)
	}
	store := &secret.Store{KV: cli, Keys: keys}
	if _, err := store.Put(ctx, "demo", "token", []byte("t0k")); err != nil {
		t.Fatalf("put after berth up's start: %v", err)
	}
	if v, err := open(ctx, "demo", "token"); err != nil || string(v) != "t0k" {
		t.Fatalf("open: %q %v", v, err)
	}
	// A restart keeps the key: the value still opens.
	open, err = localSecrets(ctx, dir, cli, cli, keys, say)
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	if v, err := open(ctx, "demo", "token"); err != nil || string(v) != "t0k" {
		t.Fatalf("open after restart: %q %v", v, err)
	}
	os.Chmod(filepath.Join(dir, SecretsKeyFile), 0o644)
	if _, err := localSecrets(ctx, dir, cli, cli, keys, say); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a readable key: %v", err)
	}
}
