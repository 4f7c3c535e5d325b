package hook

import (
	"context"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"testing"

	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/spec"
	"github.com/berthproject/berth/units"
)

// TestNamedPortArgRoundTrip: what the unit generator writes for a port
// after the first is what post-start reads back.
func TestNamedPortArgRoundTrip(t *testing.T) {
	apps, err := spec.ParseFile("../../examples/multi-port.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ports := append(apps[0].Ports, spec.Port{Container: 53, Protocol: "udp", Name: "dns", Host: 5353, Tags: []string{"a", "b.c"}})
	for _, p := range ports[1:] {
		got, err := ParsePort(units.NamedPortArg(p))
		if err != nil {
			t.Fatal(err)
		}
		want := Port{Name: p.Name, Container: strconv.Itoa(p.Container) + "/" + p.Protocol, HostPort: p.Host, Tags: p.Tags}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s: got %+v, want %+v", units.NamedPortArg(p), got, want)
		}
	}
	for _, bad := range []string{"", "name=m", "port=9090/tcp", "name=m,port=9090", "name=m,port=0/tcp", "name=m,port=1/sctp",
		"name=m,port=1/tcp,host=x", "name=m,port=1/tcp,tags=a", "name=m,port=1/tcp,"} {
		if p, err := ParsePort(bad); err == nil {
			t.Errorf("ParsePort(%q) = %+v, want an error", bad, p)
		}
	}
}

// TestRecordListsEveryPort: an exec instance's further ports are read from
// the environment file the pre-start hook wrote, under PORT_<NAME>, and
// the record lists them all, the first port first.
func TestRecordListsEveryPort(t *testing.T) {
	envFile := filepath.Join(t.TempDir(), "1.env")
	if err := os.WriteFile(envFile, []byte("PORT=4001\nPORT_WEB=4001\nPORT_METRICS=4002\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	in := &Instance{App: "web", ID: "1", Runtime: "exec", EnvFile: envFile, IP: "127.0.0.1", Port: "8080/tcp", PortName: "web",
		Tags: []string{"http"}, Ports: []Port{{Name: "metrics", Container: "9100/tcp", Tags: []string{"prometheus"}}, {Name: "stats", Container: "8125/udp", HostPort: 8125}}}
	h := &Hooks{}
	addr, err := h.Address(context.Background(), in)
	if err != nil || addr != "127.0.0.1:4001" {
		t.Fatalf("address %q %v", addr, err)
	}
	others, err := h.OtherPorts(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	rec := in.Record(addr, others)
	want := []registry.NamedPort{{Name: "web", Addr: "127.0.0.1:4001", Proto: "tcp", Tags: []string{"http"}},
		{Name: "metrics", Addr: "127.0.0.1:4002", Proto: "tcp", Tags: []string{"prometheus"}},
		{Name: "stats", Addr: "127.0.0.1:8125", Proto: "udp"}}
	if got := rec.PortList(); !reflect.DeepEqual(got, want) || rec.Addr != addr || rec.Port != "web" {
		t.Errorf("record %+v ports %+v, want %+v", rec, got, want)
	}
	// A unit of an older berth (no port names): the record is as before.
	old := &Instance{App: "web", ID: "1", Runtime: "exec", EnvFile: envFile, IP: "127.0.0.1", Tags: []string{"http"}}
	if rec := old.Record(addr, nil); rec.Port != "" || rec.Ports != nil {
		t.Errorf("record of an older unit: %+v, want no port names", rec)
	}
	in.Ports = append(in.Ports, Port{Name: "gone", Container: "1/tcp"})
	if _, err := h.OtherPorts(context.Background(), in); err == nil {
		t.Error("a port missing from the environment file was not reported")
	}
}

// TestRecordOfALaterGeneration: the record of instance "3.2" (instance 2
// of release 3) carries its generation and its unit "<app>.3@2.service".
func TestRecordOfALaterGeneration(t *testing.T) {
	for _, tc := range []struct {
		id, unit string
		gen      int64
	}{{"2", "web@2.service", 0}, {"3.2", "web.3@2.service", 3}} {
		rec := (&Instance{App: "web", ID: tc.id}).Record("127.0.0.1:8080", nil)
		if rec.Gen != tc.gen || rec.Unit != tc.unit {
			t.Errorf("instance %s: gen %d unit %s, want %d %s", tc.id, rec.Gen, rec.Unit, tc.gen, tc.unit)
		}
	}
}
