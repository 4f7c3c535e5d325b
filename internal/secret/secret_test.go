package secret

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/registry"
)

func newID(t *testing.T) *age.X25519Identity {
	t.Helper()
	id, err := Generate()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func store(t *testing.T) *Store {
	t.Helper()
	_, cli := etcdtest.New(t)
	k, err := registry.NewKeys("")
	if err != nil {
		t.Fatal(err)
	}
	return &Store{KV: cli, Keys: k}
}

func TestSealOpen(t *testing.T) {
	a, b := newID(t), newID(t)
	value := []byte("p@ss w0rd\n$HOME \"quoted\" \x00 binary")
	s, err := Seal(value, []string{a.Recipient().String()}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(s.Data, []byte("w0rd")) {
		t.Fatal("the sealed data holds the value in clear")
	}
	got, err := s.Open([]*age.X25519Identity{b, a})
	if err != nil || !bytes.Equal(got, value) {
		t.Fatalf("Open with the right key among others: %q, %v", got, err)
	}
	_, err = s.Open([]*age.X25519Identity{b})
	if !errors.Is(err, ErrWrongKey) {
		t.Fatalf("Open with the wrong key: %v, want ErrWrongKey", err)
	}
	for _, want := range []string{a.Recipient().String(), b.Recipient().String(), "berth secret rotate"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("wrong-key error %q does not name %q", err, want)
		}
	}
	if strings.Contains(err.Error(), b.String()) {
		t.Error("the error shows a private key")
	}
	if _, err := Seal(make([]byte, MaxSize+1), []string{a.Recipient().String()}, time.Now()); err == nil {
		t.Error("Seal took a value over MaxSize")
	}
}

func TestIdentityFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "pki", "secrets.key")
	id := newID(t)
	if err := WriteIdentity(path, id); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("identity file mode: %v %v, want 0600", st.Mode(), err)
	}
	if err := WriteIdentity(path, newID(t)); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("WriteIdentity over an existing file: %v", err)
	}
	ids, err := LoadIdentities(path)
	if err != nil || len(ids) != 1 || ids[0].String() != id.String() {
		t.Fatalf("LoadIdentities: %v, %v", ids, err)
	}
	os.Chmod(path, 0o640)
	if _, err := LoadIdentities(path); !errors.Is(err, ErrIdentity) || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("group-readable identity: %v, want a chmod hint", err)
	}
	bad := filepath.Join(dir, "bad.key")
	os.WriteFile(bad, []byte("AGE-SECRET-KEY-1NOTAKEY\n"), 0o600)
	if _, err := LoadIdentities(bad); err == nil || strings.Contains(err.Error(), "NOTAKEY") {
		t.Errorf("bad identity: %v (must fail without echoing the line)", err)
	}
	if _, err := LoadIdentities(filepath.Join(dir, "missing")); !errors.Is(err, ErrIdentity) || !strings.Contains(err.Error(), IdentityEnv) {
		t.Errorf("missing identity: %v", err)
	}
}

func TestParseRecipients(t *testing.T) {
	a, b := newID(t).Recipient().String(), newID(t).Recipient().String()
	got, err := ParseRecipients("# cluster\n" + b + ", " + a + "\n" + a + "\n")
	want := []string{a, b}
	slices.Sort(want)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("got %v %v, want %v", got, err, want)
	}
	if _, err := ParseRecipients("age1nope"); err == nil {
		t.Error("a bad recipient parsed")
	}
	if _, err := ParseRecipients("# nothing\n"); err == nil {
		t.Error("an empty list parsed")
	}
}

