package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/berthproject/berth/internal/etcdtest"
)

func TestTokenCommands(t *testing.T) {
	srv, _ := etcdtest.New(t)
	ep := []string{"--etcd-endpoints", srv.Endpoint}
	code, out, errOut := berth(t, append([]string{"token", "create", "--scope", "read", "--name", "ci"}, ep...)...)
	if code != 0 || !strings.HasPrefix(out, "berth_") || !strings.Contains(errOut, "shown only now") {
		t.Fatalf("create: exit %d, stdout %q, stderr %q", code, out, errOut)
	}
	token := strings.TrimSpace(out)
	if code, _, errOut := berth(t, append([]string{"token", "create", "--scope", "admin", "--name", "ci"}, ep...)...); code == 0 || !strings.Contains(errOut, "exists") {
		t.Fatalf("create of a name in use: exit %d, %q", code, errOut)
	}
	if code, _, errOut := berth(t, append([]string{"token", "create", "--scope", "root"}, ep...)...); code != exitUsage || !strings.Contains(errOut, "read or admin") {
		t.Fatalf("bad scope: exit %d, %q", code, errOut)
	}
	code, out, _ = berth(t, append([]string{"token", "list", "-o", "json"}, ep...)...)
	var list []struct{ ID, Name, Scope string }
	if code != 0 || json.Unmarshal([]byte(out), &list) != nil || len(list) != 1 || list[0].Name != "ci" || list[0].Scope != "read" {
		t.Fatalf("list: exit %d, %q", code, out)
	}
	if strings.Contains(out, token) || strings.Contains(out, strings.TrimPrefix(token, "berth_")) {
		t.Fatal("token list shows the token")
	}
	if code, out, _ := berth(t, append([]string{"token", "revoke", list[0].ID}, ep...)...); code != 0 || !strings.Contains(out, "revoked ci") {
		t.Fatalf("revoke by id: exit %d, %q", code, out)
	}
	if code, _, errOut := berth(t, append([]string{"token", "revoke", "ci"}, ep...)...); code == 0 || !strings.Contains(errOut, "no such token") {
		t.Fatalf("revoke again: exit %d, %q", code, errOut)
	}
}

