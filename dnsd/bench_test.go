package dnsd

import (
	"fmt"
	"maps"
	"testing"

	"github.com/berthproject/berth/internal/registry"
)

func bigSnapshot(services int) *registry.Snapshot {
	s := &registry.Snapshot{Instances: map[string]map[string]*registry.Instance{}}
	for i := range services {
		app := fmt.Sprintf("svc%d", i)
		s.Instances[app] = map[string]*registry.Instance{}
		for j := range 2 {
			s.Instances[app][fmt.Sprint(j)] = &registry.Instance{App: app, ID: fmt.Sprint(j), Addr: fmt.Sprintf("10.%d.%d.%d:%d", i/250, i%250, j+1, 8000+j), Node: "n1", State: registry.StateUp, Tags: []string{"http"}}
		}
	}
	return s
}

// BenchmarkBuildView1000 rebuilds the view of 1,000 services (2,000
// instances): the work dnsd does after each registry change.
func BenchmarkBuildView1000(b *testing.B) {
	s := bigSnapshot(1000)
	cfg := Config{}
	cfg.setDefaults()
	for b.Loop() {
		buildView(s, &cfg)
	}
}

// BenchmarkUpdateOneApp changes one app of 1,000 and updates the view:
// the incremental path after a single registration.
func BenchmarkUpdateOneApp(b *testing.B) {
	s := bigSnapshot(1000)
	cfg := Config{}
	cfg.setDefaults()
	v := buildView(s, &cfg)
	i := 0
	for b.Loop() {
		s2 := *s
		s2.Instances = maps.Clone(s.Instances)
		s2.Instances["svc7"] = map[string]*registry.Instance{"0": {App: "svc7", ID: "0", Addr: fmt.Sprintf("10.0.7.%d:80", i%200+1), Node: "n1", State: registry.StateUp}}
		v = v.update(&s2, &cfg)
		i++
	}
}

// TestIncrementalEqualsFull applies random changes and checks that the
// incrementally updated view answers exactly like a view built afresh.
func TestIncrementalEqualsFull(t *testing.T) {
	cfg := Config{Reverse: true}
	cfg.setDefaults()
	s := bigSnapshot(20)
	v := buildView(s, &cfg)
	for step := range 200 {
		s2 := *s
		s2.Instances = maps.Clone(s.Instances)
		app := fmt.Sprintf("svc%d", step%25) // some new, some existing
		switch step % 3 {
		case 0:
			delete(s2.Instances, app)
		default:
			s2.Instances[app] = map[string]*registry.Instance{fmt.Sprint(step): {App: app, ID: fmt.Sprint(step),
				Addr: fmt.Sprintf("10.9.%d.%d:%d", step%7, step%200+1, 1000+step), Node: fmt.Sprintf("n%d", step%4), State: registry.StateUp, Tags: []string{"t"}}}
		}
		if step%17 == 0 {
			s2.Nodes = map[string]*registry.Node{"n1": {Addr: fmt.Sprintf("10.99.0.%d", step%250+1)}}
		}
		s = &s2
		v = v.update(s, &cfg)
		full := buildView(s, &cfg)
		srv := &Server{cfg: cfg}
		a, b := recordsOf(srv, v), recordsOf(srv, full)
		if fmt.Sprint(a) != fmt.Sprint(b) {
			t.Fatalf("step %d: incremental view differs from a full build:\n%v\n%v", step, a, b)
		}
	}
}

func recordsOf(s *Server, v *View) []string {
	var out []string
	for _, name := range v.Names() {
		n := v.names[name]
		out = append(out, fmt.Sprint(name, n.ptr, n.srvOnly, n.addrs, n.targets))
	}
	return out
}