func TestStore(t *testing.T) {
	s := store(t)
	c := ctx(t)
	id := newID(t)
	if _, err := s.Put(c, "shop", "db-password", []byte("x")); !errors.Is(err, ErrNoRecipients) || !strings.Contains(err.Error(), "berth secret init") {
		t.Fatalf("Put before init: %v, want ErrNoRecipients", err)
	}
	rs := []string{id.Recipient().String()}
	if err := s.Init(c, rs); err != nil {
		t.Fatal(err)
	}
	if err := s.Init(c, rs); err != nil {
		t.Errorf("Init again with the same recipients: %v", err)
	}
	if err := s.Init(c, []string{newID(t).Recipient().String()}); err == nil || !strings.Contains(err.Error(), "rotate") {
		t.Errorf("Init with other recipients: %v, want a pointer to rotate", err)
	}
	value := []byte("hunter2-very-secret")
	if _, err := s.Put(c, "shop", "db-password", value); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(c, "shop", "api.token", []byte("tok")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(c, "blog", "key", []byte("k")); err != nil {
		t.Fatal(err)
	}
	// The stored value is sealed, not the value.
	resp, err := s.KV.Get(c, s.Keys.Root(), clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		if bytes.Contains(kv.Value, value) {
			t.Fatalf("%s holds the value in clear", kv.Key)
		}
	}
	got, err := s.Open(c, "shop", "db-password", []*age.X25519Identity{id})
	if err != nil || !bytes.Equal(got, value) {
		t.Fatalf("Open: %q %v", got, err)
	}
	if _, err := s.Open(c, "shop", "db-password", []*age.X25519Identity{newID(t)}); !errors.Is(err, ErrWrongKey) {
		t.Errorf("Open with a wrong key: %v", err)
	}
	es, err := s.List(c, "shop")
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 2 || es[0].Name != "api.token" || es[1].Name != "db-password" || es[1].Size != len(value) || es[1].Updated.IsZero() {
		t.Fatalf("List shop: %+v", es)
	}
	if all, _ := s.List(c, ""); len(all) != 3 || all[0].App != "blog" {
		t.Fatalf("List all: %+v", all)
	}
	if err := s.Delete(c, "shop", "api.token"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(c, "shop", "api.token"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Delete again: %v, want ErrNotFound", err)
	}
	if _, err := s.Open(c, "shop", "api.token", []*age.X25519Identity{id}); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "berth secret put shop api.token") {
		t.Errorf("Open a deleted secret: %v", err)
	}
	if _, err := s.Put(c, "shop", "../x", value); !errors.Is(err, registry.ErrBadName) {
		t.Errorf("Put with a bad name: %v", err)
	}
}

func TestRotate(t *testing.T) {
	s := store(t)
	c := ctx(t)
	old, next := newID(t), newID(t)
	if err := s.Init(c, []string{old.Recipient().String()}); err != nil {
		t.Fatal(err)
	}
	values := map[string]string{"a": "alpha", "b": "bravo", "c": "charlie"}
	for n, v := range values {
		if _, err := s.Put(c, "shop", n, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := s.Get(c, "shop", "a")
	newRs := []string{next.Recipient().String()}

	// A wrong key changes nothing.
	if _, err := s.Rotate(c, []*age.X25519Identity{next}, newRs); !errors.Is(err, ErrWrongKey) || !strings.Contains(err.Error(), "nothing changed") {
		t.Fatalf("Rotate with a wrong key: %v", err)
	}
	if rs, _ := s.Recipients(c); !slices.Equal(rs, []string{old.Recipient().String()}) {
		t.Fatalf("recipients changed by a failed rotation: %v", rs)
	}

	// Transition: sealed to both keys, so nodes with either open them.
	both := []string{old.Recipient().String(), next.Recipient().String()}
	slices.Sort(both)
	res, err := s.Rotate(c, []*age.X25519Identity{old}, both)
	if err != nil || res.Resealed != 3 {
		t.Fatalf("Rotate to both: %+v %v", res, err)
	}
	for _, id := range []*age.X25519Identity{old, next} {
		if v, err := s.Open(c, "shop", "b", []*age.X25519Identity{id}); err != nil || string(v) != "bravo" {
			t.Errorf("during the transition: %q %v", v, err)
		}
	}
	// Then the new key alone.
	res, err = s.Rotate(c, []*age.X25519Identity{next}, newRs)
	if err != nil || res.Resealed != 3 || res.Kept != 0 {
		t.Fatalf("Rotate to new: %+v %v", res, err)
	}
	for n, v := range values {
		got, err := s.Open(c, "shop", n, []*age.X25519Identity{next})
		if err != nil || string(got) != v {
			t.Errorf("%s after rotation: %q %v", n, got, err)
		}
		if _, err := s.Open(c, "shop", n, []*age.X25519Identity{old}); !errors.Is(err, ErrWrongKey) {
			t.Errorf("%s still opens with the old key: %v", n, err)
		}
	}
	after, _ := s.Get(c, "shop", "a")
	if !after.Updated.Equal(before.Updated) || bytes.Equal(after.Data, before.Data) {
		t.Errorf("rotation: updated %v → %v (want kept), data changed %v", before.Updated, after.Updated, !bytes.Equal(after.Data, before.Data))
	}
	if rs, _ := s.Recipients(c); !slices.Equal(rs, newRs) {
		t.Errorf("recipients after rotation: %v", rs)
	}
	// New puts seal to the new key; rotating again is a no-op.
	s.Put(c, "shop", "d", []byte("delta"))
	res, err = s.Rotate(c, []*age.X25519Identity{next}, newRs)
	if err != nil || res.Resealed != 0 || res.Kept != 4 {
		t.Errorf("Rotate again: %+v %v", res, err)
	}
}

// TestResealSkipsNewerValue: a value put (to the new recipients) after
// Rotate listed the secrets is kept as it is, not overwritten.
func TestResealSkipsNewerValue(t *testing.T) {
	s := store(t)
	c := ctx(t)
	old, next := newID(t), newID(t)
	s.Init(c, []string{old.Recipient().String()})
	s.Put(c, "shop", "a", []byte("first"))
	newRs := []string{next.Recipient().String()}
	key, _ := s.Keys.Secret("shop", "a")
	// The operator puts a new value sealed to the new key after Rotate
	// listed the secrets: reseal's compare fails, it reads again and
	// finds it sealed to the new recipients already.
	newer, _ := Seal([]byte("second"), newRs, time.Now())
	b, _ := json.Marshal(newer)
	s.KV.Put(c, key, string(b))
	if _, err := s.reseal(c, "shop", "a", []*age.X25519Identity{old}, newRs); err != nil {
		t.Fatal(err)
	}
	if v, err := s.Open(c, "shop", "a", []*age.X25519Identity{next}); err != nil || string(v) != "second" {
		t.Errorf("after the race: %q %v, want the newer value", v, err)
	}
}
