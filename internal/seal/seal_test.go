package seal

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

var testKey = bytes.Repeat([]byte{7}, KeySize)

func TestSealOpen(t *testing.T) {
	s, err := New(testKey)
	if err != nil {
		t.Fatal(err)
	}
	other, _ := New(bytes.Repeat([]byte{8}, KeySize))
	plain := []byte("-----BEGIN PRIVATE KEY-----")
	sealed := s.Seal("a", plain)
	if bytes.Contains(sealed, plain) {
		t.Fatal("the sealed value holds the plain text")
	}
	if again := s.Seal("a", plain); bytes.Equal(again, sealed) {
		t.Error("two seals of one value are equal: the nonce is not random")
	}
	if got, err := s.Open("a", sealed); err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Open = %q, %v, want the plain text", got, err)
	}
	damaged := bytes.Clone(sealed)
	damaged[len(damaged)-1] ^= 1
	for _, tc := range []struct {
		name   string
		s      *Sealer
		ad     string
		sealed []byte
	}{
		{"other ad", s, "b", sealed},
		{"other key", other, "a", sealed},
		{"damaged", s, "a", damaged},
		{"short", s, "a", sealed[:10]},
		{"empty", s, "a", nil},
		{"other version", s, "a", append([]byte{2}, sealed[1:]...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, err := tc.s.Open(tc.ad, tc.sealed); !errors.Is(err, ErrOpen) || got != nil {
				t.Errorf("Open = %q, %v, want ErrOpen", got, err)
			}
		})
	}
	if _, err := New([]byte("short")); err == nil {
		t.Error("New with a short key: want an error")
	}
}

func TestReadKeyFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o600)
		return p
	}
	tests := []struct {
		name, content string
		ok            bool
	}{
		{"hex", "0707070707070707070707070707070707070707070707070707070707070707\n", true},
		{"base64", "BwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwcHBwc=\n", true},
		{"short", "0707", false},
		{"text", "correct horse battery staple", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k, err := ReadKeyFile(write(tc.name, tc.content))
			if tc.ok && (err != nil || !bytes.Equal(k, testKey)) {
				t.Errorf("got %x, %v, want the key", k, err)
			}
			if !tc.ok && (err == nil || bytes.Contains([]byte(err.Error()), []byte(tc.content))) {
				t.Errorf("got %v, want an error not quoting the file", err)
			}
		})
	}
	if _, err := ReadKeyFile(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing file: want an error")
	}
}
