package acmestore

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"
)

// KeySize is the size of an encryption key: AES-256.
const KeySize = 32

// ErrMalformed is returned (wrapped) for a value that does not open with
// the key: written with another key, under another name, or damaged.
var ErrMalformed = errors.New("malformed acme storage value")

// version is the first byte of every sealed value.
const version = 1

// ReadKeyFile reads an encryption key: 32 bytes written as 64 hex digits
// or as base64 (e.g. `head -c 32 /dev/urandom | base64`). Errors never
// quote the file's content.
func ReadKeyFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("acme key: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if k, err := hex.DecodeString(s); err == nil && len(k) == KeySize {
		return k, nil
	}
	if k, err := base64.StdEncoding.DecodeString(s); err == nil && len(k) == KeySize {
		return k, nil
	}
	return nil, fmt.Errorf("acme key %s: want %d bytes as hex or base64", path, KeySize)
}

// sealer seals and opens values with AES-GCM.
type sealer struct{ aead cipher.AEAD }

func newSealer(key []byte) (sealer, error) {
	if len(key) != KeySize {
		return sealer{}, fmt.Errorf("acme key: want %d bytes, got %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return sealer{}, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return sealer{}, err
	}
	return sealer{aead}, nil
}

// seal returns version | nonce | AES-GCM(modified unix ns | value), with
// name as additional data.
func (s sealer) seal(name string, value []byte, modified time.Time) []byte {
	ns := s.aead.NonceSize()
	out := make([]byte, 1+ns, 1+ns+8+len(value)+s.aead.Overhead())
	out[0] = version
	rand.Read(out[1 : 1+ns])
	plain := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(value)), uint64(modified.UnixNano()))
	plain = append(plain, value...)
	return s.aead.Seal(out, out[1:1+ns], plain, []byte(name))
}

// open reverses seal.
func (s sealer) open(name string, sealed []byte) (value []byte, modified time.Time, err error) {
	ns := s.aead.NonceSize()
	if len(sealed) < 1+ns+s.aead.Overhead()+8 || sealed[0] != version {
		return nil, time.Time{}, fmt.Errorf("%w: %s: bad header", ErrMalformed, name)
	}
	plain, err := s.aead.Open(nil, sealed[1:1+ns], sealed[1+ns:], []byte(name))
	if err != nil || len(plain) < 8 {
		return nil, time.Time{}, fmt.Errorf("%w: %s: does not open with this key", ErrMalformed, name)
	}
	return plain[8:], time.Unix(0, int64(binary.BigEndian.Uint64(plain))), nil
}
