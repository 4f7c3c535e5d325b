package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/demoapp"
	"github.com/berthproject/berth/internal/spec"
)

// demoLoad sends requests to berth up's router until stopped, over
// keep-alive and fresh connections, and counts failures and the versions
// that answered.
type demoLoad struct {
	total, failed atomic.Int64
	mu            sync.Mutex
	versions      map[string]int
	errs          []string
	stop          context.CancelFunc
	wg            sync.WaitGroup
}

func startDemoLoad(p *upProcess) *demoLoad {
	ctx, cancel := context.WithCancel(context.Background())
	l := &demoLoad{versions: map[string]int{}, stop: cancel}
	for i, keepAlive := range []bool{true, true, false} {
		client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DisableKeepAlives: !keepAlive}}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				req, _ := http.NewRequest("GET", "http://"+p.http+"/status", nil)
				req.Host = "paas-monitor.localhost"
				l.total.Add(1)
				resp, err := client.Do(req)
				var s demoapp.Status
				if err == nil {
					b, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != 200 || json.Unmarshal(b, &s) != nil {
						err = fmt.Errorf("client %d: %s %q", i, resp.Status, b)
					}
				}
				l.mu.Lock()
				if err != nil {
					l.failed.Add(1)
					if len(l.errs) < 5 {
						l.errs = append(l.errs, err.Error())
					}
				} else {
					l.versions[s.Version]++
				}
				l.mu.Unlock()
				time.Sleep(2 * time.Millisecond)
			}
		}()
	}
	return l
}

func (l *demoLoad) end() (total, failed int64, versions map[string]int, errs []string) {
	l.stop()
	l.wg.Wait()
	return l.total.Load(), l.failed.Load(), l.versions, l.errs
}

// demoVersions asks the app n times and counts the versions that answer.
func demoVersions(t *testing.T, p *upProcess, n int) map[string]int {
	t.Helper()
	seen := map[string]int{}
	for range n {
		code, _, body := p.get(t, "/status")
		var s demoapp.Status
		if code != 200 || json.Unmarshal(body, &s) != nil {
			t.Fatalf("GET /status: %d %q", code, body)
		}
		seen[s.Version]++
	}
	return seen
}

