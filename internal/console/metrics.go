package console

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the console's Prometheus metrics.
type metrics struct {
	pages    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

func newMetrics() *metrics {
	return &metrics{
		pages: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "berth_console_pages_total",
			Help: "Console pages served, by page and status."}, []string{"page", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "berth_console_render_seconds",
			Help: "Time to render a console page.", Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1}}, []string{"page"}),
	}
}

// Collectors returns the console's metrics, for registration.
func (c *Console) Collectors() []prometheus.Collector {
	return []prometheus.Collector{c.metrics.pages, c.metrics.duration}
}

func (m *metrics) count(page string, code int) {
	m.pages.WithLabelValues(page, strconv.Itoa(code)).Inc()
}
