package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// notifySocket listens where a systemd service would send sd_notify.
func notifySocket(t *testing.T) (string, <-chan string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	msgs := make(chan string, 16)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			msgs <- string(buf[:n])
		}
	}()
	return path, msgs
}

func waitMsg(t *testing.T, msgs <-chan string, want string) {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case m := <-msgs:
			if strings.Contains(m, want) {
				return
			}
		case <-timeout:
			t.Fatalf("no %q from sd_notify", want)
		}
	}
}

// activated starts "berth ARGS..." as systemd would with socket
// activation: the listener as fd 3 named name, LISTEN_PID set to the child.
func activated(t *testing.T, l *net.TCPListener, name, notify string, args ...string) *exec.Cmd {
	t.Helper()
	f, err := l.File()
	if err != nil {
		t.Fatal(err)
	}
	return activatedFiles(t, []*os.File{f}, name, notify, args...)
}

// activatedFiles passes several sockets, all named name.
func activatedFiles(t *testing.T, files []*os.File, name, notify string, args ...string) *exec.Cmd {
	t.Helper()
	return activatedNamed(t, files, strings.TrimSuffix(strings.Repeat(name+":", len(files)), ":"), notify, args...)
}

// activatedNamed passes sockets named by names (LISTEN_FDNAMES: one name
// per socket, separated by ':').
func activatedNamed(t *testing.T, files []*os.File, names, notify string, args ...string) *exec.Cmd {
	t.Helper()
	self, _ := os.Executable()
	cmd := exec.Command("/bin/sh", append([]string{"-c", `LISTEN_PID=$$ exec "$0" "$@"`, self}, args...)...)
	cmd.Env = append(os.Environ(), "BERTH_TEST_AS_MAIN=1", fmt.Sprintf("LISTEN_FDS=%d", len(files)), "LISTEN_FDNAMES="+names, "NOTIFY_SOCKET="+notify)
	cmd.ExtraFiles = files
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

func TestRouterCommandSocketActivationAndGracefulStop(t *testing.T) {
	started := make(chan struct{}, 1)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			started <- struct{}{}
			time.Sleep(700 * time.Millisecond)
		}
		io.WriteString(w, "hello from backend")
	}))
	defer backend.Close()
	srv := etcdWithWebInstance(t, strings.TrimPrefix(backend.URL, "http://"))

	l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	notify, msgs := notifySocket(t)
	cmd := activated(t, l, "http", notify, "router", "--etcd-endpoints", srv.Endpoint, "--admin", "127.0.0.1:0", "--log-level", "warn")
	waitMsg(t, msgs, "READY=1")

	get := func(path string) (int, string, error) {
		req, _ := http.NewRequest("GET", "http://"+l.Addr().String()+path, nil)
		req.Host = "web.example.com"
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	if code, body, err := get("/"); err != nil || code != 200 || body != "hello from backend" {
		t.Fatalf("through the activated socket: %d %q %v", code, body, err)
	}
	slow := make(chan string, 1)
	go func() {
		code, body, err := get("/slow")
		slow <- strings.TrimSpace(strings.Join([]string{http.StatusText(code), body, errString(err)}, " "))
	}()
	<-started
	cmd.Process.Signal(syscall.SIGTERM)
	waitMsg(t, msgs, "STOPPING=1")
	if got := <-slow; got != "OK hello from backend" {
		t.Fatalf("in-flight request during stop: %q", got)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("router exit: %v", err)
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

// TestRouterGracefulRestartLosesNothing hands the listening socket to a
// new router process (as systemd's socket does across a restart), stops
// the old one under keep-alive load, and counts failed requests: none.
func TestRouterGracefulRestartLosesNothing(t *testing.T) {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(2 * time.Millisecond)
		io.WriteString(w, "ok")
	}))
	defer backend.Close()
	srv := etcdWithWebInstance(t, strings.TrimPrefix(backend.URL, "http://"))
	l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	args := []string{"router", "--etcd-endpoints", srv.Endpoint, "--admin", "", "--log-level", "warn"}
	notifyA, msgsA := notifySocket(t)
	a := activated(t, l, "http", notifyA, args...)
	waitMsg(t, msgsA, "READY=1")

	ctx, cancel := context.WithCancel(context.Background())
	var total, failed atomic.Int64
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			for ctx.Err() == nil {
				req, _ := http.NewRequest("GET", "http://"+l.Addr().String()+"/", nil)
				req.Host = "web.example.com"
				resp, err := client.Do(req)
				total.Add(1)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					failed.Add(1)
				}
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	notifyB, msgsB := notifySocket(t)
	b := activated(t, l, "http", notifyB, args...)
	waitMsg(t, msgsB, "READY=1")
	a.Process.Signal(syscall.SIGTERM)
	if err := a.Wait(); err != nil {
		t.Fatalf("old router: %v", err)
	}
	time.Sleep(500 * time.Millisecond) // the new one alone
	cancel()
	wg.Wait()
	b.Process.Signal(syscall.SIGTERM)
	b.Wait()
	if failed.Load() != 0 || total.Load() < 100 {
		t.Fatalf("%d of %d requests failed across the restart", failed.Load(), total.Load())
	}
	t.Logf("%d requests across the restart, none failed", total.Load())
}
