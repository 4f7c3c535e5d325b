package api

import (
	"maps"
	"net/http"
	"slices"

	"github.com/berthproject/berth/internal/fleet"
	"github.com/berthproject/berth/internal/registry"
)

// Unit is one unit of the berth fleet store (berth fleet list-unit-files
// and list-units in one row).
type Unit struct {
	Unit    string `json:"unit"`
	Hash    string `json:"hash"`
	Desired string `json:"desired"`           // the job's target: inactive, loaded or launched
	State   string `json:"state"`             // from the agent's report: inactive, loaded or launched
	Machine string `json:"machine,omitempty"` // where it is placed
	Active  string `json:"active,omitempty"`  // systemd's ActiveState there
	Sub     string `json:"sub,omitempty"`
	Reason  string `json:"reason,omitempty"` // why it is not placed
}

func (s *Server) listUnits(w http.ResponseWriter, r *http.Request) error {
	ctx, cancel := s.etcdCtx(r)
	defer cancel()
	v, err := fleet.ReadView(ctx, s.kv, s.cfg.Keys)
	if err != nil {
		return err
	}
	out := []Unit{}
	for _, name := range slices.Sorted(maps.Keys(v.Jobs)) {
		j, p, st := v.Jobs[name], v.Sched[name], v.States[name]
		out = append(out, Unit{Unit: name, Hash: j.Hash, Desired: j.Target, State: v.CurrentState(name),
			Machine: fleet.PlacementString(p), Active: st.Active, Sub: st.Sub, Reason: p.Reason})
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (s *Server) startUnit(w http.ResponseWriter, r *http.Request) error {
	return s.setTarget(w, r, registry.TargetLaunched)
}

func (s *Server) stopUnit(w http.ResponseWriter, r *http.Request) error {
	return s.setTarget(w, r, registry.TargetLoaded)
}

// setTarget is berth fleet start / stop of one unit.
func (s *Server) setTarget(w http.ResponseWriter, r *http.Request, target string) error {
	name := r.PathValue("unit")
	n, err := fleet.ParseName(name)
	if err != nil {
		return badField("unit", err.Error())
	}
	if n.Template {
		return badField("unit", name+" is a template: start or stop an instance of it, e.g. "+n.Prefix+"@1."+n.Type)
	}
	ctx, cancel := s.etcdCtx(r)
	defer cancel()
	st := &fleet.Store{KV: s.writer(r), Keys: s.cfg.Keys}
	if err := st.SetTarget(ctx, name, target); err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"unit": name, "desired": target})
	return nil
}