// writeDemoSpec writes the demo app's spec (as berth up --demo runs it) at
// another version, with a health path (and more spec lines).
func writeDemoSpec(t *testing.T, version, health string, extra ...string) string {
	t.Helper()
	self, _ := os.Executable()
	doc := fmt.Sprintf(`apiVersion: berth/v1
name: paas-monitor
version: %s
runtime: exec
command: [%q, demo-app]
instances: 3
ports: [{container: 8080, tags: [http]}]
domains: [paas-monitor.localhost]
health: {http: %s, interval: 200ms}
idleTimeout: 1m
placement: {allowColocation: true}
restart: {delay: 1s}
%s`, version, self, health, strings.Join(extra, "\n"))
	path := filepath.Join(t.TempDir(), "paas-monitor-"+version+".yaml")
	if err := os.WriteFile(path, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestUpDeploy drives berth deploy against berth up under continuous load:
// a rolling deploy, a blue-green one, a version that never becomes
// healthy (rolled back by itself), a rollback, and a second deploy while
// one runs, a canary promoted; no request fails, and the answering
// version switches as each deploy promises.
func TestUpDeploy(t *testing.T) {
	if testing.Short() {
		t.Skip("runs berth up")
	}
	p := startUp(t, t.TempDir(), "--demo-idle-timeout", "10m")
	etcd := []string{"--etcd-endpoints", p.etcd}
	deploy := func(args ...string) (int, string, string) {
		t.Helper()
		return berth(t, append(append([]string{"deploy"}, args...), etcd...)...)
	}
	load := startDemoLoad(p)
	defer load.stop()
	time.Sleep(300 * time.Millisecond)

	// Rolling: 1.0.0 → 1.1.0.
	if code, out, errOut := deploy(writeDemoSpec(t, "1.1.0", "/health"), "--wait"); code != 0 {
		t.Fatalf("rolling deploy: exit %d\n%s%s", code, out, errOut)
	}
	if v := demoVersions(t, p, 9); v["1.1.0"] != 9 {
		t.Fatalf("after the rolling deploy, versions %v; want 1.1.0 only", v)
	}
	// A version that is not newer is refused.
	if code, _, errOut := deploy(writeDemoSpec(t, "1.0.5", "/health")); code != 1 || !strings.Contains(errOut, "not newer") {
		t.Errorf("deploy of an older version: exit %d %q", code, errOut)
	}

	// Blue-green: 1.1.0 → 1.2.0.
	if code, out, errOut := deploy(writeDemoSpec(t, "1.2.0", "/health"), "--strategy", "blue-green", "--wait"); code != 0 {
		t.Fatalf("blue-green deploy: exit %d\n%s%s", code, out, errOut)
	}
	if v := demoVersions(t, p, 9); v["1.2.0"] != 9 {
		t.Fatalf("after the blue-green deploy, versions %v; want 1.2.0 only", v)
	}

	// 1.3.0 never becomes healthy: rolled back, 1.2.0 keeps serving.
	code, out, errOut := deploy(writeDemoSpec(t, "1.3.0", "/never-healthy"), "--timeout", "3s", "--wait")
	if code != 1 || !strings.Contains(errOut, "rolled back") {
		t.Fatalf("unhealthy deploy: exit %d\n%s%s", code, out, errOut)
	}
	if v := demoVersions(t, p, 9); v["1.2.0"] != 9 {
		t.Fatalf("after the rolled-back deploy, versions %v; want 1.2.0 only", v)
	}

	// berth rollback: back to 1.1.0, as a new release.
	if code, out, errOut := berth(t, append([]string{"rollback", "paas-monitor", "--wait"}, etcd...)...); code != 0 || !strings.Contains(out, "1.1.0") {
		t.Fatalf("rollback: exit %d\n%s%s", code, out, errOut)
	}
	if v := demoVersions(t, p, 9); v["1.1.0"] != 9 {
		t.Fatalf("after the rollback, versions %v; want 1.1.0 only", v)
	}

	// Two deploys at once: the second is told.
	if code, out, errOut := deploy(writeDemoSpec(t, "1.4.0", "/health")); code != 0 {
		t.Fatalf("deploy 1.4.0: exit %d\n%s%s", code, out, errOut)
	}
	if code, _, errOut := deploy(writeDemoSpec(t, "1.5.0", "/health")); code != 1 || !strings.Contains(errOut, "running") {
		t.Errorf("a second deploy while one runs: exit %d %q", code, errOut)
	}
	until(t, "1.4.0 deployed", 60*time.Second, func() bool {
		_, out, _ := berth(t, append([]string{"history", "paas-monitor", "-o", "json"}, etcd...)...)
		var h struct{ Rollout struct{ Phase string } }
		return json.Unmarshal([]byte(out), &h) == nil && h.Rollout.Phase == "done"
	})
	if v := demoVersions(t, p, 6); v["1.4.0"] != 6 {
		t.Fatalf("after 1.4.0, versions %v", v)
	}

	// Canary: half of the new clients get 1.5.0, each stays where it went
	// (cookie), then the promotion moves everyone.
	if code, out, errOut := deploy(writeDemoSpec(t, "1.5.0", "/health"), "--canary", "50", "--wait"); code != 0 || !strings.Contains(out, "canary running") {
		t.Fatalf("canary deploy: exit %d\n%s%s", code, out, errOut)
	}
	if v := demoVersions(t, p, 200); v["1.5.0"] < 70 || v["1.4.0"] < 70 {
		t.Errorf("canary 50%%: 200 new clients got %v", v)
	}
	for range 5 {
		_, hdr, body := p.get(t, "/status")
		cookie := hdr.Get("Set-Cookie")
		var first demoapp.Status
		json.Unmarshal(body, &first)
		if !strings.HasPrefix(cookie, "berth-rollout-paas-monitor=") {
			t.Fatalf("no rollout cookie: %q", cookie)
		}
		for range 10 {
			_, _, body := p.get(t, "/status", "Cookie", strings.Split(cookie, ";")[0])
			var s demoapp.Status
			if json.Unmarshal(body, &s); s.Version != first.Version {
				t.Fatalf("a client with cookie %q got %s after %s", cookie, s.Version, first.Version)
			}
		}
	}
	if code, out, errOut := deploy("--promote", "paas-monitor", "--wait"); code != 0 {
		t.Fatalf("promote: exit %d\n%s%s", code, out, errOut)
	}
	if v := demoVersions(t, p, 9); v["1.5.0"] != 9 {
		t.Errorf("after the promotion, versions %v; want 1.5.0 only", v)
	}

	total, failed, versions, errs := load.end()
	t.Logf("%d requests during the deploys, %d failed; versions answering: %v", total, failed, versions)
	if failed > 0 {
		t.Errorf("%d of %d requests failed during the deploys: %v", failed, total, errs)
	}
	for _, v := range []string{"1.0.0", "1.1.0", "1.2.0", "1.4.0", "1.5.0"} {
		if versions[v] == 0 {
			t.Errorf("version %s never answered under load (%v)", v, versions)
		}
	}
	if versions["1.3.0"] > 0 {
		t.Errorf("the never-healthy 1.3.0 answered %d requests", versions["1.3.0"])
	}

	_, hist, _ := berth(t, append([]string{"history", "paas-monitor"}, etcd...)...)
	for _, want := range []string{"1.0.0", "superseded", "rolled-back", "(rollback)", "live"} {
		if !strings.Contains(hist, want) {
			t.Errorf("berth history lacks %q:\n%s", want, hist)
		}
	}
}

// TestDemoAppSpec: berth demo-app --spec VERSION prints a spec berth deploy
// takes (the tutorial's deploy step), at that version.
func TestDemoAppSpec(t *testing.T) {
	code, out, errOut := berth(t, "demo-app", "--spec", "2.0.0")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	path := filepath.Join(t.TempDir(), "v2.json")
	os.WriteFile(path, []byte(out), 0o644)
	apps, err := spec.ParseFile(path)
	if err != nil || len(apps) != 1 || apps[0].Version != "2.0.0" || apps[0].Name != "paas-monitor" {
		t.Fatalf("spec.ParseFile: %v %+v", err, apps)
	}
	if code, _, _ := berth(t, "demo-app", "--spec", "two"); code != 2 {
		t.Errorf("--spec two: exit %d, want 2", code)
	}
}

// TestUpCanaryErrorRateRollsBack: a canary whose /status answers 500
// (BERTH_DEMO_STATUS) is rolled back by itself once the router's counts
// of its responses pass --max-error-rate; the old version serves on.
func TestUpCanaryErrorRateRollsBack(t *testing.T) {
	if testing.Short() {
		t.Skip("runs berth up")
	}
	p := startUp(t, t.TempDir(), "--demo-idle-timeout", "10m")
	etcd := []string{"--etcd-endpoints", p.etcd}
	spec := writeDemoSpec(t, "1.1.0", "/health", "env: {BERTH_DEMO_STATUS: \"500\"}")
	if code, out, errOut := berth(t, append([]string{"deploy", spec, "--canary", "50", "--max-error-rate", "0.2", "--wait"}, etcd...)...); code != 0 {
		t.Fatalf("canary deploy: exit %d\n%s%s", code, out, errOut)
	}
	reason := ""
	// A failing canary leaves the router's rotation for its fail window
	// (10s) after each 5xx, so its responses come slowly.
	until(t, "the canary rolled back", 90*time.Second, func() bool {
		for range 10 {
			p.get(t, "/status") // new clients: half of them meet the canary
		}
		_, out, _ := berth(t, append([]string{"history", "paas-monitor", "-o", "json"}, etcd...)...)
		var h struct {
			Rollout struct{ Phase, Message string }
		}
		json.Unmarshal([]byte(out), &h)
		reason = h.Rollout.Message
		return h.Rollout.Phase == "rolled-back"
	})
	if !strings.Contains(reason, "5xx") {
		t.Errorf("rollback reason %q", reason)
	}
	if v := demoVersions(t, p, 9); v["1.0.0"] != 9 {
		t.Errorf("after the rollback, versions %v; want 1.0.0 only", v)
	}
}
