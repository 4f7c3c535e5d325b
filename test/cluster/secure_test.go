package cluster

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/etcdauth"
	"github.com/berthproject/berth/internal/pki"
)

// TestSecureCluster runs the fleet cluster on an etcd with TLS (client and
// peer), client certificate auth and berth's roles, set up as on the AWS
// stack (secure.go): the operator places the demo units with berth fleet
// from outside the nodes as berth-operator, every node's router serves
// them as berth-reader and its dnsd as berth-dns, each certificate can do what
// docs/security.md grants and no more, and when a node is lost its units
// move and its member rejoins over TLS.
func TestSecureCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("the cluster takes a minute to start")
	}
	c := StartSecureFleet(t)
	n1, n2, n3 := c.Nodes[0], c.Nodes[1], c.Nodes[2]
	op := func(t *testing.T, args ...string) string {
		t.Helper()
		out, err := c.Operator(args...)
		if err != nil {
			t.Fatalf("berth %s as berth-operator: %v\n%s", strings.Join(args, " "), err, out)
		}
		return out
	}
	units := func(t *testing.T) ([]fleetUnit, bool) {
		t.Helper()
		out, err := c.Operator("fleet", "--etcd-request-timeout", "2s", "list-units", "-o", "json")
		var us []fleetUnit
		if err != nil || json.Unmarshal([]byte(strings.TrimSpace(out)), &us) != nil {
			return nil, false // a leader election after a node loss: asked again
		}
		return us, true
	}
	perMachine := func(us []fleetUnit) map[string]int {
		m := map[string]int{}
		for _, u := range us {
			if strings.HasPrefix(u.Unit, "demo@") {
				m[u.Machine]++
			}
		}
		return m
	}

	t.Run("1 the operator starts 10 units with berth fleet", func(t *testing.T) {
		c.Use(t)
		if out := op(t, "fleet", "list-machines"); !strings.Contains(out, "az=n1") || !strings.Contains(out, "az=n3") {
			t.Fatalf("list-machines as berth-operator:\n%s", out)
		}
		op(t, "fleet", "submit", filepath.Join(n1.dirs.units, "demo@.service"))
		op(t, "fleet", "start", "demo@{1..10}.service")
		c.waitFor("10 live instances", 90*time.Second, func() bool { return c.Live() == 10 })
		us, _ := units(t)
		if pm := perMachine(us); pm["n1"] < 3 || pm["n2"] < 3 || pm["n3"] < 3 {
			t.Errorf("units per machine %v, want 3 or 4 on each", pm)
		}
		// The three servers' berth-etcd-auth ran at the same time: each
		// succeeded at its first run (a failed one is restarted after 10s).
		for _, n := range c.Nodes {
			if out, _ := n.Try("systemctl", "show", "-p", "NRestarts", "--value", "berth-etcd-auth.service"); strings.TrimSpace(out) != "0" {
				log, _ := n.Try("journalctl", "--no-pager", "-u", "berth-etcd-auth.service")
				t.Errorf("berth-etcd-auth.service on %s restarted %s times:\n%s", n.Name, strings.TrimSpace(out), log)
			}
		}
		if out := op(t, "status"); !strings.Contains(out, "demo") {
			t.Errorf("berth status as berth-operator has no demo app:\n%s", out)
		}
	})

	t.Run("2 every router (berth-reader) and dnsd (berth-dns) serve every node's instances", func(t *testing.T) {
		c.Use(t)
		for _, n := range c.Nodes {
			seen := map[string]bool{}
			for range 30 {
				out, err := InHub("curl", "-sf", "--max-time", "5", "-H", "Host: demo.localhost", "http://"+n.IP+"/status")
				if err != nil {
					t.Fatalf("router on %s: %v %s", n.Name, err, out)
				}
				var s struct{ Host string }
				json.Unmarshal([]byte(out), &s)
				seen[s.Host] = true
			}
			if len(seen) != 3 {
				t.Errorf("router on %s reached instances on %v, want all 3 nodes", n.Name, seen)
			}
			out, err := InHub("dig", "@"+n.IP, "+short", "+tcp", "+time=2", "+tries=1", "_demo._tcp.service.berth", "SRV")
			if err != nil || len(strings.Fields(out)) != 40 {
				t.Errorf("dnsd on %s: SRV answers %q (%v), want 10", n.Name, out, err)
			}
			// Each daemon holds its role's certificate: the router's and
			// dnsd's from their credentials, the agent's from berth.env.
			for unit, want := range map[string]string{
				"berth-router.service": "BERTH_ETCD_CERT=/run/credentials/berth-router.service/etcd-cert",
				"berth-dnsd.service":   "BERTH_ETCD_CERT=/run/credentials/berth-dnsd.service/etcd-cert",
				"berth-agent.service":  "BERTH_ETCD_CERT=/etc/berth/pki/berth-agent.pem",
			} {
				env, err := n.Try("sh", "-c", "tr '\\0' '\\n' < /proc/$(systemctl show -p MainPID --value "+unit+")/environ")
				if err != nil || !strings.Contains(env, want) {
					t.Errorf("%s on %s: environment %v\n%s\nwant %s", unit, n.Name, err, env, want)
				}
			}
			for unit, user := range map[string]string{"berth-router.service": etcdauth.Reader, "berth-dnsd.service": etcdauth.DNS} {
				want := "LoadCredential=etcd-cert:/etc/berth/pki/" + user + ".pem"
				if cat, err := n.Try("systemctl", "cat", unit); err != nil || !strings.Contains(cat, want) {
					t.Errorf("%s on %s: %v, want %s in its unit:\n%s", unit, n.Name, err, want, cat)
				}
			}
			j, _ := n.Try("journalctl", "--no-pager", "-u", "berth-*", "-u", "demo@*") // the platform and the demo units' hooks
			for _, line := range strings.Split(j, "\n") {
				if strings.Contains(line, "permission denied") {
					t.Errorf("a unit on %s was denied: %s", n.Name, line)
				}
			}
		}
	})

	t.Run("3 each certificate can do what its role grants, no more", func(t *testing.T) {
		c.Use(t)
		ep := c.Endpoints()[0]
		plain := "http://" + strings.TrimPrefix(ep, "https://")
		if r := c.Probe(plain, etcdauth.Reader, "get", "/berth/"); r.Err == "" {
			t.Errorf("a plain-HTTP client read %d keys, want it refused", r.Count)
		}
		if r := c.Probe(ep, "", "get", "/berth/"); r.Err == "" {
			t.Errorf("a TLS client without a certificate read %d keys, want it refused", r.Count)
		}
		for _, p := range []struct {
			user, op, key string
			allowed       bool
		}{
			{etcdauth.Reader, "get", "/berth/v1/instances/", true},
			{etcdauth.Reader, "get", "/berth/v1/certs/", true}, // routers serve certificates (docs/security.md)
			{etcdauth.Reader, "put", "/berth/v1/apps/demo", false},
			{etcdauth.Reader, "put", "/berth/v1/instances/demo/99", false},
			{etcdauth.Reader, "put", "/berth/v1/nodes/n9", false},
			// dnsd's role reads /berth/v1/ and writes nothing: not the routers'
			// certificate recipient, ACME storage, access records or wakes.
			{etcdauth.DNS, "get", "/berth/v1/instances/", true},
			{etcdauth.DNS, "put", "/berth/v1/acme/cert-recipient", false},
			{etcdauth.DNS, "put", "/berth/v1/acme/locks/x", false},
			{etcdauth.DNS, "put", "/berth/v1/access/demo/dnsd", false},
			{etcdauth.DNS, "put", "/berth/v1/status/demo", false},
			{etcdauth.DNS, "get", "/berth/secrets/", false},
			{etcdauth.Agent, "get", "/berth/v1/apps/", true},
			{etcdauth.Agent, "put", "/berth/v1/domains/evil.example.com", false},
			{etcdauth.Agent, "put", "/berth/v1/certs/evil.example.com", false},
			{etcdauth.Agent, "put", "/etc-secrets/x", false},
			{etcdauth.Agent, "get", "/etc-secrets/", false},
			{etcdauth.Operator, "put", "/etc-secrets/x", false},
			{etcdauth.RootUser, "put", "/etc-secrets/x", true},
			{etcdauth.Operator, "get", "/etc-secrets/", false},
		} {
			r := c.Probe(ep, p.user, p.op, p.key)
			switch {
			case p.allowed && r.Err != "":
				t.Errorf("%s %s as %s: %s, want allowed", p.op, p.key, p.user, r.Err)
			case !p.allowed && !r.Denied:
				t.Errorf("%s %s as %s: %+v, want permission denied", p.op, p.key, p.user, r)
			}
		}
		// berth's commands say who lacked the permission.
		if out, err := c.CLIAs(etcdauth.Reader, "scale", "demo", "3"); err == nil || !strings.Contains(out, `etcd user "berth-reader" lacks the permission`) {
			t.Errorf("berth scale as berth-reader: %v\n%s\nwant a denial naming the user", err, out)
		}
		site, err := c.ca.Issue(pki.Request{Name: "evil-site", Role: pki.RoleServer, DNS: []string{"evil.example.com"}})
		if err != nil {
			t.Fatal(err)
		}
		// The cluster's routers run without the routers' key, so none has
		// published a certificate recipient: cert put seals to the one
		// derived from this key, then etcd refuses the write.
		routerKey := filepath.Join(t.TempDir(), "router.key")
		if err := os.WriteFile(routerKey, []byte(strings.Repeat("ab", 32)), 0o600); err != nil {
			t.Fatal(err)
		}
		if out, err := c.CLIAs(etcdauth.Agent, "cert", "put", "--router-key-file", routerKey, "evil.example.com", site.Cert, site.Key); err == nil || !strings.Contains(out, `etcd user "berth-agent" lacks the permission`) {
			t.Errorf("berth cert put as berth-agent (a node's certificate): %v\n%s\nwant a denial naming the user", err, out)
		}
	})

	t.Run("4 a node is lost: its units move, its member rejoins over TLS", func(t *testing.T) {
		c.Use(t)
		load := c.StartLoad(40*time.Second, n1, n2)
		time.Sleep(time.Second)
		start := time.Now()
		c.KillNode(n3)
		c.waitFor("n3's units placed on n1 and n2", 40*time.Second, func() bool {
			us, ok := units(t)
			pm := perMachine(us)
			return ok && pm["n3"] == 0 && pm["n1"]+pm["n2"] == 10
		})
		c.waitFor("10 live instances again", 60*time.Second, func() bool { return c.Live() == 10 })
		t.Logf("n3 killed: all 10 live on n1 and n2 after %s", time.Since(start).Round(100*time.Millisecond))
		r, err := load.Wait()
		if err != nil {
			t.Fatal(err)
		}
		if r.Failed > 0 {
			t.Errorf("%d of %d requests to the other routers failed: %v", r.Failed, r.Total, r.Errors)
		}
		c.RestartNode(n3, nil)
		c.waitFor("n3's agent back as a machine", 30*time.Second, func() bool {
			out, err := c.Operator("fleet", "list-machines")
			return err == nil && strings.Contains(out, "az=n3")
		})
		if out, err := InHub("curl", "-sf", "--max-time", "5", "-H", "Host: demo.localhost", "http://"+n3.IP+"/status"); err != nil {
			t.Errorf("n3's router after its restart: %v %s", err, out)
		}
	})
}