// TestAPICommand runs berth api as its own process.
func TestAPICommand(t *testing.T) {
	srv, _ := etcdtest.New(t)
	code, out, errOut := berth(t, "token", "create", "--scope", "admin", "--name", "op", "--etcd-endpoints", srv.Endpoint)
	if code != 0 {
		t.Fatalf("token create: %s", errOut)
	}
	token := strings.TrimSpace(out)
	addr := freeAddrs(t, 1)[0]
	self, _ := os.Executable()
	cmd := exec.Command(self, "api", "--listen", addr, "--etcd-endpoints", srv.Endpoint, "--log-level", "warn")
	cmd.Env = append(os.Environ(), "BERTH_TEST_AS_MAIN=1")
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil || !strings.Contains(line, "api on http://"+addr) {
		t.Fatalf("first line %q (%v)", line, err)
	}
	get := func(path, token string) int {
		req, _ := http.NewRequest("GET", "http://"+addr+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode
	}
	if c := get("/v1/status", ""); c != 401 {
		t.Fatalf("token-less read of berth api: %d, want 401", c)
	}
	if c := get("/v1/status", token); c != 200 {
		t.Fatalf("read with a token: %d", c)
	}
	if c := get("/metrics", token); c != 200 {
		t.Fatalf("metrics: %d", c)
	}
	// The web console is served beside the API, under the same token rule.
	if c := get("/", ""); c != 401 {
		t.Fatalf("token-less console page of berth api: %d, want 401", c)
	}
	if c := get("/", token); c != 200 {
		t.Fatalf("console page with a token: %d", c)
	}

	// berth status and routes read the same rows through the API.
	if code, _, errOut := berth(t, "apply", "../../examples/paas-monitor.yaml", "--etcd-endpoints", srv.Endpoint); code != 0 {
		t.Fatalf("apply: %s", errOut)
	}
	_, fromEtcd, _ := berth(t, "status", "-o", "json", "--etcd-endpoints", srv.Endpoint)
	if code, _, errOut := berth(t, "status", "--api", "http://"+addr); code == 0 || !strings.Contains(errOut, "BERTH_API_TOKEN") {
		t.Fatalf("status --api without a token: exit %d, %q", code, errOut)
	}
	t.Setenv("BERTH_API_TOKEN", token)
	var fromAPI string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, fromAPI, _ = berth(t, "status", "-o", "json", "--api", "http://"+addr); fromAPI == fromEtcd {
			break
		}
	}
	if fromAPI != fromEtcd || !strings.Contains(fromAPI, "paas-monitor") {
		t.Fatalf("status --api: %q, from etcd %q", fromAPI, fromEtcd)
	}
	if code, out, errOut := berth(t, "routes", "--api", "http://"+addr); code != 0 || !strings.Contains(out, "paas-monitor.example.com") {
		t.Fatalf("routes --api: exit %d, %q, %q", code, out, errOut)
	}
	if code, _, _ := berth(t, "routes", "--api", "ftp://x"); code != exitUsage {
		t.Fatalf("routes --api ftp://x: exit %d, want usage", code)
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("berth api exit: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("berth api did not stop on SIGTERM")
	}
}

// TestUpAPI: berth up serves the API, reads from loopback without a
// token, and its banner's admin token acts, recorded under its name.
func TestUpAPI(t *testing.T) {
	p := startUp(t, t.TempDir(), "--demo-idle-timeout", "10m")
	m := regexp.MustCompile(`admin token \(until berth up stops\): (berth_\S+)`).FindStringSubmatch(p.out.String())
	if m == nil {
		t.Fatalf("no admin token in the banner:\n%s", p.out)
	}
	token := m[1]
	do := func(method, path, token, body string) (int, []byte) {
		req, _ := http.NewRequest(method, "http://"+p.api+path, strings.NewReader(body))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, b
	}
	code, body := do("GET", "/v1/status", "", "")
	if code != 200 || !strings.Contains(string(body), `"app": "paas-monitor"`) {
		t.Fatalf("token-less local read: %d %s", code, body)
	}
	if code, _ := do("POST", "/v1/apps/paas-monitor/scale", "", `{"instances":4}`); code != 401 {
		t.Fatalf("token-less scale: %d, want 401", code)
	}
	// The web console, on the same address, reads the same way.
	if !strings.Contains(p.out.String(), "console on http://"+p.api+"/") {
		t.Fatalf("no console in the banner:\n%s", p.out)
	}
	if code, body := do("GET", "/", "", ""); code != 200 || !strings.Contains(string(body), `<tr data-app="paas-monitor">`) {
		t.Fatalf("console page: %d %s", code, body)
	}

	req, _ := http.NewRequest("GET", "http://"+p.api+"/v1/events", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("events: %v %v", err, res)
	}
	defer res.Body.Close()
	lines := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(res.Body)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()

	if code, body := do("POST", "/v1/apps/paas-monitor/scale", token, `{"instances":4}`); code != 200 {
		t.Fatalf("scale with the banner's token: %d %s", code, body)
	}
	deadline := time.After(30 * time.Second)
	for up := false; !up; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("event stream ended")
			}
			up = strings.HasPrefix(l, "data: ") && strings.Contains(l, `"type":"instance.up"`) && strings.Contains(l, `"app":"paas-monitor"`)
		case <-deadline:
			t.Fatal("no instance.up event within 30s of the scale")
		}
	}
	code, body = do("GET", "/v1/audit", token, "")
	if code != 200 || !strings.Contains(string(body), `"who": "berth-up"`) || !strings.Contains(string(body), "/v1/apps/paas-monitor/scale") {
		t.Fatalf("audit: %d %s", code, body)
	}
}
