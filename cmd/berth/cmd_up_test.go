package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/berthproject/berth/internal/demoapp"
	"github.com/berthproject/berth/internal/socktest"
)

// freeAddrs returns n loopback addresses whose TCP and UDP ports are
// free now, taken below the kernel's ephemeral range (32768–60999): a
// port handed out by listening on :0 is an ephemeral one, which the next
// outgoing connection (berth up's own etcd clients) can take as its
// source port before berth up listens on it.
func freeAddrs(t *testing.T, n int) []string {
	t.Helper()
	var out []string
	for tries := 0; len(out) < n; tries++ {
		if tries == 1000 {
			t.Fatal("no free port between 20000 and 32000")
		}
		addr := fmt.Sprintf("127.0.0.1:%d", 20000+rand.IntN(12000))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		defer l.Close()
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			continue
		}
		defer pc.Close()
		out = append(out, addr)
	}
	return out
}

// upOutput is berth up's stdout, written by one goroutine and read by the
// test.
type upOutput struct {
	mu sync.Mutex
	b  strings.Builder
}

func (o *upOutput) WriteString(s string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.b.WriteString(s)
}

func (o *upOutput) Write(b []byte) (int, error) {
	o.WriteString(string(b))
	return len(b), nil
}

func (o *upOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// upProcess is "berth up --demo" running as a subprocess.
type upProcess struct {
	cmd                  *exec.Cmd
	out, errOut          *upOutput // stdout (the banner), stderr (logs)
	http, dns, etcd, dir string
	api                  string // the HTTP API's address
}

func startUp(t *testing.T, dir string, extra ...string) *upProcess {
	t.Helper()
	addrs := freeAddrs(t, 4)
	p := &upProcess{out: &upOutput{}, errOut: &upOutput{}, http: addrs[0], dns: addrs[1], dir: dir, api: addrs[3]}
	_, etcdPort, _ := net.SplitHostPort(addrs[2])
	p.etcd = "http://127.0.0.1:" + etcdPort
	self, _ := os.Executable()
	args := append([]string{"up", "--demo", "--data-dir", dir, "--etcd-port", etcdPort, "--listen", p.http, "--dns-listen", p.dns,
		"--admin", "", "--api", p.api, "--demo-idle-timeout", "3s", "--min-uptime", "1s", "--passivate-every", "300ms"}, extra...)
	p.cmd = exec.Command(self, args...)
	p.cmd.Env = append(os.Environ(), "BERTH_TEST_AS_MAIN=1")
	stdout, _ := p.cmd.StdoutPipe()
	p.cmd.Stderr = io.MultiWriter(os.Stderr, p.errOut)
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.cmd.Process.Kill() })
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		once := false
		for sc.Scan() {
			p.out.WriteString(sc.Text() + "\n")
			if strings.HasPrefix(sc.Text(), "status:") && !once {
				once = true
				close(ready)
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(60 * time.Second):
		t.Fatalf("berth up did not get ready:\n%s", p.out)
	}
	return p
}

func (p *upProcess) get(t *testing.T, path string, hdr ...string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+p.http+path, nil)
	req.Host = "paas-monitor.localhost"
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, nil
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, b
}

func (p *upProcess) status(t *testing.T) statusRow {
	t.Helper()
	code, out, errOut := berth(t, "status", "-o", "json", "--etcd-endpoints", p.etcd)
	var rows []statusRow
	if code != 0 || json.Unmarshal([]byte(out), &rows) != nil || len(rows) != 1 {
		t.Fatalf("berth status: %d %q %q", code, out, errOut)
	}
	return rows[0]
}

func children(pid int) []string {
	out, _ := exec.Command("pgrep", "-P", fmt.Sprint(pid)).Output()
	return strings.Fields(string(out))
}

