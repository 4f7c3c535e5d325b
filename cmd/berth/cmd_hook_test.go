package main

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/hook"
	"github.com/berthproject/berth/internal/registry"
)

func getInstance(t *testing.T, cli *clientv3.Client, app, id string) (*registry.Instance, int64) {
	t.Helper()
	k, _ := registry.NewKeys("")
	key, _ := k.Instance(app, id)
	r, err := cli.Get(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Kvs) == 0 {
		return nil, 0
	}
	var in registry.Instance
	json.Unmarshal(r.Kvs[0].Value, &in)
	return &in, r.Kvs[0].Lease
}

func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestHookLifecycleExec plays what systemd does with an exec-runtime unit:
// pre-start allocates a port, the app listens on it, post-start waits for
// health and registers the instance on a lease, drain marks it draining,
// post-stop removes it and the keeper lets the lease go.
func TestHookLifecycleExec(t *testing.T) {
	t.Setenv("BERTH_TEST_AS_MAIN", "1")
	srv, cli := etcdtest.New(t)
	envFile := filepath.Join(t.TempDir(), "run", "web", "1.env")
	etcd := []string{"--etcd-endpoints", srv.Endpoint}
	base := append([]string{"--app", "web", "--instance", "1"}, etcd...)

	code, _, errOut := berth(t, append([]string{"hook", "pre-start", "--env-file", envFile, "--alloc", "PORT,PORT_WEB", "--alloc", "PORT_METRICS"}, base...)...)
	if code != 0 {
		t.Fatalf("pre-start: %s", errOut)
	}
	env, err := hook.ReadEnvFile(envFile)
	if err != nil || env["PORT"] == "" || env["PORT"] != env["PORT_WEB"] || env["PORT_METRICS"] == "" || env["PORT_METRICS"] == env["PORT"] {
		t.Fatalf("env file: %v, %v", env, err)
	}
	k, _ := registry.NewKeys("")
	st, _, _ := registry.GetStatus(context.Background(), cli, k, "web")
	if st == nil || st.Current != registry.StatusStarting {
		t.Fatalf("status after pre-start: %+v", st)
	}

	// The app comes up a little later than post-start begins.
	ln, err := net.Listen("tcp", "127.0.0.1:"+env["PORT"])
	if err != nil {
		t.Fatal(err)
	}
	healthy := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-healthy:
		default:
			http.Error(w, "starting", http.StatusServiceUnavailable)
		}
	})
	go http.Serve(ln, mux)
	defer ln.Close()
	time.AfterFunc(300*time.Millisecond, func() { close(healthy) })

	start := time.Now()
	code, _, errOut = berth(t, append([]string{"hook", "post-start", "--runtime", "exec", "--env-file", envFile,
		"--health", "http:/health", "--health-timeout", "10s", "--advertise-ip", "127.0.0.1", "--ttl", "4s", "--tags", "http", "--skydns-zone", "berth.example.",
		"--port", "8080/tcp", "--port-name", "web", "--named-port", "name=metrics,port=9100/tcp,tag=prometheus"}, base...)...)
	if code != 0 {
		t.Fatalf("post-start: %s", errOut)
	}
	if time.Since(start) < 300*time.Millisecond {
		t.Error("post-start returned before the app was healthy")
	}
	in, lease := getInstance(t, cli, "web", "1")
	if in == nil || in.State != registry.StateUp || in.Addr != "127.0.0.1:"+env["PORT"] || lease == 0 || in.Tags[0] != "http" {
		t.Fatalf("instance after post-start: %+v lease %d", in, lease)
	}
	// Every port is registered by name, and mirrored on the same lease.
	want := map[string]registry.InstancePort{"web": {Addr: "127.0.0.1:" + env["PORT"], Tags: []string{"http"}},
		"metrics": {Addr: "127.0.0.1:" + env["PORT_METRICS"], Tags: []string{"prometheus"}}}
	if in.Port != "web" || !reflect.DeepEqual(in.Ports, want) {
		t.Fatalf("ports after post-start: %q %+v, want web and metrics %+v", in.Port, in.Ports, want)
	}
	for key, port := range map[string]string{"web/1": env["PORT"], "web/_tcp/_web/1": env["PORT"], "web/_tcp/_metrics/1": env["PORT_METRICS"]} {
		sky, _ := cli.Get(context.Background(), "/skydns/example/berth/service/"+key)
		if len(sky.Kvs) != 1 || sky.Kvs[0].Lease != lease || !strings.Contains(string(sky.Kvs[0].Value), `"port":`+port+",") {
			t.Fatalf("skydns mirror %s: %v, want port %s on lease %x", key, sky.Kvs, port, lease)
		}
	}
	st, _, _ = registry.GetStatus(context.Background(), cli, k, "web")
	if st.Current != registry.StatusStarted {
		t.Fatalf("status after post-start: %+v", st)
	}
	// The record outlives the hook: the keeper renews a 4s lease. (A 2s
	// lease could lapse on a loaded machine; the keeper, which here runs
	// outside a unit's cgroup and so outlives post-stop, then wrote the
	// mirror again on a new lease after post-stop had removed it.)
	time.Sleep(5 * time.Second)
	if in, _ := getInstance(t, cli, "web", "1"); in == nil {
		t.Fatal("record expired although the keeper runs")
	}

	if code, _, errOut = berth(t, append([]string{"hook", "drain"}, base...)...); code != 0 {
		t.Fatalf("drain: %s", errOut)
	}
	if in, _ := getInstance(t, cli, "web", "1"); in == nil || in.State != registry.StateDraining {
		t.Fatalf("after drain: %+v", in)
	}
	if code, _, errOut = berth(t, append([]string{"hook", "post-stop", "--env-file", envFile}, base...)...); code != 0 {
		t.Fatalf("post-stop: %s", errOut)
	}
	if in, _ := getInstance(t, cli, "web", "1"); in != nil {
		t.Fatalf("record still there after post-stop: %+v", in)
	}
	eventually(t, "skydns mirror removed", func() bool {
		r, _ := cli.Get(context.Background(), "/skydns/", clientv3.WithPrefix())
		return len(r.Kvs) == 0
	})
	eventually(t, "keeper revokes its lease", func() bool {
		r, err := cli.TimeToLive(context.Background(), clientv3.LeaseID(lease))
		return err == nil && r.TTL == -1
	})
	if _, err := os.Stat(envFile); !os.IsNotExist(err) {
		t.Error("post-stop left the env file")
	}
}

