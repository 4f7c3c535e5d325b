package router

import (
	"bytes"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
)

//go:embed pages/*.html
var embeddedPages embed.FS

// Page names.
const (
	pageNotFound = "404"
	pageBadGW    = "502"
	pageUnavail  = "503"
	pageWaiting  = "waiting"
)

// pages renders the router's own responses.
type pages struct {
	tmpl map[string]*template.Template
}

// loadPages parses the embedded pages, each replaced by dir/<name>.html
// when that file exists.
func loadPages(dir string) (*pages, error) {
	p := &pages{tmpl: map[string]*template.Template{}}
	for _, name := range []string{pageNotFound, pageBadGW, pageUnavail, pageWaiting} {
		src, err := embeddedPages.ReadFile("pages/" + name + ".html")
		if err != nil {
			return nil, err
		}
		if dir != "" {
			if b, err := os.ReadFile(filepath.Join(dir, name+".html")); err == nil {
				src = b
			}
		}
		t, err := template.New(name).Parse(string(src))
		if err != nil {
			return nil, fmt.Errorf("page %s: %w", name, err)
		}
		p.tmpl[name] = t
	}
	return p, nil
}

// pageData is what a page template sees.
type pageData struct {
	Status     int    `json:"status"`
	Host       string `json:"host"`
	App        string `json:"app,omitempty"`
	Message    string `json:"error"`
	RetryAfter int    `json:"retryAfter,omitempty"`
	Progress   string `json:"progress,omitempty"` // waiting page: instances up, time since the wake
	Up         int    `json:"up,omitempty"`       // waiting page: instances up (the progress bar's value)
	Wanted     int    `json:"wanted,omitempty"`   // waiting page: instances asked for, at least 1 (the bar's maximum)
}

// wantsHTML reports whether the client is a browser asking for a page.
func wantsHTML(r *http.Request) bool { return acceptOfRequest(r) == acceptHTML }

func acceptOfRequest(r *http.Request) acceptKind { return acceptOf([]byte(r.Header.Get("Accept"))) }

// serve writes a page: HTML for browsers, JSON for clients that accept it,
// plain text otherwise. 503s carry Retry-After and are never cached.
func (p *pages) serve(w http.ResponseWriter, accept acceptKind, name string, d pageData) {
	h := w.Header()
	if d.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(d.RetryAfter))
	}
	h.Set("Cache-Control", "no-store")
	h.Set("X-Berth-Page", name)
	switch accept {
	case acceptHTML:
		h.Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(d.Status)
		p.tmpl[name].Execute(w, d)
	case acceptJSON:
		h.Set("Content-Type", "application/json")
		w.WriteHeader(d.Status)
		json.NewEncoder(w).Encode(d)
	default:
		h.Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(d.Status)
		fmt.Fprintln(w, d.Message)
	}
}

// acceptKind is what a client accepts, for the router's own pages.
type acceptKind uint8

const (
	acceptText acceptKind = iota
	acceptHTML
	acceptJSON
)

func acceptOf(v []byte) acceptKind {
	switch {
	case bytes.Contains(v, []byte("text/html")):
		return acceptHTML
	case bytes.Contains(v, []byte("application/json")):
		return acceptJSON
	}
	return acceptText
}
