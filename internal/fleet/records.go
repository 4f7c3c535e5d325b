package fleet

import (
	"encoding/json"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/berthproject/berth/internal/registry"
)

// The decoders of fleet's records, for every reader (scheduler, executor,
// berth fleet). A record that does not decode is skipped: it is never a
// reason to stop.

// Placements decodes fleet/schedule records by unit name.
func Placements(k registry.Keys, kvs []*mvccpb.KeyValue) map[string]registry.FleetPlacement {
	out := map[string]registry.FleetPlacement{}
	for _, kv := range kvs {
		name, ok := registry.FleetName(string(kv.Key), k.FleetSchedulePrefix())
		var p registry.FleetPlacement
		if ok && json.Unmarshal(kv.Value, &p) == nil {
			out[name] = p
		}
	}
	return out
}

// Jobs decodes fleet/jobs records by unit name; bad lists the keys of
// those that do not decode.
func Jobs(kvs []*mvccpb.KeyValue) (jobs map[string]registry.FleetJob, bad []string) {
	jobs = map[string]registry.FleetJob{}
	for _, kv := range kvs {
		var j registry.FleetJob
		if err := json.Unmarshal(kv.Value, &j); err != nil || j.Unit == "" {
			bad = append(bad, string(kv.Key))
			continue
		}
		jobs[j.Unit] = j
	}
	return jobs, bad
}

// Machines decodes the nodes' records.
func Machines(k registry.Keys, kvs []*mvccpb.KeyValue) []Machine {
	var out []Machine
	for _, kv := range kvs {
		id, ok := registry.FleetName(string(kv.Key), k.NodesPrefix())
		var n registry.Node
		if ok && json.Unmarshal(kv.Value, &n) == nil {
			out = append(out, Machine{ID: id, Addr: n.Addr, Metadata: n.Metadata})
		}
	}
	return out
}

// States decodes fleet/states records (what agents report) by unit name.
func States(k registry.Keys, kvs []*mvccpb.KeyValue) map[string]registry.FleetState {
	out := map[string]registry.FleetState{}
	for _, kv := range kvs {
		name, ok := registry.FleetName(string(kv.Key), k.FleetStatesPrefix())
		var st registry.FleetState
		if ok && json.Unmarshal(kv.Value, &st) == nil {
			out[name] = st
		}
	}
	return out
}
