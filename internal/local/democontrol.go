package local

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/sirupsen/logrus"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/berthproject/berth/internal/demoapp"
	"github.com/berthproject/berth/internal/registry"
)

// DemoMaxInstances bounds what the demo page may scale the demo app to.
const DemoMaxInstances = 20

// demoControl is the endpoint behind the demo page's scale button: it
// listens on 127.0.0.1 (a random port) only under berth up --demo,
// answers only requests with the bearer token of this run (which only the
// demo's instances get, in their environment), and can do one thing:
// read and set the demo app's instance count, within 1..DemoMaxInstances.
type demoControl struct {
	kv       clientv3.KV
	keys     registry.Keys
	app      string
	token    string
	every    time.Duration
	snapshot func() *registry.Snapshot
	log      logrus.FieldLogger
}

// serveDemoControl starts the control endpoint until ctx ends and returns
// the environment that gives the demo's instances its address and token.
func serveDemoControl(ctx context.Context, c *demoControl) ([]string, error) {
	b := make([]byte, 24)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	c.token = hex.EncodeToString(b)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("demo control: %w", err)
	}
	srv := &http.Server{Handler: c.handler(), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	go func() {
		<-ctx.Done()
		srv.Close()
	}()
	return []string{demoapp.EnvControl + "=http://" + l.Addr().String(), demoapp.EnvToken + "=" + c.token}, nil
}

func (c *demoControl) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /state", c.state)
	mux.HandleFunc("POST /scale", c.scale)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got := []byte(r.Header.Get("Authorization"))
		if subtle.ConstantTimeCompare(got, []byte("Bearer "+c.token)) != 1 {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	})
}

func (c *demoControl) state(w http.ResponseWriter, _ *http.Request) {
	st := demoapp.State{Control: true, App: c.app, MaxInstances: DemoMaxInstances, PassivateEveryMS: c.every.Milliseconds()}
	if a := c.snapshot().Apps[c.app]; a != nil {
		st.Instances = a.Instances
		st.IdleTimeout, st.IdleTimeoutMS = a.IdleTimeout.String(), a.IdleTimeout.D().Milliseconds()
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(st)
}

func (c *demoControl) scale(w http.ResponseWriter, r *http.Request) {
	var req demoapp.ScaleRequest
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1024)).Decode(&req); err != nil {
		http.Error(w, "body: want {\"instances\": N}", http.StatusBadRequest)
		return
	}
	if req.Instances < 1 || req.Instances > DemoMaxInstances {
		http.Error(w, fmt.Sprintf("instances must be 1..%d from the demo page, got %d (berth scale goes further)", DemoMaxInstances, req.Instances), http.StatusBadRequest)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 5*time.Second)
	defer cancel()
	prev, err := registry.ScaleApp(ctx, c.kv, c.keys, c.app, req.Instances)
	if errors.Is(err, registry.ErrNoApp) {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	c.log.WithFields(logrus.Fields{"app": c.app, "from": prev, "to": req.Instances}).Info("scaled from the demo page")
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]int{"from": prev, "to": req.Instances})
}
