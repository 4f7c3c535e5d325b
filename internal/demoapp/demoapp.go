// Package demoapp is berth's demo web app, in the spirit of the seed's
// paas-monitor: a page that keeps calling the service through the router
// and shows, as a live table, which instance answered, so that round
// robin, a killed and replaced instance, passivation and wake can be seen.
package demoapp

import (
	_ "embed"
	"encoding/json"
	"net/http"
	"os"
	"strconv"
	"sync/atomic"
	"time"
)

//go:embed index.html
var indexHTML []byte

// Status is what /status answers.
type Status struct {
	App      string `json:"app"`
	Instance string `json:"instance"`
	Host     string `json:"host"`
	Port     string `json:"port"`
	Version  string `json:"version"`
	PID      int    `json:"pid"`
	Started  string `json:"started"`
	Served   int64  `json:"served"`
}

// Handler serves / (the page), /status (JSON), /health, POST /stop (the
// instance exits after answering, as a crash would look), and the page's
// controls: GET /demo/state and POST /demo/scale, passed on to the control
// endpoint of berth up --demo when the environment names one
// (BERTH_DEMO_CONTROL, BERTH_DEMO_TOKEN). POSTs from another site's page
// are refused (their Origin is not the request's host).
func Handler(exit func(code int)) http.Handler {
	host, _ := os.Hostname()
	started := time.Now().UTC().Format(time.RFC3339)
	var served atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(indexHTML)
	})
	// BERTH_DEMO_STATUS makes /status answer with another status code (a
	// broken version, for trying canaries and their automatic rollback).
	code, _ := strconv.Atoi(os.Getenv("BERTH_DEMO_STATUS"))
	if code < 200 || code > 599 {
		code = http.StatusOK
	}
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(code)
		json.NewEncoder(w).Encode(Status{App: os.Getenv("BERTH_APP"), Instance: os.Getenv("BERTH_INSTANCE"), Host: host,
			Port: os.Getenv("PORT"), Version: os.Getenv("BERTH_VERSION"), PID: os.Getpid(), Started: started, Served: served.Add(1)})
	})
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok\n")) })
	ctl := controlFromEnv()
	mux.HandleFunc("GET /demo/state", ctl.state)
	mux.HandleFunc("POST /demo/scale", ctl.scale)
	mux.HandleFunc("POST /stop", func(w http.ResponseWriter, r *http.Request) {
		if !sameOrigin(r) {
			http.Error(w, "cross-site request refused", http.StatusForbidden)
			return
		}
		w.Write([]byte("stopping instance " + os.Getenv("BERTH_INSTANCE") + "\n"))
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		go func() { time.Sleep(50 * time.Millisecond); exit(1) }()
	})
	return mux
}
