package registry

import (
	"fmt"
	"net/url"
	"strings"
)

// Keys of berth's fleet (internal/fleet), under Prefix()+"fleet/":
//
//	fleet/units/<sha1>     a unit file's content, by the SHA-1 of its bytes (as fleet)
//	fleet/jobs/<unit>      FleetJob: the unit's desired state, from fleetctl's verbs
//	fleet/schedule/<unit>  FleetPlacement: where the scheduler put it, or why not
//	fleet/states/<unit>    FleetState: what the machine's agent reports, on its lease
//	fleet/leader/          the scheduler election (concurrency.Election)
func (k Keys) fleetPrefix() string { return k.Prefix() + "fleet/" }

// FleetUnitsPrefix, FleetJobsPrefix, FleetSchedulePrefix and
// FleetStatesPrefix are the prefixes to list or watch.
func (k Keys) FleetUnitsPrefix() string    { return k.fleetPrefix() + "units/" }
func (k Keys) FleetJobsPrefix() string     { return k.fleetPrefix() + "jobs/" }
func (k Keys) FleetSchedulePrefix() string { return k.fleetPrefix() + "schedule/" }
func (k Keys) FleetStatesPrefix() string   { return k.fleetPrefix() + "states/" }

// FleetLeader is the prefix of the scheduler election.
func (k Keys) FleetLeader() string { return k.fleetPrefix() + "leader/" }

// StatusPrefix is the prefix of the apps' status records.
func (k Keys) StatusPrefix() string { return k.statusPrefix() }

// NodesPrefix is the prefix of the nodes' records.
func (k Keys) NodesPrefix() string { return k.nodesPrefix() }

// FleetUnit is the key of a unit file's content by its hash (40 hex
// digits).
func (k Keys) FleetUnit(hash string) (string, error) {
	if len(hash) != 40 || strings.Trim(hash, "0123456789abcdef") != "" {
		return "", fmt.Errorf("%w: unit hash %q", ErrBadName, hash)
	}
	return k.FleetUnitsPrefix() + hash, nil
}

// FleetJob, FleetSchedule and FleetState are the keys of a unit's job,
// placement and reported state; unit is a unit name (checked by the
// caller: internal/fleet.ParseName).
func (k Keys) FleetJob(unit string) string { return k.FleetJobsPrefix() + url.PathEscape(unit) }
func (k Keys) FleetSchedule(unit string) string {
	return k.FleetSchedulePrefix() + url.PathEscape(unit)
}
func (k Keys) FleetState(unit string) string { return k.FleetStatesPrefix() + url.PathEscape(unit) }

// FleetName is the unit name at the end of a fleet key under prefix.
func FleetName(key, prefix string) (string, bool) {
	rest, ok := strings.CutPrefix(key, prefix)
	if !ok || rest == "" || strings.Contains(rest, "/") {
		return "", false
	}
	name, err := url.PathUnescape(rest)
	return name, err == nil
}

// Targets of a fleet job, fleetctl's words.
const (
	TargetInactive = "inactive" // submitted
	TargetLoaded   = "loaded"   // placed, the unit file written on its machine
	TargetLaunched = "launched" // placed and started
)

// FleetJob is fleet/jobs/<unit>: a unit's desired state.
type FleetJob struct {
	Unit   string `json:"unit"`
	Hash   string `json:"hash"`   // of the unit file (a template's, for an instance)
	Target string `json:"target"` // inactive, loaded or launched
}

// FleetPlacement is fleet/schedule/<unit>, written by the scheduler:
// the machine, or for a unit it cannot place, why (Machine empty). A
// global unit lists its machines.
type FleetPlacement struct {
	Machine  string   `json:"machine,omitempty"`
	Machines []string `json:"machines,omitempty"` // Global=true
	Reason   string   `json:"reason,omitempty"`
}

// FleetState is fleet/states/<unit>, written by agents on their lease:
// systemd's view of the unit on a machine.
type FleetState struct {
	Machine string `json:"machine"`
	Hash    string `json:"hash"`
	Load    string `json:"load"`   // LoadState: loaded, not-found...
	Active  string `json:"active"` // ActiveState: active, inactive, failed...
	Sub     string `json:"sub"`    // SubState: running, dead...
}
