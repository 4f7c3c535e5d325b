package fleet

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
)

func TestParseName(t *testing.T) {
	for _, tc := range []struct {
		in                 string
		prefix, inst, typ  string
		template, instance bool
		err                string
	}{
		{in: "web.service", prefix: "web", typ: "service"},
		{in: "web@.service", prefix: "web", typ: "service", template: true},
		{in: "web@1.service", prefix: "web", inst: "1", typ: "service", instance: true},
		{in: "berth-passivate.timer", prefix: "berth-passivate", typ: "timer"},
		{in: "web", err: "want NAME.TYPE"},
		{in: "web.target", err: "not one fleet schedules"},
		{in: "we b.service", err: "not allowed"},
		{in: "@1.service", err: "PREFIX@INSTANCE"},
		{in: "a@b@c.service", err: "PREFIX@INSTANCE"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			n, err := ParseName(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, want an error containing %q", err, tc.err)
				}
				return
			}
			if err != nil || n.Prefix != tc.prefix || n.Instance != tc.inst || n.Type != tc.typ ||
				n.Template != tc.template || n.Instanced != tc.instance {
				t.Fatalf("got %+v, %v", n, err)
			}
		})
	}
	if n, _ := ParseName("web@3.service"); n.TemplateName() != "web@.service" {
		t.Fatalf("template of web@3.service: got %q", n.TemplateName())
	}
}

func TestExpand(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  bool
	}{
		{"web@1.service", []string{"web@1.service"}, false},
		{"web@{1..3}.service", []string{"web@1.service", "web@2.service", "web@3.service"}, false},
		{"web@{3..1}.service", []string{"web@3.service", "web@2.service", "web@1.service"}, false},
		{"a{1..2}b{1..2}.service", []string{"a1b1.service", "a1b2.service", "a2b1.service", "a2b2.service"}, false},
		{"web@{1..3.service", nil, true},
		{"web@{a..c}.service", nil, true},
		{"web@{1..100000}.service", nil, true},
	} {
		got, err := Expand(tc.in)
		if (err != nil) != tc.err || !tc.err && !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Expand(%q) = %v, %v; want %v (error %v)", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func req(t *testing.T, name, xfleet string) Unit {
	t.Helper()
	n, err := ParseName(name)
	if err != nil {
		t.Fatal(err)
	}
	r, err := ParseRequirements(n, []byte("[Service]\nExecStart=/bin/true\n\n[X-Fleet]\n"+xfleet))
	if err != nil {
		t.Fatal(err)
	}
	return Unit{Name: name, Req: r}
}

func TestParseRequirements(t *testing.T) {
	u := req(t, "web@2.service", "MachineOf=db@%i.service\nConflicts=%p@*.service\nMachineMetadata=\"region=eu\" \"disk=ssd\"\n"+
		"MachineMetadata=region=us\nMachineMetadata=ram>=1024\nReplaces=old@%i.service\n")
	want := Requirements{
		MachineOf: []string{"db@2.service"}, Conflicts: []string{"web@*.service"}, Replaces: []string{"old@2.service"},
		Metadata: map[string][]Condition{"region": {{"=", "eu"}, {"=", "us"}}, "disk": {{"=", "ssd"}}, "ram": {{">=", "1024"}}},
	}
	if !reflect.DeepEqual(u.Req, want) {
		t.Fatalf("got %+v\nwant %+v", u.Req, want)
	}
	n, _ := ParseName("x.service")
	for _, tc := range []struct{ xfleet, err string }{
		{"Global=true\nConflicts=x*", "Global=true takes no other"},
		{"Global=maybe", "want true or false"},
		{"MachineMetadata=ram>=lots", "compares integers"},
		{"MachineMetadata=region", "want key=value"},
		{"Machine=a", "not an option fleet knows"},
		{"MachineOf=a.service\nReplaces=a.service", "both name a.service"},
	} {
		_, err := ParseRequirements(n, []byte("[X-Fleet]\n"+tc.xfleet+"\n"))
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%q: got %v, want an error containing %q", tc.xfleet, err, tc.err)
		}
	}
}

