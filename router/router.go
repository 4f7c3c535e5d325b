package router

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/netip"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"

	"github.com/berthproject/berth/internal/http1"
	"github.com/berthproject/berth/internal/registry"
)

// Source is where the router's view comes from: the registry's watch cache.
type Source = registry.Source

// Waiter handles requests for an app without live instances whose status
// says it can be woken (passivated, or starting). It returns true when it
// answered the request. The passivation issue provides it; without one,
// such requests get the 503 waiting page.
type Waiter interface {
	Wait(w http.ResponseWriter, r *http.Request, app string) bool
}

// Router is the HTTP reverse proxy. It is an http.Handler; Run keeps its
// routing table in step with the Source.
type Router struct {
	cfg     Config
	log     logrus.FieldLogger
	src     Source
	table   atomic.Pointer[Table]
	builder *tableBuilder
	proxy   *httputil.ReverseProxy
	pool    *http1.Pool // keep-alive upstream connections, shared by both lanes
	pages   *pages
	metrics *metrics
	ready   atomic.Bool
	changed atomic.Pointer[chan struct{}] // closed at the next rebuild
	// logRequests is set when per-request logs are wanted (access log or
	// debug level): building their fields costs allocations otherwise.
	logRequests bool

	acme  *acmeManager // set by EnableACME (nil: no ACME)
	certs *certCache   // the certificates in etcd, opened

	// Waiter, if set before serving, handles requests for sleeping apps.
	Waiter Waiter
}

// New returns a router reading from src.
func New(cfg Config, src Source, log logrus.FieldLogger) (*Router, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.ID == "" {
		cfg.ID, _ = os.Hostname()
	}
	pg, err := loadPages(cfg.PagesDir)
	if err != nil {
		return nil, err
	}
	m := newMetrics()
	r := &Router{cfg: cfg, log: log.WithField("component", "router"), src: src, builder: newTableBuilder(m), pages: pg, metrics: m}
	if r.certs, err = newCertCache(cfg.RouterKey, m, r.log); err != nil {
		return nil, err
	}
	r.table.Store(r.builder.build(src.Snapshot()))
	ch := make(chan struct{})
	r.changed.Store(&ch)
	base := &http.Transport{
		Proxy:                 nil,
		DialContext:           http1.WriteBound((&net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}).DialContext, cfg.BodyTimeout),
		MaxIdleConns:          0,
		MaxIdleConnsPerHost:   cfg.MaxIdleConnsPerHost,
		IdleConnTimeout:       cfg.UpstreamIdleTimeout,
		ResponseHeaderTimeout: cfg.ResponseHeaderTimeout,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
	}
	h2c := base.Clone()
	h2c.Protocols = new(http.Protocols)
	h2c.Protocols.SetUnencryptedHTTP2(true)
	r.pool = &http1.Pool{Dial: (&net.Dialer{Timeout: cfg.DialTimeout, KeepAlive: 30 * time.Second}).DialContext, MaxIdle: cfg.MaxIdleConnsPerHost, IdleTimeout: cfg.UpstreamIdleTimeout}
	fast := &http1.Transport{Pool: r.pool, Fallback: base, ResponseHeaderTimeout: cfg.ResponseHeaderTimeout, WriteTimeout: cfg.BodyTimeout}
	r.proxy = &httputil.ReverseProxy{
		Rewrite:        r.rewrite,
		Transport:      &retryTransport{base: fast, h2c: h2c, r: r},
		ErrorHandler:   r.proxyError,
		ModifyResponse: dropAppHSTS,
		BufferPool:     newBufferPool(),
	}
	r.logRequests = cfg.AccessLog
	if e, ok := log.(*logrus.Entry); ok && e.Logger.IsLevelEnabled(logrus.DebugLevel) {
		r.logRequests = true
	}
	if l, ok := log.(*logrus.Logger); ok && l.IsLevelEnabled(logrus.DebugLevel) {
		r.logRequests = true
	}
	return r, nil
}

// ServerProtocols are what the router's listeners speak to clients:
// HTTP/1.1, HTTP/2 over TLS, and HTTP/2 without TLS (h2c, for gRPC
// clients).
func ServerProtocols() *http.Protocols {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetHTTP2(true)
	p.SetUnencryptedHTTP2(true)
	return p
}

// Collectors returns the router's Prometheus metrics.
func (r *Router) Collectors() []prometheus.Collector { return r.metrics.collectors() }

// Ready reports whether the first registry snapshot has been applied.
func (r *Router) Ready() bool { return r.ready.Load() }

// Run rebuilds the routing table after every registry change, and closes
// upstream connections left idle past Config.UpstreamIdleTimeout, until
// ctx ends.
func (r *Router) Run(ctx context.Context) error {
	ch, cancel := r.src.Subscribe()
	defer cancel()
	pooled := make(chan struct{})
	go func() { defer close(pooled); r.pool.Run(ctx) }()
	defer func() { <-pooled }()
	select {
	case <-r.src.Synced():
	case <-ctx.Done():
		return ctx.Err()
	}
	r.rebuild()
	r.ready.Store(true)
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-ch:
			r.rebuild()
		}
	}
}

