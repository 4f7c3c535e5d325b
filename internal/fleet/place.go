package fleet

import (
	"cmp"
	"fmt"
	"maps"
	"path"
	"slices"
	"strings"
)

// Machine is a machine that can run units: an agent's node record.
type Machine struct {
	ID       string
	Addr     string // advertised address (for people; placement ignores it)
	Metadata map[string]string
}

// Unit is a unit to place: its name and requirements.
type Unit struct {
	Name string
	Req  Requirements
}

// Plan is where units go: Assign maps a unit to its machine, Global a
// global unit to every machine it runs on, Unplaced a unit that cannot be
// placed to why (never dropped in silence).
type Plan struct {
	Assign   map[string]string
	Global   map[string][]string
	Unplaced map[string]string
}

// Place decides where units run, given the live machines and where units
// run now (current: unit → machine). A unit stays where it is while its
// machine is alive and its requirements hold there: a machine that comes
// back gets nothing back unless a requirement asks for it. Units that
// need a machine go to the eligible machine with the fewest units (ties:
// the smaller ID), those that had a machine first, then in natural name
// order (web@2 before web@10); followers (MachineOf) after their
// targets; a unit whose Replaces names a placed unit takes that unit's
// machine if it is eligible, and the replaced unit moves.
func Place(machines []Machine, units []Unit, current map[string]string) Plan {
	p := &placer{
		plan:     Plan{Assign: map[string]string{}, Global: map[string][]string{}, Unplaced: map[string]string{}},
		machines: map[string]Machine{},
		on:       map[string][]string{},
		units:    map[string]Unit{},
	}
	for _, m := range machines {
		p.machines[m.ID] = m
		p.on[m.ID] = nil
	}
	var todo []Unit
	for _, u := range sortedUnits(units) {
		p.units[u.Name] = u
		if u.Req.Global {
			for _, m := range sortedMachines(machines) {
				if u.Req.MatchesMetadata(m.Metadata) {
					p.plan.Global[u.Name] = append(p.plan.Global[u.Name], m.ID)
				}
			}
			if len(p.plan.Global[u.Name]) == 0 {
				p.plan.Unplaced[u.Name] = "no machine matches its MachineMetadata"
			}
			continue
		}
		todo = append(todo, u)
	}
	// Keep what still holds, in name order (a conflict between two kept
	// units moves the later one).
	var moving []Unit
	for _, u := range todo {
		if m, ok := current[u.Name]; ok && p.machines[m].ID != "" && p.fits(u, m, false) {
			p.assign(u.Name, m)
			continue
		}
		moving = append(moving, u)
	}
	// Units that had a machine (lost, or no longer fit) go first, then the
	// rest, each in natural name order (web@2 before web@10).
	slices.SortStableFunc(moving, func(a, b Unit) int {
		_, pa := current[a.Name]
		_, pb := current[b.Name]
		if pa != pb {
			if pa {
				return -1
			}
			return 1
		}
		return naturalCompare(a.Name, b.Name)
	})
	// Place the rest; a follower waits for its targets, a replaced unit
	// comes back to the queue, and so does a follower whose target moved.
	// Bounded: units that replace each other could trade places for ever.
	for rounds := 0; len(moving) > 0 && rounds <= 2*len(todo); rounds++ {
		progress := false
		var later []Unit
		for _, u := range moving {
			if !p.targetsPlaced(u) {
				later = append(later, u)
				continue
			}
			evicted, ok := p.place(u)
			if !ok {
				later = append(later, u)
				continue
			}
			progress = true
			later = append(later, evicted...)
		}
		later = append(later, p.strandedFollowers()...)
		moving = later
		if !progress {
			break
		}
	}
	// What could not be placed may have left followers without a target.
	for stranded := p.strandedFollowers(); len(stranded) > 0; stranded = p.strandedFollowers() {
		moving = append(moving, stranded...)
	}
	for _, u := range moving {
		if _, ok := p.plan.Unplaced[u.Name]; !ok {
			p.plan.Unplaced[u.Name] = p.why(u)
		}
	}
	return p.plan
}

type placer struct {
	plan     Plan
	machines map[string]Machine
	on       map[string][]string // machine → units assigned to it
	units    map[string]Unit
}

func (p *placer) assign(unit, machine string) {
	p.plan.Assign[unit] = machine
	p.on[machine] = append(p.on[machine], unit)
	delete(p.plan.Unplaced, unit)
}

func (p *placer) unassign(unit string) {
	m := p.plan.Assign[unit]
	delete(p.plan.Assign, unit)
	p.on[m] = slices.DeleteFunc(p.on[m], func(s string) bool { return s == unit })
}

// strandedFollowers unassigns and returns the units whose MachineOf
// targets are no longer placed on their machine.
func (p *placer) strandedFollowers() []Unit {
	var out []Unit
	for _, name := range sortedKeys(p.plan.Assign) {
		u := p.units[name]
		for _, t := range u.Req.MachineOf {
			if p.plan.Assign[t] != p.plan.Assign[name] {
				p.unassign(name)
				out = append(out, u)
				break
			}
		}
	}
	return out
}

