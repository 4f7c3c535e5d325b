package router

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/registry"
)

// Waker is the router's Waiter: the first request for a sleeping app wins
// one etcd transaction that sets expected=started (exactly one wake
// cluster-wide, however many requests and routers); the node agents or the
// local driver then start the app. Browsers get the waiting page; every
// other request is held in a bounded per-app queue until the first
// instance is up, then released gradually, with X-Berth-Cold-Start.
type Waker struct {
	KV   clientv3.KV
	Keys registry.Keys
	Log  logrus.FieldLogger
	// MaxQueue bounds the requests held per app (default 1000).
	MaxQueue int
	// Deadline bounds how long a request is held (default 30s).
	Deadline time.Duration

	r      *Router
	mu     sync.Mutex
	queues map[string]*int64

	wakes, held, rejected prometheus.Counter
	duration              prometheus.Histogram
}

// NewWaker attaches a waker to r.
func NewWaker(r *Router, kv clientv3.KV, keys registry.Keys, log logrus.FieldLogger) *Waker {
	w := &Waker{KV: kv, Keys: keys, Log: log.WithField("component", "wake"), r: r, queues: map[string]*int64{},
		wakes:    prometheus.NewCounter(prometheus.CounterOpts{Name: "berth_wakes_total", Help: "Apps woken by this router (transactions won)."}),
		held:     prometheus.NewCounter(prometheus.CounterOpts{Name: "berth_wake_held_requests_total", Help: "Requests held until their app woke."}),
		rejected: prometheus.NewCounter(prometheus.CounterOpts{Name: "berth_wake_rejected_requests_total", Help: "Requests refused while waking: queue full or deadline."}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "berth_wake_duration_seconds", Help: "From winning a wake to the first live instance.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 10)}),
	}
	r.Waiter = w
	return w
}

// Collectors returns the wake metrics.
func (w *Waker) Collectors() []prometheus.Collector {
	return []prometheus.Collector{w.wakes, w.held, w.rejected, w.duration}
}

func (w *Waker) maxQueue() int64 {
	if w.MaxQueue == 0 {
		return 1000
	}
	return int64(w.MaxQueue)
}

func (w *Waker) deadline() time.Duration {
	if w.Deadline == 0 {
		return 30 * time.Second
	}
	return w.Deadline
}

// wake moves the app to expected=started unless it already is, or is
// deleted; it reports whether this call won the transaction.
func (w *Waker) wake(ctx context.Context, app string) bool {
	won, err := registry.Wake(ctx, w.KV, w.Keys, app)
	if err != nil {
		w.Log.WithError(err).WithField("app", app).Warn("wake transaction")
		return false
	}
	if won {
		w.wakes.Inc()
		w.Log.WithField("app", app).Info("waking app")
		start := time.Now()
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			if w.r.waitLive(ctx, app) {
				w.duration.Observe(time.Since(start).Seconds())
			}
		}()
	}
	return won
}

func isBrowser(r *http.Request) bool {
	return (r.Method == http.MethodGet || r.Method == http.MethodHead) && wantsHTML(r) && r.Header.Get("Upgrade") == ""
}

// Wait implements Waiter.
func (w *Waker) Wait(rw http.ResponseWriter, req *http.Request, app string) bool {
	tctx, cancel := context.WithTimeout(req.Context(), 5*time.Second)
	w.wake(tctx, app)
	cancel()
	if isBrowser(req) {
		d := pageData{Status: http.StatusServiceUnavailable, Host: req.Host, App: app,
			Message: app + " was asleep and is starting now; this page reloads until it is up.", RetryAfter: 1}
		d.Progress, d.Up, d.Wanted = w.progress(app)
		w.r.pages.serve(rw, acceptOfRequest(req), pageWaiting, d)
		return true
	}
	q := w.queue(app)
	pos := atomic.AddInt64(q, 1)
	defer atomic.AddInt64(q, -1)
	if pos > w.maxQueue() {
		w.rejected.Inc()
		w.r.serveUnavailable(rw, req, &route{app: app, stats: &appStats{}}, fmt.Sprintf("%s is starting and %d requests are already waiting", app, w.maxQueue()))
		return true
	}
	w.held.Inc()
	start := time.Now()
	ctx, cancel := context.WithTimeout(req.Context(), w.deadline())
	defer cancel()
	if !w.r.waitLive(ctx, app) {
		w.rejected.Inc()
		w.r.serveUnavailable(rw, req, &route{app: app, stats: &appStats{}}, app+" did not start in time")
		return true
	}
	// Release gradually: the n-th held request waits n × 200µs (at most
	// 100ms), so a fresh instance is not hit by the whole queue at once.
	select {
	case <-time.After(min(time.Duration(pos)*200*time.Microsecond, 100*time.Millisecond)):
	case <-req.Context().Done():
		return true
	}
	rw.Header().Set("X-Berth-Cold-Start", time.Since(start).Round(time.Millisecond).String())
	w.r.ServeHTTP(rw, req)
	return true
}

func (w *Waker) queue(app string) *int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	q := w.queues[app]
	if q == nil {
		q = new(int64)
		w.queues[app] = q
	}
	return q
}

// progress describes a waking app for the waiting page: instances up of
// those asked for (also as numbers, for the progress bar), and how long
// ago the start began.
func (w *Waker) progress(app string) (desc string, up, wanted int) {
	rt := w.r.table.Load().apps[app]
	if rt == nil {
		return "", 0, 0
	}
	up, wanted = len(rt.upstreams), rt.instances
	desc = fmt.Sprintf("%d", up)
	if wanted > 0 {
		desc += fmt.Sprintf(" of %d", wanted)
	}
	desc += " instance(s) up"
	if rt.since > 0 && rt.status == registry.StatusStarting {
		desc += fmt.Sprintf(", starting for %s", time.Since(time.UnixMilli(rt.since)).Round(time.Second))
	}
	return desc, up, max(wanted, up, 1)
}
