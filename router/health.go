package router

import (
	"context"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/berthproject/berth/internal/hook"
)

// healthCheck is an app's active check (routing.activeHealth in its spec):
// GET path on every upstream every interval.
type healthCheck struct {
	path     string
	interval time.Duration
	timeout  time.Duration
}

// RunHealth probes the upstreams of apps whose spec asks for active
// health checks until ctx ends, with the same check the agents and hooks
// run (hook.Check): an error, a timeout or a status of 400 or more takes
// the upstream out of this router's rotation until a probe passes;
// passive health goes on alongside.
func (r *Router) RunHealth(ctx context.Context) error {
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
				go r.probe(ctx, rt.app, u, hc)
			}
		}
	}
}

func (r *Router) probe(ctx context.Context, app string, u *Upstream, hc *healthCheck) {
	defer u.probing.Store(false)
	err := hook.Check("http:"+hc.path).Probe(ctx, u.Addr, hc.timeout)
	if ctx.Err() != nil {
		return // shutting down: no verdict
	}
	healthy := err == nil
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
			log.WithError(err).Warn("upstream failed its health check: out of rotation")
		}
	}
}
