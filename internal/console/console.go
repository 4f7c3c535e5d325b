package console

import (
	"context"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"net/http"
	"time"

	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/api"
	"github.com/berthproject/berth/internal/registry"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Config is what the console reads and how it checks its readers.
type Config struct {
	// Source is the registry's watch cache (required).
	Source registry.Source
	// Authorize checks a page request for the read scope, as the API's
	// routes do (api.Server.Authorize); an error that is an *api.Error with
	// status 401 shows the token form. Required.
	Authorize func(r *http.Request, scope string) (string, error)
	// Events returns the newest events of an app ("" for all), oldest
	// first (api.Hub.Recent). Nil: pages show no past events.
	Events func(app string, n int) []api.Event
	// Leases looks up the nodes' leases for their age (nil: not shown).
	Leases clientv3.Lease
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Console serves the dashboard's pages and files.
type Console struct {
	cfg     Config
	tmpl    *template.Template
	hist    *History
	log     logrus.FieldLogger
	metrics *metrics
}

// New returns a console; run its history with Run.
func New(cfg Config, log logrus.FieldLogger) (*Console, error) {
	if cfg.Source == nil || cfg.Authorize == nil {
		return nil, errors.New("console: Source and Authorize are required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	t, err := template.New("").Funcs(funcs).ParseFS(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	return &Console{cfg: cfg, tmpl: t, hist: NewHistory(cfg.Source, cfg.Now),
		log: log.WithField("component", "console"), metrics: newMetrics()}, nil
}

// FromAPI returns a console over an API server's cache, auth and events,
// mounted on its mux; lease (may be nil) gives the nodes' lease ages.
func FromAPI(srv *api.Server, lease clientv3.Lease, log logrus.FieldLogger) (*Console, error) {
	c, err := New(Config{Source: srv.Source(), Authorize: srv.Authorize, Events: srv.Hub().Recent, Leases: lease}, log)
	if err != nil {
		return nil, err
	}
	c.Register(srv.Handle)
	return c, nil
}

// Run keeps the instances' health history and the request counters until
// ctx ends.
func (c *Console) Run(ctx context.Context) error { return c.hist.Run(ctx) }

// Register adds the console's routes through handle (an http.ServeMux's
// Handle).
func (c *Console) Register(handle func(pattern string, h http.Handler)) {
	handle("GET /{$}", c.page("apps", c.apps))
	handle("GET /apps/{app}", c.page("app", c.app))
	handle("GET /nodes", c.page("nodes", c.nodes))
	handle("GET /certificates", c.page("certificates", c.certificates))
	handle("GET /events", c.page("events", c.eventLog))
	handle("GET /fragment/apps", c.page("rows", c.appRows))
	sub, _ := fs.Sub(staticFS, "static")
	files := http.StripPrefix("/static/", http.FileServerFS(sub))
	handle("GET /static/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		secure(w.Header())
		w.Header().Set("Cache-Control", "no-cache")
		files.ServeHTTP(w, r)
	}))
}

// Handler returns the console alone on a mux of its own (tests,
// benchmarks).
func (c *Console) Handler() http.Handler {
	mux := http.NewServeMux()
	c.Register(mux.Handle)
	return mux
}

// csp allows the console's own files only: no inline script or style, no
// other origin, no framing; connect-src 'self' for the API and its stream.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

func secure(h http.Header) {
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
}

// handlerFunc renders a page: the template name and its data, or an error.
type handlerFunc func(r *http.Request, snap *registry.Snapshot) (string, any, error)

// page wraps a page: security headers, the read check, the synced
// snapshot, the template.
func (c *Console) page(page string, h handlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		code := 0
		defer func() {
			c.metrics.count(page, code)
			if code == http.StatusOK {
				c.metrics.duration.WithLabelValues(page).Observe(time.Since(start).Seconds())
			}
		}()
		render := func(status int, name string, data any) {
			code = status
			c.render(w, status, name, data)
		}
		secure(w.Header())
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if _, err := c.cfg.Authorize(r, api.ScopeRead); err != nil {
			status, msg := http.StatusUnauthorized, err.Error()
			var ae *api.Error
			if errors.As(err, &ae) {
				status = ae.Status
			}
			render(status, "login", layout{Title: "Token needed", Nav: "", Auth: true, Message: msg})
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
		defer cancel()
		select {
		case <-c.cfg.Source.Synced():
		case <-ctx.Done():
			render(http.StatusServiceUnavailable, "problem", layout{Title: "Not ready", Message: "the API has not read the registry from etcd yet; reload shortly"})
			return
		}
		name, data, err := h(r, c.cfg.Source.Snapshot())
		var nf notFound
		if errors.As(err, &nf) {
			render(http.StatusNotFound, "problem", layout{Title: "Not found", Message: string(nf)})
			return
		}
		if err != nil {
			c.log.WithError(err).Warn("console page failed")
			render(http.StatusInternalServerError, "problem", layout{Title: "Error", Message: err.Error()})
			return
		}
		render(http.StatusOK, name, data)
	})
}

// notFound is a page's "no such thing", shown as a 404.
type notFound string

func (e notFound) Error() string { return string(e) }

func (c *Console) render(w http.ResponseWriter, status int, name string, data any) {
	w.WriteHeader(status)
	if err := c.tmpl.ExecuteTemplate(w, name, data); err != nil {
		c.log.WithError(err).WithField("template", name).Debug("render failed")
	}
}
