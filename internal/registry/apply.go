package registry

import (
	"encoding/json"
	"fmt"
	"maps"

	"github.com/berthproject/berth/internal/spec"
)

// applier applies key changes to a snapshot it owns, copying each nested
// map at most once per batch.
type applier struct {
	keys  Keys
	s     *Snapshot
	owned map[string]bool // "i/<app>" and "a/<app>" nested maps already copied
}

func newApplier(k Keys, base *Snapshot) *applier {
	return &applier{keys: k, s: base.clone(), owned: map[string]bool{}}
}

func nested[V any](a *applier, tag string, m map[string]map[string]V, app string) map[string]V {
	in := m[app]
	if !a.owned[tag+app] {
		in = maps.Clone(in)
		if in == nil {
			in = map[string]V{}
		}
		m[app] = in
		a.owned[tag+app] = true
	}
	return in
}

// apply sets (or deletes) the record at key. A value that does not decode
// or validate is an error; the key is then removed from the view, so that
// the snapshot never holds a value that etcd no longer has.
func (a *applier) apply(key string, value []byte, deleted bool) error {
	pk := a.keys.Parse(key)
	s := a.s
	var err error
	switch pk.Kind {
	case KindUnknown:
		return nil
	case KindApp:
		delete(s.Apps, pk.App)
		if !deleted {
			var app spec.App
			if err = json.Unmarshal(value, &app); err == nil {
				s.Apps[pk.App] = &app
			}
		}
	case KindDomain:
		delete(s.Domains, pk.Name)
		if !deleted {
			var d *Domain
			if d, err = decode[Domain](value); err == nil {
				if err = checkApp(d.App); err == nil {
					s.Domains[pk.Name] = d.App
				}
			}
		}
	case KindInstance:
		m := nested(a, "i/", s.Instances, pk.App)
		delete(m, pk.Name)
		if !deleted {
			var in *Instance
			if in, err = decode[Instance](value); err == nil {
				if err = in.Validate(); err == nil {
					in.App, in.ID = pk.App, pk.Name
					m[pk.Name] = in
				}
			}
		}
		if len(m) == 0 {
			delete(s.Instances, pk.App)
			delete(a.owned, "i/"+pk.App)
		}
	case KindStatus:
		delete(s.Status, pk.App)
		if !deleted {
			var st *Status
			if st, err = decode[Status](value); err == nil {
				s.Status[pk.App] = st
			}
		}
	case KindRollout:
		delete(s.Rollouts, pk.App)
		if !deleted {
			var r *Rollout
			if r, err = decode[Rollout](value); err == nil {
				r.App = pk.App
				s.Rollouts[pk.App] = r
			}
		}
	case KindAccess:
		m := nested(a, "a/", s.Access, pk.App)
		delete(m, pk.Name)
		if !deleted {
			var ac *Access
			if ac, err = decode[Access](value); err == nil {
				m[pk.Name] = ac
			}
		}
		if len(m) == 0 {
			delete(s.Access, pk.App)
			delete(a.owned, "a/"+pk.App)
		}
	case KindCert:
		delete(s.Certs, pk.Name)
		if !deleted {
			var c *Cert
			if c, err = decode[Cert](value); err == nil {
				var sc *StoredCert
				if sc, err = storedCert(pk.Name, c); err == nil {
					s.Certs[pk.Name] = sc
				}
			}
		}
	case KindNode:
		delete(s.Nodes, pk.Name)
		if !deleted {
			var n *Node
			if n, err = decode[Node](value); err == nil {
				n.ID = pk.Name
				s.Nodes[pk.Name] = n
			}
		}
	}
	if err != nil {
		return fmt.Errorf("decode %s: %w", key, err)
	}
	return nil
}