func TestMatchesMetadata(t *testing.T) {
	u := req(t, "x.service", "MachineMetadata=region=eu\nMachineMetadata=region=us\nMachineMetadata=ram>=1024 ram<8192\nMachineMetadata=az!=c\n")
	for _, tc := range []struct {
		md   map[string]string
		want bool
	}{
		{map[string]string{"region": "eu", "ram": "2048", "az": "a"}, true},
		{map[string]string{"region": "us", "ram": "1024", "az": "b"}, true},
		{map[string]string{"region": "ap", "ram": "2048", "az": "a"}, false}, // no plain value matches
		{map[string]string{"region": "eu", "ram": "512", "az": "a"}, false},  // a comparison fails
		{map[string]string{"region": "eu", "ram": "8192", "az": "a"}, false}, // ram<8192
		{map[string]string{"region": "eu", "ram": "big", "az": "a"}, false},  // not a number
		{map[string]string{"region": "eu", "ram": "2048", "az": "c"}, false}, // az!=c
		{map[string]string{"region": "eu", "ram": "2048"}, false},            // a key missing
		{map[string]string{"region": "eu", "ram": "2048", "az": "a", "x": "y"}, true},
	} {
		if got := u.Req.MatchesMetadata(tc.md); got != tc.want {
			t.Errorf("metadata %v: got %v, want %v", tc.md, got, tc.want)
		}
	}
}

func machines(ids ...string) []Machine {
	var ms []Machine
	for _, id := range ids {
		ms = append(ms, Machine{ID: id, Metadata: map[string]string{}})
	}
	return ms
}

func instances(t *testing.T, n int, xfleet string) []Unit {
	var us []Unit
	for i := 1; i <= n; i++ {
		us = append(us, req(t, fmt.Sprintf("web@%d.service", i), xfleet))
	}
	return us
}

// perMachine counts units per machine in a plan.
func perMachine(p Plan) map[string]int {
	c := map[string]int{}
	for _, m := range p.Assign {
		c[m]++
	}
	return c
}

func TestPlaceSpreadsAndConflicts(t *testing.T) {
	ms := machines("m1", "m2", "m3")
	// Without conflicts: 6 units, 2 per machine.
	p := Place(ms, instances(t, 6, ""), nil)
	if want := map[string]int{"m1": 2, "m2": 2, "m3": 2}; !maps.Equal(perMachine(p), want) {
		t.Fatalf("6 units on 3 machines: %v, want %v", perMachine(p), want)
	}
	// Conflicts=web@*: one per machine, the 4th and 5th unplaced, with a reason.
	p = Place(ms, instances(t, 5, "Conflicts=web@*.service"), nil)
	if len(p.Assign) != 3 || len(p.Unplaced) != 2 || !strings.Contains(p.Unplaced["web@5.service"], "conflicts") {
		t.Fatalf("5 conflicting units on 3 machines: assigned %v, unplaced %v", p.Assign, p.Unplaced)
	}
	// Another unit's Conflicts applies to a unit without any.
	us := []Unit{req(t, "a.service", "Conflicts=b.service"), req(t, "b.service", "")}
	p = Place(machines("m1"), us, nil)
	if len(p.Assign) != 1 || len(p.Unplaced) != 1 {
		t.Fatalf("a conflicts with b on one machine: %v %v", p.Assign, p.Unplaced)
	}
}

func TestPlaceKeepsPlacementsAndReschedules(t *testing.T) {
	us := instances(t, 3, "Conflicts=web@*.service")
	p := Place(machines("m1", "m2", "m3"), us, nil)
	// m2 is lost: its unit moves to the spare machine m4, the others stay.
	lost := p.Assign["web@2.service"]
	var alive []Machine
	for _, m := range machines("m1", "m2", "m3", "m4") {
		if m.ID != lost {
			alive = append(alive, m)
		}
	}
	q := Place(alive, us, p.Assign)
	for u, m := range p.Assign {
		if m != lost && q.Assign[u] != m {
			t.Errorf("%s moved from %s to %s although its machine is alive", u, m, q.Assign[u])
		}
	}
	if q.Assign["web@2.service"] != "m4" {
		t.Fatalf("the lost unit went to %q, want the spare m4", q.Assign["web@2.service"])
	}
	// The machine comes back: nothing moves back to it.
	r := Place(machines("m1", "m2", "m3", "m4"), us, q.Assign)
	if !maps.Equal(r.Assign, q.Assign) {
		t.Fatalf("a returning machine changed the plan: %v, want %v", r.Assign, q.Assign)
	}
}

