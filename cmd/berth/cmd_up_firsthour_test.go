package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/demoapp"
	"github.com/berthproject/berth/internal/registry"
)

// stop sends Ctrl-C to berth up and waits for a clean exit.
func (p *upProcess) stop(t *testing.T) {
	t.Helper()
	p.cmd.Process.Signal(syscall.SIGINT)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("berth up exit: %v\n%s", err, p.out)
	}
}

// TestUpRestartKeepsWhatTheUserDid: a scale made while berth up ran stays
// after a restart (--demo does not reset it), the last access survives the
// clean stop, the restart counts as the apps' start (no passivation on the
// previous run's clock), and an app asleep at the stop is announced as
// asleep, not as 0/N up.
func TestUpRestartKeepsWhatTheUserDid(t *testing.T) {
	dir := t.TempDir()
	p := startUp(t, dir, "--demo-idle-timeout", "1m")
	if code, _, errOut := berth(t, "scale", "paas-monitor", "4", "--etcd-endpoints", p.etcd); code != 0 {
		t.Fatalf("scale: %s", errOut)
	}
	until(t, "4 live instances", 20*time.Second, func() bool { st := p.status(t); return st.Up == 4 && st.Wanted == 4 })
	// A deploy of 1.1.0 at that scale.
	code, specJSON, errOut := berth(t, "demo-app", "--spec", "1.1.0")
	if code != 0 {
		t.Fatalf("demo-app --spec: %s", errOut)
	}
	specFile := filepath.Join(t.TempDir(), "pm.json")
	os.WriteFile(specFile, []byte(strings.Replace(specJSON, `"instances": 3`, `"instances": 4`, 1)), 0o600)
	if code, out, errOut := berth(t, "deploy", specFile, "--wait", "--etcd-endpoints", p.etcd); code != 0 {
		t.Fatalf("deploy: %s %s", out, errOut)
	}
	p.get(t, "/status")
	var last string
	until(t, "a last access", 10*time.Second, func() bool { last = p.status(t).LastAccess; return last != "" })
	p.stop(t)

	before := time.Now()
	p = startUp(t, dir, "--demo-idle-timeout", "1m")
	if out := p.out.String(); !strings.Contains(out, "keeping version 1.1.0 as deployed") || !strings.Contains(out, "4 instance(s) as scaled") ||
		!strings.Contains(out, "4/4 up") {
		t.Errorf("banner after the restart:\n%s\nwant the deploy and the scale kept and 4/4 up", out)
	}
	var answer demoapp.Status
	if code, _, body := p.get(t, "/status"); code != 200 || json.Unmarshal(body, &answer) != nil || answer.Version != "1.1.0" {
		t.Errorf("after the restart the app answers %d %q, want version 1.1.0 (deployed)", code, body)
	}
	if st := p.status(t); st.Wanted != 4 || st.LastAccess != last {
		t.Errorf("after the restart: wanted %d, last access %q; want 4 and %q", st.Wanted, st.LastAccess, last)
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{p.etcd}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	k, _ := registry.NewKeys("")
	st, _, err := registry.GetStatus(context.Background(), cli, k, "paas-monitor")
	cli.Close()
	if err != nil || st == nil || time.UnixMilli(st.Since).Before(before.Truncate(time.Millisecond)) {
		t.Errorf("status after the restart %+v (%v): want it running since the restart (%s)", st, err, before)
	}
	// The spec's count changed since the last start: the spec wins.
	p.stop(t)
	p = startUp(t, dir, "--demo-instances", "2")
	if out := p.out.String(); strings.Contains(out, "keeping") || !strings.Contains(out, "2/2 up") {
		t.Errorf("banner with --demo-instances 2:\n%s\nwant the spec's 2 instances", out)
	}

	// Idle past 3s (startUp's timeout): asleep; the next start says so.
	until(t, "passivation", 30*time.Second, func() bool { return p.status(t).Current == "passivated" })
	p.stop(t)
	p = startUp(t, dir)
	out := p.out.String()
	if !strings.Contains(out, "asleep (passivated after 3s without requests): the first request wakes it") ||
		!strings.Contains(out, "asleep now") || strings.Contains(out, "0/2 up") {
		t.Errorf("banner of an asleep app:\n%s", out)
	}
	p.stop(t)
}

// TestUpBannerHintsAsInvoked: the banner's commands name berth as it was
// run and reach this berth up's etcd.
func TestUpBannerHintsAsInvoked(t *testing.T) {
	p := startUp(t, t.TempDir())
	out := p.out.String()
	// The test binary lives in a go-build directory, as go run's does.
	for _, want := range []string{
		"status: go run ./cmd/berth status --etcd-endpoints " + p.etcd,
		"scale  go run ./cmd/berth scale paas-monitor 5 --etcd-endpoints " + p.etcd,
		"idle timeout 3s: sleeps at about ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("banner lacks %q:\n%s", want, out)
		}
	}
	// Info logs ("instance up", ...) stay out of the banner's way unless
	// asked for with --log-level.
	if logs := p.errOut.String(); strings.Contains(logs, "instance up") {
		t.Errorf("info logs by default:\n%s", logs)
	}
	p.stop(t)
}