func (r *Router) rebuild() {
	snap := r.src.Snapshot()
	t := r.builder.build(snap)
	r.certs.sync(snap.Certs)
	old, now := upstreamAddrs(r.table.Swap(t)), upstreamAddrs(t)
	for addr := range old {
		if !now[addr] {
			r.pool.CloseIdle(addr) // an upstream that left: its kept-alive connections go too
		}
	}
	next := make(chan struct{})
	close(*r.changed.Swap(&next))
	r.metrics.rebuilds.Inc()
	r.metrics.routes.Set(float64(len(t.apps)))
}

// ServeHTTP routes one request.
func (r *Router) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	start := time.Now()
	// Every answer, pages included, goes through the recorder: it closes
	// an HTTP/1 connection whose request body was not read to its end.
	// (Writes to clients are bounded on the connection: Server.)
	rec := &statusRecorder{ResponseWriter: w}
	if req.Body != nil && req.Body != http.NoBody {
		body, ok := req.Body.(*clientBody) // already ours when the waker serves it again
		if !ok {
			body = newClientBody(req, http.NewResponseController(w), r.cfg.BodyTimeout)
			req = req.WithContext(req.Context()) // net/http keeps its own body on its request
			req.Body = body
		}
		rec.body = body
	}
	w = rec
	if req.Method == http.MethodConnect {
		// Not a forward proxy (nginx answers 400 too; 405 says why).
		w.Header().Set("Allow", "GET, HEAD, POST, PUT, DELETE, OPTIONS, PATCH")
		closeHTTP1(w, req)
		http.Error(w, "CONNECT is not supported", http.StatusMethodNotAllowed)
		return
	}
	if r.acmeChallenge(w, req) {
		return
	}
	rt := r.table.Load().lookup(req.Host)
	if rt == nil {
		r.metrics.requests.WithLabelValues("-", "4xx").Inc()
		r.pages.serve(w, acceptOfRequest(req), pageNotFound, pageData{Status: http.StatusNotFound, Host: req.Host,
			Message: "no app is configured for host " + req.Host})
		return
	}
	rt.stats.lastAccess.Store(time.Now().UnixMilli())
	if req.TLS == nil && !rt.plainServed() {
		r.refusePlain(w, req, rt)
		return
	}
	if req.TLS != nil && rt.hsts > 0 {
		w.Header().Set(hstsHeader, rt.hstsHdr)
	}
	if len(rt.upstreams) == 0 {
		r.noUpstream(w, req, rt)
		return
	}
	if rt.maxConns > 0 && rt.stats.active.Load() >= rt.maxConns {
		r.serveUnavailable(w, req, rt, "too many concurrent requests for "+rt.app)
		return
	}
	rt.stats.active.Add(1)
	defer rt.stats.active.Add(-1)
	info := &requestInfo{route: rt, body: rec.body}
	info.side, info.newClient = rt.assign(req, start.UnixNano())
	r.proxy.ServeHTTP(w, req.WithContext(withInfo(req.Context(), info)))
	rt.stats.observe(r.metrics, rt.app, rec.status, time.Since(start))
	r.observeGen(info.upstream, rec.status)
	if !r.logRequests {
		return
	}
	fields := logrus.Fields{"host": req.Host, "app": rt.app, "method": req.Method, "path": req.URL.Path,
		"status": rec.status, "duration_ms": time.Since(start).Milliseconds(), "attempts": info.attempts}
	if info.upstream != nil {
		fields["upstream"] = info.upstream.Addr
	}
	r.logRequest(fields)
}

// noUpstream answers for an app without live instances.
func (r *Router) noUpstream(w http.ResponseWriter, req *http.Request, rt *route) {
	sleeping := rt.status == registry.StatusPassivated || rt.expected == registry.StatusPassivated ||
		rt.status == registry.StatusStarting
	if sleeping && r.Waiter != nil && r.Waiter.Wait(w, req, rt.app) {
		return
	}
	if sleeping {
		r.metrics.requests.WithLabelValues(rt.app, "5xx").Inc()
		r.pages.serve(w, acceptOfRequest(req), pageWaiting, pageData{Status: http.StatusServiceUnavailable, Host: req.Host, App: rt.app,
			Message: rt.app + " is starting; this page reloads until it is up", RetryAfter: r.retryAfter()})
		return
	}
	r.serveUnavailable(w, req, rt, rt.app+" has no live instance")
}

func (r *Router) serveUnavailable(w http.ResponseWriter, req *http.Request, rt *route, msg string) {
	r.metrics.requests.WithLabelValues(rt.app, "5xx").Inc()
	r.pages.serve(w, acceptOfRequest(req), pageUnavail, pageData{Status: http.StatusServiceUnavailable, Host: req.Host, App: rt.app,
		Message: msg, RetryAfter: r.retryAfter()})
}

func (r *Router) retryAfter() int { return max(1, int(r.cfg.RetryAfter/time.Second)) }