func TestPlaceMachineIDMetadataMachineOf(t *testing.T) {
	ms := []Machine{
		{ID: "m1", Metadata: map[string]string{"role": "worker", "az": "a"}},
		{ID: "m2", Metadata: map[string]string{"role": "worker", "az": "b"}},
		{ID: "m3", Metadata: map[string]string{"role": "server", "az": "a"}},
	}
	us := []Unit{
		req(t, "pinned.service", "MachineID=m2"),
		req(t, "worker-a.service", "MachineMetadata=role=worker az=a"),
		req(t, "either.service", "MachineMetadata=role=server\nMachineMetadata=role=none"),
		req(t, "sidecar.service", "MachineOf=pinned.service"),
		req(t, "chain.service", "MachineOf=sidecar.service"),
		req(t, "orphan.service", "MachineOf=missing.service"),
		req(t, "nowhere.service", "MachineMetadata=role=db"),
		req(t, "gone.service", "MachineID=m9"),
		req(t, "agent.service", "Global=true\nMachineMetadata=role=worker"),
	}
	p := Place(ms, us, nil)
	want := map[string]string{"pinned.service": "m2", "worker-a.service": "m1", "either.service": "m3",
		"sidecar.service": "m2", "chain.service": "m2"}
	if !maps.Equal(p.Assign, want) {
		t.Errorf("assign: got %v, want %v", p.Assign, want)
	}
	if g := p.Global["agent.service"]; !reflect.DeepEqual(g, []string{"m1", "m2"}) {
		t.Errorf("global unit on %v, want the workers m1 m2", g)
	}
	for u, reason := range map[string]string{"orphan.service": "no such unit", "nowhere.service": "MachineMetadata",
		"gone.service": "no such machine"} {
		if !strings.Contains(p.Unplaced[u], reason) {
			t.Errorf("%s: unplaced because %q, want %q", u, p.Unplaced[u], reason)
		}
	}
}

func TestPlaceReplaces(t *testing.T) {
	old := req(t, "old.service", "")
	p := Place(machines("m1", "m2"), []Unit{old}, nil)
	oldOn := p.Assign["old.service"]
	// The replacing unit takes old's machine; old moves to the other one.
	next := req(t, "new.service", "Replaces=old.service")
	q := Place(machines("m1", "m2"), []Unit{old, next}, p.Assign)
	if q.Assign["new.service"] != oldOn || q.Assign["old.service"] == oldOn || q.Assign["old.service"] == "" {
		t.Fatalf("new.service on %q, old.service on %q; want new on %q and old moved", q.Assign["new.service"],
			q.Assign["old.service"], oldOn)
	}
	// With one machine, old has nowhere to go: it is unplaced, with a reason.
	r := Place(machines(oldOn), []Unit{old, next}, p.Assign)
	if r.Assign["new.service"] != oldOn || r.Unplaced["old.service"] == "" {
		t.Fatalf("one machine: %v, unplaced %v", r.Assign, r.Unplaced)
	}
}

// TestPlaceFollowerOfReplaced: a unit that runs next to a replaced unit
// moves with it.
func TestPlaceFollowerOfReplaced(t *testing.T) {
	old, side := req(t, "old.service", ""), req(t, "side.service", "MachineOf=old.service")
	p := Place(machines("m1", "m2"), []Unit{old, side}, nil)
	next := req(t, "new.service", "Replaces=old.service")
	q := Place(machines("m1", "m2"), []Unit{old, side, next}, p.Assign)
	if q.Assign["new.service"] != p.Assign["old.service"] || q.Assign["side.service"] != q.Assign["old.service"] ||
		q.Assign["old.service"] == p.Assign["old.service"] {
		t.Fatalf("before %v, after %v: want new on old's machine, old and side together on the other", p.Assign, q.Assign)
	}
}

