package api

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/registry"
)

// Server is the API: its handler, event hub, token cache and auditor.
type Server struct {
	cfg     Config
	kv      clientv3.KV
	src     registry.Source
	hub     *Hub
	tokens  *tokenCache
	audit   *auditor
	log     logrus.FieldLogger
	metrics *metrics
	gather  prometheus.Gatherer
	mux     *http.ServeMux
	routes  []route

	streams  atomic.Int64
	done     chan struct{} // closed when Serve's context ends: streams return
	doneOnce sync.Once
}

// New returns a server reading through src (the watch cache) and writing
// through kv, granting audit leases on lease; gather serves /metrics (nil:
// the server's own metrics only). Run the hub with Run.
func New(cfg Config, kv clientv3.KV, lease clientv3.Lease, src registry.Source, gather prometheus.Gatherer, log logrus.FieldLogger) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, kv: kv, src: src, hub: NewHub(src, cfg.EventBuffer),
		tokens: &tokenCache{ttl: cfg.TokenTTL, m: map[string]cachedToken{}},
		audit:  &auditor{lease: lease, retention: cfg.AuditRetention},
		log:    log.WithField("component", "api"), metrics: newMetrics(), done: make(chan struct{})}
	if gather == nil {
		reg := prometheus.NewRegistry()
		reg.MustRegister(s.Collectors()...)
		gather = reg
	}
	s.gather = gather
	s.mux = http.NewServeMux()
	s.routes = s.table()
	for _, rt := range s.routes {
		s.mux.Handle(rt.Method+" "+rt.Path, s.wrap(rt))
	}
	s.mux.HandleFunc("/", s.notFound)
	return s, nil
}

// Collectors returns the API's and its hub's metrics, for registration.
func (s *Server) Collectors() []prometheus.Collector {
	return append(s.metrics.collectors(), s.hub.events)
}

// Hub returns the server's event hub.
func (s *Server) Hub() *Hub { return s.hub }

// Run runs the event hub until ctx ends.
func (s *Server) Run(ctx context.Context) error { return s.hub.Run(ctx) }

// Handler is the API's HTTP handler.
func (s *Server) Handler() http.Handler { return s.mux }

// Serve serves ln with strict timeouts until ctx ends, then shuts down
// (event streams end at once, other requests get 5s).
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      s.cfg.DeleteWait + 30*time.Second, // event streams set their own deadline per write
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    32 << 10,
		ErrorLog:          log.New(s.log.WithField("source", "net/http").WriterLevel(logrus.DebugLevel), "", 0),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	s.doneOnce.Do(func() { close(s.done) })
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		srv.Close()
	}
	if err := <-errc; !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// route is one endpoint; the OpenAPI document lists the same set (a test
// keeps them equal).
type route struct {
	Method, Path string
	Scope        string // "" (public), read or admin
	Stream       bool   // an event stream: not timed, no body limit needed
	h            func(w http.ResponseWriter, r *http.Request) error
}

// statusWriter records the status for metrics.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 {
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func requestID() string {
	var b [8]byte
	rand.Read(b[:])
	return "r" + hex.EncodeToString(b[:])
}

// wrap adds what every route gets: request id, body limit, auth,
// metrics, errors as JSON.
func (s *Server) wrap(rt route) http.Handler {
	name := rt.Method + " " + rt.Path
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		id := requestID()
		sw.Header().Set("X-Request-Id", id)
		r.Body = http.MaxBytesReader(sw, r.Body, s.cfg.MaxBody)
		err := func() error {
			if rt.Scope != "" {
				c, err := s.authenticate(r, rt.Scope)
				if err != nil {
					return err
				}
				r = r.WithContext(context.WithValue(r.Context(), callerKey{}, c))
			}
			return rt.h(sw, r.WithContext(context.WithValue(r.Context(), requestKey{}, id)))
		}()
		if err != nil {
			if sw.code != 0 {
				s.log.WithError(err).WithField("route", name).Debug("error after the response started")
			} else {
				e := toError(err)
				if e.Status >= 500 {
					s.log.WithError(err).WithFields(logrus.Fields{"route": name, "request": id}).Warn("api request failed")
				}
				writeError(sw, e)
			}
		}
		code := sw.code
		if code == 0 {
			code = http.StatusOK
		}
		s.metrics.requests.WithLabelValues(name, strconv.Itoa(code)).Inc()
		if !rt.Stream {
			s.metrics.duration.WithLabelValues(name).Observe(time.Since(start).Seconds())
		}
	})
}

type requestKey struct{}

// notFound answers unknown paths (404) and known paths with another
// method (405 with Allow), as JSON.
func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodDelete} {
		r2 := r.Clone(r.Context())
		r2.Method = m
		if _, pat := s.mux.Handler(r2); pat != "/" && pat != "" {
			allow = append(allow, m)
		}
	}
	route := "unknown"
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeError(w, errorf(http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" is not allowed on "+r.URL.Path+"; allowed: "+strings.Join(allow, ", ")))
		route = "method-not-allowed"
		s.metrics.requests.WithLabelValues(route, "405").Inc()
		return
	}
	writeError(w, errorf(http.StatusNotFound, "not_found", "no such endpoint "+r.URL.Path+" (the API's endpoints: /v1/openapi.json)"))
	s.metrics.requests.WithLabelValues(route, "404").Inc()
}

// metricsHandler serves the Prometheus metrics.
func (s *Server) metricsHandler(w http.ResponseWriter, r *http.Request) error {
	promhttp.HandlerFor(s.gather, promhttp.HandlerOpts{}).ServeHTTP(w, r)
	return nil
}