// proxyError answers when no upstream could give a response: the
// client's own failures (a stalled or malformed body) get 408 or 400 and
// close the connection; the rest is the upstream's (502, 504).
func (r *Router) proxyError(w http.ResponseWriter, req *http.Request, err error) {
	info := infoFrom(req.Context())
	if info != nil && info.body != nil {
		if cerr := info.body.failure(); cerr != nil {
			err = cerr
		}
	}
	if isClientError(err) {
		status := clientErrorStatus(err)
		closeHTTP1(w, req)
		if status == statusClientGone {
			w.WriteHeader(status) // nobody reads this
			return
		}
		http.Error(w, http.StatusText(status), status)
		return
	}
	if req.Context().Err() != nil {
		w.WriteHeader(statusClientGone) // client closed the request; nobody reads this
		return
	}
	app := ""
	if info != nil && info.route != nil {
		app = info.route.app
	}
	r.badGateway(w, acceptOfRequest(req), req.Host, app, err)
}

// closeHTTP1 ends an HTTP/1 connection after the response. An HTTP/2
// connection carries other streams: net/http would shut it down (GOAWAY).
func closeHTTP1(w http.ResponseWriter, req *http.Request) {
	if req.ProtoMajor == 1 {
		w.Header().Set("Connection", "close")
	}
}

// badGateway logs why no upstream answered and serves the 502 page (504
// after a timeout), for both lanes; it returns the status.
func (r *Router) badGateway(w http.ResponseWriter, accept acceptKind, host, app string, err error) int {
	status := http.StatusBadGateway
	if isTimeout(err) {
		status = http.StatusGatewayTimeout
	}
	r.log.WithError(err).WithFields(logrus.Fields{"app": app, "host": host}).Warn("upstream failed")
	r.pages.serve(w, accept, pageBadGW, pageData{Status: status, Host: host, App: app,
		Message: "no instance of " + app + " answered: " + http.StatusText(status)})
	return status
}

// logRequest logs a finished request, at Info with --access-log, else at
// Debug; callers build the fields only when r.logRequests is set.
func (r *Router) logRequest(fields logrus.Fields) {
	if r.cfg.AccessLog {
		r.log.WithFields(fields).Info("request")
	} else {
		r.log.WithFields(fields).Debug("request")
	}
}

// rewrite builds the outbound request: the original Host is kept
// (hipache-style), X-Forwarded-* and X-Real-IP are set, and kept from
// trusted proxies only.
func (r *Router) rewrite(pr *httputil.ProxyRequest) {
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = "upstream" // the transport sets the chosen upstream
	pr.Out.Host = pr.In.Host
	client := remoteIP(pr.In.RemoteAddr)
	trusted := r.trusted(client)
	if trusted {
		if prior := pr.In.Header.Values("X-Forwarded-For"); len(prior) > 0 {
			pr.Out.Header["X-Forwarded-For"] = prior
		}
	}
	if !r.cfg.AllowUnderscoreHeaders {
		for name := range pr.Out.Header {
			if strings.IndexByte(name, '_') >= 0 {
				delete(pr.Out.Header, name)
			}
		}
	}
	pr.SetXForwarded()
	realIP := client.String()
	if trusted {
		if p := pr.In.Header.Get("X-Forwarded-Proto"); p == "http" || p == "https" {
			pr.Out.Header.Set("X-Forwarded-Proto", p)
		}
		if ip := pr.In.Header.Get("X-Real-IP"); ip != "" {
			realIP = ip
		}
	}
	if client.IsValid() {
		pr.Out.Header.Set("X-Real-IP", realIP)
	}
}

func (r *Router) trusted(ip netip.Addr) bool {
	if !ip.IsValid() {
		return false
	}
	for _, p := range r.cfg.TrustedProxies {
		if p.Contains(ip.Unmap()) {
			return true
		}
	}
	return false
}

func remoteIP(remoteAddr string) netip.Addr {
	ap, err := netip.ParseAddrPort(remoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// waitLive waits until app has a live upstream or ctx ends.
func (r *Router) waitLive(ctx context.Context, app string) bool {
	for {
		changed := *r.changed.Load()
		if rt := r.table.Load().apps[app]; rt != nil && len(rt.upstreams) > 0 {
			return true
		}
		select {
		case <-ctx.Done():
			return false
		case <-changed:
		}
	}
}

// Drain waits until no request or upgraded connection is open, or ctx
// ends; http.Server.Shutdown does not wait for hijacked connections.
func (r *Router) Drain(ctx context.Context) error {
	for {
		open := int64(0)
		for _, rt := range r.table.Load().apps {
			open += rt.stats.active.Load()
		}
		if open == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d connection(s) still open: %w", open, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// upstreamAddrs is the set of upstream addresses in a table.
func upstreamAddrs(t *Table) map[string]bool {
	out := map[string]bool{}
	if t == nil {
		return out
	}
	for _, rt := range t.apps {
		for _, u := range rt.upstreams {
			out[u.Addr] = true
		}
	}
	return out
}