func until(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestDemoAppListen: berth demo-app listens on $HOST:$PORT, as the exec
// driver of berth up sets them (127.0.0.1); without HOST, or with a HOST
// that is no IP address, on every interface (units, containers).
func TestDemoAppListen(t *testing.T) {
	for _, c := range []struct{ host, port, want string }{
		{"127.0.0.1", "4000", "127.0.0.1:4000"},
		{"::1", "4000", "[::1]:4000"},
		{"", "4000", ":4000"},
		{"", "", ":8080"},
		{"127.0.0.1", "", "127.0.0.1:8080"},
		{"myhost.example.com", "4000", ":4000"},
	} {
		if got := demoAppListen(c.host, c.port); got != c.want {
			t.Errorf("HOST=%q PORT=%q: %q, want %q", c.host, c.port, got, c.want)
		}
	}
}

// TestUpDemoEndToEnd drives "berth up --demo" as a user would: HTTP
// through the router (round robin), DNS, an instance killed and replaced,
// passivation after the idle timeout, a wake, a clean Ctrl-C, and a
// restart that finds its data again.
func TestUpDemoEndToEnd(t *testing.T) {
	dir := t.TempDir()
	p := startUp(t, dir)

	seen := map[string]bool{}
	for range 9 {
		code, _, body := p.get(t, "/status")
		var s demoapp.Status
		if code != 200 || json.Unmarshal(body, &s) != nil {
			t.Fatalf("GET /status: %d %q", code, body)
		}
		seen[s.Instance] = true
	}
	if len(seen) != 3 {
		t.Fatalf("answers came from instances %v, want all 3 (round robin)", seen)
	}

	// berth up (etcd's client and peer ports, router, dnsd) and the demo
	// instances listen on loopback only.
	pids := append([]string{fmt.Sprint(p.cmd.Process.Pid)}, children(p.cmd.Process.Pid)...)
	if len(pids) != 4 {
		t.Fatalf("processes %v, want berth up and 3 instances", pids)
	}
	for _, pid := range pids {
		n, _ := strconv.Atoi(pid)
		socks, err := socktest.Listening(n)
		if err != nil {
			t.Fatal(err)
		}
		if len(socks) == 0 {
			t.Errorf("process %s listens on nothing", pid)
		}
		for _, s := range socks {
			if !s.Addr.Addr().Unmap().IsLoopback() {
				t.Errorf("process %s listens on %v, want loopback only", pid, s)
			}
		}
	}

	// The router's limits apply to berth up too: a head past the default
	// 64 KiB is refused, not proxied.
	big, _ := http.NewRequest("GET", "http://"+p.http+"/status", nil)
	big.Host = "paas-monitor.localhost"
	big.Header.Set("X-Big", strings.Repeat("x", 1<<20))
	if resp, err := http.DefaultClient.Do(big); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
			t.Errorf("a 1 MiB request head: got %d, want 431", resp.StatusCode)
		}
	} else if !errors.Is(err, syscall.ECONNRESET) && !errors.Is(err, syscall.EPIPE) {
		t.Errorf("a 1 MiB request head: %v, want 431 (or the connection reset while the client still wrote)", err)
	}

	m := new(dns.Msg)
	m.SetQuestion("paas-monitor.service.berth.", dns.TypeSRV)
	r, err := dns.Exchange(m, p.dns)
	if err != nil || len(r.Answer) != 3 {
		t.Fatalf("SRV: %v %v", r, err)
	}

	// Scale to 5 and back to 3.
	for _, n := range []int{5, 3} {
		if code, _, errOut := berth(t, "scale", "paas-monitor", fmt.Sprint(n), "--etcd-endpoints", p.etcd); code != 0 {
			t.Fatalf("scale: %s", errOut)
		}
		until(t, fmt.Sprintf("%d live instances", n), 20*time.Second, func() bool {
			st := p.status(t)
			return st.Up == n && st.Instances == n && len(children(p.cmd.Process.Pid)) == n
		})
	}

	// Kill the instance that answers next; it is replaced.
	pidsBefore := children(p.cmd.Process.Pid)
	req, _ := http.NewRequest("POST", "http://"+p.http+"/stop", nil)
	req.Host = "paas-monitor.localhost"
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	until(t, "a replacement instance process", 15*time.Second, func() bool {
		// Requests keep the app from passivating (3s idle) meanwhile: on a
		// busy machine the restart may take longer than that.
		p.get(t, "/status")
		now := children(p.cmd.Process.Pid)
		return len(now) == 3 && strings.Join(now, ",") != strings.Join(pidsBefore, ",")
	})
	failed := 0
	for range 30 {
		if code, _, _ := p.get(t, "/status"); code != 200 {
			failed++
		}
	}
	if failed > 0 {
		t.Errorf("%d of 30 requests failed after the replacement", failed)
	}

	// Idle past 3s: passivated, instances stopped.
	until(t, "passivation", 30*time.Second, func() bool { return p.status(t).Current == "passivated" })
	until(t, "instances stopped", 10*time.Second, func() bool { return len(children(p.cmd.Process.Pid)) == 0 })

	// An API call wakes it and is answered by a fresh instance.
	code, hdr, body := p.get(t, "/status")
	if code != 200 || hdr.Get("X-Berth-Cold-Start") == "" {
		t.Fatalf("wake: %d %v %q", code, hdr, body)
	}
	// The status follows the instances' own hooks, a moment after the
	// first of them answered.
	until(t, "status started after the wake", 10*time.Second, func() bool { return p.status(t).Current == "started" })

	// Ctrl-C: a clean exit, no orphaned instances.
	pid := p.cmd.Process.Pid
	p.cmd.Process.Signal(syscall.SIGINT)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("berth up exit: %v\n%s", err, p.out)
	}
	if kids := children(pid); len(kids) > 0 {
		t.Fatalf("orphaned processes after Ctrl-C: %v", kids)
	}
	out, _ := exec.Command("pgrep", "-f", "demo-app").Output()
	for _, kid := range strings.Fields(string(out)) {
		if b, _ := os.ReadFile("/proc/" + kid + "/environ"); strings.Contains(string(b), "BERTH_APP=paas-monitor") &&
			strings.Contains(string(b), "BERTH_TEST_AS_MAIN=1") {
			t.Fatalf("instance %s survived berth up", kid)
		}
	}

	// The next start finds the app and its status again.
	p2 := startUp(t, dir)
	if st := p2.status(t); st.App != "paas-monitor" || st.Current == "-" {
		t.Fatalf("after restart: %+v", st)
	}
	p2.cmd.Process.Signal(syscall.SIGINT)
	p2.cmd.Wait()
}

