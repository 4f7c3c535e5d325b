package control

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/sirupsen/logrus"

	"github.com/berthproject/berth/internal/etcdtest"
	"github.com/berthproject/berth/internal/registry"
	"github.com/berthproject/berth/internal/secret"
	"github.com/berthproject/berth/internal/spec"
)

// TestExecSecretEnv: berth up's driver opens an env value "secret:NAME"
// from etcd with its key and gives the value to the process only; without
// an opener the instance does not start, and says why.
func TestExecSecretEnv(t *testing.T) {
	_, cli := etcdtest.New(t)
	keys, _ := registry.NewKeys("")
	id, _ := secret.Generate()
	st := &secret.Store{KV: cli, Keys: keys}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st.Init(ctx, []string{id.Recipient().String()})
	if _, err := st.Put(ctx, "web", "db-password", []byte("local-s3cret")); err != nil {
		t.Fatal(err)
	}
	self, _ := os.Executable()
	app := &spec.App{APIVersion: spec.APIVersion, Name: "web", Version: "1.0.0", Runtime: spec.RuntimeExec,
		Command: []string{self}, Instances: 1, Ports: []spec.Port{{Container: 8080}},
		Env: map[string]string{"BERTH_EXEC_TEST_INSTANCE": "1", "DB_PASSWORD": "secret:db-password"}}
	app.SetDefaults()
	if err := app.Validate(); err != nil {
		t.Fatal(err)
	}
	run := func(open func(context.Context, string, string) ([]byte, error)) (string, bool) {
		log := logrus.New()
		logs := &lockedBuilder{}
		log.SetOutput(logs)
		reg := &recordingRegistrar{puts: make(chan string, 10)}
		out := &lockedBuilder{}
		e := &Exec{KV: cli, Keys: keys, Reg: reg, Log: log, Output: out, Secrets: open}
		if err := e.Start(ctx, app); err != nil {
			t.Fatal(err)
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			e.StopAll(sctx)
		}()
		select {
		case <-reg.puts:
			return out.String(), true
		case <-time.After(3 * time.Second):
			return logs.String(), false
		}
	}
	out, ok := run(func(ctx context.Context, app, name string) ([]byte, error) {
		return st.Open(ctx, app, name, []*age.X25519Identity{id})
	})
	if !ok || !strings.Contains(out, "web-1 | DB_PASSWORD=local-s3cret\n") {
		t.Fatalf("with the key: registered %v, output %q", ok, out)
	}
	if strings.Contains(strings.Join(os.Environ(), "\n"), "local-s3cret") {
		t.Error("the driver's own environment holds the value")
	}
	logs, ok := run(nil)
	if ok || !strings.Contains(logs, "env DB_PASSWORD: refers to sealed secret db-password") {
		t.Errorf("without an opener: registered %v, logs %q", ok, logs)
	}
}
