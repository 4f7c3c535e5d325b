package console

import (
	"encoding/json"
	"html/template"
	"maps"
	"slices"
	"strconv"
	"time"

	"github.com/berthproject/berth/internal/api"
	"github.com/berthproject/berth/internal/registry"
)

// layout is what every page's frame shows.
type layout struct {
	Title   string
	Nav     string // the active section: apps, nodes, certificates, events
	Auth    bool   // the page needs a token the browser has not sent
	Message string
	Rev     int64 // the registry revision shown
	App     string
}

// appRow is one app in the apps table (and the head of its page).
type appRow struct {
	Name              string
	Current, Expected string
	Up, Registered    int
	Wanted            int
	Version           string
	LastAccess        time.Time // zero: never
	Conns             int
	SleepAt           time.Time // when passivation may put it to sleep (zero: not scheduled)
	IdleTimeout       time.Duration
	Deploy            *deployView

	// Precomputed for the row template (a template function call costs a
	// reflective call per row and cell).
	Tone                string // ok, asleep, busy, bad
	ShowExpected        bool   // Expected differs from Current
	LastStamp, LastMS   string // LastAccess as RFC 3339 and unix ms ("" if never)
	SleepStamp, SleepMS string // SleepAt likewise
}

// tone classifies the row's status for its badge: ok, asleep, busy, bad.
func (r appRow) tone() string {
	switch {
	case r.Current == registry.StatusFailed:
		return "bad"
	case r.Expected == registry.StatusPassivated || r.Current == registry.StatusPassivated:
		return "asleep"
	case r.Wanted > 0 && r.Up == 0:
		return "bad"
	case r.Up < r.Wanted || r.Current == registry.StatusStarting || r.Current == registry.StatusStopping:
		return "busy"
	}
	return "ok"
}

// deployView is an app's rollout and its progress.
type deployView struct {
	Phase, Strategy, Message string
	From, To                 int64
	Canary                   int
	Ready, Want              int // live instances of To, instances wanted
	Active                   bool
	Deadline                 time.Time
}

// appRowOf builds an app's row from the snapshot: one pass over its
// instances.
func appRowOf(s *registry.Snapshot, name string) appRow {
	r := appRow{Name: name, Current: "-"}
	sp := s.Apps[name]
	ro := s.Rollouts[name]
	ready := 0
	for _, in := range s.Instances[name] {
		r.Registered++
		if in.State == registry.StateUp {
			r.Up++
			if ro != nil && in.Generation() == ro.To {
				ready++
			}
		}
	}
	r.Wanted = r.Registered
	if sp != nil {
		r.Version, r.Wanted, r.IdleTimeout = sp.Version, sp.Instances, sp.IdleTimeout.D()
	}
	st := s.Status[name]
	if st != nil {
		r.Current, r.Expected = st.Current, st.Expected
		if st.Expected == registry.StatusPassivated {
			r.Wanted = 0
		}
	}
	last, conns := s.LastAccess(name)
	if last > 0 {
		r.LastAccess = time.UnixMilli(last)
	}
	r.Conns = conns
	if r.IdleTimeout > 0 && conns == 0 && st != nil && st.Expected != registry.StatusPassivated {
		since := last
		if since == 0 {
			since = st.Since
		}
		if since > 0 {
			r.SleepAt = time.UnixMilli(since).Add(r.IdleTimeout)
		}
	}
	r.Tone = r.tone()
	r.ShowExpected = r.Expected != "" && r.Expected != r.Current
	if !r.LastAccess.IsZero() {
		r.LastStamp, r.LastMS = stamp(r.LastAccess), strconv.FormatInt(r.LastAccess.UnixMilli(), 10)
	}
	if !r.SleepAt.IsZero() {
		r.SleepStamp, r.SleepMS = stamp(r.SleepAt), strconv.FormatInt(r.SleepAt.UnixMilli(), 10)
	}
	if ro != nil {
		want := r.Wanted
		r.Deploy = &deployView{Phase: ro.Phase, Strategy: ro.Strategy, Message: ro.Message, From: ro.From, To: ro.To,
			Canary: ro.Canary, Ready: ready, Want: want, Active: ro.Active()}
		if ro.Deadline > 0 && ro.Active() {
			r.Deploy.Deadline = time.UnixMilli(ro.Deadline)
		}
	}
	return r
}

