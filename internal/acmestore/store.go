package acmestore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"
)

// DefaultLockTTL is the TTL of the lease that holds a Store's locks: how
// long a lock outlives a router that died holding it.
const DefaultLockTTL = 10 * time.Second

// Store is a certmagic.Storage in etcd. Values live at <prefix>data/<key>,
// sealed (see the package doc); locks at <prefix>locks/<name>.
type Store struct {
	cli    *clientv3.Client
	prefix string // ends in "/"
	seal   sealer
	ttl    int
	log    logrus.FieldLogger

	mu      sync.Mutex
	session *concurrency.Session          // the lease holding this store's locks, made on first Lock
	held    map[string]*concurrency.Mutex // lock name → the mutex this store holds
	// local serializes this store's own callers per lock name: their etcd
	// mutexes share the session's lease, hence one key, so etcd alone
	// would let two of them hold a name at once.
	local map[string]chan struct{}
}

// New returns a store under prefix (e.g. "/berth/v1/acme/") sealing
// values with key (KeySize bytes). lockTTL is the lease TTL of the locks
// (0: DefaultLockTTL; whole seconds, at least 2).
func New(cli *clientv3.Client, prefix string, key []byte, lockTTL time.Duration, log logrus.FieldLogger) (*Store, error) {
	s, err := newSealer(key)
	if err != nil {
		return nil, err
	}
	if lockTTL <= 0 {
		lockTTL = DefaultLockTTL
	}
	if !strings.HasSuffix(prefix, "/") {
		prefix += "/"
	}
	return &Store{cli: cli, prefix: prefix, seal: s, ttl: max(int((lockTTL+time.Second-1)/time.Second), 2),
		log: log.WithField("component", "acmestore"), held: map[string]*concurrency.Mutex{}, local: map[string]chan struct{}{}}, nil
}

func (s *Store) dataKey(key string) string { return s.prefix + "data/" + strings.Trim(key, "/") }

// Store seals value and puts it at key.
func (s *Store) Store(ctx context.Context, key string, value []byte) error {
	k := s.dataKey(key)
	if _, err := s.cli.Put(ctx, k, string(s.seal.seal(k, value, time.Now()))); err != nil {
		return fmt.Errorf("store %s: %w", key, err)
	}
	return nil
}

// Load returns the value at key, or an error wrapping fs.ErrNotExist. A
// value that does not open is logged and reported as not existing, so
// certmagic replaces it (a new account, a new certificate).
func (s *Store) Load(ctx context.Context, key string) ([]byte, error) {
	v, _, err := s.get(ctx, key)
	return v, err
}

func (s *Store) get(ctx context.Context, key string) ([]byte, time.Time, error) {
	k := s.dataKey(key)
	resp, err := s.cli.Get(ctx, k)
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("load %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return nil, time.Time{}, fmt.Errorf("load %s: %w", key, fs.ErrNotExist)
	}
	v, mod, err := s.seal.open(k, resp.Kvs[0].Value)
	if err != nil {
		s.log.WithError(err).WithField("key", k).Warn("skipping acme storage value")
		return nil, time.Time{}, fmt.Errorf("load %s: %w (%w)", key, fs.ErrNotExist, err)
	}
	return v, mod, nil
}

// Delete removes key and every key under it; a key that does not exist
// is an error wrapping fs.ErrNotExist.
func (s *Store) Delete(ctx context.Context, key string) error {
	k := s.dataKey(key)
	resp, err := s.cli.Txn(ctx).Then(clientv3.OpDelete(k), clientv3.OpDelete(k+"/", clientv3.WithPrefix())).Commit()
	if err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	if resp.Responses[0].GetResponseDeleteRange().Deleted+resp.Responses[1].GetResponseDeleteRange().Deleted == 0 {
		return fmt.Errorf("delete %s: %w", key, fs.ErrNotExist)
	}
	return nil
}

// Exists reports whether key is a value or has keys under it.
func (s *Store) Exists(ctx context.Context, key string) bool {
	_, err := s.Stat(ctx, key)
	return err == nil
}

