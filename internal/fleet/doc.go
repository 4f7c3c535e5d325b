// Package fleet is berth's fleet: unit files placed across the cluster's
// machines by the rules of fleet's [X-Fleet] section, on etcd v3. This
// file set holds the pure parts: unit names and template expansion
// (names.go), a unit's placement requirements (options.go), and the
// placement decision itself (place.go), which the scheduler makes from a
// snapshot of machines, units and current placements.
//
// Placement follows fleet's documented behaviour (MachineID, MachineOf,
// MachineMetadata with fleet 1.0's comparison operators, Conflicts as
// globs in both directions, Global, Replaces), with its known defects
// fixed; docs/fleet.md lists the differences.
package fleet