// appsPage is the apps table.
type appsPage struct {
	layout
	Rows                  []appRow
	RowsHTML              template.HTML // Rows, written by appRowsHTML
	Apps, Up, Instances   int
	Nodes, Asleep, Failed int
}

func appsPageOf(s *registry.Snapshot) appsPage {
	names := s.AppNames()
	p := appsPage{layout: layout{Title: "Apps", Nav: "apps", Rev: s.Rev}, Rows: make([]appRow, 0, len(names)), Nodes: len(s.Nodes)}
	for _, n := range names {
		r := appRowOf(s, n)
		p.Rows = append(p.Rows, r)
		p.Up += r.Up
		p.Instances += r.Registered
		switch r.Tone {
		case "asleep":
			p.Asleep++
		case "bad":
			p.Failed++
		}
	}
	p.Apps = len(names)
	p.RowsHTML = appRowsHTML(p.Rows)
	return p
}

// instRow is one instance on an app's page.
type instRow struct {
	ID, State, Addr string
	Node, NodeAddr  string
	Unit, Version   string
	Gen             int64
	Marks           []Mark
	Gone            bool
}

// appPage is one app: domains → instances → node → unit.
type appPage struct {
	layout
	Row       appRow
	Domains   []string
	Instances []instRow
	Gone      []instRow
	Units     []nodeUnits
	Rate      Rate
	Since     time.Time // the console's history starts here
	Events    []eventRow
	Image     string
	Message   string // the status record's message
}

// nodeUnits is an app's units on one node, from its status record.
type nodeUnits struct {
	Node  string
	Units []string
}

// eventRow is an event as the log shows it.
type eventRow struct {
	Rev                   int64
	Type, App, Name, Time string
	Data                  string // the event's data as JSON
}

func eventRows(evs []api.Event) []eventRow {
	out := make([]eventRow, 0, len(evs))
	for i := len(evs) - 1; i >= 0; i-- { // newest first
		ev := evs[i]
		row := eventRow{Rev: ev.Rev, Type: ev.Type, App: ev.App, Name: ev.Name, Time: ev.Time}
		if ev.Data != nil {
			if b, err := json.Marshal(ev.Data); err == nil {
				row.Data = string(b)
			}
		}
		out = append(out, row)
	}
	return out
}

func (c *Console) appPageOf(s *registry.Snapshot, name string) appPage {
	p := appPage{layout: layout{Title: name, Nav: "apps", Rev: s.Rev, App: name}, Row: appRowOf(s, name),
		Rate: c.hist.Rate(name), Since: c.hist.Since()}
	for h, a := range s.Domains {
		if a == name {
			p.Domains = append(p.Domains, h)
		}
	}
	slices.Sort(p.Domains)
	ins := s.Instances[name]
	for _, id := range slices.Sorted(maps.Keys(ins)) {
		in := ins[id]
		row := instRow{ID: id, State: in.State, Addr: in.Addr, Node: in.Node, Unit: in.Unit, Version: in.Version,
			Gen: in.Generation(), Marks: c.hist.Marks(name, id)}
		if n := s.Nodes[in.Node]; n != nil {
			row.NodeAddr = n.Addr
		}
		p.Instances = append(p.Instances, row)
	}
	gone := c.hist.Gone(name, ins)
	for _, id := range slices.Sorted(maps.Keys(gone)) {
		p.Gone = append(p.Gone, instRow{ID: id, State: "gone", Marks: gone[id], Gone: true})
	}
	if st := s.Status[name]; st != nil {
		p.Message = st.Message
		for _, n := range slices.Sorted(maps.Keys(st.Units)) {
			p.Units = append(p.Units, nodeUnits{Node: n, Units: st.Units[n]})
		}
	}
	if sp := s.Apps[name]; sp != nil {
		p.Image = sp.Image
	}
	if c.cfg.Events != nil {
		p.Events = eventRows(c.cfg.Events(name, 50))
	}
	return p
}