// List returns the keys under dir: its children, or with recursive every
// value below it.
func (s *Store) List(ctx context.Context, dir string, recursive bool) ([]string, error) {
	base := strings.Trim(dir, "/")
	p := s.prefix + "data/"
	if base != "" {
		p += base + "/"
	}
	resp, err := s.cli.Get(ctx, p, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var out []string
	seen := map[string]bool{}
	for _, kv := range resp.Kvs {
		rel := strings.TrimPrefix(string(kv.Key), p)
		if !recursive {
			rel, _, _ = strings.Cut(rel, "/")
		}
		if name := path.Join(base, rel); !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("list %s: %w", dir, fs.ErrNotExist)
	}
	return out, nil
}

// Stat describes key: a value (terminal, with its size and the time it
// was stored) or a directory of keys.
func (s *Store) Stat(ctx context.Context, key string) (certmagic.KeyInfo, error) {
	v, mod, err := s.get(ctx, key)
	if err == nil {
		return certmagic.KeyInfo{Key: key, Modified: mod, Size: int64(len(v)), IsTerminal: true}, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return certmagic.KeyInfo{}, err
	}
	resp, lerr := s.cli.Get(ctx, s.dataKey(key)+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if lerr != nil {
		return certmagic.KeyInfo{}, fmt.Errorf("stat %s: %w", key, lerr)
	}
	if resp.Count == 0 {
		return certmagic.KeyInfo{}, err
	}
	return certmagic.KeyInfo{Key: key, IsTerminal: false}, nil
}

// Lock takes the cluster-wide lock name, waiting until it is free or ctx
// ends. The lock is held on this store's lease: it is released by Unlock,
// or when the lease expires because this process died.
func (s *Store) Lock(ctx context.Context, name string) error {
	s.mu.Lock()
	local := s.local[name]
	if local == nil {
		local = make(chan struct{}, 1)
		s.local[name] = local
	}
	s.mu.Unlock()
	select {
	case local <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("lock %s: %w", name, ctx.Err())
	}
	sess, err := s.lockSession()
	if err != nil {
		<-local
		return fmt.Errorf("lock %s: %w", name, err)
	}
	m := concurrency.NewMutex(sess, s.prefix+"locks/"+strings.Trim(name, "/"))
	if err := m.Lock(ctx); err != nil {
		<-local
		return fmt.Errorf("lock %s: %w", name, err)
	}
	s.mu.Lock()
	s.held[name] = m
	s.mu.Unlock()
	return nil
}

// Unlock releases the lock name taken by Lock.
func (s *Store) Unlock(ctx context.Context, name string) error {
	s.mu.Lock()
	m, local := s.held[name], s.local[name]
	delete(s.held, name)
	s.mu.Unlock()
	if m == nil {
		return fmt.Errorf("unlock %s: not held", name)
	}
	defer func() { <-local }()
	// Released even when the caller's ctx has ended: a lock left behind
	// on a live lease would block every router's issuance.
	uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := m.Unlock(uctx); err != nil {
		return fmt.Errorf("unlock %s: %w", name, err)
	}
	return nil
}

// lockSession returns the session holding the locks, making a new one
// when there is none or its lease has ended.
func (s *Store) lockSession() (*concurrency.Session, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.session != nil {
		select {
		case <-s.session.Done():
			s.session = nil
		default:
			return s.session, nil
		}
	}
	sess, err := concurrency.NewSession(s.cli, concurrency.WithTTL(s.ttl))
	if err != nil {
		return nil, err
	}
	s.session = sess
	return sess, nil
}

// Close revokes the lease of the locks (releasing any still held).
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.session == nil {
		return nil
	}
	err := s.session.Close()
	s.session = nil
	return err
}

// String names the store in certmagic's logs.
func (s *Store) String() string { return "etcd:" + s.prefix }

// Interface guards
var _ certmagic.Storage = (*Store)(nil)
