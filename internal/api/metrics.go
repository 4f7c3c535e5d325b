package api

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	authFailures *prometheus.CounterVec
	streams      prometheus.Gauge
	resets       prometheus.Counter
	dropped      prometheus.Counter
}

func newMetrics() *metrics {
	return &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "berth_api_requests_total",
			Help: "API requests by route pattern, method and status code."}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "berth_api_request_duration_seconds",
			Help: "API request duration by route (event streams excluded).", Buckets: prometheus.ExponentialBuckets(0.0005, 4, 9)}, []string{"route"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "berth_api_auth_failures_total",
			Help: "Refused requests by reason: missing, malformed, unknown token, or scope."}, []string{"reason"}),
		streams: prometheus.NewGauge(prometheus.GaugeOpts{Name: "berth_api_sse_clients",
			Help: "Connected event stream (GET /v1/events) clients."}),
		resets: prometheus.NewCounter(prometheus.CounterOpts{Name: "berth_api_sse_resets_total",
			Help: "Reset events sent: a client missed more events than the API holds."}),
		dropped: prometheus.NewCounter(prometheus.CounterOpts{Name: "berth_api_sse_dropped_total",
			Help: "Event streams ended because the client did not take a write in time."}),
	}
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.requests, m.duration, m.authFailures, m.streams, m.resets, m.dropped}
}
