package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strings"
)

// KeySize is the size of the routers' key: AES-256.
const KeySize = 32

// ErrOpen is returned (wrapped) for a sealed value that does not open:
// sealed with another key, for another name, or damaged.
var ErrOpen = errors.New("sealed value does not open")

// version is the first byte of every sealed value.
const version = 1

// ReadKeyFile reads the routers' key: 32 bytes written as 64 hex digits
// or as base64 (e.g. `head -c 32 /dev/urandom | base64`). Errors never
// quote the file's content.
func ReadKeyFile(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("router key: %w", err)
	}
	s := strings.TrimSpace(string(b))
	if k, err := hex.DecodeString(s); err == nil && len(k) == KeySize {
		return k, nil
	}
	if k, err := base64.StdEncoding.DecodeString(s); err == nil && len(k) == KeySize {
		return k, nil
	}
	return nil, fmt.Errorf("router key %s: want %d bytes as hex or base64 (make one with: head -c 32 /dev/urandom | base64)", path, KeySize)
}

// Sealer seals and opens values with AES-256-GCM. It is safe for
// concurrent use.
type Sealer struct{ aead cipher.AEAD }

// New returns a sealer for key (KeySize bytes).
func New(key []byte) (*Sealer, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("router key: want %d bytes, got %d", KeySize, len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead}, nil
}

// Seal returns version | random nonce | AES-GCM(plain), with ad as the
// additional data: Open needs the same ad.
func (s *Sealer) Seal(ad string, plain []byte) []byte {
	ns := s.aead.NonceSize()
	out := make([]byte, 1+ns, 1+ns+len(plain)+s.aead.Overhead())
	out[0] = version
	rand.Read(out[1 : 1+ns])
	return s.aead.Seal(out, out[1:1+ns], plain, []byte(ad))
}

// Open reverses Seal; an error wraps ErrOpen.
func (s *Sealer) Open(ad string, sealed []byte) ([]byte, error) {
	ns := s.aead.NonceSize()
	if len(sealed) < 1+ns+s.aead.Overhead() || sealed[0] != version {
		return nil, fmt.Errorf("%w: bad header", ErrOpen)
	}
	plain, err := s.aead.Open(nil, sealed[1:1+ns], sealed[1+ns:], []byte(ad))
	if err != nil {
		return nil, fmt.Errorf("%w with this key", ErrOpen)
	}
	return plain, nil
}
