package fleet

import (
	"context"
	"fmt"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/registry"
)

// View is fleet's records read at one revision: jobs, placements and the
// agents' reports, by unit name (berth fleet list-units, the HTTP API).
type View struct {
	Jobs   map[string]registry.FleetJob
	Sched  map[string]registry.FleetPlacement
	States map[string]registry.FleetState
}

// ReadView reads the jobs, placements and states in one transaction.
// Records that do not decode are skipped (the scheduler warns about them).
func ReadView(ctx context.Context, kv clientv3.KV, k registry.Keys) (*View, error) {
	resp, err := kv.Txn(ctx).Then(
		clientv3.OpGet(k.FleetJobsPrefix(), clientv3.WithPrefix()),
		clientv3.OpGet(k.FleetSchedulePrefix(), clientv3.WithPrefix()),
		clientv3.OpGet(k.FleetStatesPrefix(), clientv3.WithPrefix()),
	).Commit()
	if err != nil {
		return nil, fmt.Errorf("read fleet's records: %w", err)
	}
	jobs, _ := Jobs(resp.Responses[0].GetResponseRange().Kvs)
	return &View{Jobs: jobs, Sched: Placements(k, resp.Responses[1].GetResponseRange().Kvs),
		States: States(k, resp.Responses[2].GetResponseRange().Kvs)}, nil
}

// CurrentState is fleetctl's STATE of a unit from its agent's report:
// launched (running), loaded (on its machine, not running), or inactive.
func (v *View) CurrentState(unit string) string {
	st, ok := v.States[unit]
	switch {
	case !ok:
		return registry.TargetInactive
	case st.Active == "active" || st.Active == "activating" || st.Active == "reloading":
		return registry.TargetLaunched
	case st.Load == "loaded":
		return registry.TargetLoaded
	}
	return registry.TargetInactive
}

// PlacementString is where a unit is placed: its machine, or a global
// unit's machines joined by commas; "" if unplaced.
func PlacementString(p registry.FleetPlacement) string {
	if p.Machine != "" {
		return p.Machine
	}
	return strings.Join(p.Machines, ",")
}