// TestUpDemoPageInBrowser opens the demo page in headless Chromium and
// checks that the live table shows several instances answering.
func TestUpDemoPageInBrowser(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is needed for the browser test (apt-get install chromium); .ci/run installs it")
	}
	p := startUp(t, t.TempDir())
	_, port, _ := net.SplitHostPort(p.http)
	url := "http://paas-monitor.localhost:" + port + "/"
	cmd := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--user-data-dir="+t.TempDir(),
		"--virtual-time-budget=4000", "--dump-dom", url)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v", err)
	}
	rows := regexp.MustCompile(`data-instance="(\d+)"`).FindAllStringSubmatch(string(out), -1)
	instances := map[string]bool{}
	for _, r := range rows {
		instances[r[1]] = true
	}
	if len(instances) < 2 {
		t.Fatalf("the page shows instances %v, want several answering:\n%.2000s", instances, out)
	}
	// The chart draws a line per instance; the scale buttons know the
	// count from berth up's control endpoint; the passivation part knows
	// the idle timeout.
	dom := string(out)
	if n := strings.Count(dom, `class="series"`); n < 2 {
		t.Errorf("the chart has %d series, want one per answering instance:\n%.3000s", n, dom)
	}
	for _, want := range []string{`<span id="scale-n" aria-live="polite">3</span>`, `<b id="idle">3s</b>`, `<div id="sleep-state">awake</div>`} {
		if !strings.Contains(dom, want) {
			t.Errorf("the page lacks %s", want)
		}
	}
	if regexp.MustCompile(`id="scale-up"[^>]*disabled`).MatchString(dom) {
		t.Errorf("the scale button is disabled under berth up --demo")
	}
	p.cmd.Process.Signal(syscall.SIGINT)
	p.cmd.Wait()
}

// TestUpDeleteDemo: "berth delete --driver local" on a running berth up:
// berth up stops the demo's processes once its spec is gone, the delete
// waits for them to deregister and purges the rest; the router answers
// the unknown-host page, dnsd NXDOMAIN, and a second delete says not found.
func TestUpDeleteDemo(t *testing.T) {
	p := startUp(t, t.TempDir())
	if code, _, body := p.get(t, "/status"); code != 200 {
		t.Fatalf("GET /status before the delete: %d %q", code, body)
	}
	pid := p.cmd.Process.Pid
	if kids := children(pid); len(kids) != 3 {
		t.Fatalf("instance processes %v, want 3", kids)
	}

	code, out, errOut := berth(t, "delete", "paas-monitor", "--driver", "local", "--etcd-endpoints", p.etcd)
	if code != 0 || !strings.Contains(out, "removed spec, domain paas-monitor.localhost") ||
		!strings.Contains(out, "removed status, ") || !strings.Contains(out, "deleted paas-monitor") {
		t.Fatalf("delete: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	until(t, "the demo's processes to exit", 15*time.Second, func() bool { return len(children(pid)) == 0 })

	code, hdr, body := p.get(t, "/status", "Accept", "text/html")
	if code != 404 || hdr.Get("X-Berth-Page") != "404" || !strings.Contains(string(body), "No app here") {
		t.Errorf("GET after the delete: %d %v %q, want the unknown-host page", code, hdr, body)
	}
	for _, qt := range []uint16{dns.TypeA, dns.TypeSRV} {
		m := new(dns.Msg)
		m.SetQuestion("paas-monitor.service.berth.", qt)
		r, err := dns.Exchange(m, p.dns)
		if err != nil || r.Rcode != dns.RcodeNameError {
			t.Errorf("%s after the delete: %v %v, want NXDOMAIN", dns.TypeToString[qt], r, err)
		}
	}
	if code, out, _ := berth(t, "status", "-o", "json", "--etcd-endpoints", p.etcd); code != 0 || strings.TrimSpace(out) != "[]" {
		t.Errorf("status after the delete: %d %q, want no app", code, out)
	}
	if code, _, errOut := berth(t, "delete", "paas-monitor", "--driver", "local", "--etcd-endpoints", p.etcd); code != exitFailure ||
		!strings.Contains(errOut, "app paas-monitor not found") {
		t.Errorf("second delete: exit %d, stderr %q", code, errOut)
	}
	// Nothing brings it back while berth up runs on.
	time.Sleep(time.Second)
	if kids := children(pid); len(kids) != 0 {
		t.Errorf("processes %v after the delete", kids)
	}
	p.cmd.Process.Signal(syscall.SIGINT)
	if err := p.cmd.Wait(); err != nil {
		t.Fatalf("berth up exit: %v\n%s", err, p.out)
	}
}
