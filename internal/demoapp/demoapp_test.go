package demoapp

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestControlsRefuseOtherSites: the page's actions (kill, scale) are
// refused for a request another site's page makes; curl (no Origin) and
// the page itself (its own origin) pass. Without a control endpoint the
// state says so and a scale is not possible.
func TestControlsRefuseOtherSites(t *testing.T) {
	t.Setenv(EnvControl, "")
	exited := make(chan int, 1)
	srv := httptest.NewServer(Handler(func(code int) { exited <- code }))
	defer srv.Close()
	post := func(path string, hdr ...string) (int, string) {
		req, _ := http.NewRequest("POST", srv.URL+path, strings.NewReader(`{"instances":2}`))
		req.Host = "paas-monitor.localhost:8080"
		if len(hdr) > 0 && hdr[0] == "Host" {
			req.Host, hdr = hdr[1], hdr[2:]
		}
		for i := 0; i+1 < len(hdr); i += 2 {
			req.Header.Set(hdr[i], hdr[i+1])
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, c := range []struct {
		path string
		hdr  []string
		want int
	}{
		{"/stop", []string{"Origin", "http://evil.example"}, 403},
		{"/stop", []string{"Sec-Fetch-Site", "cross-site"}, 403},
		{"/demo/scale", []string{"Origin", "http://paas-monitor.localhost:9999"}, 403},
		{"/demo/scale", []string{"Origin", "http://paas-monitor.localhost:8080"}, 501}, // allowed, but no control endpoint
	} {
		if code, body := post(c.path, c.hdr...); code != c.want {
			t.Errorf("POST %s %v: %d %q, want %d", c.path, c.hdr, code, body, c.want)
		}
	}
	select {
	case <-exited:
		t.Fatal("a refused /stop stopped the instance")
	default:
	}
	if code, _ := post("/stop"); code != 200 {
		t.Errorf("POST /stop from curl: %d", code)
	}
	if code := <-exited; code != 1 {
		t.Errorf("exit %d", code)
	}
	resp, err := http.Get(srv.URL + "/demo/state")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(b), `"control":false`) {
		t.Errorf("state without control: %q", b)
	}
}

// TestPageStructure: the page has the parts the tutorial names: the
// round-robin table, the chart, the kill and scale buttons, and the
// passivation countdown.
func TestPageStructure(t *testing.T) {
	page := string(indexHTML)
	for _, id := range []string{`id="rows"`, `id="chart"`, `id="kill"`, `id="scale-up"`, `id="scale-down"`, `id="scale-n"`,
		`id="pause"`, `id="sleep-state"`, `id="idle"`, "fetch('/demo/scale'", "fetch('/demo/state'", "X-Berth-Cold-Start"} {
		if !strings.Contains(page, id) {
			t.Errorf("page lacks %s", id)
		}
	}
}

// TestScaleOnlyOnLocalNames: with a control endpoint, the page may scale
// only on a name of this machine: berth up routes paas-monitor.anything to
// the demo, and a foreign domain resolving to 127.0.0.1 is not its page.
func TestScaleOnlyOnLocalNames(t *testing.T) {
	ctl := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		w.Write([]byte(`{"from":3,"to":2}`))
	}))
	defer ctl.Close()
	t.Setenv(EnvControl, ctl.URL)
	t.Setenv(EnvToken, "tok")
	srv := httptest.NewServer(Handler(func(int) {}))
	defer srv.Close()
	for _, c := range []struct {
		host string
		want int
	}{
		{"paas-monitor.localhost:8080", 200},
		{"127.0.0.1:8080", 200},
		{"paas-monitor.evil.example:8080", 403},
	} {
		req, _ := http.NewRequest("POST", srv.URL+"/demo/scale", strings.NewReader(`{"instances":2}`))
		req.Host = c.host
		req.Header.Set("Origin", "http://"+c.host)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("scale on %s: %d %q, want %d", c.host, resp.StatusCode, b, c.want)
		}
	}
}
