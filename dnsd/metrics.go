package dnsd

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	queries  *prometheus.CounterVec
	duration prometheus.Histogram
}

func newMetrics() *metrics {
	return &metrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "berth_dnsd_queries_total",
			Help: "DNS queries by type and rcode."}, []string{"qtype", "rcode"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "berth_dnsd_query_duration_seconds",
			Help: "Time to answer a query.", Buckets: prometheus.ExponentialBuckets(0.00001, 3, 10)}),
	}
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.queries, m.duration}
}
