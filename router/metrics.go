package router

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	requests         *prometheus.CounterVec
	duration         *prometheus.HistogramVec
	retries          *prometheus.CounterVec
	upstreamFailures *prometheus.CounterVec
	rebuilds         prometheus.Counter
	routes           prometheus.Gauge
}

func newMetrics() *metrics {
	return &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "berth_router_requests_total",
			Help: "Requests by app (\"-\" for unknown hosts) and status code class."}, []string{"app", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "berth_router_request_duration_seconds",
			Help: "Time to the response headers, by app.", Buckets: prometheus.ExponentialBuckets(0.0005, 2.5, 12)}, []string{"app"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "berth_router_retries_total",
			Help: "Requests retried on another upstream."}, []string{"app"}),
		upstreamFailures: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "berth_router_upstream_failures_total",
			Help: "Failed attempts to reach an upstream."}, []string{"app"}),
		rebuilds: prometheus.NewCounter(prometheus.CounterOpts{Name: "berth_router_table_rebuilds_total", Help: "Routing table rebuilds."}),
		routes:   prometheus.NewGauge(prometheus.GaugeOpts{Name: "berth_router_apps", Help: "Apps in the routing table."}),
	}
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.requests, m.duration, m.retries, m.upstreamFailures, m.rebuilds, m.routes}
}
