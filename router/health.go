package router

import (
	"context"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/sirupsen/logrus"
)

// healthCheck is an app's active check (routing.activeHealth in its spec):
// GET path on every upstream every interval.
type healthCheck struct {
	path     string
	interval time.Duration
	timeout  time.Duration
}

// RunHealth probes the upstreams of apps whose spec asks for active
// health checks until ctx ends. A failed probe (an error, a timeout or a
// status of 400 or more) takes the upstream out of this router's rotation
// until a probe passes; passive health goes on alongside.
func (r *Router) RunHealth(ctx context.Context) error {
	client := &http.Client{
		Transport: &http.Transport{
			DialContext:         (&net.Dialer{Timeout: r.cfg.DialTimeout}).DialContext,
			MaxIdleConnsPerHost: 1,
			IdleConnTimeout:     time.Minute,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer client.CloseIdleConnections()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		now := time.Now()
		for _, rt := range r.table.Load().apps {
			hc := rt.health
			if hc == nil {
				continue
			}
			for _, u := range rt.upstreams {
				if now.UnixNano() < u.nextProbe.Load() || !u.probing.CompareAndSwap(false, true) {
					continue
				}
				u.nextProbe.Store(now.Add(hc.interval).UnixNano())
				go r.probe(ctx, client, rt.app, u, hc)
			}
		}
	}
}

func (r *Router) probe(ctx context.Context, client *http.Client, app string, u *Upstream, hc *healthCheck) {
	defer u.probing.Store(false)
	pctx, cancel := context.WithTimeout(ctx, hc.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(pctx, http.MethodGet, "http://"+u.Addr+hc.path, nil)
	if err != nil {
		return
	}
	req.Header.Set("User-Agent", "berth-router-health")
	resp, err := client.Do(req)
	if resp != nil {
		io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		resp.Body.Close()
	}
	if ctx.Err() != nil {
		return // shutting down: no verdict
	}
	healthy := err == nil && resp.StatusCode < 400
	result := "pass"
	if !healthy {
		result = "fail"
	}
	r.metrics.healthChecks.WithLabelValues(app, result).Inc()
	if was := u.probeDown.Swap(!healthy); was == healthy {
		log := r.log.WithFields(logrus.Fields{"app": app, "upstream": u.Addr, "path": hc.path})
		if healthy {
			log.Info("upstream passes its health check again")
		} else {
			if err == nil {
				log = log.WithField("status", resp.StatusCode)
			}
			log.WithError(err).Warn("upstream failed its health check: out of rotation")
		}
	}
}
