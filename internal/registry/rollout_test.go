package registry

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"
)

func TestServing(t *testing.T) {
	in := func(id string, gen int64) *Instance {
		return &Instance{App: "web", ID: id, Addr: "127.0.0.1:1", State: StateUp, Gen: gen}
	}
	ids := func(ins []*Instance) []string {
		var out []string
		for _, i := range ins {
			out = append(out, i.ID)
		}
		return out
	}
	old1, old2, new1 := in("1", 0), in("2", 1), in("2.1", 2)
	all := map[string]*Instance{"1": old1, "2": old2, "2.1": new1}
	for _, tc := range []struct {
		name      string
		instances map[string]*Instance
		rollout   *Rollout
		stable    []string
		canary    []string
		percent   int
	}{
		{"no rollout: every live instance", all, nil, []string{"1", "2", "2.1"}, nil, 0},
		{"rolling: both generations", all, &Rollout{To: 2, Phase: PhaseRolling}, []string{"1", "2", "2.1"}, nil, 0},
		{"blue-green starting: the old set only", all, &Rollout{To: 2, Phase: PhaseStarting}, []string{"1", "2"}, nil, 0},
		{"blue-green switched: the new set only", all, &Rollout{To: 2, Phase: PhaseSwitched}, []string{"2.1"}, nil, 0},
		{"rolling back: the old set only", all, &Rollout{To: 2, Phase: PhaseRollingBack}, []string{"1", "2"}, nil, 0},
		{"canary: a split", all, &Rollout{To: 2, Phase: PhaseCanary, Canary: 10}, []string{"1", "2"}, []string{"2.1"}, 10},
		{"canary without a live new instance: the old serve", map[string]*Instance{"1": old1}, &Rollout{To: 2, Phase: PhaseCanary, Canary: 10}, []string{"1"}, nil, 0},
		{"switched before any new is live: the old keep serving", map[string]*Instance{"1": old1}, &Rollout{To: 2, Phase: PhaseSwitched}, []string{"1"}, nil, 0},
		{"starting with no old: the new serve", map[string]*Instance{"2.1": new1}, &Rollout{To: 2, Phase: PhaseStarting}, []string{"2.1"}, nil, 0},
		{"ended rollout: every live instance", all, &Rollout{To: 2, Phase: PhaseDone}, []string{"1", "2", "2.1"}, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := emptySnapshot()
			s.Instances["web"] = tc.instances
			if tc.rollout != nil {
				s.Rollouts["web"] = tc.rollout
			}
			got := s.Serving("web")
			if !slices.Equal(ids(got.Stable), tc.stable) || !slices.Equal(ids(got.Canary), tc.canary) || got.Percent != tc.percent {
				t.Errorf("got stable %v canary %v (%d%%), want %v %v (%d%%)", ids(got.Stable), ids(got.Canary), got.Percent, tc.stable, tc.canary, tc.percent)
			}
		})
	}
}

func TestReleaseKeys(t *testing.T) {
	k, _ := NewKeys("")
	key, err := k.ReleaseKey("web", 12)
	if err != nil || key != "/berth/v1/releases/web/0000000012" {
		t.Fatalf("ReleaseKey = %q, %v", key, err)
	}
	if app, gen, ok := k.ReleaseGen(key); !ok || app != "web" || gen != 12 {
		t.Errorf("ReleaseGen(%q) = %q %d %v", key, app, gen, ok)
	}
	if _, err := k.ReleaseKey("web", 0); err == nil {
		t.Error("generation 0 accepted")
	}
	if InstanceID(1, "3") != "3" || InstanceID(4, "3") != "4.3" {
		t.Errorf("InstanceID: %q %q", InstanceID(1, "3"), InstanceID(4, "3"))
	}
	rk, _ := k.RolloutKey("web")
	if pk := k.Parse(rk); pk.Kind != KindRollout || pk.App != "web" {
		t.Errorf("Parse(%q) = %+v", rk, pk)
	}
}

// An access record with per-generation counts decodes, one without them
// (a router older than rollouts) too, and an older reader's view of the
// new record (its fields only) is what it was.
func TestAccessGens(t *testing.T) {
	for _, tc := range []struct {
		name  string
		value string
		want  *Access
	}{
		{"without gens", `{"last":1700000000000,"conns":2}`, &Access{LastMS: 1700000000000, Conns: 2}},
		{"with gens", `{"last":5,"gens":{"3":{"requests":10,"errors5xx":1},"4":{"requests":2,"errors5xx":0}}}`,
			&Access{LastMS: 5, Gens: map[int64]GenCounts{3: {Requests: 10, Errors5xx: 1}, 4: {Requests: 2}}}},
		{"unknown fields are ignored", `{"last":5,"gens":{"4":{"requests":2,"errors5xx":0,"p99":3}},"later":true}`,
			&Access{LastMS: 5, Gens: map[int64]GenCounts{4: {Requests: 2}}}},
		{"a malformed generation makes the record malformed", `{"last":5,"gens":{"x":{"requests":2}}}`, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newApplier(keys(t), emptySnapshot())
			err := a.apply("/berth/v1/access/web/r1", []byte(tc.value), false)
			got := a.s.Access["web"]["r1"]
			if tc.want == nil {
				if err == nil || got != nil {
					t.Fatalf("got %+v, %v; want a decode error and no record", got, err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, %v; want %+v", got, err, tc.want)
			}
		})
	}
	var old struct {
		LastMS int64 `json:"last"`
		Conns  int   `json:"conns,omitempty"`
	}
	b, _ := json.Marshal(Access{LastMS: 7, Conns: 1, Gens: map[int64]GenCounts{2: {Requests: 1}}})
	if err := json.Unmarshal(b, &old); err != nil || old.LastMS != 7 || old.Conns != 1 {
		t.Errorf("an older reader of %s: %+v, %v", b, old, err)
	}
}
