package router

import (
	"context"
	"encoding/json"
	"maps"
	"time"

	"github.com/berthproject/berth/internal/registry"
)

// AccessWriter is where access records go: a lease owner, so that a dead
// router's records expire.
type AccessWriter interface {
	Put(ctx context.Context, key, value string) error
}

// RunAccess writes each app's last access and open connections to etcd
// (on the router's lease), at most once per Config.AccessInterval per app
// and only when they changed, until ctx ends. Passivation reads them.
// While a rollout of the app runs, the record also counts the responses
// of each generation (Access.Gens), which the deployer reads.
func (r *Router) RunAccess(ctx context.Context, keys registry.Keys, w AccessWriter) error {
	written := map[string]registry.Access{}
	tick := time.NewTicker(r.cfg.AccessInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		t := r.table.Load()
		for app, rt := range t.apps {
			cur := rt.access()
			if prev := written[app]; cur.LastMS == 0 || cur.LastMS == prev.LastMS && cur.Conns == prev.Conns && maps.Equal(cur.Gens, prev.Gens) {
				continue
			}
			key, err := keys.Access(app, r.cfg.ID)
			if err != nil {
				continue
			}
			val, _ := json.Marshal(cur)
			wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err = w.Put(wctx, key, string(val))
			cancel()
			if err != nil {
				r.log.WithError(err).WithField("app", app).Warn("write access record")
				continue
			}
			written[app] = cur
		}
	}
}

// access is the route's access record now.
func (rt *route) access() registry.Access {
	a := registry.Access{LastMS: rt.stats.lastAccess.Load(), Conns: int(rt.stats.active.Load())}
	if rt.rollout && len(rt.gens) > 0 {
		a.Gens = make(map[int64]registry.GenCounts, len(rt.gens))
		for _, g := range rt.gens {
			a.Gens[g.gen] = g.counts()
		}
	}
	return a
}
