package router

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/prometheus/client_golang/prometheus"
)

// acmeMetrics counts this router's ACME work from certmagic's events.
type acmeMetrics struct {
	obtaining *prometheus.CounterVec   // orders started, by renewal
	obtained  *prometheus.CounterVec   // certificates obtained, by renewal
	failed    *prometheus.CounterVec   // orders that failed, by renewal
	loaded    prometheus.Counter       // certificates loaded from the shared storage
	seconds   *prometheus.HistogramVec // order start to certificate, by renewal

	mu      sync.Mutex
	started map[string]time.Time // identifier → cert_obtaining
}

func newACMEMetrics() *acmeMetrics {
	renewal := []string{"renewal"}
	return &acmeMetrics{
		obtaining: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "berth", Subsystem: "router", Name: "acme_orders_total",
			Help: "ACME orders this router started (it held the issuance lock), by renewal."}, renewal),
		obtained: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "berth", Subsystem: "router", Name: "acme_certificates_obtained_total",
			Help: "Certificates this router obtained from the ACME CA and stored in etcd, by renewal."}, renewal),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "berth", Subsystem: "router", Name: "acme_failures_total",
			Help: "ACME orders of this router that failed (retried with backoff), by renewal."}, renewal),
		loaded: prometheus.NewCounter(prometheus.CounterOpts{Namespace: "berth", Subsystem: "router", Name: "acme_certificates_loaded_total",
			Help: "Managed certificates this router loaded into its cache (from etcd, or just obtained)."}),
		seconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "berth", Subsystem: "router", Name: "acme_order_seconds",
			Help: "Time from the start of an order to the certificate, by renewal.", Buckets: []float64{1, 2, 5, 10, 20, 30, 60, 120, 300}}, renewal),
		started: map[string]time.Time{},
	}
}

// acmeEvents are the certmagic events the metrics use.
var acmeEvents = map[string]bool{"cert_obtaining": true, "cert_obtained": true, "cert_failed": true, "cached_managed_cert": true}

// watch makes cfg report its events to m.
func (m *acmeMetrics) watch(cfg *certmagic.Config) {
	cfg.OnEvent = m.onEvent
	cfg.ShouldEmitFunc = func(event string) bool { return acmeEvents[event] }
}

// onEvent counts one event; it never cancels anything (nil error).
func (m *acmeMetrics) onEvent(_ context.Context, event string, data map[string]any) error {
	renewal := fmt.Sprint(data["renewal"] == true)
	id, _ := data["identifier"].(string)
	switch event {
	case "cert_obtaining":
		m.obtaining.WithLabelValues(renewal).Inc()
		m.mu.Lock()
		m.started[id] = time.Now()
		m.mu.Unlock()
	case "cert_obtained", "cert_failed":
		if event == "cert_obtained" {
			m.obtained.WithLabelValues(renewal).Inc()
		} else {
			m.failed.WithLabelValues(renewal).Inc()
		}
		m.mu.Lock()
		start, ok := m.started[id]
		delete(m.started, id)
		m.mu.Unlock()
		if ok && event == "cert_obtained" {
			m.seconds.WithLabelValues(renewal).Observe(time.Since(start).Seconds())
		}
	case "cached_managed_cert":
		m.loaded.Inc()
	}
	return nil
}

// ACMECollectors returns the ACME metrics (berth_router_acme_*) to
// register after EnableACME; nil without ACME.
func (r *Router) ACMECollectors() []prometheus.Collector {
	if r.acme == nil {
		return nil
	}
	m := r.acme.metrics
	return []prometheus.Collector{m.obtaining, m.obtained, m.failed, m.loaded, m.seconds}
}
