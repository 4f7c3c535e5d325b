package registry

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"time"

	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// LeaseOwner owns one etcd lease and the keys written on it. Run grants the
// lease, writes the keys and keeps the lease alive from one goroutine; when
// the lease is lost (etcd restarted, a partition longer than the TTL), it
// grants a new one and writes the keys again. Close revokes the lease,
// which deletes every key at once.
type LeaseOwner struct {
	kv  clientv3.KV
	l   clientv3.Lease
	ttl int64
	log logrus.FieldLogger

	mu    sync.Mutex
	id    clientv3.LeaseID
	keys  map[string]string // what must exist on the lease
	ready chan struct{}     // closed once the first grant succeeded
	once  sync.Once
	done  chan struct{} // closed when Run returns
}

// NewLeaseOwner returns an owner of a lease of ttl (rounded up to seconds,
// at least 2s).
func NewLeaseOwner(kv clientv3.KV, l clientv3.Lease, ttl time.Duration, log logrus.FieldLogger) *LeaseOwner {
	secs := max(int64((ttl+time.Second-1)/time.Second), 2)
	return &LeaseOwner{kv: kv, l: l, ttl: secs, log: log.WithField("component", "lease"),
		keys: map[string]string{}, ready: make(chan struct{}), done: make(chan struct{})}
}

// Ready is closed once the lease was first granted and the keys written.
func (o *LeaseOwner) Ready() <-chan struct{} { return o.ready }

// Done is closed when Run has returned.
func (o *LeaseOwner) Done() <-chan struct{} { return o.done }

// ID is the current lease, 0 while none is held.
func (o *LeaseOwner) ID() clientv3.LeaseID {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.id
}

// Put records key=value on the lease and writes it now if a lease is held.
// The first Put of a key writes it whatever is there (a stale record of a
// crash); a later one (an update: draining, health) only while the key is
// on this owner's lease or absent, so that it never overwrites a record
// someone else wrote meanwhile (the same instance started on another
// node).
func (o *LeaseOwner) Put(ctx context.Context, key, value string) error {
	o.mu.Lock()
	_, known := o.keys[key]
	o.keys[key] = value
	id := o.id
	o.mu.Unlock()
	if id == 0 {
		return nil // written by Run after the grant
	}
	put := clientv3.OpPut(key, value, clientv3.WithLease(id))
	if !known {
		_, err := o.kv.Put(ctx, key, value, clientv3.WithLease(id))
		return err
	}
	_, err := o.kv.Txn(ctx).If(clientv3.Compare(clientv3.LeaseValue(key), "=", id)).Then(put).
		Else(clientv3.OpTxn([]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(key), "=", 0)}, []clientv3.Op{put}, nil)).Commit()
	return err
}

// Delete forgets key and deletes it from etcd. A key this owner wrote is
// deleted only while it is still on this owner's lease: a record someone
// else wrote since (the same instance started on another node) is not
// this owner's to delete. A key it never wrote (a stale record an
// earlier owner left) is deleted as it is.
func (o *LeaseOwner) Delete(ctx context.Context, key string) error {
	o.mu.Lock()
	_, ours := o.keys[key]
	delete(o.keys, key)
	id := o.id
	o.mu.Unlock()
	if !ours {
		_, err := o.kv.Delete(ctx, key)
		return err
	}
	if id == 0 {
		return nil // not written yet
	}
	_, err := o.kv.Txn(ctx).If(clientv3.Compare(clientv3.LeaseValue(key), "=", id)).Then(clientv3.OpDelete(key)).Commit()
	return err
}

// Run holds the lease until ctx ends, then revokes it within 5s.
func (o *LeaseOwner) Run(ctx context.Context) error {
	defer close(o.done)
	backoff := 100 * time.Millisecond
	for {
		err := o.holdOnce(ctx)
		if ctx.Err() != nil {
			return nil
		}
		o.log.WithError(err).WithField("retry_in", backoff).Warn("lease lost; granting a new one")
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

// holdOnce grants a lease, writes every key on it and keeps it alive until
// the keep-alive ends. On ctx's end it revokes the lease.
func (o *LeaseOwner) holdOnce(ctx context.Context) error {
	g, err := o.l.Grant(ctx, o.ttl)
	if err != nil {
		return fmt.Errorf("grant lease: %w", err)
	}
	id := g.ID
	o.mu.Lock()
	o.id = id
	keys := maps.Clone(o.keys)
	o.mu.Unlock()
	defer func() {
		o.mu.Lock()
		o.id = 0
		o.mu.Unlock()
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		o.l.Revoke(rctx, id) // best effort: the TTL removes the keys otherwise
	}()
	// Each key is written if it is absent (it expired with the old lease)
	// or holds what this owner wrote: a record someone else wrote
	// meanwhile (the same instance started on another node while this
	// one was cut off) is theirs, and stays.
	ops := make([]clientv3.Op, 0, len(keys))
	for k, v := range keys {
		put := clientv3.OpPut(k, v, clientv3.WithLease(id))
		ops = append(ops, clientv3.OpTxn([]clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(k), "=", 0)},
			[]clientv3.Op{put},
			[]clientv3.Op{clientv3.OpTxn([]clientv3.Cmp{clientv3.Compare(clientv3.Value(k), "=", v)}, []clientv3.Op{put}, nil)}))
	}
	for len(ops) > 0 {
		n := min(len(ops), 30) // etcd's default limit of operations per txn is 128, nested ones included
		if _, err := o.kv.Txn(ctx).Then(ops[:n]...).Commit(); err != nil {
			return fmt.Errorf("write keys on lease %x: %w", id, err)
		}
		ops = ops[n:]
	}
	o.once.Do(func() { close(o.ready) })
	kctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ka, err := o.l.KeepAlive(kctx, id)
	if err != nil {
		return fmt.Errorf("keep lease %x alive: %w", id, err)
	}
	for range ka {
		// drained here, by the one goroutine that owns the lease
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return errors.New("keep-alive ended (lease expired or etcd unreachable)")
}
