package acmestore

import (
	"encoding/hex"
	"testing"
	"time"
)

// TestSealFormatKept: a value sealed before the sealing moved to
// internal/seal (this one, by the earlier code) still opens, with its
// modification time.
func TestSealFormatKept(t *testing.T) {
	old, _ := hex.DecodeString("019ca030661b7554a6e2865b4602be01452414aabac74af38964593f27bc5405410af206097cdeaa5adef77601aa")
	s, err := newSealer(testKey)
	if err != nil {
		t.Fatal(err)
	}
	v, mod, err := s.open("/berth/v1/acme/data/x", old)
	if err != nil || string(v) != "old value" || !mod.Equal(time.Unix(1700000000, 0)) {
		t.Fatalf("open = %q, %v, %v; want the old value of 1700000000", v, mod, err)
	}
	if _, _, err := s.open("/berth/v1/acme/data/y", old); err == nil {
		t.Error("opened under another name")
	}
}