// A crashed unit: the keeper dies with it and the record expires by itself.
func TestHookRecordExpiresWhenKeeperDies(t *testing.T) {
	t.Setenv("BERTH_TEST_AS_MAIN", "1")
	srv, cli := etcdtest.New(t)
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	code, _, errOut := berth(t, "hook", "post-start", "--app", "crashy", "--instance", "7", "--etcd-endpoints", srv.Endpoint,
		"--addr", "127.0.0.1:"+itoa(port), "--health", "tcp", "--ttl", "2s")
	if code != 0 {
		t.Fatalf("post-start: %s", errOut)
	}
	if in, _ := getInstance(t, cli, "crashy", "7"); in == nil {
		t.Fatal("not registered")
	}
	out, _ := exec.Command("pkill", "-KILL", "-f", "hook keeper --app crashy --instance 7").CombinedOutput()
	_ = out
	eventually(t, "record expires after the keeper's death", func() bool {
		in, _ := getInstance(t, cli, "crashy", "7")
		return in == nil
	})
}

func TestHookFailsClearly(t *testing.T) {
	srv, _ := etcdtest.New(t)
	// Nothing listens: post-start must fail within its health timeout.
	code, _, errOut := berth(t, "hook", "post-start", "--app", "web", "--instance", "1", "--etcd-endpoints", srv.Endpoint,
		"--runtime", "exec", "--host-port", "1", "--health", "tcp", "--health-timeout", "500ms", "--advertise-ip", "127.0.0.1")
	if code != exitFailure || !strings.Contains(errOut, "did not become healthy") {
		t.Fatalf("exit %d, stderr %q", code, errOut)
	}
	code, _, errOut = berth(t, "hook", "pre-start", "--app", "web", "--instance", "1", "--etcd-endpoints", "127.0.0.1:1", "--timeout", "500ms")
	if code != exitFailure || !strings.Contains(errOut, "unreachable") {
		t.Fatalf("unreachable etcd: exit %d, stderr %q", code, errOut)
	}
	if code, _, _ = berth(t, "hook", "drain", "--app", "web"); code != exitUsage {
		t.Fatalf("missing --instance: exit %d, want usage", code)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

// TestDrainHookLeavesTheStopTimeout: the drain hook runs inside the unit's
// stop timeout (10s by default), so its own bound is a fraction of it;
// the other hooks keep 30s.
func TestDrainHookLeavesTheStopTimeout(t *testing.T) {
	root := newRootCommand(io.Discard, io.Discard)
	for _, tc := range []struct{ hook, want string }{{"drain", "3s"}, {"post-stop", "30s"}, {"pre-start", "30s"}} {
		cmd, _, err := root.Find([]string{"hook", tc.hook})
		if err != nil {
			t.Fatal(err)
		}
		if got := cmd.Flags().Lookup("timeout").DefValue; got != tc.want {
			t.Errorf("berth hook %s --timeout defaults to %s, want %s", tc.hook, got, tc.want)
		}
	}
}
