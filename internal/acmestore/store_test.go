package acmestore

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"slices"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/etcdtest"
)

var testKey = bytes.Repeat([]byte{7}, KeySize)

func newStore(t *testing.T, cli *clientv3.Client, key []byte) (*Store, *test.Hook) {
	t.Helper()
	log, hook := test.NewNullLogger()
	s, err := New(cli, "/berth/v1/acme/", key, 2*time.Second, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, hook
}

func TestStoreRoundTrip(t *testing.T) {
	_, cli := etcdtest.New(t)
	ctx := t.Context()
	s, _ := newStore(t, cli, testKey)
	for _, k := range []string{"certificates/ca/a.example.com/a.example.com.crt", "certificates/ca/a.example.com/a.example.com.key", "acme/ca/users/x.json"} {
		if err := s.Store(ctx, k, []byte("v:"+k)); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Load(ctx, "certificates/ca/a.example.com/a.example.com.key")
	if err != nil || string(got) != "v:certificates/ca/a.example.com/a.example.com.key" {
		t.Fatalf("Load = %q, %v", got, err)
	}
	raw, _ := cli.Get(ctx, "/berth/v1/acme/data/certificates/ca/a.example.com/a.example.com.key")
	if len(raw.Kvs) != 1 || bytes.Contains(raw.Kvs[0].Value, []byte("v:")) {
		t.Fatalf("value in etcd is not sealed: %q", raw.Kvs)
	}
	if _, err := s.Load(ctx, "nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load(nope) = %v, want fs.ErrNotExist", err)
	}
	tests := []struct {
		name      string
		dir       string
		recursive bool
		want      []string
	}{
		{"top", "", false, []string{"acme", "certificates"}},
		{"children", "certificates/ca", false, []string{"certificates/ca/a.example.com"}},
		{"recursive", "certificates", true, []string{"certificates/ca/a.example.com/a.example.com.crt", "certificates/ca/a.example.com/a.example.com.key"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.List(ctx, tc.dir, tc.recursive)
			if err != nil || !slices.Equal(got, tc.want) {
				t.Errorf("List(%q, %v) = %q, %v, want %q", tc.dir, tc.recursive, got, err, tc.want)
			}
		})
	}
	if st, err := s.Stat(ctx, "acme/ca/users/x.json"); err != nil || !st.IsTerminal || st.Size != int64(len("v:acme/ca/users/x.json")) || time.Since(st.Modified) > time.Minute {
		t.Errorf("Stat(file) = %+v, %v", st, err)
	}
	if st, err := s.Stat(ctx, "certificates"); err != nil || st.IsTerminal {
		t.Errorf("Stat(dir) = %+v, %v, want a directory", st, err)
	}
	if !s.Exists(ctx, "certificates/ca") || s.Exists(ctx, "certificates/c") {
		t.Error("Exists: want a prefix directory to exist and a partial name not to")
	}
	if err := s.Delete(ctx, "certificates"); err != nil {
		t.Fatal(err)
	}
	if s.Exists(ctx, "certificates/ca/a.example.com/a.example.com.crt") {
		t.Error("Delete(dir) left a key below it")
	}
	if err := s.Delete(ctx, "certificates"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Delete again = %v, want fs.ErrNotExist", err)
	}
}

// TestStoreMalformed: values that do not open (another key, moved to
// another name, garbage) are skipped with a warning, as if absent.
func TestStoreMalformed(t *testing.T) {
	_, cli := etcdtest.New(t)
	ctx := t.Context()
	s, hook := newStore(t, cli, testKey)
	other, _ := newStore(t, cli, bytes.Repeat([]byte{8}, KeySize))
	if err := other.Store(ctx, "a", []byte("secret")); err != nil {
		t.Fatal(err)
	}
	if err := s.Store(ctx, "b", []byte("secret")); err != nil {
		t.Fatal(err)
	}
	b, _ := cli.Get(ctx, "/berth/v1/acme/data/b")
	cli.Put(ctx, "/berth/v1/acme/data/moved", string(b.Kvs[0].Value))
	cli.Put(ctx, "/berth/v1/acme/data/garbage", "\x01")
	cli.Put(ctx, "/berth/v1/acme/data/empty", "")
	for _, k := range []string{"a", "moved", "garbage", "empty"} {
		if _, err := s.Load(ctx, k); !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, ErrMalformed) {
			t.Errorf("Load(%s) = %v, want fs.ErrNotExist and ErrMalformed", k, err)
		}
	}
	if n := len(hook.AllEntries()); n != 4 || hook.LastEntry().Level != logrus.WarnLevel {
		t.Errorf("got %d log entries, want 4 warnings", n)
	}
	for _, e := range hook.AllEntries() {
		if bytes.Contains([]byte(e.Message+e.Data["error"].(error).Error()), []byte("secret")) {
			t.Errorf("a warning shows the value: %v", e)
		}
	}
}

// TestLock: one holder at a time across stores; a lock whose holder died
// (its lease not kept alive) frees itself after the TTL.
func TestLock(t *testing.T) {
	srv, cli := etcdtest.New(t)
	ctx := t.Context()
	a, _ := newStore(t, cli, testKey)
	b, _ := newStore(t, etcdtest.Client(t, srv.Endpoint), testKey)
	if err := a.Lock(ctx, "issue_cert_a.example.com"); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if err := b.Lock(short, "issue_cert_a.example.com"); err == nil {
		t.Fatal("second Lock succeeded while the first holds it")
	}
	if err := b.Lock(ctx, "issue_cert_b.example.com"); err != nil {
		t.Fatalf("a different name: %v", err)
	}
	if err := a.Unlock(ctx, "issue_cert_a.example.com"); err != nil {
		t.Fatal(err)
	}
	if err := b.Lock(ctx, "issue_cert_a.example.com"); err != nil {
		t.Fatalf("Lock after Unlock: %v", err)
	}

	// Two callers of one store: the second waits for the first.
	if err := a.Lock(ctx, "same"); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() { got <- a.Lock(ctx, "same") }()
	select {
	case err := <-got:
		t.Fatalf("a second caller of the same store took a held lock (%v)", err)
	case <-time.After(300 * time.Millisecond):
	}
	if err := a.Unlock(ctx, "same"); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatal(err)
	}
	a.Unlock(ctx, "same")

	// A holder that dies: its client closes without revoking the lease.
	dead := etcdtest.Client(t, srv.Endpoint)
	d, _ := newStore(t, dead, testKey)
	if err := d.Lock(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	dead.Close()
	start := time.Now()
	if err := a.Lock(ctx, "x"); err != nil {
		t.Fatal(err)
	}
	if waited := time.Since(start); waited > 6*time.Second {
		t.Errorf("a dead holder's lock freed after %v, want about the 2s TTL", waited)
	}
}