// TestPlaceMutualReplaces: two units that replace each other end, one
// placed and one not (or both on different machines): no endless trade.
func TestPlaceMutualReplaces(t *testing.T) {
	us := []Unit{req(t, "a.service", "Replaces=b.service"), req(t, "b.service", "Replaces=a.service")}
	p := Place(machines("m1"), us, map[string]string{"b.service": "m1"})
	if len(p.Assign)+len(p.Unplaced) != 2 || len(p.Assign) != 1 {
		t.Fatalf("got %v, unplaced %v", p.Assign, p.Unplaced)
	}
}

func TestPlaceNoMachines(t *testing.T) {
	p := Place(nil, instances(t, 1, ""), nil)
	if p.Unplaced["web@1.service"] != "no machine alive" {
		t.Fatalf("got %v", p.Unplaced)
	}
}

// FuzzPlace: whatever the units and machines, a plan never puts two
// conflicting units together, never puts a unit where its requirements
// fail, and accounts for every non-global unit exactly once.
func FuzzPlace(f *testing.F) {
	f.Add(uint8(3), uint8(5), []byte{1, 2, 3, 4, 5, 6})
	f.Add(uint8(1), uint8(9), []byte{0, 0, 7, 7, 9})
	f.Fuzz(func(t *testing.T, nm, nu uint8, choices []byte) {
		nm, nu = nm%6, nu%12
		var ms []Machine
		for i := range int(nm) {
			ms = append(ms, Machine{ID: fmt.Sprintf("m%d", i), Metadata: map[string]string{"z": fmt.Sprint(i % 2)}})
		}
		pick := func(i int) byte {
			if len(choices) == 0 {
				return 0
			}
			return choices[i%len(choices)]
		}
		var us []Unit
		for i := range int(nu) {
			c := pick(i)
			var x []string
			if c&1 != 0 {
				x = append(x, "Conflicts=u*")
			}
			if c&2 != 0 {
				x = append(x, fmt.Sprintf("MachineMetadata=z=%d", c>>7))
			}
			if c&4 != 0 && i > 0 {
				x = append(x, fmt.Sprintf("MachineOf=u%d.service", int(c>>3)%i))
			}
			if c&8 != 0 && i > 0 {
				x = append(x, fmt.Sprintf("Replaces=u%d.service", int(c>>4)%i))
			}
			n, _ := ParseName(fmt.Sprintf("u%d.service", i))
			r, err := ParseRequirements(n, []byte("[X-Fleet]\n"+strings.Join(x, "\n")+"\n"))
			if err != nil {
				return // a contradiction the parser refuses
			}
			us = append(us, Unit{Name: n.Full, Req: r})
		}
		p := Place(ms, us, nil)
		byName := map[string]Unit{}
		for _, u := range us {
			byName[u.Name] = u
			_, a := p.Assign[u.Name]
			_, un := p.Unplaced[u.Name]
			if a == un {
				t.Fatalf("%s: assigned %v, unplaced %v: want exactly one", u.Name, a, un)
			}
		}
		md := map[string]map[string]string{}
		for _, m := range ms {
			md[m.ID] = m.Metadata
		}
		for u, m := range p.Assign {
			r := byName[u].Req
			if !r.MatchesMetadata(md[m]) {
				t.Fatalf("%s on %s against its metadata", u, m)
			}
			for _, t2 := range r.MachineOf {
				if p.Assign[t2] != m {
					t.Fatalf("%s on %s, its MachineOf %s on %q", u, m, t2, p.Assign[t2])
				}
			}
			for v, m2 := range p.Assign {
				if v != u && m2 == m && (matchAny(r.Conflicts, v) || slices.Contains(r.Replaces, v)) {
					t.Fatalf("%s and %s together on %s", u, v, m)
				}
			}
		}
	})
}

func TestNaturalCompare(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int
	}{
		{"web@2.service", "web@10.service", -1}, {"web@10.service", "web@9.service", 1}, {"a", "a", 0},
		{"web@02.service", "web@2.service", 0}, {"a1", "b0", -1}, {"web@.service", "web@1.service", -1},
	} {
		if got := naturalCompare(tc.a, tc.b); got != tc.want {
			t.Errorf("naturalCompare(%q, %q) = %d, want %d", tc.a, tc.b, got, tc.want)
		}
	}
}
