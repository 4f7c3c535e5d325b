package secret

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"filippo.io/age"
)

// DefaultIdentityFile is where a node keeps the cluster's identity (its
// private key), root's with mode 0600; BERTH_SECRETS_IDENTITY overrides it.
const DefaultIdentityFile = "/etc/berth/pki/secrets.key"

// IdentityEnv is the environment variable naming the identity file.
const IdentityEnv = "BERTH_SECRETS_IDENTITY"

// ErrIdentity is returned (wrapped) when an identity file cannot be used.
var ErrIdentity = errors.New("secrets identity")

// Generate returns a new X25519 identity.
func Generate() (*age.X25519Identity, error) { return age.GenerateX25519Identity() }

// WriteIdentity writes id to path with mode 0600 in age's identity file
// format, with its recipient as a comment. It refuses to replace a file.
func WriteIdentity(path string, id *age.X25519Identity) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		if errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("%w: %s exists; keep it, or remove it first to make a new key (berth secret rotate re-seals to a new key)", ErrIdentity, path)
		}
		return err
	}
	_, err = fmt.Fprintf(f, "# berth secrets identity\n# public key: %s\n%s\n", id.Recipient(), id)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// LoadIdentities reads an age identity file holding one or more X25519
// identities (during a rotation a node may hold the old and the new one).
// The file must not be readable or writable by group or others.
func LoadIdentities(path string) ([]*age.X25519Identity, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v (set --identity or %s to the node's key file)", ErrIdentity, err, IdentityEnv)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %04o, readable by others: chmod 600 %s", ErrIdentity, path, st.Mode().Perm(), path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrIdentity, err)
	}
	ids, err := ParseIdentities(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrIdentity, path, err)
	}
	return ids, nil
}

// ParseIdentities parses age X25519 identities ("AGE-SECRET-KEY-1..."),
// one a line; blank lines and '#' comments are skipped.
func ParseIdentities(b []byte) ([]*age.X25519Identity, error) {
	var ids []*age.X25519Identity
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id, err := age.ParseX25519Identity(line)
		if err != nil {
			// Never echo the line: it may be a key with a typo.
			return nil, fmt.Errorf("line %d is not an age X25519 identity (AGE-SECRET-KEY-1...)", i+1)
		}
		ids = append(ids, id)
	}
	if len(ids) == 0 {
		return nil, errors.New("no identity in the file")
	}
	return ids, nil
}

// ParseRecipients parses age X25519 recipients ("age1..."), separated by
// lines, commas or spaces, '#' comments skipped. It returns them in
// canonical form, sorted, each once.
func ParseRecipients(text string) ([]string, error) {
	var out []string
	for _, line := range strings.Split(text, "\n") {
		line, _, _ = strings.Cut(line, "#")
		for _, f := range strings.FieldsFunc(line, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\r' }) {
			r, err := age.ParseX25519Recipient(f)
			if err != nil {
				return nil, fmt.Errorf("%q is not an age X25519 recipient (age1...): %v", f, err)
			}
			out = append(out, r.String())
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no recipient given")
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// RecipientsOf returns the recipients of identities, as ParseRecipients.
func RecipientsOf(ids []*age.X25519Identity) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = id.Recipient().String()
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// FormatRecipients is the stored form of a recipient list: one a line.
func FormatRecipients(rs []string) []byte {
	var b bytes.Buffer
	for _, r := range rs {
		b.WriteString(r)
		b.WriteByte('\n')
	}
	return b.Bytes()
}
