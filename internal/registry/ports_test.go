package registry

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// shopAPI is an instance of examples/multi-port.yaml as the hooks register
// it: the http port first, the metrics port by name.
func shopAPI() *Instance {
	in := &Instance{App: "shop-api", ID: "1", Node: "n1", State: StateUp}
	in.SetPorts([]NamedPort{
		{Name: "http", Addr: "10.0.1.5:49153", Proto: "tcp", Tags: []string{"http", "public"}},
		{Name: "metrics", Addr: "10.0.1.5:49154", Proto: "tcp", Tags: []string{"prometheus"}},
	})
	return in
}

func TestPortList(t *testing.T) {
	cases := []struct {
		name string
		rec  string
		want []NamedPort
	}{
		{"a record without ports has its primary port, named after the app",
			`{"addr":"10.0.0.1:80","state":"up","tags":["http"]}`,
			[]NamedPort{{Name: "web", Addr: "10.0.0.1:80", Proto: "tcp", Tags: []string{"http"}}}},
		{"every port, the primary first",
			`{"addr":"10.0.0.1:80","port":"http","state":"up","ports":{"zeta":{"addr":"10.0.0.1:82","proto":"udp"},"http":{"addr":"10.0.0.1:80"},"metrics":{"addr":"10.0.0.1:81","tags":["prom"]}}}`,
			[]NamedPort{{Name: "http", Addr: "10.0.0.1:80", Proto: "tcp"}, {Name: "metrics", Addr: "10.0.0.1:81", Proto: "tcp", Tags: []string{"prom"}},
				{Name: "zeta", Addr: "10.0.0.1:82", Proto: "udp"}}},
		{"addr wins over the primary's entry in ports; unknown protocols are left out",
			`{"addr":"10.0.0.1:80","port":"http","state":"up","ports":{"http":{"addr":"10.0.0.9:1"},"s":{"addr":"10.0.0.1:83","proto":"sctp"}}}`,
			[]NamedPort{{Name: "http", Addr: "10.0.0.1:80", Proto: "tcp"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			in, err := decodeInstance(t, c.rec)
			if err != nil {
				t.Fatal(err)
			}
			if got := in.PortList(); !reflect.DeepEqual(got, c.want) {
				t.Errorf("got %+v, want %+v", got, c.want)
			}
		})
	}
}

// decodeInstance decodes a record as the watch cache does (key web/1).
func decodeInstance(t testing.TB, value string) (*Instance, error) {
	t.Helper()
	a := newApplier(keys(t), emptySnapshot())
	if err := a.apply("/berth/v1/instances/web/1", []byte(value), false); err != nil {
		return nil, err
	}
	return a.s.Instances["web"]["1"], nil
}

func TestInstancePortsValidated(t *testing.T) {
	for _, rec := range []string{
		`{"addr":"10.0.0.1:80","state":"up","ports":{"Bad_Name":{"addr":"10.0.0.1:81"}}}`,
		`{"addr":"10.0.0.1:80","state":"up","ports":{"metrics":{"addr":"10.0.0.1"}}}`,
		`{"addr":"10.0.0.1:80","state":"up","ports":{"metrics":{"addr":"10.0.0.1:0"}}}`,
		`{"addr":"10.0.0.1:80","state":"up","ports":{"metrics":"10.0.0.1:81"}}`,
	} {
		if in, err := decodeInstance(t, rec); err == nil {
			t.Errorf("%s: accepted as %+v", rec, in)
		}
	}
	// What the writers write reads back the same.
	in := shopAPI()
	_, val, err := InstanceKV(keys(t), in)
	if err != nil {
		t.Fatal(err)
	}
	back, err := decodeInstance(t, val)
	if err != nil {
		t.Fatal(err)
	}
	back.App = "shop-api"
	if !reflect.DeepEqual(back.PortList(), in.PortList()) {
		t.Errorf("round trip: got %+v, want %+v", back.PortList(), in.PortList())
	}
	if !strings.Contains(val, `"ports":{"http":{"addr":"10.0.1.5:49153","tags":["http","public"]},"metrics":{"addr":"10.0.1.5:49154","tags":["prometheus"]}}`) {
		t.Errorf("record %s: want every port in ports", val)
	}
}

func TestSkyDNSKVsEveryPort(t *testing.T) {
	got, err := SkyDNSKVs("berth.example.", shopAPI())
	if err != nil {
		t.Fatal(err)
	}
	base := "/skydns/example/berth/service/shop-api/"
	want := map[string]string{
		base + "1":               `{"host":"10.0.1.5","port":49153,"group":"shop-api"}`,
		base + "_tcp/_http/1":    `{"host":"10.0.1.5","port":49153,"group":"_http._tcp.shop-api"}`,
		base + "_tcp/_metrics/1": `{"host":"10.0.1.5","port":49154,"group":"_metrics._tcp.shop-api"}`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %v\nwant %v", got, want)
	}
	// An older writer's record: the primary port under the app's name.
	old := &Instance{App: "web", ID: "a/b", Addr: "10.0.0.1:80", State: StateUp}
	got, err = SkyDNSKVs("berth", old)
	if err != nil || len(got) != 2 || got["/skydns/berth/service/web/a%2Fb"] == "" || got["/skydns/berth/service/web/_tcp/_web/a%2Fb"] == "" {
		t.Errorf("old record: %v %v", got, err)
	}
	if _, err := SkyDNSKVs("*.x", old); err == nil {
		t.Error("a wildcard zone was accepted")
	}
}

// FuzzInstanceRecord decodes instance records as the watch cache does:
// whatever it accepts has a port list led by the primary port with valid
// addresses, survives a re-encoding, and mirrors in the SkyDNS layout.
func FuzzInstanceRecord(f *testing.F) {
	f.Add(`{"addr":"10.0.0.1:80","state":"up"}`)
	f.Add(`{"addr":"[fd00::1]:80","state":"draining","port":"http","tags":["a"],"ports":{"http":{"addr":"[fd00::1]:80"},"m":{"addr":"10.0.0.2:9","proto":"udp","tags":["x"]}}}`)
	f.Add(`{"addr":"h:1","state":"up","ports":{"x":{"addr":"h:2","proto":"sctp"}},"port":"a/b"}`)
	f.Add(`{"addr":"10.0.0.1:80","state":"up","ports":null}`)
	k, _ := NewKeys("/berth")
	f.Fuzz(func(t *testing.T, value string) {
		a := newApplier(k, emptySnapshot())
		if err := a.apply("/berth/v1/instances/web/1", []byte(value), false); err != nil {
			return
		}
		in := a.s.Instances["web"]["1"]
		ports := in.PortList()
		if len(ports) == 0 || ports[0].Addr != in.Addr || ports[0].Name != in.PrimaryPort() {
			t.Fatalf("%s: port list %+v does not start with the primary port", value, ports)
		}
		for _, p := range ports {
			if checkAddr(p.Addr) != nil || p.Proto != "tcp" && p.Proto != "udp" {
				t.Fatalf("%s: port %+v", value, p)
			}
		}
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		again := newApplier(k, emptySnapshot())
		if err := again.apply("/berth/v1/instances/web/1", b, false); err != nil {
			t.Fatalf("re-encoded %s as %s, which does not decode: %v", value, b, err)
		}
		if got := again.s.Instances["web"]["1"].PortList(); !reflect.DeepEqual(got, ports) {
			t.Fatalf("re-encoded %s: ports %+v, want %+v", value, got, ports)
		}
		mirror, err := SkyDNSKVs("berth", in)
		if err != nil || mirror["/skydns/berth/service/web/1"] == "" {
			t.Fatalf("%s: mirror %v %v", value, mirror, err)
		}
		for key := range mirror {
			if strings.Count(key, "/") > 8 {
				t.Fatalf("%s: mirror key %q has a level too many", value, key)
			}
		}
	})
}
