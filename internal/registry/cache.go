package registry

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// errWatchClosed reports a watch channel closed without an error.
var errWatchClosed = errors.New("watch channel closed")

// CacheConfig configures a Cache. Zero values take the documented defaults.
type CacheConfig struct {
	Keys       Keys          // key layout (required)
	PageSize   int64         // keys per list request (default 5000)
	MinBackoff time.Duration // first retry delay after an error (default 100ms)
	MaxBackoff time.Duration // largest retry delay (default 10s)
	// Progress is how often the watch asks etcd to confirm it is current
	// (default 1s); a watch that hears nothing for 3 × Progress is treated
	// as lost, so an unreachable etcd shows up as Staleness within seconds.
	Progress time.Duration
	// RequestTimeout bounds each list request (default 5s).
	RequestTimeout time.Duration
}

// Cache is the watch cache: it lists the v1 prefix, publishes the result as
// an immutable Snapshot, then watches from the list's revision + 1 and
// publishes a new snapshot for every batch of events. On any watch error
// (compaction, closed channel, lost leader, expired auth) it re-lists after
// a growing backoff and swaps the new snapshot in. It never skips events: a
// watch always resumes exactly after the revision last applied, or re-lists.
// A value that does not decode is skipped (warning and metric) and the
// watch goes on.
type Cache struct {
	kv  clientv3.KV
	w   clientv3.Watcher
	cfg CacheConfig
	log logrus.FieldLogger

	snap     atomic.Pointer[Snapshot]
	synced   chan struct{} // closed after the first snapshot
	syncOnce sync.Once
	lostAt   atomic.Int64 // unix ns when the watch was lost; 0 while it runs
	lastSync atomic.Int64 // unix ns of the last applied list, batch or progress

	mu   sync.Mutex
	subs map[chan struct{}]struct{}

	decodeErrors prometheus.Counter
	resyncs      prometheus.Counter
	events       prometheus.Counter
}

// NewCache returns a cache reading through kv and w. Run starts it.
func NewCache(kv clientv3.KV, w clientv3.Watcher, cfg CacheConfig, log logrus.FieldLogger) *Cache {
	if cfg.PageSize == 0 {
		cfg.PageSize = 5000
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = 100 * time.Millisecond
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 10 * time.Second
	}
	if cfg.Progress == 0 {
		cfg.Progress = time.Second
	}
	if cfg.RequestTimeout == 0 {
		cfg.RequestTimeout = 5 * time.Second
	}
	c := &Cache{
		kv: kv, w: w, cfg: cfg, log: log.WithField("component", "registry-cache"),
		synced: make(chan struct{}), subs: map[chan struct{}]struct{}{},
		decodeErrors: prometheus.NewCounter(prometheus.CounterOpts{Name: "berth_registry_decode_errors_total", Help: "etcd values skipped because they did not decode."}),
		resyncs:      prometheus.NewCounter(prometheus.CounterOpts{Name: "berth_registry_resyncs_total", Help: "Full re-lists of the registry after a watch error."}),
		events:       prometheus.NewCounter(prometheus.CounterOpts{Name: "berth_registry_events_total", Help: "etcd watch events applied."}),
	}
	c.lostAt.Store(time.Now().UnixNano())
	c.snap.Store(emptySnapshot())
	return c
}

// Collectors returns the cache's Prometheus metrics, for registration.
func (c *Cache) Collectors() []prometheus.Collector {
	return []prometheus.Collector{c.decodeErrors, c.resyncs, c.events}
}

// Snapshot returns the current view. It is never nil (empty before the
// first sync) and must not be modified.
func (c *Cache) Snapshot() *Snapshot { return c.snap.Load() }

// Synced is closed once the first snapshot has been applied.
func (c *Cache) Synced() <-chan struct{} { return c.synced }

// Revision is the etcd revision of the current view.
func (c *Cache) Revision() int64 { return c.snap.Load().Rev }

// LastSync is when the view was last confirmed current (list, events or
// watch progress); zero before the first sync.
func (c *Cache) LastSync() time.Time {
	if ns := c.lastSync.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// Staleness is 0 while the watch runs, otherwise how long the view has gone
// without updates; it is +Inf (math.MaxInt64) before the first sync.
func (c *Cache) Staleness() time.Duration {
	select {
	case <-c.synced:
	default:
		return time.Duration(math.MaxInt64)
	}
	lost := c.lostAt.Load()
	if lost == 0 {
		return 0
	}
	return time.Since(time.Unix(0, lost))
}

// Subscribe returns a channel that receives a value (coalesced: capacity
// one) after every change of the snapshot, and a cancel func that
// unsubscribes; the channel is never closed.
func (c *Cache) Subscribe() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	c.mu.Lock()
	c.subs[ch] = struct{}{}
	c.mu.Unlock()
	return ch, func() {
		c.mu.Lock()
		delete(c.subs, ch)
		c.mu.Unlock()
	}
}

func (c *Cache) publish(s *Snapshot) {
	c.snap.Store(s)
	c.lastSync.Store(time.Now().UnixNano())
	c.syncOnce.Do(func() { close(c.synced) })
	c.mu.Lock()
	for ch := range c.subs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
	c.mu.Unlock()
}

