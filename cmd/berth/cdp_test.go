package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// browserPage is one page of a headless Chromium driven over the DevTools
// protocol: enough to click a button and read the DOM in a test.
type browserPage struct {
	t    *testing.T
	conn *websocket.Conn
	id   int
}

// openPage starts headless Chromium on a loopback debugging port and
// opens target in a new page.
func openPage(t *testing.T, target string) *browserPage {
	t.Helper()
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is needed for the browser test (apt-get install chromium); .ci/run installs it")
	}
	profile, err := os.MkdirTemp("", "berth-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
		"--disable-component-update", "--disable-sync", "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0",
		"--user-data-dir="+profile, "about:blank")
	// Its own process group: the cleanup ends Chromium's helper processes
	// too, which otherwise still write into the profile while it is removed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cmd.Wait()
		for range 50 { // the last helpers may take a moment to die
			if os.RemoveAll(profile) == nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		re := regexp.MustCompile(`DevTools listening on ws://([^/]+)/`)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				found <- m[1]
			}
		}
	}()
	var hostPort string
	select {
	case hostPort = <-found:
	case <-time.After(30 * time.Second):
		t.Fatal("chromium did not open its debugging port")
	}
	req, _ := http.NewRequest("PUT", "http://"+hostPort+"/json/new?"+url.QueryEscape(target), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var tgt struct {
		WebSocketDebuggerURL string `json:"webSocketDebuggerUrl"`
	}
	err = json.NewDecoder(resp.Body).Decode(&tgt)
	resp.Body.Close()
	if err != nil || tgt.WebSocketDebuggerURL == "" {
		t.Fatalf("new page: %v %+v", err, tgt)
	}
	conn, _, err := websocket.DefaultDialer.Dial(tgt.WebSocketDebuggerURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &browserPage{t: t, conn: conn}
}

// eval evaluates a JavaScript expression in the page and returns its
// value as a string ("" for undefined or an error).
func (p *browserPage) eval(expr string) string {
	p.t.Helper()
	p.id++
	msg := map[string]any{"id": p.id, "method": "Runtime.evaluate",
		"params": map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true}}
	p.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if err := p.conn.WriteJSON(msg); err != nil {
		p.t.Fatal(err)
	}
	for {
		p.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		var resp struct {
			ID     int `json:"id"`
			Result struct {
				Result struct {
					Value any `json:"value"`
				} `json:"result"`
			} `json:"result"`
		}
		if err := p.conn.ReadJSON(&resp); err != nil {
			p.t.Fatal(err)
		}
		if resp.ID != p.id {
			continue // an event
		}
		if resp.Result.Result.Value == nil {
			return ""
		}
		return strings.TrimSpace(fmt.Sprint(resp.Result.Result.Value))
	}
}

// waitFor evaluates expr until it returns want.
func (p *browserPage) waitFor(what, expr, want string, timeout time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(timeout)
	got := ""
	for time.Now().Before(deadline) {
		if got = p.eval(expr); got == want {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.t.Fatalf("%s: %s is %q after %s, want %q", what, expr, got, timeout, want)
}
