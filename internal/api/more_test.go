package api

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/fleet"
	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/seal"
	"github.com/berthproject/berth/internal/spec"
)

func TestAPIDeploys(t *testing.T) {
	e := newEnv(t, nil)
	e.do("POST", "/v1/apps", e.admin, specYAML("web", "1.0.0", "web.example.com")).want(t, 200, "apply")
	v2, err := spec.Parse([]byte(specYAML("web", "2.0.0", "web.example.com")))
	if err != nil {
		t.Fatal(err)
	}
	specJSON, _ := json.Marshal(v2[0])

	e.do("POST", "/v1/apps/web/deploys", e.admin, map[string]any{"spec": json.RawMessage(specJSON), "strategy": "sideways"}).want(t, 400, "bad strategy")
	e.do("POST", "/v1/apps/web/deploys", e.admin, map[string]any{"spec": json.RawMessage(specJSON), "timeout": "soon"}).want(t, 400, "bad timeout")
	e.do("POST", "/v1/apps/other/deploys", e.admin, map[string]any{"spec": json.RawMessage(specJSON)}).want(t, 400, "spec of another app")
	r := e.do("POST", "/v1/apps/web/deploys", e.admin, map[string]any{"spec": map[string]any{"apiVersion": "berth/v1", "name": "web"}}).want(t, 400, "bad spec")
	if r.error().Code != "bad_spec" || !strings.HasPrefix(r.error().Fields[0].Field, "spec.") {
		t.Fatalf("bad spec error %+v: want fields under spec.", r.error())
	}

	r = e.do("POST", "/v1/apps/web/deploys", e.admin, map[string]any{"spec": json.RawMessage(specJSON), "canary": 10}).want(t, 202, "deploy")
	var rel ReleaseResult
	json.Unmarshal(r.body, &rel)
	if rel.Version != "2.0.0" || rel.Gen != 2 || rel.Canary != 10 {
		t.Fatalf("release %+v", rel)
	}
	e.do("POST", "/v1/apps/web/deploys", e.admin, map[string]any{"spec": json.RawMessage(specJSON), "force": true}).want(t, 409, "a second deploy while one runs")

	var h History
	json.Unmarshal(e.do("GET", "/v1/apps/web/deploys", e.read, nil).want(t, 200, "history").body, &h)
	if len(h.Releases) != 2 || h.Rollout == nil || h.Rollout.Phase != registry.PhaseCanary || !h.Rollout.Active {
		t.Fatalf("history %+v", h)
	}
	e.do("POST", "/v1/apps/web/deploys/promote", e.admin, nil).want(t, 202, "promote")
	e.do("POST", "/v1/apps/web/deploys/promote", e.admin, nil).want(t, 409, "promote of a deploy no longer a canary")
	e.do("POST", "/v1/apps/web/deploys/abort", e.admin, `{"reason":"bad latency"}`).want(t, 202, "abort")
	json.Unmarshal(e.do("GET", "/v1/apps/web/deploys", e.read, nil).body, &h)
	if h.Rollout.Phase != registry.PhaseRollingBack || !strings.Contains(h.Rollout.Message, "test-admin") || !strings.Contains(h.Rollout.Message, "bad latency") {
		t.Fatalf("after abort: %+v", h.Rollout)
	}
	e.do("POST", "/v1/apps/web/deploys/rollback", e.admin, `{"to":"9.9.9"}`).want(t, 404, "rollback to a version never released")
	e.do("POST", "/v1/apps/web/deploys/rollback", e.admin, `{"to":"1.0.0"}`).want(t, 409, "rollback while a deploy (its roll back) runs")
	e.do("POST", "/v1/apps/web/deploys/rollback", e.admin, `{"to":1}`).want(t, 400, "rollback to a number")
}

func TestAPIUnitsAndCertificates(t *testing.T) {
	e := newEnv(t, nil)
	ctx := context.Background()
	st := &fleet.Store{KV: e.cli, Keys: e.keys}
	if err := st.Submit(ctx, "hello.service", []byte("[Service]\nExecStart=/bin/true\n")); err != nil {
		t.Fatal(err)
	}
	var units []Unit
	json.Unmarshal(e.do("GET", "/v1/units", e.read, nil).want(t, 200, "units").body, &units)
	if len(units) != 1 || units[0].Unit != "hello.service" || units[0].Desired != registry.TargetInactive {
		t.Fatalf("units %+v", units)
	}
	e.do("POST", "/v1/units/hello.service/start", e.admin, nil).want(t, 202, "start")
	json.Unmarshal(e.do("GET", "/v1/units", e.read, nil).body, &units)
	if units[0].Desired != registry.TargetLaunched {
		t.Fatalf("after start: %+v", units[0])
	}
	e.do("POST", "/v1/units/hello.service/stop", e.admin, nil).want(t, 202, "stop")
	e.do("POST", "/v1/units/nosuch.service/start", e.admin, nil).want(t, 404, "start of an unknown unit")
	e.do("POST", "/v1/units/bad%20name/start", e.admin, nil).want(t, 400, "bad unit name")
	e.do("POST", "/v1/units/web@.service/start", e.admin, nil).want(t, 400, "a template")

	certPEM, keyPEM, _, err := etcdtest.SelfSigned("shop.example.com")
	if err != nil {
		t.Fatal(err)
	}
	if err := registry.PutCert(ctx, e.cli, e.keys, "shop.example.com", certPEM, keyPEM, testRecipient(t)); err != nil {
		t.Fatal(err)
	}
	var certs []map[string]any
	until(t, "the certificate", func() bool {
		json.Unmarshal(e.do("GET", "/v1/certificates", e.read, nil).want(t, 200, "certificates").body, &certs)
		return len(certs) == 1
	})
	r := e.do("GET", "/v1/certificates", e.read, nil)
	if certs[0]["host"] != "shop.example.com" || certs[0]["notAfter"] == "" || certs[0]["issuer"] == "" {
		t.Fatalf("certificate %+v", certs[0])
	}
	if strings.Contains(string(r.body), "PRIVATE KEY") || strings.Contains(string(r.body), "BEGIN") {
		t.Fatalf("certificate listing holds PEM: %s", r.body)
	}
}

// testRecipient seals certificate keys as the routers' recipient would.
func testRecipient(t *testing.T) *seal.Recipient {
	t.Helper()
	s, err := seal.RecipientFromKey(bytes.Repeat([]byte{5}, seal.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	return s
}
