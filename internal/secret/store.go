package secret

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"filippo.io/age"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/registry"
)

// ErrNotFound is returned (wrapped) for a secret that is not stored.
var ErrNotFound = errors.New("no such secret")

// ErrNoRecipients is returned (wrapped) when the cluster has no recipients
// yet: berth secret init publishes them.
var ErrNoRecipients = errors.New("no secrets recipients")

// Store keeps sealed secrets in etcd under registry.Keys.SecretsRoot.
type Store struct {
	KV   clientv3.KV
	Keys registry.Keys
	// Now is the clock for Updated (default time.Now).
	Now func() time.Time
}

func (s *Store) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Entry describes one stored secret, without its value.
type Entry struct {
	App        string    `json:"app"`
	Name       string    `json:"name"`
	Size       int       `json:"size"`
	Updated    time.Time `json:"updated"`
	Recipients []string  `json:"recipients"`
}

// Recipients returns the cluster's recipients and their key's revision.
func (s *Store) Recipients(ctx context.Context) ([]string, error) {
	rs, _, err := s.recipients(ctx)
	return rs, err
}

func (s *Store) recipients(ctx context.Context) ([]string, int64, error) {
	key := s.Keys.SecretRecipients()
	resp, err := s.KV.Get(ctx, key)
	if err != nil {
		return nil, 0, fmt.Errorf("read %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, fmt.Errorf("%w at %s: run berth secret init (docs/secrets.md)", ErrNoRecipients, key)
	}
	rs, err := ParseRecipients(string(resp.Kvs[0].Value))
	if err != nil {
		return nil, 0, fmt.Errorf("%s: %w", key, err)
	}
	return rs, resp.Kvs[0].ModRevision, nil
}

// Init publishes the cluster's recipients if there are none yet. With
// recipients already there, it succeeds only if they are the same (it is
// idempotent); changing them is Rotate's job.
func (s *Store) Init(ctx context.Context, recipients []string) error {
	key := s.Keys.SecretRecipients()
	resp, err := s.KV.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(FormatRecipients(recipients)))).Else(clientv3.OpGet(key)).Commit()
	if err != nil {
		return fmt.Errorf("write %s: %w", key, err)
	}
	if resp.Succeeded {
		return nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) > 0 {
		if have, err := ParseRecipients(string(kvs[0].Value)); err == nil && slices.Equal(have, recipients) {
			return nil
		}
	}
	return fmt.Errorf("%s already holds other recipients: use berth secret rotate to change the key", key)
}

// Put seals value to the cluster's recipients and stores it as app's
// secret name, replacing any previous value.
func (s *Store) Put(ctx context.Context, app, name string, value []byte) (*Sealed, error) {
	key, err := s.Keys.Secret(app, name)
	if err != nil {
		return nil, err
	}
	rs, err := s.Recipients(ctx)
	if err != nil {
		return nil, err
	}
	sealed, err := Seal(value, rs, s.now())
	if err != nil {
		return nil, fmt.Errorf("seal %s/%s: %w", app, name, err)
	}
	b, err := json.Marshal(sealed)
	if err != nil {
		return nil, err
	}
	if _, err := s.KV.Put(ctx, key, string(b)); err != nil {
		return nil, fmt.Errorf("write %s: %w", key, err)
	}
	return sealed, nil
}

// Get returns app's sealed secret name.
func (s *Store) Get(ctx context.Context, app, name string) (*Sealed, error) {
	sealed, _, err := s.get(ctx, app, name)
	return sealed, err
}