func TestInvokedAs(t *testing.T) {
	for _, c := range []struct{ arg0, exe, gocache, want string }{
		{"/tmp/go-build1234/b001/exe/berth", "/tmp/go-build1234/b001/exe/berth", "", "go run ./cmd/berth"},
		{"/root/.cache/go-build/30/30f3-d/berth", "/root/.cache/go-build/30/30f3-d/berth", "", "go run ./cmd/berth"},
		{"/srv/cache/ab/abcd-d/berth", "/srv/cache/ab/abcd-d/berth", "/srv/cache", "go run ./cmd/berth"},
		{"./berth", "/home/me/berth/berth", "", "./berth"},
		{"/opt/bin/berth", "/opt/bin/berth", "", "/opt/bin/berth"},
		{"berth", "/usr/local/bin/berth", "", "berth"},
		{"./my berth", "/home/me/my berth", "", "'./my berth'"},
	} {
		if got := invokedAs(c.arg0, c.exe, c.gocache); got != c.want {
			t.Errorf("invokedAs(%q, %q, %q) = %q, want %q", c.arg0, c.exe, c.gocache, got, c.want)
		}
	}
}

// TestStatusFailsFastWithoutBerthUp: a refused local endpoint is reported
// at once as "is berth up running?", without the tunnel talk of an
// unreachable remote etcd (whose endpoints the probe leaves alone).
func TestStatusFailsFastWithoutBerthUp(t *testing.T) {
	addr := freeAddrs(t, 1)[0] // closed again when freeAddrs returns: refused
	for _, cmd := range [][]string{{"status"}, {"routes"}, {"scale", "paas-monitor", "2"}} {
		code, _, errOut := berth(t, append(cmd, "--etcd-endpoints", "http://"+addr)...)
		if code != exitFailure || !strings.Contains(errOut, "is `berth up` running? (no etcd at "+addr+": connection refused") ||
			strings.Contains(errOut, "unreachable") {
			t.Errorf("%v: exit %d, stderr %q", cmd, code, errOut)
		}
	}
	// 192.0.2.0/24 is TEST-NET-1: the probe must not dial a remote endpoint.
	if err := probeLocal([]string{"http://192.0.2.1:2379"}); err != nil {
		t.Errorf("probe of a remote endpoint: %v", err)
	}
	if err := probeLocal([]string{addr, "192.0.2.1:2379"}); err != nil {
		t.Errorf("probe with a remote endpoint among them: %v", err)
	}
}

// TestUpDemoPageScales: the demo page's scale button, through the router
// and an instance to berth up's control endpoint, scales the app; a page
// of another site cannot.
func TestUpDemoPageScales(t *testing.T) {
	p := startUp(t, t.TempDir())
	_, port, _ := net.SplitHostPort(p.http)
	post := func(origin string) (int, string) {
		req, _ := http.NewRequest("POST", "http://"+p.http+"/demo/scale", strings.NewReader(`{"instances":4}`))
		req.Host = "paas-monitor.localhost:" + port
		req.Header.Set("Origin", origin)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := post("http://evil.example"); code != http.StatusForbidden {
		t.Errorf("scale from another site: %d %q, want 403", code, body)
	}
	if st := p.status(t); st.Wanted != 3 {
		t.Fatalf("wanted %d after a refused scale, want 3", st.Wanted)
	}
	if code, body := post("http://paas-monitor.localhost:" + port); code != 200 {
		t.Fatalf("scale from the page: %d %q", code, body)
	}
	until(t, "4 live instances", 20*time.Second, func() bool { st := p.status(t); return st.Wanted == 4 && st.Up == 4 })
	p.stop(t)
}

// TestUpDemoPageButtons drives the demo page in headless Chromium: + scales
// the app (one instance more, and its row appears), Kill makes an instance
// exit and a new one take its place, and Pause counts down to the sleep,
// after which the app is passivated; Resume wakes it.
func TestUpDemoPageButtons(t *testing.T) {
	p := startUp(t, t.TempDir())
	_, port, _ := net.SplitHostPort(p.http)
	page := openPage(t, "http://paas-monitor.localhost:"+port+"/")
	rows := `String(new Set([...document.querySelectorAll('#rows tr')].filter(r => r.className === 'fresh').map(r => r.dataset.instance)).size)`
	page.waitFor("the page shows the instances", rows, "3", 20*time.Second)
	page.waitFor("the scale control", `document.getElementById('scale-n').textContent`, "3", 10*time.Second)

	page.eval(`document.getElementById('scale-up').click()`)
	until(t, "4 instances wanted and live", 20*time.Second, func() bool { st := p.status(t); return st.Wanted == 4 && st.Up == 4 })
	page.waitFor("the fourth row", rows, "4", 20*time.Second)

	pids := `String(document.querySelectorAll('#rows tr').length)`
	before := page.eval(pids)
	page.eval(`document.getElementById('kill').click()`)
	page.waitFor("a new row for the replacement", pids, fmt.Sprint(mustAtoi(t, before)+1), 20*time.Second)
	if failed := page.eval(`document.getElementById('failed').textContent`); failed != "0" {
		t.Errorf("%s requests failed around the kill, want 0 (the router retries)", failed)
	}

	page.eval(`document.getElementById('pause').click()`)
	page.waitFor("the countdown", `/^sleeps in 0:0[0-3]/.test(document.getElementById('sleep-state').textContent) ? 'yes' : document.getElementById('sleep-state').textContent`, "yes", 5*time.Second)
	until(t, "passivation", 30*time.Second, func() bool { return p.status(t).Current == "passivated" })
	page.waitFor("the page says asleep", `document.getElementById('sleep-state').textContent`, "asleep: resume to wake it", 10*time.Second)
	page.eval(`document.getElementById('pause').click()`)
	page.waitFor("the wake", `/^awake \(woke up/.test(document.getElementById('sleep-state').textContent) ? 'yes' : document.getElementById('sleep-state').textContent`, "yes", 20*time.Second)
	p.stop(t)
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	var n int
	if _, err := fmt.Sscan(s, &n); err != nil {
		t.Fatalf("%q is no number", s)
	}
	return n
}
