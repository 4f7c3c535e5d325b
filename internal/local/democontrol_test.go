package local

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/sirupsen/logrus/hooks/test"

	"github.com/berthproject/berth/internal/demoapp"
	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/spec"
)

// TestDemoControl: the control endpoint listens on 127.0.0.1, answers only
// with this run's token, and scales the demo app within 1..20.
func TestDemoControl(t *testing.T) {
	_, cli := etcdtest.New(t)
	k, _ := registry.NewKeys("")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	a := testApp(t, 3)
	if err := registry.PublishApp(ctx, cli, k, a); err != nil {
		t.Fatal(err)
	}
	log, _ := test.NewNullLogger()
	snap := &registry.Snapshot{Apps: map[string]*spec.App{"web": a}}
	env, err := serveDemoControl(ctx, &demoControl{kv: cli, keys: k, app: "web", snapshot: func() *registry.Snapshot { return snap }, log: log})
	if err != nil {
		t.Fatal(err)
	}
	var url, token string
	for _, e := range env {
		if v, ok := strings.CutPrefix(e, demoapp.EnvControl+"="); ok {
			url = v
		}
		if v, ok := strings.CutPrefix(e, demoapp.EnvToken+"="); ok {
			token = v
		}
	}
	if !strings.HasPrefix(url, "http://127.0.0.1:") || len(token) < 32 {
		t.Fatalf("environment %q: want a loopback URL and a long token", env)
	}
	do := func(method, path, auth, body string) (int, string) {
		req, _ := http.NewRequest(method, url+path, strings.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := do("POST", "/scale", "", `{"instances":5}`); code != 401 {
		t.Errorf("scale without the token: %d, want 401", code)
	}
	if code, _ := do("POST", "/scale", token+"x", `{"instances":5}`); code != 401 {
		t.Errorf("scale with a wrong token: %d, want 401", code)
	}
	for _, n := range []string{"0", "21", `"x"`} {
		if code, _ := do("POST", "/scale", token, `{"instances":`+n+`}`); code != 400 {
			t.Errorf("scale to %s: %d, want 400", n, code)
		}
	}
	code, body := do("GET", "/state", token, "")
	var st demoapp.State
	if code != 200 || json.Unmarshal([]byte(body), &st) != nil || !st.Control || st.Instances != 3 || st.MaxInstances != DemoMaxInstances {
		t.Errorf("state: %d %q", code, body)
	}
	if code, body := do("POST", "/scale", token, `{"instances":5}`); code != 200 {
		t.Fatalf("scale: %d %q", code, body)
	}
	if stored, _ := storedApp(ctx, cli, k, "web"); stored == nil || stored.Instances != 5 {
		t.Errorf("stored spec after the scale: %+v, want 5 instances", stored)
	}
}
