package router

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	requests         *prometheus.CounterVec
	genRequests      *prometheus.CounterVec
	duration         *prometheus.HistogramVec
	retries          *prometheus.CounterVec
	upstreamFailures *prometheus.CounterVec
	rebuilds         prometheus.Counter
	routes           prometheus.Gauge
	laneRequests     prometheus.Counter
	laneTLSRequests  prometheus.Counter
	tlsHandshakes    *prometheus.CounterVec
	// tlsHandshakes' series, looked up once
	tlsFull, tlsResumed, tlsFailed prometheus.Counter
	handoffs                       prometheus.Counter
	healthChecks                   *prometheus.CounterVec
	etcdCertsSkipped               *prometheus.CounterVec
	etcdCertsClear                 prometheus.Gauge
	recipientConflicts             prometheus.Counter
	recipientConflict              prometheus.Gauge
}

func newMetrics() *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "berth_router_requests_total",
			Help: "Requests by app (\"-\" for unknown hosts) and status code class."}, []string{"app", "code"}),
		genRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "berth_router_generation_requests_total",
			Help: "Requests by app, generation of the instance that answered (the last one tried), and status code class; a generation's series go when it has no live instance left."},
			[]string{"app", "gen", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "berth_router_request_duration_seconds",
			Help: "Time to the end of the response, by app.", Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12)}, []string{"app"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "berth_router_retries_total",
			Help: "Requests retried on another upstream."}, []string{"app"}),
		upstreamFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "berth_router_upstream_failures_total",
			Help: "Failed attempts to reach an upstream."}, []string{"app"}),
		rebuilds: prometheus.NewCounter(prometheus.CounterOpts{Name: "berth_router_table_rebuilds_total", Help: "Routing table rebuilds."}),
		routes:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "berth_router_apps", Help: "Apps in the routing table."}),
		laneRequests: prometheus.NewCounter(prometheus.CounterOpts{Name: "berth_router_fast_lane_requests_total",
			Help: "Requests proxied on the fast lane (HTTP/1.1, plain or over TLS, to an app with live instances)."}),
		laneTLSRequests: prometheus.NewCounter(prometheus.CounterOpts{Name: "berth_router_fast_lane_tls_requests_total",
			Help: "Of the fast lane's requests, those over TLS."}),
		tlsHandshakes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "berth_router_tls_handshakes_total",
			Help: "TLS handshakes on the HTTPS listeners by result: full, resumed (a session ticket), failed."}, []string{"result"}),
		healthChecks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "berth_router_health_checks_total",
			Help: "Active health probes by app and result (pass, fail)."}, []string{"app", "result"}),
		etcdCertsSkipped: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "berth_router_etcd_certs_skipped_total",
			Help: "Certificates in etcd (berth cert put) not served, once per record value, by reason: no-router-key (the router has no --router-key-file), does-not-open (sealed to another recipient than the one derived from this router's key, or for another host), invalid (the key does not match)."},
			[]string{"reason"}),
		etcdCertsClear: prometheus.NewGauge(prometheus.GaugeOpts{Name: "berth_router_etcd_certs_clear_key",
			Help: "Certificates in etcd served with a private key stored in clear (written before keys were sealed: berth cert put again seals it)."}),
		recipientConflicts: prometheus.NewCounter(prometheus.CounterOpts{Name: "berth_router_cert_recipient_conflicts_total",
			Help: "Times this router found another certificate recipient published at acme/cert-recipient than the one derived from its --router-key-file (the routers disagree on their key; it does not overwrite it)."}),
		recipientConflict: prometheus.NewGauge(prometheus.GaugeOpts{Name: "berth_router_cert_recipient_conflict",
			Help: "1 while the certificate recipient published at acme/cert-recipient is not this router's: certificates sealed by berth cert put do not open here."}),
		handoffs: prometheus.NewCounter(prometheus.CounterOpts{Name: "berth_router_handoffs_total",
			Help: "Connections the fast lane handed to the full HTTP server (pages, wakes, upgrades, h2c, unusual requests)."}),
	}
	m.tlsFull, m.tlsResumed = m.tlsHandshakes.WithLabelValues("full"), m.tlsHandshakes.WithLabelValues("resumed")
	m.tlsFailed = m.tlsHandshakes.WithLabelValues("failed")
	return m
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.requests, m.genRequests, m.duration, m.retries, m.upstreamFailures, m.rebuilds, m.routes, m.laneRequests, m.laneTLSRequests, m.tlsHandshakes, m.handoffs, m.healthChecks,
		m.etcdCertsSkipped, m.etcdCertsClear, m.recipientConflicts, m.recipientConflict}
}