func sortedKeys(m map[string]string) []string {
	keys := slices.Collect(maps.Keys(m))
	slices.Sort(keys)
	return keys
}

// targetsPlaced reports whether the units u must run next to are placed
// (a target that does not exist never will be: Place reports it).
func (p *placer) targetsPlaced(u Unit) bool {
	for _, t := range u.Req.MachineOf {
		if _, ok := p.plan.Assign[t]; !ok {
			return false
		}
	}
	return true
}

// place puts u on the best eligible machine and returns the units it
// replaced there, which must move.
func (p *placer) place(u Unit) (evicted []Unit, ok bool) {
	// A placed unit it replaces: its machine first.
	for _, r := range u.Req.Replaces {
		m, placed := p.plan.Assign[r]
		if !placed || !p.fits(u, m, true) {
			continue
		}
		for _, other := range slices.Clone(p.on[m]) {
			if other == r || p.replaces(u, other) {
				p.unassign(other)
				evicted = append(evicted, p.units[other])
			}
		}
		p.assign(u.Name, m)
		return evicted, true
	}
	ids := make([]string, 0, len(p.machines))
	for id := range p.machines {
		if p.fits(u, id, false) {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil, false
	}
	best := slices.MinFunc(ids, func(a, b string) int {
		return cmp.Or(cmp.Compare(len(p.on[a]), len(p.on[b])), cmp.Compare(a, b))
	})
	p.assign(u.Name, best)
	return nil, true
}

// fits reports whether u may run on machine m given what is there; with
// replacing, units u replaces do not count as conflicts (they move).
func (p *placer) fits(u Unit, m string, replacing bool) bool {
	mach := p.machines[m]
	r := u.Req
	if r.MachineID != "" && r.MachineID != m || !r.MatchesMetadata(mach.Metadata) {
		return false
	}
	for _, t := range r.MachineOf {
		if tm, ok := p.plan.Assign[t]; !ok || tm != m {
			return false
		}
	}
	for _, other := range p.on[m] {
		if other == u.Name || replacing && p.replaces(u, other) {
			continue
		}
		if p.conflict(u, other) {
			return false
		}
	}
	return true
}

// conflict reports whether u and the unit named other may not share a
// machine: either one's Conflicts matches the other's name, or one
// replaces the other.
func (p *placer) conflict(u Unit, other string) bool {
	o := p.units[other]
	return matchAny(u.Req.Conflicts, other) || matchAny(o.Req.Conflicts, u.Name) ||
		slices.Contains(u.Req.Replaces, other) || slices.Contains(o.Req.Replaces, u.Name)
}

func (p *placer) replaces(u Unit, other string) bool { return slices.Contains(u.Req.Replaces, other) }

// why says why u has no machine.
func (p *placer) why(u Unit) string {
	r := u.Req
	if len(p.machines) == 0 {
		return "no machine alive"
	}
	for _, t := range r.MachineOf {
		if _, ok := p.units[t]; !ok {
			return fmt.Sprintf("MachineOf=%s: no such unit", t)
		}
		if _, ok := p.plan.Assign[t]; !ok {
			return fmt.Sprintf("MachineOf=%s: that unit is not placed", t)
		}
	}
	if _, ok := p.machines[r.MachineID]; r.MachineID != "" && !ok {
		return fmt.Sprintf("MachineID=%s: no such machine alive", r.MachineID)
	}
	for id, m := range p.machines {
		if (r.MachineID == "" || r.MachineID == id) && r.MatchesMetadata(m.Metadata) {
			return "every eligible machine runs a unit it conflicts with"
		}
	}
	return "no machine matches its MachineMetadata"
}

func matchAny(globs []string, name string) bool {
	for _, g := range globs {
		if ok, _ := path.Match(g, name); ok {
			return true
		}
	}
	return false
}

// naturalCompare orders names with their digit runs compared as
// numbers: "web@2.service" before "web@10.service".
func naturalCompare(a, b string) int {
	for a != "" && b != "" {
		da, db := digits(a), digits(b)
		if da > 0 && db > 0 {
			na, nb := strings.TrimLeft(a[:da], "0"), strings.TrimLeft(b[:db], "0")
			if c := cmp.Or(cmp.Compare(len(na), len(nb)), cmp.Compare(na, nb)); c != 0 {
				return c
			}
			a, b = a[da:], b[db:]
			continue
		}
		if a[0] != b[0] {
			return cmp.Compare(a[0], b[0])
		}
		a, b = a[1:], b[1:]
	}
	return cmp.Compare(len(a), len(b))
}

func digits(s string) int {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	return i
}

func sortedUnits(us []Unit) []Unit {
	us = slices.Clone(us)
	slices.SortFunc(us, func(a, b Unit) int { return cmp.Compare(a.Name, b.Name) })
	return us
}

func sortedMachines(ms []Machine) []Machine {
	ms = slices.Clone(ms)
	slices.SortFunc(ms, func(a, b Machine) int { return cmp.Compare(a.ID, b.ID) })
	return ms
}
