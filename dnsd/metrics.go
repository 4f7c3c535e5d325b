package dnsd

import (
	"sync"

	"github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	queries  *prometheus.CounterVec
	duration prometheus.Histogram
	children sync.Map // [2]int{qtype, rcode} → prometheus.Counter
}

func newMetrics() *metrics {
	return &metrics{
		queries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "berth_dnsd_queries_total",
			Help: "DNS queries by type and rcode."}, []string{"qtype", "rcode"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "berth_dnsd_query_duration_seconds",
			Help: "Time to answer a query.", Buckets: prometheus.ExponentialBuckets(0.00001, 3, 10)}),
	}
}

// count increments the counter of a qtype and rcode, resolving the label
// pair once.
func (m *metrics) count(qtype uint16, rcode int) {
	key := [2]int{int(qtype), rcode}
	c, ok := m.children.Load(key)
	if !ok {
		c, _ = m.children.LoadOrStore(key, m.queries.WithLabelValues(qtypeName(qtype), dns.RcodeToString[rcode]))
	}
	c.(prometheus.Counter).Inc()
}

func qtypeName(t uint16) string {
	if s, ok := dns.TypeToString[t]; ok {
		return s
	}
	return "other"
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.queries, m.duration}
}
