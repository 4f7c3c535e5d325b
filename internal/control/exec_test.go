package control

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/socktest"
	"github.com/berthproject/berth/internal/spec"
)

// TestMain lets the test binary act as an exec instance.
func TestMain(m *testing.M) {
	if os.Getenv("BERTH_EXEC_TEST_INSTANCE") == "1" {
		runTestInstance()
	}
	os.Exit(m.Run())
}

// runTestInstance listens where the exec driver says, $HOST:$PORT as
// berth demo-app does, prints the address and accepts until killed.
func runTestInstance() {
	l, err := net.Listen("tcp", net.JoinHostPort(os.Getenv("HOST"), os.Getenv("PORT")))
	if err != nil {
		fmt.Println("listen:", err)
		os.Exit(1)
	}
	fmt.Printf("listening on %s HOST=%s PORT_METRICS=%s\n", l.Addr(), os.Getenv("HOST"), os.Getenv("PORT_METRICS"))
	if v, ok := os.LookupEnv("DB_PASSWORD"); ok {
		fmt.Printf("DB_PASSWORD=%s\n", v)
	}
	for {
		c, err := l.Accept()
		if err != nil {
			os.Exit(1)
		}
		c.Close()
	}
}

// recordingRegistrar records the instance records the driver puts.
type recordingRegistrar struct{ puts chan string }

func (r *recordingRegistrar) Put(_ context.Context, _, value string) error {
	r.puts <- value
	return nil
}
func (r *recordingRegistrar) Delete(context.Context, string) error { return nil }

// lockedBuilder is the instances' output, written by several goroutines.
type lockedBuilder struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuilder) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuilder) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestExecInstanceListensOnLoopback: the exec driver (berth up) registers
// an instance on 127.0.0.1:PORT and tells it in HOST to listen there, so
// instances are not reachable from other machines.
func TestExecInstanceListensOnLoopback(t *testing.T) {
	_, cli := etcdtest.New(t)
	keys, _ := registry.NewKeys("")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	app := &spec.App{APIVersion: spec.APIVersion, Name: "web", Version: "1.0.0", Runtime: spec.RuntimeExec,
		Command: []string{self}, Instances: 1, Ports: []spec.Port{{Container: 8080, Tags: []string{"http"}}, {Container: 9100, Name: "metrics"}},
		Env: map[string]string{"BERTH_EXEC_TEST_INSTANCE": "1"}}
	app.SetDefaults()
	if err := app.Validate(); err != nil {
		t.Fatal(err)
	}
	log := logrus.New()
	log.SetOutput(&strings.Builder{})
	reg := &recordingRegistrar{puts: make(chan string, 10)}
	out := &lockedBuilder{}
	e := &Exec{KV: cli, Keys: keys, Reg: reg, Log: log, Output: out}
	if err := e.Start(context.Background(), app); err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		e.StopAll(ctx)
	}()
	var rec registry.Instance
	select {
	case v := <-reg.puts:
		if err := json.Unmarshal([]byte(v), &rec); err != nil {
			t.Fatalf("record %q: %v", v, err)
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("the instance was not registered; its output:\n%s", out)
	}
	host, port, err := net.SplitHostPort(rec.Addr)
	if err != nil || host != "127.0.0.1" {
		t.Fatalf("registered on %q, want 127.0.0.1:PORT", rec.Addr)
	}
	// Every port is registered by name: PORT for the first, PORT_METRICS.
	metrics := rec.Ports["metrics"].Addr
	if rec.Port != "web" || len(rec.Ports) != 2 || rec.Ports["web"].Addr != rec.Addr || !strings.HasPrefix(metrics, "127.0.0.1:") || metrics == rec.Addr {
		t.Fatalf("record %+v: want ports web and metrics", rec)
	}
	if want := fmt.Sprintf("web-1 | listening on 127.0.0.1:%s HOST=127.0.0.1 PORT_METRICS=%s\n", port, strings.TrimPrefix(metrics, "127.0.0.1:")); !strings.Contains(out.String(), want) {
		t.Errorf("instance output %q, want %q", out, want)
	}

	e.mu.Lock()
	p := e.procs["web"]["1"]
	e.mu.Unlock()
	p.mu.Lock()
	pid := p.cmd.Process.Pid
	p.mu.Unlock()
	socks, err := socktest.Listening(pid)
	if err != nil {
		t.Fatal(err)
	}
	if len(socks) == 0 {
		t.Fatal("the instance listens on nothing")
	}
	for _, s := range socks {
		if !s.Addr.Addr().Unmap().IsLoopback() {
			t.Errorf("the instance listens on %v, want loopback only", s)
		}
	}
}
