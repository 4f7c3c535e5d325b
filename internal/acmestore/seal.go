package acmestore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/berthproject/berth/internal/seal"
)

// KeySize is the size of the routers' key sealing the storage: AES-256.
const KeySize = seal.KeySize

// ErrMalformed is returned (wrapped) for a value that does not open with
// the key: written with another key, under another name, or damaged.
var ErrMalformed = errors.New("malformed acme storage value")

// ReadKeyFile reads the routers' key (seal.ReadKeyFile).
func ReadKeyFile(path string) ([]byte, error) { return seal.ReadKeyFile(path) }

// sealer seals storage values with the routers' key: the value prefixed
// with its modification time, the etcd key as additional data.
type sealer struct{ s *seal.Sealer }

func newSealer(key []byte) (sealer, error) {
	s, err := seal.New(key)
	return sealer{s}, err
}

// seal returns seal.Seal(name, modified unix ns | value).
func (s sealer) seal(name string, value []byte, modified time.Time) []byte {
	plain := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(value)), uint64(modified.UnixNano()))
	return s.s.Seal(name, append(plain, value...))
}

// open reverses seal.
func (s sealer) open(name string, sealed []byte) (value []byte, modified time.Time, err error) {
	plain, err := s.s.Open(name, sealed)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("%w: %s: %w", ErrMalformed, name, err)
	}
	if len(plain) < 8 {
		return nil, time.Time{}, fmt.Errorf("%w: %s: too short", ErrMalformed, name)
	}
	return plain[8:], time.Unix(0, int64(binary.BigEndian.Uint64(plain))), nil
}