// Run lists and watches until ctx ends; it returns ctx's error.
func (c *Cache) Run(ctx context.Context) error {
	backoff := c.cfg.MinBackoff
	first := true
	for {
		if !first {
			c.resyncs.Inc()
		}
		first = false
		rev, err := c.list(ctx)
		if err == nil {
			backoff = c.cfg.MinBackoff
			err = c.watch(ctx, rev)
		}
		c.lostAt.CompareAndSwap(0, time.Now().UnixNano())
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.log.WithError(err).WithField("retry_in", backoff).Warn("registry watch interrupted; re-listing")
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, c.cfg.MaxBackoff)
	}
}

// list reads every key under the prefix at one revision, in pages, and
// publishes the snapshot. It returns the revision listed.
func (c *Cache) list(ctx context.Context) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.RequestTimeout)
	defer cancel()
	k := c.cfg.Keys
	resp, err := c.kv.Get(ctx, k.Schema())
	if err != nil {
		return 0, fmt.Errorf("read schema: %w", err)
	}
	if len(resp.Kvs) > 0 {
		if err := checkSchema(resp.Kvs[0].Value); err != nil {
			return 0, err
		}
	}
	rev := resp.Header.Revision
	a := newApplier(k, emptySnapshot())
	for _, r := range k.listRanges() {
		if err := c.listRange(ctx, a, r[0], r[1], rev); err != nil {
			return 0, err
		}
	}
	a.s.Rev = rev
	c.publish(a.s)
	c.log.WithFields(logrus.Fields{"revision": rev, "apps": len(a.s.AppNames())}).Debug("registry listed")
	return rev, nil
}

// listRange reads [start, end) at rev in pages into a.
func (c *Cache) listRange(ctx context.Context, a *applier, start, end string, rev int64) error {
	for {
		page, err := c.kv.Get(ctx, start, clientv3.WithRange(end), clientv3.WithRev(rev),
			clientv3.WithLimit(c.cfg.PageSize), clientv3.WithSort(clientv3.SortByKey, clientv3.SortAscend))
		if err != nil {
			return fmt.Errorf("list %s at revision %d: %w", c.cfg.Keys.Prefix(), rev, err)
		}
		for _, kv := range page.Kvs {
			c.applyOne(a, string(kv.Key), kv.Value, false)
		}
		if !page.More || len(page.Kvs) == 0 {
			return nil
		}
		start = string(page.Kvs[len(page.Kvs)-1].Key) + "\x00"
	}
}

func (c *Cache) applyOne(a *applier, key string, value []byte, deleted bool) {
	if err := a.apply(key, value, deleted); err != nil {
		c.decodeErrors.Inc()
		c.log.WithError(err).WithField("key", key).Warn("skipping undecodable registry value")
	}
}

// watch applies events from rev+1 until the watch fails.
func (c *Cache) watch(ctx context.Context, rev int64) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	k := c.cfg.Keys
	wch := c.w.Watch(wctx, k.Prefix(), clientv3.WithPrefix(), clientv3.WithRev(rev+1), clientv3.WithProgressNotify())
	c.lostAt.Store(0)
	tick := time.NewTicker(c.cfg.Progress)
	defer tick.Stop()
	heard := time.Now()
	for {
		var resp clientv3.WatchResponse
		var ok bool
		select {
		case <-tick.C:
			if silent := time.Since(heard); silent > 3*c.cfg.Progress {
				return fmt.Errorf("no answer from etcd for %s", silent.Round(time.Millisecond))
			}
			c.w.RequestProgress(wctx)
			continue
		case resp, ok = <-wch:
		}
		if !ok {
			break
		}
		heard = time.Now()
		if err := resp.Err(); err != nil {
			return fmt.Errorf("watch from revision %d: %w", rev+1, err)
		}
		if resp.IsProgressNotify() {
			c.lastSync.Store(time.Now().UnixNano())
			continue
		}
		if len(resp.Events) == 0 {
			continue
		}
		a := newApplier(k, c.snap.Load())
		for _, ev := range resp.Events {
			c.applyOne(a, string(ev.Kv.Key), ev.Kv.Value, ev.Type == clientv3.EventTypeDelete)
			rev = ev.Kv.ModRevision
		}
		c.events.Add(float64(len(resp.Events)))
		a.s.Rev = rev
		c.publish(a.s)
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return errWatchClosed
}

// Load lists the registry once (no watch) and returns the snapshot; for
// commands such as "berth status".
func (c *Cache) Load(ctx context.Context) (*Snapshot, error) {
	if _, err := c.list(ctx); err != nil {
		return nil, err
	}
	return c.Snapshot(), nil
}

// Source is a view of the registry that follows etcd, as the Cache
// provides it; router, dnsd and the reconcilers take this interface.
type Source interface {
	Snapshot() *Snapshot
	Subscribe() (<-chan struct{}, func())
	Synced() <-chan struct{}
}

// Interface guard
var _ Source = (*Cache)(nil)
