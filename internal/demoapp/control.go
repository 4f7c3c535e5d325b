package demoapp

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// Environment through which berth up --demo gives its instances the
// control endpoint: a URL on 127.0.0.1 and a bearer token, both new at
// each start.
const (
	EnvControl = "BERTH_DEMO_CONTROL"
	EnvToken   = "BERTH_DEMO_TOKEN"
)

// control passes the page's state and scale requests on to berth up's
// control endpoint; without one, the page's controls are off.
type control struct {
	url, token string
	client     *http.Client
}

func controlFromEnv() *control {
	return &control{url: os.Getenv(EnvControl), token: os.Getenv(EnvToken), client: &http.Client{Timeout: 5 * time.Second}}
}

func (c *control) state(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if c.url == "" {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"control":false}` + "\n"))
		return
	}
	c.forward(w, r.Context(), http.MethodGet, "/state", nil)
}

func (c *control) scale(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		http.Error(w, "cross-site request refused", http.StatusForbidden)
		return
	}
	if c.url == "" {
		http.Error(w, "no control endpoint: scaling from the page works under berth up --demo (elsewhere: berth scale)", http.StatusNotImplemented)
		return
	}
	if !localName(r.Host) {
		// berth up routes <app>.anything to the app: a page of another
		// domain whose name resolves to 127.0.0.1 is not the demo's.
		http.Error(w, "scaling from the page works on its *.localhost address only", http.StatusForbidden)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1024))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c.forward(w, r.Context(), http.MethodPost, "/scale", body)
}

func (c *control) forward(w http.ResponseWriter, ctx context.Context, method, path string, body []byte) {
	req, err := http.NewRequestWithContext(ctx, method, c.url+path, bytes.NewReader(body))
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.client.Do(req)
	if err != nil {
		http.Error(w, "control endpoint: "+err.Error(), http.StatusBadGateway)
		return
	}
	defer resp.Body.Close()
	w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
	w.WriteHeader(resp.StatusCode)
	io.Copy(w, io.LimitReader(resp.Body, 64<<10))
}

// sameOrigin reports whether a request may change something: a browser
// sends Origin with every POST, and a page of another site has another
// one; clients without Origin (curl) are not browsers acting for a site.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return r.Header.Get("Sec-Fetch-Site") == "" || r.Header.Get("Sec-Fetch-Site") == "same-origin"
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

// State is what berth up's control endpoint answers at GET /state.
type State struct {
	Control          bool   `json:"control"`
	App              string `json:"app"`
	Instances        int    `json:"instances"`    // wanted, as in the app's spec
	MaxInstances     int    `json:"maxInstances"` // the most the page may ask for
	IdleTimeout      string `json:"idleTimeout"`
	IdleTimeoutMS    int64  `json:"idleTimeoutMs"`
	PassivateEveryMS int64  `json:"passivateEveryMs"`
}

// ScaleRequest is the body of POST /scale.
type ScaleRequest struct {
	Instances int `json:"instances"`
}

// localName reports whether host (with or without a port) names this
// machine: localhost, *.localhost or a loopback address.
func localName(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
