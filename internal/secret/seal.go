package secret

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"filippo.io/age"
)

// MaxSize bounds a secret's value: etcd keeps values small (its default
// request limit is 1.5 MiB), and secrets are keys, passwords and configs.
const MaxSize = 512 << 10

// ErrWrongKey is returned (wrapped) when none of the identities can open
// a sealed value.
var ErrWrongKey = errors.New("no identity matches")

// Sealed is one sealed value as stored in etcd (JSON).
type Sealed struct {
	// Recipients the value is sealed to, sorted.
	Recipients []string `json:"recipients"`
	// Size of the value in bytes.
	Size int `json:"size"`
	// Updated is when the value was last put (a rotation keeps it).
	Updated time.Time `json:"updated"`
	// Data is the age ciphertext (base64 in JSON).
	Data []byte `json:"data"`
}

// Seal encrypts value to recipients (age X25519, canonical strings).
func Seal(value []byte, recipients []string, now time.Time) (*Sealed, error) {
	if len(value) > MaxSize {
		return nil, fmt.Errorf("value of %d bytes is over the limit of %d", len(value), MaxSize)
	}
	if len(recipients) == 0 {
		return nil, errors.New("no recipients to seal to")
	}
	rs := make([]age.Recipient, len(recipients))
	for i, s := range recipients {
		r, err := age.ParseX25519Recipient(s)
		if err != nil {
			return nil, fmt.Errorf("recipient %q: %w", s, err)
		}
		rs[i] = r
	}
	var b bytes.Buffer
	w, err := age.Encrypt(&b, rs...)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(value); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	sorted := slices.Clone(recipients)
	slices.Sort(sorted)
	return &Sealed{Recipients: slices.Compact(sorted), Size: len(value), Updated: now.UTC().Truncate(time.Second), Data: b.Bytes()}, nil
}

// Open decrypts the value with any of ids. When none matches, the error
// wraps ErrWrongKey and names the recipients the value is sealed to and
// those of the identities tried.
func (s *Sealed) Open(ids []*age.X25519Identity) ([]byte, error) {
	if len(ids) == 0 {
		return nil, fmt.Errorf("%w: no identity given", ErrWrongKey)
	}
	ai := make([]age.Identity, len(ids))
	for i, id := range ids {
		ai[i] = id
	}
	r, err := age.Decrypt(bytes.NewReader(s.Data), ai...)
	if err != nil {
		var nm *age.NoIdentityMatchError
		if errors.As(err, &nm) {
			return nil, fmt.Errorf("%w: sealed to %s, the identity file holds the key of %s (re-seal with berth secret rotate, or give the node the matching key)",
				ErrWrongKey, strings.Join(s.Recipients, ", "), strings.Join(RecipientsOf(ids), ", "))
		}
		return nil, fmt.Errorf("open sealed value: %w", err)
	}
	v, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("open sealed value: %w", err)
	}
	return v, nil
}

// SealedTo reports whether s is sealed to exactly recipients (sorted).
func (s *Sealed) SealedTo(recipients []string) bool { return slices.Equal(s.Recipients, recipients) }
