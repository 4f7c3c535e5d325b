package view

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/spec"
)

func snapshot(t *testing.T) *registry.Snapshot {
	t.Helper()
	certPEM, _, leaf, err := etcdtest.SelfSigned("shop.example.com")
	if err != nil {
		t.Fatal(err)
	}
	return &registry.Snapshot{
		Rev:     7,
		Apps:    map[string]*spec.App{"shop": {Name: "shop", Version: "1.2.0", Instances: 3}},
		Domains: map[string]string{"shop.example.com": "shop", "www.shop.example.com": "shop", "old.example.com": "gone"},
		Instances: map[string]map[string]*registry.Instance{"shop": {
			"1": {App: "shop", ID: "1", Addr: "10.0.0.1:80", Node: "n1", State: registry.StateUp},
			"2": {App: "shop", ID: "2", Addr: "10.0.0.2:80", Node: "n1", State: registry.StateStarting},
		}},
		Status:   map[string]*registry.Status{"shop": {Current: registry.StatusStarted, Expected: registry.StatusStarted, Since: 1000}},
		Access:   map[string]map[string]*registry.Access{"shop": {"r1": {LastMS: 2000, Conns: 2}}},
		Nodes:    map[string]*registry.Node{"n1": {ID: "n1", Addr: "10.0.0.1"}, "n2": {ID: "n2", Addr: "10.0.0.2"}},
		Certs:    map[string]*registry.StoredCert{"shop.example.com": {Host: "shop.example.com", CertPEM: certPEM, Leaf: leaf, KeySealed: []byte{1}}},
		Rollouts: map[string]*registry.Rollout{"shop": {App: "shop", From: 1, To: 2, Phase: registry.PhaseCanary, Canary: 10}},
	}
}

func TestViews(t *testing.T) {
	s := snapshot(t)
	rows := Status(s)
	if len(rows) != 2 || rows[1].App != "shop" || rows[1].Up != 1 || rows[1].Instances != 2 || rows[1].Wanted != 3 ||
		rows[1].Conns != 2 || strings.Join(rows[1].Domains, ",") != "shop.example.com,www.shop.example.com" {
		t.Fatalf("status rows %+v", rows)
	}
	if rows[0].App != "gone" || rows[0].Current != "-" {
		t.Fatalf("an app known by a domain only: %+v", rows[0])
	}
	a, ok := OneApp(s, "shop")
	if !ok || a.Spec == nil || a.Version != "1.2.0" || a.Rollout == nil || !a.Rollout.Active || a.Status.Since == "" {
		t.Fatalf("OneApp %+v", a)
	}
	if _, ok := OneApp(s, "nosuch"); ok {
		t.Fatal("OneApp found an unknown app")
	}
	if ns := Nodes(s); len(ns) != 2 || ns[0].Instances != 2 || ns[1].Instances != 0 {
		t.Fatalf("nodes %+v", ns)
	}
	if ins := Instances(s, ""); len(ins) != 2 || ins[0].ID != "1" || ins[0].Gen != 1 || len(ins[0].Ports) != 1 {
		t.Fatalf("instances %+v", ins)
	}
	routes := Routes(s)
	if len(routes) != 3 || routes[1].Host != "shop.example.com" || strings.Join(routes[1].Backends, ",") != "10.0.0.1:80" {
		t.Fatalf("routes %+v", routes)
	}
	certs := Certificates(s)
	b, _ := json.Marshal(certs)
	if len(certs) != 1 || certs[0].NotAfter == "" || len(certs[0].Fingerprint) != 64 || strings.Contains(string(b), "PRIVATE") {
		t.Fatalf("certificates %s", b)
	}
	if certs[0].ClearKey || strings.Contains(string(b), "clearKey") {
		t.Errorf("a sealed key shown as clear: %s", b)
	}
	s.Certs["shop.example.com"] = &registry.StoredCert{Host: "shop.example.com", Leaf: s.Certs["shop.example.com"].Leaf, ClearKeyPEM: []byte("k")}
	if certs := Certificates(s); len(certs) != 1 || !certs[0].ClearKey {
		t.Errorf("a clear key: certificates %+v, want clearKey", certs)
	}
}