func (s *Store) get(ctx context.Context, app, name string) (*Sealed, int64, error) {
	key, err := s.Keys.Secret(app, name)
	if err != nil {
		return nil, 0, err
	}
	resp, err := s.KV.Get(ctx, key)
	if err != nil {
		return nil, 0, fmt.Errorf("read %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, fmt.Errorf("%w %s of app %s (berth secret put %s %s)", ErrNotFound, name, app, app, name)
	}
	var sealed Sealed
	if err := json.Unmarshal(resp.Kvs[0].Value, &sealed); err != nil {
		return nil, 0, fmt.Errorf("decode %s: %w", key, err)
	}
	return &sealed, resp.Kvs[0].ModRevision, nil
}

// Open reads and decrypts app's secret name with ids.
func (s *Store) Open(ctx context.Context, app, name string, ids []*age.X25519Identity) ([]byte, error) {
	sealed, err := s.Get(ctx, app, name)
	if err != nil {
		return nil, err
	}
	v, err := sealed.Open(ids)
	if err != nil {
		return nil, fmt.Errorf("secret %s of app %s: %w", name, app, err)
	}
	return v, nil
}

// List returns the secrets of app (every app's if app is ""), sorted by
// app and name. Values stay sealed: List never opens them.
func (s *Store) List(ctx context.Context, app string) ([]Entry, error) {
	prefix := s.Keys.SecretsPrefix()
	if app != "" {
		p, err := s.Keys.SecretsOf(app)
		if err != nil {
			return nil, err
		}
		prefix = p
	}
	resp, err := s.KV.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	out := make([]Entry, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		a, n, ok := strings.Cut(strings.TrimPrefix(string(kv.Key), s.Keys.SecretsPrefix()), "/")
		if !ok {
			continue
		}
		var sealed Sealed
		if err := json.Unmarshal(kv.Value, &sealed); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		out = append(out, Entry{App: a, Name: n, Size: sealed.Size, Updated: sealed.Updated, Recipients: sealed.Recipients})
	}
	return out, nil
}

// Delete removes app's secret name.
func (s *Store) Delete(ctx context.Context, app, name string) error {
	key, err := s.Keys.Secret(app, name)
	if err != nil {
		return err
	}
	resp, err := s.KV.Delete(ctx, key)
	if err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	if resp.Deleted == 0 {
		return fmt.Errorf("%w %s of app %s", ErrNotFound, name, app)
	}
	return nil
}

// RotateResult counts what Rotate did.
type RotateResult struct {
	Resealed int // values sealed again to the new recipients
	Kept     int // values already sealed to them
}

// Rotate makes recipients the cluster's recipients and re-seals every
// stored value to them, opening each with ids (the old key). It first
// opens every value that needs it, so a wrong key changes nothing; then it
// replaces the recipients (later puts seal to the new ones) and writes each
// value with a compare on its revision, reading it again if a put came in
// between. Running it again finishes an interrupted rotation.
func (s *Store) Rotate(ctx context.Context, ids []*age.X25519Identity, recipients []string) (RotateResult, error) {
	var res RotateResult
	entries, err := s.List(ctx, "")
	if err != nil {
		return res, err
	}
	for _, e := range entries {
		if slices.Equal(e.Recipients, recipients) {
			continue
		}
		if _, err := s.Open(ctx, e.App, e.Name, ids); err != nil {
			return res, fmt.Errorf("nothing changed: %w", err)
		}
	}
	key := s.Keys.SecretRecipients()
	if _, err := s.KV.Put(ctx, key, string(FormatRecipients(recipients))); err != nil {
		return res, fmt.Errorf("write %s: %w", key, err)
	}
	for _, e := range entries {
		resealed, err := s.reseal(ctx, e.App, e.Name, ids, recipients)
		if err != nil {
			return res, err
		}
		if resealed {
			res.Resealed++
		} else {
			res.Kept++
		}
	}
	return res, nil
}

// reseal seals one value again to recipients, unless it already is.
func (s *Store) reseal(ctx context.Context, app, name string, ids []*age.X25519Identity, recipients []string) (bool, error) {
	key, err := s.Keys.Secret(app, name)
	if err != nil {
		return false, err
	}
	for {
		sealed, rev, err := s.get(ctx, app, name)
		if errors.Is(err, ErrNotFound) {
			return false, nil // deleted meanwhile
		}
		if err != nil {
			return false, err
		}
		if sealed.SealedTo(recipients) {
			return false, nil
		}
		v, err := sealed.Open(ids)
		if err != nil {
			return false, fmt.Errorf("secret %s of app %s: %w", name, app, err)
		}
		again, err := Seal(v, recipients, sealed.Updated)
		if err != nil {
			return false, err
		}
		b, err := json.Marshal(again)
		if err != nil {
			return false, err
		}
		resp, err := s.KV.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).Then(clientv3.OpPut(key, string(b))).Commit()
		if err != nil {
			return false, fmt.Errorf("write %s: %w", key, err)
		}
		if resp.Succeeded {
			return true, nil
		}
		if err := ctx.Err(); err != nil {
			return false, err
		}
	}
}
